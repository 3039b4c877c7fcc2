//! The organization's tokens, for its admins.

use super::{Csrf, admin_session, failure, form_session, page, refused_unless_admin};
use crate::api::AppState;
use crate::domain::sessions::Session;
use crate::domain::tokens::{self, Role};
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;
use serde::Deserialize;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/tokens", get(tokens_page).post(create_token))
        .route("/console/tokens/{id}/revoke", post(revoke_token))
}

/// The organization's tokens (admins): each with its role and state, a
/// form to create one (its secret shown once, on the page that answers)
/// and one to revoke each.
async fn tokens_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match admin_session(&state, &headers, "manage its tokens").await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
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
    if let Some(refused) = refused_unless_admin(&session, "manage its tokens") {
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
    if let Some(refused) = refused_unless_admin(&session, "manage its tokens") {
        return refused;
    }
    let actor = session.caller.actor();
    match tokens::revoke(&state.db, &session.caller.org, &actor, &id).await {
        Ok(()) => Redirect::to("/console/tokens").into_response(),
        Err(tokens::TokenError::Db(error)) => failure(&error.to_string()),
        Err(error) => tokens_view(&state, &session, None, Some(error.to_string())).await,
    }
}
