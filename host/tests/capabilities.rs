//! Grants: what a plugin may reach, and the refusal of what it may not.

mod common;

use axum::Router;
use axum::routing::get;
use common::{compiled, engine, failure, plugin, plugin_error, settings, value};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use warden_host::{Capability, Error, Limits, MemoryKvStore, Plugin};

const CAPABILITIES: &str = warden_test_programs::CAPABILITIES;

#[test]
fn ungranted_capabilities_are_refused_before_any_code_runs() {
    let component = compiled(CAPABILITIES);
    let error = Plugin::new(engine(), &component, settings(&[], Limits::default()))
        .err()
        .unwrap();
    match &error {
        Error::MissingCapabilities(missing) => {
            assert_eq!(
                missing,
                &vec![Capability::Config, Capability::Kv, Capability::Http]
            );
        }
        other => panic!("expected missing capabilities, got {other}"),
    }
    assert_eq!(
        error.to_string(),
        "capabilities not granted: config, kv, http"
    );

    let error = Plugin::new(
        engine(),
        &component,
        settings(&["kv", "http:example.com"], Limits::default()),
    )
    .err()
    .unwrap();
    assert_eq!(error.to_string(), "capabilities not granted: config");
}

#[test]
fn requested_capabilities_come_from_the_imports() {
    let requested = compiled(CAPABILITIES).requested().clone();
    for capability in [
        Capability::Kv,
        Capability::Config,
        Capability::Http,
        Capability::Stdio,
    ] {
        assert!(
            requested.contains(&capability),
            "{capability} missing from {requested:?}"
        );
    }
    let hello = compiled(warden_test_programs::HELLO).requested().clone();
    assert!(hello.contains(&Capability::Log));
    assert!(!hello.contains(&Capability::Kv) && !hello.contains(&Capability::Http));
}

fn granted() -> Plugin {
    plugin(
        CAPABILITIES,
        &["kv", "config", "http:example.com"],
        Limits::default(),
    )
}

#[tokio::test]
async fn kv_persists_across_invocations_in_the_plugins_own_namespace() {
    let store = Arc::new(MemoryKvStore::new());
    let with_namespace = |namespace: &str| {
        let mut s = settings(&["kv", "config", "http:example.com"], Limits::default());
        s.backends.kv = Some((
            store.clone() as Arc<dyn warden_host::KvStore>,
            namespace.to_owned(),
        ));
        Plugin::new(engine(), &compiled(CAPABILITIES), s).unwrap()
    };
    let a = with_namespace("plugin-a");
    let b = with_namespace("plugin-b");
    value(&a, "kv-set", json!(["greeting", "hello"])).await;
    value(&a, "kv-set", json!(["gone", "soon"])).await;
    assert_eq!(
        value(&a, "kv-get", json!(["greeting"])).await,
        json!("hello")
    );
    assert_eq!(value(&b, "kv-get", json!(["greeting"])).await, json!(null));
    assert_eq!(
        value(&a, "kv-list", json!([""])).await,
        json!(["gone", "greeting"])
    );
    assert_eq!(value(&a, "kv-delete", json!(["gone"])).await, json!(true));
    assert_eq!(value(&a, "kv-delete", json!(["gone"])).await, json!(false));
    assert_eq!(
        value(&a, "kv-list", json!(["g"])).await,
        json!(["greeting"])
    );
}

#[tokio::test]
async fn kv_quotas_are_errors_the_plugin_sees() {
    let limits = Limits {
        kv_keys: 2,
        kv_value_bytes: 1024,
        ..Limits::default()
    };
    let plugin = plugin(CAPABILITIES, &["kv", "config", "http:example.com"], limits);
    value(&plugin, "kv-set-size", json!(["a", 1024])).await;
    let error = error_text(&plugin, "kv-set-size", json!(["b", 1025])).await;
    assert!(error.contains("TooLarge"), "{error}");
    value(&plugin, "kv-set", json!(["b", "x"])).await;
    let error = error_text(&plugin, "kv-set", json!(["c", "x"])).await;
    assert!(error.contains("QuotaExceeded"), "{error}");
    // Overwriting an existing key is fine at the quota.
    value(&plugin, "kv-set", json!(["b", "y"])).await;
    plugin_error(&plugin, "kv-get", json!(["k".repeat(513)])).await;
}

