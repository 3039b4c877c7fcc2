//! Two `warden serve` processes on one PostgreSQL database (and one data
//! directory, as a shared volume): every change that affects invocations is
//! in force on the replica that made it when its command returns, and on the
//! other replica within the documented bound (1 s), although that replica
//! serves invocations from memory. The second replica is given a snapshot
//! maximum age of an hour, so only the change feed can make it notice.

mod common;

use common::{Server, database, keygen, ok, remote};
use serde_json::Value;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Output;
use std::time::Duration;
use warden_test_programs as guests;

/// How long another replica may take to see a change (README, "Several
/// replicas").
const BOUND: Duration = Duration::from_secs(1);

fn serve(data: &Path, database: &str, admin_key: &Path, max_age: &str) -> Server {
    Server::start([
        AsRef::<OsStr>::as_ref("--data-dir"),
        data.as_os_str(),
        "--database-url".as_ref(),
        database.as_ref(),
        "--snapshot-max-age".as_ref(),
        max_age.as_ref(),
        "--admin-key".as_ref(),
        admin_key.as_os_str(),
    ])
}

fn run(server: &Server, token: &str, dir: &Path, args: &[&str]) -> Output {
    remote(&server.url, token, dir, args).output().unwrap()
}

fn json(output: Output) -> Value {
    serde_json::from_str(&ok(output)).unwrap()
}

/// The server's JSON answer to an invocation, success or error.
fn invoke(
    server: &Server,
    token: &str,
    dir: &Path,
    plugin: &str,
    function: &str,
    args: &str,
) -> Value {
    let output = run(
        server,
        token,
        dir,
        &["invoke", plugin, function, args, "--json"],
    );
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&text).unwrap_or_else(|_| {
        panic!(
            "not JSON: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn version_ran(answer: &Value) -> &str {
    answer["release"]["version"]
        .as_str()
        .unwrap_or_else(|| panic!("no release in {answer}"))
}

fn error_code(answer: &Value) -> &str {
    answer["error"]["code"].as_str().unwrap_or("")
}

fn manifest(work: &Path, name: &str, version: &str, component: &str, capabilities: &str) {
    std::fs::write(
        work.join("warden.toml"),
        format!(
            "name = \"{name}\"\nversion = \"{version}\"\ncomponent = \"{component}\"\ncapabilities = {capabilities}\n"
        ),
    )
    .unwrap();
}

#[test]
fn changes_reach_the_other_replica_within_the_bound() {
    if std::env::var("WARDEN_TEST_POSTGRES").as_deref() == Ok("skip") {
        eprintln!("WARDEN_TEST_POSTGRES=skip: not running the two-replica test");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (work, data) = (dir.path(), dir.path().join("data"));
    keygen(work, "bob.key");
    let alice = keygen(work, "alice.key");
    let database = database();
    let a = serve(&data, &database, &work.join("bob.key"), "5s");
    let b = serve(&data, &database, &work.join("bob.key"), "60m");
    let admin = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let alice_id = json(run(
        &a,
        &admin,
        work,
        &[
            "key",
            "add",
            &alice,
            "--kind",
            "publisher",
            "--owner",
            "alice",
            "--json",
        ],
    ))["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(run(
        &a,
        &admin,
        work,
        &["key", "add", "bob.key", "--kind", "admin", "--owner", "bob"],
    ));
    let token = |role: &str| {
        let created = json(run(
            &a,
            &admin,
            work,
            &["token", "create", "--name", role, "--role", role, "--json"],
        ));
        (
            created["id"].as_str().unwrap().to_owned(),
            created["secret"].as_str().unwrap().to_owned(),
        )
    };
    let (_, publisher) = token("publisher");
    let (portal_id, portal) = token("invoker");
    let (_, portal2) = token("invoker");
    let publish = |name: &str, version: &str, component: &str, capabilities: &str| {
        manifest(work, name, version, component, capabilities);
        ok(run(
            &a,
            &publisher,
            work,
            &["publish", "--key", "alice.key"],
        ));
        ok(run(
            &a,
            &admin,
            work,
            &["approve", &format!("{name}@{version}"), "--key", "bob.key"],
        ));
    };
    let hello =
        |server: &Server, token: &str| invoke(server, token, work, "acme/hello", "greet", "\"x\"");
    // Each change below is made on A; A must show it at once, B within BOUND.
    let after_bound = |check: &dyn Fn(&Server) -> bool, what: &str| {
        assert!(
            check(&a),
            "{what}: not in force on the replica that made it"
        );
        std::thread::sleep(BOUND);
        assert!(
            check(&b),
            "{what}: not in force on the other replica after {BOUND:?}"
        );
    };

    publish("acme/hello", "1.0.0", guests::HELLO, "[]");
    for server in [&a, &b, &b] {
        assert_eq!(version_ran(&hello(server, &portal)), "1.0.0");
    }

    // A newer approved release runs next.
    publish("acme/hello", "1.1.0", guests::HELLO, "[]");
    after_bound(
        &|s| version_ran(&hello(s, &portal)) == "1.1.0",
        "approving 1.1.0",
    );

    // A yanked release stops running; the one before it runs again.
    ok(run(
        &a,
        &admin,
        work,
        &["yank", "acme/hello@1.1.0", "--reason", "broken"],
    ));
    after_bound(
        &|s| version_ran(&hello(s, &portal)) == "1.0.0",
        "yanking 1.1.0",
    );

    // A revoked token stops working; another of the org still works.
    assert_eq!(version_ran(&hello(&b, &portal2)), "1.0.0");
    ok(run(&a, &admin, work, &["token", "revoke", &portal_id]));
    after_bound(
        &|s| error_code(&hello(s, &portal)) == "token_revoked",
        "revoking the portal token",
    );

    // A configuration change reaches the next invocation.
    publish(
        "acme/caps",
        "1.0.0",
        guests::CAPABILITIES,
        "[\"kv\", \"config\", \"http:example.com\"]",
    );
    let greeting = |s: &Server| {
        invoke(s, &portal2, work, "acme/caps", "config-get", "\"greeting\"")["result"].clone()
    };
    for server in [&a, &b, &b] {
        assert_eq!(greeting(server), Value::Null);
    }
    ok(run(
        &a,
        &admin,
        work,
        &["config", "set", "acme/caps", "greeting=hello"],
    ));
    after_bound(&|s| greeting(s) == "hello", "setting a configuration value");

    // A rejected release never runs (pending releases do not run either).
    manifest(work, "acme/hello", "1.2.0", guests::HELLO, "[]");
    ok(run(
        &a,
        &publisher,
        work,
        &["publish", "--key", "alice.key"],
    ));
    assert_eq!(version_ran(&hello(&b, &portal2)), "1.0.0");
    ok(run(
        &a,
        &admin,
        work,
        &["reject", "acme/hello@1.2.0", "--reason", "no"],
    ));
    assert_eq!(version_ran(&hello(&b, &portal2)), "1.0.0");

    // The publisher's key revoked: nothing it signed runs.
    ok(run(&a, &admin, work, &["key", "revoke", &alice_id]));
    after_bound(
        &|s| error_code(&hello(s, &portal2)) == "release_untrusted",
        "revoking the publisher key",
    );
}
