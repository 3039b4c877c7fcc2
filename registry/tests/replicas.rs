//! Several replicas on one PostgreSQL: starting at the same instant on an
//! empty database, they all come up, with one organization and one working
//! admin token, whether they share a data directory or each has its own.

mod common;

use common::Backend;
use std::path::Path;
use warden_registry::{ControlPlane, Credentials, RegistryEndpoint, ServerConfig};

/// Replicas started at once, per round.
const REPLICAS: usize = 3;
/// Rounds: half with one shared data directory, half with one each (and an
/// external registry).
const ROUNDS: usize = 10;

/// An external registry's endpoint (never reached by these tests).
fn external() -> RegistryEndpoint {
    RegistryEndpoint {
        registry: "127.0.0.1:9".to_owned(),
        insecure: true,
        credentials: Credentials::Anonymous,
    }
}

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
                // Separate data directories need an external registry (the
                // embedded store would not be shared); nothing is pulled
                // at start.
                if !shared {
                    config.external_registry = Some(external());
                }
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

/// A replica that starts while another (on the same database and store)
/// is between writing a version tag and committing its release waits for
/// that publish, and keeps its tag; before, its start-up clean-up removed
/// the tag as a crash's leftover, leaving a release without its tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_starting_during_a_publish_keeps_its_tag() {
    let Some(backend @ Backend::Postgres(_)) = Backend::postgres().await else {
        return;
    };
    let Backend::Postgres(url) = backend.clone() else {
        unreachable!()
    };
    let o = common::org_on(common::start_tweaked(backend, |_| {}).await).await;
    let h = &o.h;
    let component = warden_test_programs::read(warden_test_programs::HELLO);
    let manifest_digest = h
        .push_artifact(&o.publisher, "acme/hello", &component)
        .await;
    let statement = common::statement(&o.alice, "acme/hello", "1.0.0", &component, &[]);
    let envelope = o
        .alice
        .sign(warden_host::RELEASE_PAYLOAD_TYPE, &statement)
        .unwrap();
    // The publish will stop between its tag and its commit: the audit
    // entry its commit writes is taken first by a transaction held open.
    let (head,): (i64,) = sqlx::query_as("SELECT seq FROM audit_heads WHERE org = 'acme'")
        .fetch_one(h.db.pool())
        .await
        .unwrap();
    let mut blocker = h.db.pool().begin().await.unwrap();
    sqlx::query(
        "INSERT INTO audit (org, seq, at, actor, action, target, details, prev_hash, hash)
         VALUES ('acme', $1, 0, 'test', 'test', 'test', '{}', '', '')",
    )
    .bind(head + 1)
    .execute(&mut *blocker)
    .await
    .unwrap();
    let data = h.dir.path().join("data");
    let publish = h.post(
        &o.publisher,
        "/v1/plugins/acme/hello/releases",
        serde_json::json!({ "envelope": envelope, "manifest_digest": manifest_digest }),
    );
    let meanwhile = async {
        // The publish is under way (waiting on the entry) when the other
        // replica starts on the same store.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let mut config = ServerConfig::new(&data);
        config.database_url = Some(url.clone());
        let other = tokio::spawn(async move { ControlPlane::open(&config).await });
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        blocker.rollback().await.unwrap();
        other.await.unwrap().unwrap()
    };
    let (published, _other) = tokio::join!(publish, meanwhile);
    published.expect(201);
    let manifest = reqwest::Client::new()
        .get(format!("{}/v2/acme/hello/manifests/1.0.0", h.url))
        .bearer_auth(&h.admin)
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.status(), 200, "the version tag survived");
}

/// Replicas on one PostgreSQL database with the embedded store must share
/// it: one with a data directory of its own is refused at start, with what
/// to do, before it touches anything.
#[tokio::test]
async fn a_replica_with_its_own_embedded_store_is_refused() {
    let Some(Backend::Postgres(url)) = Backend::postgres().await else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let config = |dir: &str| {
        let mut config = ServerConfig::new(root.path().join(dir));
        config.database_url = Some(url.clone());
        config
    };
    let first = ControlPlane::open(&config("data")).await.unwrap();
    let shared = ControlPlane::open(&config("data")).await.unwrap();
    drop((first, shared));
    let refused = ControlPlane::open(&config("elsewhere"))
        .await
        .err()
        .expect("a second embedded store is refused")
        .to_string();
    assert!(
        refused.contains("must share one data directory")
            && refused.contains("external registry (--registry)"),
        "{refused}"
    );
    assert!(
        !root.path().join("elsewhere/admin-token").exists(),
        "nothing was set up there"
    );
    // With an external registry, a data directory of its own is fine.
    let mut external_config = config("elsewhere");
    external_config.external_registry = Some(external());
    ControlPlane::open(&external_config).await.unwrap();
}

