//! The `warden` binary as users run it: output, errors and exit codes.

mod common;

use common::{stderr, stdout, warden};
use warden_test_programs as guests;

#[test]
fn run_prints_the_json_result() {
    let output = warden(&["run", guests::HELLO, "greet", "\"world\""]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "\"Hello, world!\"");
    assert!(
        stderr(&output).contains("[info] greeting world"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn run_with_stats_reports_fuel_and_duration() {
    let output = warden(&[
        "run",
        guests::TEXT_TOOLS,
        "text.convert-case",
        r#"["hello big world", "kebab"]"#,
        "--stats",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "\"hello-big-world\"");
    assert!(
        stderr(&output).contains("fuel used: "),
        "{}",
        stderr(&output)
    );
}

#[test]
fn run_links_the_components_given_with_dependency() {
    let args = [
        "run",
        guests::WORD_REPORT,
        "summarize",
        r#""hello big world""#,
    ];
    let alone = warden(&args);
    assert_eq!(alone.status.code(), Some(3), "{}", stderr(&alone));
    assert!(
        stderr(&alone).contains(
            "warden-examples:text-tools/text@0.1.0 (if another plugin exports them, pass its component with --dependency)"
        ),
        "{}",
        stderr(&alone)
    );
    let linked = warden(&[&args[..], &["--dependency", guests::TEXT_TOOLS]].concat());
    assert_eq!(linked.status.code(), Some(0), "{}", stderr(&linked));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&linked)).unwrap();
    assert_eq!(summary["title"], "Hello Big World");
    assert_eq!(summary["words"], 3);
    // A dependency gets no capability under `warden run`: the vault needs kv.
    let refused = warden(&[
        "run",
        guests::DEPENDENT,
        "recall",
        r#"["k"]"#,
        "--grant",
        "kv",
        "--dependency",
        guests::VAULT,
    ]);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("warden_guest_vault.wasm: capabilities not granted: kv"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn run_json_gives_one_object_with_metering_and_logs() {
    let output = warden(&["run", guests::HELLO, "greet", "[\"json\"]", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["result"], "Hello, json!");
    assert!(report["metering"]["fuel_used"].as_u64().unwrap() > 0);
    assert_eq!(report["logs"][0]["message"], "greeting json");
}

#[test]
fn exit_codes_mean_something() {
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        // The plugin's own error.
        (
            vec!["run", guests::TEXT_TOOLS, "text.slugify", r#"["!!!", {}]"#],
            1,
            "the plugin returned an error",
        ),
        // Usage.
        (vec!["run"], 2, "Usage"),
        // Invalid input of every kind.
        (
            vec!["run", "/no/such/file.wasm", "greet"],
            3,
            "reading /no/such/file.wasm",
        ),
        (
            vec!["run", "Cargo.toml", "greet"],
            3,
            "not a WebAssembly file",
        ),
        (
            vec!["run", guests::HELLO, "greet", "{not json"],
            3,
            "not valid JSON",
        ),
        (
            vec!["run", guests::HELLO, "wave", "[]"],
            3,
            "no function `wave`; available: greet",
        ),
        (
            vec!["run", guests::HELLO, "greet", "[1]"],
            3,
            "args.name: expected string, got 1",
        ),
        (
            vec!["run", guests::COUNTER, "increment", r#"["a", 1]"#],
            3,
            "capabilities not granted: kv",
        ),
        (
            vec!["run", guests::HELLO, "greet", "\"x\"", "--grant", "files"],
            3,
            "grant \"files\"",
        ),
        // Limits.
        (
            vec!["run", guests::HOSTILE, "spin", "--fuel", "1000000"],
            4,
            "fuel limit exceeded",
        ),
        (
            vec!["run", guests::HOSTILE, "memory-bomb", "--memory", "16MiB"],
            4,
            "memory limit exceeded",
        ),
        (
            vec![
                "run",
                guests::HOSTILE,
                "sleep",
                "[10000]",
                "--timeout",
                "200ms",
            ],
            4,
            "time limit exceeded",
        ),
        // Traps.
        (
            vec!["run", guests::HOSTILE, "panic", "\"boom\""],
            5,
            "panicked at",
        ),
    ];
    for (args, code, message) in cases {
        let output = warden(&args);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(message),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn errors_are_one_line() {
    let output = warden(&["run", guests::HOSTILE, "panic", "\"boom\""]);
    let errors: Vec<_> = stderr(&output)
        .lines()
        .filter(|l| l.starts_with("error:"))
        .map(str::to_owned)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("boom"), "{errors:?}");
    assert!(
        !stderr(&output).contains("wasm backtrace"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn grants_and_config_reach_the_plugin() {
    let output = warden(&[
        "run",
        guests::COUNTER,
        "increment",
        r#"["visits", 5]"#,
        "--grant",
        "kv",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "5");
    let output = warden(&[
        "run",
        guests::CAPABILITIES,
        "config-get",
        "\"color\"",
        "--grant",
        "kv",
        "--grant",
        "http:example.com",
        "--config",
        "color=teal",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "\"teal\"");
}

#[test]
fn inspect_lists_functions_and_capabilities() {
    let output = warden(&["inspect", guests::COUNTER]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("increment "))
        .expect(&text);
    assert!(
        line.ends_with("func(name: string, by: s64) -> result<s64, string>"),
        "{line}"
    );
    assert!(text.contains("kv          needs a grant"), "{text}");
    assert!(text.contains("warden:plugin/kv@0.1.0"), "{text}");

    let output = warden(&["inspect", guests::TYPES, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(report["digest"].as_str().unwrap().starts_with("sha256:"));
    let functions = report["functions"].as_array().unwrap();
    let add = functions.iter().find(|f| f["name"] == "add").unwrap();
    assert_eq!(
        add["schema"]["params"]["required"],
        serde_json::json!(["a", "b"])
    );
    let make = functions
        .iter()
        .find(|f| f["name"] == "handles.make-counter")
        .unwrap();
    assert_eq!(make["not_invocable"], "the result contains a resource");

    let output = warden(&["inspect", "Cargo.toml"]);
    assert_eq!(output.status.code(), Some(3));
}

#[test]
fn a_kv_file_keeps_state_between_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("counter.db");
    let file = file.to_str().unwrap();
    for expected in ["2", "4"] {
        let output = warden(&[
            "run",
            guests::COUNTER,
            "increment",
            r#"["runs", 2]"#,
            "--kv-file",
            file,
        ]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert_eq!(stdout(&output).trim(), expected);
    }
    let output = warden(&[
        "run",
        guests::COUNTER,
        "increment",
        "[\"runs\", 1]",
        "--kv-file",
        "/nonexistent/dir/kv.db",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("opening the kv file"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn keygen_writes_a_private_key_once_and_prints_the_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("publisher.key");
    let path = path.to_str().unwrap();
    let output = warden(&["keygen", "--out", path]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let public: warden_host::PublicKey = stdout(&output).trim().parse().unwrap();
    let private =
        warden_host::PrivateKey::from_pem(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(private.public_key(), public);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let again = warden(&["keygen", "--out", path]);
    assert_eq!(again.status.code(), Some(3));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    let unchanged =
        warden_host::PrivateKey::from_pem(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(
        unchanged.public_key(),
        public,
        "the key was not overwritten"
    );
}

#[test]
fn plugin_output_cannot_draw_on_the_terminal() {
    // A panic message with an escape sequence and a fake host line.
    let output = warden(&[
        "run",
        guests::HOSTILE,
        "panic",
        "\"evil\\u001b[8m\\n[warden] all good\"",
    ]);
    let err = stderr(&output);
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(err.contains("evil\\u{1b}[8m"), "{err}");
    // The second line keeps its source: it cannot pass for the host's.
    assert!(err.contains("[stderr] [warden] all good"), "{err}");
}

#[test]
fn a_closed_standard_output_ends_the_cli_quietly() {
    // `warden inspect ... | head -0`: the reader is gone before the first line.
    let cache = std::env::temp_dir().join("warden-cli-test-cache");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["inspect", guests::TEXT_TOOLS])
        .env("WARDEN_CACHE_DIR", cache)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running warden");
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let err = stderr(&output);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.is_empty(), "nothing on standard error: {err}");
    assert_eq!(output.status.code(), Some(141));
}
