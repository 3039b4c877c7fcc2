//! The control plane over real HTTP on loopback, each test on SQLite and on
//! PostgreSQL: publishing, review, approval, the role x endpoint x org matrix,
//! bad input refused with nothing stored, the audit chain, operations.

mod common;

use common::{Backend, Harness, start, start_tweaked, start_with};
use reqwest::Method;
use serde_json::{Value, json};
use warden_host::{Envelope, PrivateKey, RELEASE_PAYLOAD_TYPE};
use warden_registry::types::{AuditEntry, AuditHead};
use warden_registry::{ChainBreak, verify_chain};
use warden_test_programs::{COUNTER, HELLO, read};

/// A server with a publisher token, a publisher key (alice) and an admin key (bob).
struct Org {
    h: Harness,
    publisher: String,
    alice: PrivateKey,
    bob: PrivateKey,
}

async fn org(backend: Backend, approvals: u32) -> Org {
    let h = start_with(backend, approvals).await;
    let publisher = h.token(&h.admin, "acme", "publisher").await;
    let alice = h.key(&h.admin, "acme", "publisher", "alice").await;
    let bob = h.pinned_key(0, "acme", "bob").await;
    Org {
        h,
        publisher,
        alice,
        bob,
    }
}

async fn publish_review_approve(backend: Backend) {
    let Org {
        h,
        publisher,
        alice,
        bob,
    } = org(backend, 1).await;
    let hello = read(HELLO);
    let published = h
        .publish(&publisher, &alice, "acme/hello", "1.0.0", &hello, &[])
        .await
        .expect(201);
    assert_eq!(published["status"], "pending");
    assert_eq!(published["signer"]["owner"], "alice");
    assert_eq!(published["functions"][0]["name"], "greet");
    assert!(published["functions"][0]["schema"]["params"].is_object());

    let pending = h
        .get(&h.admin, "/v1/orgs/acme/releases?status=pending")
        .await
        .expect(200);
    assert_eq!(pending["items"].as_array().unwrap().len(), 1);
    assert_eq!(pending["items"][0]["version"], "1.0.0");

    let shown = h
        .get(&h.admin, "/v1/plugins/acme/hello/releases/1.0.0")
        .await
        .expect(200);
    assert_eq!(shown["diff"]["against"], Value::Null);
    assert_eq!(shown["component_size"], hello.len());
    let approval = h.approval(&bob, &shown, &[]);
    let approved = h
        .post(
            &h.admin,
            "/v1/plugins/acme/hello/releases/1.0.0/approve",
            json!({ "envelope": approval }),
        )
        .await
        .expect(200);
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["approvals"][0]["owner"], "bob");
    assert_eq!(approved["granted_capabilities"], json!([]));

    // The catalog shows it approved, with functions and schemas.
    let catalog = h.get(&publisher, "/v1/orgs/acme/plugins").await.expect(200);
    assert_eq!(catalog["items"][0]["name"], "acme/hello");
    assert_eq!(catalog["items"][0]["latest_approved"], "1.0.0");
    let detail = h
        .get(&publisher, "/v1/plugins/acme/hello")
        .await
        .expect(200);
    assert_eq!(detail["versions"][0]["status"], "approved");
    assert_eq!(
        detail["functions"][0]["signature"],
        "func(name: string) -> string"
    );

    // The tag is the version, and both statements travel with the artifact.
    let manifest = approved["manifest_digest"].as_str().unwrap();
    let tag = h
        .http
        .head(format!("{}/v2/acme/hello/manifests/1.0.0", h.url))
        .bearer_auth(&publisher)
        .send()
        .await
        .unwrap();
    assert_eq!(tag.headers()["docker-content-digest"], manifest);
    let referrers = h
        .get(&publisher, &format!("/v2/acme/hello/referrers/{manifest}"))
        .await
        .expect(200);
    let mut types: Vec<&str> = referrers["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["artifactType"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "application/vnd.warden.approval.v1+json",
            "application/vnd.warden.release.v1+json"
        ]
    );

    // The version's tag never moves, whoever pushes.
    let other = h
        .push_artifact(&publisher, "acme/hello", &read(COUNTER))
        .await;
    let (_, other_bytes) = (
        other,
        h.http
            .get(format!("{}/v2/acme/hello/manifests/{}", h.url, "1.0.0"))
            .bearer_auth(&publisher)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    );
    assert_eq!(
        warden_registry::oci::Digest::of(&other_bytes).to_string(),
        manifest
    );
    let moved = h
        .http
        .put(format!("{}/v2/acme/hello/manifests/1.0.0", h.url))
        .bearer_auth(&h.admin)
        .header("content-type", warden_registry::oci::MANIFEST_V1)
        .body(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.wasm.config.v0+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 403, "{:?}", moved.text().await);

    // The next version asks for kv: the review shows it as added.
    let counter = read(COUNTER);
    h.publish(&publisher, &alice, "acme/hello", "1.1.0", &counter, &["kv"])
        .await
        .expect(201);
    let next = h
        .get(&h.admin, "/v1/plugins/acme/hello/releases/1.1.0")
        .await
        .expect(200);
    assert_eq!(
        next["diff"],
        json!({ "against": "1.0.0", "added": ["kv"], "removed": [] })
    );
    // The catalog still lists the newest *approved* version, next to a plugin with none.
    h.publish(
        &publisher,
        &alice,
        "acme/counter",
        "0.1.0",
        &counter,
        &["kv"],
    )
    .await
    .expect(201);
    let catalog = h.get(&publisher, "/v1/orgs/acme/plugins").await.expect(200);
    let listed: Vec<(&str, &Value)> = catalog["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), &p["latest_approved"]))
        .collect();
    assert_eq!(
        listed,
        [
            ("acme/counter", &Value::Null),
            ("acme/hello", &json!("1.0.0"))
        ]
    );
}
on_both_databases!(publish_review_approve);

