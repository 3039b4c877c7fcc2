//! Every limit on both sides: within it the call works, past it the call fails
//! with that limit's error.

mod common;

use common::{failure, limits, plugin, value};
use serde_json::json;
use std::time::Duration;
use warden_host::Limits;

const HOSTILE: &str = warden_test_programs::HOSTILE;

async fn past(limits: Limits, function: &str, args: serde_json::Value, code: &str) {
    let plugin = plugin(HOSTILE, &[], limits);
    let failure = failure(&plugin, function, args).await;
    assert_eq!(failure.error.code(), code, "{function}: {}", failure.error);
}

#[tokio::test]
async fn fuel() {
    let tight = limits(|l| l.fuel = 20_000_000);
    let plugin = plugin(HOSTILE, &[], tight.clone());
    let call = plugin.invoke("burn", &json!([100_000])).await.unwrap();
    assert!(call.metering.fuel_used > 100_000, "{:?}", call.metering);
    assert!(call.metering.fuel_used < 20_000_000, "{:?}", call.metering);
    past(tight, "burn", json!([1_000_000_000u64]), "out_of_fuel").await;
}

#[tokio::test]
async fn memory() {
    let tight = limits(|l| l.memory_bytes = 32 << 20);
    let plugin = plugin(HOSTILE, &[], tight.clone());
    assert_eq!(
        value(&plugin, "allocate", json!([8])).await,
        json!(7 * 2048)
    );
    past(tight, "allocate", json!([40]), "memory_limit").await;
}

#[tokio::test]
async fn deadline() {
    let tight = limits(|l| l.timeout = Duration::from_millis(500));
    let plugin = plugin(HOSTILE, &[], tight.clone());
    value(&plugin, "sleep", json!([20])).await;
    past(tight, "sleep", json!([2_000]), "deadline_exceeded").await;
}

#[tokio::test]
async fn stack() {
    let plugin = plugin(HOSTILE, &[], Limits::default());
    assert_eq!(
        value(&plugin, "recurse", json!([1_000])).await,
        json!(2_000)
    );
    past(
        Limits::default(),
        "recurse",
        json!([10_000_000]),
        "stack_overflow",
    )
    .await;
}

#[tokio::test]
async fn tables() {
    let plugin = plugin(HOSTILE, &[], Limits::default());
    value(&plugin, "ping", json!([])).await;
    past(
        limits(|l| l.table_elements = 1),
        "ping",
        json!([]),
        "table_limit",
    )
    .await;
    past(limits(|l| l.tables = 0), "ping", json!([]), "table_limit").await;
}

#[tokio::test]
async fn instances_and_memories() {
    past(
        limits(|l| l.instances = 1),
        "ping",
        json!([]),
        "instance_limit",
    )
    .await;
    past(
        limits(|l| l.memories = 0),
        "ping",
        json!([]),
        "instance_limit",
    )
    .await;
}

#[tokio::test]
async fn log_bytes() {
    let tight = limits(|l| l.log_bytes = 16 << 10);
    let plugin = plugin(HOSTILE, &[], tight.clone());
    let call = plugin.invoke("log-flood", &json!([8 << 10])).await.unwrap();
    assert_eq!(call.logs.len(), 8);
    past(tight.clone(), "log-flood", json!([32 << 10]), "log_limit").await;
    // Empty messages are not free: each costs the per-entry overhead.
    let fit = (16 << 10) / warden_host::LOG_ENTRY_OVERHEAD;
    let call = plugin.invoke("log-empty", &json!([fit])).await.unwrap();
    assert_eq!(call.logs.len() as u64, fit);
    past(tight, "log-empty", json!([fit + 1]), "log_limit").await;
}

#[tokio::test]
async fn log_entries_are_capped_in_number() {
    let roomy = limits(|l| l.log_bytes = 64 << 20);
    let plugin = plugin(HOSTILE, &[], roomy.clone());
    let max = warden_host::MAX_LOG_ENTRIES as u64;
    let call = plugin.invoke("log-empty", &json!([max])).await.unwrap();
    assert_eq!(call.logs.len() as u64, max);
    past(roomy, "log-empty", json!([max + 1]), "log_limit").await;
}

