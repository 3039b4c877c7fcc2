//! `SqlKvStore`: the plugins' key-value namespaces (`warden:plugin/kv`) in the
//! control plane's database (SQLite or PostgreSQL), or in a standalone SQLite
//! file for `warden run --kv-file`.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sqlx::AnyPool;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use warden_host::{KvError, KvQuota, KvStore, kv_bytes_over as bytes_over, kv_entry_bytes};

/// A [`KvStore`] over a sqlx pool with the `kv` tables. Namespaces are
/// `org/plugin`; besides each namespace's quota (the plugin's `kv_keys` and
/// `kv_bytes`), all the namespaces of one organization hold at most
/// `org_max_keys` keys and `org_max_bytes` bytes of keys and values.
///
/// Every write of an org takes the org's row of `kv_org_locks` first, so
/// the writes of one org go one at a time and the counts (`kv_namespaces`,
/// `kv_org_locks`, kept in the same transaction as the entries) are exact
/// under concurrent writers on PostgreSQL as on SQLite; other orgs' writes
/// do not wait for them.
#[derive(Clone, Debug)]
pub struct SqlKvStore {
    pool: AnyPool,
    org_max_keys: u64,
    org_max_bytes: u64,
    /// One write of each org at a time in this process, taken before a
    /// database connection: the org's other writers wait here, holding no
    /// connection of the pool every org shares (behind the lock row they
    /// would each hold one).
    writers: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

/// Keys all the plugins of one organization may hold together, by default.
pub const ORG_KV_KEYS: u64 = 1_000_000;

/// Bytes of keys and values all the plugins of one organization may hold
/// together, by default.
pub const ORG_KV_BYTES: u64 = 1 << 30;

/// The organization of a namespace (`org/plugin`; a bare name is its own).
fn org_of(namespace: &str) -> &str {
    namespace.split_once('/').map_or(namespace, |(org, _)| org)
}

fn unavailable(error: sqlx::Error) -> KvError {
    tracing::warn!("kv store: {error}");
    if crate::db::is_storage_full(&error) {
        return KvError::Unavailable("the key-value store's disk is full".into());
    }
    KvError::Unavailable("the key-value store is unavailable".into())
}

impl SqlKvStore {
    /// Over the control plane's database (its migrations created `kv`).
    pub fn new(pool: AnyPool) -> SqlKvStore {
        SqlKvStore {
            pool,
            org_max_keys: ORG_KV_KEYS,
            org_max_bytes: ORG_KV_BYTES,
            writers: Arc::default(),
        }
    }

    /// With `max` keys per organization instead of [`ORG_KV_KEYS`].
    pub fn with_org_max_keys(mut self, max: u64) -> SqlKvStore {
        self.org_max_keys = max;
        self
    }

    /// With `max` bytes per organization instead of [`ORG_KV_BYTES`].
    pub fn with_org_max_bytes(mut self, max: u64) -> SqlKvStore {
        self.org_max_bytes = max;
        self
    }

