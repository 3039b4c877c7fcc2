//! Shared by the host's integration tests: one engine per test binary, each guest
//! compiled once.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use warden_host::{
    Backends, CompiledComponent, Engine, EngineConfig, Failure, Grants, Invocation, Limits,
    MemoryKvStore, MemorySecretStore, Output, Plugin, PluginSettings,
};

pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(EngineConfig::default()).expect("engine"))
}

pub fn compiled(path: &str) -> CompiledComponent {
    static COMPILED: OnceLock<Mutex<HashMap<String, CompiledComponent>>> = OnceLock::new();
    let cache = COMPILED.get_or_init(Default::default);
    if let Some(found) = cache.lock().unwrap().get(path) {
        return found.clone();
    }
    let component = engine()
        .compile(&warden_test_programs::read(path))
        .unwrap_or_else(|e| panic!("compiling {path}: {e}"));
    cache
        .lock()
        .unwrap()
        .insert(path.to_owned(), component.clone());
    component
}

pub fn settings(grants: &[&str], limits: Limits) -> PluginSettings {
    let grants = Grants::parse(grants.iter().copied()).unwrap();
    let kv = grants.kv.then(|| {
        (
            Arc::new(MemoryKvStore::new()) as Arc<dyn warden_host::KvStore>,
            "test".to_owned(),
        )
    });
    let secrets = (!grants.secrets.is_empty()).then(|| {
        let store = MemorySecretStore::new();
        for name in &grants.secrets {
            store.set("test", name, &format!("value of {name}"));
        }
        (
            Arc::new(store) as Arc<dyn warden_host::SecretStore>,
            "test".to_owned(),
        )
    });
    PluginSettings {
        name: "test".into(),
        grants,
        limits,
        backends: Backends {
            kv,
            secrets,
            ..Backends::default()
        },
    }
}

pub fn plugin(path: &str, grants: &[&str], limits: Limits) -> Plugin {
    Plugin::new(engine(), &compiled(path), settings(grants, limits))
        .unwrap_or_else(|e| panic!("loading {path}: {e}"))
}

/// Invokes and expects success, returning the output value.
pub async fn value(plugin: &Plugin, function: &str, args: serde_json::Value) -> serde_json::Value {
    match plugin.invoke(function, &args).await {
        Ok(Invocation {
            output: Output::Value(value),
            ..
        }) => value,
        Ok(other) => panic!(
            "{function}({args}) returned a plugin error: {:?}",
            other.output
        ),
        Err(failure) => panic!(
            "{function}({args}) failed: {} (logs: {:?})",
            failure.error, failure.logs
        ),
    }
}

/// Invokes and expects a failure.
pub async fn failure(plugin: &Plugin, function: &str, args: serde_json::Value) -> Box<Failure> {
    match plugin.invoke(function, &args).await {
        Ok(call) => panic!(
            "{function}({args}) should have failed but returned {:?}",
            call.output
        ),
        Err(failure) => failure,
    }
}

/// Default limits with one change.
pub fn limits(change: impl FnOnce(&mut Limits)) -> Limits {
    let mut limits = Limits::default();
    change(&mut limits);
    limits
}

/// Invokes and expects the plugin's own error (`result::err`), returning it.
pub async fn plugin_error(
    plugin: &Plugin,
    function: &str,
    args: serde_json::Value,
) -> serde_json::Value {
    match plugin.invoke(function, &args).await {
        Ok(Invocation {
            output: Output::PluginError(error),
            ..
        }) => error,
        Ok(other) => panic!("{function}({args}) succeeded: {:?}", other.output),
        Err(failure) => panic!("{function}({args}) failed: {}", failure.error),
    }
}
