//! The catalog: plugins listed and searched by name and description, a
//! plugin's detail (versions, statuses, the functions of its newest approved
//! release), and the admin-set configuration values of each plugin.

use super::resolution::newest_by_version;
use super::search::{Found, Row};
use super::status::Status;
use crate::audit::{Action, Change};
use crate::db::{Db, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use warden_host::FunctionInfo;

/// Most configuration values per plugin.
pub const MAX_CONFIG_ENTRIES: usize = 100;
/// Largest configuration value.
pub const MAX_CONFIG_VALUE_BYTES: usize = 16 << 10;
/// Longest configuration key.
pub const MAX_CONFIG_KEY_CHARS: usize = 128;
/// Longest search text.
pub const MAX_SEARCH_CHARS: usize = 200;

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
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginPage {
    /// The plugins, by name.
    pub items: Vec<PluginSummary>,
    /// Pass as `cursor` for the next page; absent on the last page. A
    /// search for one or two characters (or for a longer text the text
    /// index cannot serve quickly) reads at most 5,000 plugins per page, so
    /// its pages may hold fewer items than the limit, even none, before the
    /// last.
    pub next_cursor: Option<String>,
}

/// One version in a plugin's history.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionInfo {
    /// Version.
    pub version: String,
    /// Status.
    pub status: Status,
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
    pub functions: Vec<FunctionInfo>,
}

/// A plugin's configuration values (what its `config` import reads).
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Name to value. A name has 1 to 128 characters, none of them control
    /// or invisible ones.
    #[schema(schema_with = config_values_schema)]
    pub values: BTreeMap<String, String>,
}

/// The schema of [`PluginConfig::values`]: string values under names the
/// server accepts (see [`check_config`]).
fn config_values_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    let names = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_CONFIG_KEY_CHARS))
        .pattern(Some(r"^[^\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb]+$"))
        .build();
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(names))
        .additional_properties(Some(AdditionalProperties::RefOr(
            ObjectBuilder::new()
                .schema_type(Type::String)
                // Bytes, as the server counts them: 4 per character at most.
                .max_length(Some(MAX_CONFIG_VALUE_BYTES / 4))
                .build()
                .into(),
        )))
        .max_properties(Some(MAX_CONFIG_ENTRIES))
        .build()
}

/// Why a catalog request failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The search text is too long.
    #[error("search text has at most {MAX_SEARCH_CHARS} characters")]
    SearchTooLong,
    /// The search text or cursor holds a control character (a NUL, say),
    /// which no name or description holds.
    #[error("the {0} holds a control character")]
    ControlCharacter(&'static str),
    /// No such plugin.
    #[error("no plugin {org}/{name}")]
    NoPlugin {
        /// The org.
        org: String,
        /// The plugin.
        name: String,
    },
    /// Too many values, or a value too large.
    #[error("{0}")]
    ConfigTooLarge(String),
    /// A key is empty, too long or has control characters.
    #[error(
        "configuration key {0:?}: 1 to {MAX_CONFIG_KEY_CHARS} characters, no control characters"
    )]
    InvalidConfigKey(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// A stored value the control plane wrote is unreadable.
    #[error("corrupt catalog row: {0}")]
    Corrupt(String),
}

fn corrupt(what: impl std::fmt::Display) -> CatalogError {
    CatalogError::Corrupt(what.to_string())
}

