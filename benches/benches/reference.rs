//! Warden's in-process invocation side by side with raw wasmtime on the same
//! component (`examples/hello`), in one criterion run: the same engine
//! settings (Cranelift at speed, fuel, epoch interruption, the pooling
//! allocator with the same pool and keep-resident sizes, async), a fresh
//! store and instance per call from an `InstancePre`, WASI linked, the
//! `warden:plugin/log` import served by a host function that keeps the
//! message. Raw wasmtime calls through typed bindings (`bindgen!`) with no
//! JSON, no limits beyond fuel and the epoch, no transcript: the floor that
//! Warden's JSON conversion, checks and metering sit on.
//!
//! With `--features extism`, also the `extism` crate (its own wasmtime) running
//! the same logic built with `extism-pdk` (`benches/extism-guest`, built here
//! for wasm32-unknown-unknown), a fresh `Plugin` from a `CompiledPlugin` per
//! call, with a fuel limit and a timeout:
//! `cargo bench -p warden-benches --features extism --bench reference`.

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;
use warden_host::{EngineConfig, Plugin, PluginSettings};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    inline: "
        package warden:plugin@0.1.0;

        interface log {
            enum level { trace, debug, info, warn, error }
            write: func(level: level, message: string);
        }

        world hello {
            import log;
            export greet: func(name: string) -> string;
        }
    ",
    exports: { default: async },
});

struct Host {
    wasi: WasiCtx,
    table: ResourceTable,
    log: Vec<String>,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl warden::plugin::log::Host for Host {
    fn write(&mut self, _level: warden::plugin::log::Level, message: String) {
        self.log.push(message);
    }
}

/// The engine settings of `warden_host::Engine` with its default pool.
fn raw_engine() -> Engine {
    let defaults = EngineConfig::default();
    let slots = defaults.pooled_instances.unwrap_or(128);
    let mut config = Config::new();
    config
        .cranelift_opt_level(OptLevel::Speed)
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(defaults.max_wasm_stack)
        .async_stack_size(defaults.max_wasm_stack + (1 << 20))
        .wasm_component_model(true);
    let pool = warden_host::pool_config(slots, defaults.max_memory_bytes);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config).unwrap();
    let ticker = engine.clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(std::time::Duration::from_millis(10));
            ticker.increment_epoch();
        }
    });
    engine
}

/// Rounds of the interleaved comparison, and calls of each per round.
const INTERLEAVED_ROUNDS: usize = 200;
const INTERLEAVED_BATCH: usize = 200;

fn side_by_side(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let bytes = warden_test_programs::read(warden_test_programs::HELLO);
    let mut group = c.benchmark_group("hello.greet");

    let engine = raw_engine();
    let component = Component::new(&engine, &bytes).unwrap();
    let mut linker: Linker<Host> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    Hello::add_to_linker::<_, HasSelf<Host>>(&mut linker, |host| host).unwrap();
    let pre = HelloPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
    let raw_call = || async {
        let mut store = Store::new(
            &engine,
            Host {
                wasi: WasiCtx::builder().build(),
                table: ResourceTable::new(),
                log: Vec::new(),
            },
        );
        store.set_fuel(u64::MAX / 2).unwrap();
        store.epoch_deadline_async_yield_and_update(1);
        let hello = pre.instantiate_async(&mut store).await.unwrap();
        black_box(hello.call_greet(&mut store, "world").await.unwrap())
    };
    group.bench_function("raw wasmtime", |b| b.to_async(&runtime).iter(raw_call));

    let warden = warden_host::Engine::new(EngineConfig::default()).unwrap();
    let compiled = warden.compile(&bytes).unwrap();
    let plugin = Plugin::new(&warden, &compiled, PluginSettings::default()).unwrap();
    let args = json!(["world"]);
    let warden_call = || async { black_box(plugin.invoke("greet", &args).await.unwrap()) };
    group.bench_function("warden Plugin::invoke", |b| {
        b.to_async(&runtime).iter(warden_call)
    });

    // The ratio again, with the two interleaved: batches of each in turn
    // (which goes first alternates), so that a change of the machine's speed
    // during the run (a shared host) falls on both alike. The median of the
    // batches' ratios is printed, with its quartiles.
    let mut ratios: Vec<f64> = (0..INTERLEAVED_ROUNDS)
        .map(|round| {
            let time = |warden: bool| {
                let started = std::time::Instant::now();
                runtime.block_on(async {
                    for _ in 0..INTERLEAVED_BATCH {
                        if warden {
                            warden_call().await;
                        } else {
                            raw_call().await;
                        }
                    }
                });
                started.elapsed().as_secs_f64()
            };
            let (raw, warden) = if round % 2 == 0 {
                let raw = time(false);
                (raw, time(true))
            } else {
                let warden = time(true);
                (time(false), warden)
            };
            warden / raw
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let at = |q: usize| ratios[(ratios.len() - 1) * q / 4];
    println!(
        "hello.greet interleaved: Plugin::invoke / raw wasmtime, median {:.3} (quartiles {:.3}, {:.3}) over {INTERLEAVED_ROUNDS} rounds of {INTERLEAVED_BATCH} calls each",
        at(2),
        at(1),
        at(3)
    );
    #[cfg(feature = "extism")]
    {
        let compiled = extism_hello();
        group.bench_function("extism Plugin::call", |b| {
            b.iter(|| {
                let mut plugin = extism::Plugin::new_from_compiled(&compiled).unwrap();
                black_box(plugin.call::<&str, String>("greet", "world").unwrap())
            })
        });
    }
    group.finish();
}

/// The Extism build of `hello`, compiled once.
#[cfg(feature = "extism")]
fn extism_hello() -> extism::CompiledPlugin {
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("extism-guest");
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
        .current_dir(&crate_dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("running cargo for the Extism guest");
    assert!(
        status.success(),
        "building benches/extism-guest (rustup target add wasm32-unknown-unknown)"
    );
    let wasm = std::fs::read(
        crate_dir.join("target/wasm32-unknown-unknown/release/warden_bench_extism_hello.wasm"),
    )
    .unwrap();
    let manifest = extism::Manifest::new([extism::Wasm::data(wasm)])
        .with_timeout(std::time::Duration::from_secs(1));
    extism::CompiledPlugin::new(
        extism::PluginBuilder::new(manifest)
            .with_wasi(false)
            .with_fuel_limit(u64::MAX / 2),
    )
    .unwrap()
}

criterion_group!(benches, side_by_side);
criterion_main!(benches);
