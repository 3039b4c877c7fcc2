//! Plugin secrets (`warden:plugin/secrets`): set, listed and removed by
//! admins, never shown. Each value is encrypted under the server's key
//! ([`SecretsKey`], read from a file the database never holds); the
//! database keeps the ciphertext, who set it and when. The audit log
//! records the secret's name and who set or removed it, never a value.
//!
//! At start, [`check_key`] refuses a key that cannot open the stored
//! secrets, and [`rotate`] re-encrypts every secret from the previous key
//! to the current one in one transaction.

pub mod cipher;
mod store;

pub use cipher::{KeyError, OpenError, Sealed, SecretsKey};
pub use store::SqlSecretStore;

use crate::audit::{Action, Change};
use crate::db::{Db, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::json;
use warden_host::{MAX_SECRET_NAME, valid_secret_name};

/// The largest value of one secret, in bytes.
pub const MAX_SECRET_VALUE_BYTES: usize = 64 << 10;

/// The most secrets one plugin may have.
pub const MAX_SECRETS_PER_PLUGIN: i64 = 100;

/// Why a secret could not be set, listed or removed.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The name is not one a grant can name.
    #[error(
        "secret name {0:?}: 1 to {MAX_SECRET_NAME} ASCII letters, digits and _, not starting with a digit"
    )]
    InvalidName(String),
    /// The value is too large, or the plugin has too many.
    #[error("{0}")]
    TooLarge(String),
    /// No such plugin.
    #[error("no plugin {0}")]
    NoPlugin(String),
    /// No such secret.
    #[error("plugin {plugin} has no secret {name}")]
    NoSecret {
        /// `org/name`.
        plugin: String,
        /// The secret.
        name: String,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// One secret as listed: never its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecretInfo {
    /// The name a grant `secret:NAME` names.
    pub name: String,
    /// When its value was last set (milliseconds since the Unix epoch).
    pub set_at: i64,
    /// Who set it (the token's name and id).
    pub set_by: String,
}

/// A plugin's secrets.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecretList {
    /// By name.
    pub secrets: Vec<SecretInfo>,
}

async fn plugin_exists(
    conn: &mut sqlx::AnyConnection,
    org: &str,
    plugin: &str,
) -> Result<(), SecretError> {
    let found: Option<(String,)> =
        sqlx::query_as("SELECT name FROM plugins WHERE org = $1 AND name = $2")
            .bind(org)
            .bind(plugin)
            .fetch_optional(&mut *conn)
            .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(SecretError::NoPlugin(format!("{org}/{plugin}"))),
    }
}

/// Sets secret `name` of plugin `org/plugin` to `value`, encrypted under
/// `key`, and audits who did (not the value).
pub async fn set(
    db: &Db,
    key: &SecretsKey,
    org: &str,
    plugin: &str,
    name: &str,
    value: &str,
    actor: &str,
) -> Result<SecretInfo, SecretError> {
    if !valid_secret_name(name) {
        return Err(SecretError::InvalidName(name.to_owned()));
    }
    if value.len() > MAX_SECRET_VALUE_BYTES {
        return Err(SecretError::TooLarge(format!(
            "a secret's value has at most {MAX_SECRET_VALUE_BYTES} bytes, this one {}",
            value.len()
        )));
    }
    let sealed = key.seal(org, plugin, name, value);
    let set_at = now_ms();
    let mut change = Change::begin(db, org).await?;
    plugin_exists(change.tx(), org, plugin).await?;
    let (held,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM secrets WHERE org = $1 AND plugin = $2 AND name <> $3",
    )
    .bind(org)
    .bind(plugin)
    .bind(name)
    .fetch_one(change.tx())
    .await?;
    if held >= MAX_SECRETS_PER_PLUGIN {
        return Err(SecretError::TooLarge(format!(
            "plugin {org}/{plugin} has {held} secrets, the most a plugin may have is {MAX_SECRETS_PER_PLUGIN}"
        )));
    }
    write_sealed(change.tx(), org, plugin, name, &sealed, set_at, actor).await?;
    change
        .commit(
            actor,
            Action::SecretSet,
            &format!("{org}/{plugin}"),
            json!({ "name": name }),
        )
        .await?;
    Ok(SecretInfo {
        name: name.to_owned(),
        set_at,
        set_by: actor.to_owned(),
    })
}

