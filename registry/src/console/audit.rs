//! The organization's audit log, for its admins: entries newest first,
//! filtered by action and target, page by page. The browser checks the
//! whole hash chain itself (WebCrypto SHA-256 over the same canonical JSON
//! the server hashes), reading it from `/console/audit/chain`, and says
//! through which entry it holds or where it breaks. New entries arrive
//! live.

use super::{admin_session, failure, live, page, urlencode};
use crate::api::AppState;
use crate::audit::{self, Action, AuditFilter};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use maud::html;
use serde::Deserialize;

/// Entries on one page.
const PAGE: i64 = 50;

/// Entries one page passes over at most, matching or not: a filter that
/// matches little costs no more than this.
const SCAN: i64 = 10_000;

/// Entries in one read of the chain check.
const CHAIN_PAGE: i64 = 1000;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/audit", get(audit_page))
        .route("/console/audit/chain", get(chain))
}

#[derive(Deserialize)]
struct AuditQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: String,
    before: Option<i64>,
}

async fn audit_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Response {
    let session = match admin_session(&state, &headers, "read the audit log").await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let org = &session.caller.org;
    let after = match live::position(&state, org).await {
        Ok(after) => after,
        Err(failed) => return failed,
    };
    let filter = AuditFilter {
        action: Some(query.action.as_str()).filter(|a| !a.is_empty()),
        target_prefix: Some(query.target.trim()).filter(|t| !t.is_empty()),
    };
    let before = query.before.unwrap_or(after + 1).clamp(1, after + 1);
    let from = (before - SCAN).max(1);
    let entries = match audit::read_newest(&state.db, org, from, before, PAGE, filter).await {
        Ok(entries) => entries,
        Err(error) => return failure(&error.to_string()),
    };
    // Older entries: after the last one shown when the page is full, else
    // below the window this page searched.
    let older = match entries.last() {
        Some(last) if entries.len() as i64 == PAGE => Some(last.seq),
        _ => (from > 1).then_some(from),
    };
    let body = html! {
        (live::region("audit", after))
        p id="chain-status" role="status" data-chain="/console/audit/chain" {
            "The chain is checked in your browser when scripts run."
        }
        form method="get" action="/console/audit" {
            label for="action" { "Action" }
            select id="action" name="action" {
                option value="" { "any" }
                @for action in Action::ALL {
                    option value=(action.as_str()) selected[query.action == action.as_str()] { (action.as_str()) }
                }
            }
            label for="target" { "Target starts with" }
            input id="target" name="target" type="search" value=(query.target);
            button type="submit" { "Filter" }
        }
        @if entries.is_empty() {
            p { "No entries from " (from) " to " (before - 1) "." }
        } @else {
            table id="audit-entries" {
                thead {
                    tr {
                        th scope="col" { "#" } th scope="col" { "When" } th scope="col" { "Who" }
                        th scope="col" { "Action" } th scope="col" { "Target" } th scope="col" { "Details" }
                    }
                }
                tbody {
                    @for entry in &entries {
                        tr {
                            td { (entry.seq) }
                            td { (crate::events::rfc3339_ms(entry.at)) }
                            td { code { (entry.actor) } }
                            td { (entry.action) }
                            td { code { (entry.target) } }
                            td { code class="details" { (entry.details) } }
                        }
                    }
                }
            }
        }
        @if let Some(before) = older {
            a href={ "/console/audit?action=" (urlencode(&query.action)) "&target=" (urlencode(&query.target)) "&before=" (before) } { "Older entries" }
        }
    };
    page("Audit log", Some(&session), body).into_response()
}

#[derive(Deserialize)]
struct ChainQuery {
    #[serde(default)]
    after: i64,
}

/// A page of the chain in order, with its head, for the browser's check.
async fn chain(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ChainQuery>,
) -> Response {
    let session = match admin_session(&state, &headers, "read the audit log").await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    match audit::read_page(&state.db, &session.caller.org, query.after, CHAIN_PAGE).await {
        Ok(page) => Json(page).into_response(),
        Err(error) => failure(&error.to_string()),
    }
}