async fn bad_releases_are_refused_and_nothing_is_stored(backend: Backend) {
    let Org {
        h,
        publisher,
        alice,
        bob,
    } = org(backend, 1).await;
    let hello = read(HELLO);
    let before = h.audit_len("acme").await;
    let repo = "acme/hello";
    let statement = common::statement(&alice, repo, "1.0.0", &hello, &[]);

    // Unsigned.
    let mut unsigned = alice.sign(RELEASE_PAYLOAD_TYPE, &statement).unwrap();
    unsigned.signatures.clear();
    h.publish_envelope(&publisher, repo, &hello, &unsigned)
        .await
        .expect_error(422, "signature_missing");
    // Signed by a key nobody registered.
    let stranger = PrivateKey::generate();
    let signed = stranger
        .sign(
            RELEASE_PAYLOAD_TYPE,
            &common::statement(&stranger, repo, "1.0.0", &hello, &[]),
        )
        .unwrap();
    h.publish_envelope(&publisher, repo, &hello, &signed)
        .await
        .expect_error(422, "key_unknown");
    // Signed with an admin key.
    let by_admin_key = bob
        .sign(
            RELEASE_PAYLOAD_TYPE,
            &common::statement(&bob, repo, "1.0.0", &hello, &[]),
        )
        .unwrap();
    h.publish_envelope(&publisher, repo, &hello, &by_admin_key)
        .await
        .expect_error(422, "wrong_key_kind");
    // The payload altered after signing.
    let mut tampered = alice.sign(RELEASE_PAYLOAD_TYPE, &statement).unwrap();
    let mut altered = statement.clone();
    altered.capabilities = vec!["kv".into()];
    tampered.payload = alice.sign(RELEASE_PAYLOAD_TYPE, &altered).unwrap().payload;
    h.publish_envelope(&publisher, repo, &hello, &tampered)
        .await
        .expect_error(422, "signature_invalid");
    // A statement for other bytes than the artifact holds.
    let other = common::statement(&alice, repo, "1.0.0", b"other bytes", &[]);
    let envelope = alice.sign(RELEASE_PAYLOAD_TYPE, &other).unwrap();
    h.publish_envelope(&publisher, repo, &hello, &envelope)
        .await
        .expect_error(422, "digest_mismatch");
    // Not a component.
    let garbage = b"\0asm\x01\0\0\0 not really".to_vec();
    h.publish(&publisher, &alice, repo, "1.0.0", &garbage, &[])
        .await
        .expect_error(422, "component_invalid");
    // Imports kv without requesting it.
    h.publish(
        &publisher,
        &alice,
        "acme/counter",
        "1.0.0",
        &read(COUNTER),
        &[],
    )
    .await
    .expect_error(422, "capabilities_exceeded");
    // Unknown fields: in the statement, and in the body.
    let mut with_extra = serde_json::to_value(&statement).unwrap();
    with_extra["runs_as_root"] = json!(true);
    let envelope = alice.sign(RELEASE_PAYLOAD_TYPE, &with_extra).unwrap();
    h.publish_envelope(&publisher, repo, &hello, &envelope)
        .await
        .expect_error(400, "invalid_statement");
    let manifest = h.push_artifact(&publisher, repo, &hello).await;
    let good = alice.sign(RELEASE_PAYLOAD_TYPE, &statement).unwrap();
    h.post(
        &publisher,
        "/v1/plugins/acme/hello/releases",
        json!({ "envelope": good, "manifest_digest": manifest, "force": true }),
    )
    .await
    .expect_error(400, "invalid_body");
    // Not JSON; too large; no content type.
    let raw = |body: Vec<u8>, json: bool| {
        let mut request = h
            .http
            .post(format!("{}/v1/plugins/acme/hello/releases", h.url))
            .bearer_auth(&publisher)
            .body(body);
        if json {
            request = request.header("content-type", "application/json");
        }
        request.send()
    };
    let answer = raw(b"{\"envelope\": ".to_vec(), true).await.unwrap();
    assert_eq!(answer.status(), 400);
    assert_eq!(
        answer.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_json"
    );
    // The body cap, both sides. Sent over a raw socket: the server answers 413
    // as soon as the declared length is too large and may close before the
    // client has written everything, which an HTTP client reports as an error.
    let cap = warden_registry::MAX_BODY_BYTES;
    let (status, body) = raw_post(
        &h,
        &publisher,
        "/v1/plugins/acme/hello/releases",
        &vec![b' '; cap],
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_json")),
        "{body}"
    );
    let (status, body) = raw_post(
        &h,
        &publisher,
        "/v1/plugins/acme/hello/releases",
        &vec![b' '; cap + 1],
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("body_too_large")),
        "{body}"
    );
    let answer = raw(b"{}".to_vec(), false).await.unwrap();
    assert_eq!(answer.status(), 415);
    // A bad version; a manifest that was never pushed.
    let envelope = alice
        .sign(
            RELEASE_PAYLOAD_TYPE,
            &common::statement(&alice, repo, "one", &hello, &[]),
        )
        .unwrap();
    h.publish_envelope(&publisher, repo, &hello, &envelope)
        .await
        .expect_error(400, "invalid_version");
    let missing = format!("sha256:{}", "0".repeat(64));
    h.post(
        &publisher,
        "/v1/plugins/acme/hello/releases",
        json!({ "envelope": good, "manifest_digest": missing }),
    )
    .await
    .expect_error(422, "manifest_unknown");

    // Nothing was registered, nothing audited, no tag set.
    let releases = h.get(&h.admin, "/v1/orgs/acme/releases").await.expect(200);
    assert_eq!(releases["items"], json!([]));
    assert_eq!(h.audit_len("acme").await, before);
    h.get(&publisher, "/v2/acme/hello/manifests/1.0.0")
        .await
        .expect(404);

    // A revoked key; then the real thing; then the same version again.
    let carol = h.key(&h.admin, "acme", "publisher", "carol").await;
    let answer = h
        .call(
            &h.admin,
            Method::POST,
            &format!("/v1/orgs/acme/keys/{}/revoke", carol.public_key().key_id()),
            None,
        )
        .await;
    assert_eq!(answer.status, 204);
    h.publish(&publisher, &carol, repo, "1.0.0", &hello, &[])
        .await
        .expect_error(422, "key_revoked");
    h.publish(&publisher, &alice, repo, "1.0.0", &hello, &[])
        .await
        .expect(201);
    h.publish(&publisher, &alice, repo, "1.0.0", &hello, &[])
        .await
        .expect_error(409, "version_exists");

    // A key of another organization: the same answer as an unknown key, so
    // that no tenant learns which keys another has.
    let created = h
        .post(&h.admin, "/v1/orgs", json!({ "name": "globex" }))
        .await
        .expect(201);
    let globex_admin = created["admin_token"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let globex_key = h.key(&globex_admin, "globex", "publisher", "gina").await;
    let other_org = h
        .publish(&publisher, &globex_key, repo, "1.0.1", &hello, &[])
        .await;
    other_org.expect_error(422, "key_unknown");
    let stranger = PrivateKey::generate();
    let unknown = h
        .publish(&publisher, &stranger, repo, "1.0.1", &hello, &[])
        .await;
    let shape = |message: &str, key: &PrivateKey| message.replace(&key.public_key().key_id(), "K");
    assert_eq!(
        shape(
            other_org.body["error"]["message"].as_str().unwrap(),
            &globex_key
        ),
        shape(
            unknown.body["error"]["message"].as_str().unwrap(),
            &stranger
        ),
    );
}
on_both_databases!(bad_releases_are_refused_and_nothing_is_stored);

