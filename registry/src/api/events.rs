//! `GET /v1/event-types`: what events there are, each with its payload's
//! JSON Schema; `GET /v1/orgs/{org}/events`: an organization's events in
//! order, as pages, or with `Accept: text/event-stream` as a Server-Sent
//! Events stream that resumes from `Last-Event-ID`.

use super::error::{ApiError, ErrorCode};
use super::{ApiPath, ApiQuery, ApiResult, AppState, ErrorBody, page_size};
use crate::domain::tokens::{Caller, Permission};
use crate::events::streams::{STREAM_LIFETIME, StreamPermit};
use crate::events::{self, EventId, EventPage, EventType, Reader};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest page of events.
pub const MAX_EVENT_PAGE: i64 = 1000;

/// Events a stream reads at a time.
const STREAM_BATCH: i64 = 100;

/// The longest a stream waits for a change before it looks again (changes
/// wake it at once; this covers a wake-up lost to a failing poll, and a
/// token that expired).
const STREAM_RECHECK: Duration = Duration::from_secs(15);

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(event_types))
        .routes(routes!(org_events))
}

/// One event type.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventTypeInfo {
    /// Its name, as events' `type` and webhook subscriptions give it.
    pub name: String,
    /// What it means.
    pub description: String,
    /// The JSON Schema of its `data`.
    #[schema(value_type = Object)]
    pub schema: serde_json::Value,
}

/// Every event type.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventTypeList {
    /// In a stable order.
    pub types: Vec<EventTypeInfo>,
}

/// Every event type, with the JSON Schema of its payload (`data`). Each
/// schema is also in this document's components, under its name.
#[utoipa::path(get, path = "/v1/event-types", tag = "events", security(()),
    responses((status = 200, body = EventTypeList)))]
async fn event_types() -> Json<EventTypeList> {
    Json(EventTypeList {
        types: EventType::ALL
            .iter()
            .map(|kind| EventTypeInfo {
                name: kind.name().to_owned(),
                description: kind.description().to_owned(),
                schema: serde_json::to_value(kind.data_schema()).unwrap_or_default(),
            })
            .collect(),
    })
}

/// `?after=&limit=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Events after this one (`<org>:<seq>`, as `id` and `last` give it);
    /// default: from the first. A stream's `Last-Event-ID` header wins.
    #[param(
        pattern = r"^[a-z0-9]+([._-][a-z0-9]+)*:(0|[1-9][0-9]{0,17})$",
        max_length = 90
    )]
    pub after: Option<String>,
    /// Page size, 1 to 1000 (default 100). Not for streams.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// An organization's events in order (every change, as its audit chain
/// records it). Admins of the organization see every event; other roles
/// see releases, keys and pushes (not tokens, secrets, configuration or
/// the server's refusals). As JSON, a page with where it ends (`last`:
/// pass it as `after`). With `Accept: text/event-stream`, a Server-Sent
/// Events stream: each event's `id`, `event` (its type) and `data` (the
/// event as JSON), live as changes commit; a reconnecting client's
/// `Last-Event-ID` header resumes it with neither a gap nor a repeat (a
/// position past the newest event resumes at the newest). A token may
/// have 4 streams open, an organization 32; a stream ends after 30 minutes
/// (resume it) or when its token is revoked.
#[utoipa::path(get, path = "/v1/orgs/{org}/events", tag = "events",
    params(("org" = String, Path, description = "organization"), EventQuery),
    responses(
        (status = 200, description = "A page of events, or the stream",
            content((EventPage = "application/json"), (String = "text/event-stream"))),
        (status = 400, description = "`invalid_query` (a malformed event id, `limit` on a stream), `invalid_page_size`", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "`not_found`: an event id of another organization", body = ErrorBody),
        (status = 429, description = "`capacity`: too many streams open", body = ErrorBody)))]
async fn org_events(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
    ApiQuery(query): ApiQuery<EventQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let reader = reader_of(&caller, &org)?;
    let wants_stream = accepts_event_stream(&headers);
    // An empty Last-Event-ID is no id (as a browser's first connect).
    let last_event_id = match headers.get("last-event-id").map(|v| v.to_str()) {
        None => None,
        Some(Ok("")) => None,
        Some(Ok(text)) => Some(text.to_owned()),
        Some(Err(_)) => {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                "Last-Event-ID is not text",
            ));
        }
    };
    let after = match last_event_id.filter(|_| wants_stream).or(query.after) {
        None => 0,
        Some(text) => position(&org, &text)?,
    };
    if !wants_stream {
        let limit = page_size(query.limit, 100, MAX_EVENT_PAGE)?;
        let page = events::page(&state.db, &org, reader, after, limit).await?;
        return Ok(([(header::VARY, "accept")], Json(page)).into_response());
    }
    if query.limit.is_some() {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            "limit is for pages, not for a stream",
        ));
    }
    let credential = Credential::Token(crate::oci::token(&headers));
    event_stream(state, caller, org, after, credential).await
}

