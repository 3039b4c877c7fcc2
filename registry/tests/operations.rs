//! Running the control plane, over real HTTP: health, readiness and metrics,
//! restarts, the database going away and coming back, and the bounds on
//! publishing (component size, compiles at once).

mod common;

use common::{Backend, Org, org, start, start_tweaked};
use reqwest::Method;
use serde_json::{Value, json};
use warden_test_programs::{COUNTER, HELLO, read};

async fn operations_endpoints(backend: Backend) {
    let h = start(backend).await;
    let health = h
        .http
        .get(format!("{}/healthz", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = h
        .http
        .get(format!("{}/readyz", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    h.get(&h.admin, "/v1/orgs/acme").await.expect(200);
    // Junk methods, as an anonymous client may send: counted, but as "other".
    for i in 0..20 {
        let junk = format!("JUNK{}", "X".repeat(100 + i));
        let _ = h
            .http
            .request(
                Method::from_bytes(junk.as_bytes()).unwrap(),
                format!("{}/v1/orgs/acme", h.url),
            )
            .send()
            .await;
    }
    // /metrics names every org's plugins: only the operator org's tokens read it.
    let anonymous = h.get("", "/metrics").await;
    assert_eq!(anonymous.status, 401);
    let tenant_admin = h.create_org("tenant").await;
    h.get(&tenant_admin, "/metrics")
        .await
        .expect_error(403, "not_operator");
    // Nor any role of the operator org but admin: its portal's invoker
    // token reads no other org's plugin names.
    for role in ["invoker", "viewer", "publisher"] {
        let token = h.token(&h.admin, "acme", role).await;
        h.get(&token, "/metrics")
            .await
            .expect_error(403, "not_operator");
    }
    let metrics = h.metrics(&h.admin).await;
    assert!(!metrics.contains("JUNK"), "a method became a label");
    assert!(metrics.contains(r#"method="other""#), "{metrics}");
    assert!(
        metrics.contains(
            r#"warden_http_requests_total{method="GET",route="/v1/orgs/{org}",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("warden_http_request_duration_seconds_bucket"));

    let openapi: Value = h
        .http
        .get(format!("{}/openapi.json", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/plugins/{org}/{name}/releases",
        "/v1/orgs/{org}/audit",
        "/v1/plugins/{org}/{name}/releases/{version}/approve",
    ] {
        assert!(
            openapi["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(openapi["components"]["schemas"]["Release"].is_object());
    let codes = openapi["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("the error codes are listed");
    assert!(codes.contains(&json!("version_exists")) && codes.contains(&json!("internal")));

    // Routes are declared once: every operation the document lists is served
    // (a route the router lacked would be axum's bare 404 or a 405).
    let mut operations = 0;
    for (path, item) in openapi["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{org}", "acme")
            .replace("{name}", "nothing")
            .replace("{version}", "1.0.0")
            .replace("{function}", "f")
            .replace("{key_id}", "k")
            .replace("{id}", "tok_0");
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let answer = h
                .call(&h.admin, method.clone(), &concrete, Some(json!({})))
                .await;
            assert_ne!(answer.status, 405, "{method} {path}");
            assert!(
                answer.status != 404 || answer.body["error"]["code"].is_string(),
                "{method} {path} is in the document but not served"
            );
            operations += 1;
        }
    }
    assert!(operations >= 22, "{operations} operations documented");

    // A 404 route and a wrong method answer in the API's format or plainly, never a 500.
    let unknown = h.get(&h.admin, "/v1/nothing-here").await;
    assert_eq!(unknown.status, 404);
}
on_both_databases!(operations_endpoints);

async fn restarts_keep_everything_and_do_not_bootstrap_again(backend: Backend) {
    let Org {
        h,
        publisher,
        alice,
        ..
    } = org(backend.clone(), 1).await;
    h.publish(&publisher, &alice, "acme/hello", "1.0.0", &read(HELLO), &[])
        .await
        .expect(201);
    let token_file = h.dir.path().join("data/admin-token");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap().trim(),
        h.admin
    );

    let mut config = warden_registry::ServerConfig::new(h.dir.path().join("data"));
    if let Backend::Postgres(url) = &backend {
        config.database_url = Some(url.clone());
    }
    let again = warden_registry::ControlPlane::open(&config).await.unwrap();
    assert!(again.bootstrap_token.is_none());
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap().trim(),
        h.admin
    );
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM releases")
        .fetch_one(again.db().pool())
        .await
        .unwrap();
    assert_eq!(count, 1);
}
on_both_databases!(restarts_keep_everything_and_do_not_bootstrap_again);

/// A TCP relay to PostgreSQL that can be cut and restored: the database "goes
/// down" for the server while the real one keeps running for other tests.
struct Relay {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Relay {
    async fn start(target: std::net::SocketAddr) -> Relay {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let generation = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (up2, generation2) = (up.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused, in effect
                }
                let born = generation2.load(Ordering::SeqCst);
                let (up3, generation3) = (up2.clone(), generation2.clone());
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let cut = async {
                        while up3.load(Ordering::SeqCst)
                            && generation3.load(Ordering::SeqCst) == born
                        {
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut => {}
                    }
                });
            }
        });
        Relay {
            port,
            up,
            generation,
        }
    }

    fn set(&self, up: bool) {
        use std::sync::atomic::Ordering;
        self.up.store(up, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// PostgreSQL down: a clear 503 (API and /readyz), nothing hangs,
/// invocations run from the snapshot for at most its maximum age and then get
/// 503 too, and the server recovers by itself once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_is_a_503_and_recovers() {
    let Some(Backend::Postgres(url)) = Backend::postgres().await else {
        return;
    };
    let (prefix, rest) = url.split_once('@').unwrap();
    let (host_port, database) = rest.split_once('/').unwrap();
    let target: std::net::SocketAddr = tokio::net::lookup_host(host_port)
        .await
        .unwrap()
        .next()
        .unwrap();
    let relay = Relay::start(target).await;
    let relayed = format!("{prefix}@127.0.0.1:{}/{database}", relay.port);
    // Entries as such would be served for a minute: only the rule that
    // nothing is served from memory once the change feed cannot be read
    // for a second stops them.
    let h = start_tweaked(Backend::Postgres(relayed), |config| {
        config.snapshot_max_age = std::time::Duration::from_secs(60);
    })
    .await;
    h.get(&h.admin, "/v1/orgs/acme/plugins").await.expect(200);
    // A loaded, approved release.
    let publisher = h.token(&h.admin, "acme", "publisher").await;
    let alice = h.key(&h.admin, "acme", "publisher", "alice").await;
    let bob = h.pinned_key(0, "acme", "bob").await;
    let release = h
        .publish(&publisher, &alice, "acme/hello", "1.0.0", &read(HELLO), &[])
        .await
        .expect(201);
    h.post(
        &h.admin,
        "/v1/plugins/acme/hello/releases/1.0.0/approve",
        json!({ "envelope": h.approval(&bob, &release, &[]) }),
    )
    .await
    .expect(200);
    let invoke = "/v1/plugins/acme/hello/invoke/greet";
    h.post(&h.admin, invoke, json!({ "args": "x" }))
        .await
        .expect(200);

    relay.set(false);
    // The relay notices the cut within 20 ms; give it ten times that.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // Invocations are served from what the snapshot holds (the token, the
    // resolved release) for at most a second after the last read of the
    // change feed...
    h.post(&h.admin, invoke, json!({ "args": "x" }))
        .await
        .expect(200);
    let answer = h.get(&h.admin, "/v1/orgs/acme/plugins").await;
    answer.expect_error(503, "database_unavailable");
    assert!(
        !answer.body.to_string().contains("127.0.0.1"),
        "no internals: {}",
        answer.body
    );
    let ready = h
        .http
        .get(format!("{}/readyz", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    // ... and then, unable to check the token, the release's status, key
    // revocations and configuration again, refuse with 503 rather than run on
    // stale trust; so does the registry, which authenticates the same way.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    h.post(&h.admin, invoke, json!({ "args": "x" }))
        .await
        .expect_error(503, "database_unavailable");
    let registry = h.get(&h.admin, "/v2/acme/hello/tags/list").await;
    assert_eq!(registry.status, 503, "{}", registry.body);
    let health = h
        .http
        .get(format!("{}/healthz", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "the process itself is fine");

    relay.set(true);
    let mut recovered = false;
    for _ in 0..50 {
        if h.get(&h.admin, "/v1/orgs/acme/plugins").await.status == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        recovered,
        "the server did not recover once the database was back"
    );
    let ready = h
        .http
        .get(format!("{}/readyz", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

async fn components_larger_than_the_server_takes_are_refused(backend: Backend) {
    let hello = read(HELLO);
    let bigger = read(COUNTER);
    assert!(bigger.len() > hello.len());
    // The maximum is exactly hello's size: hello fits, a bigger one does not.
    let max = hello.len() as u64;
    let h = common::start_tweaked(backend, |config| {
        config.max_component_bytes = max;
    })
    .await;
    let publisher = h.token(&h.admin, "acme", "publisher").await;
    let alice = h.key(&h.admin, "acme", "publisher", "alice").await;
    h.publish(&publisher, &alice, "acme/hello", "1.0.0", &hello, &[])
        .await
        .expect(201);
    h.publish(
        &publisher,
        &alice,
        "acme/counter",
        "1.0.0",
        &bigger,
        &["kv"],
    )
    .await
    .expect_error(422, "component_too_large");
}
on_both_databases!(components_larger_than_the_server_takes_are_refused);

/// A component whose core module has `functions` functions of a few thousand
/// instructions each: quick to write, seconds for Cranelift to compile.
fn slow_to_compile(functions: usize) -> Vec<u8> {
    let body = "local.get 0 i32.const 7 i32.mul i32.const 3 i32.xor local.set 0 ".repeat(600);
    let mut module = String::from("(core module $m\n");
    for n in 0..functions {
        module.push_str(&format!(
            "(func $f{n} (param i32) (result i32) {body} local.get 0)\n"
        ));
    }
    module.push_str("(func (export \"run\") (result i32) i32.const 0 call $f0))\n");
    wat::parse_str(format!(
        r#"(component {module}
            (core instance $i (instantiate $m))
            (func $run (result u32) (canon lift (core func $i "run")))
            (export "run" (func $run)))"#
    ))
    .unwrap()
}

/// The `value` of a gauge in the metrics text.
fn gauge(metrics: &str, name: &str) -> i64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
}

#[tokio::test]
async fn publishes_wait_their_turn_to_compile() {
    let h = start_tweaked(Backend::Sqlite, |config| config.concurrent_compiles = 1).await;
    let publisher = h.token(&h.admin, "acme", "publisher").await;
    let alice = h.key(&h.admin, "acme", "publisher", "alice").await;
    let component = slow_to_compile(300);
    let metrics = || h.metrics(&h.admin);
    assert_eq!(
        gauge(&metrics().await, "warden_publish_compiles_running"),
        0
    );
    // Three publishes at once; the gauges are read while they run.
    let done = std::sync::atomic::AtomicBool::new(false);
    let publishes = async {
        let answers = futures_util::future::join_all((0..3).map(|n| {
            let repo = format!("acme/slow-{n}");
            let (h, publisher, alice, component) = (&h, &publisher, &alice, &component);
            async move {
                h.publish(publisher, alice, &repo, "1.0.0", component, &[])
                    .await
            }
        }))
        .await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        answers
    };
    let watch = async {
        let (mut most_running, mut most_waiting) = (0, 0);
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let text = metrics().await;
            most_running = most_running.max(gauge(&text, "warden_publish_compiles_running"));
            most_waiting = most_waiting.max(gauge(&text, "warden_publish_compiles_waiting"));
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        (most_running, most_waiting)
    };
    let (answers, (most_running, most_waiting)) = tokio::join!(publishes, watch);
    for answer in answers {
        answer.expect(201);
    }
    // One compile at a time, and the others were seen waiting for it.
    assert_eq!(most_running, 1, "compiles ran at once");
    assert!(most_waiting >= 1, "no publish was seen waiting");
    let after = metrics().await;
    assert_eq!(gauge(&after, "warden_publish_compiles_running"), 0);
    assert_eq!(gauge(&after, "warden_publish_compiles_waiting"), 0);
}

#[tokio::test]
async fn one_org_cannot_fill_the_compile_queue_for_another() {
    let h = start_tweaked(Backend::Sqlite, |config| {
        config.concurrent_compiles = 1;
        config.compile_queue_per_org = 1;
    })
    .await;
    let publisher = h.token(&h.admin, "acme", "publisher").await;
    let alice = h.key(&h.admin, "acme", "publisher", "alice").await;
    let globex_admin = h.create_org("globex").await;
    let globex_publisher = h.token(&globex_admin, "globex", "publisher").await;
    let gina = h.key(&globex_admin, "globex", "publisher", "gina").await;
    let component = slow_to_compile(300);
    // acme sends five publishes at once: one compiles, one waits, the rest
    // are refused at once; globex's publish, sent with them, waits its turn.
    let acme = futures_util::future::join_all((0..5).map(|n| {
        let repo = format!("acme/slow-{n}");
        let (h, publisher, alice, component) = (&h, &publisher, &alice, &component);
        async move {
            h.publish(publisher, alice, &repo, "1.0.0", component, &[])
                .await
        }
    }));
    let globex = async {
        // After acme's requests are in.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        h.publish(
            &globex_publisher,
            &gina,
            "globex/slow",
            "1.0.0",
            &component,
            &[],
        )
        .await
    };
    let (acme, globex) = tokio::join!(acme, globex);
    globex.expect(201);
    let refused: Vec<_> = acme.iter().filter(|a| a.status == 429).collect();
    let published = acme.iter().filter(|a| a.status == 201).count();
    assert!(
        refused.len() >= 2,
        "{:?}",
        acme.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert_eq!(refused.len() + published, 5);
    for answer in refused {
        answer.expect_error(429, "capacity");
    }
}

/// The data directory's disk fills up (SQLite and the OCI store share it):
/// a write is 507 `storage_full`, not an opaque 500, and `/readyz` says so
/// at once; when space returns, `/readyz` sees it by itself and writes go
/// through again.
// SQLite only: the database is the one in the data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_database_disk_is_507_and_readiness_follows_the_space() {
    let Some(disk) = warden_test_programs::disk::SmallDisk::mount("16m") else {
        return;
    };
    let data = disk.path().join("data");
    let h = start_tweaked(Backend::Sqlite, |config| config.data_dir = data.clone()).await;
    let ready = |h: &common::Harness| h.http.get(format!("{}/readyz", h.url)).send();
    assert_eq!(ready(&h).await.unwrap().status(), 200);
    // Something else takes the rest of the disk.
    let filler = disk.path().join("filler");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&filler).unwrap();
        while file.write_all(&[7u8; 64 << 10]).is_ok() {}
        let _ = file.sync_all();
    }
    // Writes that need new pages fail: a clear 507, never a 500. (A write
    // that waits for a connection whose failed commit SQLite has not rolled
    // back yet may be 503 `database_unavailable`, try again.)
    let mut refused = 0;
    for i in 0..40 {
        let created = h
            .post(
                &h.admin,
                "/v1/orgs/acme/tokens",
                json!({ "name": format!("ci-{i}-{}", "x".repeat(90)), "role": "viewer" }),
            )
            .await;
        match created.status.as_u16() {
            201 => {}
            507 => {
                created.expect_error(507, "storage_full");
                refused += 1;
            }
            _ => created.expect_error(503, "database_unavailable"),
        }
    }
    assert!(refused > 0, "the disk never filled");
    let full = ready(&h).await.unwrap();
    assert_eq!(full.status(), 507);
    assert_eq!(
        full.json::<Value>().await.unwrap()["error"]["code"],
        "storage_full"
    );
    // Space returns: ready again without any client write first.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(ready(&h).await.unwrap().status(), 200);
    h.post(
        &h.admin,
        "/v1/orgs/acme/tokens",
        json!({ "name": "after", "role": "viewer" }),
    )
    .await
    .expect(201);
}

/// A kill between writing a token's staging file and renaming it left a
/// live secret on disk: the next start removes it.
#[tokio::test]
async fn a_start_removes_what_a_crash_left_staged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let staged = data.join(".admin-token.0123456789abcdef.tmp");
    std::fs::write(&staged, b"wdn_a_live_token\n").unwrap();
    let long_ago = std::time::SystemTime::now() - 2 * warden_host::STALE_STAGING;
    std::fs::File::options()
        .write(true)
        .open(&staged)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    warden_registry::ControlPlane::open(&warden_registry::ServerConfig::new(&data))
        .await
        .unwrap();
    assert!(!staged.exists(), "the staged token is still there");
    let left: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
