//! The product as a whole: a release published, approved, pulled with
//! oci-client from the embedded registry, verified against the pinned admin
//! keys, and invoked over HTTP; on SQLite and on PostgreSQL.

mod common;

use common::{Backend, approval_body, world};
use reqwest::Method;
use serde_json::{Value, json};
use warden_host::{Limits, PrivateKey};
use warden_test_programs::{CAPABILITIES, COUNTER, HELLO, HOSTILE, TEXT_TOOLS, read};

async fn the_newest_approved_release_runs(backend: Backend) {
    let w = world(backend).await;
    let hello = read(HELLO);
    w.h.publish(&w.publisher, &w.alice, "acme/hello", "1.0.0", &hello, &[])
        .await
        .expect(201);
    w.invoke(&w.invoker, "hello", "greet", json!({ "args": "world" }))
        .await
        .expect_error(404, "no_approved_release");

    let release =
        w.h.get(&w.h.admin, "/v1/plugins/acme/hello/releases/1.0.0")
            .await
            .expect(200);
    w.h.post(
        &w.h.admin,
        "/v1/plugins/acme/hello/releases/1.0.0/approve",
        approval_body(&w.bob, &release, &[], Limits::default()),
    )
    .await
    .expect(200);
    let ran = w
        .invoke(&w.invoker, "hello", "greet", json!({ "args": "world" }))
        .await
        .expect(200);
    assert_eq!(ran["result"], "Hello, world!");
    assert_eq!(ran["release"]["version"], "1.0.0");
    assert_eq!(ran["release"]["digest"], release["component_digest"]);
    assert!(ran["metering"]["fuel_used"].as_u64().unwrap() > 0);
    assert_eq!(ran["logs"][0]["message"], "greeting world");
    // By name and by position too.
    let by_name = w
        .invoke(
            &w.invoker,
            "hello",
            "greet",
            json!({ "args": { "name": "Ada" } }),
        )
        .await
        .expect(200);
    assert_eq!(by_name["result"], "Hello, Ada!");

    // Who may invoke: invoker and admin of the org; not viewers, not publishers, not other orgs.
    w.invoke(&w.h.admin, "hello", "greet", json!({ "args": ["x"] }))
        .await
        .expect(200);
    let viewer = w.h.token(&w.h.admin, "acme", "viewer").await;
    w.invoke(&viewer, "hello", "greet", json!({ "args": ["x"] }))
        .await
        .expect_error(403, "insufficient_role");
    w.invoke(&w.publisher, "hello", "greet", json!({ "args": ["x"] }))
        .await
        .expect_error(403, "insufficient_role");
    let globex_admin = &w.h.create_org("globex").await;
    w.invoke(globex_admin, "hello", "greet", json!({ "args": ["x"] }))
        .await
        .expect_error(403, "wrong_org");

    // A new approved version takes over; a requirement picks an older one;
    // yanking routes back; nothing matching is a 404.
    w.release("hello", "1.1.0", &hello, &[], Limits::default())
        .await;
    let ran = w
        .invoke(&w.invoker, "hello", "greet", json!({ "args": ["x"] }))
        .await
        .expect(200);
    assert_eq!(ran["release"]["version"], "1.1.0");
    let pinned = w
        .invoke(
            &w.invoker,
            "hello",
            "greet",
            json!({ "args": ["x"], "version": "~1.0" }),
        )
        .await
        .expect(200);
    assert_eq!(pinned["release"]["version"], "1.0.0");
    // A plugin name is a name, not a name and a requirement: `hello@~1.0`
    // is refused, not served as `hello` at `~1.0` (which was just resolved
    // and is held in memory), and never becomes a metrics label.
    w.invoke(&w.invoker, "hello@~1.0", "greet", json!({ "args": ["x"] }))
        .await
        .expect_error(400, "invalid_name");
    w.invoke(
        &w.invoker,
        "hello",
        "greet",
        json!({ "args": ["x"], "version": "^2" }),
    )
    .await
    .expect_error(404, "no_approved_release");
    w.invoke(
        &w.invoker,
        "hello",
        "greet",
        json!({ "args": ["x"], "version": "newest" }),
    )
    .await
    .expect_error(400, "invalid_version_requirement");
    w.h.post(
        &w.h.admin,
        "/v1/plugins/acme/hello/releases/1.1.0/yank",
        json!({ "reason": "bad" }),
    )
    .await
    .expect(200);
    let ran = w
        .invoke(&w.invoker, "hello", "greet", json!({ "args": ["x"] }))
        .await
        .expect(200);
    assert_eq!(ran["release"]["version"], "1.0.0");

    // Revoking the publisher's key stops its releases at once.
    let revoked =
        w.h.call(
            &w.h.admin,
            Method::POST,
            &format!(
                "/v1/orgs/acme/keys/{}/revoke",
                w.alice.public_key().key_id()
            ),
            None,
        )
        .await;
    assert_eq!(revoked.status, 204);
    w.invoke(&w.invoker, "hello", "greet", json!({ "args": ["x"] }))
        .await
        .expect_error(409, "release_untrusted");

    // Counters per plugin and release.
    let metrics = w.h.metrics(&w.h.admin).await;
    assert!(
        metrics
            .contains(r#"warden_plugin_invocations_total{plugin="acme/hello",version="1.0.0"} 5"#),
        "{metrics}"
    );
    // 1.1.0 was yanked: it never runs again, and its series are gone.
    assert!(
        !metrics.contains(r#"plugin="acme/hello",version="1.1.0""#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"warden_plugin_fuel_total{plugin="acme/hello",version="1.0.0"}"#),
        "{metrics}"
    );
}
on_both_databases!(the_newest_approved_release_runs);

async fn every_failure_has_its_status_and_code(backend: Backend) {
    let w = world(backend).await;
    w.release("text", "1.0.0", &read(TEXT_TOOLS), &[], Limits::default())
        .await;
    w.invoke(&w.invoker, "nothing", "f", json!({}))
        .await
        .expect_error(404, "not_found");
    w.invoke(&w.invoker, "text", "text.nothing", json!({}))
        .await
        .expect_error(404, "unknown_function");
    let bad = w
        .invoke(
            &w.invoker,
            "text",
            "text.convert-case",
            json!({ "args": ["Hi", "shouting"] }),
        )
        .await;
    bad.expect_error(400, "bad_argument");
    assert!(
        bad.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("style"),
        "{}",
        bad.body
    );
    let own = w
        .invoke(
            &w.invoker,
            "text",
            "text.slugify",
            json!({ "args": ["!!!", {}] }),
        )
        .await;
    own.expect_error(422, "plugin_error");
    assert_eq!(
        own.body["error"]["details"]["error"],
        "nothing usable in \"!!!\""
    );
    w.invoke(
        &w.invoker,
        "text",
        "text.count",
        json!({ "args": "a b", "extra": 1 }),
    )
    .await
    .expect_error(400, "invalid_body");

    // Limits from the approval: fuel and memory, each its own code; within them it works.
    let hostile = read(HOSTILE);
    let limits = Limits {
        fuel: 20_000_000,
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    w.release("hostile", "1.0.0", &hostile, &[], limits).await;
    w.invoke(&w.invoker, "hostile", "burn", json!({ "args": [100_000] }))
        .await
        .expect(200);
    w.invoke(
        &w.invoker,
        "hostile",
        "burn",
        json!({ "args": [1_000_000_000u64] }),
    )
    .await
    .expect_error(422, "out_of_fuel");
    w.invoke(&w.invoker, "hostile", "allocate", json!({ "args": [8] }))
        .await
        .expect(200);
    w.invoke(&w.invoker, "hostile", "allocate", json!({ "args": [64] }))
        .await
        .expect_error(422, "memory_limit");
    w.invoke(&w.invoker, "hostile", "trap", json!({}))
        .await
        .expect_error(422, "trap");
    let ping = w
        .invoke(&w.invoker, "hostile", "ping", json!({}))
        .await
        .expect(200);
    assert_eq!(ping["result"], "pong");
    let metrics = w.h.metrics(&w.h.admin).await;
    assert!(metrics.contains(r#"warden_plugin_invocation_errors_total{plugin="acme/hostile",version="1.0.0",kind="out_of_fuel"} 1"#), "{metrics}");
}
on_both_databases!(every_failure_has_its_status_and_code);

async fn grants_config_and_kv_come_from_the_approval_and_the_database(backend: Backend) {
    let w = world(backend).await;
    w.release(
        "counter",
        "1.0.0",
        &read(COUNTER),
        &["kv"],
        Limits::default(),
    )
    .await;
    for expected in [1, 2, 3] {
        let ran = w
            .invoke(
                &w.invoker,
                "counter",
                "increment",
                json!({ "args": ["visits", 1] }),
            )
            .await
            .expect(200);
        assert_eq!(ran["result"], expected);
    }
    // The count lives in the control plane's database, in the plugin's namespace.
    let (count,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM kv WHERE namespace = 'acme/counter'")
            .fetch_one(w.h.db.pool())
            .await
            .unwrap();
    assert_eq!(count, 1);

    // Requested kv, approved without it: the component imports it, so it is
    // refused before any of its code runs.
    let release =
        w.h.publish(
            &w.publisher,
            &w.alice,
            "acme/counter",
            "1.1.0",
            &read(COUNTER),
            &["kv"],
        )
        .await
        .expect(201);
    w.h.post(
        &w.h.admin,
        "/v1/plugins/acme/counter/releases/1.1.0/approve",
        approval_body(&w.bob, &release, &[], Limits::default()),
    )
    .await
    .expect(200);
    w.invoke(
        &w.invoker,
        "counter",
        "increment",
        json!({ "args": ["visits", 1] }),
    )
    .await
    .expect_error(409, "missing_capabilities");
}
on_both_databases!(grants_config_and_kv_come_from_the_approval_and_the_database);

async fn tampering_is_refused_and_audited(backend: Backend) {
    let w = world(backend).await;
    let hello = read(HELLO);

    // An approval row edited in the database (grants kv it never signed).
    let release = w
        .release("edited", "1.0.0", &hello, &[], Limits::default())
        .await;
    let envelope = &release["approvals"][0]["envelope"];
    let mut forged = envelope.clone();
    forged["payload"] = json!(envelope["payload"].as_str().unwrap().replacen('e', "f", 1));
    sqlx::query("UPDATE approvals SET envelope = $1 WHERE org = 'acme' AND name = 'edited'")
        .bind(forged.to_string())
        .execute(w.h.db.pool())
        .await
        .unwrap();
    let refused = w
        .invoke(&w.invoker, "edited", "greet", json!({ "args": "x" }))
        .await;
    refused.expect_error(409, "release_untrusted");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("approval"),
        "{}",
        refused.body
    );

    // Approved in the database by an admin key the host does not pin.
    let rogue = w.h.key(&w.h.admin, "acme", "admin", "mallory").await;
    let published =
        w.h.publish(&w.publisher, &w.alice, "acme/rogue", "1.0.0", &hello, &[])
            .await
            .expect(201);
    w.h.post(
        &w.h.admin,
        "/v1/plugins/acme/rogue/releases/1.0.0/approve",
        approval_body(&rogue, &published, &[], Limits::default()),
    )
    .await
    .expect(200);
    let refused = w
        .invoke(&w.invoker, "rogue", "greet", json!({ "args": "x" }))
        .await;
    refused.expect_error(409, "release_untrusted");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("0 valid approval(s) from pinned admin keys"),
        "{}",
        refused.body
    );

    // The component's blob modified in the OCI store after approval.
    let release = w
        .release("swapped", "1.0.0", &hello, &[], Limits::default())
        .await;
    let digest = release["component_digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let blob = w.h.dir.path().join("data/oci/blobs/sha256").join(digest);
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    let refused = w
        .invoke(&w.invoker, "swapped", "greet", json!({ "args": "x" }))
        .await;
    refused.expect_error(409, "release_untrusted");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("digest"),
        "{}",
        refused.body
    );

    // Each verification refusal is in the audit log.
    let audit =
        w.h.get(&w.h.admin, "/v1/audit?limit=1000")
            .await
            .expect(200);
    let refusals: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "release.refused")
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        refusals,
        [
            "acme/edited@1.0.0",
            "acme/rogue@1.0.0",
            "acme/swapped@1.0.0"
        ]
    );

    // An untampered release keeps working next to them.
    w.release("fine", "1.0.0", &hello, &[], Limits::default())
        .await;
    w.invoke(&w.invoker, "fine", "greet", json!({ "args": "x" }))
        .await
        .expect(200);
}
on_both_databases!(tampering_is_refused_and_audited);

/// The runtime reads artifacts from the embedded store in process: a control
/// plane that listens nowhere (its router driven directly, as an embedder or
/// a test would) runs an approved release. It used to pull from its own
/// `/v2/` over loopback HTTP, and without a listener every invocation was 502.
async fn a_control_plane_runs_releases_without_listening_anywhere(backend: Backend) {
    use tower::ServiceExt as _;
    let w = world(backend.clone()).await;
    w.release("hello", "1.0.0", &read(HELLO), &[], Limits::default())
        .await;
    let mut config = warden_registry::ServerConfig::new(w.h.dir.path().join("data"));
    config.admin_keys = w.h.pinned.iter().map(PrivateKey::public_key).collect();
    if let Backend::Postgres(url) = &backend {
        config.database_url = Some(url.clone());
    }
    let plane = warden_registry::ControlPlane::open(&config).await.unwrap();
    let request = axum::http::Request::post("/v1/plugins/acme/hello/invoke/greet")
        .header("authorization", format!("Bearer {}", w.invoker))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(r#"{"args": "in process"}"#))
        .unwrap();
    let response = plane.router().oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], "Hello, in process!");
}
on_both_databases!(a_control_plane_runs_releases_without_listening_anywhere);

async fn running_invocations_finish_on_the_release_they_started_with(backend: Backend) {
    let w = world(backend).await;
    let hostile = read(HOSTILE);
    // One invocation at a time: a 429 on 1.0.0 proves the slow call is running.
    let one_at_a_time = Limits {
        concurrency: 1,
        ..Limits::default()
    };
    w.release("slow", "1.0.0", &hostile, &[], one_at_a_time)
        .await;
    let release =
        w.h.publish(&w.publisher, &w.alice, "acme/slow", "1.1.0", &hostile, &[])
            .await
            .expect(201);
    let url = format!("{}/v1/plugins/acme/slow/invoke/sleep", w.h.url);
    // The slow call competes with the probes below for the single slot: it
    // retries while a probe holds it; a probe that gets 429 proves it runs.
    let running = {
        let (http, token) = (w.h.http.clone(), w.invoker.clone());
        tokio::spawn(async move {
            for _ in 0..10_000 {
                let response = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({ "args": [1500] }))
                    .send()
                    .await
                    .unwrap();
                if response.status() != 429 {
                    return response.json::<Value>().await.unwrap();
                }
            }
            panic!("the slow call never got its slot");
        })
    };
    for attempt in 0.. {
        assert!(attempt < 10_000, "the slow call never started");
        let probe = w
            .invoke(&w.invoker, "slow", "ping", json!({ "version": "=1.0.0" }))
            .await;
        if probe.status == 429 {
            break;
        }
        assert_eq!(probe.status, 200, "{}", probe.body);
    }
    // While it sleeps, 1.1.0 is approved and takes every new call.
    w.h.post(
        &w.h.admin,
        "/v1/plugins/acme/slow/releases/1.1.0/approve",
        approval_body(&w.bob, &release, &[], Limits::default()),
    )
    .await
    .expect(200);
    let new = w
        .invoke(&w.invoker, "slow", "ping", json!({}))
        .await
        .expect(200);
    assert_eq!(new["release"]["version"], "1.1.0");
    let finished = running.await.unwrap();
    assert_eq!(finished["release"]["version"], "1.0.0", "{finished}");
    assert_eq!(finished["result"], Value::Null, "{finished}");
}
on_both_databases!(running_invocations_finish_on_the_release_they_started_with);

