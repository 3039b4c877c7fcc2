//! The console's first pages over real HTTP (a browser's requests, made
//! with a plain client here; the browser tests come with the rest of the
//! console): sign-in with an API token gives a session cookie with its
//! protections, the catalog shows the session's organization only, sign-out
//! needs the session's anti-forgery token and ends the session for good,
//! and every answer carries the strict security headers.

mod common;

use common::{Backend, console_session, org};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use warden_host::Limits;
use warden_test_programs::{DEPENDENT, HELLO, VAULT};

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `csrf` field of a page's sign-out form.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a sign-out form")
        + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

async fn the_console_signs_in_with_a_token_and_shows_only_its_org(backend: Backend) {
    let o = org(backend, 1).await;
    let h = &o.h;
    let release = o
        .publish_declaring(&o.alice, "acme/hello", "1.0.0", HELLO, &[], &[])
        .await
        .expect(201);
    o.approve(&release, &[], Limits::default()).await;
    let globex = h.create_org("globex").await;
    let client = no_redirects();
    let url = |path: &str| format!("{}{path}", h.url);

    // Not signed in: to the sign-in page, which carries the headers.
    let answer = client.get(url("/console/catalog")).send().await.unwrap();
    assert_eq!(answer.status(), 303);
    assert_eq!(answer.headers()[LOCATION], "/console/sign-in");
    let form = client.get(url("/console/sign-in")).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let csp = form.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(form.headers()["x-frame-options"], "DENY");
    assert_eq!(form.headers()["cache-control"], "no-store");
    let html = form.text().await.unwrap();
    assert!(
        html.contains("<label for=\"token\">") && html.contains("name=\"token\""),
        "{html}"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing off the origin: {html}"
    );

    // A wrong token: refused, no cookie.
    let refused = client
        .post(url("/console/sign-in"))
        .form(&[("token", "not-a-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().get(SET_COOKIE).is_none());

    // The admin's token: a session cookie, HttpOnly, SameSite=Strict, for
    // the console's path, with an expiry; Secure behind https.
    let signed_in = client
        .post(url("/console/sign-in"))
        .header("x-forwarded-proto", "https")
        .form(&[("token", h.admin.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let set = signed_in.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for part in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=",
        "Secure",
    ] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains(&h.admin), "the cookie is not the token");
    let cookie = set.split(';').next().unwrap().to_owned();
    let plain = client
        .post(url("/console/sign-in"))
        .form(&[("token", h.admin.as_str())])
        .send()
        .await
        .unwrap();
    assert!(
        !plain.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Secure")
    );

    // The catalog of the session's org, searched.
    let catalog = client
        .get(url("/console/catalog?q=hel"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(catalog.status(), 200);
    let html = catalog.text().await.unwrap();
    assert!(
        html.contains("acme/hello") && html.contains("1.0.0"),
        "{html}"
    );
    let none = client
        .get(url("/console/catalog?q=nothing-like-this"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(none.contains("No plugins.") && !none.contains("acme/hello"));
    // A search text is shown escaped, never as markup.
    let escaped = client
        .get(url("/console/catalog?q=%3Cscript%3Ex%3C%2Fscript%3E"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!escaped.contains("<script>x</script>") && escaped.contains("&lt;script&gt;"));

    // The plugin's page: versions, functions; configuration keys for
    // admins, never the values.
    let config = h
        .call(
            &h.admin,
            reqwest::Method::PUT,
            "/v1/plugins/acme/hello/config",
            Some(serde_json::json!({ "values": { "greeting": "c0nfig-value" } })),
        )
        .await;
    assert!(config.status.is_success(), "{:?}", config.body);
    let plugin = client
        .get(url("/console/plugins/acme/hello"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(plugin.status(), 200);
    let html = plugin.text().await.unwrap();
    for expected in [
        "1.0.0",
        "approved",
        "greet",
        "Configuration keys",
        "greeting",
    ] {
        assert!(html.contains(expected), "{expected}: {html}");
    }
    assert!(!html.contains("c0nfig-value"), "{html}");
    let missing = client
        .get(url("/console/plugins/acme/nobody"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let viewer = h.token(&h.admin, "acme", "viewer").await;
    let viewer_cookie = client
        .post(url("/console/sign-in"))
        .form(&[("token", viewer.as_str())])
        .send()
        .await
        .unwrap()
        .headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = client
        .get(url("/console/plugins/acme/hello"))
        .header(COOKIE, &viewer_cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("greet") && !html.contains("Configuration keys"),
        "{html}"
    );

    // Tokens: admins only, decided by the server (a viewer's session gets
    // 403, whatever links it is shown).
    let refused = client
        .get(url("/console/tokens"))
        .header(COOKIE, &viewer_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let tokens_page = client
        .get(url("/console/tokens"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(tokens_page.status(), 200);
    let admin_csrf = csrf_of(&tokens_page.text().await.unwrap());
    // A form posted without the session's token, or with another's: refused,
    // and nothing created.
    for wrong in ["", csrf_of(&html).as_str()] {
        let refused = client
            .post(url("/console/tokens"))
            .header(COOKIE, &cookie)
            .form(&[("csrf", wrong), ("name", "forged"), ("role", "admin")])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "csrf {wrong:?}");
    }
    let created = client
        .post(url("/console/tokens"))
        .header(COOKIE, &cookie)
        .form(&[
            ("csrf", admin_csrf.as_str()),
            ("name", "portal-2"),
            ("role", "invoker"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let page = created.text().await.unwrap();
    assert!(!page.contains("forged"), "{page}");
    let at = page.find("id=\"secret\">").expect("the secret, once") + 12;
    let secret = page[at..].split('<').next().unwrap().to_owned();
    let whoami = h.get(&secret, "/v1/whoami").await.expect(200);
    assert_eq!(whoami["role"], "invoker");
    let listed = client
        .get(url("/console/tokens"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listed.contains("portal-2") && !listed.contains(&secret),
        "{listed}"
    );
    let tokens = h.get(&h.admin, "/v1/orgs/acme/tokens").await.expect(200);
    let id = tokens
        .as_array()
        .or_else(|| tokens["tokens"].as_array())
        .unwrap()
        .iter()
        .find(|t| t["name"] == "portal-2")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoke = client
        .post(url(&format!("/console/tokens/{id}/revoke")))
        .header(COOKIE, &cookie)
        .form(&[("csrf", admin_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 303);
    h.get(&secret, "/v1/whoami")
        .await
        .expect_error(401, "token_revoked");

    // Another org's session sees its own catalog, not acme's.
    let theirs = client
        .post(url("/console/sign-in"))
        .form(&[("token", globex.as_str())])
        .send()
        .await
        .unwrap();
    let their_cookie = theirs.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = client
        .get(url("/console/catalog"))
        .header(COOKIE, &their_cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("acme/hello"), "{html}");
    // ... and acme's plugin is not found for it.
    let hidden = client
        .get(url("/console/plugins/acme/hello"))
        .header(COOKIE, &their_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(hidden.status(), 404);

    // Sign-out without the session's anti-forgery token: refused.
    let page = client
        .get(url("/console/catalog"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page);
    for wrong in ["", "0000", csrf_of(&html).as_str()] {
        let refused = client
            .post(url("/console/sign-out"))
            .header(COOKIE, &cookie)
            .form(&[("csrf", wrong)])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "csrf {wrong:?}");
    }
    // With it: signed out, and the old cookie no longer works.
    let out = client
        .post(url("/console/sign-out"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert!(
        out.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let after = client
        .get(url("/console/catalog"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 303);
    assert_eq!(after.headers()[LOCATION], "/console/sign-in");

    // A session ends with its token.
    let viewer = h.token(&globex, "globex", "viewer").await;
    let signed_in = client
        .post(url("/console/sign-in"))
        .form(&[("token", viewer.as_str())])
        .send()
        .await
        .unwrap();
    let cookie = signed_in.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let signed = |cookie: &str| {
        client
            .get(url("/console/catalog"))
            .header(COOKIE, cookie)
            .send()
    };
    assert_eq!(signed(&cookie).await.unwrap().status(), 200);
    let tokens = h.get(&globex, "/v1/orgs/globex/tokens").await.expect(200);
    let id = tokens
        .as_array()
        .or_else(|| tokens["tokens"].as_array())
        .unwrap()
        .iter()
        .find(|t| t["role"] == "viewer")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = h
        .call(
            &globex,
            reqwest::Method::DELETE,
            &format!("/v1/orgs/globex/tokens/{id}"),
            None,
        )
        .await;
    assert!(revoked.status.is_success(), "{:?}", revoked.body);
    let after = signed(&cookie).await.unwrap();
    assert_eq!(after.status(), 303, "a revoked token's session is over");
}
on_both_databases!(the_console_signs_in_with_a_token_and_shows_only_its_org);

async fn the_consoles_review_audit_keys_and_try_pages_follow_the_domain_rules(backend: Backend) {
    let o = org(backend, 1).await;
    let h = &o.h;
    let vault = o
        .publish_declaring(&o.alice, "acme/vault", "1.0.0", VAULT, &["kv"], &[])
        .await
        .expect(201);
    o.approve(&vault, &["kv"], Limits::default()).await;
    let dependent = o
        .publish_declaring(
            &o.alice,
            "acme/dependent",
            "1.0.0",
            DEPENDENT,
            &[],
            &[("acme/vault", "^1")],
        )
        .await
        .expect(201);
    o.approve(&dependent, &[], Limits::default()).await;
    o.publish_declaring(&o.alice, "acme/vault", "1.1.0", VAULT, &["kv"], &[])
        .await
        .expect(201);
    let globex = h.create_org("globex").await;
    let client = no_redirects();
    let url = |path: &str| format!("{}{path}", h.url);
    let get = |cookie: &str, path: &str| client.get(url(path)).header(COOKIE, cookie).send();
    let admin = console_session(&client, &h.url, &h.admin).await;
    let viewer = console_session(&client, &h.url, &h.token(&h.admin, "acme", "viewer").await).await;
    let invoker =
        console_session(&client, &h.url, &h.token(&h.admin, "acme", "invoker").await).await;
    let outsider = console_session(&client, &h.url, &globex).await;

    // Who may see what: decided by the server, page by page.
    for (cookie, path, status) in [
        (&admin, "/console/releases", 200),
        (&admin, "/console/releases/acme/vault/1.1.0", 200),
        (&admin, "/console/audit", 200),
        (&admin, "/console/audit/chain", 200),
        (&admin, "/console/keys", 200),
        (&admin, "/console/releases/acme/vault/9.9.9", 404),
        (&viewer, "/console/releases", 403),
        (&viewer, "/console/releases/acme/vault/1.1.0", 403),
        (&viewer, "/console/audit", 403),
        (&viewer, "/console/audit/chain", 403),
        (&viewer, "/console/keys", 403),
        (&viewer, "/console/plugins/acme/vault/try/vault.get", 403),
        (&invoker, "/console/releases/acme/vault/1.1.0", 403),
        (&invoker, "/console/plugins/acme/dependent/try/fetch", 404),
        (&outsider, "/console/releases/acme/vault/1.1.0", 404),
        (&outsider, "/console/plugins/acme/vault/try/vault.get", 404),
    ] {
        let answer = get(cookie, path).await.unwrap();
        assert_eq!(answer.status(), status, "{path}");
    }

    // The plugin page: dependencies as they resolve now; calls and errors
    // per function after the invoker tried one.
    let page = get(&invoker, "/console/plugins/acme/dependent")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(">acme/vault</a> 1.0.0"), "{page}");
    let tried_path = "/console/plugins/acme/vault/try/vault.get";
    let form = get(&invoker, tried_path)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let invoker_csrf = csrf_of(&form);
    for args in [r#"{"key": "x"}"#, r#"{"key": 7}"#] {
        client
            .post(url(tried_path))
            .header(COOKIE, &invoker)
            .form(&[("csrf", invoker_csrf.as_str()), ("args", args)])
            .send()
            .await
            .unwrap();
    }
    let page = get(&invoker, "/console/plugins/acme/vault")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let row = page
        .split("data-function=\"vault.get\"")
        .nth(1)
        .expect("a row for vault.get");
    assert!(
        row.contains("class=\"calls\">2<") && row.contains("class=\"errors\">1<"),
        "{row}"
    );
    // Not an invoker's to try without the session's token.
    let forged = client
        .post(url(tried_path))
        .header(COOKIE, &invoker)
        .form(&[("args", r#"{"key": "x"}"#)])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    // Reject and yank need the session's anti-forgery token and an admin.
    let admin_csrf = csrf_of(
        &get(&admin, "/console/catalog")
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let viewer_csrf = csrf_of(
        &get(&viewer, "/console/catalog")
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let reject = url("/console/releases/acme/vault/1.1.0/reject");
    for (cookie, csrf, status) in [
        (&admin, "", 403),
        (&admin, viewer_csrf.as_str(), 403),
        (&viewer, viewer_csrf.as_str(), 403),
    ] {
        let refused = client
            .post(&reject)
            .header(COOKIE, cookie)
            .form(&[("csrf", csrf), ("reason", "no")])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), status);
    }
    let pending = h
        .get(&h.admin, "/v1/plugins/acme/vault/releases/1.1.0")
        .await
        .expect(200);
    assert_eq!(pending["status"], "pending", "nothing was decided");
    // An empty reason is the domain's to refuse, shown on the page.
    let empty = client
        .post(&reject)
        .header(COOKIE, &admin)
        .form(&[("csrf", admin_csrf.as_str()), ("reason", "  ")])
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 422);
    let rejected = client
        .post(&reject)
        .header(COOKIE, &admin)
        .form(&[("csrf", admin_csrf.as_str()), ("reason", "not needed")])
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), 303);
    let decided = h
        .get(&h.admin, "/v1/plugins/acme/vault/releases/1.1.0")
        .await
        .expect(200);
    assert_eq!(decided["status"], "rejected");
    let yank = client
        .post(url("/console/releases/acme/vault/1.0.0/yank"))
        .header(COOKIE, &admin)
        .form(&[("csrf", admin_csrf.as_str()), ("reason", "superseded")])
        .send()
        .await
        .unwrap();
    assert_eq!(yank.status(), 303);
    let page = get(&invoker, "/console/plugins/acme/dependent")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("They do not resolve now"), "{page}");

    // Keys: revoked only with the session's token, by an admin.
    let alice = o.alice.public_key().key_id();
    let revoke = url(&format!("/console/keys/{alice}/revoke"));
    for (cookie, csrf) in [(&admin, ""), (&viewer, viewer_csrf.as_str())] {
        let refused = client
            .post(&revoke)
            .header(COOKIE, cookie)
            .form(&[("csrf", csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
    }
    let keys = h.get(&h.admin, "/v1/orgs/acme/keys").await.expect(200);
    let active = |keys: &serde_json::Value| {
        keys.as_array()
            .unwrap()
            .iter()
            .any(|k| k["key_id"] == alice.as_str() && k["revoked_at"].is_null())
    };
    assert!(active(&keys));
    let revoked = client
        .post(&revoke)
        .header(COOKIE, &admin)
        .form(&[("csrf", admin_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 303);
    assert!(!active(
        &h.get(&h.admin, "/v1/orgs/acme/keys").await.expect(200)
    ));

    // The chain the browser checks is the organization's, in order.
    let chain: serde_json::Value = get(&admin, "/console/audit/chain?after=2")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(chain["entries"][0]["seq"], 3);
    assert!(
        chain["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["org"] == "acme")
    );
}
on_both_databases!(the_consoles_review_audit_keys_and_try_pages_follow_the_domain_rules);

async fn the_consoles_forms_refuse_other_sites_and_read_no_body_without_a_session(
    backend: Backend,
) {
    let o = org(backend, 1).await;
    let h = &o.h;
    let client = no_redirects();
    let url = |path: &str| format!("{}{path}", h.url);
    // Another site's page posting the attacker's token to sign-in (login
    // CSRF): refused, no session cookie; the same from this site works.
    let host = h.url.trim_start_matches("http://").to_owned();
    for (header, value) in [
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        ("origin", "http://attacker.example"),
    ] {
        let refused = client
            .post(url("/console/sign-in"))
            .header(header, value)
            .form(&[("token", h.admin.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "{header}: {value}");
        assert!(refused.headers().get(SET_COOKIE).is_none());
    }
    for (header, value) in [
        ("sec-fetch-site", "same-origin".to_owned()),
        ("origin", format!("http://{host}")),
    ] {
        let accepted = client
            .post(url("/console/sign-in"))
            .header(header, value.as_str())
            .form(&[("token", h.admin.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(accepted.status(), 303, "{header}: {value}");
    }
    // A form post without a session is answered before its body arrives:
    // a client that never sends the body it announced holds nothing.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for cookie in ["", "Cookie: warden_console=not-a-session\r\n"] {
        let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
        stream
            .write_all(
                format!(
                    "POST /console/tokens HTTP/1.1\r\nHost: {host}\r\n{cookie}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\nname=a"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let mut answer = vec![0u8; 512];
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut answer))
                .await
                .expect("answered without waiting for the body")
                .unwrap();
        let head = String::from_utf8_lossy(&answer[..read]).to_string();
        assert!(head.starts_with("HTTP/1.1 303"), "{head}");
        assert!(head.contains("location: /console/sign-in"), "{head}");
    }
}
on_both_databases!(the_consoles_forms_refuse_other_sites_and_read_no_body_without_a_session);
