//! Several replicas on one PostgreSQL: starting at the same instant on an
//! empty database, they all come up, with one organization and one working
//! admin token, whether they share a data directory or each has its own.

mod common;

use common::Backend;
use std::path::Path;
use warden_registry::{ControlPlane, ServerConfig};

/// Replicas started at once, per round.
const REPLICAS: usize = 3;
/// Rounds: half with one shared data directory, half with one each.
const ROUNDS: usize = 10;

/// The token in `dir/admin-token`, if there is one.
fn token_in(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join("admin-token"))
        .ok()
        .map(|text| text.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_started_at_once_on_an_empty_database_set_it_up_once() {
    for round in 0..ROUNDS {
        let Some(Backend::Postgres(url)) = Backend::postgres().await else {
            return;
        };
        let shared = round % 2 == 0;
        let root = tempfile::tempdir().unwrap();
        let dirs: Vec<_> = (0..REPLICAS)
            .map(|n| {
                root.path().join(if shared {
                    "data".to_owned()
                } else {
                    format!("data-{n}")
                })
            })
            .collect();
        let starts: Vec<_> = dirs
            .iter()
            .map(|dir| {
                let mut config = ServerConfig::new(dir);
                config.database_url = Some(url.clone());
                tokio::spawn(async move { ControlPlane::open(&config).await })
            })
            .collect();
        let mut planes = Vec::new();
        for start in starts {
            let plane = start.await.unwrap().unwrap_or_else(|e| {
                panic!("round {round} (shared: {shared}): a start failed: {e}")
            });
            planes.push(plane);
        }
        let created: Vec<&String> = planes
            .iter()
            .filter_map(|plane| plane.bootstrap_token.as_ref())
            .collect();
        assert_eq!(created.len(), 1, "round {round}: one start set it up");
        let db = planes[0].db().clone();
        let (orgs,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orgs")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(orgs, 1, "round {round}");
        // The token files: exactly the created token, in exactly one place,
        // and nothing staged left anywhere.
        let mut unique_dirs = dirs.clone();
        unique_dirs.dedup();
        let kept: Vec<String> = unique_dirs.iter().filter_map(|dir| token_in(dir)).collect();
        assert_eq!(
            kept,
            [created[0].clone()],
            "round {round} (shared: {shared})"
        );
        for dir in &unique_dirs {
            assert!(!dir.join(".admin-token.pending").exists(), "round {round}");
        }
        // It works, on any of them.
        let plane = planes.pop().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(warden_registry::serve(listener, plane.router()));
        let whoami: serde_json::Value = reqwest::Client::new()
            .get(format!("http://{address}/v1/whoami"))
            .bearer_auth(&kept[0])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(whoami["role"], "admin", "round {round}: {whoami}");
    }
}

/// A first start that crashed after its organization and token committed,
/// before its token file became visible, is finished by the next start;
/// a staged token whose creation never committed is removed, and never
/// becomes the token file.
#[tokio::test]
async fn a_first_start_that_crashed_half_way_is_finished_or_undone() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let config = ServerConfig::new(&dir);
    let first = ControlPlane::open(&config).await.unwrap();
    let token = first.bootstrap_token.clone().unwrap();
    drop(first);
    // The crash: the token committed, its file still staged.
    std::fs::rename(dir.join("admin-token"), dir.join(".admin-token.pending")).unwrap();
    let again = ControlPlane::open(&config).await.unwrap();
    assert_eq!(again.bootstrap_token, None, "set up once");
    assert_eq!(token_in(&dir).as_deref(), Some(token.as_str()));
    assert!(!dir.join(".admin-token.pending").exists());
    drop(again);
    // A staged secret that is no token: removed, the token file untouched.
    std::fs::write(dir.join(".admin-token.pending"), "wdn_not-a-token\n").unwrap();
    let third = ControlPlane::open(&config).await.unwrap();
    assert_eq!(third.bootstrap_token, None);
    assert_eq!(token_in(&dir).as_deref(), Some(token.as_str()));
    assert!(!dir.join(".admin-token.pending").exists());
}

/// A replica that begins to stop says so on `/readyz` (503
/// `shutting_down`), so a load balancer takes it out.
#[tokio::test]
async fn a_stopping_replica_is_not_ready() {
    let root = tempfile::tempdir().unwrap();
    let plane = ControlPlane::open(&ServerConfig::new(root.path().join("data")))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let readyz = format!("http://{}/readyz", listener.local_addr().unwrap());
    tokio::spawn(warden_registry::serve(listener, plane.router()));
    let client = reqwest::Client::new();
    assert_eq!(client.get(&readyz).send().await.unwrap().status(), 200);
    plane.begin_draining();
    let answer = client.get(&readyz).send().await.unwrap();
    assert_eq!(answer.status(), 503);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "shutting_down");
}
