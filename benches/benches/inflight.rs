//! 1,000 invocations in flight at once in one process: the hostile test
//! guest's `sleep(200)` (a WASI clock wait, so every call holds its instance
//! while the others start), all started together on Warden's pooled engine
//! with 1,100 slots. Prints errors (expected: none), wall time, and the
//! process's resident memory before and at its peak (`VmHWM`):
//! `cargo bench -p warden-benches --bench inflight`.

use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;
use warden_host::{EngineConfig, Limits, Plugin, PluginSettings};

const IN_FLIGHT: usize = 1_000;
const SLEEP_MS: u64 = 200;

/// A field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = warden_host::Engine::new(EngineConfig {
        pooled_instances: Some(IN_FLIGHT as u32 + 100),
        ..EngineConfig::default()
    })
    .unwrap();
    let compiled = engine
        .compile(&warden_test_programs::read(warden_test_programs::HOSTILE))
        .unwrap();
    let limits = Limits {
        concurrency: IN_FLIGHT as u32,
        ..Limits::default()
    };
    let plugin = Arc::new(
        Plugin::new(
            &engine,
            &compiled,
            PluginSettings {
                limits,
                ..PluginSettings::default()
            },
        )
        .unwrap(),
    );
    runtime.block_on(async {
        // Warm: one call, so the numbers below are the in-flight calls' own.
        plugin.invoke("ping", &json!([])).await.unwrap();
        let before = status_kib("VmRSS:");
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let calls: Vec<_> = (0..IN_FLIGHT)
            .map(|_| {
                let (plugin, running, most) = (plugin.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    let now = running.fetch_add(1, Relaxed) + 1;
                    most.fetch_max(now, Relaxed);
                    let outcome = plugin.invoke("sleep", &json!([SLEEP_MS])).await;
                    running.fetch_sub(1, Relaxed);
                    outcome
                        .map(|_| ())
                        .map_err(|failure| failure.error.to_string())
                })
            })
            .collect();
        let mut errors = Vec::new();
        for call in calls {
            if let Err(error) = call.await.unwrap() {
                errors.push(error);
            }
        }
        let wall = started.elapsed();
        let peak = status_kib("VmHWM:");
        println!("in flight at once:   {} of {IN_FLIGHT}", most.load(Relaxed));
        println!("errors:              {}", errors.len());
        for error in errors.iter().take(5) {
            println!("  {error}");
        }
        println!(
            "wall time:           {:.0} ms (each call sleeps {SLEEP_MS} ms)",
            wall.as_secs_f64() * 1000.0
        );
        println!("resident before:     {:.1} MiB", before as f64 / 1024.0);
        println!("resident at peak:    {:.1} MiB", peak as f64 / 1024.0);
        println!(
            "per in-flight call:  {:.1} KiB",
            (peak.saturating_sub(before)) as f64 / IN_FLIGHT as f64
        );
    });
}
