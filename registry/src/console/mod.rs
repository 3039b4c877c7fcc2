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
use crate::domain::sessions::{self, Session, SessionError};
use crate::domain::tokens::{Permission, Role};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

mod audit;
mod catalog;
mod keys;
mod live;
mod releases;
mod sign_in;
mod tokens;
mod try_it;

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
        .merge(sign_in::routes())
        .merge(catalog::routes())
        .merge(tokens::routes())
        .merge(releases::routes())
        .merge(live::routes())
        .merge(audit::routes())
        .merge(keys::routes())
        .merge(try_it::routes())
        .route("/console/console.css", get(stylesheet))
        .route("/console/console.js", get(script))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forms_from_this_site,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// Every form post, before its body is read: refused (403) when the
/// browser says another site sent it (which also stops another site from
/// signing a browser into its own organization), and, but for sign-in,
/// refused unless it comes with a session, so that a body is read only
/// for a signed-in browser (whose session's share of open bodies it takes).
async fn forms_from_this_site(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != axum::http::Method::POST {
        return next.run(request).await;
    }
    if sent_from_another_site(request.headers()) {
        return (
            StatusCode::FORBIDDEN,
            page(
                "Not allowed",
                None,
                html! { p { "This form was sent from another site." } },
            ),
        )
            .into_response();
    }
    if request.uri().path() != "/console/sign-in"
        && let Err(elsewhere) = session(&state, request.headers()).await
    {
        return elsewhere;
    }
    next.run(request).await
}

/// Whether a browser says the request comes from another site: its
/// `Sec-Fetch-Site` (every current browser sends it), else its `Origin`
/// against the `Host` it was sent to. A client that sends neither is not
/// a browser on another site's page.
fn sent_from_another_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    origin_host != host
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

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("console.js"),
    )
}

/// The session cookie's secret in a request, if it has one.
pub(crate) fn cookie_secret(headers: &HeaderMap) -> Option<String> {
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

/// The request's session, for a page of the organization's admins: its
/// other roles are refused (403) by the server, whatever links they see.
async fn admin_session(
    state: &AppState,
    headers: &HeaderMap,
    what: &str,
) -> Result<Session, Response> {
    let session = session(state, headers).await?;
    match refused_unless_admin(&session, what) {
        Some(refused) => Err(refused),
        None => Ok(session),
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
                script src="/console/console.js" defer {}
            }
            body {
                header {
                    nav aria-label="Console" {
                        a href="/console/catalog" { "Warden" }
                        @if let Some(session) = session {
                            @if session.caller.role == Role::Admin {
                                a href="/console/releases" { "Review" }
                                a href="/console/audit" { "Audit" }
                                a href="/console/tokens" { "Tokens" }
                                a href="/console/keys" { "Keys" }
                            }
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

/// Refuses a session whose token may not administer its organization: the
/// server decides, whatever links a page shows.
fn refused_unless_admin(session: &Session, what: &str) -> Option<Response> {
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
                html! { p { "Only the organization's admins " (what) "." } },
            ),
        )
            .into_response()
    })
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
