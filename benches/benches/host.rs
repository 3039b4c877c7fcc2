//! The host's other costs, one criterion run: JSON <-> WIT conversion of 1 KB,
//! 64 KB and 1 MB strings through a whole invocation (`echo.echo-string` of the
//! `types` guest: the string is converted in, copied by the guest, converted
//! out); signing and verifying a release statement; loading a component cold
//! (Cranelift) and warm (from the on-disk compiled cache, by a new engine as
//! after a restart) for the 173 KiB `text-tools` example and the 12 MB
//! JavaScript component; and a release's whole load as the server does it
//! after reading the artifact (publisher signature, approval, digest of the
//! bytes, then compile) for generated components of 1 MB and 5 MB of code.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;
use std::time::Duration;
use warden_host::{
    APPROVAL_PAYLOAD_TYPE, ApprovalStatement, ComponentRef, Digest, Engine, EngineConfig, Limits,
    Plugin, PluginSettings, PrivateKey, RELEASE_PAYLOAD_TYPE, ReleaseStatement, TrustPolicy,
    verify_release,
};

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

/// A component whose core module is `bytes` (about) of arithmetic functions.
fn generated_component(bytes: usize) -> Vec<u8> {
    let component = |functions: usize| {
        let body = "local.get 0 i32.const 7 i32.mul i32.const 3 i32.xor local.set 0 ".repeat(300);
        let mut module = String::from("(core module $m\n");
        for n in 0..functions {
            module.push_str(&format!(
                "(func $f{n} (param i32) (result i32) {body} local.get 0)\n"
            ));
        }
        module.push_str("(func (export \"run\") (result i32) i32.const 0 call $f0))\n");
        wat::parse_str(format!(
            r#"(component {module}
                (core instance $i (instantiate $m))
                (func $run (result u32) (canon lift (core func $i "run")))
                (export "run" (func $run)))"#
        ))
        .unwrap()
    };
    let per_function = component(2).len() - component(1).len();
    component(bytes / per_function)
}

/// Verifies a release as the runtime does before it compiles: the publisher's
/// signature, one pinned admin's approval, the digest of the bytes.
fn signed_load(c: &mut Criterion) {
    let publisher = PrivateKey::generate();
    let admin = PrivateKey::generate();
    let policy = TrustPolicy {
        admin_keys: vec![admin.public_key()],
        approvals_required: 1,
    };
    let mut group = c.benchmark_group("verified load");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    for (label, size) in [
        ("generated 1 MB", 1usize << 20),
        ("generated 5 MB", 5 << 20),
    ] {
        let bytes = generated_component(size);
        let statement = ReleaseStatement {
            name: "acme/generated".into(),
            version: "1.0.0".into(),
            description: String::new(),
            component: ComponentRef {
                digest: Digest::of(&bytes),
                size: bytes.len() as u64,
            },
            capabilities: Vec::new(),
            limits: Limits::default(),
            dependencies: Default::default(),
            publisher_key: publisher.public_key().key_id(),
        };
        let release = publisher.sign(RELEASE_PAYLOAD_TYPE, &statement).unwrap();
        let payload_digest = release
            .verify(RELEASE_PAYLOAD_TYPE, &[publisher.public_key()])
            .unwrap()
            .payload_digest;
        let approval = ApprovalStatement {
            release: statement.reference(),
            release_statement: payload_digest,
            capabilities: Vec::new(),
            limits: Limits::default(),
        };
        let approvals = [admin.sign(APPROVAL_PAYLOAD_TYPE, &approval).unwrap()];
        let verify = || {
            verify_release(
                &release,
                &approvals,
                &bytes,
                &publisher.public_key(),
                &policy,
            )
            .unwrap()
        };
        let label = format!("{label} ({:.1} MiB)", bytes.len() as f64 / (1 << 20) as f64);
        let cache = tempfile::tempdir().unwrap();
        let config = || EngineConfig {
            cache_dir: Some(cache.path().to_owned()),
            cache_key: Some([7; 32]),
            ..EngineConfig::default()
        };
        let engine = Engine::new(config()).unwrap();
        group.bench_function(BenchmarkId::new("verify only", &label), |b| {
            b.iter(|| black_box(verify()))
        });
        group.bench_function(BenchmarkId::new("cold: verify + compile", &label), |b| {
            b.iter(|| {
                verify();
                black_box(engine.compile_uncached(&bytes).unwrap())
            })
        });
        engine.compile(&bytes).unwrap();
        let restarted = Engine::new(config()).unwrap();
        group.bench_function(
            BenchmarkId::new("warm after restart: verify + cached", &label),
            |b| {
                b.iter(|| {
                    verify();
                    black_box(restarted.compile(&bytes).unwrap())
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, conversion, trust, load, signed_load);
criterion_main!(benches);