/// What a stream checks before each read: the reader may still read.
pub(crate) enum Credential {
    /// The API token the stream was opened with (a revoked one ends it).
    Token(Option<String>),
    /// The console session's cookie secret (a session that ended, or whose
    /// token was revoked, ends it).
    Session(String),
}

impl Credential {
    /// Whether it still stands for `caller`.
    async fn still_for(&self, state: &AppState, caller: &Caller) -> bool {
        let now = match self {
            Credential::Token(secret) => state
                .snapshot
                .caller(&state.db, secret.as_deref())
                .await
                .ok(),
            Credential::Session(secret) => crate::domain::sessions::find(&state.db, secret)
                .await
                .ok()
                .map(|session| session.caller),
        };
        now.is_some_and(|now| now.token_id == caller.token_id)
    }
}

/// What `caller` may read of `org`'s events: every event for its admins,
/// the members' events for its other roles; another organization's, none.
fn reader_of(caller: &Caller, org: &str) -> ApiResult<Reader> {
    caller.require(Permission::Read, org)?;
    Ok(if caller.require(Permission::Administer, org).is_ok() {
        Reader::Admin
    } else {
        Reader::Member
    })
}

/// The Server-Sent Events stream of `org`'s events after `after` that
/// `caller` may see, for as long as `credential` stands for it.
pub(crate) async fn event_stream(
    state: AppState,
    caller: Caller,
    org: String,
    after: i64,
    credential: Credential,
) -> ApiResult<Response> {
    let reader = reader_of(&caller, &org)?;
    let permit = state.event_streams.admit(&org, &caller.token_id)?;
    let first = events::page(&state.db, &org, reader, after, STREAM_BATCH).await?;
    let following = Following {
        after: position(&org, &first.last)?,
        ready: first.events.into(),
        wake: state.db.changes().subscribe(),
        draining: state.draining.subscribe(),
        credential,
        ends: tokio::time::Instant::now() + STREAM_LIFETIME,
        state,
        caller,
        org,
        reader,
        _permit: permit,
    };
    Ok((
        [(header::VARY, "accept")],
        Sse::new(follow(following)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))),
    )
        .into_response())
}

/// Whether the request accepts `text/event-stream` (with a quality above 0).
fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let refused = parts.any(|parameter| {
                parameter
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case("text/event-stream") && !refused
        })
}

/// The sequence number `text` (an event id of `org`) stands for.
fn position(org: &str, text: &str) -> ApiResult<i64> {
    let id: EventId = text
        .parse()
        .map_err(|e: String| ApiError::new(ErrorCode::InvalidQuery, e))?;
    // Well formed, but no event of this organization: there is no such
    // event here.
    if id.org != org {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no event {id} among {org}'s"),
        ));
    }
    Ok(id.seq)
}

/// What a stream holds between events.
struct Following {
    state: AppState,
    caller: Caller,
    credential: Credential,
    org: String,
    reader: Reader,
    /// The sequence number of the last event sent (or passed over).
    after: i64,
    ready: VecDeque<events::Event>,
    wake: tokio::sync::watch::Receiver<u64>,
    /// Changes when the server starts to stop.
    draining: tokio::sync::watch::Receiver<bool>,
    /// When the stream ends (its client resumes from the last id).
    ends: tokio::time::Instant,
    _permit: StreamPermit,
}

/// The events of `org` after `after`, as they commit, for as long as the
/// caller's token stays valid (checked before every read: a revoked token's
/// stream ends) and at most [`STREAM_LIFETIME`].
fn follow(following: Following) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    stream::unfold(following, |mut f| async move {
        loop {
            if let Some(event) = f.ready.pop_front() {
                let sse = SseEvent::default()
                    .id(event.id.clone())
                    .event(event.kind.clone())
                    .json_data(&event)
                    .unwrap_or_default();
                return Some((Ok(sse), f));
            }
            // A stream ends when its time is up or the server stops (the
            // client resumes from its last id, on another replica).
            if tokio::time::Instant::now() >= f.ends || *f.draining.borrow() {
                return None;
            }
            // Taken before the read: a change that commits during it ends
            // the wait below at once.
            let generation = f.state.db.changes().generation(&f.org);
            if !f.credential.still_for(&f.state, &f.caller).await {
                return None;
            }
            match events::page(&f.state.db, &f.org, f.reader, f.after, STREAM_BATCH).await {
                Ok(page) => {
                    f.after = position(&f.org, &page.last).unwrap_or(f.after);
                    if !page.events.is_empty() {
                        f.ready.extend(page.events);
                        continue;
                    }
                    // Read everything: wait for a change of this org (or
                    // look again after a while, or end).
                    let deadline = (tokio::time::Instant::now() + STREAM_RECHECK).min(f.ends);
                    while f.state.db.changes().generation(&f.org) == generation {
                        let woken = tokio::select! {
                            woken = tokio::time::timeout_at(deadline, f.wake.changed()) => woken,
                            _ = f.draining.changed() => return None,
                        };
                        match woken {
                            Ok(Ok(())) => continue,
                            Ok(Err(_)) => return None,
                            Err(_) => break,
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(org = %f.org, "reading events for a stream: {error}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    })
}
