//! `SqlKvStore`: the plugins' key-value namespaces (`warden:plugin/kv`) in the
//! control plane's database (SQLite or PostgreSQL), or in a standalone SQLite
//! file for `warden run --kv-file`.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sqlx::AnyPool;
use std::path::Path;
use warden_host::{KvError, KvStore};

/// A [`KvStore`] over a sqlx pool with the `kv` table. Namespaces are
/// `org/plugin`; besides each namespace's quota (the plugin's `kv_keys`),
/// all the namespaces of one organization hold at most `org_max_keys`.
#[derive(Clone, Debug)]
pub struct SqlKvStore {
    pool: AnyPool,
    org_max_keys: u64,
}

/// Keys all the plugins of one organization may hold together, by default.
pub const ORG_KV_KEYS: u64 = 1_000_000;

/// The organization of a namespace (`org/plugin`; a bare name is its own).
fn org_of(namespace: &str) -> &str {
    namespace.split_once('/').map_or(namespace, |(org, _)| org)
}

fn unavailable(error: sqlx::Error) -> KvError {
    tracing::warn!("kv store: {error}");
    KvError::Unavailable("the key-value store is unavailable".into())
}

impl SqlKvStore {
    /// Over the control plane's database (its migrations created `kv`).
    pub fn new(pool: AnyPool) -> SqlKvStore {
        SqlKvStore {
            pool,
            org_max_keys: ORG_KV_KEYS,
        }
    }

    /// With `max` keys per organization instead of [`ORG_KV_KEYS`].
    pub fn with_org_max_keys(mut self, max: u64) -> SqlKvStore {
        self.org_max_keys = max;
        self
    }

