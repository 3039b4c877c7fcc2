//! The console in a real browser (Debian's headless Chromium, driven over
//! WebDriver): an admin signs in with the keyboard, searches the catalog,
//! tries functions through forms generated from their JSON Schemas,
//! reviews a release against the last approved one and rejects it, sees a
//! review page update itself when an approval lands, and has the audit
//! chain checked in the browser (and sees where an edited entry breaks
//! it); an invoker is refused the admin pages by the server. Every page
//! passes axe-core without a serious or critical violation, every request
//! the browser made went to the server's own origin, and each page's
//! screenshot is written under `target/console-screenshots/`.
//!
//! One browser for the whole binary: the scenes run in order in one test.

mod browser;
mod common;

use browser::{Browser, ENTER};
use common::{Backend, org, statement};
use serde_json::json;
use warden_host::{Limits, RELEASE_PAYLOAD_TYPE};
use warden_test_programs::{HELLO, TYPES};

/// A component exporting `version` and, when `legacy`, also `legacy`.
fn tool(legacy: bool) -> Vec<u8> {
    let legacy_export = if legacy {
        r#"(func $legacy (result u32) (canon lift (core func $i "legacy")))
           (export "legacy" (func $legacy))"#
    } else {
        ""
    };
    wat::parse_str(format!(
        r#"(component
            (core module $m
                (func (export "version") (result i32) i32.const 1)
                (func (export "legacy") (result i32) i32.const 0))
            (core instance $i (instantiate $m))
            (func $version (result u32) (canon lift (core func $i "version")))
            (export "version" (func $version))
            {legacy_export})"#
    ))
    .unwrap()
}

/// Publishes [`tool`] as `acme/tool@version`, requesting `capabilities`
/// and `limits`.
async fn publish_tool(
    o: &common::Org,
    version: &str,
    legacy: bool,
    capabilities: &[&str],
    limits: Limits,
) -> serde_json::Value {
    let component = tool(legacy);
    let mut signed = statement(&o.alice, "acme/tool", version, &component, capabilities);
    signed.limits = limits;
    let envelope = o.alice.sign(RELEASE_PAYLOAD_TYPE, &signed).unwrap();
    o.h.publish_envelope(&o.publisher, "acme/tool", &component, &envelope)
        .await
        .expect(201)
}

/// Checks the page with axe-core and saves its screenshot as `name`.
async fn looked_at(browser: &Browser, name: &str) {
    let violations = browser.accessibility_violations().await;
    assert!(
        violations.is_empty(),
        "{name}: {} has accessibility violations: {violations:#?}",
        browser.url().await
    );
    browser.screenshot(name).await;
}

