//! Loading components: malformed input is refused with a precise error, and the
//! compiled-code cache never loads what it did not produce.

mod common;

use serde_json::json;
use std::fs;
use warden_host::{CacheOutcome, Engine, EngineConfig, Error, Limits, Plugin, PluginSettings};

fn compile_error(bytes: &[u8]) -> Error {
    match common::engine().compile(bytes) {
        Ok(_) => panic!("{} bytes compiled", bytes.len()),
        Err(error) => error,
    }
}

#[test]
fn a_file_that_is_not_wasm_is_refused() {
    assert!(matches!(compile_error(b""), Error::NotWasm));
    assert!(matches!(
        compile_error(b"#!/bin/sh\necho pwned\n"),
        Error::NotWasm
    ));
    assert!(matches!(
        compile_error(b"{\"not\": \"wasm\"}"),
        Error::NotWasm
    ));
    assert_eq!(compile_error(b"").code(), "invalid_component");
}

#[test]
fn a_core_module_is_refused_with_advice() {
    let error = compile_error(b"\0asm\x01\0\0\0");
    assert!(matches!(error, Error::CoreModule));
    assert!(error.to_string().contains("wasm32-wasip2"), "{error}");
}

#[test]
fn a_truncated_or_corrupted_component_is_refused() {
    let hello = warden_test_programs::read(warden_test_programs::HELLO);
    for cut in [9, hello.len() / 3, hello.len() - 1] {
        let error = compile_error(&hello[..cut]);
        assert!(
            matches!(error, Error::InvalidComponent(_)),
            "cut at {cut}: {error}"
        );
    }
    let mut corrupted = hello.clone();
    for byte in corrupted.iter_mut().skip(8).take(64) {
        *byte = 0xff;
    }
    assert!(matches!(
        compile_error(&corrupted),
        Error::InvalidComponent(_)
    ));
}

#[test]
fn an_import_no_host_provides_is_refused_by_name() {
    let component = common::compiled(warden_test_programs::FOREIGN);
    assert_eq!(
        component.requested().unsupported,
        vec!["warden-tests:foreign/backdoor@0.1.0"]
    );
    let error = Plugin::new(common::engine(), &component, PluginSettings::default())
        .err()
        .expect("refused");
    assert!(matches!(&error, Error::UnsupportedImports(_)), "{error}");
    assert!(
        error
            .to_string()
            .contains("warden-tests:foreign/backdoor@0.1.0"),
        "{error}"
    );
}

#[test]
fn limits_beyond_the_engine_are_configuration_errors() {
    let component = common::compiled(warden_test_programs::HELLO);
    let mut settings = PluginSettings::default();
    settings.limits.memory_bytes = 64 << 30;
    let error = Plugin::new(common::engine(), &component, settings)
        .err()
        .unwrap();
    assert!(matches!(error, Error::Config(_)), "{error}");
    let mut settings = PluginSettings::default();
    settings.limits.concurrency = 0;
    assert!(matches!(
        Plugin::new(common::engine(), &component, settings),
        Err(Error::Config(_))
    ));
}

fn cached_engine(dir: &std::path::Path) -> Engine {
    Engine::new(EngineConfig {
        cache_dir: Some(dir.to_owned()),
        pooled_instances: None,
        ..EngineConfig::default()
    })
    .unwrap()
}

async fn greets(engine: &Engine, bytes: &[u8]) -> CacheOutcome {
    let component = engine.compile(bytes).unwrap();
    let plugin = Plugin::new(engine, &component, PluginSettings::default()).unwrap();
    let call = plugin.invoke("greet", &json!(["cache"])).await.unwrap();
    assert_eq!(
        call.output,
        warden_host::Output::Value(json!("Hello, cache!"))
    );
    component.cache_outcome()
}

/// What a restarted host finds in the cache (the component works either way).
async fn restart(dir: &std::path::Path, hello: &[u8]) -> CacheOutcome {
    greets(&cached_engine(dir), hello).await
}