/// A page of the org's plugins by name after `cursor`, those whose name or
/// description contains `search` (case-insensitive) if it is not empty.
pub async fn list(
    db: &Db,
    org: &str,
    search: &str,
    cursor: Option<&str>,
    limit: i64,
) -> Result<PluginPage, CatalogError> {
    let search = search.trim();
    if search.chars().count() > MAX_SEARCH_CHARS {
        return Err(CatalogError::SearchTooLong);
    }
    let cursor = cursor.unwrap_or("");
    if search.chars().any(char::is_control) {
        return Err(CatalogError::ControlCharacter("search text"));
    }
    if cursor.chars().any(char::is_control) {
        return Err(CatalogError::ControlCharacter("cursor"));
    }
    let found: Found = if search.is_empty() {
        sqlx::query_as::<_, Row>(
            "SELECT name, description, updated_at FROM plugins
             WHERE org = $1 AND name > $2 ORDER BY name LIMIT $3",
        )
        .bind(org)
        .bind(cursor)
        .bind(limit + 1)
        .fetch_all(db.pool())
        .await?
        .into()
    } else {
        super::search::matching(db, org, search, cursor, limit + 1).await?
    };
    let Found { rows, read_up_to } = found;
    let more = rows.len() as i64 > limit;
    let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
    // The page is a contiguous range of names: one query finds the approved
    // versions of all its plugins.
    let mut approved_versions: HashMap<String, Vec<String>> = HashMap::new();
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        let approved: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, version FROM releases
             WHERE org = $1 AND status = $2 AND name >= $3 AND name <= $4",
        )
        .bind(org)
        .bind(Status::Approved.as_str())
        .bind(&first.0)
        .bind(&last.0)
        .fetch_all(db.pool())
        .await?;
        for (name, version) in approved {
            approved_versions.entry(name).or_default().push(version);
        }
    }
    let next_cursor = if more {
        rows.last().map(|(name, _, _)| name.clone())
    } else {
        read_up_to
    };
    let items = rows
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
    Ok(PluginPage { items, next_cursor })
}

/// One plugin: its versions newest first, and the functions of its newest
/// approved release (or, without one, its newest release).
pub async fn detail(db: &Db, org: &str, name: &str) -> Result<PluginDetail, CatalogError> {
    let (description,): (String,) =
        sqlx::query_as("SELECT description FROM plugins WHERE org = $1 AND name = $2")
            .bind(org)
            .bind(name)
            .fetch_optional(db.pool())
            .await?
            .ok_or_else(|| no_plugin(org, name))?;
    let rows: Vec<(String, String, i64, String)> = sqlx::query_as(
        "SELECT version, status, created_at, functions FROM releases WHERE org = $1 AND name = $2",
    )
    .bind(org)
    .bind(name)
    .fetch_all(db.pool())
    .await?;
    let mut versions = Vec::with_capacity(rows.len());
    let mut functions_by_version = HashMap::new();
    for (version, status, created_at, functions) in rows {
        versions.push(VersionInfo {
            version: version.clone(),
            status: Status::parse(&status).map_err(corrupt)?,
            created_at,
        });
        functions_by_version.insert(version, functions);
    }
    versions.sort_by(|a, b| {
        let parse = |v: &str| semver::Version::parse(v).ok();
        parse(&b.version).cmp(&parse(&a.version))
    });
    let latest_approved = newest_by_version(
        versions.iter().filter(|v| v.status == Status::Approved),
        |v| v.version.as_str(),
        |_| true,
    )
    .map(|v| v.version.clone());
    let functions_of = latest_approved
        .clone()
        .or_else(|| versions.first().map(|v| v.version.clone()));
    let functions = match functions_of
        .as_ref()
        .and_then(|v| functions_by_version.get(v))
    {
        Some(text) => serde_json::from_str(text).map_err(corrupt)?,
        None => Vec::new(),
    };
    Ok(PluginDetail {
        name: format!("{org}/{name}"),
        description,
        versions,
        latest_approved,
        functions_of,
        functions,
    })
}

fn no_plugin(org: &str, name: &str) -> CatalogError {
    CatalogError::NoPlugin {
        org: org.to_owned(),
        name: name.to_owned(),
    }
}

