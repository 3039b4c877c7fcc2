//! Live updates: `/console/events` is the organization's event stream for
//! a signed-in browser (the same stream as `GET /v1/orgs/{org}/events`,
//! held by the session instead of a bearer token, so it ends with the
//! session). A page that updates itself carries a live region naming the
//! position it was rendered at, so that no change between rendering and
//! connecting is missed.

use super::{failure, session};
use crate::api::{AppState, Credential, event_stream};
use crate::audit;
use crate::events::EventType;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/console/events", get(events))
}

#[derive(Deserialize)]
struct After {
    /// The organization's sequence number the page was rendered at.
    #[serde(default)]
    after: i64,
}

async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<After>,
) -> Response {
    let session = match session(&state, &headers).await {
        Ok(session) => session,
        Err(elsewhere) => return elsewhere,
    };
    let Some(secret) = super::cookie_secret(&headers) else {
        return failure("a session without its cookie");
    };
    // A reconnecting browser says where it was.
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|id| id.rsplit_once(':'))
        .and_then(|(_, seq)| seq.parse().ok())
        .unwrap_or(query.after);
    let org = session.caller.org.clone();
    match event_stream(
        state,
        session.caller,
        org,
        after,
        Credential::Session(secret),
    )
    .await
    {
        Ok(stream) => stream,
        Err(error) => error.into_response(),
    }
}

/// Where `org`'s chain of changes stands now (0: nothing yet).
pub(super) async fn position(state: &AppState, org: &str) -> Result<i64, Response> {
    match audit::read_page(&state.db, org, i64::MAX, 0).await {
        Ok(page) => Ok(page.head.seq),
        Err(error) => Err(failure(&error.to_string())),
    }
}

/// The region a live page announces changes in: `watch` says which
/// events matter (`release <org/name@version>`: reload on one about it;
/// `audit`: count every event and offer to show them), `after` where
/// the page stands, and the event types to listen for.
pub(super) fn region(watch: &str, after: i64) -> Markup {
    let types: Vec<&str> = EventType::ALL.iter().map(|kind| kind.name()).collect();
    html! {
        p id="live" class="live" aria-live="polite"
            data-watch=(watch) data-after=(after) data-types=(types.join(" ")) {}
    }
}