    /// A standalone SQLite file, created if missing (or brought up to the
    /// current tables if an older `warden run` made it).
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
        let mut tx = pool.begin().await?;
        let (existing,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'kv'",
        )
        .fetch_one(&mut *tx)
        .await?;
        let (sized,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'kv_namespaces'",
        )
        .fetch_one(&mut *tx)
        .await?;
        if existing == 0 {
            let tables = [
                include_str!("../../migrations/0002_kv.sql"),
                include_str!("../../migrations/0003_kv_org_locks.sql"),
            ];
            for statement in tables.into_iter().flat_map(crate::db::statements) {
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if sized == 0 {
            let sizes = include_str!("../../migrations/0005_kv_bytes.sqlite.sql");
            for statement in crate::db::statements(sizes) {
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(SqlKvStore {
            pool,
            org_max_keys: u64::MAX,
            org_max_bytes: u64::MAX,
            writers: Arc::default(),
        })
    }
}

/// What a write changes in a namespace's and its org's counts.
struct Change {
    keys: i64,
    bytes: i64,
}

impl SqlKvStore {
    /// This process's turn to write for `org` (see `writers`).
    async fn writer(&self, org: &str) -> OwnedSemaphorePermit {
        let turn = {
            let mut writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
            if writers.len() > 1024 {
                writers.retain(|_, one| Arc::strong_count(one) > 1 || one.available_permits() == 0);
            }
            writers
                .entry(org.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(1)))
                .clone()
        };
        turn.acquire_owned().await.expect("never closed")
    }

    /// Takes the org's lock row (the writes of one org go one at a time
    /// from here to the commit).
    async fn lock_org(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        org: &str,
    ) -> Result<(), KvError> {
        sqlx::query(
            "INSERT INTO kv_org_locks (org, keys, bytes) VALUES ($1, 0, 0)
             ON CONFLICT (org) DO UPDATE SET org = $1",
        )
        .bind(org)
        .execute(&mut **tx)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    /// Applies `change` to the counts of `namespace` and its org; returns
    /// the namespace's and the org's counts after it, as (keys, bytes).
    async fn count(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        namespace: &str,
        change: &Change,
    ) -> Result<((i64, i64), (i64, i64)), KvError> {
        let held: (i64, i64) = sqlx::query_as(
            "INSERT INTO kv_namespaces (namespace, keys, bytes) VALUES ($1, $2, $3)
             ON CONFLICT (namespace) DO UPDATE
             SET keys = kv_namespaces.keys + $2, bytes = kv_namespaces.bytes + $3
             RETURNING keys, bytes",
        )
        .bind(namespace)
        .bind(change.keys)
        .bind(change.bytes)
        .fetch_one(&mut **tx)
        .await
        .map_err(unavailable)?;
        let org_held: (i64, i64) = sqlx::query_as(
            "UPDATE kv_org_locks SET keys = keys + $2, bytes = bytes + $3 WHERE org = $1
             RETURNING keys, bytes",
        )
        .bind(org_of(namespace))
        .bind(change.keys)
        .bind(change.bytes)
        .fetch_one(&mut **tx)
        .await
        .map_err(unavailable)?;
        Ok((held, org_held))
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
        quota: KvQuota,
    ) -> Result<(), KvError> {
        let encoded = BASE64.encode(value);
        let size = i64::try_from(kv_entry_bytes(key, value)).unwrap_or(i64::MAX);
        let org = org_of(namespace);
        let _turn = self.writer(org).await;
        // Nothing of this transaction is committed unless every quota holds:
        // dropped, it rolls back.
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        self.lock_org(&mut tx, org).await?;
        let old: Option<(i64,)> =
            sqlx::query_as("SELECT size FROM kv WHERE namespace = $1 AND key = $2")
                .bind(namespace)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
        let change = Change {
            keys: if old.is_some() { 0 } else { 1 },
            bytes: size - old.map_or(0, |(size,)| size),
        };
        let ((keys, bytes), (org_keys, org_bytes)) =
            self.count(&mut tx, namespace, &change).await?;
        let held = |n: i64| u64::try_from(n).unwrap_or(0);
        if change.keys > 0 && held(keys) > quota.keys {
            return Err(KvError::QuotaExceeded(format!(
                "the namespace already holds {} keys",
                quota.keys
            )));
        }
        if change.keys > 0 && held(org_keys) > self.org_max_keys {
            return Err(KvError::QuotaExceeded(format!(
                "the plugins of {org} already hold {} keys",
                self.org_max_keys
            )));
        }
        // A write that shrinks what is held always goes through (a quota
        // lowered below what a namespace holds must not stop it shrinking).
        if change.bytes > 0 && held(bytes) > quota.bytes {
            return Err(KvError::QuotaExceeded(bytes_over(
                held(bytes - change.bytes),
                quota.bytes,
            )));
        }
        if change.bytes > 0 && held(org_bytes) > self.org_max_bytes {
            return Err(KvError::QuotaExceeded(format!(
                "the plugins of {org} hold {} of their {} (keys and values)",
                warden_host::format_bytes(held(org_bytes - change.bytes)),
                warden_host::format_bytes(self.org_max_bytes)
            )));
        }
        sqlx::query(
            "INSERT INTO kv (namespace, key, value, size) VALUES ($1, $2, $3, $4)
             ON CONFLICT (namespace, key) DO UPDATE SET value = $3, size = $4",
        )
        .bind(namespace)
        .bind(key)
        .bind(&encoded)
        .bind(size)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    async fn delete(&self, namespace: &str, key: &str) -> Result<bool, KvError> {
        let _turn = self.writer(org_of(namespace)).await;
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        self.lock_org(&mut tx, org_of(namespace)).await?;
        let deleted: Option<(i64,)> =
            sqlx::query_as("DELETE FROM kv WHERE namespace = $1 AND key = $2 RETURNING size")
                .bind(namespace)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
        let Some((size,)) = deleted else {
            return Ok(false);
        };
        let change = Change {
            keys: -1,
            bytes: -size,
        };
        self.count(&mut tx, namespace, &change).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
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

    fn keys(keys: u64) -> KvQuota {
        KvQuota {
            keys,
            bytes: u64::MAX,
        }
    }

    #[tokio::test]
    async fn data_survives_reopening_and_namespaces_are_isolated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.db");
        {
            let store = SqlKvStore::open_file(&path).await.unwrap();
            store.set("a", "k1", b"one", keys(10)).await.unwrap();
            store.set("a", "k2", b"two", keys(10)).await.unwrap();
            store.set("a", "k1", b"uno", keys(10)).await.unwrap();
            store.set("b", "k1", &[0, 255, 7], keys(10)).await.unwrap();
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
        store.set("acme/a", "k1", b"1", keys(10)).await.unwrap();
        store.set("acme/b", "k1", b"1", keys(10)).await.unwrap();
        store.set("acme/b", "k2", b"1", keys(10)).await.unwrap();
        // The org's fourth key is refused, whichever plugin writes it ...
        assert!(matches!(
            store.set("acme/a", "k2", b"1", keys(10)).await,
            Err(KvError::QuotaExceeded(_))
        ));
        // ... while another org (even one whose name starts alike) is not
        // affected, and existing keys can still be rewritten.
        store.set("acme0/a", "k1", b"1", keys(10)).await.unwrap();
        store.set("acmex/a", "k1", b"1", keys(10)).await.unwrap();
        store.set("acme/a", "k1", b"2", keys(10)).await.unwrap();
        assert_eq!(store.get("acme/a", "k2").await.unwrap(), None);
        // A deleted key makes room for one.
        assert!(store.delete("acme/b", "k2").await.unwrap());
        store.set("acme/a", "k2", b"1", keys(10)).await.unwrap();
        assert!(matches!(
            store.set("acme/a", "k3", b"1", keys(10)).await,
            Err(KvError::QuotaExceeded(_))
        ));
    }

    #[tokio::test]
    async fn the_key_quota_counts_new_keys_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlKvStore::open_file(&dir.path().join("kv.db"))
            .await
            .unwrap();
        store.set("a", "k1", b"1", keys(1)).await.unwrap();
        store.set("a", "k1", b"2", keys(1)).await.unwrap();
        assert!(matches!(
            store.set("a", "k2", b"3", keys(1)).await,
            Err(KvError::QuotaExceeded(_))
        ));
        assert_eq!(store.get("a", "k2").await.unwrap(), None);
        assert_eq!(store.get("a", "k1").await.unwrap(), Some(b"2".to_vec()));
    }

    #[tokio::test]
    async fn entries_written_before_byte_quotas_are_counted_when_a_file_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.db");
        // A file as an older `warden run` left it: no sizes, and an org
        // whose keys predate its lock row.
        {
            sqlx::any::install_default_drivers();
            let pool = sqlx::any::AnyPoolOptions::new()
                .connect(&format!("sqlite://{}?mode=rwc", path.display()))
                .await
                .unwrap();
            for sql in [
                include_str!("../../migrations/0002_kv.sql"),
                include_str!("../../migrations/0003_kv_org_locks.sql"),
            ] {
                for statement in crate::db::statements(sql) {
                    sqlx::query(sqlx::AssertSqlSafe(statement))
                        .execute(&pool)
                        .await
                        .unwrap();
                }
            }
            // "k1" + 3 bytes ("AQID" in base64), "k\u{e9}" (3 bytes) + 6 bytes.
            for (namespace, key, value) in [
                ("acme/a", "k1", BASE64.encode([1, 2, 3])),
                ("acme/b", "k\u{e9}", BASE64.encode([9; 6])),
            ] {
                sqlx::query("INSERT INTO kv (namespace, key, value) VALUES ($1, $2, $3)")
                    .bind(namespace)
                    .bind(key)
                    .bind(value)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }
        let store = SqlKvStore::open_file(&path)
            .await
            .unwrap()
            .with_org_max_bytes(5 + 9 + 10);
        let org: (i64, i64) =
            sqlx::query_as("SELECT keys, bytes FROM kv_org_locks WHERE org = 'acme'")
                .fetch_one(&store.pool)
                .await
                .unwrap();
        assert_eq!(org, (2, 14));
        let quota = KvQuota {
            keys: 10,
            bytes: 100,
        };
        // The org's 24 bytes hold the old 14 and 10 more, not 11.
        store.set("acme/c", "k3", &[0; 8], quota).await.unwrap();
        assert!(matches!(
            store.set("acme/c", "k4", &[], quota).await,
            Err(KvError::QuotaExceeded(_))
        ));
        // Deleting an old entry gives back what it was counted for.
        assert!(store.delete("acme/b", "k\u{e9}").await.unwrap());
        store.set("acme/c", "k4", &[0; 7], quota).await.unwrap();
    }
}
