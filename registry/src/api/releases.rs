//! `/v1/.../releases`: publishing, review, approval, rejection and yanking.
//! The rules live in the domain's releases module; this is their HTTP face.

use super::{
    ApiPath, ApiQuery, ApiResult, AppState, DEFAULT_PAGE, ErrorBody, MAX_PAGE, UnreadJson,
    page_size,
};
use crate::domain::releases::{self, Release, ReleasePage};
use crate::domain::status::Status;
use crate::domain::tokens::{Caller, Permission};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use warden_host::Envelope;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_releases))
        .routes(routes!(publish))
        .routes(routes!(show_release))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(yank))
}

/// A release to register: its signed statement, and the OCI manifest (already
/// pushed to `/v2/{org}/{name}/`) that carries the component.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// DSSE envelope of the release statement, signed by a publisher key of the org.
    #[schema(value_type = Object)]
    pub envelope: Envelope,
    /// `sha256:<hex>` of the pushed OCI manifest.
    pub manifest_digest: String,
}

/// Registers a release. The server checks: a publisher key of the org signed
/// it; the statement is well-formed and names this plugin; the version is new;
/// the manifest is a Wasm artifact whose layer is the signed component digest;
/// the component parses and imports nothing beyond the requested capabilities.
#[utoipa::path(post, path = "/v1/plugins/{org}/{name}/releases", tag = "releases", request_body = Publish,
    params(("org" = String, Path, description = "organization"), ("name" = String, Path, description = "plugin")),
    responses((status = 201, body = Release), (status = 400, body = ErrorBody),
               (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
               (status = 429, body = ErrorBody, description = "the organization already has the most publishes waiting for a compile slot")))]
async fn publish(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, name)): ApiPath<(String, String)>,
    body: UnreadJson<Publish>,
) -> ApiResult<(StatusCode, Json<Release>)> {
    caller.require(Permission::Publish, &org)?;
    let body = body.read(&caller).await?;
    let release = releases::publish(
        &state.releases(),
        &caller,
        &org,
        &name,
        &body.envelope,
        &body.manifest_digest,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(release)))
}

/// One release, for review.
#[utoipa::path(get, path = "/v1/plugins/{org}/{name}/releases/{version}", tag = "releases",
    params(("org" = String, Path, description = "organization"), ("name" = String, Path, description = "plugin"),
           ("version" = String, Path, description = "version")),
    responses((status = 200, body = Release), (status = 404, body = ErrorBody)))]
async fn show_release(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, name, version)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<Release>> {
    caller.require(Permission::Read, &org)?;
    Ok(Json(
        releases::show(&state.releases(), &org, &name, &version).await?,
    ))
}

/// `?status=&limit=&cursor=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReleaseQuery {
    /// Only releases in this status.
    pub status: Option<Status>,
    /// Page size, 1 to 100.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// From the previous page (`name@version`).
    #[param(
        pattern = r"^[^@\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb]*@[^\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb]*$"
    )]
    pub cursor: Option<String>,
}

/// The org's releases, by plugin name and version; `?status=pending` for the review queue.
#[utoipa::path(get, path = "/v1/orgs/{org}/releases", tag = "releases",
    params(("org" = String, Path, description = "organization"), ReleaseQuery),
    responses((status = 200, body = ReleasePage), (status = 400, body = ErrorBody)))]
async fn list_releases(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
    ApiQuery(query): ApiQuery<ReleaseQuery>,
) -> ApiResult<Json<ReleasePage>> {
    caller.require(Permission::Read, &org)?;
    let limit = page_size(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let page = releases::list(
        &state.db,
        &org,
        query.status,
        query.cursor.as_deref(),
        limit,
    )
    .await?;
    Ok(Json(page))
}

/// An approval to record.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Approve {
    /// DSSE envelope of the approval statement, signed by an admin key of the org.
    #[schema(value_type = Object)]
    pub envelope: Envelope,
}

/// Records an approval. The release becomes approved once approvals from the
/// required number of distinct admin keys agree on the same grants.
#[utoipa::path(post, path = "/v1/plugins/{org}/{name}/releases/{version}/approve", tag = "releases",
    request_body = Approve,
    params(("org" = String, Path, description = "organization"), ("name" = String, Path, description = "plugin"),
           ("version" = String, Path, description = "version")),
    responses((status = 200, body = Release), (status = 403, body = ErrorBody),
               (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn approve(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, name, version)): ApiPath<(String, String, String)>,
    body: UnreadJson<Approve>,
) -> ApiResult<Json<Release>> {
    caller.require(Permission::Administer, &org)?;
    let body = body.read(&caller).await?;
    let release = releases::approve(
        &state.releases(),
        &caller,
        &org,
        &name,
        &version,
        &body.envelope,
    )
    .await?;
    Ok(Json(release))
}

/// Why a release is rejected or yanked.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// The reason, for the publisher and the audit log.
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb]*[^\s\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb][^\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb]*$",
        max_length = 2000
    )]
    pub reason: String,
}

/// Rejects a pending release.
#[utoipa::path(post, path = "/v1/plugins/{org}/{name}/releases/{version}/reject", tag = "releases",
    request_body = Reason,
    params(("org" = String, Path, description = "organization"), ("name" = String, Path, description = "plugin"),
           ("version" = String, Path, description = "version")),
    responses((status = 200, body = Release), (status = 409, body = ErrorBody)))]
async fn reject(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, name, version)): ApiPath<(String, String, String)>,
    body: UnreadJson<Reason>,
) -> ApiResult<Json<Release>> {
    caller.require(Permission::Administer, &org)?;
    let body = body.read(&caller).await?;
    let release = releases::reject(
        &state.releases(),
        &caller,
        &org,
        &name,
        &version,
        &body.reason,
    )
    .await?;
    Ok(Json(release))
}

/// Yanks a release: it never runs again.
#[utoipa::path(post, path = "/v1/plugins/{org}/{name}/releases/{version}/yank", tag = "releases",
    request_body = Reason,
    params(("org" = String, Path, description = "organization"), ("name" = String, Path, description = "plugin"),
           ("version" = String, Path, description = "version")),
    responses((status = 200, body = Release), (status = 409, body = ErrorBody)))]
async fn yank(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, name, version)): ApiPath<(String, String, String)>,
    body: UnreadJson<Reason>,
) -> ApiResult<Json<Release>> {
    caller.require(Permission::Administer, &org)?;
    let body = body.read(&caller).await?;
    let release = releases::yank(
        &state.releases(),
        &caller,
        &org,
        &name,
        &version,
        &body.reason,
    )
    .await?;
    state
        .metrics
        .forget_release(&format!("{org}/{name}"), &release.version);
    Ok(Json(release))
}