fn entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn compiled_components_are_cached_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let hello = warden_test_programs::read(warden_test_programs::HELLO);
    assert_eq!(
        greets(&cached_engine(dir.path()), &hello).await,
        CacheOutcome::Miss
    );
    assert_eq!(entries(dir.path()).len(), 1);
    // A new engine (a restarted host) loads it from disk.
    assert_eq!(restart(dir.path(), &hello).await, CacheOutcome::Hit);
    // Another engine configuration has its own entries.
    let other = Engine::new(EngineConfig {
        cache_dir: Some(dir.path().to_owned()),
        max_wasm_stack: 256 << 10,
        pooled_instances: None,
        ..EngineConfig::default()
    })
    .unwrap();
    assert_eq!(greets(&other, &hello).await, CacheOutcome::Miss);
    assert_eq!(entries(dir.path()).len(), 2);
}

#[tokio::test]
async fn a_tampered_cache_file_is_detected_and_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let hello = warden_test_programs::read(warden_test_programs::HELLO);
    let types = warden_test_programs::read(warden_test_programs::TYPES);
    let engine = cached_engine(dir.path());
    greets(&engine, &hello).await;
    let entry = entries(dir.path()).remove(0);

    // One flipped byte.
    let mut bytes = fs::read(&entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    fs::write(&entry, &bytes).unwrap();
    assert_eq!(restart(dir.path(), &hello).await, CacheOutcome::Rejected);
    assert_eq!(restart(dir.path(), &hello).await, CacheOutcome::Hit);

    // Another component's (validly signed) entry swapped in under this digest.
    engine.compile(&types).unwrap();
    let types_entry = entries(dir.path())
        .into_iter()
        .find(|p| *p != entry)
        .unwrap();
    fs::copy(&types_entry, &entry).unwrap();
    assert_eq!(restart(dir.path(), &hello).await, CacheOutcome::Rejected);

    // A file that was never produced by Warden.
    fs::write(
        &entry,
        b"WRDNCODE\x01\0\0\0not compiled code at all, and no valid tag either",
    )
    .unwrap();
    assert_eq!(restart(dir.path(), &hello).await, CacheOutcome::Rejected);

    // A replaced key invalidates every entry it did not sign.
    fs::write(dir.path().join("cache.key"), [9u8; 32]).unwrap();
    assert_eq!(restart(dir.path(), &hello).await, CacheOutcome::Rejected);
    assert_eq!(restart(dir.path(), &hello).await, CacheOutcome::Hit);
}

#[tokio::test]
async fn the_engine_keeps_serving_after_every_kind_of_bad_input() {
    for bad in [
        &b"junk"[..],
        b"\0asm\x01\0\0\0",
        b"\0asm\x0d\0\x01\0garbage",
    ] {
        assert!(common::engine().compile(bad).is_err());
    }
    let plugin = common::plugin(warden_test_programs::HELLO, &[], Limits::default());
    assert_eq!(
        common::value(&plugin, "greet", json!("after")).await,
        json!("Hello, after!")
    );
}

/// A component exporting `f(x: T)` where `T` is a tuple of two of the same
/// tuple, `depth` times over: a few hundred bytes describing a type of
/// 2^(depth+1) parts.
fn doubled_tuple_component(depth: u32) -> Vec<u8> {
    let mut types = String::from("(type $t0 (tuple u8 u8))\n");
    for level in 1..=depth {
        types.push_str(&format!(
            "(type $t{level} (tuple $t{prev} $t{prev}))\n",
            prev = level - 1
        ));
    }
    let text = format!(
        r#"(component
            (core module $m
                (memory (export "mem") 1)
                (func (export "f") (param i32))
                (func (export "realloc") (param i32 i32 i32 i32) (result i32) i32.const 0))
            (core instance $i (instantiate $m))
            {types}
            (type $f (func (param "x" $t{depth})))
            (func $f (type $f) (canon lift (core func $i "f") (memory (core memory $i "mem")) (realloc (core func $i "realloc"))))
            (export "f" (func $f)))"#
    );
    wat::parse_str(text).unwrap()
}