async fn configuration_changes_apply_to_the_next_invocation(backend: Backend) {
    let w = world(backend).await;
    let caps = ["config", "http:example.com", "kv"];
    w.release(
        "caps",
        "1.0.0",
        &read(CAPABILITIES),
        &caps,
        Limits::default(),
    )
    .await;
    let read_greeting = || {
        w.invoke(
            &w.invoker,
            "caps",
            "config-get",
            json!({ "args": "greeting" }),
        )
    };
    assert_eq!(read_greeting().await.expect(200)["result"], Value::Null);
    let config = "/v1/plugins/acme/caps/config";
    w.h.call(
        &w.h.admin,
        Method::PUT,
        config,
        Some(json!({ "values": { "greeting": "hello" } })),
    )
    .await
    .expect(200);
    assert_eq!(read_greeting().await.expect(200)["result"], "hello");
    w.h.call(
        &w.h.admin,
        Method::PUT,
        config,
        Some(json!({ "values": { "greeting": "bonjour", "lang": "fr" } })),
    )
    .await
    .expect(200);
    assert_eq!(read_greeting().await.expect(200)["result"], "bonjour");
    let all = w
        .invoke(&w.invoker, "caps", "config-all", json!({}))
        .await
        .expect(200);
    assert_eq!(
        all["result"],
        json!([["greeting", "bonjour"], ["lang", "fr"]])
    );
    // The kv namespace is the plugin's own: another plugin does not see it.
    w.invoke(&w.invoker, "caps", "kv-set", json!({ "args": ["k", "v"] }))
        .await
        .expect(200);
    assert_eq!(
        w.invoke(&w.invoker, "caps", "kv-get", json!({ "args": "k" }))
            .await
            .expect(200)["result"],
        "v"
    );
    w.release(
        "caps2",
        "1.0.0",
        &read(CAPABILITIES),
        &caps,
        Limits::default(),
    )
    .await;
    assert_eq!(
        w.invoke(&w.invoker, "caps2", "kv-get", json!({ "args": "k" }))
            .await
            .expect(200)["result"],
        Value::Null
    );
}
on_both_databases!(configuration_changes_apply_to_the_next_invocation);

