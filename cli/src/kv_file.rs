//! A `KvStore` in a local SQLite file, so that `warden run --kv-file` keeps a
//! plugin's key-value data between runs. (The host never touches SQL; this lives
//! with the CLI.)

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use std::path::Path;
use std::time::Duration;
use warden_host::{KvError, KvStore};

pub struct SqliteKvStore {
    pool: SqlitePool,
}

fn unavailable(error: sqlx::Error) -> KvError {
    KvError::Unavailable(error.to_string())
}

impl SqliteKvStore {
    /// Opens (creating if needed) the store at `path`.
    pub async fn open(path: &Path) -> Result<SqliteKvStore, sqlx::Error> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS kv (
                namespace TEXT NOT NULL,
                key TEXT NOT NULL,
                value BLOB NOT NULL,
                PRIMARY KEY (namespace, key)
            ) WITHOUT ROWID",
        )
        .execute(&pool)
        .await?;
        Ok(SqliteKvStore { pool })
    }
}

#[async_trait]
impl KvStore for SqliteKvStore {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        sqlx::query_scalar("SELECT value FROM kv WHERE namespace = ? AND key = ?")
            .bind(namespace)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)
    }

    async fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        max_keys: u64,
    ) -> Result<(), KvError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM kv WHERE namespace = ? AND key = ?")
                .bind(namespace)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
        if exists.is_none() {
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM kv WHERE namespace = ?")
                .bind(namespace)
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable)?;
            if count as u64 >= max_keys {
                return Err(KvError::QuotaExceeded(format!(
                    "the namespace already holds {max_keys} keys"
                )));
            }
        }
        sqlx::query(
            "INSERT INTO kv (namespace, key, value) VALUES (?, ?, ?)
             ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
        )
        .bind(namespace)
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    async fn delete(&self, namespace: &str, key: &str) -> Result<bool, KvError> {
        let done = sqlx::query("DELETE FROM kv WHERE namespace = ? AND key = ?")
            .bind(namespace)
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_keys(
        &self,
        namespace: &str,
        prefix: &str,
        limit: u64,
    ) -> Result<Vec<String>, KvError> {
        sqlx::query_scalar(
            "SELECT key FROM kv WHERE namespace = ? AND substr(key, 1, length(?)) = ?
             ORDER BY key LIMIT ?",
        )
        .bind(namespace)
        .bind(prefix)
        .bind(prefix)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)
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
            let store = SqliteKvStore::open(&path).await.unwrap();
            store.set("a", "k1", b"one", 10).await.unwrap();
            store.set("a", "k2", b"two", 10).await.unwrap();
            store.set("a", "k1", b"uno", 10).await.unwrap();
            store.set("b", "k1", b"other", 10).await.unwrap();
        }
        let store = SqliteKvStore::open(&path).await.unwrap();
        assert_eq!(store.get("a", "k1").await.unwrap(), Some(b"uno".to_vec()));
        assert_eq!(store.get("b", "k1").await.unwrap(), Some(b"other".to_vec()));
        assert_eq!(store.get("a", "none").await.unwrap(), None);
        assert_eq!(
            store.list_keys("a", "k", 10).await.unwrap(),
            vec!["k1", "k2"]
        );
        assert_eq!(store.list_keys("a", "k", 1).await.unwrap(), vec!["k1"]);
        assert_eq!(
            store.list_keys("a", "x", 10).await.unwrap(),
            Vec::<String>::new()
        );
        assert!(store.delete("a", "k1").await.unwrap());
        assert!(!store.delete("a", "k1").await.unwrap());
    }

    #[tokio::test]
    async fn the_key_quota_counts_new_keys_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteKvStore::open(&dir.path().join("kv.db"))
            .await
            .unwrap();
        store.set("a", "k1", b"1", 1).await.unwrap();
        store.set("a", "k1", b"2", 1).await.unwrap();
        assert!(matches!(
            store.set("a", "k2", b"3", 1).await,
            Err(KvError::QuotaExceeded(_))
        ));
        assert_eq!(store.get("a", "k2").await.unwrap(), None);
    }
}
