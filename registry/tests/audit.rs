//! The audit trail over real HTTP, on SQLite and PostgreSQL: the hash chain
//! detects edits and deletions, and registry pushes are audited.

mod common;

use common::{Backend, Harness, Org, org};
use reqwest::Method;
use serde_json::{Value, json};
use warden_registry::types::{AuditEntry, AuditHead};
use warden_registry::{ChainBreak, verify_chain};
use warden_test_programs::{HELLO, read};

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
