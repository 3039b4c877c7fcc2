//! Invocations that cross dependency links, over real HTTP, on SQLite and
//! PostgreSQL: `acme/dependent` (no capability of its own) imports the
//! vault interface that `acme/vault` (granted kv) exports. Publishing
//! checks that a declared dependency provides the import; each invocation
//! links the dependencies as they resolve now, verified like any release.

mod common;

use common::{Backend, Org, name_versions, org};
use serde_json::{Value, json};
use warden_host::{Limits, PrivateKey};
use warden_test_programs::{DEPENDENT, HELLO, VAULT, read};

impl Org {
    /// The vault at `version` (kv granted), published and approved.
    async fn vault(&self, key: &PrivateKey, version: &str) -> Value {
        let release = self
            .publish_declaring(key, "acme/vault", version, VAULT, &["kv"], &[])
            .await
            .expect(201);
        self.approve(&release, &["kv"], Limits::default()).await;
        release
    }

    /// The dependent at 1.0.0 on `acme/vault ^1`, published and approved.
    async fn dependent(&self, limits: Limits) -> Value {
        let release = self
            .publish_declaring(
                &self.alice,
                "acme/dependent",
                "1.0.0",
                DEPENDENT,
                &[],
                &[("acme/vault", "^1")],
            )
            .await
            .expect(201);
        self.approve(&release, &[], limits).await;
        release
    }

    async fn call(&self, function: &str, args: Value) -> common::Answer {
        self.h
            .post(
                &self.h.admin,
                &format!("/v1/plugins/acme/dependent/invoke/{function}"),
                json!({ "args": args }),
            )
            .await
    }
}

fn linked_versions(answer: &Value) -> Vec<String> {
    name_versions(&answer["dependencies"])
}

async fn an_invocation_crosses_a_dependency_link_and_follows_changes(backend: Backend) {
    let o = org(backend, 1).await;
    o.vault(&o.alice, "1.0.0").await;
    o.dependent(Limits::default()).await;

    let stored = o
        .call("remember", json!(["colour", "blue"]))
        .await
        .expect(200);
    assert_eq!(stored["result"], json!(null));
    assert_eq!(linked_versions(&stored), ["acme/vault@1.0.0"]);
    assert_eq!(
        stored["dependencies"][0]["digest"],
        warden_host::Digest::of(&read(VAULT)).to_string()
    );
    let recalled = o.call("recall", json!(["colour"])).await.expect(200);
    assert_eq!(recalled["result"], json!("blue"));
    // Written in the vault's own namespace: the vault reads it directly.
    let direct =
        o.h.post(
            &o.h.admin,
            "/v1/plugins/acme/vault/invoke/vault.get",
            json!({ "args": ["colour"] }),
        )
        .await
        .expect(200);
    assert_eq!(direct["result"], json!("blue"));
    let metrics = o.h.metrics(&o.h.admin).await;
    assert!(
        metrics.contains(
            r#"warden_plugin_dependency_links_total{plugin="acme/dependent",dependency="acme/vault",version="1.0.0"} 2"#
        ),
        "{metrics}"
    );
    let resolution =
        o.h.get(&o.h.admin, "/v1/plugins/acme/dependent/resolve")
            .await
            .expect(200);
    assert_eq!(resolution["releases"].as_array().unwrap().len(), 2);

    // A newer compatible vault is used by the next invocation...
    o.vault(&o.alice, "1.1.0").await;
    let answer = o.call("recall", json!(["colour"])).await.expect(200);
    assert_eq!(linked_versions(&answer), ["acme/vault@1.1.0"]);
    assert_eq!(answer["result"], json!("blue"));
    // ... a yanked one falls back to the next satisfying version ...
    o.yank("acme/vault", "1.1.0").await;
    let answer = o.call("recall", json!(["colour"])).await.expect(200);
    assert_eq!(linked_versions(&answer), ["acme/vault@1.0.0"]);
    // ... and with none left, the call fails with the explanation.
    o.yank("acme/vault", "1.0.0").await;
    let refused = o.call("recall", json!(["colour"])).await;
    refused.expect_error(409, "unresolvable");
    let explanation = refused.body["error"]["details"]["explanation"].to_string();
    assert!(explanation.contains("acme/vault"), "{explanation}");
}
on_both_databases!(an_invocation_crosses_a_dependency_link_and_follows_changes);

