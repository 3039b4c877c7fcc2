//! Plugin secrets through the server, on SQLite and PostgreSQL: set write
//! only by admins, read by a release granted their name, never in an
//! answer, the audit log, `/metrics` or the database file; encrypted under
//! a key file the database never holds, which is checked at start and can
//! be rotated.

mod common;

use common::{Backend, Harness, approval_body, start_tweaked};
use serde_json::{Value, json};
use warden_host::Limits;
use warden_registry::{ControlPlane, ServerConfig};
use warden_test_programs::{KEEPER, read};

/// A value that appears nowhere but where it belongs.
const VALUE: &str = "s3cret-value-4f9a1c";

/// acme/keeper@1.0.0 approved with `secret:GREETING`; its invoker's token.
async fn keeper(h: &Harness) -> String {
    let publisher = h.token(&h.admin, "acme", "publisher").await;
    let alice = h.key(&h.admin, "acme", "publisher", "alice").await;
    let bob = h.pinned_key(0, "acme", "bob").await;
    let grants = ["secret:GREETING"];
    let release = h
        .publish(
            &publisher,
            &alice,
            "acme/keeper",
            "1.0.0",
            &read(KEEPER),
            &grants,
        )
        .await
        .expect(201);
    h.post(
        &h.admin,
        "/v1/plugins/acme/keeper/releases/1.0.0/approve",
        approval_body(&bob, &release, &grants, Limits::default()),
    )
    .await
    .expect(200);
    h.token(&h.admin, "acme", "invoker").await
}

async fn put_secret(h: &Harness, token: &str, name: &str, body: Value) -> common::Answer {
    h.call(
        token,
        reqwest::Method::PUT,
        &format!("/v1/plugins/acme/keeper/secrets/{name}"),
        Some(body),
    )
    .await
}

async fn greet(h: &Harness, invoker: &str) -> Value {
    h.post(
        invoker,
        "/v1/plugins/acme/keeper/invoke/greet",
        json!({ "args": ["ada"] }),
    )
    .await
    .expect(200)
}

async fn secrets_are_write_only_and_reach_only_their_grant(backend: Backend) {
    let h = common::start(backend).await;
    let invoker = keeper(&h).await;
    // Nothing set: the plugin reads none.
    assert_eq!(greet(&h, &invoker).await["result"], "hello, ada");

    // Only admins set, list and remove.
    let publisher = h.token(&h.admin, "acme", "publisher").await;
    put_secret(&h, &publisher, "GREETING", json!({ "value": VALUE }))
        .await
        .expect_error(403, "insufficient_role");
    let globex = h.create_org("globex").await;
    put_secret(&h, &globex, "GREETING", json!({ "value": VALUE }))
        .await
        .expect_error(403, "wrong_org");

    let set = put_secret(&h, &h.admin, "GREETING", json!({ "value": VALUE }))
        .await
        .expect(200);
    assert_eq!(set["name"], "GREETING");
    assert_eq!(greet(&h, &invoker).await["result"], format!("{VALUE}, ada"));
    // An ungranted name is none, and the log names it without a value.
    put_secret(&h, &h.admin, "OTHER", json!({ "value": VALUE }))
        .await
        .expect(200);
    let other = h
        .post(
            &invoker,
            "/v1/plugins/acme/keeper/invoke/has",
            json!({ "args": ["OTHER"] }),
        )
        .await
        .expect(200);
    assert_eq!(other["result"], false);
    assert!(other["logs"].to_string().contains("not granted"), "{other}");

    let listed = h
        .get(&h.admin, "/v1/plugins/acme/keeper/secrets")
        .await
        .expect(200);
    let names: Vec<&str> = listed["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["GREETING", "OTHER"]);
    h.get(&invoker, "/v1/plugins/acme/keeper/secrets")
        .await
        .expect_error(403, "insufficient_role");

    // Bad requests are refused without repeating what was sent.
    for (name, body, code) in [
        ("GREETING", json!({ "value": 31337 }), "invalid_body"),
        (
            "GREETING",
            json!({ "value": VALUE, "x": VALUE }),
            "invalid_body",
        ),
        ("1BAD", json!({ "value": VALUE }), "invalid_secret_name"),
        (
            "GREETING",
            json!({ "value": "v".repeat(64 * 1024 + 1) }),
            "secret_too_large",
        ),
    ] {
        let refused = put_secret(&h, &h.admin, name, body).await;
        refused.expect_error(400, code);
        assert!(
            !refused.body.to_string().contains(VALUE),
            "{:?}",
            refused.body
        );
        assert!(
            !refused.body.to_string().contains("31337"),
            "{:?}",
            refused.body
        );
    }
    put_secret(
        &h,
        &h.admin,
        "GREETING",
        json!({ "value": "v".repeat(64 * 1024) }),
    )
    .await
    .expect(200);
    put_secret(&h, &h.admin, "GREETING", json!({ "value": VALUE }))
        .await
        .expect(200);
    h.call(
        &h.admin,
        reqwest::Method::PUT,
        "/v1/plugins/acme/nobody/secrets/X",
        Some(json!({ "value": VALUE })),
    )
    .await
    .expect_error(404, "not_found");

    // The audit log says who set which name, never the value.
    let audit = h
        .get(&h.admin, "/v1/orgs/acme/audit?limit=1000")
        .await
        .expect(200);
    let text = audit.to_string();
    assert!(
        text.contains("secret.set") && text.contains("GREETING"),
        "{text}"
    );
    assert!(!text.contains(VALUE), "{text}");
    // Nor do /metrics, the release, the plugin or any answer above.
    assert!(!h.metrics(&h.admin).await.contains(VALUE));
    for path in [
        "/v1/plugins/acme/keeper",
        "/v1/plugins/acme/keeper/releases/1.0.0",
    ] {
        let shown = h.get(&h.admin, path).await.expect(200).to_string();
        assert!(!shown.contains(VALUE), "{path}: {shown}");
    }
    // The review shows the grant like any capability.
    let review = h
        .get(&h.admin, "/v1/plugins/acme/keeper/releases/1.0.0")
        .await
        .expect(200);
    assert!(review.to_string().contains("secret:GREETING"), "{review}");

    // Removed: the next invocation reads none.
    h.call(
        &h.admin,
        reqwest::Method::DELETE,
        "/v1/plugins/acme/keeper/secrets/GREETING",
        None,
    )
    .await
    .expect(204);
    assert_eq!(greet(&h, &invoker).await["result"], "hello, ada");
    h.call(
        &h.admin,
        reqwest::Method::DELETE,
        "/v1/plugins/acme/keeper/secrets/GREETING",
        None,
    )
    .await
    .expect_error(404, "not_found");
    let audit = h
        .get(&h.admin, "/v1/orgs/acme/audit?limit=1000")
        .await
        .expect(200);
    assert!(audit.to_string().contains("secret.removed"));
}
on_both_databases!(secrets_are_write_only_and_reach_only_their_grant);

/// Every file of the data directory (the SQLite database, its WAL, the OCI
/// store) holds the value nowhere: only its ciphertext is stored.
// SQLite only: PostgreSQL's files are not in the data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_never_holds_a_value() {
    let h = common::start(Backend::Sqlite).await;
    let invoker = keeper(&h).await;
    put_secret(&h, &h.admin, "GREETING", json!({ "value": VALUE }))
        .await
        .expect(200);
    assert_eq!(greet(&h, &invoker).await["result"], format!("{VALUE}, ada"));
    let key_file = h.dir.path().join("data").join("secrets.key");
    for file in common::walk(&h.dir.path().join("data")) {
        if file == key_file {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()),
            "{} holds the value",
            file.display()
        );
    }
}