async fn approvals_follow_the_rules(backend: Backend) {
    let Org {
        h,
        publisher,
        alice,
        bob,
    } = org(backend, 2).await;
    let dave = h.pinned_key(1, "acme", "dave").await;
    let alice_admin = h.key(&h.admin, "acme", "admin", "alice").await;
    let second_admin = h.token(&h.admin, "acme", "admin").await;
    let counter = read(COUNTER);
    let release = h
        .publish(
            &publisher,
            &alice,
            "acme/counter",
            "1.0.0",
            &counter,
            &["kv"],
        )
        .await
        .expect(201);
    let path = "/v1/plugins/acme/counter/releases/1.0.0";
    let approve =
        |key: &PrivateKey, caps: &[&str]| json!({ "envelope": h.approval(key, &release, caps) });

    // The publisher's own key, or another key of the same owner, cannot approve.
    let own = h.approval(&alice, &release, &["kv"]);
    h.post(
        &h.admin,
        &format!("{path}/approve"),
        json!({ "envelope": own }),
    )
    .await
    .expect_error(422, "wrong_key_kind");
    h.post(
        &h.admin,
        &format!("{path}/approve"),
        approve(&alice_admin, &["kv"]),
    )
    .await
    .expect_error(403, "self_approval");
    // Granting more than requested; approving another statement.
    h.post(
        &h.admin,
        &format!("{path}/approve"),
        approve(&bob, &["config", "kv"]),
    )
    .await
    .expect_error(422, "grant_exceeds_request");
    let mut other = release.clone();
    other["statement_digest"] = json!(format!("sha256:{}", "1".repeat(64)));
    h.post(
        &h.admin,
        &format!("{path}/approve"),
        json!({ "envelope": h.approval(&bob, &other, &["kv"]) }),
    )
    .await
    .expect_error(422, "statement_mismatch");
    // A publisher token cannot approve at all.
    h.post(
        &publisher,
        &format!("{path}/approve"),
        approve(&bob, &["kv"]),
    )
    .await
    .expect_error(403, "insufficient_role");

    // One approval of two: still pending. The same key again: refused.
    let first = h
        .post(&h.admin, &format!("{path}/approve"), approve(&bob, &["kv"]))
        .await
        .expect(200);
    assert_eq!(first["status"], "pending");
    assert_eq!(first["approvals"].as_array().unwrap().len(), 1);
    h.post(
        &second_admin,
        &format!("{path}/approve"),
        approve(&bob, &["kv"]),
    )
    .await
    .expect_error(409, "already_approved_by_key");
    // A second key granting something else: refused; agreeing: approved.
    h.post(
        &second_admin,
        &format!("{path}/approve"),
        approve(&dave, &[]),
    )
    .await
    .expect_error(409, "approval_mismatch");
    let second = h
        .post(
            &second_admin,
            &format!("{path}/approve"),
            approve(&dave, &["kv"]),
        )
        .await
        .expect(200);
    assert_eq!(second["status"], "approved");
    assert_eq!(second["granted_capabilities"], json!(["kv"]));

    // Decisions: approved can be yanked, not rejected; yanked is final.
    h.post(
        &h.admin,
        &format!("{path}/reject"),
        json!({ "reason": "late" }),
    )
    .await
    .expect_error(409, "release_decided");
    h.post(&h.admin, &format!("{path}/yank"), json!({ "reason": "" }))
        .await
        .expect_error(400, "invalid_reason");
    let yanked = h
        .post(
            &h.admin,
            &format!("{path}/yank"),
            json!({ "reason": "CVE-2026-1" }),
        )
        .await
        .expect(200);
    assert_eq!(
        (yanked["status"].as_str(), yanked["reason"].as_str()),
        (Some("yanked"), Some("CVE-2026-1"))
    );
    h.post(&h.admin, &format!("{path}/approve"), approve(&bob, &["kv"]))
        .await
        .expect_error(409, "release_decided");
    let rejected_one = h
        .publish(
            &publisher,
            &alice,
            "acme/counter",
            "1.0.1",
            &counter,
            &["kv"],
        )
        .await
        .expect(201);
    assert_eq!(rejected_one["status"], "pending");
    let rejected = h
        .post(
            &h.admin,
            "/v1/plugins/acme/counter/releases/1.0.1/reject",
            json!({ "reason": "no" }),
        )
        .await
        .expect(200);
    assert_eq!(rejected["status"], "rejected");
    h.get(&h.admin, "/v1/plugins/acme/counter/releases/9.9.9")
        .await
        .expect_error(404, "not_found");
}
on_both_databases!(approvals_follow_the_rules);

