//! `/v1/whoami` and `/v1/orgs`: who the caller is, creating organizations
//! (operator admins only), reading one.

use super::{ApiPath, ApiResult, AppState, ErrorBody, UnreadJson};
use crate::domain::orgs::{self, CreatedOrg, Org};
use crate::domain::tokens::{Caller, Permission, Role};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(whoami))
        .routes(routes!(create_org))
        .routes(routes!(get_org))
}

/// The caller, as the server sees it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// Token id.
    pub token_id: String,
    /// Organization.
    pub org: String,
    /// Role.
    pub role: Role,
    /// Whether the org may create other organizations.
    pub operator: bool,
}

/// Who the presented token is.
#[utoipa::path(get, path = "/v1/whoami", tag = "orgs",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
async fn whoami(caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        token_id: caller.token_id,
        org: caller.org,
        role: caller.role,
        operator: caller.operator,
    })
}

/// A new organization.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    /// Its name: lowercase letters, digits, `.`, `_`, `-`.
    #[schema(
        pattern = r"^[a-z0-9]+([._-][a-z0-9]+)*$",
        min_length = 1,
        max_length = 64
    )]
    pub name: String,
}

/// Creates an organization with a first admin token. Operator admins only.
#[utoipa::path(post, path = "/v1/orgs", tag = "orgs", request_body = CreateOrg,
    responses((status = 201, body = CreatedOrg), (status = 403, body = ErrorBody),
               (status = 409, body = ErrorBody)))]
async fn create_org(
    caller: Caller,
    State(state): State<AppState>,
    body: UnreadJson<CreateOrg>,
) -> ApiResult<(StatusCode, Json<CreatedOrg>)> {
    caller.require_operator()?;
    let body = body.read(&caller).await?;
    let created = orgs::create(&state.db, &body.name, &caller.actor()).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// One organization.
#[utoipa::path(get, path = "/v1/orgs/{org}", tag = "orgs",
    params(("org" = String, Path, description = "organization")),
    responses((status = 200, body = Org), (status = 403, body = ErrorBody)))]
async fn get_org(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
) -> ApiResult<Json<Org>> {
    caller.require(Permission::Read, &org)?;
    Ok(Json(
        orgs::get(&state.db, &org, state.approvals_required).await?,
    ))
}
