//! The control plane over real HTTP on loopback, each test on SQLite and on
//! PostgreSQL: publishing, review, approval, bad input refused with nothing
//! stored, text that could repaint a terminal, limits within the maxima.
//! Elsewhere: tenancy.rs (roles, orgs, tokens), audit.rs, catalog.rs,
//! operations.rs.

mod common;

use common::{Backend, Harness, Org, org};
use reqwest::Method;
use serde_json::{Value, json};
use warden_host::{PrivateKey, RELEASE_PAYLOAD_TYPE};
use warden_test_programs::{COUNTER, HELLO, read};

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
        &other,
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

    // A version not yet published: its tag is publish's alone. A manifest
    // pushed under it first would have taken the version for good (the
    // publish below was 409 `tag_conflict`).
    let pushed = h
        .http
        .get(format!("{}/v2/acme/hello/manifests/{other}", h.url))
        .bearer_auth(&publisher)
        .header("accept", warden_registry::oci::MANIFEST_V1)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    for tag in ["1.1.0", "2.0.0-rc.1"] {
        let squatted = h
            .http
            .put(format!("{}/v2/acme/hello/manifests/{tag}", h.url))
            .bearer_auth(&publisher)
            .header("content-type", warden_registry::oci::MANIFEST_V1)
            .body(pushed.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(squatted.status(), 403);
        let body: Value = squatted.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "DENIED", "{body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("set by its publish"),
            "{body}"
        );
    }
    // Other tags are the pusher's to use.
    let latest = h
        .http
        .put(format!("{}/v2/acme/hello/manifests/latest", h.url))
        .bearer_auth(&publisher)
        .header("content-type", warden_registry::oci::MANIFEST_V1)
        .body(pushed)
        .send()
        .await
        .unwrap();
    assert_eq!(latest.status(), 201, "{:?}", latest.text().await);

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
    let globex_admin = h.create_org("globex").await;
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
    // Bidirectional overrides and isolates reorder what a reviewer reads
    // ("Greets \u{202e}nimda\u{202c}" shows "admin"); zero-width characters
    // hide a difference between two texts that look alike.
    for trick in [
        "\u{202e}", "\u{2066}", "\u{2069}", "\u{200f}", "\u{200b}", "\u{feff}",
    ] {
        let mut statement = common::statement(&alice, repo, "1.0.0", &hello, &[]);
        statement.description = format!("Greets {trick}nimda\u{202c} by name");
        let envelope = alice.sign(RELEASE_PAYLOAD_TYPE, &statement).unwrap();
        h.publish_envelope(&publisher, repo, &hello, &envelope)
            .await
            .expect_error(400, "invalid_description");
        h.post(
            &h.admin,
            "/v1/orgs/acme/tokens",
            json!({ "name": format!("portal{trick}-ci"), "role": "viewer" }),
        )
        .await
        .expect_error(400, "invalid_name");
        h.post(
            &h.admin,
            "/v1/orgs/acme/keys",
            json!({
                "public_key": PrivateKey::generate().public_key().to_string(),
                "kind": "publisher",
                "owner": format!("mallory{trick}"),
            }),
        )
        .await
        .expect_error(400, "invalid_owner");
    }
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

/// A kill (or a full disk) between a change's commit and the writing of its
/// referrer lost the referrer for good: the row now says whether it was
/// written, and the next start (or the background pass) writes it from the
/// envelope the row holds.
async fn referrers_a_crash_left_out_are_written_at_the_next_start(backend: Backend) {
    let o = org(backend.clone(), 1).await;
    let release = o
        .publish_declaring(&o.alice, "acme/hello", "1.0.0", HELLO, &[], &[])
        .await
        .expect(201);
    o.approve(&release, &[], warden_host::Limits::default())
        .await;
    let manifest = release["manifest_digest"].as_str().unwrap().to_owned();
    let referrers = |url: String| {
        let http = o.h.http.clone();
        let token = o.publisher.clone();
        let manifest = manifest.clone();
        async move {
            let answer: Value = http
                .get(format!("{url}/v2/acme/hello/referrers/{manifest}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answer["manifests"].as_array().unwrap().len()
        }
    };
    assert_eq!(referrers(o.h.url.clone()).await, 2);
    // What the crash left: the rows committed, the referrers never written.
    let data = o.h.dir.path().join("data");
    let mut removed = 0;
    for file in common::walk(&data) {
        if file.components().any(|c| c.as_os_str() == "referrers") {
            std::fs::remove_file(&file).unwrap();
            removed += 1;
        }
    }
    assert_eq!(removed, 2);
    for table in ["releases", "approvals"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET referrer_at = NULL"
        )))
        .execute(o.h.db.pool())
        .await
        .unwrap();
    }
    assert_eq!(referrers(o.h.url.clone()).await, 0);

    // The next start writes both again.
    let mut config = warden_registry::ServerConfig::new(&data);
    config.admin_keys = o.h.pinned.iter().map(PrivateKey::public_key).collect();
    if let Backend::Postgres(url) = &backend {
        config.database_url = Some(url.clone());
    }
    let plane = warden_registry::ControlPlane::open(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, plane.router()).into_future());
    assert_eq!(referrers(url).await, 2);
    let (missing,): (i64,) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM releases WHERE referrer_at IS NULL)
              + (SELECT COUNT(*) FROM approvals WHERE referrer_at IS NULL)",
    )
    .fetch_one(o.h.db.pool())
    .await
    .unwrap();
    assert_eq!(missing, 0);
}
on_both_databases!(referrers_a_crash_left_out_are_written_at_the_next_start);
