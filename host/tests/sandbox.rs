//! Hostile plugins: each attack ends its own invocation with the specific error,
//! and the same engine and plugin then serve a normal call correctly.

mod common;

use common::{failure, limits, plugin, plugin_error, value};
use serde_json::json;
use std::time::Duration;
use warden_host::{Limits, Plugin};

const HOSTILE: &str = warden_test_programs::HOSTILE;

async fn still_serves(plugin: &Plugin) {
    assert_eq!(value(plugin, "ping", json!([])).await, json!("pong"));
    // A fresh plugin on the same engine works too.
    let fresh = common::plugin(HOSTILE, &[], Limits::default());
    assert_eq!(value(&fresh, "ping", json!([])).await, json!("pong"));
}

async fn expect_code(
    plugin: &Plugin,
    function: &str,
    args: serde_json::Value,
    code: &str,
) -> Box<warden_host::Failure> {
    let failure = failure(plugin, function, args).await;
    assert_eq!(failure.error.code(), code, "{function}: {}", failure.error);
    still_serves(plugin).await;
    failure
}

#[tokio::test]
async fn infinite_loop_without_host_calls_runs_out_of_fuel() {
    let plugin = plugin(
        HOSTILE,
        &[],
        limits(|l| {
            l.fuel = 50_000_000;
            l.timeout = Duration::from_secs(30);
        }),
    );
    let failure = expect_code(&plugin, "spin", json!([]), "out_of_fuel").await;
    let metering = failure.metering.expect("the plugin ran");
    assert_eq!(metering.fuel_used, 50_000_000);
}

#[tokio::test]
async fn infinite_loop_without_host_calls_hits_the_deadline() {
    let plugin = plugin(
        HOSTILE,
        &[],
        limits(|l| {
            l.fuel = u64::MAX / 2;
            l.timeout = Duration::from_millis(300);
        }),
    );
    let failure = expect_code(&plugin, "spin", json!([]), "deadline_exceeded").await;
    let took = failure.metering.unwrap().duration;
    assert!(
        took >= Duration::from_millis(300),
        "stopped early: {took:?}"
    );
}

#[tokio::test]
async fn loop_calling_the_host_hits_the_deadline() {
    let plugin = plugin(
        HOSTILE,
        &[],
        limits(|l| {
            l.fuel = u64::MAX / 2;
            l.timeout = Duration::from_millis(300);
        }),
    );
    expect_code(&plugin, "spin-logging", json!([]), "deadline_exceeded").await;
}

#[tokio::test]
async fn waiting_in_the_host_hits_the_deadline() {
    let plugin = plugin(
        HOSTILE,
        &[],
        limits(|l| l.timeout = Duration::from_millis(200)),
    );
    expect_code(&plugin, "sleep", json!([60_000]), "deadline_exceeded").await;
}

#[tokio::test]
async fn memory_bomb_is_stopped_at_the_limit() {
    let plugin = plugin(HOSTILE, &[], limits(|l| l.memory_bytes = 32 << 20));
    let failure = expect_code(&plugin, "memory-bomb", json!([]), "memory_limit").await;
    assert!(
        failure.error.to_string().contains("32 MiB"),
        "{}",
        failure.error
    );
}

#[tokio::test]
async fn unbounded_recursion_overflows_the_stack() {
    let plugin = plugin(HOSTILE, &[], Limits::default());
    expect_code(&plugin, "recurse", json!([u32::MAX]), "stack_overflow").await;
}

#[tokio::test]
async fn a_panic_is_a_trap_with_the_panic_message() {
    let plugin = plugin(HOSTILE, &[], Limits::default());
    let failure = expect_code(&plugin, "panic", json!(["the plugin gave up"]), "trap").await;
    assert!(
        failure.error.to_string().contains("the plugin gave up"),
        "{}",
        failure.error
    );
}

#[tokio::test]
async fn unreachable_is_a_trap() {
    let plugin = plugin(HOSTILE, &[], Limits::default());
    let failure = expect_code(&plugin, "trap", json!([]), "trap").await;
    assert!(
        failure.error.to_string().contains("unreachable"),
        "{}",
        failure.error
    );
}

#[tokio::test]
async fn a_100_mib_result_is_refused() {
    // With room to build it, the result is too large to even be read out of
    // the guest (the read budget is 16 x 4 MiB + 64 KiB)...
    let roomy = plugin(HOSTILE, &[], limits(|l| l.memory_bytes = 512 << 20));
    let failure = expect_code(&roomy, "big-result", json!([100]), "result_too_large").await;
    assert!(
        failure
            .error
            .to_string()
            .contains("the result takes more than 64.1 MiB of host memory to read"),
        "{}",
        failure.error
    );
    // ...and one the budget reads is measured as JSON.
    let failure = expect_code(&roomy, "big-result", json!([5]), "result_too_large").await;
    assert!(
        failure.error.to_string().contains("the result is 5.0 MiB"),
        "{}",
        failure.error
    );
    // ...and with the default memory it cannot even be built.
    let default = plugin(HOSTILE, &[], Limits::default());
    expect_code(&default, "big-result", json!([100]), "memory_limit").await;
}

#[tokio::test]
async fn a_log_flood_is_cut_at_the_log_limit() {
    let plugin = plugin(HOSTILE, &[], limits(|l| l.log_bytes = 64 << 10));
    let failure = expect_code(&plugin, "log-flood", json!([100 << 20]), "log_limit").await;
    let logged: usize = failure.logs.iter().map(|e| e.message.len()).sum();
    assert!(logged <= 64 << 10, "kept {logged} bytes");
    assert!(logged > 32 << 10, "kept only {logged} bytes");
}

#[tokio::test]
async fn a_stdout_flood_is_cut_at_the_log_limit() {
    let plugin = plugin(HOSTILE, &[], limits(|l| l.log_bytes = 64 << 10));
    expect_code(&plugin, "print-flood", json!([100 << 20]), "log_limit").await;
}

#[tokio::test]
async fn files_are_out_of_reach() {
    let plugin = plugin(HOSTILE, &[], Limits::default());
    for path in ["/etc/passwd", "/proc/self/environ", "Cargo.toml", "."] {
        let error = plugin_error(&plugin, "read-file", json!([path])).await;
        assert!(error.is_string(), "{path}: {error}");
    }
    plugin_error(&plugin, "list-dir", json!(["/"])).await;
    still_serves(&plugin).await;
}

#[tokio::test]
async fn sockets_are_refused() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let plugin = plugin(HOSTILE, &[], Limits::default());
    plugin_error(&plugin, "open-socket", json!([address])).await;
    let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(accepted.is_err(), "the plugin reached the listener");
    still_serves(&plugin).await;
}

#[tokio::test]
async fn only_granted_environment_variables_are_visible() {
    let path = std::env::var("PATH").expect("tests run with PATH set");
    let denied = plugin(HOSTILE, &[], Limits::default());
    assert_eq!(
        value(&denied, "env-var", json!(["PATH"])).await,
        json!(null)
    );
    let granted = plugin(HOSTILE, &["env:PATH"], Limits::default());
    assert_eq!(
        value(&granted, "env-var", json!(["PATH"])).await,
        json!(path)
    );
    assert_eq!(
        value(&granted, "env-var", json!(["HOME"])).await,
        json!(null)
    );
}