/// Replicas sharing a data directory share the embedded registry's upload
/// sessions: a chunked push that a round-robin balancer spreads over two
/// replicas (one of them started while the push was open) is stored whole
/// and can be published. Two chunks sent at once for the same offset
/// through different replicas do not interleave: one is taken, the other is
/// refused with 416. Before, sessions lived in the memory of the replica
/// that started them (404 on the other), and a starting replica removed
/// every session in progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chunked_push_continues_on_any_replica_sharing_the_store() {
    let Some(backend @ Backend::Postgres(_)) = Backend::postgres().await else {
        return;
    };
    let Backend::Postgres(url) = backend.clone() else {
        unreachable!()
    };
    let o = common::org_on(common::start_tweaked(backend, |_| {}).await).await;
    let h = &o.h;
    let http = reqwest::Client::new();
    let artifact = warden_registry::WasmArtifact::new(
        warden_test_programs::read(warden_test_programs::HELLO),
        &["greet"],
        &[],
    );
    let component = &artifact.component;
    let digest = warden_registry::Digest::of(component);
    let a = h.url.clone();
    let started = http
        .post(format!("{a}/v2/acme/hello/blobs/uploads/"))
        .bearer_auth(&o.publisher)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let location = started.headers()["location"].to_str().unwrap().to_owned();

    // The second replica starts while the session is open.
    let mut config = ServerConfig::new(h.dir.path().join("data"));
    config.database_url = Some(url);
    config.admin_keys = h.pinned.iter().map(|k| k.public_key()).collect();
    let other = ControlPlane::open(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b = format!("http://{}", listener.local_addr().unwrap());
    let router = other.router();
    tokio::spawn(async move { warden_registry::serve(listener, router).await.unwrap() });

    let third = component.len() / 3;
    let chunk = |base: &str, from: usize, to: usize| {
        http.patch(format!("{base}{location}"))
            .bearer_auth(&o.publisher)
            .header("content-range", format!("{from}-{}", to - 1))
            .header("content-type", "application/octet-stream")
            .body(component[from..to].to_vec())
            .send()
    };
    assert_eq!(chunk(&b, 0, third).await.unwrap().status(), 202);
    // The same second chunk through both replicas at once: one is taken.
    let (one, two) = tokio::join!(chunk(&a, third, 2 * third), chunk(&b, third, 2 * third));
    let mut statuses = [one.unwrap().status(), two.unwrap().status()];
    statuses.sort();
    assert_eq!(statuses, [202, 416]);
    let status = http
        .get(format!("{b}{location}"))
        .bearer_auth(&o.publisher)
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 204);
    assert_eq!(status.headers()["range"], format!("0-{}", 2 * third - 1));
    assert_eq!(
        chunk(&a, 2 * third, component.len())
            .await
            .unwrap()
            .status(),
        202
    );
    let finished = http
        .put(format!("{b}{location}?digest={digest}"))
        .bearer_auth(&o.publisher)
        .send()
        .await
        .unwrap();
    assert_eq!(finished.status(), 201, "{:?}", finished.text().await);
    // Closed on every replica once finished.
    let gone = http
        .get(format!("{a}{location}"))
        .bearer_auth(&o.publisher)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);

    // The config and the manifest, then the release, each through a replica.
    let config_digest = warden_registry::Digest::of(&artifact.config);
    let pushed = http
        .post(format!(
            "{a}/v2/acme/hello/blobs/uploads/?digest={config_digest}"
        ))
        .bearer_auth(&o.publisher)
        .body(artifact.config.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 201);
    let manifest_digest = artifact.manifest_digest();
    let pushed = http
        .put(format!("{b}/v2/acme/hello/manifests/{manifest_digest}"))
        .bearer_auth(&o.publisher)
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(artifact.manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 201);
    let statement = common::statement(&o.alice, "acme/hello", "1.0.0", component, &[]);
    let envelope = o
        .alice
        .sign(warden_host::RELEASE_PAYLOAD_TYPE, &statement)
        .unwrap();
    let published = http
        .post(format!("{a}/v1/plugins/acme/hello/releases"))
        .bearer_auth(&o.publisher)
        .json(&serde_json::json!({
            "envelope": envelope,
            "manifest_digest": manifest_digest.to_string(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 201, "{:?}", published.text().await);
}
