//! The catalog: plugins listed and searched (name, description), plugin detail
//! with versions, statuses, functions and schemas, and the admin-set
//! configuration values of each plugin.

use super::auth::{Caller, Permission};
use super::releases::load_release;
use super::{
    ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, AppState, DEFAULT_PAGE, MAX_PAGE, page_size,
};
use crate::audit::Change;
use crate::db::now_ms;
use crate::domain::resolution::newest_by_version;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json_, json};
use std::collections::BTreeMap;

/// Most configuration values per plugin.
pub const MAX_CONFIG_ENTRIES: usize = 100;
/// Largest configuration value.
pub const MAX_CONFIG_VALUE_BYTES: usize = 16 << 10;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/orgs/{org}/plugins", get(list_plugins))
        .route("/v1/plugins/{org}/{name}", get(plugin_detail))
        .route(
            "/v1/plugins/{org}/{name}/config",
            get(get_config).put(put_config),
        )
}

/// `?q=&limit=&cursor=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CatalogQuery {
    /// Words to find in names and descriptions (case-insensitive).
    pub q: Option<String>,
    /// Page size, 1 to 100.
    pub limit: Option<i64>,
    /// From the previous page.
    pub cursor: Option<String>,
}

/// A plugin in the catalog.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginSummary {
    /// `org/name`.
    pub name: String,
    /// From its newest release.
    pub description: String,
    /// Newest approved version, if any.
    pub latest_approved: Option<String>,
    /// Unix milliseconds of the last publish.
    pub updated_at: i64,
}

/// A page of plugins.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginPage {
    /// The plugins, by name.
    pub items: Vec<PluginSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn like_pattern(q: &str) -> String {
    let escaped = q
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// Lists or searches the org's plugins.
#[utoipa::path(get, path = "/v1/orgs/{org}/plugins", tag = "catalog",
    params(("org" = String, Path, description = "organization"), CatalogQuery),
    responses((status = 200, body = PluginPage), (status = 400, body = super::ErrorBody)))]
async fn list_plugins(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
    ApiQuery(query): ApiQuery<CatalogQuery>,
) -> ApiResult<Json<PluginPage>> {
    caller.require(Permission::Read, &org)?;
    let limit = page_size(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let q = query.q.as_deref().map(str::trim).unwrap_or("");
    if q.len() > 200 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "search text has at most 200 characters",
        ));
    }
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT name, description, updated_at FROM plugins
         WHERE org = $1 AND name > $2
           AND ($3 = '' OR LOWER(name) LIKE $4 ESCAPE '\\' OR LOWER(description) LIKE $4 ESCAPE '\\')
         ORDER BY name LIMIT $5",
    )
    .bind(&org)
    .bind(query.cursor.as_deref().unwrap_or(""))
    .bind(q)
    .bind(like_pattern(q))
    .bind(limit + 1)
    .fetch_all(state.db.pool())
    .await?;
    let more = rows.len() as i64 > limit;
    let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
    // The page is a contiguous range of names: one query finds the approved
    // versions of all its plugins.
    let mut approved_versions: std::collections::HashMap<String, Vec<String>> =
        std::collections::HashMap::new();
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        let approved: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, version FROM releases
             WHERE org = $1 AND status = 'approved' AND name >= $2 AND name <= $3",
        )
        .bind(&org)
        .bind(&first.0)
        .bind(&last.0)
        .fetch_all(state.db.pool())
        .await?;
        for (name, version) in approved {
            approved_versions.entry(name).or_default().push(version);
        }
    }
    let items: Vec<PluginSummary> = rows
        .into_iter()
        .map(|(name, description, updated_at)| PluginSummary {
            latest_approved: approved_versions
                .remove(&name)
                .and_then(|versions| newest_by_version(versions, String::as_str, |_| true)),
            name: format!("{org}/{name}"),
            description,
            updated_at,
        })
        .collect();
    let next_cursor = more
        .then(|| {
            items
                .last()
                .map(|p| p.name.split_once('/').map_or("", |(_, n)| n).to_owned())
        })
        .flatten();
    Ok(Json(PluginPage { items, next_cursor }))
}

/// The newest version of a plugin by semver, approved ones only if asked.
async fn newest(
    state: &AppState,
    org: &str,
    name: &str,
    approved_only: bool,
) -> ApiResult<Option<String>> {
    let versions: Vec<(String,)> = sqlx::query_as(
        "SELECT version FROM releases WHERE org = $1 AND name = $2 AND ($3 = 0 OR status = 'approved')",
    )
    .bind(org)
    .bind(name)
    .bind(i64::from(approved_only))
    .fetch_all(state.db.pool())
    .await?;
    Ok(newest_by_version(versions, |(v,)| v.as_str(), |_| true).map(|(v,)| v))
}

/// One version in a plugin's history.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionInfo {
    /// Version.
    pub version: String,
    /// Status.
    pub status: super::releases::Status,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A plugin with its versions and the functions of its newest approved (or,
/// without one, newest) release.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginDetail {
    /// `org/name`.
    pub name: String,
    /// Description.
    pub description: String,
    /// All versions, newest first.
    pub versions: Vec<VersionInfo>,
    /// Newest approved version.
    pub latest_approved: Option<String>,
    /// The version whose functions are shown.
    pub functions_of: Option<String>,
    /// Functions with WIT signatures and JSON Schemas.
    #[schema(value_type = Vec<Object>)]
    pub functions: Json_,
}

