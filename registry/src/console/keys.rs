//! The organization's signing keys, for its admins: each with its kind,
//! owner and state, and a form to revoke it. Registering a key takes its
//! public half from a file, so it stays with the CLI (`warden key add`).

use super::{Csrf, admin_session, failure, form_session, page, refused_unless_admin};
use crate::api::AppState;
use crate::domain::keys::{self, KeyError};
use crate::domain::sessions::Session;
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/keys", get(keys_page))
        .route("/console/keys/{key_id}/revoke", post(revoke_key))
}

async fn keys_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match admin_session(&state, &headers, "manage its keys").await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    keys_view(&state, &session, None).await
}

async fn keys_view(state: &AppState, session: &Session, problem: Option<String>) -> Response {
    let listed = match keys::list(&state.db, &session.caller.org).await {
        Ok(listed) => listed,
        Err(error) => return failure(&error.to_string()),
    };
    let body = html! {
        @if let Some(problem) = &problem {
            p class="problem" role="alert" { (problem) }
        }
        table id="keys" {
            thead { tr { th scope="col" { "Key" } th scope="col" { "Kind" } th scope="col" { "Owner" } th scope="col" { "State" } th scope="col" { "Action" } } }
            tbody {
                @for key in &listed {
                    tr {
                        td { code { (key.key_id) } }
                        td { (key.kind.as_str()) }
                        td { (key.owner) }
                        td { @if key.revoked_at.is_some() { "revoked" } @else { "active" } }
                        td {
                            @if key.revoked_at.is_none() {
                                form method="post" action={ "/console/keys/" (key.key_id) "/revoke" } {
                                    input type="hidden" name="csrf" value=(session.csrf);
                                    button type="submit" aria-label={ "Revoke key " (key.key_id) " of " (key.owner) } { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
        p { "Register a key with " code { "warden key add" } "." }
    };
    let status = if problem.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    (status, page("Keys", Some(session), body)).into_response()
}

async fn revoke_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key_id): Path<String>,
    Form(form): Form<Csrf>,
) -> Response {
    let session = match form_session(&state, &headers, &form.csrf).await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    if let Some(refused) = refused_unless_admin(&session, "manage its keys") {
        return refused;
    }
    let actor = session.caller.actor();
    match keys::revoke(&state.db, &session.caller.org, &actor, &key_id).await {
        Ok(()) => Redirect::to("/console/keys").into_response(),
        Err(KeyError::Db(error)) => failure(&error.to_string()),
        Err(error) => keys_view(&state, &session, Some(error.to_string())).await,
    }
}
