//! `/v1/orgs/{org}/plugins` and `/v1/plugins/{org}/{name}[/config]`: the
//! catalog listed and searched, one plugin's detail, its configuration.

use super::{
    ApiPath, ApiQuery, ApiResult, AppState, DEFAULT_PAGE, ErrorBody, MAX_PAGE, UnreadJson,
    page_size,
};
use crate::domain::catalog::{self, PluginConfig, PluginDetail, PluginPage};
use crate::domain::tokens::{Caller, Permission};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_plugins))
        .routes(routes!(plugin_detail))
        .routes(routes!(get_config, put_config))
}

/// `?q=&limit=&cursor=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CatalogQuery {
    /// Text to find in names and descriptions (case-insensitive). A text of
    /// one or two characters, or one the text index cannot serve quickly
    /// (on SQLite: more than 5,000 candidates; on PostgreSQL: its plan
    /// takes more than 50 ms), reads at most 5,000 plugins per page: follow
    /// `next_cursor` to the end.
    #[param(
        pattern = r"^[^\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb]*$",
        max_length = 200
    )]
    pub q: Option<String>,
    /// Page size, 1 to 100.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// From the previous page.
    #[param(
        pattern = r"^[^\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb]*$"
    )]
    pub cursor: Option<String>,
}

/// Lists or searches the org's plugins.
#[utoipa::path(get, path = "/v1/orgs/{org}/plugins", tag = "catalog",
    params(("org" = String, Path, description = "organization"), CatalogQuery),
    responses((status = 200, body = PluginPage), (status = 400, body = ErrorBody)))]
async fn list_plugins(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
    ApiQuery(query): ApiQuery<CatalogQuery>,
) -> ApiResult<Json<PluginPage>> {
    caller.require(Permission::Read, &org)?;
    let limit = page_size(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let page = catalog::list(
        &state.db,
        &org,
        query.q.as_deref().unwrap_or(""),
        query.cursor.as_deref(),
        limit,
    )
    .await?;
    Ok(Json(page))
}

/// One plugin.
#[utoipa::path(get, path = "/v1/plugins/{org}/{name}", tag = "catalog",
    params(("org" = String, Path, description = "organization"), ("name" = String, Path, description = "plugin")),
    responses((status = 200, body = PluginDetail), (status = 404, body = ErrorBody)))]
async fn plugin_detail(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, name)): ApiPath<(String, String)>,
) -> ApiResult<Json<PluginDetail>> {
    caller.require(Permission::Read, &org)?;
    Ok(Json(catalog::detail(&state.db, &org, &name).await?))
}

/// The configuration values of a plugin. Admins only: values may be sensitive.
#[utoipa::path(get, path = "/v1/plugins/{org}/{name}/config", tag = "catalog",
    params(("org" = String, Path, description = "organization"), ("name" = String, Path, description = "plugin")),
    responses((status = 200, body = PluginConfig), (status = 404, body = ErrorBody)))]
async fn get_config(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, name)): ApiPath<(String, String)>,
) -> ApiResult<Json<PluginConfig>> {
    caller.require(Permission::Administer, &org)?;
    Ok(Json(catalog::config(&state.db, &org, &name).await?))
}

/// Replaces the configuration values of a plugin.
#[utoipa::path(put, path = "/v1/plugins/{org}/{name}/config", tag = "catalog", request_body = PluginConfig,
    params(("org" = String, Path, description = "organization"), ("name" = String, Path, description = "plugin")),
    responses((status = 200, body = PluginConfig), (status = 400, body = ErrorBody)))]
async fn put_config(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, name)): ApiPath<(String, String)>,
    body: UnreadJson<PluginConfig>,
) -> ApiResult<Json<PluginConfig>> {
    caller.require(Permission::Administer, &org)?;
    let body = body.read(&caller).await?;
    catalog::set_config(&state.db, &org, &name, &caller.actor(), &body).await?;
    Ok(Json(body))
}
