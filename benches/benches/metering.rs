//! What metering costs on a CPU-bound guest: the hostile test guest's `burn`
//! (a multiply-add loop, 1,000,000 iterations per call) run by raw wasmtime
//! with neither fuel nor epoch interruption, with only one of them, and with
//! both (Warden's setting), and by Warden's `Plugin::invoke` (both, plus its
//! JSON and checks), in one criterion run:
//! `cargo bench -p warden-benches --bench metering`.
//!
//! Each raw call makes a fresh store and instance from an `InstancePre` on an
//! engine with the on-demand allocator, so the modes differ only in the code
//! Cranelift emits (fuel counting in every block, an epoch check in every
//! loop header and function entry).

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;
use warden_host::{EngineConfig, Plugin, PluginSettings};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable, Val};
use wasmtime::{Config, Engine, OptLevel, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

const ITERATIONS: u64 = 1_000_000;

wasmtime::component::bindgen!({
    inline: "
        package warden:plugin@0.1.0;

        interface log {
            enum level { trace, debug, info, warn, error }
            write: func(level: level, message: string);
        }

        world logging {
            import log;
        }
    ",
});

struct Host {
    wasi: WasiCtx,
    table: ResourceTable,
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
    fn write(&mut self, _level: warden::plugin::log::Level, _message: String) {}
}

#[derive(Clone, Copy)]
struct Metering {
    fuel: bool,
    epoch: bool,
}

fn engine(metering: Metering) -> Engine {
    let mut config = Config::new();
    config
        .cranelift_opt_level(OptLevel::Speed)
        .consume_fuel(metering.fuel)
        .epoch_interruption(metering.epoch)
        .wasm_component_model(true);
    let engine = Engine::new(&config).unwrap();
    if metering.epoch {
        let ticker = engine.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_millis(10));
                ticker.increment_epoch();
            }
        });
    }
    engine
}

fn metering(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let bytes = warden_test_programs::read(warden_test_programs::HOSTILE);
    let mut group = c.benchmark_group("burn-1M");
    for (name, metering) in [
        (
            "raw wasmtime, no fuel, no epoch",
            Metering {
                fuel: false,
                epoch: false,
            },
        ),
        (
            "raw wasmtime, epoch",
            Metering {
                fuel: false,
                epoch: true,
            },
        ),
        (
            "raw wasmtime, fuel",
            Metering {
                fuel: true,
                epoch: false,
            },
        ),
        (
            "raw wasmtime, fuel + epoch",
            Metering {
                fuel: true,
                epoch: true,
            },
        ),
    ] {
        let engine = engine(metering);
        let component = Component::new(&engine, &bytes).unwrap();
        let mut linker: Linker<Host> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
        warden::plugin::log::add_to_linker::<_, HasSelf<Host>>(&mut linker, |host| host).unwrap();
        let pre = linker.instantiate_pre(&component).unwrap();
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                let mut store = Store::new(
                    &engine,
                    Host {
                        wasi: WasiCtx::builder().build(),
                        table: ResourceTable::new(),
                    },
                );
                if metering.fuel {
                    store.set_fuel(u64::MAX / 2).unwrap();
                }
                if metering.epoch {
                    store.epoch_deadline_async_yield_and_update(1);
                }
                let instance = pre.instantiate_async(&mut store).await.unwrap();
                let burn = instance.get_func(&mut store, "burn").unwrap();
                let mut result = [Val::U64(0)];
                burn.call_async(&mut store, &[Val::U64(ITERATIONS)], &mut result)
                    .await
                    .unwrap();
                black_box(result)
            })
        });
    }

    let warden = warden_host::Engine::new(EngineConfig::default()).unwrap();
    let compiled = warden.compile(&bytes).unwrap();
    let plugin = Plugin::new(&warden, &compiled, PluginSettings::default()).unwrap();
    let args = json!([ITERATIONS]);
    group.bench_function("warden Plugin::invoke (fuel + epoch)", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(plugin.invoke("burn", &args).await.unwrap()) })
    });
    group.finish();
}

criterion_group!(benches, metering);
criterion_main!(benches);