#[tokio::test]
async fn the_console_works_in_a_real_browser() {
    let o = org(Backend::Sqlite, 1).await;
    let h = &o.h;
    let url = |path: &str| format!("{}{path}", h.url);

    // The catalog: acme/hello and acme/types approved; acme/tool 1.0.0
    // approved and 1.1.0 pending, which drops `legacy`, asks for an HTTP
    // host and more fuel.
    for (repo, component) in [("acme/hello", HELLO), ("acme/types", TYPES)] {
        let release = o
            .publish_declaring(&o.alice, repo, "1.0.0", component, &[], &[])
            .await
            .expect(201);
        o.approve(&release, &[], Limits::default()).await;
    }
    let first = publish_tool(&o, "1.0.0", true, &[], Limits::default()).await;
    o.approve(&first, &[], Limits::default()).await;
    let more_fuel = Limits {
        fuel: Limits::default().fuel * 2,
        ..Limits::default()
    };
    publish_tool(&o, "1.1.0", false, &["http:api.example.com"], more_fuel).await;
    let hello_next = o
        .publish_declaring(&o.alice, "acme/hello", "1.1.0", HELLO, &[], &[])
        .await
        .expect(201);
    let invoker = h.token(&h.admin, "acme", "invoker").await;

    let browser = Browser::start().await;

    // Signing in, with the keyboard alone: the token, then Enter.
    browser.goto(&url("/console")).await;
    assert!(browser.url().await.ends_with("/console/sign-in"));
    looked_at(&browser, "sign-in").await;
    let token = browser.field("API token").await;
    browser
        .type_into(&token, &format!("{}{ENTER}", h.admin))
        .await;
    browser
        .wait_for("location.pathname === '/console/catalog'")
        .await;
    let catalog = browser.text("table").await;
    for plugin in ["acme/hello", "acme/types", "acme/tool"] {
        assert!(catalog.contains(plugin), "{catalog}");
    }
    looked_at(&browser, "catalog").await;

    // Search, then open a plugin and try `greet` (again with Enter).
    let search = browser.field("Search plugins").await;
    browser.type_into(&search, &format!("hello{ENTER}")).await;
    browser
        .wait_for("location.search.includes('q=hello')")
        .await;
    let found = browser.text("table").await;
    assert!(
        found.contains("acme/hello") && !found.contains("acme/types"),
        "{found}"
    );
    let link = browser.find("a[href='/console/plugins/acme/hello']").await;
    browser.click(&link).await;
    browser.wait_for_text("h1", "acme/hello").await;
    assert!(
        browser
            .text("tr[data-function='greet']")
            .await
            .contains("func(name: string) -> string")
    );
    looked_at(&browser, "plugin").await;
    let try_greet = browser.find("a[href$='/try/greet']").await;
    browser.click(&try_greet).await;
    let name = browser.field("name").await;
    browser.type_into(&name, &format!("world{ENTER}")).await;
    browser.wait_for_text("#result", "Hello, world!").await;
    assert!(browser.text("#ran").await.contains("acme/hello@1.0.0"));
    assert_eq!(browser.text("#logs").await, "info: greeting world");
    looked_at(&browser, "try-it").await;
    browser.goto(&url("/console/plugins/acme/hello")).await;
    assert_eq!(browser.text("tr[data-function='greet'] .calls").await, "1");

    // Arguments typed as JSON work without the generated fields; a wrong
    // one gets the API's error code and the path that is wrong.
    browser
        .goto(&url("/console/plugins/acme/types/try/echo.echo-u8"))
        .await;
    let args = browser
        .field("Arguments (JSON: an object by parameter name, or an array by position)")
        .await;
    browser.clear(&args).await;
    browser.type_into(&args, r#"{"value": 300}"#).await;
    let invoke = browser.find("#try-form button[type='submit']").await;
    browser.click(&invoke).await;
    browser.wait_for_text("#error-code", "bad_argument").await;
    let problem = browser.text("#outcome .problem").await;
    assert!(
        problem.contains("args.value: expected u8, got 300"),
        "{problem}"
    );
    assert_eq!(
        browser
            .execute("return document.querySelector('#args').value", json!([]))
            .await,
        r#"{"value": 300}"#,
        "the arguments sent stay in the form"
    );

    // A generated form for a record with an option and a list, an enum and
    // a variant.
    browser
        .goto(&url("/console/plugins/acme/types/try/echo.echo-everything"))
        .await;
    let letter = browser.field("letter").await;
    browser.type_into(&letter, "λ").await;
    let text = browser.field("text").await;
    browser.type_into(&text, "hi").await;
    let add_number = browser.button("Add numbers item").await;
    browser.click(&add_number).await;
    browser.click(&add_number).await;
    for (label, value) in [("numbers item 1", "7"), ("numbers item 2", "8")] {
        let item = browser.field(label).await;
        browser.clear(&item).await;
        browser.type_into(&item, value).await;
    }
    let give_maybe = browser.field("Give maybe").await;
    browser.click(&give_maybe).await;
    let maybe = browser.field("maybe").await;
    browser.type_into(&maybe, "here").await;
    let color = browser.field("color").await;
    browser.choose(&color, "blue").await;
    let shape = browser.field("Case of shape").await;
    browser.choose(&shape, "rectangle").await;
    for (label, value) in [("x", "3"), ("y", "4")] {
        let field = browser.field(label).await;
        browser.clear(&field).await;
        browser.type_into(&field, value).await;
    }
    looked_at(&browser, "try-it-generated-form").await;
    let invoke = browser.find("#try-form button[type='submit']").await;
    browser.click(&invoke).await;
    browser
        .wait_for("document.querySelector('#result') !== null")
        .await;
    let result: serde_json::Value = serde_json::from_str(&browser.text("#result").await).unwrap();
    assert_eq!(result["letter"], "λ");
    assert_eq!(result["text"], "hi");
    assert_eq!(result["numbers"], json!([7, 8]));
    assert_eq!(result["maybe"], "here");
    assert_eq!(result["color"], "blue");
    assert_eq!(result["shape"], json!({"rectangle": {"x": 3, "y": 4}}));
    assert_eq!(result["nested-maybe"], serde_json::Value::Null);

    // The review queue and the review of acme/tool@1.1.0: exactly the
    // added host, the raised fuel and the removed function.
    browser.goto(&url("/console/releases")).await;
    let queue = browser.text("table").await;
    assert!(
        queue.contains("acme/tool@1.1.0") && queue.contains("acme/hello@1.1.0"),
        "{queue}"
    );
    looked_at(&browser, "review-queue").await;
    let review = browser
        .find("a[href='/console/releases/acme/tool/1.1.0']")
        .await;
    browser.click(&review).await;
    browser.wait_for_text("#against", "1.0.0").await;
    assert_eq!(
        browser.text("#capabilities-requested").await,
        "http:api.example.com added"
    );
    let raised: Vec<String> = serde_json::from_value(
        browser
            .execute(
                "return [...document.querySelectorAll('#limits-table tbody tr')]\
                   .filter(row => row.querySelector('.note').textContent.trim() !== '')\
                   .map(row => row.dataset.limit + ': ' + row.querySelector('.note').textContent.trim())",
                json!([]),
            )
            .await,
    )
    .unwrap();
    assert_eq!(raised, ["fuel: raised"]);
    assert_eq!(browser.text("#functions-removed").await, "legacy");
    assert!(!browser.has("#functions-added").await && !browser.has("#functions-changed").await);
    assert!(
        browser.has("#breaking").await,
        "a removed function without a major bump is flagged"
    );
    assert_eq!(
        browser.text("#approve-command").await,
        "warden approve acme/tool@1.1.0 --key <your-admin-key> --grant http:api.example.com"
    );
    looked_at(&browser, "review").await;
    let reason = browser
        .field("Reason (for the publisher and the audit log)")
        .await;
    browser
        .type_into(&reason, "no outbound HTTP for this tool")
        .await;
    let reject = browser.find("form[action$='/reject'] button").await;
    browser.click(&reject).await;
    browser.wait_for_text("#status", "rejected").await;
    let api = h
        .get(&h.admin, "/v1/plugins/acme/tool/releases/1.1.0")
        .await
        .expect(200);
    assert_eq!(api["status"], "rejected");
    assert_eq!(api["reason"], "no outbound HTTP for this tool");

    // A review page updates itself when the approval lands.
    browser
        .goto(&url("/console/releases/acme/hello/1.1.0"))
        .await;
    assert_eq!(browser.text("#approval-count").await, "0 of 1 required");
    o.approve(&hello_next, &[], Limits::default()).await;
    browser.wait_for_text("#status", "approved").await;
    assert_eq!(browser.text("#approval-count").await, "1 of 1 required");

    // The audit log, its chain checked in the browser; then an entry
    // edited in the database is found.
    let (entries,): (i64,) = sqlx::query_as("SELECT seq FROM audit_heads WHERE org = 'acme'")
        .fetch_one(h.db.pool())
        .await
        .unwrap();
    browser.goto(&url("/console/audit")).await;
    browser
        .wait_for("document.querySelector('#chain-status').dataset.done === 'true'")
        .await;
    assert_eq!(
        browser.text("#chain-status").await,
        format!("Verified in this browser through entry {entries}.")
    );
    looked_at(&browser, "audit").await;
    // A change elsewhere is announced on the page, not forced on it.
    h.token(&h.admin, "acme", "viewer").await;
    browser
        .wait_for_text("#live", "1 new entry: show them")
        .await;
    let show = browser.find("#live a").await;
    browser.click(&show).await;
    browser
        .wait_for("document.querySelector('#chain-status').dataset.done === 'true'")
        .await;
    assert_eq!(
        browser.text("#chain-status").await,
        format!("Verified in this browser through entry {}.", entries + 1)
    );
    sqlx::query("UPDATE audit SET actor = 'someone else' WHERE org = 'acme' AND seq = 3")
        .execute(h.db.pool())
        .await
        .unwrap();
    browser.goto(&url("/console/audit")).await;
    browser
        .wait_for("document.querySelector('#chain-status').dataset.done === 'true'")
        .await;
    assert_eq!(
        browser.text("#chain-status").await,
        "The chain breaks at entry 3: it does not match its hash (it was edited)."
    );

    // The admin's tokens and keys.
    browser.goto(&url("/console/tokens")).await;
    assert!(browser.text("table").await.contains("invoker"));
    looked_at(&browser, "tokens").await;
    browser.goto(&url("/console/keys")).await;
    assert!(browser.text("#keys").await.contains("alice"));
    looked_at(&browser, "keys").await;

    // Signed out, then in as an invoker: the admin pages are refused by
    // the server, another organization's plugin is not found.
    let sign_out = browser
        .find("form[action='/console/sign-out'] button")
        .await;
    browser.click(&sign_out).await;
    browser
        .wait_for("location.pathname === '/console/sign-in'")
        .await;
    let token = browser.field("API token").await;
    browser
        .type_into(&token, &format!("{invoker}{ENTER}"))
        .await;
    browser
        .wait_for("location.pathname === '/console/catalog'")
        .await;
    for page in [
        "/console/releases",
        "/console/releases/acme/tool/1.1.0",
        "/console/tokens",
        "/console/keys",
        "/console/audit",
    ] {
        browser.goto(&url(page)).await;
        assert_eq!(browser.text("h1").await, "Not allowed", "{page}");
    }
    browser.goto(&url("/console/plugins/globex/hello")).await;
    assert_eq!(browser.text("h1").await, "Not found");

    // Nothing left the server's origin.
    let requested = browser.requested().await;
    assert!(requested.len() > 20, "{requested:?}");
    let foreign: Vec<&String> = requested
        .iter()
        .filter(|address| !address.starts_with(&format!("{}/", h.url)))
        .collect();
    assert!(foreign.is_empty(), "requests off the origin: {foreign:?}");
    browser.quit().await;
}
