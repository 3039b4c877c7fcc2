//! Dependency resolution over real HTTP, on SQLite and PostgreSQL: releases
//! that declare `org/name = requirement` in their signed statement, approved
//! and yanked through the API, resolved by `GET /v1/plugins/{org}/{name}/resolve`.

mod common;

use common::{Backend, Org, approval_body, name_versions, org};
use serde_json::{Value, json};
use warden_host::Limits;
use warden_test_programs::{HELLO, read};

impl Org {
    /// Publishes the hello component as `repo@version` declaring
    /// `dependencies`, and approves it unless `approve` is false.
    async fn release_with(
        &self,
        repo: &str,
        version: &str,
        dependencies: &[(&str, &str)],
        approve: bool,
    ) -> Value {
        let release = self
            .publish_declaring(&self.alice, repo, version, HELLO, &[], dependencies)
            .await
            .expect(201);
        if approve {
            self.approve(&release, &[], Limits::default()).await;
        }
        release
    }
}

/// `name@version` of each resolved release, in order.
fn versions(resolution: &Value) -> Vec<String> {
    name_versions(&resolution["releases"])
}

async fn dependencies_resolve_through_the_api(backend: Backend) {
    let o = org(backend, 1).await;
    o.release_with("acme/base", "1.0.0", &[], true).await;
    o.release_with("acme/base", "1.1.0", &[], true).await;
    o.release_with("acme/base", "2.0.0", &[], true).await;
    // Pending releases are never chosen.
    o.release_with("acme/base", "1.2.0", &[], false).await;
    o.release_with("acme/left", "1.0.0", &[("acme/base", "^1")], true)
        .await;
    o.release_with(
        "acme/app",
        "1.0.0",
        &[("acme/left", "^1"), ("acme/base", ">=1.0, <3")],
        true,
    )
    .await;
    let viewer = o.h.token(&o.h.admin, "acme", "viewer").await;

    // A diamond: app -> left -> base ^1, app -> base >=1.0 <3: the newest
    // common version, 1.1.0. The plugin first, then its dependencies in
    // name order, breadth first.
    let resolved =
        o.h.get(&viewer, "/v1/plugins/acme/app/resolve")
            .await
            .expect(200);
    assert_eq!(
        versions(&resolved),
        ["acme/app@1.0.0", "acme/base@1.1.0", "acme/left@1.0.0"]
    );
    let app = &resolved["releases"][0];
    assert_eq!(
        app["dependencies"],
        json!({ "acme/left": "1.0.0", "acme/base": "1.1.0" })
    );
    let digest = warden_host::Digest::of(&read(HELLO)).to_string();
    for release in resolved["releases"].as_array().unwrap() {
        assert_eq!(release["component_digest"], digest.as_str());
        assert!(
            release["manifest_digest"]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
    }
    // The requirement on the plugin itself.
    o.h.get(&viewer, "/v1/plugins/acme/app/resolve?version=%5E1")
        .await
        .expect(200);

    // Yanked: the next satisfying version is taken...
    o.yank("acme/base", "1.1.0").await;
    let resolved =
        o.h.get(&viewer, "/v1/plugins/acme/app/resolve")
            .await
            .expect(200);
    assert_eq!(
        versions(&resolved),
        ["acme/app@1.0.0", "acme/base@1.0.0", "acme/left@1.0.0"]
    );
    // ...and without one, the failure explains itself.
    o.yank("acme/base", "1.0.0").await;
    let failed = o.h.get(&viewer, "/v1/plugins/acme/app/resolve").await;
    failed.expect_error(409, "unresolvable");
    assert_eq!(
        failed.body["error"]["details"]["explanation"],
        json!([
            "acme/left 1.0.0 depends on acme/base ^1, and no approved release of acme/base matches it.",
            "acme/app 1.0.0 depends on acme/left ^1.",
            "The request is for acme/app, any version.",
            "So no set of approved releases satisfies acme/app."
        ])
    );

    // Bad input and unknown plugins.
    o.h.get(&viewer, "/v1/plugins/acme/app/resolve?version=newest")
        .await
        .expect_error(400, "invalid_query");
    o.h.get(&viewer, "/v1/plugins/acme/nothing/resolve")
        .await
        .expect_error(404, "not_found");
}
on_both_databases!(dependencies_resolve_through_the_api);

async fn another_orgs_plugins_are_not_dependencies(backend: Backend) {
    let o = org(backend, 1).await;
    let globex_admin = &o.h.create_org("globex").await;
    let globex_publisher = o.h.token(globex_admin, "globex", "publisher").await;
    let gina = o.h.key(globex_admin, "globex", "publisher", "gina").await;
    o.h.publish(
        &globex_publisher,
        &gina,
        "globex/lib",
        "1.0.0",
        &read(HELLO),
        &[],
    )
    .await
    .expect(201);
    o.release_with("acme/app", "1.0.0", &[("globex/lib", "^1")], true)
        .await;
    let failed = o.h.get(&o.h.admin, "/v1/plugins/acme/app/resolve").await;
    failed.expect_error(409, "unresolvable");
    assert_eq!(
        failed.body["error"]["details"]["explanation"][0],
        "acme/app 1.0.0 depends on globex/lib, which is in another organization, whose plugins acme may not use."
    );
    // And globex's tokens cannot ask about acme's plugins at all.
    o.h.get(globex_admin, "/v1/plugins/acme/app/resolve")
        .await
        .expect_error(403, "wrong_org");
}
on_both_databases!(another_orgs_plugins_are_not_dependencies);

async fn a_cycle_is_refused_at_publish_with_the_cycle(backend: Backend) {
    let o = org(backend, 1).await;
    o.release_with("acme/a", "1.0.0", &[("acme/b", "^1")], false)
        .await;
    o.release_with("acme/b", "1.0.0", &[("acme/c", "^1")], true)
        .await;
    let publish = |repo: &'static str, dependencies: &'static [(&'static str, &'static str)]| {
        o.publish_declaring(&o.alice, repo, "1.0.0", HELLO, &[], dependencies)
    };
    // c -> a closes a -> b -> c (a is pending: it counts, it may be approved).
    let refused = publish("acme/c", &[("acme/a", "^1")]).await;
    refused.expect_error(422, "dependency_cycle");
    assert_eq!(
        refused.body["error"]["message"],
        "the dependencies would form a cycle: acme/c -> acme/a -> acme/b -> acme/c"
    );
    // A plugin depending on itself.
    let refused = publish("acme/d", &[("acme/d", "^1")]).await;
    refused.expect_error(422, "dependency_cycle");
    assert_eq!(
        refused.body["error"]["message"],
        "the dependencies would form a cycle: acme/d -> acme/d"
    );
    // Nothing was stored for either.
    o.h.get(&o.h.admin, "/v1/plugins/acme/c/releases/1.0.0")
        .await
        .expect_error(404, "not_found");
    // Without the edge back, c is published.
    publish("acme/c", &[]).await.expect(201);

    // Two publishes closing a cycle from both ends at once: one wins.
    for round in 0..3 {
        let (x, y): (&'static str, &'static str) = match round {
            0 => ("acme/x0", "acme/y0"),
            1 => ("acme/x1", "acme/y1"),
            _ => ("acme/x2", "acme/y2"),
        };
        let x_deps: &'static [(&'static str, &'static str)] =
            Box::leak(vec![(y, "^1")].into_boxed_slice());
        let y_deps: &'static [(&'static str, &'static str)] =
            Box::leak(vec![(x, "^1")].into_boxed_slice());
        let (first, second) = tokio::join!(publish(x, x_deps), publish(y, y_deps));
        let mut statuses = [first.status.as_u16(), second.status.as_u16()];
        statuses.sort();
        assert_eq!(
            statuses,
            [201, 422],
            "{} / {}",
            first.body["error"],
            second.body["error"]
        );
        let refused = if first.status == 422 { &first } else { &second };
        refused.expect_error(422, "dependency_cycle");
    }
}
on_both_databases!(a_cycle_is_refused_at_publish_with_the_cycle);

/// A pigeonhole catalog of `2n(n+1) + 1` releases, each an ordinary
/// release declaring exact versions: `acme/root` needs `n + 1` pigeons;
/// version `1.0.j` of each pigeon `i` needs hole `j` at exactly `i.0.0`; a
/// hole has one version chosen, so no two pigeons can share one. Nothing
/// resolves, and PubGrub must try every way to see it.
async fn pigeonhole(o: &Org, n: usize) {
    for hole in 1..=n {
        for pigeon in 1..=n + 1 {
            let repo = format!("acme/hole{hole}");
            o.release_with(&repo, &format!("{pigeon}.0.0"), &[], true)
                .await;
        }
    }
    for pigeon in 1..=n + 1 {
        for hole in 1..=n {
            let repo = format!("acme/pigeon{pigeon}");
            let needs = [(format!("acme/hole{hole}"), format!("={pigeon}.0.0"))];
            let needs: Vec<(&str, &str)> = needs
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            o.release_with(&repo, &format!("1.0.{hole}"), &needs, true)
                .await;
        }
    }
    let pigeons: Vec<(String, String)> = (1..=n + 1)
        .map(|pigeon| (format!("acme/pigeon{pigeon}"), "^1".to_owned()))
        .collect();
    let pigeons: Vec<(&str, &str)> = pigeons
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    o.release_with("acme/root", "1.0.0", &pigeons, true).await;
}

// The resolver's gate is the server's memory, the same on both databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tangled_catalog_costs_only_its_own_org_resolver_time() {
    let o = org(Backend::Sqlite, 1).await;
    pigeonhole(&o, 9).await;
    let viewer = o.h.token(&o.h.admin, "acme", "viewer").await;
    let globex_admin = o.h.create_org("globex").await;
    let globex = o.h.token(&globex_admin, "globex", "viewer").await;
    let globex_publisher = o.h.token(&globex_admin, "globex", "publisher").await;
    let carol = o.h.key(&globex_admin, "globex", "publisher", "carol").await;
    let dave = warden_host::PrivateKey::from_pem(&o.h.pinned[1].to_pem()).unwrap();
    o.h.post(
        &globex_admin,
        "/v1/orgs/globex/keys",
        json!({ "public_key": dave.public_key().to_string(), "kind": "admin", "owner": "dave" }),
    )
    .await
    .expect(201);
    let base =
        o.h.publish(
            &globex_publisher,
            &carol,
            "globex/base",
            "1.0.0",
            &read(HELLO),
            &[],
        )
        .await
        .expect(201);
    o.h.post(
        &globex_admin,
        "/v1/plugins/globex/base/releases/1.0.0/approve",
        approval_body(&dave, &base, &[], Limits::default()),
    )
    .await
    .expect(200);

    // The first ask runs the solver to its time limit (2 s of the org's 4).
    let first = o.h.get(&viewer, "/v1/plugins/acme/root/resolve").await;
    first.expect_error(409, "unresolvable");
    let explanation = first.body["error"]["details"]["explanation"].to_string();
    assert!(explanation.contains("too tangled"), "{explanation}");
    // Clients that hang up during the solve do not take its cost with
    // them: each solve runs on, charged to its org (the other 2 s).
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    for requirement in ["%3E%3D1.0.0", "%3E%3D0.1.0"] {
        // (The second may find the org's time spent and be refused at once.)
        let _ = impatient
            .get(format!(
                "{}/v1/plugins/acme/root/resolve?version={requirement}",
                o.h.url
            ))
            .bearer_auth(&viewer)
            .send()
            .await;
    }
    // Out of time: another question is refused at once ...
    let refused =
        o.h.get(&viewer, "/v1/plugins/acme/root/resolve?version=%5E1")
            .await;
    refused.expect_error(429, "capacity");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("resolver time"),
        "{}",
        refused.body
    );
    // ... while the first answer is remembered (no solver runs for it: the
    // org has no time left), and so is the invocation's.
    let again = o.h.get(&viewer, "/v1/plugins/acme/root/resolve").await;
    again.expect_error(409, "unresolvable");
    assert_eq!(again.body, first.body);
    // Another organization resolves as usual.
    let resolved =
        o.h.get(&globex, "/v1/plugins/globex/base/resolve")
            .await
            .expect(200);
    assert_eq!(versions(&resolved), ["globex/base@1.0.0"]);
    // A change of the org forgets what was remembered: asked again, it
    // would need the solver, which the org has no time for yet.
    o.release_with("acme/unrelated", "1.0.0", &[], true).await;
    o.h.get(&viewer, "/v1/plugins/acme/root/resolve")
        .await
        .expect_error(429, "capacity");
}