#[test]
fn a_type_bomb_is_described_within_bounds_and_not_invocable() {
    let engine = Engine::new(EngineConfig {
        pooled_instances: None,
        ..EngineConfig::default()
    })
    .unwrap();
    // Within the budget: written out and invocable.
    let small = engine.compile(&doubled_tuple_component(4)).unwrap();
    let f = small.functions().next().unwrap();
    assert!(f.not_invocable.is_none(), "{f:?}");
    assert!(f.schema.is_some());
    // 2^18 parts from a few hundred bytes: refused to be written out, fast.
    let bomb = doubled_tuple_component(16);
    assert!(bomb.len() < 2000, "{} bytes", bomb.len());
    let started = std::time::Instant::now();
    let compiled = engine.compile(&bomb).unwrap();
    let f = compiled.functions().next().unwrap();
    assert!(
        f.not_invocable
            .as_deref()
            .is_some_and(|why| why.contains("more than")),
        "{f:?}"
    );
    assert!(
        f.schema.is_none() && f.signature.len() < 200,
        "{}",
        f.signature
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "describing the bomb took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_component_exporting_too_many_functions_is_refused() {
    let engine = Engine::new(EngineConfig {
        pooled_instances: None,
        ..EngineConfig::default()
    })
    .unwrap();
    let component = |count: usize| {
        let mut text = String::from(
            "(component (core module $m (func (export \"f\"))) (core instance $i (instantiate $m))\n",
        );
        for n in 0..count {
            text.push_str(&format!(
                "(func $f{n} (canon lift (core func $i \"f\"))) (export \"f{n}\" (func $f{n}))\n"
            ));
        }
        text.push(')');
        wat::parse_str(text).unwrap()
    };
    let max = warden_host::MAX_EXPORTED_FUNCTIONS;
    assert_eq!(
        engine.compile(&component(max)).unwrap().functions().count(),
        max
    );
    let refused = engine.compile(&component(max + 1)).err().unwrap();
    assert_eq!(refused.code(), "invalid_component");
    assert!(refused.to_string().contains("at most"), "{refused}");
}

/// A component exporting `f() -> option<option<...<u8>>>`, `depth` options deep.
fn nested_option_component(depth: u32) -> Vec<u8> {
    let mut types = String::from("(type $t0 (option u8))\n");
    for level in 1..depth {
        types.push_str(&format!(
            "(type $t{level} (option $t{prev}))\n",
            prev = level - 1
        ));
    }
    let text = format!(
        r#"(component
            (core module $m
                (memory (export "mem") 1)
                (func (export "f") (result i32) i32.const 0)
                (func (export "realloc") (param i32 i32 i32 i32) (result i32) i32.const 0))
            (core instance $i (instantiate $m))
            {types}
            (type $f (func (result $t{last})))
            (func $f (type $f) (canon lift (core func $i "f") (memory (core memory $i "mem")) (realloc (core func $i "realloc"))))
            (export "f" (func $f)))"#,
        last = depth - 1
    );
    wat::parse_str(text).unwrap()
}

#[test]
fn types_nested_too_deep_are_not_invocable() {
    let engine = Engine::new(EngineConfig {
        pooled_instances: None,
        ..EngineConfig::default()
    })
    .unwrap();
    // The result type is one level below the function: depth + 1 levels in all.
    let max = warden_host::MAX_TYPE_DEPTH;
    let fits = engine.compile(&nested_option_component(max)).unwrap();
    let f = fits.functions().next().unwrap();
    assert!(f.not_invocable.is_none(), "{f:?}");
    let deep = engine.compile(&nested_option_component(max + 2)).unwrap();
    let f = deep.functions().next().unwrap();
    assert!(
        f.not_invocable
            .as_deref()
            .is_some_and(|why| why.contains(&format!("nest more than {max} deep"))),
        "{f:?}"
    );
}