#[tokio::test]
async fn result_bytes() {
    let tight = limits(|l| l.result_bytes = 2 << 20);
    let plugin = plugin(HOSTILE, &[], tight.clone());
    let result = value(&plugin, "big-result", json!([1])).await;
    assert_eq!(result.as_str().unwrap().len(), 1 << 20);
    past(tight, "big-result", json!([3]), "result_too_large").await;
}

#[tokio::test]
async fn a_host_call_argument_past_the_read_budget_is_named() {
    // With a small result limit the read budget is the host-call limit plus the
    // slack; an argument past it is stopped while wasmtime reads it, and still
    // reported as the host call's fault, not the result's.
    let tight = limits(|l| {
        l.result_bytes = 1 << 10;
        l.host_call_bytes = 64 << 10;
        l.log_bytes = 8 << 20;
    });
    assert_eq!(tight.read_budget(), 128 << 10);
    let plugin = plugin(HOSTILE, &[], tight);
    let failure = failure(&plugin, "log-message", json!([200 << 10])).await;
    assert_eq!(
        failure.error.code(),
        "host_call_too_large",
        "{}",
        failure.error
    );
    assert!(
        failure.error.to_string().contains("to read"),
        "{}",
        failure.error
    );
}

#[tokio::test]
async fn host_call_bytes() {
    let tight = limits(|l| {
        l.host_call_bytes = 64 << 10;
        l.log_bytes = 8 << 20;
    });
    let plugin = plugin(HOSTILE, &[], tight.clone());
    value(&plugin, "log-message", json!([60 << 10])).await;
    past(
        tight,
        "log-message",
        json!([100 << 10]),
        "host_call_too_large",
    )
    .await;
}

#[tokio::test]
async fn concurrency() {
    let plugin = plugin(HOSTILE, &[], limits(|l| l.concurrency = 1));
    assert_eq!(code_while_busy(&plugin).await, "too_many_concurrent");

    // Two slots: two calls run side by side.
    let plugin = common::plugin(HOSTILE, &[], limits(|l| l.concurrency = 2));
    let args = json!([200]);
    let (a, b) = tokio::join!(plugin.invoke("sleep", &args), plugin.invoke("sleep", &args));
    assert!(a.is_ok() && b.is_ok());
}

#[tokio::test]
async fn the_engine_pool_refuses_past_its_slots() {
    let engine = warden_host::Engine::new(warden_host::EngineConfig {
        pooled_instances: Some(1),
        ..warden_host::EngineConfig::default()
    })
    .unwrap();
    let component = engine
        .compile(&warden_test_programs::read(HOSTILE))
        .unwrap();
    let plugin = warden_host::Plugin::new(
        &engine,
        &component,
        common::settings(&[], Limits::default()),
    )
    .unwrap();
    // Within: one slot, one call at a time, as often as we like.
    for _ in 0..3 {
        assert_eq!(value(&plugin, "ping", json!([])).await, json!("pong"));
    }
    // Past: a second call while the first holds the only slot.
    assert_eq!(code_while_busy(&plugin).await, "capacity");
}

/// Starts a 1.5 s call on `plugin`, and while it holds its slot, calls `ping`
/// until that is refused, returning the error code; then checks that `ping` works
/// again once the slow call is done. Polls rather than guessing when the slow call
/// has started, so a loaded machine does not make it flaky.
async fn code_while_busy(plugin: &warden_host::Plugin) -> String {
    let slow = {
        let plugin = plugin.clone();
        tokio::spawn(async move {
            plugin
                .invoke("sleep", &json!([1_500]))
                .await
                .map(drop)
                .map_err(|f| f.error.to_string())
        })
    };
    let mut code = None;
    while code.is_none() && !slow.is_finished() {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if let Err(refused) = plugin.invoke("ping", &json!([])).await {
            code = Some(refused.error.code().to_owned());
        }
    }
    slow.await.unwrap().unwrap();
    assert_eq!(value(plugin, "ping", json!([])).await, json!("pong"));
    code.expect("a call while the slot was taken should have been refused")
}
