//! Invocations that must not hurt anyone else, end to end over HTTP on SQLite
//! and PostgreSQL: a hammered hostile plugin, one tenant flooding the pool,
//! a tampered compiled cache, refusals remembered, revoked admin keys, pending
//! releases leaving no compiled code.

mod common;

use common::{Backend, approval_body, walk, world};
use reqwest::Method;
use serde_json::{Value, json};
use warden_host::{Limits, PrivateKey};
use warden_test_programs::{HELLO, HOSTILE, read};

async fn a_hammered_hostile_plugin_does_not_disturb_a_good_one(backend: Backend) {
    let w = world(backend).await;
    let hello = read(HELLO);
    w.release("hello", "1.0.0", &hello, &[], Limits::default())
        .await;
    let limits = Limits {
        timeout: std::time::Duration::from_millis(300),
        concurrency: 8,
        ..Limits::default()
    };
    w.release("hostile", "1.0.0", &read(HOSTILE), &[], limits)
        .await;
    // Loaded before the storm, so the storm measures running, not loading.
    w.invoke(&w.invoker, "hostile", "ping", json!({}))
        .await
        .expect(200);

    let url = format!("{}/v1/plugins/acme/hostile/invoke/spin", w.h.url);
    let storm: Vec<_> = (0..200)
        .map(|_| {
            let request = w.h.http.post(&url).bearer_auth(&w.invoker).json(&json!({}));
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap();
                (
                    status,
                    body["error"]["code"].as_str().unwrap_or("").to_owned(),
                )
            })
        })
        .collect();
    for i in 0..20 {
        let name = format!("caller {i}");
        let ran = w
            .invoke(&w.invoker, "hello", "greet", json!({ "args": name }))
            .await
            .expect(200);
        assert_eq!(ran["result"], format!("Hello, caller {i}!"));
    }
    let mut outcomes = std::collections::BTreeMap::new();
    for call in storm {
        let (status, code) = call.await.unwrap();
        assert!(
            matches!(
                (status, code.as_str()),
                (429, "too_many_concurrent") | (422, "deadline_exceeded") | (422, "out_of_fuel")
            ),
            "{status} {code}"
        );
        *outcomes.entry(code).or_insert(0) += 1;
    }
    assert!(
        outcomes.get("too_many_concurrent").is_some_and(|n| *n > 0),
        "{outcomes:?}"
    );
    assert!(
        outcomes.get("deadline_exceeded").is_some_and(|n| *n > 0),
        "{outcomes:?}"
    );
    // And both keep answering afterwards.
    w.invoke(&w.invoker, "hostile", "ping", json!({}))
        .await
        .expect(200);
    w.invoke(&w.invoker, "hello", "greet", json!({ "args": "after" }))
        .await
        .expect(200);
}
on_both_databases!(a_hammered_hostile_plugin_does_not_disturb_a_good_one);

async fn a_replaced_compiled_cache_entry_is_discarded_and_audited(backend: Backend) {
    let w = world(backend.clone()).await;
    w.release("hello", "1.0.0", &read(HELLO), &[], Limits::default())
        .await;
    w.invoke(&w.invoker, "hello", "greet", json!({ "args": "first" }))
        .await
        .expect(200);

    // Someone replaces the compiled code on disk.
    let compiled = w.h.dir.path().join("data/compiled");
    let mut replaced = 0;
    for entry in walk(&compiled) {
        if entry.file_name().is_some_and(|n| n != "cache.key") {
            std::fs::write(&entry, b"\x7fELF not what we compiled").unwrap();
            replaced += 1;
        }
    }
    assert!(
        replaced > 0,
        "the first load left a compiled entry in {}",
        compiled.display()
    );

    // A second server on the same data (a restart, or a replica): the entry fails
    // its check, is discarded, the verified component is recompiled, and it is audited.
    let mut config = warden_registry::ServerConfig::new(w.h.dir.path().join("data"));
    config.admin_keys = w.h.pinned.iter().map(PrivateKey::public_key).collect();
    if let Backend::Postgres(url) = &backend {
        config.database_url = Some(url.clone());
    }
    let plane = warden_registry::ControlPlane::open(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, plane.router()).into_future());
    let ran =
        w.h.http
            .post(format!(
                "http://{address}/v1/plugins/acme/hello/invoke/greet"
            ))
            .bearer_auth(&w.invoker)
            .json(&json!({ "args": "again" }))
            .send()
            .await
            .unwrap();
    assert_eq!(ran.status(), 200);
    assert_eq!(
        ran.json::<Value>().await.unwrap()["result"],
        "Hello, again!"
    );
    let audit =
        w.h.get(&w.h.admin, "/v1/audit?limit=1000")
            .await
            .expect(200);
    let rejected = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "cache.rejected")
        .count();
    assert_eq!(rejected, 1);
}
on_both_databases!(a_replaced_compiled_cache_entry_is_discarded_and_audited);

