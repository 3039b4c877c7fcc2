//! `/v1/orgs/{org}/webhooks[...]`: an organization's webhook endpoints, for
//! its admins: create (the answer holds the signing secret, once), list,
//! show, update, remove, rotate the secret, send a test ping, read the
//! delivery log, redeliver one event, replay everything since a time.

use super::error::{ApiError, ErrorCode};
use super::{ApiPath, ApiQuery, ApiResult, AppState, ErrorBody, UnreadJson, page_size};
use crate::domain::tokens::{Caller, Permission};
use crate::domain::webhooks::deliveries::{self, AttemptPage};
use crate::domain::webhooks::{self, NewWebhook, Webhook, WebhookUpdate, WebhookWithSecret};
use crate::events::EventId;
use crate::events::delivery::PingResult;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(show_webhook, update_webhook, delete_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(test_webhook))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
        .routes(routes!(replay))
}

/// An organization's endpoints.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookList {
    /// Oldest first.
    pub webhooks: Vec<Webhook>,
}

/// Creates an endpoint. The answer holds its signing secret (shown only
/// here and after a rotation). Deliveries start with this change's own
/// event (`webhook.created`).
#[utoipa::path(post, path = "/v1/orgs/{org}/webhooks", tag = "webhooks", request_body = NewWebhook,
    params(("org" = String, Path, description = "organization")),
    responses((status = 201, body = WebhookWithSecret),
        (status = 400, description = "`invalid_webhook`", body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, description = "`too_many_webhooks`", body = ErrorBody)))]
async fn create_webhook(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
    body: UnreadJson<NewWebhook>,
) -> ApiResult<(StatusCode, Json<WebhookWithSecret>)> {
    caller.require(Permission::Administer, &org)?;
    let request = body.read(&caller).await?;
    let created = webhooks::create(
        &state.db,
        &state.secrets_key,
        &state.webhook_policy,
        &org,
        &caller.actor(),
        &request,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// An organization's endpoints (never their secrets).
#[utoipa::path(get, path = "/v1/orgs/{org}/webhooks", tag = "webhooks",
    params(("org" = String, Path, description = "organization")),
    responses((status = 200, body = WebhookList), (status = 403, body = ErrorBody)))]
async fn list_webhooks(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
) -> ApiResult<Json<WebhookList>> {
    caller.require(Permission::Administer, &org)?;
    Ok(Json(WebhookList {
        webhooks: webhooks::list(&state.db, &org).await?,
    }))
}

/// One endpoint, with where its deliveries stand.
#[utoipa::path(get, path = "/v1/orgs/{org}/webhooks/{id}", tag = "webhooks",
    params(("org" = String, Path, description = "organization"), ("id" = String, Path, description = "endpoint")),
    responses((status = 200, body = Webhook), (status = 404, body = ErrorBody)))]
async fn show_webhook(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<Webhook>> {
    caller.require(Permission::Administer, &org)?;
    Ok(Json(webhooks::get(&state.db, &org, &id).await?))
}

/// Changes an endpoint's URL, event types, description, or whether it is
/// enabled (enabling resumes deliveries after its cursor: nothing is lost).
#[utoipa::path(patch, path = "/v1/orgs/{org}/webhooks/{id}", tag = "webhooks", request_body = WebhookUpdate,
    params(("org" = String, Path, description = "organization"), ("id" = String, Path, description = "endpoint")),
    responses((status = 200, body = Webhook), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_webhook(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, id)): ApiPath<(String, String)>,
    body: UnreadJson<WebhookUpdate>,
) -> ApiResult<Json<Webhook>> {
    caller.require(Permission::Administer, &org)?;
    let patch = body.read(&caller).await?;
    Ok(Json(
        webhooks::update(
            &state.db,
            &state.webhook_policy,
            &org,
            &id,
            &caller.actor(),
            &patch,
        )
        .await?,
    ))
}

/// Removes an endpoint, its secrets and its delivery log.
#[utoipa::path(delete, path = "/v1/orgs/{org}/webhooks/{id}", tag = "webhooks",
    params(("org" = String, Path, description = "organization"), ("id" = String, Path, description = "endpoint")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_webhook(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::Administer, &org)?;
    webhooks::delete(&state.db, &org, &id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret (in the answer, once); the old one keeps signing
/// beside it for 24 hours (`webhook-signature` then carries both).
#[utoipa::path(post, path = "/v1/orgs/{org}/webhooks/{id}/rotate", tag = "webhooks",
    params(("org" = String, Path, description = "organization"), ("id" = String, Path, description = "endpoint")),
    responses((status = 200, body = WebhookWithSecret), (status = 404, body = ErrorBody)))]
