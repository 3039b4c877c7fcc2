//! A throwaway PostgreSQL server for the tests, started from the installed
//! PostgreSQL binaries (`initdb` into a temporary directory, `postgres` on a
//! free loopback port) unless `WARDEN_TEST_POSTGRES_URL` names a server to use.
//!
//! No system cluster, role or root is needed. The server belongs to a small
//! shell supervisor that waits on a pipe held by the test process: when the
//! test process ends, however it ends (even by SIGKILL), the pipe closes and
//! the supervisor stops the server and deletes its directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

/// The environment variable naming a server to use instead.
pub const URL_VARIABLE: &str = "WARDEN_TEST_POSTGRES_URL";

/// What the supervisor does, as the user the server runs as. `$1` is the
/// directory of the PostgreSQL binaries, `$2` the port.
const SUPERVISOR: &str = r#"
set -eu
bin=$1; port=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/warden-test-postgres.XXXXXX")
server=
trap 'if [ -n "$server" ]; then kill -INT "$server" 2>/dev/null || true; wait "$server" || true; fi; rm -rf "$dir"' EXIT
trap 'exit 1' INT TERM HUP
# A random password: other local users must not reach a superuser.
password=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
printf '%s\n' "$password" >"$dir/password"
"$bin/initdb" -D "$dir/data" -U warden -A scram-sha-256 --pwfile="$dir/password" --no-sync \
    -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
"$bin/postgres" -D "$dir/data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
    >"$dir/server.log" 2>&1 &
server=$!
i=0
until "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U warden; do
    i=$((i + 1))
    if [ "$i" -gt 300 ] || ! kill -0 "$server" 2>/dev/null; then
        cat "$dir/server.log" >&2; kill "$server" 2>/dev/null || true; exit 1
    fi
    sleep 0.1
done
echo "ready $password"
# Until the test process closes our standard input (by ending); the EXIT trap
# then stops the server and removes its directory.
cat >/dev/null || true
"#;

/// The running server: kept for the life of the test process.
struct Server {
    url: String,
    _supervisor: Child,
    _lifeline: ChildStdin,
}

/// The URL of a PostgreSQL server (as the superuser `warden` with a random
/// password (scram-sha-256), database
/// `postgres`) on which tests may create databases: `WARDEN_TEST_POSTGRES_URL`
/// if set, otherwise a throwaway server started on first use.
///
/// Panics with the reason (and what to install) when no server can be started.
pub fn admin_url() -> String {
    if let Ok(url) = std::env::var(URL_VARIABLE) {
        return url;
    }
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER
        .get_or_init(|| start().unwrap_or_else(|e| panic!("{e}")))
        .url
        .clone()
}

/// The directory holding `initdb`, `postgres` and `pg_isready`: the one of
/// `initdb` on PATH, or the newest `/usr/lib/postgresql/<version>/bin`.
fn binaries() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).find(|dir| dir.join("initdb").is_file()));
    if let Some(dir) = on_path {
        // Debian links some of them into /usr/local/bin or /usr/bin: use the real directory.
        let real = std::fs::canonicalize(dir.join("initdb")).ok()?;
        return real.parent().map(Path::to_path_buf);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn start() -> Result<Server, String> {
    let bin = binaries().ok_or_else(|| {
        format!(
            "the PostgreSQL tests need PostgreSQL's server binaries (initdb, postgres) to start \
             a throwaway server: install them (Debian: apt-get install postgresql), or set \
             {URL_VARIABLE} to a server where the user may create databases"
        )
    })?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|e| format!("finding a free port for PostgreSQL: {e}"))?
        .port();
    // PostgreSQL refuses to run as root: then run it as the `postgres` user.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
    let mut command = if root {
        let mut runuser = Command::new("runuser");
        runuser.args(["-u", "postgres", "--", "sh", "-c", SUPERVISOR, "sh"]);
        runuser
    } else {
        let mut sh = Command::new("sh");
        sh.args(["-c", SUPERVISOR, "sh"]);
        sh
    };
    let mut supervisor = command
        .arg(&bin)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting a throwaway PostgreSQL: {e}"))?;
    let lifeline = supervisor.stdin.take().unwrap();
    let stdout = supervisor.stdout.take().unwrap();
    let started = Instant::now();
    let mut line = String::new();
    let password = BufReader::new(stdout)
        .read_line(&mut line)
        .ok()
        .and_then(|_| line.trim().strip_prefix("ready "))
        .map(str::to_owned);
    let Some(password) = password else {
        let mut errors = String::new();
        if let Some(mut stderr) = supervisor.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut stderr, &mut errors);
        }
        let _ = supervisor.wait();
        return Err(format!(
            "the throwaway PostgreSQL ({}) did not start{}: {}",
            bin.display(),
            if root { " as the postgres user" } else { "" },
            errors.trim()
        ));
    };
    eprintln!(
        "throwaway PostgreSQL on 127.0.0.1:{port} ({}, ready in {:.1?})",
        bin.display(),
        started.elapsed()
    );
    Ok(Server {
        url: format!("postgres://warden:{password}@127.0.0.1:{port}/postgres"),
        _supervisor: supervisor,
        _lifeline: lifeline,
    })
}