/// Plugins from other languages go through the same publish -> approve ->
/// invoke flow: a Python (componentize-py) and a JavaScript (componentize-js)
/// build of one plugin, their typed functions over HTTP, and the approved
/// limits stopping an endless loop and a memory bomb.
async fn python_and_javascript_plugins_are_published_approved_and_invoked(backend: Backend) {
    let w = world(backend).await;
    let limits = Limits {
        fuel: 200_000_000,
        memory_bytes: 48 << 20,
        ..Limits::default()
    };
    for (name, component) in [
        ("python", warden_test_programs::PYTHON_POLYGLOT),
        ("javascript", warden_test_programs::JAVASCRIPT_POLYGLOT),
    ] {
        w.release(name, "1.0.0", &read(component), &[], limits.clone())
            .await;
        let call = |function: &'static str, args: Value| {
            let w = &w;
            async move {
                w.invoke(&w.invoker, name, function, json!({ "args": args }))
                    .await
            }
        };
        let area = call(
            "shapes.area",
            json!({"rect": [{"x": 0, "y": 0}, {"x": 3, "y": 7}]}),
        )
        .await
        .expect(200);
        assert_eq!(area["result"], 21, "{name}");
        assert_eq!(area["release"]["name"], format!("acme/{name}"));
        let moved = call("shapes.shift", json!([[{"x": 1, "y": 1}], -1, 2]))
            .await
            .expect(200);
        assert_eq!(moved["result"], json!([{"x": 0, "y": 3}]), "{name}");
        let label = call(
            "shapes.label",
            json!({"p": {"x": 5, "y": 6}, "u": "metric"}),
        )
        .await
        .expect(200);
        assert_eq!(label["result"], "(5, 6) m", "{name}");
        let refused = call("shapes.parse-age", json!("-3")).await;
        refused.expect_error(422, "plugin_error");
        assert_eq!(
            refused.body["error"]["details"]["error"], "out of range: -3",
            "{name}"
        );
        call("shapes.find", json!([["a"], 7]))
            .await
            .expect_error(400, "bad_argument");
        // The approved limits, both sides.
        let held = call("hog", json!(4)).await.expect(200);
        assert_eq!(held["result"], 4, "{name}");
        call("hog", json!(64))
            .await
            .expect_error(422, "memory_limit");
        call("spin", json!([]))
            .await
            .expect_error(422, "out_of_fuel");
        // And the plugin still answers afterwards.
        call("shapes.area", json!({"circle": 1})).await.expect(200);
    }
}
on_both_databases!(python_and_javascript_plugins_are_published_approved_and_invoked);