async fn an_approval_by_a_revoked_admin_key_stops_counting(backend: Backend) {
    let w = world(backend).await;
    w.release("hello", "1.0.0", &read(HELLO), &[], Limits::default())
        .await;
    w.invoke(&w.invoker, "hello", "greet", json!({ "args": ["x"] }))
        .await
        .expect(200);
    // The admin key stays pinned in the server's configuration; revoking it
    // in the database is enough: the database may remove trust.
    let key_id = w.bob.public_key().key_id();
    let revoked =
        w.h.call(
            &w.h.admin,
            Method::POST,
            &format!("/v1/orgs/acme/keys/{key_id}/revoke"),
            None,
        )
        .await;
    assert_eq!(revoked.status, 204);
    let refused = w
        .invoke(&w.invoker, "hello", "greet", json!({ "args": ["x"] }))
        .await;
    refused.expect_error(409, "release_untrusted");
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&key_id), "{message}");
}
on_both_databases!(an_approval_by_a_revoked_admin_key_stops_counting);

/// Publishes HOSTILE as `org/slow@1.0.0` and approves it with pinned key
/// `pinned`; returns an invoker token of `org`.
async fn slow_plugin_of(h: &common::Harness, admin: &str, org: &str, pinned: usize) -> String {
    plugin_of(
        h,
        admin,
        org,
        pinned,
        "slow",
        &read(HOSTILE),
        Limits::default(),
    )
    .await
}

/// Publishes `component` as `org/name@1.0.0` and approves it with pinned
/// key `pinned`; returns an invoker token of `org`.
async fn plugin_of(
    h: &common::Harness,
    admin: &str,
    org: &str,
    pinned: usize,
    name: &str,
    component: &[u8],
    limits: Limits,
) -> String {
    let publisher = h.token(admin, org, "publisher").await;
    let invoker = h.token(admin, org, "invoker").await;
    let key = h.key(admin, org, "publisher", &format!("{org}-dev")).await;
    let approver = PrivateKey::from_pem(&h.pinned[pinned].to_pem()).unwrap();
    let added = h.post(
        admin,
        &format!("/v1/orgs/{org}/keys"),
        json!({ "public_key": approver.public_key().to_string(), "kind": "admin", "owner": format!("{org}-admin") }),
    )
    .await;
    // 409: added for an earlier plugin of the org.
    assert!(matches!(added.status.as_u16(), 201 | 409), "{}", added.body);
    let repo = format!("{org}/{name}");
    let release = h
        .publish(&publisher, &key, &repo, "1.0.0", component, &[])
        .await
        .expect(201);
    h.post(
        admin,
        &format!("/v1/plugins/{repo}/releases/1.0.0/approve"),
        approval_body(&approver, &release, &[], limits),
    )
    .await
    .expect(200);
    invoker
}

async fn one_tenant_cannot_take_the_pool_from_another(backend: Backend) {
    let h = common::start_tweaked(backend, |config| {
        config.pool_instances = 8;
        config.org_share = 4;
    })
    .await;
    let acme = slow_plugin_of(&h, &h.admin, "acme", 0).await;
    let globex_admin = h.create_org("globex").await;
    let globex = slow_plugin_of(&h, &globex_admin, "globex", 1).await;

    // acme floods: more long calls than the whole pool has slots.
    let flood = (0..10).map(|_| {
        h.post(
            &acme,
            "/v1/plugins/acme/slow/invoke/sleep",
            json!({ "args": [1500] }),
        )
    });
    let flood = futures_util::future::join_all(flood);
    let other = async {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        h.post(&globex, "/v1/plugins/globex/slow/invoke/ping", json!({}))
            .await
    };
    let (flood, other) = tokio::join!(flood, other);
    // globex's call ran although acme's were still running.
    assert_eq!(other.status, 200, "{}", other.body);
    let ran = flood.iter().filter(|a| a.status == 200).count();
    assert_eq!(ran, 4, "acme ran exactly its share");
    for refused in flood.iter().filter(|a| a.status != 200) {
        refused.expect_error(429, "capacity");
    }
}
on_both_databases!(one_tenant_cannot_take_the_pool_from_another);

/// A component whose `spin` loops until its deadline, with `memories`
/// linear memories and `tables` tables across its core instances.
fn wide_spinner(memories: usize, tables: usize) -> Vec<u8> {
    let mut wat = String::from("(component\n (core module $table (table 1 funcref))\n");
    wat.push_str(" (core module $memory (memory 1))\n");
    for _ in 1..memories {
        wat.push_str(" (core instance (instantiate $memory))\n");
    }
    for _ in 0..tables {
        wat.push_str(" (core instance (instantiate $table))\n");
    }
    wat.push_str(
        " (core module $main (memory 1) (func (export \"spin\") (loop br 0)))\n\
         (core instance $main (instantiate $main))\n\
         (func (export \"spin\") (canon lift (core func $main \"spin\")))\n)",
    );
    wat::parse_str(&wat).unwrap()
}