/// The configuration values of a plugin.
pub async fn config(db: &Db, org: &str, name: &str) -> Result<PluginConfig, CatalogError> {
    let (config,): (String,) =
        sqlx::query_as("SELECT config FROM plugins WHERE org = $1 AND name = $2")
            .bind(org)
            .bind(name)
            .fetch_optional(db.pool())
            .await?
            .ok_or_else(|| no_plugin(org, name))?;
    let values = serde_json::from_str(&config).map_err(corrupt)?;
    Ok(PluginConfig { values })
}

/// Checks configuration values against the limits: at most
/// [`MAX_CONFIG_ENTRIES`], keys of 1 to [`MAX_CONFIG_KEY_CHARS`] characters
/// without control characters, values of at most [`MAX_CONFIG_VALUE_BYTES`].
pub fn check_config(config: &PluginConfig) -> Result<(), CatalogError> {
    if config.values.len() > MAX_CONFIG_ENTRIES {
        return Err(CatalogError::ConfigTooLarge(format!(
            "at most {MAX_CONFIG_ENTRIES} configuration values, got {}",
            config.values.len()
        )));
    }
    for (key, value) in &config.values {
        if key.is_empty()
            || key.chars().count() > MAX_CONFIG_KEY_CHARS
            || !super::names::is_plain_text(key)
        {
            return Err(CatalogError::InvalidConfigKey(key.clone()));
        }
        if value.len() > MAX_CONFIG_VALUE_BYTES {
            return Err(CatalogError::ConfigTooLarge(format!(
                "configuration value {key:?} has {} bytes, at most {MAX_CONFIG_VALUE_BYTES}",
                value.len()
            )));
        }
    }
    Ok(())
}

/// Replaces the configuration values of a plugin. The audit log records
/// which keys changed, never the values (they can be secrets).
pub async fn set_config(
    db: &Db,
    org: &str,
    name: &str,
    actor: &str,
    config: &PluginConfig,
) -> Result<(), CatalogError> {
    check_config(config)?;
    let mut change = Change::begin(db, org).await?;
    let updated =
        sqlx::query("UPDATE plugins SET config = $1, updated_at = $2 WHERE org = $3 AND name = $4")
            .bind(serde_json::to_string(&config.values).map_err(corrupt)?)
            .bind(now_ms())
            .bind(org)
            .bind(name)
            .execute(change.tx())
            .await?;
    if updated.rows_affected() == 0 {
        return Err(no_plugin(org, name));
    }
    change
        .commit(
            actor,
            Action::PluginConfig,
            &format!("{org}/{name}"),
            json!({ "keys": config.values.keys().collect::<Vec<_>>() }),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(entries: impl IntoIterator<Item = (String, String)>) -> PluginConfig {
        PluginConfig {
            values: entries.into_iter().collect(),
        }
    }

    #[test]
    fn configuration_limits_hold_on_both_sides() {
        let many = |n: usize| config((0..n).map(|i| (format!("k{i}"), "v".to_owned())));
        assert!(check_config(&many(MAX_CONFIG_ENTRIES)).is_ok());
        assert!(matches!(
            check_config(&many(MAX_CONFIG_ENTRIES + 1)),
            Err(CatalogError::ConfigTooLarge(_))
        ));
        let value = |n: usize| config([("k".to_owned(), "x".repeat(n))]);
        assert!(check_config(&value(MAX_CONFIG_VALUE_BYTES)).is_ok());
        assert!(matches!(
            check_config(&value(MAX_CONFIG_VALUE_BYTES + 1)),
            Err(CatalogError::ConfigTooLarge(_))
        ));
        let key = |k: String| config([(k, "v".to_owned())]);
        assert!(check_config(&key("k".repeat(MAX_CONFIG_KEY_CHARS))).is_ok());
        for bad in [
            "".to_owned(),
            "k".repeat(MAX_CONFIG_KEY_CHARS + 1),
            "a\nb".to_owned(),
        ] {
            assert!(matches!(
                check_config(&key(bad)),
                Err(CatalogError::InvalidConfigKey(_))
            ));
        }
    }
}