async fn a_revoked_dependency_key_stops_its_dependents(backend: Backend) {
    let o = org(backend, 1).await;
    let carol = o.h.key(&o.h.admin, "acme", "publisher", "carol").await;
    o.vault(&carol, "1.0.0").await;
    o.dependent(Limits::default()).await;
    o.call("shout-times", json!(["hi", 2])).await.expect(200);

    o.h.post(
        &o.h.admin,
        &format!("/v1/orgs/acme/keys/{}/revoke", carol.public_key().key_id()),
        json!({}),
    )
    .await
    .expect(204);
    // No release of the vault is trusted now: nothing resolves, and the
    // explanation says why.
    let refused = o.call("shout-times", json!(["hi", 2])).await;
    refused.expect_error(409, "unresolvable");
    let explanation = refused.body["error"]["details"]["explanation"].to_string();
    assert!(
        explanation.contains(
            "acme/vault, which has approved releases, but their publisher keys are revoked"
        ) && explanation.contains("1.0.0 (publisher key"),
        "{explanation}"
    );
}
on_both_databases!(a_revoked_dependency_key_stops_its_dependents);

async fn publishing_checks_that_a_dependency_provides_each_import(backend: Backend) {
    let o = org(backend, 1).await;
    let publish = |dependencies: &'static [(&'static str, &'static str)]| {
        o.publish_declaring(
            &o.alice,
            "acme/dependent",
            "1.0.0",
            DEPENDENT,
            &[],
            dependencies,
        )
    };
    // No dependency declared: nothing can provide it.
    let refused = publish(&[]).await;
    refused.expect_error(422, "unsupported_imports");
    // A declared dependency that does not export it.
    let hello = o
        .publish_declaring(&o.alice, "acme/hello", "1.0.0", HELLO, &[], &[])
        .await
        .expect(201);
    o.approve(&hello, &[], Limits::default()).await;
    let refused = publish(&[("acme/hello", "^1")]).await;
    refused.expect_error(422, "unsupported_imports");
    assert_eq!(
        refused.body["error"]["message"],
        "the component imports warden-tests:linking/vault@0.1.0, which no release of its dependencies (acme/hello ^1) exports"
    );
    assert_eq!(
        refused.body["error"]["details"]["unprovided"],
        json!(["warden-tests:linking/vault@0.1.0"])
    );
    // A vault outside the requirement does not count; one inside does,
    // even while it waits for approval.
    o.publish_declaring(&o.alice, "acme/vault", "2.0.0", VAULT, &["kv"], &[])
        .await
        .expect(201);
    publish(&[("acme/vault", "^1")])
        .await
        .expect_error(422, "unsupported_imports");
    o.publish_declaring(&o.alice, "acme/vault", "1.0.0", VAULT, &["kv"], &[])
        .await
        .expect(201);
    publish(&[("acme/vault", "^1")]).await.expect(201);
}
on_both_databases!(publishing_checks_that_a_dependency_provides_each_import);

