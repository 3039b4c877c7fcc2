//! The plugins' kv quotas hold exactly under concurrent writers, on SQLite
//! and on PostgreSQL (where two transactions counting keys at once would
//! both see room without the org's lock row).

mod common;

use common::Backend;
use warden_host::{KvError, KvStore};
use warden_registry::{Db, SqlKvStore};

async fn store(backend: &Backend, dir: &std::path::Path) -> SqlKvStore {
    let db = match backend {
        Backend::Sqlite => Db::open_sqlite(dir).await.unwrap(),
        Backend::Postgres(url) => Db::connect(url).await.unwrap(),
    };
    SqlKvStore::new(db.pool().clone()).with_org_max_keys(8)
}

async fn quotas_hold_under_concurrent_writers(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let kv = store(&backend, dir.path()).await;
    // 40 new keys at once into one namespace whose quota is 5.
    let writes = (0..40).map(|i| {
        let kv = kv.clone();
        tokio::spawn(async move { kv.set("acme/one", &format!("k{i}"), b"v", 5).await })
    });
    let results = futures_util::future::join_all(writes).await;
    let stored = results
        .iter()
        .filter(|r| r.as_ref().unwrap().is_ok())
        .count();
    assert_eq!(stored, 5, "exactly the namespace quota");
    for result in &results {
        if let Err(error) = result.as_ref().unwrap() {
            assert!(matches!(error, KvError::QuotaExceeded(_)), "{error:?}");
        }
    }
    assert_eq!(kv.list_keys("acme/one", "", 100).await.unwrap().len(), 5);
    // Two more plugins of the org race for the org's remaining 3 keys.
    let writes = (0..20).map(|i| {
        let kv = kv.clone();
        let namespace = if i % 2 == 0 { "acme/two" } else { "acme/three" };
        tokio::spawn(async move { kv.set(namespace, &format!("k{i}"), b"v", 100).await })
    });
    let results = futures_util::future::join_all(writes).await;
    let stored = results
        .iter()
        .filter(|r| r.as_ref().unwrap().is_ok())
        .count();
    assert_eq!(stored, 3, "exactly the org's quota of 8 in all");
    // Another org is not affected.
    kv.set("globex/one", "k", b"v", 5).await.unwrap();
}
on_both_databases!(quotas_hold_under_concurrent_writers);