    /// A standalone SQLite file, created if missing.
    pub async fn open_file(path: &Path) -> Result<SqlKvStore, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(4)
            .after_connect(|connection, _| {
                Box::pin(async move {
                    sqlx::Executor::execute(
                        &mut *connection,
                        "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000;",
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS kv (namespace TEXT NOT NULL, key TEXT NOT NULL,
             value TEXT NOT NULL, PRIMARY KEY (namespace, key))",
        )
        .execute(&pool)
        .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS kv_org_locks (org TEXT PRIMARY KEY, keys BIGINT NOT NULL DEFAULT 0)",
        )
            .execute(&pool)
            .await?;
        Ok(SqlKvStore {
            pool,
            org_max_keys: u64::MAX,
        })
    }
}

#[async_trait]
impl KvStore for SqlKvStore {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let value: Option<(String,)> =
            sqlx::query_as("SELECT value FROM kv WHERE namespace = $1 AND key = $2")
                .bind(namespace)
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        value
            .map(|(text,)| {
                BASE64
                    .decode(text)
                    .map_err(|_| KvError::Unavailable("a stored value is corrupted".into()))
            })
            .transpose()
    }

    async fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        max_keys: u64,
    ) -> Result<(), KvError> {
        let encoded = BASE64.encode(value);
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // Write first: SQLite takes its write lock at once, and a key that
        // exists never counts against the quota.
        let updated = sqlx::query("UPDATE kv SET value = $1 WHERE namespace = $2 AND key = $3")
            .bind(&encoded)
            .bind(namespace)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        if updated.rows_affected() == 0 {
            // A new key: the org's writers of new keys go one at a time from
            // here (the lock row), so the counts below are exact.
            let org = org_of(namespace);
            sqlx::query(
                "INSERT INTO kv_org_locks (org, keys) VALUES ($1, 0) ON CONFLICT (org) DO UPDATE SET org = $1",
            )
            .bind(org)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            sqlx::query(
                "INSERT INTO kv (namespace, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (namespace, key) DO UPDATE SET value = $3",
            )
            .bind(namespace)
            .bind(key)
            .bind(&encoded)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM kv WHERE namespace = $1")
                .bind(namespace)
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable)?;
            if count as u64 > max_keys {
                return Err(KvError::QuotaExceeded(format!(
                    "the namespace already holds {max_keys} keys"
                )));
            }
            let (org_keys,): (i64,) = sqlx::query_as(
                "UPDATE kv_org_locks SET keys = keys + 1 WHERE org = $1 RETURNING keys",
            )
            .bind(org)
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
            if org_keys as u64 > self.org_max_keys {
                return Err(KvError::QuotaExceeded(format!(
                    "the plugins of {org} already hold {} keys",
                    self.org_max_keys
                )));
            }
        }
        tx.commit().await.map_err(unavailable)
    }

    async fn delete(&self, namespace: &str, key: &str) -> Result<bool, KvError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let done = sqlx::query("DELETE FROM kv WHERE namespace = $1 AND key = $2")
            .bind(namespace)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let deleted = done.rows_affected() > 0;
        if deleted {
            sqlx::query("UPDATE kv_org_locks SET keys = keys - 1 WHERE org = $1 AND keys > 0")
                .bind(org_of(namespace))
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(deleted)
    }

    async fn list_keys(
        &self,
        namespace: &str,
        prefix: &str,
        limit: u64,
    ) -> Result<Vec<String>, KvError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT key FROM kv WHERE namespace = $1 AND substr(key, 1, length($2)) = $2
             ORDER BY key LIMIT $3",
        )
        .bind(namespace)
        .bind(prefix)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(rows.into_iter().map(|(key,)| key).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn data_survives_reopening_and_namespaces_are_isolated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.db");
        {
            let store = SqlKvStore::open_file(&path).await.unwrap();
            store.set("a", "k1", b"one", 10).await.unwrap();
            store.set("a", "k2", b"two", 10).await.unwrap();
            store.set("a", "k1", b"uno", 10).await.unwrap();
            store.set("b", "k1", &[0, 255, 7], 10).await.unwrap();
        }
        let store = SqlKvStore::open_file(&path).await.unwrap();
        assert_eq!(store.get("a", "k1").await.unwrap(), Some(b"uno".to_vec()));
        assert_eq!(store.get("b", "k1").await.unwrap(), Some(vec![0, 255, 7]));
        assert_eq!(store.get("a", "none").await.unwrap(), None);
        assert_eq!(
            store.list_keys("a", "k", 10).await.unwrap(),
            vec!["k1", "k2"]
        );
        assert_eq!(store.list_keys("a", "k", 1).await.unwrap(), vec!["k1"]);
        assert!(store.list_keys("a", "x", 10).await.unwrap().is_empty());
        assert!(store.delete("a", "k1").await.unwrap());
        assert!(!store.delete("a", "k1").await.unwrap());
    }

    #[tokio::test]
    async fn an_organization_s_plugins_share_one_key_quota() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlKvStore::open_file(&dir.path().join("kv.db"))
            .await
            .unwrap()
            .with_org_max_keys(3);
        store.set("acme/a", "k1", b"1", 10).await.unwrap();
        store.set("acme/b", "k1", b"1", 10).await.unwrap();
        store.set("acme/b", "k2", b"1", 10).await.unwrap();
        // The org's fourth key is refused, whichever plugin writes it ...
        assert!(matches!(
            store.set("acme/a", "k2", b"1", 10).await,
            Err(KvError::QuotaExceeded(_))
        ));
        // ... while another org (even one whose name starts alike) is not
        // affected, and existing keys can still be rewritten.
        store.set("acme0/a", "k1", b"1", 10).await.unwrap();
        store.set("acmex/a", "k1", b"1", 10).await.unwrap();
        store.set("acme/a", "k1", b"2", 10).await.unwrap();
        assert_eq!(store.get("acme/a", "k2").await.unwrap(), None);
        // A deleted key makes room for one.
        assert!(store.delete("acme/b", "k2").await.unwrap());
        store.set("acme/a", "k2", b"1", 10).await.unwrap();
        assert!(matches!(
            store.set("acme/a", "k3", b"1", 10).await,
            Err(KvError::QuotaExceeded(_))
        ));
    }

    #[tokio::test]
    async fn the_key_quota_counts_new_keys_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlKvStore::open_file(&dir.path().join("kv.db"))
            .await
            .unwrap();
        store.set("a", "k1", b"1", 1).await.unwrap();
        store.set("a", "k1", b"2", 1).await.unwrap();
        assert!(matches!(
            store.set("a", "k2", b"3", 1).await,
            Err(KvError::QuotaExceeded(_))
        ));
        assert_eq!(store.get("a", "k2").await.unwrap(), None);
        assert_eq!(store.get("a", "k1").await.unwrap(), Some(b"2".to_vec()));
    }
}
