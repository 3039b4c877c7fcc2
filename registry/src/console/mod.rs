//! The web console at `/console`, served by the same binary: pages rendered
//! on the server (maud: compile-checked, every inserted value escaped), no
//! request off the server's origin, a strict Content-Security-Policy. A
//! browser signs in with an API token and holds a session cookie
//! (`domain::sessions`); every page asks the same domain rules as the API
//! what the session's token may see, and every form that changes something
//! carries the session's anti-forgery token.
//!
//! This first part: sign-in and sign-out, the catalog, a plugin's page, the
//! organization's tokens (admins).

use crate::api::AppState;
use crate::domain::catalog;
use crate::domain::sessions::{self, Session, SessionError};
use crate::domain::tokens::{self, Permission, Role};
use axum::Router;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

/// The session cookie's name.
pub const COOKIE: &str = "warden_console";

/// The largest form a console page posts.
const MAX_FORM_BYTES: usize = 16 << 10;

/// What every console answer says about itself: nothing loads from
/// elsewhere, no framing, no sniffing, no referrer, no caching of pages
/// that show an organization's data.
const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
];

/// The console's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::to("/console/catalog") }),
        )
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/catalog", get(catalog_page))
        .route("/console/plugins/{org}/{name}", get(plugin_page))
        .route("/console/tokens", get(tokens_page).post(create_token))
        .route("/console/tokens/{id}/revoke", post(revoke_token))
        .route("/console/console.css", get(stylesheet))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    for (name, value) in SECURITY_HEADERS {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("console.css"),
    )
}

/// The session cookie's secret in a request, if it has one.
fn cookie_secret(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The request's session, or where to go instead.
async fn session(state: &AppState, headers: &HeaderMap) -> Result<Session, Response> {
    let Some(secret) = cookie_secret(headers) else {
        return Err(Redirect::to("/console/sign-in").into_response());
    };
    match sessions::find(&state.db, &secret).await {
        Ok(session) => Ok(session),
        Err(SessionError::Db(error)) => Err(failure(&error.to_string())),
        Err(_) => Err(Redirect::to("/console/sign-in").into_response()),
    }
}

/// The anti-forgery field every form that changes something sends.
#[derive(Deserialize)]
struct Csrf {
    #[serde(default)]
    csrf: String,
}

/// The request's session, for a form that changes something: refused
/// (403) unless the form sent the session's anti-forgery token.
async fn form_session(
    state: &AppState,
    headers: &HeaderMap,
    sent: &str,
) -> Result<Session, Response> {
    let session = session(state, headers).await?;
    if !sessions::csrf_matches(&session, sent) {
        return Err(forbidden(&session));
    }
    Ok(session)
}

fn failure(cause: &str) -> Response {
    tracing::error!("console: {cause}");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        page(
            "Unavailable",
            None,
            html! { p { "The server cannot answer just now. Try again shortly." } },
        ),
    )
        .into_response()
}

