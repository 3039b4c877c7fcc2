//! Plugins written in Python (componentize-py) and JavaScript (componentize-js),
//! built from `tests/polyglot/` by the test programs' build script, run with
//! `warden run` and `warden inspect` as a plugin author would: typed functions
//! over records, variants, enums, options, results and lists, under the
//! default limits, and stopped by the limits when they misbehave.

use serde_json::{Value, json};
mod common;

use common::warden;
use std::process::Command;
use warden_test_programs as guests;

/// The two builds of the same plugin, by language.
const LANGUAGES: [(&str, &str); 2] = [
    ("python", guests::PYTHON_POLYGLOT),
    ("javascript", guests::JAVASCRIPT_POLYGLOT),
];

/// `warden run --json COMPONENT FUNCTION ARGS EXTRA...`: (exit code, outcome).
fn run(component: &str, function: &str, args: Value, extra: &[&str]) -> (i32, Value) {
    let args = args.to_string();
    let mut argv = vec!["run", component, function, &args, "--json"];
    argv.extend_from_slice(extra);
    let output = warden(&argv);
    let outcome = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{component} {function}: no JSON outcome ({e}); stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), outcome)
}

#[track_caller]
fn expect_result(component: &str, function: &str, args: Value, expected: Value) {
    let (code, outcome) = run(component, function, args, &[]);
    assert_eq!(
        (code, &outcome["result"]),
        (0, &expected),
        "{component} {function}: {outcome}"
    );
}

#[track_caller]
fn expect_error(component: &str, function: &str, args: Value, extra: &[&str], error: &str) {
    let (code, outcome) = run(component, function, args, extra);
    assert_eq!(
        outcome["error"]["code"], error,
        "{component} {function}: {outcome}"
    );
    assert_ne!(code, 0);
}

#[test]
fn python_and_javascript_plugins_run_typed_functions() {
    for (language, component) in LANGUAGES {
        eprintln!("{language}");
        // Variants, with and without payloads, and tuples of records.
        expect_result(component, "shapes.area", json!({"circle": 10}), json!(314));
        expect_result(
            component,
            "shapes.area",
            json!({"rect": [{"x": 1, "y": 1}, {"x": 4, "y": 5}]}),
            json!(12),
        );
        expect_result(component, "shapes.area", json!("empty"), json!(0));
        // Records in and out, by position and by name.
        expect_result(
            component,
            "shapes.midpoint",
            json!([{"x": -3, "y": 4}, {"x": 0, "y": 10}]),
            json!({"x": -2, "y": 7}),
        );
        expect_result(
            component,
            "shapes.midpoint",
            json!({"a": {"x": 2, "y": 2}, "b": {"x": 4, "y": 6}}),
            json!({"x": 3, "y": 4}),
        );
        // Lists and options.
        expect_result(
            component,
            "shapes.find",
            json!([["a", "b", "c"], "c"]),
            json!(2),
        );
        expect_result(component, "shapes.find", json!([["a"], "z"]), Value::Null);
        expect_result(
            component,
            "shapes.shift",
            json!([[{"x": 1, "y": 2}, {"x": -1, "y": 0}], 10, -1]),
            json!([{"x": 11, "y": 1}, {"x": 9, "y": -1}]),
        );
        // Enums inside options.
        expect_result(
            component,
            "shapes.label",
            json!([{"x": 1, "y": 2}, "imperial"]),
            json!("(1, 2) ft"),
        );
        expect_result(
            component,
            "shapes.label",
            json!([{"x": 1, "y": 2}, null]),
            json!("(1, 2) ?"),
        );
        // Results: the value, or the plugin's own typed error (exit 1).
        expect_result(component, "shapes.parse-age", json!("42"), json!(42));
        let (code, outcome) = run(component, "shapes.parse-age", json!("old"), &[]);
        assert_eq!(
            (code, &outcome["plugin_error"]),
            (1, &json!("not a number: old")),
            "{language}: {outcome}"
        );
        let (code, outcome) = run(component, "shapes.parse-age", json!("200"), &[]);
        assert_eq!(
            (code, &outcome["plugin_error"]),
            (1, &json!("out of range: 200")),
            "{language}: {outcome}"
        );
        // Bad arguments are refused with the path before the plugin runs.
        expect_error(
            component,
            "shapes.midpoint",
            json!([{"x": "far", "y": 0}, {"x": 0, "y": 0}]),
            &[],
            "bad_argument",
        );
    }
}