async fn a_newer_release_whose_key_is_revoked_gives_way_to_an_older_trusted_one(backend: Backend) {
    let w = world(backend).await;
    let hello = read(HELLO);
    w.release("hello", "1.0.0", &hello, &[], Limits::default())
        .await;
    // 1.1.0 is signed by carol, whose key is then revoked.
    let carol = w.h.key(&w.h.admin, "acme", "publisher", "carol").await;
    let newer =
        w.h.publish(&w.publisher, &carol, "acme/hello", "1.1.0", &hello, &[])
            .await
            .expect(201);
    w.h.post(
        &w.h.admin,
        "/v1/plugins/acme/hello/releases/1.1.0/approve",
        approval_body(&w.bob, &newer, &[], Limits::default()),
    )
    .await
    .expect(200);
    let w = &w;
    let revoke = |key: &PrivateKey| {
        let path = format!("/v1/orgs/acme/keys/{}/revoke", key.public_key().key_id());
        async move {
            let revoked = w.h.call(&w.h.admin, Method::POST, &path, None).await;
            assert_eq!(revoked.status, 204);
        }
    };
    revoke(&carol).await;
    // 1.0.0 runs, and the answer says that 1.1.0 was passed over and why.
    let ran = w
        .invoke(&w.invoker, "hello", "greet", json!({ "args": ["x"] }))
        .await
        .expect(200);
    assert_eq!(ran["release"]["version"], "1.0.0");
    let skipped = &ran["release"]["skipped"];
    assert_eq!(skipped[0]["version"], "1.1.0", "{ran}");
    let reason = skipped[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&carol.public_key().key_id()) && reason.contains("revoked"),
        "{reason}"
    );
    // A requirement only the untrusted release matches is still refused.
    w.invoke(
        &w.invoker,
        "hello",
        "greet",
        json!({ "args": ["x"], "version": "=1.1.0" }),
    )
    .await
    .expect_error(409, "release_untrusted");
    // With every publisher key revoked, nothing runs.
    revoke(&w.alice).await;
    w.invoke(&w.invoker, "hello", "greet", json!({ "args": ["x"] }))
        .await
        .expect_error(409, "release_untrusted");
}
on_both_databases!(a_newer_release_whose_key_is_revoked_gives_way_to_an_older_trusted_one);
