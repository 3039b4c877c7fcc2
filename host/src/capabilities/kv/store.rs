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

/// What one namespace may hold: keys, and bytes of keys and values
/// together (a key's bytes plus its value's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvQuota {
    /// Keys.
    pub keys: u64,
    /// Bytes of keys and values together.
    pub bytes: u64,
}

impl KvQuota {
    /// The quota of a plugin approved with `limits`.
    pub fn of(limits: &crate::Limits) -> KvQuota {
        KvQuota {
            keys: limits.kv_keys,
            bytes: limits.kv_bytes,
        }
    }
}

/// The bytes `key` holding `value` counts against a [`KvQuota`].
pub fn kv_entry_bytes(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

/// Durable key-value storage, partitioned into one namespace per plugin.
///
/// Implementations must be safe to call from many invocations at once.
#[async_trait]
pub trait KvStore: Send + Sync + 'static {
    /// The value under `key`.
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, KvError>;

    /// Stores `value` under `key`. Adding a new key to a namespace that
    /// already holds `quota.keys` keys, or growing it past `quota.bytes`
    /// ([`kv_entry_bytes`] of every entry), fails with
    /// [`KvError::QuotaExceeded`] and changes nothing.
    async fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        quota: KvQuota,
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
        quota: KvQuota,
    ) -> Result<(), KvError> {
        let mut namespaces = self.lock();
        let ns = namespaces.entry(namespace.to_owned()).or_default();
        let old = ns.get(key).map(|old| kv_entry_bytes(key, old));
        if old.is_none() && ns.len() as u64 >= quota.keys {
            return Err(KvError::QuotaExceeded(format!(
                "the namespace already holds {} keys",
                quota.keys
            )));
        }
        let held: u64 = ns.iter().map(|(k, v)| kv_entry_bytes(k, v)).sum();
        let after = held - old.unwrap_or(0) + kv_entry_bytes(key, value);
        if after > quota.bytes && after > held {
            return Err(KvError::QuotaExceeded(bytes_over(held, quota.bytes)));
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

/// The message of a write refused for the byte quota.
pub fn bytes_over(held: u64, quota: u64) -> String {
    format!(
        "the namespace holds {} of its {} (keys and values)",
        crate::format_bytes(held),
        crate::format_bytes(quota)
    )
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
    async fn namespaces_are_isolated_and_quota_counts_new_keys_only() {
        let store = MemoryKvStore::new();
        store.set("a", "k1", b"1", keys(2)).await.unwrap();
        store.set("a", "k2", b"2", keys(2)).await.unwrap();
        store.set("a", "k2", b"22", keys(2)).await.unwrap();
        assert!(matches!(
            store.set("a", "k3", b"3", keys(2)).await,
            Err(KvError::QuotaExceeded(_))
        ));
        store.set("b", "k1", b"other", keys(2)).await.unwrap();
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

    #[tokio::test]
    async fn the_byte_quota_counts_keys_and_values_and_lets_a_namespace_shrink() {
        let store = MemoryKvStore::new();
        let quota = KvQuota {
            keys: 100,
            bytes: 20,
        };
        // "k1" + 8 bytes, "k2" + 8 bytes: exactly 20.
        store.set("a", "k1", &[1; 8], quota).await.unwrap();
        store.set("a", "k2", &[2; 8], quota).await.unwrap();
        let over = store.set("a", "k3", b"", quota).await.unwrap_err();
        assert!(
            matches!(&over, KvError::QuotaExceeded(m) if m.contains("20 bytes")),
            "{over}"
        );
        assert!(matches!(
            store.set("a", "k2", &[2; 9], quota).await,
            Err(KvError::QuotaExceeded(_))
        ));
        assert_eq!(store.get("a", "k2").await.unwrap(), Some(vec![2; 8]));
        // Replacing with a smaller value makes room; another namespace has its own.
        store.set("a", "k2", &[2; 4], quota).await.unwrap();
        store.set("a", "k3", &[3; 2], quota).await.unwrap();
        store.set("b", "k1", &[1; 18], quota).await.unwrap();
    }
}
