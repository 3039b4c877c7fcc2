//! Releases kept in an external registry: the CNCF distribution registry from
//! Debian's `docker-registry` package, on a loopback port. Publishing checks the
//! artifact there, the host pulls it from there with oci-client, and a registry
//! outage leaves loaded releases running while new loads fail clearly.

mod common;

use common::{Backend, start_configured};
use serde_json::json;
use warden_registry::{Credentials, RegistryEndpoint};
use warden_test_programs::{Distribution, HELLO, read};

async fn releases_live_in_an_external_registry(backend: Backend) {
    let mut registry = Distribution::start();
    let source = RegistryEndpoint {
        registry: registry.address.clone(),
        insecure: true,
        credentials: Credentials::Anonymous,
    };
    let database_url = match &backend {
        Backend::Postgres(url) => Some(url.clone()),
        Backend::Sqlite => None,
    };
    let h = start_configured(backend, 1, Some(source.clone())).await;
    let publisher = h.token(&h.admin, "acme", "publisher").await;
    let invoker = h.token(&h.admin, "acme", "invoker").await;
    let alice = h.key(&h.admin, "acme", "publisher", "alice").await;
    let bob = h.pinned_key(0, "acme", "bob").await;
    let hello = read(HELLO);

    // Published to the external registry; the server checked it there.
    let release = h
        .publish(&publisher, &alice, "acme/hello", "1.0.0", &hello, &[])
        .await
        .expect(201);
    assert_eq!(release["functions"][0]["name"], "greet");
    // The server wrote the version tag once the release was registered (the
    // push was by digest).
    assert_eq!(
        tagged(&h, &registry, "1.0.0").await.as_deref(),
        release["manifest_digest"].as_str()
    );
    // Another publish of 1.0.0, with other content, loses to the first: its
    // artifact reaches the registry, but the tag stays with the winner.
    h.publish(
        &publisher,
        &alice,
        "acme/hello",
        "1.0.0",
        &read(warden_test_programs::COUNTER),
        &[],
    )
    .await
    .expect_error(409, "version_exists");
    assert_eq!(
        tagged(&h, &registry, "1.0.0").await.as_deref(),
        release["manifest_digest"].as_str(),
        "a refused publish moved the version tag"
    );
    assert!(
        !h.dir
            .path()
            .join("data/oci/repos")
            .join("acme+hello")
            .exists(),
        "nothing went to the embedded store"
    );
    h.post(
        &h.admin,
        "/v1/plugins/acme/hello/releases/1.0.0/approve",
        json!({ "envelope": h.approval(&bob, &release, &[]) }),
    )
    .await
    .expect(200);
    let invoke = "/v1/plugins/acme/hello/invoke/greet";
    let ran = h
        .post(&invoker, invoke, json!({ "args": "external" }))
        .await
        .expect(200);
    assert_eq!(ran["result"], "Hello, external!");
    assert_eq!(ran["release"]["digest"], release["component_digest"]);

    // An artifact that is not in the external registry cannot be registered.
    let missing = format!("sha256:{}", "0".repeat(64));
    let statement = common::statement(&alice, "acme/hello", "9.0.0", &hello, &[]);
    let envelope = alice
        .sign(warden_host::RELEASE_PAYLOAD_TYPE, &statement)
        .unwrap();
    h.post(
        &publisher,
        "/v1/plugins/acme/hello/releases",
        json!({ "envelope": envelope, "manifest_digest": missing }),
    )
    .await
    .expect_error(422, "manifest_unknown");

    // A second version.
    let next = h
        .publish(&publisher, &alice, "acme/hello", "1.1.0", &hello, &[])
        .await
        .expect(201);
    h.post(
        &h.admin,
        "/v1/plugins/acme/hello/releases/1.1.0/approve",
        json!({ "envelope": h.approval(&bob, &next, &[]) }),
    )
    .await
    .expect(200);
    // Someone moves the tag 1.1.0 in the external registry to other content
    // before the host first loads it: the host pulls by the approved digest.
    let other = h
        .push_artifact(
            &publisher,
            "acme/hello",
            &read(warden_test_programs::COUNTER),
        )
        .await;
    let other_manifest = h
        .http
        .get(format!(
            "http://{}/v2/acme/hello/manifests/{other}",
            registry.address
        ))
        .header("accept", warden_registry::oci::MANIFEST_V1)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let moved = h
        .http
        .put(format!(
            "http://{}/v2/acme/hello/manifests/1.1.0",
            registry.address
        ))
        .header("content-type", warden_registry::oci::MANIFEST_V1)
        .body(other_manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 201, "distribution lets tags move");
    let ran = h
        .post(
            &invoker,
            invoke,
            json!({ "args": "pinned", "version": "=1.1.0" }),
        )
        .await
        .expect(200);
    assert_eq!(ran["result"], "Hello, pinned!");
    assert_eq!(ran["release"]["digest"], next["component_digest"]);
    // A tag the server could not write after the commit (an outage, a
    // crash: its row says so) is written again by the repair pass that
    // every start runs, under the registered manifest.
    sqlx::query("UPDATE releases SET tagged_at = NULL WHERE version = '1.1.0'")
        .execute(h.db.pool())
        .await
        .unwrap();
    let mut config = warden_registry::ServerConfig::new(h.dir.path().join("data"));
    config.admin_keys = h.pinned.iter().map(|k| k.public_key()).collect();
    config.external_registry = Some(source);
    config.database_url = database_url;
    drop(warden_registry::ControlPlane::open(&config).await.unwrap());
    assert_eq!(
        tagged(&h, &registry, "1.1.0").await.as_deref(),
        next["manifest_digest"].as_str()
    );
    let untagged: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM releases WHERE tagged_at IS NULL")
        .fetch_one(h.db.pool())
        .await
        .unwrap();
    assert_eq!(untagged, 0);

    // 1.2.0: approved, never loaded; then the registry goes away.
    let last = h
        .publish(&publisher, &alice, "acme/hello", "1.2.0", &hello, &[])
        .await
        .expect(201);
    h.post(
        &h.admin,
        "/v1/plugins/acme/hello/releases/1.2.0/approve",
        json!({ "envelope": h.approval(&bob, &last, &[]) }),
    )
    .await
    .expect(200);
    registry.stop();
    let pinned = h
        .post(
            &invoker,
            invoke,
            json!({ "args": "cached", "version": "=1.0.0" }),
        )
        .await
        .expect(200);
    assert_eq!(
        pinned["result"], "Hello, cached!",
        "a loaded release keeps working"
    );
    let unreachable = h.post(&invoker, invoke, json!({ "args": "new" })).await;
    unreachable.expect_error(502, "registry_unavailable");
    assert!(
        unreachable.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("acme/hello@1.2.0"),
        "{}",
        unreachable.body
    );
}
on_both_databases!(releases_live_in_an_external_registry);

/// The manifest digest the external registry's `acme/hello:{tag}` names.
async fn tagged(h: &common::Harness, registry: &Distribution, tag: &str) -> Option<String> {
    let answer = h
        .http
        .head(format!(
            "http://{}/v2/acme/hello/manifests/{tag}",
            registry.address
        ))
        .header("accept", warden_registry::oci::MANIFEST_V1)
        .send()
        .await
        .unwrap();
    if answer.status() == 404 {
        return None;
    }
    assert_eq!(answer.status(), 200);
    answer
        .headers()
        .get("docker-content-digest")
        .map(|d| d.to_str().unwrap().to_owned())
}