#[test]
fn python_and_javascript_plugins_are_stopped_by_their_limits() {
    for (language, component) in LANGUAGES {
        eprintln!("{language}");
        // An endless loop: stopped by fuel, or by the deadline when fuel is ample.
        expect_error(
            component,
            "spin",
            json!([]),
            &["--fuel", "50000000"],
            "out_of_fuel",
        );
        expect_error(
            component,
            "spin",
            json!([]),
            &["--timeout", "300ms", "--fuel", "1000000000000000"],
            "deadline_exceeded",
        );
        // Memory: 8 MiB fits in 64 MiB, 100 MiB does not.
        expect_result(component, "hog", json!(8), json!(8));
        expect_error(component, "hog", json!(100), &[], "memory_limit");
        expect_error(
            component,
            "hog",
            json!(8),
            &["--memory", "16MiB"],
            "memory_limit",
        );
    }
}

/// The smallest value of the count limit `name` under which `component` runs,
/// searched between 0 and `default` (which must be enough).
fn smallest_that_runs(component: &str, name: &str, default: u64) -> u64 {
    let runs = |value: u64| {
        let limit = format!("{name}={value}");
        run(
            component,
            "shapes.area",
            json!("empty"),
            &["--limit", &limit],
        )
        .0 == 0
    };
    assert!(
        runs(default),
        "{component} does not run with the default {name}"
    );
    let (mut fails, mut works) = (0, default);
    if runs(0) {
        return 0;
    }
    while works - fails > 1 {
        let middle = fails + (works - fails) / 2;
        if runs(middle) {
            works = middle;
        } else {
            fails = middle;
        }
    }
    works
}

/// The default limits fit what these toolchains emit; every limit an admin can
/// approve is also a `warden run --limit`, enforced on both sides of the value
/// the component needs.
#[test]
fn default_limits_fit_mainstream_toolchains_and_each_is_settable_on_run() {
    let defaults = warden_host::Limits::default();
    let counted = [
        ("instances", u64::from(defaults.instances), "instance_limit"),
        ("memories", u64::from(defaults.memories), "instance_limit"),
        ("tables", u64::from(defaults.tables), "table_limit"),
        ("table_elements", defaults.table_elements, "table_limit"),
    ];
    let stubbed = ("python --stub-wasi", guests::PYTHON_POLYGLOT_STUB_WASI);
    for (language, component) in LANGUAGES.into_iter().chain([stubbed]) {
        let inspected = warden(&["inspect", "--json", component]);
        assert_eq!(inspected.status.code(), Some(0), "{language}");
        for (name, default, code) in counted {
            let needed = smallest_that_runs(component, name, default);
            eprintln!("{language}: {name} needed {needed} (default {default})");
            assert!(needed > 0, "{language} needs some {name}");
            let below = format!("{name}={}", needed - 1);
            let (exit, outcome) = run(
                component,
                "shapes.area",
                json!("empty"),
                &["--limit", &below],
            );
            assert_eq!(
                (exit, outcome["error"]["code"].as_str()),
                (4, Some(code)),
                "{language} with {below}: {outcome}"
            );
        }
    }
    let output = warden(&["run", guests::HELLO, "greet", "\"x\"", "--limit", "speed=1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("unknown limit \"speed\""),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `warden inspect` compiles through the same on-disk cache as `warden run`:
/// the first inspect stores the compiled component, and neither a second
/// inspect nor a run compiles it again.
#[test]
fn inspect_uses_the_compiled_code_cache() {
    let cache = tempfile::tempdir().unwrap();
    let entries = || -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
        let mut entries: Vec<_> = std::fs::read_dir(cache.path())
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .map(|e| (e.path(), e.metadata().unwrap().modified().unwrap()))
            .collect();
        entries.sort();
        entries
    };
    let with_cache = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(args)
            .env("WARDEN_CACHE_DIR", cache.path())
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    with_cache(&["inspect", guests::PYTHON_POLYGLOT]);
    let stored = entries();
    assert_eq!(stored.len(), 1, "inspect stored one compiled component");
    with_cache(&["inspect", "--json", guests::PYTHON_POLYGLOT]);
    with_cache(&["run", guests::PYTHON_POLYGLOT, "shapes.area", "\"empty\""]);
    assert_eq!(entries(), stored, "nothing was compiled again");
    // --no-cache compiles without touching it.
    with_cache(&["inspect", "--no-cache", guests::JAVASCRIPT_POLYGLOT]);
    assert_eq!(entries(), stored);
}