/// One plugin.
#[utoipa::path(get, path = "/v1/plugins/{org}/{name}", tag = "catalog",
    params(("org" = String, Path, description = "organization"), ("name" = String, Path, description = "plugin")),
    responses((status = 200, body = PluginDetail), (status = 404, body = super::ErrorBody)))]
async fn plugin_detail(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, name)): ApiPath<(String, String)>,
) -> ApiResult<Json<PluginDetail>> {
    caller.require(Permission::Read, &org)?;
    let (description,): (String,) =
        sqlx::query_as("SELECT description FROM plugins WHERE org = $1 AND name = $2")
            .bind(&org)
            .bind(&name)
            .fetch_optional(state.db.pool())
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no plugin {org}/{name}")))?;
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT version, status, created_at FROM releases WHERE org = $1 AND name = $2",
    )
    .bind(&org)
    .bind(&name)
    .fetch_all(state.db.pool())
    .await?;
    let mut versions = rows
        .into_iter()
        .map(|(version, status, created_at)| {
            let status =
                serde_json::from_value(Json_::String(status)).map_err(ApiError::internal)?;
            Ok(VersionInfo {
                version,
                status,
                created_at,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    versions.sort_by(|a, b| {
        let parse = |v: &str| semver::Version::parse(v).ok();
        parse(&b.version).cmp(&parse(&a.version))
    });
    let latest_approved = newest(&state, &org, &name, true).await?;
    let functions_of = match &latest_approved {
        Some(v) => Some(v.clone()),
        None => versions.first().map(|v| v.version.clone()),
    };
    let functions = match &functions_of {
        Some(version) => load_release(&state, &org, &name, version).await?.functions,
        None => Json_::Array(Vec::new()),
    };
    Ok(Json(PluginDetail {
        name: format!("{org}/{name}"),
        description,
        versions,
        latest_approved,
        functions_of,
        functions,
    }))
}

/// A plugin's configuration values (what its `config` import reads).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Name to value.
    pub values: BTreeMap<String, String>,
}

async fn plugin_exists(state: &AppState, org: &str, name: &str) -> ApiResult<()> {
    let found: Option<(String,)> =
        sqlx::query_as("SELECT name FROM plugins WHERE org = $1 AND name = $2")
            .bind(org)
            .bind(name)
            .fetch_optional(state.db.pool())
            .await?;
    found
        .map(drop)
        .ok_or_else(|| ApiError::not_found(format!("no plugin {org}/{name}")))
}

/// The configuration values of a plugin. Admins only: values may be sensitive.
#[utoipa::path(get, path = "/v1/plugins/{org}/{name}/config", tag = "catalog",
    params(("org" = String, Path, description = "organization"), ("name" = String, Path, description = "plugin")),
    responses((status = 200, body = PluginConfig), (status = 404, body = super::ErrorBody)))]
async fn get_config(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, name)): ApiPath<(String, String)>,
) -> ApiResult<Json<PluginConfig>> {
    caller.require(Permission::Administer, &org)?;
    let (config,): (String,) =
        sqlx::query_as("SELECT config FROM plugins WHERE org = $1 AND name = $2")
            .bind(&org)
            .bind(&name)
            .fetch_optional(state.db.pool())
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no plugin {org}/{name}")))?;
    let values = serde_json::from_str(&config).map_err(ApiError::internal)?;
    Ok(Json(PluginConfig { values }))
}

/// Replaces the configuration values of a plugin.
#[utoipa::path(put, path = "/v1/plugins/{org}/{name}/config", tag = "catalog", request_body = PluginConfig,
    params(("org" = String, Path, description = "organization"), ("name" = String, Path, description = "plugin")),
    responses((status = 200, body = PluginConfig), (status = 400, body = super::ErrorBody)))]
async fn put_config(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, name)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<PluginConfig>,
) -> ApiResult<Json<PluginConfig>> {
    caller.require(Permission::Administer, &org)?;
    if body.values.len() > MAX_CONFIG_ENTRIES {
        return Err(ApiError::bad_request(
            "config_too_large",
            format!(
                "at most {MAX_CONFIG_ENTRIES} configuration values, got {}",
                body.values.len()
            ),
        ));
    }
    for (key, value) in &body.values {
        if key.is_empty() || key.len() > 128 || key.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                "invalid_config_key",
                format!("configuration key {key:?}: 1 to 128 characters, no control characters"),
            ));
        }
        if value.len() > MAX_CONFIG_VALUE_BYTES {
            return Err(ApiError::bad_request(
                "config_too_large",
                format!(
                    "configuration value {key:?} has {} bytes, at most {MAX_CONFIG_VALUE_BYTES}",
                    value.len()
                ),
            ));
        }
    }
    plugin_exists(&state, &org, &name).await?;
    let mut change = Change::begin(state.db.pool(), &org).await?;
    sqlx::query("UPDATE plugins SET config = $1, updated_at = $2 WHERE org = $3 AND name = $4")
        .bind(serde_json::to_string(&body.values).map_err(ApiError::internal)?)
        .bind(now_ms())
        .bind(&org)
        .bind(&name)
        .execute(change.tx())
        .await?;
    // Values can be secrets: the audit log records which keys changed, not values.
    change
        .commit(
            &caller.actor(),
            "plugin.config",
            &format!("{org}/{name}"),
            json!({ "keys": body.values.keys().collect::<Vec<_>>() }),
        )
        .await?;
    Ok(Json(body))
}
