//! The host's other costs, one criterion run: JSON <-> WIT conversion of 1 KB,
//! 64 KB and 1 MB strings through a whole invocation (`echo.echo-string` of the
//! `types` guest: the string is converted in, copied by the guest, converted
//! out); signing and verifying a release statement; loading a component cold
//! (Cranelift) and warm (from the on-disk compiled cache, by a new engine as
//! after a restart) for the 173 KiB `text-tools` example and the 12 MB
//! JavaScript component.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;
use std::time::Duration;
use warden_host::{Engine, EngineConfig, Limits, Plugin, PluginSettings, PrivateKey};

fn conversion(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let compiled = engine
        .compile(&warden_test_programs::read(warden_test_programs::TYPES))
        .unwrap();
    let limits = Limits {
        result_bytes: 8 << 20,
        host_call_bytes: 8 << 20,
        ..Limits::default()
    };
    let plugin = Plugin::new(
        &engine,
        &compiled,
        PluginSettings {
            limits,
            ..PluginSettings::default()
        },
    )
    .unwrap();
    let mut group = c.benchmark_group("json");
    for (label, bytes) in [("1KB", 1usize << 10), ("64KB", 64 << 10), ("1MB", 1 << 20)] {
        let args = json!(["x".repeat(bytes)]);
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(BenchmarkId::new("echo.echo-string", label), |b| {
            b.to_async(&runtime).iter(|| async {
                black_box(plugin.invoke("echo.echo-string", &args).await.unwrap())
            })
        });
    }
    group.finish();
}

fn trust(c: &mut Criterion) {
    let key = PrivateKey::generate();
    let trusted = [key.public_key()];
    let statement = json!({
        "name": "acme/hello",
        "version": "1.0.0",
        "component": { "digest": format!("sha256:{}", "0".repeat(64)), "size": 65536 },
        "capabilities": ["kv", "http:example.com"],
    });
    let payload_type = warden_host::RELEASE_PAYLOAD_TYPE;
    let envelope = key.sign(payload_type, &statement).unwrap();
    let mut group = c.benchmark_group("trust");
    group.bench_function("sign", |b| {
        b.iter(|| black_box(key.sign(payload_type, &statement).unwrap()))
    });
    group.bench_function("verify", |b| {
        b.iter(|| black_box(envelope.verify(payload_type, &trusted).unwrap()))
    });
    group.finish();
}

fn load(c: &mut Criterion) {
    let mut group = c.benchmark_group("load");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    for (label, path) in [
        ("text-tools 173 KiB", warden_test_programs::TEXT_TOOLS),
        (
            "javascript 12 MB",
            warden_test_programs::JAVASCRIPT_POLYGLOT,
        ),
    ] {
        let bytes = warden_test_programs::read(path);
        let cache = tempfile::tempdir().unwrap();
        let config = || EngineConfig {
            cache_dir: Some(cache.path().to_owned()),
            cache_key: Some([7; 32]),
            ..EngineConfig::default()
        };
        let engine = Engine::new(config()).unwrap();
        group.bench_function(BenchmarkId::new("cold", label), |b| {
            b.iter(|| black_box(engine.compile_uncached(&bytes).unwrap()))
        });
        engine.compile(&bytes).unwrap();
        let restarted = Engine::new(config()).unwrap();
        group.bench_function(BenchmarkId::new("warm after restart", label), |b| {
            b.iter(|| black_box(restarted.compile(&bytes).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, conversion, trust, load);
criterion_main!(benches);