async fn memories_and_tables_count_against_the_orgs_share(backend: Backend) {
    // 8 slots: 16 memories and 64 tables in the pool; a share of 4 slots
    // is 8 memories and 32 tables.
    let h = common::start_tweaked(backend, |config| {
        config.pool_instances = 8;
        config.org_share = 4;
    })
    .await;
    let globex_admin = h.create_org("globex").await;
    let globex = slow_plugin_of(&h, &globex_admin, "globex", 1).await;
    for (name, memories, tables) in [("memories", 8, 0), ("tables", 1, 32)] {
        let limits = Limits {
            timeout: std::time::Duration::from_secs(1),
            ..Limits::default()
        };
        let spinner = wide_spinner(memories, tables);
        let acme = plugin_of(&h, &h.admin, "acme", 0, name, &spinner, limits).await;
        // Each call of acme's takes its whole share of memories or tables:
        // counted by instances alone, its 4 calls would take all 16
        // memories (or 4 x 32 tables, past the 64 the pool holds).
        let path = format!("/v1/plugins/acme/{name}/invoke/spin");
        let flood = futures_util::future::join_all((0..4).map(|_| h.post(&acme, &path, json!({}))));
        let other = async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            h.post(&globex, "/v1/plugins/globex/slow/invoke/ping", json!({}))
                .await
        };
        let (flood, other) = tokio::join!(flood, other);
        assert_eq!(other.status, 200, "{name}: {}", other.body);
        let mut ran = 0;
        for answer in &flood {
            if answer.status == 429 {
                answer.expect_error(429, "capacity");
                let message = answer.body["error"]["message"].as_str().unwrap();
                assert!(message.contains("share"), "{message}");
            } else {
                // It spins until its fuel or its time runs out.
                let code = answer.body["error"]["code"].as_str().unwrap_or_default();
                assert!(
                    matches!(code, "deadline_exceeded" | "out_of_fuel"),
                    "{}",
                    answer.body
                );
                ran += 1;
            }
        }
        assert_eq!(ran, 1, "{name}: acme ran exactly what its share holds");
    }
}
on_both_databases!(memories_and_tables_count_against_the_orgs_share);

async fn a_refused_release_is_remembered_and_audited_once(backend: Backend) {
    let w = world(backend).await;
    let hello = read(HELLO);
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
    let refusals = |h: &common::Harness| {
        let pool = h.db.pool().clone();
        async move {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM audit WHERE org = 'acme' AND action = 'release.refused'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            n
        }
    };
    let before = refusals(&w.h).await;
    for attempt in 0..25 {
        let refused = w
            .invoke(&w.invoker, "rogue", "greet", json!({ "args": "x" }))
            .await;
        refused.expect_error(409, "release_untrusted");
        if attempt > 0 {
            let message = refused.body["error"]["message"].as_str().unwrap();
            assert!(message.contains("refused again"), "{message}");
        }
    }
    assert_eq!(
        refusals(&w.h).await - before,
        1,
        "25 refusals of one release in a row make one audit entry"
    );
    // A good release of the same org is not held up by the refused one.
    w.release("hello", "1.0.0", &hello, &[], Limits::default())
        .await;
    w.invoke(&w.invoker, "hello", "greet", json!({ "args": "x" }))
        .await
        .expect(200);
}
on_both_databases!(a_refused_release_is_remembered_and_audited_once);

async fn a_pending_release_leaves_no_compiled_code_behind(backend: Backend) {
    let w = world(backend).await;
    let compiled = w.h.dir.path().join("data/compiled");
    let count = || walk(&compiled).len();
    let before = count();
    let release =
        w.h.publish(
            &w.publisher,
            &w.alice,
            "acme/hello",
            "1.0.0",
            &read(HELLO),
            &[],
        )
        .await
        .expect(201);
    assert_eq!(count(), before, "checked at publish, not cached");
    w.h.post(
        &w.h.admin,
        "/v1/plugins/acme/hello/releases/1.0.0/approve",
        approval_body(&w.bob, &release, &[], Limits::default()),
    )
    .await
    .expect(200);
    w.invoke(&w.invoker, "hello", "greet", json!({ "args": "x" }))
        .await
        .expect(200);
    assert!(count() > before, "cached once it ran");
}
on_both_databases!(a_pending_release_leaves_no_compiled_code_behind);