/// Every endpoint, every role, own org and another org.
async fn every_endpoint_checks_role_and_org(backend: Backend) {
    let Org {
        h,
        publisher,
        alice,
        ..
    } = org(backend, 1).await;
    let hello = read(HELLO);
    h.publish(&publisher, &alice, "acme/hello", "1.0.0", &hello, &[])
        .await
        .expect(201);
    let created = h
        .post(&h.admin, "/v1/orgs", json!({ "name": "globex" }))
        .await
        .expect(201);
    let globex_admin = created["admin_token"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let globex_publisher = h.token(&globex_admin, "globex", "publisher").await;
    let gina = h.key(&globex_admin, "globex", "publisher", "gina").await;
    h.publish(
        &globex_publisher,
        &gina,
        "globex/hello",
        "1.0.0",
        &hello,
        &[],
    )
    .await
    .expect(201);

    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Needs {
        Read,
        Publish,
        Admin,
    }
    let unsigned = json!({ "payload": "e30=", "payloadType": "x", "signatures": [] });
    // (method, path with {org}, body, needed, status when allowed)
    let endpoints: Vec<(Method, &str, Option<Value>, Needs, u16)> = vec![
        (Method::GET, "/v1/orgs/{org}", None, Needs::Read, 200),
        (
            Method::GET,
            "/v1/orgs/{org}/tokens",
            None,
            Needs::Admin,
            200,
        ),
        (
            Method::POST,
            "/v1/orgs/{org}/tokens",
            Some(json!({ "name": "x", "role": "viewer" })),
            Needs::Admin,
            201,
        ),
        (
            Method::DELETE,
            "/v1/orgs/{org}/tokens/tok_missing",
            None,
            Needs::Admin,
            404,
        ),
        (Method::GET, "/v1/orgs/{org}/keys", None, Needs::Read, 200),
        (
            Method::POST,
            "/v1/orgs/{org}/keys",
            Some(json!({ "public_key": "ed25519:bad", "kind": "admin", "owner": "x" })),
            Needs::Admin,
            400,
        ),
        (
            Method::POST,
            "/v1/orgs/{org}/keys/missing/revoke",
            None,
            Needs::Admin,
            404,
        ),
        (
            Method::GET,
            "/v1/orgs/{org}/releases",
            None,
            Needs::Read,
            200,
        ),
        (
            Method::GET,
            "/v1/orgs/{org}/plugins",
            None,
            Needs::Read,
            200,
        ),
        (
            Method::GET,
            "/v1/plugins/{org}/hello",
            None,
            Needs::Read,
            200,
        ),
        (
            Method::GET,
            "/v1/plugins/{org}/hello/releases/1.0.0",
            None,
            Needs::Read,
            200,
        ),
        (
            Method::POST,
            "/v1/plugins/{org}/hello/releases",
            Some(json!({ "envelope": unsigned, "manifest_digest": "sha256:x" })),
            Needs::Publish,
            422,
        ),
        (
            Method::POST,
            "/v1/plugins/{org}/hello/releases/1.0.0/approve",
            Some(json!({ "envelope": unsigned })),
            Needs::Admin,
            422,
        ),
        (
            Method::POST,
            "/v1/plugins/{org}/hello/releases/1.0.0/reject",
            Some(json!({ "reason": "" })),
            Needs::Admin,
            400,
        ),
        (
            Method::POST,
            "/v1/plugins/{org}/hello/releases/1.0.0/yank",
            Some(json!({ "reason": "" })),
            Needs::Admin,
            400,
        ),
        (
            Method::GET,
            "/v1/plugins/{org}/hello/config",
            None,
            Needs::Admin,
            200,
        ),
        (
            Method::PUT,
            "/v1/plugins/{org}/hello/config",
            Some(json!({ "values": {} })),
            Needs::Admin,
            200,
        ),
        (Method::GET, "/v1/orgs/{org}/audit", None, Needs::Admin, 200),
        (
            Method::GET,
            "/v2/{org}/hello/tags/list",
            None,
            Needs::Read,
            200,
        ),
        (
            Method::POST,
            "/v2/{org}/hello/blobs/uploads/",
            None,
            Needs::Publish,
            202,
        ),
    ];
    let mut checked = 0;
    for role in ["admin", "publisher", "invoker", "viewer"] {
        let token = if role == "admin" {
            h.admin.clone()
        } else {
            h.token(&h.admin, "acme", role).await
        };
        for (method, template, body, needs, allowed_status) in &endpoints {
            let allowed = match needs {
                Needs::Read => true,
                Needs::Publish => matches!(role, "admin" | "publisher"),
                Needs::Admin => role == "admin",
            };
            for org in ["acme", "globex"] {
                let path = template.replace("{org}", org);
                let answer = h.call(&token, method.clone(), &path, body.clone()).await;
                let expected = if allowed && org == "acme" {
                    *allowed_status
                } else {
                    403
                };
                assert_eq!(
                    answer.status.as_u16(),
                    expected,
                    "{role} {method} {path}: {}",
                    answer.body
                );
                if expected == 403 && !path.starts_with("/v2") {
                    let code = if org == "acme" {
                        "insufficient_role"
                    } else {
                        "wrong_org"
                    };
                    assert_eq!(answer.code(), code, "{role} {method} {path}");
                }
                checked += 1;
            }
        }
        // Only the operator org's admins create organizations.
        let answer = h
            .post(&token, "/v1/orgs", json!({ "name": format!("new-{role}") }))
            .await;
        assert_eq!(
            answer.status.as_u16(),
            if role == "admin" { 201 } else { 403 },
            "{role}: {}",
            answer.body
        );
    }
    assert_eq!(checked, 4 * endpoints.len() * 2);
    h.post(&globex_admin, "/v1/orgs", json!({ "name": "initech" }))
        .await
        .expect_error(403, "not_operator");
    h.post(&h.admin, "/v1/orgs", json!({ "name": "globex" }))
        .await
        .expect_error(409, "org_exists");
    h.post(&h.admin, "/v1/orgs", json!({ "name": "Bad Name" }))
        .await
        .expect_error(400, "invalid_name");
}
on_both_databases!(every_endpoint_checks_role_and_org);

async fn tokens_are_checked(backend: Backend) {
    // Rows edited below behind the control plane's back are read again once
    // the snapshot's entries are this old.
    let max_age = std::time::Duration::from_millis(300);
    let h = start_tweaked(backend, |config| config.snapshot_max_age = max_age).await;
    let viewer = h.token(&h.admin, "acme", "viewer").await;
    h.get(&viewer, "/v1/whoami").await.expect(200);

    let missing = h
        .http
        .get(format!("{}/v1/whoami", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    assert!(missing.headers().contains_key("www-authenticate"));
    h.get("wdn_not-a-real-token", "/v1/whoami")
        .await
        .expect_error(401, "unauthorized");

    // Expired: move its expiry into the past in the database.
    let expiring = h
        .post(
            &h.admin,
            "/v1/orgs/acme/tokens",
            json!({ "name": "short", "role": "viewer", "expires_in_seconds": 3600 }),
        )
        .await
        .expect(201);
    let secret = expiring["secret"].as_str().unwrap();
    h.get(secret, "/v1/whoami").await.expect(200);
    sqlx::query("UPDATE tokens SET expires_at = 1 WHERE id = $1")
        .bind(expiring["id"].as_str().unwrap())
        .execute(h.db.pool())
        .await
        .unwrap();
    tokio::time::sleep(max_age).await;
    h.get(secret, "/v1/whoami")
        .await
        .expect_error(401, "token_expired");
    // A token known to the snapshot expires on time: its expiry is checked
    // at every use, not only when it is read.
    let brief = h
        .post(
            &h.admin,
            "/v1/orgs/acme/tokens",
            json!({ "name": "brief", "role": "viewer", "expires_in_seconds": 1 }),
        )
        .await
        .expect(201);
    let brief = brief["secret"].as_str().unwrap();
    h.get(brief, "/v1/whoami").await.expect(200);
    h.get(brief, "/v1/whoami").await.expect(200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    h.get(brief, "/v1/whoami")
        .await
        .expect_error(401, "token_expired");
    h.post(
        &h.admin,
        "/v1/orgs/acme/tokens",
        json!({ "name": "x", "role": "viewer", "expires_in_seconds": 0 }),
    )
    .await
    .expect_error(400, "invalid_expiry");
    h.post(
        &h.admin,
        "/v1/orgs/acme/tokens",
        json!({ "name": "x", "role": "root" }),
    )
    .await
    .expect_error(400, "invalid_body");

    // Revoked: at once, for the API and the registry.
    let listed = h.get(&h.admin, "/v1/orgs/acme/tokens").await.expect(200);
    let id = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "viewer")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("secret").is_none())
    );
    assert_eq!(
        h.call(
            &h.admin,
            Method::DELETE,
            &format!("/v1/orgs/acme/tokens/{id}"),
            None
        )
        .await
        .status,
        204
    );
    h.get(&viewer, "/v1/whoami")
        .await
        .expect_error(401, "token_revoked");
    let registry = h
        .http
        .get(format!("{}/v2/", h.url))
        .basic_auth("anyone", Some(&viewer))
        .send()
        .await
        .unwrap();
    assert_eq!(registry.status(), 401);

    // The secret is stored only as a hash.
    let stored: Vec<(String,)> = sqlx::query_as("SELECT secret_hash FROM tokens")
        .fetch_all(h.db.pool())
        .await
        .unwrap();
    assert!(
        stored
            .iter()
            .all(|(hash,)| hash.len() == 64 && !hash.contains(&viewer))
    );
}
on_both_databases!(tokens_are_checked);

async fn fetch_chain(h: &Harness) -> (Vec<AuditEntry>, AuditHead) {
    let page = h
        .get(&h.admin, "/v1/orgs/acme/audit?limit=1000")
        .await
        .expect(200);
    (
        serde_json::from_value(page["entries"].clone()).unwrap(),
        serde_json::from_value(page["head"].clone()).unwrap(),
    )
}

async fn audit_chain_detects_edits_and_deletions(backend: Backend) {
    let Org {
        h,
        publisher,
        alice,
        ..
    } = org(backend, 1).await;
    h.publish(&publisher, &alice, "acme/hello", "1.0.0", &read(HELLO), &[])
        .await
        .expect(201);
    h.call(
        &h.admin,
        Method::PUT,
        "/v1/plugins/acme/hello/config",
        Some(json!({ "values": { "greeting": "hi" } })),
    )
    .await
    .expect(200);
    let (entries, head) = fetch_chain(&h).await;
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "org.create",
            "token.create",
            "key.add",
            "key.add",
            "oci.manifest.put",
            "release.publish",
            "plugin.config"
        ]
    );
    assert_eq!(verify_chain(&entries, &head), Ok(7));
    assert!(
        !entries[6].details.contains("hi"),
        "config values stay out of the audit log"
    );

    // /v1/audit is the caller's own org's chain; only admins read it.
    let own = h.get(&h.admin, "/v1/audit?limit=1000").await.expect(200);
    assert_eq!(own["entries"].as_array().unwrap().len(), 7);
    h.get(&publisher, "/v1/audit")
        .await
        .expect_error(403, "insufficient_role");

    // Paging: after= continues where the last page ended.
    let page = h
        .get(&h.admin, "/v1/orgs/acme/audit?after=4&limit=1")
        .await
        .expect(200);
    assert_eq!(page["entries"][0]["seq"], 5);
    h.get(&h.admin, "/v1/orgs/acme/audit?limit=1001")
        .await
        .expect_error(400, "invalid_page_size");

    let pool = h.db.pool();
    sqlx::query("UPDATE audit SET actor = 'token:someone-else' WHERE org = 'acme' AND seq = 5")
        .execute(pool)
        .await
        .unwrap();
    let (entries, head) = fetch_chain(&h).await;
    assert_eq!(verify_chain(&entries, &head), Err(ChainBreak::Edited(5)));
    sqlx::query("DELETE FROM audit WHERE org = 'acme' AND seq = 7")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit WHERE org = 'acme' AND seq = 6")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit WHERE org = 'acme' AND seq = 5")
        .execute(pool)
        .await
        .unwrap();
    let (entries, head) = fetch_chain(&h).await;
    assert_eq!(
        verify_chain(&entries, &head),
        Err(ChainBreak::Head {
            head_seq: 7,
            last: 4
        })
    );
    sqlx::query("DELETE FROM audit WHERE org = 'acme' AND seq = 2")
        .execute(pool)
        .await
        .unwrap();
    let (entries, head) = fetch_chain(&h).await;
    assert_eq!(
        verify_chain(&entries, &head),
        Err(ChainBreak::Gap {
            expected: 2,
            found: 3
        })
    );
}
on_both_databases!(audit_chain_detects_edits_and_deletions);

