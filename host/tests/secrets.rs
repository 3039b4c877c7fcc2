//! The `secrets` capability in the host: a granted name reads its value, an
//! ungranted one reads as none (and only its name is logged), a component
//! that imports secrets without any grant is refused before it runs, and
//! plugins read only their own namespace.

mod common;

use common::{compiled, engine, plugin, settings, value};
use serde_json::json;
use std::sync::Arc;
use warden_host::{
    Backends, Capability, Error, Limits, MemorySecretStore, Plugin, PluginSettings, SecretStore,
};
use warden_test_programs::KEEPER;

#[tokio::test]
async fn a_granted_secret_is_read() {
    let keeper = plugin(KEEPER, &["secret:GREETING"], Limits::default());
    assert_eq!(
        value(&keeper, "greet", json!(["ada"])).await,
        json!("value of GREETING, ada")
    );
    assert_eq!(
        value(&keeper, "reveal", json!(["GREETING"])).await,
        json!("value of GREETING")
    );
}

#[test]
fn importing_secrets_without_a_grant_is_refused_by_name_before_any_code_runs() {
    let error = Plugin::new(
        engine(),
        &compiled(KEEPER),
        settings(&[], Limits::default()),
    )
    .err()
    .unwrap();
    match &error {
        Error::MissingCapabilities(missing) => assert_eq!(missing, &vec![Capability::Secrets]),
        other => panic!("expected missing capabilities, got {other}"),
    }
    assert_eq!(error.to_string(), "capabilities not granted: secrets");
}

#[test]
fn granted_secrets_need_a_store() {
    let error = Plugin::new(
        engine(),
        &compiled(KEEPER),
        PluginSettings {
            grants: warden_host::Grants::parse(["secret:A"]).unwrap(),
            ..PluginSettings::default()
        },
    )
    .err()
    .unwrap();
    assert!(error.to_string().contains("no secret store"), "{error}");
}

/// The keeper granted `grants`, reading from `store` as `namespace`.
fn keeper_in(store: &Arc<MemorySecretStore>, namespace: &str, grants: &[&str]) -> Plugin {
    Plugin::new(
        engine(),
        &compiled(KEEPER),
        PluginSettings {
            name: namespace.into(),
            grants: warden_host::Grants::parse(grants.iter().copied()).unwrap(),
            limits: Limits::default(),
            backends: Backends {
                secrets: Some((store.clone() as Arc<dyn SecretStore>, namespace.to_owned())),
                ..Backends::default()
            },
        },
    )
    .unwrap()
}

#[tokio::test]
async fn an_ungranted_name_reads_as_none_and_its_value_is_nowhere() {
    let store = Arc::new(MemorySecretStore::new());
    store.set("acme/keeper", "A", "value-of-a-31337");
    store.set("acme/keeper", "B", "value-of-b-31337");
    let keeper = keeper_in(&store, "acme/keeper", &["secret:A"]);
    assert_eq!(
        value(&keeper, "reveal", json!(["A"])).await,
        json!("value-of-a-31337")
    );
    // B is set, but not granted.
    let call = keeper.invoke("has", &json!(["B"])).await.unwrap();
    assert_eq!(call.output, warden_host::Output::Value(json!(false)));
    let logs = serde_json::to_string(&call.logs).unwrap();
    assert!(logs.contains("secret \\\"B\\\" is not granted"), "{logs}");
    assert!(!logs.contains("31337"), "{logs}");
    assert_eq!(value(&keeper, "reveal", json!(["B"])).await, json!(null));
    // A granted name that nobody set reads as none too.
    let unset = keeper_in(&store, "acme/keeper", &["secret:C"]);
    assert_eq!(value(&unset, "reveal", json!(["C"])).await, json!(null));
}

#[tokio::test]
async fn a_plugin_reads_only_its_own_namespace() {
    let store = Arc::new(MemorySecretStore::new());
    store.set("acme/one", "TOKEN", "one's");
    store.set("acme/two", "TOKEN", "two's");
    let one = keeper_in(&store, "acme/one", &["secret:TOKEN"]);
    let two = keeper_in(&store, "acme/two", &["secret:TOKEN"]);
    let three = keeper_in(&store, "acme/three", &["secret:TOKEN"]);
    assert_eq!(
        value(&one, "reveal", json!(["TOKEN"])).await,
        json!("one's")
    );
    assert_eq!(
        value(&two, "reveal", json!(["TOKEN"])).await,
        json!("two's")
    );
    assert_eq!(value(&three, "reveal", json!(["TOKEN"])).await, json!(null));
}

#[tokio::test]
async fn a_changed_value_is_read_by_the_next_invocation() {
    let store = Arc::new(MemorySecretStore::new());
    store.set("acme/keeper", "GREETING", "hi");
    let keeper = keeper_in(&store, "acme/keeper", &["secret:GREETING"]);
    assert_eq!(
        value(&keeper, "greet", json!(["bo"])).await,
        json!("hi, bo")
    );
    store.set("acme/keeper", "GREETING", "hey");
    assert_eq!(
        value(&keeper, "greet", json!(["bo"])).await,
        json!("hey, bo")
    );
}