/// A second control plane on the same data directory and database, with
/// the key files `key` and `previous`.
async fn reopen(
    h: &Harness,
    backend: &Backend,
    key: Option<&std::path::Path>,
    previous: Option<&std::path::Path>,
) -> Result<ControlPlane, String> {
    let mut config = ServerConfig::new(h.dir.path().join("data"));
    config.admin_keys = h.pinned.iter().map(|k| k.public_key()).collect();
    if let Backend::Postgres(url) = backend {
        config.database_url = Some(url.clone());
    }
    config.secrets_key_file = key.map(Into::into);
    config.previous_secrets_key_file = previous.map(Into::into);
    ControlPlane::open(&config).await.map_err(|e| e.to_string())
}

async fn the_key_file_is_checked_at_start_and_rotates(backend: Backend) {
    let h = start_tweaked(backend.clone(), |_| {}).await;
    let invoker = keeper(&h).await;
    put_secret(&h, &h.admin, "GREETING", json!({ "value": VALUE }))
        .await
        .expect(200);
    let data = h.dir.path().join("data");
    let old_key = data.join("secrets.key");
    assert!(std::fs::read_to_string(&old_key).unwrap().trim().len() == 64);

    // Another key: refused with what to do, not garbage.
    let other = h.dir.path().join("other.key");
    std::fs::write(&other, format!("{}\n", "ab".repeat(32))).unwrap();
    let refused = reopen(&h, &backend, Some(&other), None)
        .await
        .err()
        .unwrap();
    assert!(refused.contains("encrypted under key"), "{refused}");
    assert!(refused.contains("--previous-secrets-key-file"), "{refused}");
    // No key file at all while secrets are stored: refused, never a new key.
    let missing = h.dir.path().join("missing.key");
    let refused = reopen(&h, &backend, Some(&missing), None)
        .await
        .err()
        .unwrap();
    assert!(refused.contains("does not exist"), "{refused}");
    assert!(!missing.exists());
    // A file that holds no key.
    let garbage = h.dir.path().join("garbage.key");
    std::fs::write(&garbage, "not a key").unwrap();
    let refused = reopen(&h, &backend, Some(&garbage), None)
        .await
        .err()
        .unwrap();
    assert!(refused.contains("does not hold a key"), "{refused}");

    // Rotation: the old key as previous, a new one as current.
    let new_key = h.dir.path().join("new.key");
    std::fs::write(&new_key, format!("{}\n", "cd".repeat(32))).unwrap();
    let rotated = reopen(&h, &backend, Some(&new_key), Some(&old_key))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(warden_registry::serve(listener, rotated.router()));
    let answer: Value = reqwest::Client::new()
        .post(format!("{url}/v1/plugins/acme/keeper/invoke/greet"))
        .bearer_auth(&invoker)
        .json(&json!({ "args": ["ada"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["result"], format!("{VALUE}, ada"), "{answer}");
    // ... and the old key is refused from now on.
    let refused = reopen(&h, &backend, Some(&old_key), None)
        .await
        .err()
        .unwrap();
    assert!(refused.contains("encrypted under key"), "{refused}");
    // Starting again with the new key (previous still given) changes nothing.
    reopen(&h, &backend, Some(&new_key), Some(&old_key))
        .await
        .unwrap();
    reopen(&h, &backend, Some(&new_key), None).await.unwrap();
}
on_both_databases!(the_key_file_is_checked_at_start_and_rotates);
