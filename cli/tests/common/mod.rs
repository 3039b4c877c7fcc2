//! The `warden` binary as the local commands' tests run it.
#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs `warden ARGS` with a compiled-code cache shared by these tests.
pub fn warden(args: &[&str]) -> Output {
    let cache = std::env::temp_dir().join("warden-cli-test-cache");
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .env("WARDEN_CACHE_DIR", cache)
        .output()
        .expect("running warden")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A `warden serve` on a free loopback port; killed with SIGKILL when
/// dropped (no shutdown, no flush).
pub struct Server {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl Server {
    /// Starts `warden serve --listen 127.0.0.1:0 ARGS` and waits until it
    /// prints the address it listens on.
    pub fn start<I, S>(args: I) -> Server
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("starting warden");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("warden serve exited before it was ready");
            };
            if let Some(rest) = line.strip_prefix("warden listening on ") {
                let url = rest.split_whitespace().next().unwrap().to_owned();
                std::thread::spawn(move || for _ in lines {});
                return Server { child, url };
            }
        }
    }
}

impl Server {
    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most `limit`) for the process to exit; its status, or
    /// `None` if it is still running.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `warden ARGS` against `url` with `token`, run in `dir`, output captured.
pub fn remote(url: &str, token: &str, dir: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warden"));
    command
        .args(args)
        .current_dir(dir)
        .env("WARDEN_URL", url)
        .env("WARDEN_TOKEN", token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    command
}

/// The stdout of a command that must have succeeded (else both streams in
/// the panic).
#[track_caller]
pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `warden keygen --out NAME` in `dir`: the public key it prints.
pub fn keygen(dir: &std::path::Path, name: &str) -> String {
    ok(Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["keygen", "--out", name])
        .current_dir(dir)
        .output()
        .unwrap())
    .trim()
    .to_owned()
}

/// A new, empty PostgreSQL database for this test process (on the
/// throwaway server the tests start, or WARDEN_TEST_POSTGRES_URL's).
pub fn database() -> String {
    let admin = warden_test_programs::postgres::admin_url();
    let name = format!("warden_cli_{}_{}", std::process::id(), rand_suffix());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let mut connection = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin}: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut connection)
            .await
            .unwrap();
    });
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
    format!("{base}/{name}")
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

/// The usual cast of an organization, set up by its `admin` through the
/// server at `url`: `alice` (the public key printed by `keygen`) registered
/// as a publisher key, `bob.key` in `dir` as an admin key, and a new
/// publisher token, whose secret is returned.
pub fn publisher_and_approver(
    url: &str,
    admin: &str,
    dir: &std::path::Path,
    alice: &str,
) -> String {
    let run = |args: &[&str]| ok(remote(url, admin, dir, args).output().unwrap());
    run(&[
        "key",
        "add",
        alice,
        "--kind",
        "publisher",
        "--owner",
        "alice",
    ]);
    run(&["key", "add", "bob.key", "--kind", "admin", "--owner", "bob"]);
    let created = run(&[
        "token",
        "create",
        "--name",
        "ci",
        "--role",
        "publisher",
        "--json",
    ]);
    serde_json::from_str::<serde_json::Value>(&created).unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned()
}
