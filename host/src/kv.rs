//! The storage behind `warden:plugin/kv`: a trait the embedder implements (the
//! registry puts its database behind it) and an in-memory implementation.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Why a key-value operation failed; the plugin receives it as its WIT `error`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The key or value is larger than allowed.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The namespace is full.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The store cannot be reached.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Durable key-value storage, partitioned into one namespace per plugin.
///
/// Implementations must be safe to call from many invocations at once.
#[async_trait]
pub trait KvStore: Send + Sync + 'static {
    /// The value under `key`.
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, KvError>;

    /// Stores `value` under `key`. Adding a new key to a namespace that already
    /// holds `max_keys` keys fails with [`KvError::QuotaExceeded`].
    async fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        max_keys: u64,
    ) -> Result<(), KvError>;

    /// Removes `key`; returns whether it was present.
    async fn delete(&self, namespace: &str, key: &str) -> Result<bool, KvError>;

    /// Up to `limit` keys starting with `prefix`, in lexicographic order.
    async fn list_keys(
        &self,
        namespace: &str,
        prefix: &str,
        limit: u64,
    ) -> Result<Vec<String>, KvError>;
}

/// A [`KvStore`] in memory: for `warden run` and tests. Nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryKvStore {
    namespaces: Mutex<BTreeMap<String, BTreeMap<String, Vec<u8>>>>,
}

impl MemoryKvStore {
    /// An empty store.
    pub fn new() -> MemoryKvStore {
        MemoryKvStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, BTreeMap<String, Vec<u8>>>> {
        self.namespaces
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl KvStore for MemoryKvStore {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self
            .lock()
            .get(namespace)
            .and_then(|ns| ns.get(key))
            .cloned())
    }

    async fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        max_keys: u64,
    ) -> Result<(), KvError> {
        let mut namespaces = self.lock();
        let ns = namespaces.entry(namespace.to_owned()).or_default();
        if !ns.contains_key(key) && ns.len() as u64 >= max_keys {
            return Err(KvError::QuotaExceeded(format!(
                "the namespace already holds {max_keys} keys"
            )));
        }
        ns.insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    async fn delete(&self, namespace: &str, key: &str) -> Result<bool, KvError> {
        Ok(self
            .lock()
            .get_mut(namespace)
            .is_some_and(|ns| ns.remove(key).is_some()))
    }

    async fn list_keys(
        &self,
        namespace: &str,
        prefix: &str,
        limit: u64,
    ) -> Result<Vec<String>, KvError> {
        Ok(self
            .lock()
            .get(namespace)
            .map(|ns| {
                ns.range(prefix.to_owned()..)
                    .take_while(|(key, _)| key.starts_with(prefix))
                    .take(limit as usize)
                    .map(|(key, _)| key.clone())
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn namespaces_are_isolated_and_quota_counts_new_keys_only() {
        let store = MemoryKvStore::new();
        store.set("a", "k1", b"1", 2).await.unwrap();
        store.set("a", "k2", b"2", 2).await.unwrap();
        store.set("a", "k2", b"22", 2).await.unwrap();
        assert!(matches!(
            store.set("a", "k3", b"3", 2).await,
            Err(KvError::QuotaExceeded(_))
        ));
        store.set("b", "k1", b"other", 2).await.unwrap();
        assert_eq!(store.get("a", "k1").await.unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.get("b", "k1").await.unwrap(), Some(b"other".to_vec()));
        assert_eq!(
            store.list_keys("a", "k", 10).await.unwrap(),
            vec!["k1", "k2"]
        );
        assert_eq!(store.list_keys("a", "k", 1).await.unwrap(), vec!["k1"]);
        assert!(store.delete("a", "k1").await.unwrap());
        assert!(!store.delete("a", "k1").await.unwrap());
    }
}
