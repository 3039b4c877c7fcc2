//! Plugin secrets through the server, on SQLite and PostgreSQL: set write
//! only by admins, read by a release granted their name, never in an
//! answer, the audit log, `/metrics` or the database file; encrypted under
//! a key file the database never holds, which is checked at start and can
//! be rotated.

mod common;

use common::{Backend, Harness, approval_body, org, start_tweaked};
use serde_json::{Value, json};
use warden_host::Limits;
use warden_registry::{ControlPlane, ServerConfig};
use warden_test_programs::{ASKER, KEEPER, TELLER, read};

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

/// `acme/asker` reads secrets of its own and calls `acme/teller`, a
/// dependency that reads its own: each reads only what its own release was
/// granted, from its own plugin's values, whichever side of the link asks.
async fn secrets_never_cross_a_dependency_link(backend: Backend) {
    let o = org(backend, 1).await;
    let teller = o
        .publish_declaring(
            &o.alice,
            "acme/teller",
            "1.0.0",
            TELLER,
            &["secret:SHARED", "secret:TELLER_KEY"],
            &[],
        )
        .await
        .expect(201);
    o.approve(
        &teller,
        &["secret:SHARED", "secret:TELLER_KEY"],
        Limits::default(),
    )
    .await;
    let asker = o
        .publish_declaring(
            &o.alice,
            "acme/asker",
            "1.0.0",
            ASKER,
            &["secret:ASKER_KEY", "secret:SHARED"],
            &[("acme/teller", "^1")],
        )
        .await
        .expect(201);
    o.approve(
        &asker,
        &["secret:ASKER_KEY", "secret:SHARED"],
        Limits::default(),
    )
    .await;
    let set = |plugin: &'static str, name: &'static str, value: &'static str| {
        let h = &o.h;
        async move {
            h.call(
                &h.admin,
                reqwest::Method::PUT,
                &format!("/v1/plugins/acme/{plugin}/secrets/{name}"),
                Some(json!({ "value": value })),
            )
            .await
            .expect(200);
        }
    };
    set("asker", "ASKER_KEY", "asker-own").await;
    set("asker", "SHARED", "asker-shared").await;
    // The dependent's values under the dependency's granted name: never
    // what the dependency reads.
    set("asker", "TELLER_KEY", "asker-under-teller-name").await;
    set("teller", "TELLER_KEY", "teller-own").await;
    set("teller", "SHARED", "teller-shared").await;
    set("teller", "ASKER_KEY", "teller-under-asker-name").await;

    let reveal = |function: &'static str, name: &'static str| {
        let h = &o.h;
        async move {
            let answer = h
                .post(
                    &h.admin,
                    &format!("/v1/plugins/acme/asker/invoke/{function}"),
                    json!({ "args": [name] }),
                )
                .await
                .expect(200);
            assert_eq!(
                common::name_versions(&answer["dependencies"]),
                ["acme/teller@1.0.0"]
            );
            answer["result"].clone()
        }
    };
    // Each side reads its own value of a name both were granted.
    assert_eq!(reveal("reveal-here", "SHARED").await, "asker-shared");
    assert_eq!(reveal("reveal-there", "SHARED").await, "teller-shared");
    // Each reads its own grants...
    assert_eq!(reveal("reveal-here", "ASKER_KEY").await, "asker-own");
    assert_eq!(reveal("reveal-there", "TELLER_KEY").await, "teller-own");
    // ... and not the other's: the dependent cannot read the dependency's
    // granted name, nor the dependency the dependent's, though each
    // plugin has a value set under that name.
    assert_eq!(reveal("reveal-here", "TELLER_KEY").await, json!(null));
    assert_eq!(reveal("reveal-there", "ASKER_KEY").await, json!(null));
}
on_both_databases!(secrets_never_cross_a_dependency_link);

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

