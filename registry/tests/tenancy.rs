//! Tenancy over real HTTP, on SQLite and PostgreSQL: the role x endpoint x
//! org matrix, token expiry and revocation, creating orgs, and the last admin
//! token of an org.

mod common;

use common::{Backend, Org, org, start, start_tweaked};
use reqwest::Method;
use serde_json::{Value, json};
use warden_test_programs::{HELLO, read};

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
    let globex_admin = h.create_org("globex").await;
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
        // Published, not approved: nothing to resolve to.
        (
            Method::GET,
            "/v1/plugins/{org}/hello/resolve",
            None,
            Needs::Read,
            409,
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