async fn a_hostile_dependency_is_stopped_by_the_callers_limits(backend: Backend) {
    let o = org(backend, 1).await;
    o.vault(&o.alice, "1.0.0").await;
    o.dependent(Limits {
        fuel: 20_000_000,
        ..Limits::default()
    })
    .await;
    let failed = o.call("spin-there", json!([])).await;
    failed.expect_error(422, "out_of_fuel");
    let details = &failed.body["error"]["details"];
    assert_eq!(details["failed_in"], "acme/vault@1.0.0");
    assert_eq!(details["metering"]["fuel_used"], 20_000_000);
    assert_eq!(details["dependencies"][0]["name"], "acme/vault");
    let crashed = o.call("crash-there", json!(["no more"])).await;
    crashed.expect_error(422, "trap");
    assert_eq!(
        crashed.body["error"]["details"]["failed_in"],
        "acme/vault@1.0.0"
    );
    // Later calls are unaffected.
    o.call("shout-times", json!(["ok", 1])).await.expect(200);
}
on_both_databases!(a_hostile_dependency_is_stopped_by_the_callers_limits);

async fn a_dependency_runs_with_its_own_grants_only(backend: Backend) {
    let o = org(backend, 1).await;
    // The vault asks for kv; its admin grants nothing. The dependent's
    // grants do not reach it.
    let vault = o
        .publish_declaring(&o.alice, "acme/vault", "1.0.0", VAULT, &["kv"], &[])
        .await
        .expect(201);
    o.approve(&vault, &[], Limits::default()).await;
    let release = o
        .publish_declaring(
            &o.alice,
            "acme/dependent",
            "1.0.0",
            DEPENDENT,
            &["kv"],
            &[("acme/vault", "^1")],
        )
        .await
        .expect(201);
    o.approve(&release, &["kv"], Limits::default()).await;
    let refused = o.call("remember", json!(["k", "v"])).await;
    refused.expect_error(409, "missing_capabilities");
    assert_eq!(
        refused.body["error"]["message"],
        "in dependency acme/vault@1.0.0: capabilities not granted: kv"
    );
}
on_both_databases!(a_dependency_runs_with_its_own_grants_only);

async fn a_call_tree_larger_than_the_orgs_share_is_refused_before_loading(backend: Backend) {
    let o =
        common::org_on(common::start_tweaked(backend, |config| config.org_share = 2).await).await;
    o.vault(&o.alice, "1.0.0").await;
    let relay = o
        .publish_declaring(
            &o.alice,
            "acme/relay",
            "1.0.0",
            warden_test_programs::RELAY,
            &[],
            &[("acme/vault", "^1")],
        )
        .await
        .expect(201);
    o.approve(&relay, &[], Limits::default()).await;
    // dependent -> vault: two plugins, within the share of two.
    o.dependent(Limits::default()).await;
    o.call("shout-times", json!(["hi", 1])).await.expect(200);
    // relay -> vault is two as well; a dependent on the relay would be three.
    let chained = o
        .publish_declaring(
            &o.alice,
            "acme/dependent",
            "2.0.0",
            DEPENDENT,
            &[],
            &[("acme/relay", "^1")],
        )
        .await
        .expect(201);
    o.approve(&chained, &[], Limits::default()).await;
    let refused = o.call("shout-times", json!(["hi", 1])).await;
    refused.expect_error(409, "invalid_config");
    assert_eq!(
        refused.body["error"]["message"],
        "invalid configuration: an invocation of it instantiates 3 plugins (itself and its dependencies); an organization may run 2 at once"
    );
}
on_both_databases!(a_call_tree_larger_than_the_orgs_share_is_refused_before_loading);

async fn newer_releases_outside_the_requirement_do_not_hide_a_provider(backend: Backend) {
    let o = org(backend, 1).await;
    o.vault(&o.alice, "1.0.0").await;
    // More releases outside `^1`, all newer, than the check reads.
    for minor in 0..=dependencies_read() {
        o.publish_declaring(
            &o.alice,
            "acme/vault",
            &format!("2.{minor}.0"),
            VAULT,
            &["kv"],
            &[],
        )
        .await
        .expect(201);
    }
    o.dependent(Limits::default()).await;
}
on_both_databases!(newer_releases_outside_the_requirement_do_not_hide_a_provider);

fn dependencies_read() -> usize {
    warden_registry::PROVIDER_RELEASES_READ
}