/// A replica still on the previous key sets a value while a start
/// re-encrypts: the re-encryption read the row before that write, so
/// writing its result back would lose the newer value. It must fail the
/// start instead, whole, and the newer value stays. PostgreSQL only: that
/// is where replicas share a database (SQLite's single writer refuses the
/// stale update by itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_set_during_rotation_is_never_written_over() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let Backend::Postgres(url) = &backend else {
        unreachable!()
    };
    let h = start_tweaked(backend.clone(), |_| {}).await;
    let invoker = keeper(&h).await;
    let row = "SELECT nonce, ciphertext FROM secrets
               WHERE org = 'acme' AND plugin = 'keeper' AND name = 'GREETING'";
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(3)
        .connect(url)
        .await
        .unwrap();
    // The value "newer", sealed under the old key (the same row, so it
    // opens): what a replica on the old key writes during the rotation.
    put_secret(&h, &h.admin, "GREETING", json!({ "value": "newer" }))
        .await
        .expect(200);
    let (nonce, ciphertext): (String, String) = sqlx::query_as(row).fetch_one(&pool).await.unwrap();
    put_secret(&h, &h.admin, "GREETING", json!({ "value": "older" }))
        .await
        .expect(200);
    // That write holds the row until it commits...
    let mut writer = pool.begin().await.unwrap();
    sqlx::query(
        "UPDATE secrets SET nonce = $1, ciphertext = $2
         WHERE org = 'acme' AND plugin = 'keeper' AND name = 'GREETING'",
    )
    .bind(&nonce)
    .bind(&ciphertext)
    .execute(&mut *writer)
    .await
    .unwrap();
    // ... while a start rotates to a new key: it reads "older" and waits
    // for the row.
    let data = h.dir.path().join("data");
    let old_key = data.join("secrets.key");
    let new_key = h.dir.path().join("new.key");
    std::fs::write(&new_key, format!("{}\n", "cd".repeat(32))).unwrap();
    let rotation = {
        let (h_dir, pinned, url) = (
            data.clone(),
            h.pinned.iter().map(|k| k.public_key()).collect::<Vec<_>>(),
            url.clone(),
        );
        let (new_key, old_key) = (new_key.clone(), old_key.clone());
        tokio::spawn(async move {
            let mut config = ServerConfig::new(h_dir);
            config.admin_keys = pinned;
            config.database_url = Some(url);
            config.secrets_key_file = Some(new_key);
            config.previous_secrets_key_file = Some(old_key);
            ControlPlane::open(&config)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    };
    let waiting = "SELECT COUNT(*) FROM pg_stat_activity
                   WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE secrets SET key_id%'";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (count,): (i64,) = sqlx::query_as(waiting).fetch_one(&pool).await.unwrap();
        if count > 0 {
            break;
        }
        assert!(
            !rotation.is_finished() && std::time::Instant::now() < deadline,
            "the rotation never reached the row"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    writer.commit().await.unwrap();

    let refused = rotation.await.unwrap().expect_err("the start must fail");
    assert!(
        refused.contains("was set while the secrets were re-encrypted"),
        "{refused}"
    );
    // Nothing moved: the server on the old key reads the newer value.
    assert_eq!(greet(&h, &invoker).await["result"], "newer, ada");
    let (key_id,): (String,) = sqlx::query_as(
        "SELECT key_id FROM secrets WHERE org = 'acme' AND plugin = 'keeper' AND name = 'GREETING'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let (stored_nonce,): (String,) = sqlx::query_as(
        "SELECT nonce FROM secrets WHERE org = 'acme' AND plugin = 'keeper' AND name = 'GREETING'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored_nonce, nonce);
    // Retried once the replicas are stopped: the rotation goes through.
    reopen(&h, &backend, Some(&new_key), Some(&old_key))
        .await
        .unwrap();
    let (moved,): (String,) = sqlx::query_as(
        "SELECT key_id FROM secrets WHERE org = 'acme' AND plugin = 'keeper' AND name = 'GREETING'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_ne!(moved, key_id);
}
