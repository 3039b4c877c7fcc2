//! The plugins' kv quotas (keys and bytes, per namespace and per
//! organization) hold exactly under concurrent writers, on SQLite and on
//! PostgreSQL (where two transactions counting at once would both see room
//! without the org's lock row).

mod common;

use common::Backend;
use warden_host::{KvError, KvQuota, KvStore};
use warden_registry::{Db, SqlKvStore};

async fn store(backend: &Backend, dir: &std::path::Path) -> SqlKvStore {
    let db = match backend {
        Backend::Sqlite => Db::open_sqlite(dir).await.unwrap(),
        Backend::Postgres(url) => Db::connect(url).await.unwrap(),
    };
    SqlKvStore::new(db.pool().clone()).with_org_max_keys(8)
}

fn keys(keys: u64) -> KvQuota {
    KvQuota {
        keys,
        bytes: u64::MAX,
    }
}

async fn quotas_hold_under_concurrent_writers(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let kv = store(&backend, dir.path()).await;
    // 40 new keys at once into one namespace whose quota is 5.
    let writes = (0..40).map(|i| {
        let kv = kv.clone();
        tokio::spawn(async move { kv.set("acme/one", &format!("k{i}"), b"v", keys(5)).await })
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
        tokio::spawn(async move { kv.set(namespace, &format!("k{i}"), b"v", keys(100)).await })
    });
    let results = futures_util::future::join_all(writes).await;
    let stored = results
        .iter()
        .filter(|r| r.as_ref().unwrap().is_ok())
        .count();
    assert_eq!(stored, 3, "exactly the org's quota of 8 in all");
    // Another org is not affected.
    kv.set("globex/one", "k", b"v", keys(5)).await.unwrap();
}
on_both_databases!(quotas_hold_under_concurrent_writers);

async fn byte_quotas_hold_under_concurrent_writers(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = match &backend {
        Backend::Sqlite => Db::open_sqlite(dir.path()).await.unwrap(),
        Backend::Postgres(url) => Db::connect(url).await.unwrap(),
    };
    // Each entry is "kNN" (3 bytes) + 97 bytes = 100 bytes.
    let kv = SqlKvStore::new(db.pool().clone()).with_org_max_bytes(1_000);
    let value = [7u8; 97];
    let quota = KvQuota {
        keys: 1_000,
        bytes: 500,
    };
    let writes = (10..50).map(|i| {
        let kv = kv.clone();
        tokio::spawn(async move { kv.set("acme/one", &format!("k{i}"), &value, quota).await })
    });
    let results = futures_util::future::join_all(writes).await;
    let stored = results
        .iter()
        .filter(|r| r.as_ref().unwrap().is_ok())
        .count();
    assert_eq!(stored, 5, "exactly the namespace's 500 bytes");
    for result in &results {
        if let Err(error) = result.as_ref().unwrap() {
            assert!(
                matches!(error, KvError::QuotaExceeded(m) if m.contains("500 bytes")),
                "{error:?}"
            );
        }
    }
    // A rewrite that grows an entry past the quota is refused and changes
    // nothing; one that shrinks it makes room.
    let first = kv.list_keys("acme/one", "", 100).await.unwrap()[0].clone();
    assert!(matches!(
        kv.set("acme/one", &first, &[1u8; 98], quota).await,
        Err(KvError::QuotaExceeded(_))
    ));
    assert_eq!(
        kv.get("acme/one", &first).await.unwrap(),
        Some(value.to_vec())
    );
    kv.set("acme/one", &first, &[1u8; 47], quota).await.unwrap();
    kv.set("acme/one", "k99", &[2u8; 47], quota).await.unwrap();
    // Two more plugins race for the org's remaining 500 bytes.
    let writes = (10..50).map(|i| {
        let kv = kv.clone();
        let namespace = if i % 2 == 0 { "acme/two" } else { "acme/three" };
        tokio::spawn(async move { kv.set(namespace, &format!("k{i}"), &value, quota).await })
    });
    let results = futures_util::future::join_all(writes).await;
    let stored = results
        .iter()
        .filter(|r| r.as_ref().unwrap().is_ok())
        .count();
    assert_eq!(stored, 5, "exactly the org's 1,000 bytes in all");
    // A deleted entry gives its bytes back, to the namespace and the org.
    assert!(kv.delete("acme/one", "k99").await.unwrap());
    kv.set("acme/four", "k98", &[3u8; 47], quota).await.unwrap();
    assert!(matches!(
        kv.set("acme/four", "k97", &[3u8; 1], quota).await,
        Err(KvError::QuotaExceeded(m)) if m.contains("plugins of acme")
    ));
    // Another org is not affected.
    kv.set("globex/one", "k", &value, quota).await.unwrap();
}
on_both_databases!(byte_quotas_hold_under_concurrent_writers);

/// One org's writers waiting for its lock row hold none of the pool's
/// connections, which every org shares: PostgreSQL only (on SQLite one
/// writer holds the whole database anyway).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orgs_waiting_writers_leave_the_pool_to_other_orgs() {
    let Some(Backend::Postgres(url)) = Backend::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kv = store(&Backend::Postgres(url.clone()), dir.path()).await;
    kv.set("acme/one", "warm", b"v", keys(100)).await.unwrap();
    // Another client holds acme's lock row (a slow writer on another replica).
    let other = Db::connect(&url).await.unwrap();
    let mut holder = other.pool().begin().await.unwrap();
    sqlx::query("UPDATE kv_org_locks SET org = org WHERE org = 'acme'")
        .execute(&mut *holder)
        .await
        .unwrap();
    // More acme writers than the pool has connections (16) wait for it ...
    // (Rewrites of one key: the org's 8-key quota is not the point here.)
    let waiting: Vec<_> = (0..24)
        .map(|i| {
            let kv = kv.clone();
            let value = format!("v{i}");
            tokio::spawn(async move {
                kv.set("acme/one", "warm", value.as_bytes(), keys(100))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // ... while another org's write goes through (it waited for a connection
    // until the pool's 5 s timeout, then failed, when each acme writer held one).
    tokio::time::timeout(
        std::time::Duration::from_secs(4),
        kv.set("globex/one", "k", b"v", keys(100)),
    )
    .await
    .expect("globex's write waited for acme's")
    .unwrap();
    holder.commit().await.unwrap();
    for write in waiting {
        write.await.unwrap().unwrap();
    }
}