async fn rotate_secret(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<WebhookWithSecret>> {
    caller.require(Permission::Administer, &org)?;
    Ok(Json(
        webhooks::rotate(&state.db, &state.secrets_key, &org, &id, &caller.actor()).await?,
    ))
}

/// Sends a signed `webhook.ping` to the endpoint now and says how it went:
/// the status and the time, nothing of the answer.
#[utoipa::path(post, path = "/v1/orgs/{org}/webhooks/{id}/test", tag = "webhooks",
    params(("org" = String, Path, description = "organization"), ("id" = String, Path, description = "endpoint")),
    responses((status = 200, body = PingResult), (status = 404, body = ErrorBody),
        (status = 429, description = "`capacity`: the organization's deliveries and pings under way are at their bound", body = ErrorBody)))]
async fn test_webhook(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<PingResult>> {
    caller.require(Permission::Administer, &org)?;
    let webhook = webhooks::get(&state.db, &org, &id).await?;
    Ok(Json(state.deliverer.ping(&webhook).await?))
}

/// `?before=&limit=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// Attempts made at or before this time (Unix ms); default: the newest.
    #[param(minimum = 0)]
    pub before: Option<i64>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// The endpoint's delivery log, newest first: every attempt with its
/// outcome, status, duration, error class and the first 1 KiB of the answer.
#[utoipa::path(get, path = "/v1/orgs/{org}/webhooks/{id}/deliveries", tag = "webhooks",
    params(("org" = String, Path, description = "organization"), ("id" = String, Path, description = "endpoint"), DeliveryQuery),
    responses((status = 200, body = AttemptPage), (status = 404, body = ErrorBody)))]
async fn list_deliveries(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, id)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> ApiResult<Json<AttemptPage>> {
    caller.require(Permission::Administer, &org)?;
    let limit = page_size(query.limit, 100, 1000)?;
    Ok(Json(
        deliveries::attempts(&state.db, &org, &id, query.before, limit).await?,
    ))
}

/// Which event to deliver again.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Redelivery {
    /// The event's id, `<org>:<seq>`.
    #[schema(pattern = r"^[a-z0-9]+([._-][a-z0-9]+)*:(0|[1-9][0-9]{0,17})$")]
    pub event: String,
}

/// Delivers one event to the endpoint again (once, with the same
/// `webhook-id`), whatever happened to it before.
#[utoipa::path(post, path = "/v1/orgs/{org}/webhooks/{id}/redeliver", tag = "webhooks", request_body = Redelivery,
    params(("org" = String, Path, description = "organization"), ("id" = String, Path, description = "endpoint")),
    responses((status = 202), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn redeliver(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, id)): ApiPath<(String, String)>,
    body: UnreadJson<Redelivery>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::Administer, &org)?;
    let request = body.read(&caller).await?;
    let event: EventId = request
        .event
        .parse()
        .map_err(|e: String| ApiError::new(ErrorCode::InvalidBody, e))?;
    if event.org != org {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no event {} among {org}'s", request.event),
        ));
    }
    deliveries::redeliver(&state.db, &org, &id, event.seq, &caller.actor()).await?;
    Ok(StatusCode::ACCEPTED)
}

/// From when to deliver again.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// Every event committed at or after this time (RFC 3339, e.g.
    /// `2026-12-05T07:00:00Z`) is delivered again, in order.
    #[schema(format = DateTime)]
    pub since: String,
}

/// Where the endpoint's deliveries continue from.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Replayed {
    /// The endpoint's cursor now: the event before the first replayed.
    pub cursor: String,
}

/// Moves the endpoint's deliveries back: every event since a time is
/// delivered again, in order, each with its own `webhook-id`.
#[utoipa::path(post, path = "/v1/orgs/{org}/webhooks/{id}/replay", tag = "webhooks", request_body = Replay,
    params(("org" = String, Path, description = "organization"), ("id" = String, Path, description = "endpoint")),
    responses((status = 200, body = Replayed), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn replay(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, id)): ApiPath<(String, String)>,
    body: UnreadJson<Replay>,
) -> ApiResult<Json<Replayed>> {
    caller.require(Permission::Administer, &org)?;
    let request = body.read(&caller).await?;
    let since = chrono::DateTime::parse_from_rfc3339(&request.since)
        .map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidBody,
                format!("since: not an RFC 3339 time ({e})"),
            )
        })?
        .timestamp_millis();
    let cursor = deliveries::replay(&state.db, &org, &id, since, &caller.actor()).await?;
    Ok(Json(Replayed {
        cursor: EventId { org, seq: cursor }.to_string(),
    }))
}