/// Stores `value` as secret `name` of `org/plugin`, encrypted under `key`,
/// within a change the caller commits (and audits): for the server's own
/// secrets (a webhook's signing secret), kept like plugins' and rotated
/// with them.
pub(crate) async fn store_in(
    tx: &mut sqlx::AnyConnection,
    key: &SecretsKey,
    org: &str,
    plugin: &str,
    name: &str,
    value: &str,
    actor: &str,
) -> Result<(), sqlx::Error> {
    let sealed = key.seal(org, plugin, name, value);
    write_sealed(tx, org, plugin, name, &sealed, now_ms(), actor).await
}

/// Inserts or replaces the row of secret `name` of `org/plugin`.
async fn write_sealed(
    tx: &mut sqlx::AnyConnection,
    org: &str,
    plugin: &str,
    name: &str,
    sealed: &Sealed,
    set_at: i64,
    actor: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO secrets (org, plugin, name, key_id, nonce, ciphertext, set_at, set_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (org, plugin, name) DO UPDATE SET key_id = excluded.key_id,
             nonce = excluded.nonce, ciphertext = excluded.ciphertext,
             set_at = excluded.set_at, set_by = excluded.set_by",
    )
    .bind(org)
    .bind(plugin)
    .bind(name)
    .bind(&sealed.key_id)
    .bind(&sealed.nonce)
    .bind(&sealed.ciphertext)
    .bind(set_at)
    .bind(actor)
    .execute(tx)
    .await?;
    Ok(())
}

/// [`value`], read within a change.
pub(crate) async fn value_in(
    tx: &mut sqlx::AnyConnection,
    key: &SecretsKey,
    org: &str,
    plugin: &str,
    name: &str,
) -> Result<Option<Result<String, OpenError>>, sqlx::Error> {
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT key_id, nonce, ciphertext FROM secrets WHERE org = $1 AND plugin = $2 AND name = $3",
    )
    .bind(org)
    .bind(plugin)
    .bind(name)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(|(key_id, nonce, ciphertext)| {
        key.open_value(
            org,
            plugin,
            name,
            &Sealed {
                key_id,
                nonce,
                ciphertext,
            },
        )
    }))
}

/// The secrets of plugin `org/plugin`, by name, without values.
pub async fn list(db: &Db, org: &str, plugin: &str) -> Result<SecretList, SecretError> {
    let mut conn = db.pool().acquire().await?;
    plugin_exists(&mut conn, org, plugin).await?;
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT name, set_at, set_by FROM secrets WHERE org = $1 AND plugin = $2 ORDER BY name",
    )
    .bind(org)
    .bind(plugin)
    .fetch_all(&mut *conn)
    .await?;
    Ok(SecretList {
        secrets: rows
            .into_iter()
            .map(|(name, set_at, set_by)| SecretInfo {
                name,
                set_at,
                set_by,
            })
            .collect(),
    })
}

/// Removes secret `name` of plugin `org/plugin`, audited.
pub async fn remove(
    db: &Db,
    org: &str,
    plugin: &str,
    name: &str,
    actor: &str,
) -> Result<(), SecretError> {
    let mut change = Change::begin(db, org).await?;
    plugin_exists(change.tx(), org, plugin).await?;
    let removed = sqlx::query("DELETE FROM secrets WHERE org = $1 AND plugin = $2 AND name = $3")
        .bind(org)
        .bind(plugin)
        .bind(name)
        .execute(change.tx())
        .await?;
    if removed.rows_affected() == 0 {
        return Err(SecretError::NoSecret {
            plugin: format!("{org}/{plugin}"),
            name: name.to_owned(),
        });
    }
    change
        .commit(
            actor,
            Action::SecretRemoved,
            &format!("{org}/{plugin}"),
            json!({ "name": name }),
        )
        .await?;
    Ok(())
}

/// The value of secret `name` of plugin `org/plugin`, decrypted; `None`
/// if it is not set.
pub async fn value(
    db: &Db,
    key: &SecretsKey,
    org: &str,
    plugin: &str,
    name: &str,
) -> Result<Option<Result<String, OpenError>>, sqlx::Error> {
    let mut connection = db.pool().acquire().await?;
    value_in(&mut connection, key, org, plugin, name).await
}

