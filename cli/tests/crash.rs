//! kill -9 at chosen instants: while publishes and approvals are in flight,
//! and during a first start. After each restart: everything acknowledged is
//! there, no version tag exists without its release, the audit chain
//! verifies, and every approved version runs.

mod common;

use common::{Server, keygen, ok, remote as warden};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use warden_test_programs as guests;

fn serve(data: &Path, admin_key: &Path) -> Server {
    Server::start([
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--admin-key".as_ref(),
        admin_key.as_os_str(),
    ])
}

fn manifest(work: &Path, version: &str) {
    std::fs::write(
        work.join("warden.toml"),
        format!(
            "name = \"acme/hello\"\nversion = \"{version}\"\ncomponent = \"{}\"\n",
            guests::HELLO
        ),
    )
    .unwrap();
}

#[test]
fn nothing_acknowledged_is_lost_to_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (work, data) = (dir.path(), dir.path().join("data"));
    keygen(work, "bob.key");
    let alice = keygen(work, "alice.key");
    let server = serve(&data, &work.join("bob.key"));
    let admin = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let run = |server: &Server, token: &str, args: &[&str]| {
        warden(&server.url, token, work, args).output().unwrap()
    };
    ok(run(
        &server,
        &admin,
        &[
            "key",
            "add",
            &alice,
            "--kind",
            "publisher",
            "--owner",
            "alice",
        ],
    ));
    ok(run(
        &server,
        &admin,
        &["key", "add", "bob.key", "--kind", "admin", "--owner", "bob"],
    ));
    let publisher = ok(run(
        &server,
        &admin,
        &["token", "create", "--name", "ci", "--role", "publisher"],
    ))
    .trim()
    .to_owned();

    // How long an uncut publish and approval take; the kills below land at
    // chosen fractions of that, so they hit the server mid-request.
    manifest(work, "0.9.0");
    let started = std::time::Instant::now();
    ok(run(&server, &publisher, &["publish", "--key", "alice.key"]));
    let publish_time = started.elapsed();
    let started = std::time::Instant::now();
    ok(run(
        &server,
        &admin,
        &["approve", "acme/hello@0.9.0", "--key", "bob.key"],
    ));
    let approve_time = started.elapsed();
    let mut acknowledged_publishes = vec!["0.9.0".to_owned()];
    let mut acknowledged_approvals = vec!["0.9.0".to_owned()];

    let mut server = server;
    for (round, percent) in [50u32, 70, 80, 88, 94, 98, 102, 110]
        .into_iter()
        .enumerate()
    {
        let version = format!("1.0.{round}");
        manifest(work, &version);
        let publish = warden(
            &server.url,
            &publisher,
            work,
            &["publish", "--key", "alice.key"],
        )
        .spawn()
        .unwrap();
        std::thread::sleep(publish_time * percent / 100);
        drop(server); // kill -9
        if publish.wait_with_output().unwrap().status.success() {
            acknowledged_publishes.push(version.clone());
        }
        server = serve(&data, &work.join("bob.key"));
        let shown = run(
            &server,
            &admin,
            &["release", "show", &format!("acme/hello@{version}")],
        );
        if !shown.status.success() {
            continue;
        }
        let approve = warden(
            &server.url,
            &admin,
            work,
            &[
                "approve",
                &format!("acme/hello@{version}"),
                "--key",
                "bob.key",
            ],
        )
        .spawn()
        .unwrap();
        std::thread::sleep(approve_time * percent / 100);
        drop(server);
        if approve.wait_with_output().unwrap().status.success() {
            acknowledged_approvals.push(version.clone());
        }
        server = serve(&data, &work.join("bob.key"));
    }

    eprintln!(
        "acknowledged before kill -9: publishes {acknowledged_publishes:?}, approvals {acknowledged_approvals:?}"
    );
    // Everything acknowledged is there.
    for version in &acknowledged_publishes {
        ok(run(
            &server,
            &admin,
            &["release", "show", &format!("acme/hello@{version}")],
        ));
    }
    // No version tag without its release.
    let tags = data.join("oci/repos/acme+hello/tags");
    if let Ok(entries) = std::fs::read_dir(&tags) {
        for entry in entries {
            let tag = entry.unwrap().file_name().into_string().unwrap();
            ok(run(
                &server,
                &admin,
                &["release", "show", &format!("acme/hello@{tag}")],
            ));
        }
    }
    // The audit chain verifies.
    ok(run(&server, &admin, &["audit", "verify"]));
    // Every approved version runs.
    let portal = ok(run(
        &server,
        &admin,
        &["token", "create", "--name", "portal", "--role", "invoker"],
    ))
    .trim()
    .to_owned();
    for version in &acknowledged_approvals {
        let greeting = ok(run(
            &server,
            &portal,
            &[
                "invoke",
                "acme/hello",
                "greet",
                "\"crash\"",
                "--release",
                &format!("={version}"),
            ],
        ));
        assert_eq!(greeting.trim(), "\"Hello, crash!\"");
    }
}

#[test]
fn a_first_start_killed_at_any_instant_starts_again_with_a_working_admin_token() {
    for delay_ms in [0u64, 2, 5, 10, 20, 40, 80] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        keygen(dir.path(), "bob.key");
        let mut first = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .arg("--admin-key")
            .arg(dir.path().join("bob.key"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = first.kill();
        let _ = first.wait();
        let server = serve(&data, &dir.path().join("bob.key"));
        let token = std::fs::read_to_string(data.join("admin-token")).unwrap_or_else(|e| {
            panic!("killed after {delay_ms} ms: no admin-token after restart: {e}")
        });
        assert!(
            !token.trim().is_empty(),
            "killed after {delay_ms} ms: empty admin-token"
        );
        let whoami = warden(&server.url, token.trim(), dir.path(), &["audit", "verify"])
            .output()
            .unwrap();
        ok(whoami);
    }
}
