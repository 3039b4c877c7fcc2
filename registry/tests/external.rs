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
    let h = start_configured(backend, 1, Some(source)).await;
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