/// Why the server's key cannot serve the stored secrets.
#[derive(Debug, thiserror::Error)]
pub enum KeyMismatch {
    /// Secrets are stored under keys other than the server's.
    #[error(
        "{count} stored secrets are encrypted under key {stored}, but the secrets key file {path} holds key {current}. \
         Start with the key file those secrets were set with; to move to a new key, pass the old one as \
         --previous-secrets-key-file and the new one as --secrets-key-file"
    )]
    OtherKey {
        /// How many.
        count: i64,
        /// One of the keys they need.
        stored: String,
        /// The server's key.
        current: String,
        /// Its file.
        path: String,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Refuses `key` unless every stored secret is encrypted under it.
pub async fn check_key(db: &Db, key: &SecretsKey) -> Result<(), KeyMismatch> {
    let other: Option<(String, i64)> = sqlx::query_as(
        "SELECT key_id, COUNT(*) FROM secrets WHERE key_id <> $1 GROUP BY key_id ORDER BY key_id",
    )
    .bind(key.id())
    .fetch_optional(db.pool())
    .await?;
    match other {
        None => Ok(()),
        Some((stored, count)) => Err(KeyMismatch::OtherKey {
            count,
            stored,
            current: key.id().to_owned(),
            path: key.path().display().to_string(),
        }),
    }
}

/// Re-encrypts every secret stored under `previous` with `current`, in one
/// transaction (all or none); returns how many. Secrets already under
/// `current` stay as they are.
pub async fn rotate(
    db: &Db,
    previous: &SecretsKey,
    current: &SecretsKey,
) -> Result<u64, RotateError> {
    let mut tx = db.pool().begin().await?;
    let rows: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT org, plugin, name, nonce, ciphertext FROM secrets WHERE key_id = $1",
    )
    .bind(previous.id())
    .fetch_all(&mut *tx)
    .await?;
    let count = rows.len() as u64;
    for (org, plugin, name, nonce, ciphertext) in rows {
        let sealed = Sealed {
            key_id: previous.id().to_owned(),
            nonce,
            ciphertext,
        };
        let value = previous
            .open_value(&org, &plugin, &name, &sealed)
            .map_err(|error| RotateError::Unreadable {
                secret: format!("{org}/{plugin} {name}"),
                error,
            })?;
        let resealed = current.seal(&org, &plugin, &name, &value);
        // Only the row as it was read: a value set meanwhile (by a replica
        // still on the previous key) is never written back over.
        let updated = sqlx::query(
            "UPDATE secrets SET key_id = $1, nonce = $2, ciphertext = $3
             WHERE org = $4 AND plugin = $5 AND name = $6 AND key_id = $7 AND nonce = $8",
        )
        .bind(&resealed.key_id)
        .bind(&resealed.nonce)
        .bind(&resealed.ciphertext)
        .bind(&org)
        .bind(&plugin)
        .bind(&name)
        .bind(previous.id())
        .bind(&sealed.nonce)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(RotateError::Changed(format!("{org}/{plugin} {name}")));
        }
    }
    tx.commit().await?;
    Ok(count)
}

/// Why the secrets could not be moved to a new key.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// A secret under the previous key does not decrypt with it.
    #[error("secret {secret} does not decrypt with the previous key: {error}")]
    Unreadable {
        /// Which (`org/plugin NAME`).
        secret: String,
        /// Why.
        error: OpenError,
    },
    /// A secret changed while it was re-encrypted: nothing was moved.
    #[error(
        "secret {0} was set while the secrets were re-encrypted; start again to retry (stop every replica first)"
    )]
    Changed(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The server's secrets key at start: the key at `path`, created (mode
/// 0600) when the file is absent and no secret is stored yet; with
/// `previous`, every secret under that key is first moved to this one.
/// Refuses, with what to do, a key that cannot open the stored secrets.
pub async fn open_key(
    db: &Db,
    path: &std::path::Path,
    previous: Option<&std::path::Path>,
) -> Result<SecretsKey, String> {
    let stored = || async {
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM secrets")
            .fetch_one(db.pool())
            .await
            .map_err(|e| format!("reading the secrets: {e}"))?;
        Ok::<i64, String>(count)
    };
    let key = match SecretsKey::open(path, false) {
        Ok(key) => key,
        Err(KeyError::Io { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => {
            let count = stored().await?;
            if count > 0 {
                return Err(format!(
                    "the secrets key file {} does not exist, but the database holds {count} secrets \
                     encrypted under a key: restore that key file (or pass it with --secrets-key-file)",
                    path.display()
                ));
            }
            SecretsKey::open(path, true).map_err(|e| e.to_string())?
        }
        Err(e) => return Err(e.to_string()),
    };
    if let Some(previous) = previous {
        let old = SecretsKey::open(previous, false).map_err(|e| e.to_string())?;
        if old.id() != key.id() {
            let moved = rotate(db, &old, &key).await.map_err(|e| e.to_string())?;
            tracing::info!(
                moved,
                from = old.id(),
                to = key.id(),
                "secrets re-encrypted under the new key"
            );
        }
    }
    check_key(db, &key).await.map_err(|e| e.to_string())?;
    Ok(key)
}