#[tokio::test]
async fn config_reads_the_admin_set_values() {
    let mut s = settings(&["kv", "config", "http:example.com"], Limits::default());
    std::sync::Arc::make_mut(&mut s.backends.config).insert("greeting".into(), "Bonjour".into());
    std::sync::Arc::make_mut(&mut s.backends.config).insert("audience".into(), "world".into());
    let plugin = Plugin::new(engine(), &compiled(CAPABILITIES), s).unwrap();
    assert_eq!(
        value(&plugin, "config-get", json!(["greeting"])).await,
        json!("Bonjour")
    );
    assert_eq!(
        value(&plugin, "config-get", json!(["missing"])).await,
        json!(null)
    );
    assert_eq!(
        value(&plugin, "config-all", json!([])).await,
        json!([["audience", "world"], ["greeting", "Bonjour"]])
    );
}

/// A real HTTP server on loopback counting its requests.
async fn server() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new()
        .route(
            "/hello",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { "hi from loopback" }
            }),
        )
        .route(
            "/authorization",
            get(|headers: axum::http::HeaderMap| async move {
                headers
                    .get("authorization")
                    .map_or("none".to_owned(), |v| v.to_str().unwrap_or("?").to_owned())
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, hits)
}

/// The plugin's own error, as the text it is.
async fn error_text(plugin: &Plugin, function: &str, args: serde_json::Value) -> String {
    plugin_error(plugin, function, args)
        .await
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn http_reaches_an_explicitly_listed_address() {
    let (address, hits) = server().await;
    let plugin = plugin(
        CAPABILITIES,
        &["kv", "config", &format!("http:{address}")],
        Limits::default(),
    );
    let url = format!("http://{address}/hello");
    assert_eq!(
        value(&plugin, "http-get", json!([url])).await,
        json!([200, "hi from loopback"])
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn http_to_hosts_off_the_allow_list_is_denied() {
    let (address, hits) = server().await;
    let plugin = granted();
    let error = error_text(
        &plugin,
        "http-get",
        json!(["https://not-listed.example.org/"]),
    )
    .await;
    assert!(error.contains("HttpRequestDenied"), "{error}");
    // Loopback is private: refused even though the plugin has an allow-list.
    let error = error_text(
        &plugin,
        "http-get",
        json!([format!("http://{address}/hello")]),
    )
    .await;
    assert!(error.contains("HttpRequestDenied"), "{error}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    let call = plugin
        .invoke("http-get", &json!(["http://127.0.0.1/"]))
        .await
        .unwrap();
    assert!(
        call.logs
            .iter()
            .any(|e| e.message.contains("not on the allow-list")),
        "the refusal is in the transcript: {:?}",
        call.logs
    );
    assert_eq!(
        value(&plugin, "config-get", json!(["x"])).await,
        json!(null)
    );
}

#[tokio::test]
async fn private_and_metadata_addresses_are_refused_even_with_a_wildcard() {
    let (address, hits) = server().await;
    let plugin = plugin(CAPABILITIES, &["kv", "config", "http:*"], Limits::default());
    for url in [
        format!("http://{address}/hello"),
        format!("http://localhost:{}/hello", address.port()),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[::1]/".to_owned(),
        "http://10.0.0.1/".to_owned(),
    ] {
        let error = error_text(&plugin, "http-get", json!([url])).await;
        assert!(error.contains("DestinationIpProhibited"), "{url}: {error}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    // The refusals ended nothing: the plugin keeps serving.
    assert_eq!(
        value(&plugin, "config-get", json!(["x"])).await,
        json!(null)
    );
}

#[tokio::test]
async fn the_http_fetch_example_works_through_the_allow_list() {
    let (address, _) = server().await;
    let plugin = plugin(
        warden_test_programs::HTTP_FETCH,
        &[&format!("http:{address}"), "secret:API_TOKEN"],
        Limits::default(),
    );
    // The secret goes only with HTTPS requests, never in clear over HTTP.
    let sent = value(
        &plugin,
        "fetch",
        json!([format!("http://{address}/authorization")]),
    )
    .await;
    assert_eq!(sent["body"], json!("none"));
    let response = value(&plugin, "fetch", json!([format!("http://{address}/hello")])).await;
    assert_eq!(response["status"], json!(200));
    assert_eq!(response["body"], json!("hi from loopback"));
    assert_eq!(response["content-type"], json!("text/plain; charset=utf-8"));
    let refused = failure(&plugin, "fetch", json!([42])).await;
    assert_eq!(refused.error.code(), "bad_argument");
}
