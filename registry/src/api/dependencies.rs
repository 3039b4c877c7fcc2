//! `/v1/plugins/{org}/{name}/resolve`: the releases a plugin's dependencies
//! resolve to now, or why none do.

use super::{ApiPath, ApiQuery, ApiResult, AppState, ErrorBody};
use crate::domain::dependencies::{self, Resolution};
use crate::domain::tokens::{Caller, Permission};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(resolve))
}

/// `?version=REQ`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ResolveQuery {
    /// A semver requirement on the plugin itself, e.g. `^1.2` (any version
    /// without one).
    #[param(
        pattern = r"^(\*|(=|>=|<=|>|<|~|\^)?(0|[1-9][0-9]{0,8})(\.(0|[1-9][0-9]{0,8})(\.(0|[1-9][0-9]{0,8})(-(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\.(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?)?)?(, (=|>=|<=|>|<|~|\^)?(0|[1-9][0-9]{0,8})(\.(0|[1-9][0-9]{0,8})(\.(0|[1-9][0-9]{0,8})(-(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\.(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?)?)?)*)$"
    )]
    pub version: Option<String>,
}

/// Resolves a plugin and its dependencies, transitively, among the org's
/// approved and non-yanked releases: the newest versions satisfying every
/// requirement, one per plugin, with their digests and who depends on whom.
/// 409 `unresolvable` when none exist, with the explanation in
/// `details.explanation`.
#[utoipa::path(get, path = "/v1/plugins/{org}/{name}/resolve", tag = "catalog",
    params(("org" = String, Path, description = "organization"), ("name" = String, Path, description = "plugin"), ResolveQuery),
    responses((status = 200, body = Resolution), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn resolve(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, name)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<ResolveQuery>,
) -> ApiResult<Json<Resolution>> {
    caller.require(Permission::Read, &org)?;
    let resolution = dependencies::resolve_dependencies(
        &state.db,
        &state.solver,
        &org,
        &name,
        query.version.as_deref(),
    )
    .await?;
    Ok(Json(resolution))
}