async fn catalog_pages_and_searches(backend: Backend) {
    let Org {
        h,
        publisher,
        alice,
        ..
    } = org(backend, 1).await;
    h.publish(&publisher, &alice, "acme/hello", "1.0.0", &read(HELLO), &[])
        .await
        .expect(201);
    // Many plugins, inserted directly: the catalog query is what is tested here.
    for i in 0..30 {
        sqlx::query("INSERT INTO plugins (org, name, description, config, created_at, updated_at) VALUES ('acme', $1, $2, '{}', 0, 0)")
            .bind(format!("tool-{i:02}"))
            .bind(if i % 3 == 0 { "Converts 100% of CSV" } else { "Other things" })
            .execute(h.db.pool())
            .await
            .unwrap();
    }
    let mut names = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = h
            .get(
                &publisher,
                &format!("/v1/orgs/acme/plugins?limit=7{cursor}"),
            )
            .await
            .expect(200);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 7);
        names.extend(items.iter().map(|p| p["name"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(names.len(), 31);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);

    let found = h
        .get(&publisher, "/v1/orgs/acme/plugins?q=csv&limit=100")
        .await
        .expect(200);
    assert_eq!(found["items"].as_array().unwrap().len(), 10);
    let percent = h
        .get(&publisher, "/v1/orgs/acme/plugins?q=100%25&limit=100")
        .await
        .expect(200);
    assert_eq!(
        percent["items"].as_array().unwrap().len(),
        10,
        "% is matched literally"
    );
    let literal = h
        .get(&publisher, "/v1/orgs/acme/plugins?q=%25&limit=100")
        .await
        .expect(200);
    assert_eq!(
        literal["items"].as_array().unwrap().len(),
        10,
        "a lone % is not a wildcard"
    );
    let hello = h
        .get(&publisher, "/v1/orgs/acme/plugins?q=HELLO")
        .await
        .expect(200);
    assert_eq!(hello["items"][0]["name"], "acme/hello");

    h.get(&publisher, "/v1/orgs/acme/plugins?limit=100")
        .await
        .expect(200);
    h.get(&publisher, "/v1/orgs/acme/plugins?limit=101")
        .await
        .expect_error(400, "invalid_page_size");
    h.get(&publisher, "/v1/orgs/acme/plugins?limit=0")
        .await
        .expect_error(400, "invalid_page_size");
    h.get(&publisher, "/v1/orgs/acme/plugins?sort=name")
        .await
        .expect_error(400, "invalid_query");
    h.get(&publisher, "/v1/plugins/acme/nothing")
        .await
        .expect_error(404, "not_found");

    // Configuration values: limits on both sides.
    let config = "/v1/plugins/acme/hello/config";
    let many: serde_json::Map<String, Value> =
        (0..100).map(|i| (format!("k{i}"), json!("v"))).collect();
    h.call(
        &h.admin,
        Method::PUT,
        config,
        Some(json!({ "values": many })),
    )
    .await
    .expect(200);
    let too_many: serde_json::Map<String, Value> =
        (0..101).map(|i| (format!("k{i}"), json!("v"))).collect();
    h.call(
        &h.admin,
        Method::PUT,
        config,
        Some(json!({ "values": too_many })),
    )
    .await
    .expect_error(400, "config_too_large");
    let big = "x".repeat(16 << 10);
    h.call(
        &h.admin,
        Method::PUT,
        config,
        Some(json!({ "values": { "big": big } })),
    )
    .await
    .expect(200);
    let bigger = "x".repeat((16 << 10) + 1);
    h.call(
        &h.admin,
        Method::PUT,
        config,
        Some(json!({ "values": { "big": bigger } })),
    )
    .await
    .expect_error(400, "config_too_large");
    let read_back = h.get(&h.admin, config).await.expect(200);
    assert_eq!(read_back["values"]["big"].as_str().unwrap().len(), 16 << 10);
    h.call(
        &h.admin,
        Method::PUT,
        "/v1/plugins/acme/nothing/config",
        Some(json!({ "values": {} })),
    )
    .await
    .expect_error(404, "not_found");
}
on_both_databases!(catalog_pages_and_searches);

/// Search over thousands of plugins, through both of the search's paths
/// (the text index for rare texts, the name order for common or short ones):
/// exactly the plugins whose name or description contains the text, in name
/// order, page after page, with descriptions changed after insertion.
async fn catalog_search_finds_exactly_the_matches(backend: Backend) {
    let h = start(backend).await;
    let mut tx = h.db.pool().begin().await.unwrap();
    for i in 0..6000 {
        sqlx::query("INSERT INTO plugins (org, name, description, config, created_at, updated_at) VALUES ('acme', $1, $2, '{}', 0, 0)")
            .bind(format!("tool-{i:04}"))
            .bind(if i % 1000 == 7 { "Reads Parquet_Files" } else { "Common words" })
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    sqlx::query("UPDATE plugins SET description = 'Now it signs PDFs' WHERE org = 'acme' AND name = 'tool-4321'")
        .execute(h.db.pool())
        .await
        .unwrap();
    let search = |q: &'static str| {
        let h = &h;
        async move {
            let mut names = Vec::new();
            let mut cursor = String::new();
            loop {
                let page = h
                    .get(
                        &h.admin,
                        &format!("/v1/orgs/acme/plugins?q={q}&limit=50{cursor}"),
                    )
                    .await
                    .expect(200);
                names.extend(page["items"].as_array().unwrap().iter().map(|p| {
                    p["name"]
                        .as_str()
                        .unwrap()
                        .trim_start_matches("acme/")
                        .to_owned()
                }));
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = format!("&cursor={next}"),
                    None => break names,
                }
            }
        }
    };
    let expected = |keep: &dyn Fn(usize) -> bool| -> Vec<String> {
        (0..6000)
            .filter(|i| keep(*i))
            .map(|i| format!("tool-{i:04}"))
            .collect()
    };
    // Rare: the index path.
    assert_eq!(search("tool-5999").await, ["tool-5999"]);
    assert_eq!(
        search("ool-59").await,
        expected(&|i| (5900..6000).contains(&i))
    );
    assert_eq!(search("PARQUET_f").await, expected(&|i| i % 1000 == 7));
    assert_eq!(search("signs%20pdf").await, ["tool-4321"]);
    assert_eq!(search("parquet%25").await, Vec::<String>::new());
    assert_eq!(search("nothing-like-this").await, Vec::<String>::new());
    // Common (more candidates than the index hands over) and short texts:
    // the name-order path.
    assert_eq!(search("tool-").await.len(), 6000);
    assert_eq!(search("common").await.len(), 6000 - 6 - 1);
    assert_eq!(search("-9").await, Vec::<String>::new());
    assert_eq!(
        search("42").await,
        expected(&|i| format!("{i:04}").contains("42"))
    );
    // What the index holds follows the rows: the old description is gone.
    assert_eq!(search("tool-4321").await, ["tool-4321"]);
    assert!(!search("common").await.contains(&"tool-4321".to_owned()));
}
on_both_databases!(catalog_search_finds_exactly_the_matches);

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
    let created = h
        .post(&h.admin, "/v1/orgs", json!({ "name": "tenant" }))
        .await
        .expect(201);
    let tenant_admin = created["admin_token"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    h.get(&tenant_admin, "/metrics")
        .await
        .expect_error(403, "not_operator");
    let metrics = h
        .http
        .get(format!("{}/metrics", h.url))
        .bearer_auth(&h.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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

#[allow(dead_code)]
fn _uses(_: Envelope) {}

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

/// POSTs `body` as JSON over a plain TCP connection and reads the answer, even
/// if the server stopped reading the body early.
async fn raw_post(h: &Harness, token: &str, path: &str, body: &[u8]) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = h.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // Errors writing are expected when the server refuses early.
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let json = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

async fn text_that_could_repaint_a_terminal_is_refused(backend: Backend) {
    let Org {
        h,
        publisher,
        alice,
        bob,
    } = org(backend, 1).await;
    let hello = read(HELLO);
    let repo = "acme/hello";
    let before = h.audit_len("acme").await;
    // A description that would print a fake signer and hide the real one.
    let mut statement = common::statement(&alice, repo, "1.0.0", &hello, &[]);
    statement.description = "Greets\nsigner      trusted (security team)\n\u{1b}[8m".to_owned();
    let envelope = alice.sign(RELEASE_PAYLOAD_TYPE, &statement).unwrap();
    h.publish_envelope(&publisher, repo, &hello, &envelope)
        .await
        .expect_error(400, "invalid_description");
    let owner = h
        .post(
            &h.admin,
            "/v1/orgs/acme/keys",
            json!({
                "public_key": PrivateKey::generate().public_key().to_string(),
                "kind": "publisher",
                "owner": "mallory\u{1b}[2K",
            }),
        )
        .await;
    owner.expect_error(400, "invalid_owner");
    h.post(
        &h.admin,
        "/v1/orgs/acme/tokens",
        json!({ "name": "ci\r\nadmin", "role": "viewer" }),
    )
    .await
    .expect_error(400, "invalid_name");
    assert_eq!(h.audit_len("acme").await, before, "nothing was stored");
    // Within the rules: unicode is fine, and the release goes through.
    let mut statement = common::statement(&alice, repo, "1.0.0", &hello, &[]);
    statement.description = "Grüßt — by name".to_owned();
    let envelope = alice.sign(RELEASE_PAYLOAD_TYPE, &statement).unwrap();
    h.publish_envelope(&publisher, repo, &hello, &envelope)
        .await
        .expect(201);
    h.post(
        &h.admin,
        "/v1/plugins/acme/hello/releases/1.0.0/reject",
        json!({ "reason": "bad\u{1b}[8m" }),
    )
    .await
    .expect_error(400, "invalid_reason");
    let _ = bob;
}
on_both_databases!(text_that_could_repaint_a_terminal_is_refused);

async fn concurrent_creates_of_one_org_have_one_winner(backend: Backend) {
    let h = start(backend).await;
    let creates = (0..6).map(|_| h.post(&h.admin, "/v1/orgs", json!({ "name": "initech" })));
    let answers = futures_util::future::join_all(creates).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status.as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        1,
        "{statuses:?}"
    );
    for answer in answers.iter().filter(|a| a.status != 201) {
        answer.expect_error(409, "org_exists");
    }
}
on_both_databases!(concurrent_creates_of_one_org_have_one_winner);

async fn the_last_admin_token_of_an_org_cannot_be_revoked(backend: Backend) {
    let h = start(backend).await;
    let me = h.get(&h.admin, "/v1/whoami").await.expect(200);
    let id = me["token_id"].as_str().unwrap().to_owned();
    let revoke = |token: String, id: String| {
        let h = &h;
        async move {
            h.call(
                &token,
                Method::DELETE,
                &format!("/v1/orgs/acme/tokens/{id}"),
                None,
            )
            .await
        }
    };
    revoke(h.admin.clone(), id.clone())
        .await
        .expect_error(409, "last_admin_token");
    h.get(&h.admin, "/v1/whoami").await.expect(200);
    // With a second admin, the first can go.
    let second = h.token(&h.admin, "acme", "admin").await;
    assert_eq!(revoke(second.clone(), id).await.status, 204);
    let second_id = h.get(&second, "/v1/whoami").await.expect(200)["token_id"]
        .as_str()
        .unwrap()
        .to_owned();
    revoke(second, second_id)
        .await
        .expect_error(409, "last_admin_token");
}
on_both_databases!(the_last_admin_token_of_an_org_cannot_be_revoked);

async fn requested_and_approved_limits_stay_within_the_maxima(backend: Backend) {
    let Org {
        h,
        publisher,
        alice,
        bob,
    } = org(backend, 1).await;
    let hello = read(HELLO);
    let repo = "acme/hello";
    let maxima = warden_host::Limits::default_maxima();
    // Above the maxima: refused, with each limit named.
    let mut greedy = common::statement(&alice, repo, "1.0.0", &hello, &[]);
    greedy.limits.fuel = u64::MAX;
    greedy.limits.timeout = std::time::Duration::from_secs(60);
    greedy.limits.concurrency = 100_000;
    greedy.limits.memory_bytes = 1 << 30;
    greedy.limits.kv_keys = 1_000_000_000_000;
    let envelope = alice.sign(RELEASE_PAYLOAD_TYPE, &greedy).unwrap();
    let refused = h
        .publish_envelope(&publisher, repo, &hello, &envelope)
        .await;
    refused.expect_error(422, "limits_above_maxima");
    let above = refused.body["error"]["details"]["above"]
        .as_array()
        .unwrap();
    assert_eq!(above.len(), 5, "{above:?}");
    for name in ["fuel", "timeout", "concurrency", "memory", "kv_keys"] {
        assert!(
            above.iter().any(|a| a.as_str().unwrap().starts_with(name)),
            "{name} not named: {above:?}"
        );
    }
    // At the maxima: accepted.
    let mut at_most = common::statement(&alice, repo, "1.0.0", &hello, &[]);
    at_most.limits = maxima.clone();
    let envelope = alice.sign(RELEASE_PAYLOAD_TYPE, &at_most).unwrap();
    let release = h
        .publish_envelope(&publisher, repo, &hello, &envelope)
        .await
        .expect(201);
    assert_eq!(
        release["limit_maxima"]["memory_bytes"],
        json!(maxima.memory_bytes)
    );
    assert_eq!(release["default_limits"]["fuel"], json!(2_000_000_000u64));
    assert!(release["previous_limits"].is_null());
    // An approval above the maxima is refused too; at them it goes through.
    let mut over = maxima.clone();
    over.log_bytes += 1;
    h.post(
        &h.admin,
        "/v1/plugins/acme/hello/releases/1.0.0/approve",
        json!({ "envelope": common::approval(&bob, &release, &[], over) }),
    )
    .await
    .expect_error(422, "limits_above_maxima");
    h.post(
        &h.admin,
        "/v1/plugins/acme/hello/releases/1.0.0/approve",
        json!({ "envelope": common::approval(&bob, &release, &[], maxima.clone()) }),
    )
    .await
    .expect(200);
    // The next version is compared with what this one was granted.
    let next = h
        .publish(&publisher, &alice, repo, "1.1.0", &hello, &[])
        .await
        .expect(201);
    assert_eq!(
        next["previous_limits"]["memory_bytes"],
        json!(maxima.memory_bytes)
    );
}
on_both_databases!(requested_and_approved_limits_stay_within_the_maxima);

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

async fn manifest_pushes_to_the_registry_are_audited(backend: Backend) {
    let Org {
        h,
        publisher,
        alice,
        ..
    } = org(backend, 1).await;
    let hello = read(HELLO);
    let digest = h.push_artifact(&publisher, "acme/hello", &hello).await;
    h.publish(&publisher, &alice, "acme/hello", "1.0.0", &hello, &[])
        .await
        .expect(201);
    let audit = h
        .get(&h.admin, "/v1/orgs/acme/audit?limit=1000")
        .await
        .expect(200);
    let pushes: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "oci.manifest.put")
        .collect();
    assert!(
        pushes
            .iter()
            .any(|e| e["target"] == format!("acme/hello@{digest}")),
        "{pushes:?}"
    );
    let entries: Vec<AuditEntry> = serde_json::from_value(audit["entries"].clone()).unwrap();
    let head: AuditHead = serde_json::from_value(audit["head"].clone()).unwrap();
    assert!(verify_chain(&entries, &head).is_ok());
}
on_both_databases!(manifest_pushes_to_the_registry_are_audited);

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
    let metrics = || async {
        h.http
            .get(format!("{}/metrics", h.url))
            .bearer_auth(&h.admin)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
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
