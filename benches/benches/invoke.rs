//! What one invocation costs: instantiate a fresh instance, convert JSON, call,
//! convert back. Pooling allocator against on-demand allocation; a small and a
//! larger payload; loading a compiled component from the cache against compiling.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;
use warden_host::{Engine, EngineConfig, Plugin, PluginSettings};

fn engine(pooled: bool) -> Engine {
    Engine::new(EngineConfig {
        pooled_instances: pooled.then_some(128),
        ..EngineConfig::default()
    })
    .unwrap()
}

fn plugin(engine: &Engine, path: &str) -> Plugin {
    let component = engine.compile(&warden_test_programs::read(path)).unwrap();
    Plugin::new(engine, &component, PluginSettings::default()).unwrap()
}

fn invoke(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("invoke");
    for (label, pooled) in [("pooling", true), ("on-demand", false)] {
        let engine = engine(pooled);
        let hello = plugin(&engine, warden_test_programs::HELLO);
        let args = json!(["world"]);
        group.bench_function(BenchmarkId::new("hello.greet", label), |b| {
            b.to_async(&runtime)
                .iter(|| async { black_box(hello.invoke("greet", &args).await.unwrap()) })
        });
    }
    let engine = engine(true);
    let text = plugin(&engine, warden_test_programs::TEXT_TOOLS);
    for words in [10usize, 10_000] {
        let input = "lorem ipsum dolor sit amet ".repeat(words / 5);
        let args = json!([input]);
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(
            BenchmarkId::new("text.count", format!("{words} words")),
            |b| {
                b.to_async(&runtime)
                    .iter(|| async { black_box(text.invoke("text.count", &args).await.unwrap()) })
            },
        );
    }
    group.finish();
}

fn compile(c: &mut Criterion) {
    let bytes = warden_test_programs::read(warden_test_programs::TEXT_TOOLS);
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    let fresh = engine(false);
    group.bench_function("text-tools/cranelift", |b| {
        b.iter(|| black_box(fresh.compile(&bytes).unwrap()))
    });
    let dir = tempfile::tempdir().unwrap();
    let cached = Engine::new(EngineConfig {
        cache_dir: Some(dir.path().to_owned()),
        pooled_instances: None,
        ..EngineConfig::default()
    })
    .unwrap();
    cached.compile(&bytes).unwrap();
    group.bench_function("text-tools/cache-hit", |b| {
        b.iter(|| black_box(cached.compile(&bytes).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, invoke, compile);
criterion_main!(benches);
