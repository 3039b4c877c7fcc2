//! What a dependency link costs, one criterion run: the `vault` test guest's
//! `shout` invoked directly (one instance, one call), against the
//! `dependent` guest calling it through a link once (two instances: the
//! dependent's and the vault's, in a store of its own) and 100 times in one
//! invocation (the vault instantiated once; each crossing copies the string
//! in and out through the host).

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;
use std::sync::Arc;
use warden_host::{
    Backends, Engine, EngineConfig, Grants, KvStore, MemoryKvStore, Plugin, PluginSettings,
};

fn linking(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let compile = |path: &str| engine.compile(&warden_test_programs::read(path)).unwrap();
    let vault = Plugin::new(
        &engine,
        &compile(warden_test_programs::VAULT),
        PluginSettings {
            name: "acme/vault@1.0.0".into(),
            grants: Grants::parse(["kv"]).unwrap(),
            backends: Backends {
                kv: Some((
                    Arc::new(MemoryKvStore::new()) as Arc<dyn KvStore>,
                    "acme/vault".into(),
                )),
                ..Backends::default()
            },
            ..PluginSettings::default()
        },
    )
    .unwrap();
    let dependent = Plugin::linked(
        &engine,
        &compile(warden_test_programs::DEPENDENT),
        PluginSettings {
            name: "acme/dependent@1.0.0".into(),
            ..PluginSettings::default()
        },
        std::slice::from_ref(&vault),
    )
    .unwrap();

    let mut group = c.benchmark_group("linking");
    let direct = json!(["hi"]);
    group.bench_function("direct: vault.shout", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(vault.invoke("vault.shout", &direct).await.unwrap()) })
    });
    for times in [1u32, 100] {
        let args = json!(["hi", times]);
        group.bench_function(format!("linked: dependent.shout-times x{times}"), |b| {
            b.to_async(&runtime)
                .iter(|| async { black_box(dependent.invoke("shout-times", &args).await.unwrap()) })
        });
    }
    group.finish();
}

criterion_group!(benches, linking);
criterion_main!(benches);