/// A whole page: `title`, the signed-in bar when there is a session, `body`.
fn page(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Warden" }
                link rel="stylesheet" href="/console/console.css";
            }
            body {
                header {
                    nav aria-label="Console" {
                        a href="/console/catalog" { "Warden" }
                        @if session.is_some() {
                            a href="/console/tokens" { "Tokens" }
                        }
                        @if let Some(session) = session {
                            span class="who" {
                                (session.caller.org) " · " (session.caller.role.as_str())
                            }
                            form method="post" action="/console/sign-out" {
                                input type="hidden" name="csrf" value=(session.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

async fn sign_in_page() -> Markup {
    sign_in_form(None)
}

fn sign_in_form(problem: Option<&str>) -> Markup {
    page(
        "Sign in",
        None,
        html! {
            @if let Some(problem) = problem {
                p class="problem" role="alert" { (problem) }
            }
            form method="post" action="/console/sign-in" {
                label for="token" { "API token" }
                input id="token" name="token" type="password" autocomplete="off" required;
                button type="submit" { "Sign in" }
            }
            p { "Sign in with an API token of your organization (" code { "warden token create" } ")." }
        },
    )
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
}

async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    match sessions::start(&state.db, form.token.trim()).await {
        Ok(started) => {
            // Secure when the browser reached the server over https (behind
            // a proxy that says so).
            let secure = headers
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
            let cookie = format!(
                "{COOKIE}={}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{}",
                started.secret,
                started.max_age_secs,
                if secure { "; Secure" } else { "" }
            );
            (
                [(header::SET_COOKIE, cookie)],
                Redirect::to("/console/catalog"),
            )
                .into_response()
        }
        Err(SessionError::Db(error)) => failure(&error.to_string()),
        Err(_) => (
            StatusCode::UNAUTHORIZED,
            sign_in_form(Some(
                "That token was not accepted: it is unknown, revoked or expired.",
            )),
        )
            .into_response(),
    }
}

async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Csrf>,
) -> Response {
    if let Err(refused) = form_session(&state, &headers, &form.csrf).await {
        return refused;
    }
    if let Some(secret) = cookie_secret(&headers)
        && let Err(error) = sessions::end(&state.db, &secret).await
    {
        return failure(&error.to_string());
    }
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0"),
        )],
        Redirect::to("/console/sign-in"),
    )
        .into_response()
}

fn forbidden(session: &Session) -> Response {
    (
        StatusCode::FORBIDDEN,
        page(
            "Not allowed",
            Some(session),
            html! { p { "This form was not sent from this session's page (or the page is too old). Go back, reload and try again." } },
        ),
    )
        .into_response()
}

#[derive(Deserialize)]
struct CatalogQuery {
    #[serde(default)]
    q: String,
    cursor: Option<String>,
}

async fn catalog_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<CatalogQuery>,
) -> Response {
    let session = match session(&state, &headers).await {
        Ok(session) => session,
        Err(elsewhere) => return elsewhere,
    };
    let org = session.caller.org.clone();
    if session.caller.require(Permission::Read, &org).is_err() {
        return forbidden(&session);
    }
    let listed = catalog::list(&state.db, &org, &query.q, query.cursor.as_deref(), 50).await;
    let (found, problem) = match listed {
        Ok(found) => (Some(found), None),
        Err(catalog::CatalogError::Db(error)) => return failure(&error.to_string()),
        Err(error) => (None, Some(error.to_string())),
    };
    let body = html! {
        form method="get" action="/console/catalog" role="search" {
            label for="q" { "Search plugins" }
            input id="q" name="q" type="search" value=(query.q);
            button type="submit" { "Search" }
        }
        @if let Some(problem) = problem {
            p class="problem" role="alert" { (problem) }
        }
        @if let Some(found) = &found {
            @if found.items.is_empty() {
                p { "No plugins." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Plugin" } th scope="col" { "Latest approved" } th scope="col" { "Description" } } }
                    tbody {
                        @for plugin in &found.items {
                            tr {
                                td { a href={ "/console/plugins/" (plugin.name) } { (plugin.name) } }
                                td { (plugin.latest_approved.as_deref().unwrap_or("none")) }
                                td { (plugin.description) }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = &found.next_cursor {
                a href={ "/console/catalog?q=" (urlencode(&query.q)) "&cursor=" (urlencode(next)) } { "Next page" }
            }
        }
    };
    page("Catalog", Some(&session), body).into_response()
}

fn not_found(session: &Session) -> Response {
    (
        StatusCode::NOT_FOUND,
        page(
            "Not found",
            Some(session),
            html! { p { "There is no such plugin in your organization." } },
        ),
    )
        .into_response()
}

/// A plugin: its versions with their status, the functions (WIT
/// signatures) of its newest approved release, and, for admins, its
/// configuration keys (never the values).
async fn plugin_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((org, name)): Path<(String, String)>,
) -> Response {
    let session = match session(&state, &headers).await {
        Ok(session) => session,
        Err(elsewhere) => return elsewhere,
    };
    // Another organization's plugin is not found, whether or not it exists.
    if session.caller.require(Permission::Read, &org).is_err() {
        return not_found(&session);
    }
    let detail = match catalog::detail(&state.db, &org, &name).await {
        Ok(detail) => detail,
        Err(catalog::CatalogError::Db(error)) => return failure(&error.to_string()),
        Err(_) => return not_found(&session),
    };
    let admin = session.caller.require(Permission::Administer, &org).is_ok();
    let config_keys: Option<Vec<String>> = if admin {
        match catalog::config(&state.db, &org, &name).await {
            Ok(config) => Some(config.values.into_keys().collect()),
            Err(catalog::CatalogError::Db(error)) => return failure(&error.to_string()),
            Err(_) => Some(Vec::new()),
        }
    } else {
        None
    };
    let body = html! {
        p { (detail.description) }
        h2 { "Versions" }
        table {
            thead { tr { th scope="col" { "Version" } th scope="col" { "Status" } th scope="col" { "Published" } } }
            tbody {
                @for version in &detail.versions {
                    tr {
                        td { (version.version) }
                        td { (version.status.as_str()) }
                        td { (crate::events::rfc3339_ms(version.created_at)) }
                    }
                }
            }
        }
        h2 {
            "Functions"
            @if let Some(of) = &detail.functions_of { " of " (of) }
        }
        @if detail.functions.is_empty() {
            p { "None exported." }
        } @else {
            ul {
                @for function in &detail.functions {
                    li {
                        code { (function.name) ": " (function.signature) }
                        @if let Some(why) = &function.not_invocable { " (not invocable: " (why) ")" }
                    }
                }
            }
        }
        @if let Some(keys) = &config_keys {
            h2 { "Configuration keys" }
            @if keys.is_empty() {
                p { "None set." }
            } @else {
                ul { @for key in keys { li { code { (key) } } } }
            }
        }
    };
    page(&detail.name, Some(&session), body).into_response()
}

/// Refuses a session whose token may not administer its organization: the
/// server decides, whatever links a page shows.
fn refused_unless_admin(session: &Session) -> Option<Response> {
    let org = session.caller.org.clone();
    let refused = session
        .caller
        .require(Permission::Administer, &org)
        .is_err();
    refused.then(|| {
        (
            StatusCode::FORBIDDEN,
            page(
                "Not allowed",
                Some(session),
                html! { p { "Only the organization's admins manage its tokens." } },
            ),
        )
            .into_response()
    })
}

/// The organization's tokens (admins): each with its role and state, a
/// form to create one (its secret shown once, on the page that answers)
/// and one to revoke each.
async fn tokens_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match session(&state, &headers).await {
        Ok(session) => session,
        Err(elsewhere) => return elsewhere,
    };
    if let Some(refused) = refused_unless_admin(&session) {
        return refused;
    }
    tokens_view(&state, &session, None, None).await
}

async fn tokens_view(
    state: &AppState,
    session: &Session,
    created: Option<(String, String)>,
    problem: Option<String>,
) -> Response {
    let listed = match tokens::list(&state.db, &session.caller.org).await {
        Ok(listed) => listed,
        Err(error) => return failure(&error.to_string()),
    };
    let body = html! {
        @if let Some((name, secret)) = &created {
            section aria-labelledby="created" {
                h2 id="created" { "Token " (name) " created" }
                p { "Its secret, shown only now:" }
                p { code id="secret" { (secret) } }
            }
        }
        @if let Some(problem) = &problem {
            p class="problem" role="alert" { (problem) }
        }
        table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Role" } th scope="col" { "State" } th scope="col" { "Action" } } }
            tbody {
                @for token in &listed {
                    tr {
                        td { (token.name) }
                        td { (token.role.as_str()) }
                        td { @if token.revoked_at.is_some() { "revoked" } @else { "active" } }
                        td {
                            @if token.revoked_at.is_none() {
                                form method="post" action={ "/console/tokens/" (token.id) "/revoke" } {
                                    input type="hidden" name="csrf" value=(session.csrf);
                                    button type="submit" aria-label={ "Revoke " (token.name) } { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Create a token" }
        form method="post" action="/console/tokens" {
            input type="hidden" name="csrf" value=(session.csrf);
            label for="name" { "Name" }
            input id="name" name="name" required maxlength="100";
            label for="role" { "Role" }
            select id="role" name="role" {
                @for role in Role::ALL { option value=(role.as_str()) { (role.as_str()) } }
            }
            button type="submit" { "Create" }
        }
    };
    page("Tokens", Some(session), body).into_response()
}

#[derive(Deserialize)]
struct CreateToken {
    #[serde(default)]
    csrf: String,
    name: String,
    role: String,
}

async fn create_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CreateToken>,
) -> Response {
    let session = match form_session(&state, &headers, &form.csrf).await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    if let Some(refused) = refused_unless_admin(&session) {
        return refused;
    }
    let role: Role = match form.role.parse() {
        Ok(role) => role,
        Err(problem) => return tokens_view(&state, &session, None, Some(problem)).await,
    };
    let actor = session.caller.actor();
    match tokens::create(
        &state.db,
        &session.caller.org,
        &actor,
        &form.name,
        role,
        None,
    )
    .await
    {
        Ok(token) => {
            let secret = token.secret.unwrap_or_default();
            tokens_view(&state, &session, Some((token.name, secret)), None).await
        }
        Err(tokens::TokenError::Db(error)) => failure(&error.to_string()),
        Err(error) => tokens_view(&state, &session, None, Some(error.to_string())).await,
    }
}

async fn revoke_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Csrf>,
) -> Response {
    let session = match form_session(&state, &headers, &form.csrf).await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    if let Some(refused) = refused_unless_admin(&session) {
        return refused;
    }
    let actor = session.caller.actor();
    match tokens::revoke(&state.db, &session.caller.org, &actor, &id).await {
        Ok(()) => Redirect::to("/console/tokens").into_response(),
        Err(tokens::TokenError::Db(error)) => failure(&error.to_string()),
        Err(error) => tokens_view(&state, &session, None, Some(error.to_string())).await,
    }
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