async fn a_dependency_whose_newest_release_is_untrusted_resolves_to_an_older_trusted_one(
    backend: Backend,
) {
    let o = org(backend, 1).await;
    o.release_with("acme/base", "1.0.0", &[], true).await;
    // 1.1.0 is signed by carol, whose key is then revoked.
    let carol = o.h.key(&o.h.admin, "acme", "publisher", "carol").await;
    let newer = o
        .publish_declaring(&carol, "acme/base", "1.1.0", HELLO, &[], &[])
        .await
        .expect(201);
    o.approve(&newer, &[], Limits::default()).await;
    o.release_with("acme/app", "1.0.0", &[("acme/base", "^1")], true)
        .await;
    let viewer = o.h.token(&o.h.admin, "acme", "viewer").await;
    let resolved =
        o.h.get(&viewer, "/v1/plugins/acme/app/resolve")
            .await
            .expect(200);
    assert_eq!(versions(&resolved), ["acme/app@1.0.0", "acme/base@1.1.0"]);
    let revoked =
        o.h.call(
            &o.h.admin,
            reqwest::Method::POST,
            &format!("/v1/orgs/acme/keys/{}/revoke", carol.public_key().key_id()),
            None,
        )
        .await;
    assert_eq!(revoked.status, 204);
    let resolved =
        o.h.get(&viewer, "/v1/plugins/acme/app/resolve")
            .await
            .expect(200);
    assert_eq!(versions(&resolved), ["acme/app@1.0.0", "acme/base@1.0.0"]);
}
on_both_databases!(a_dependency_whose_newest_release_is_untrusted_resolves_to_an_older_trusted_one);
