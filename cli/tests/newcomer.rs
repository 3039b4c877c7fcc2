//! The README's newcomer flow, with the real binary: `warden serve`, register
//! keys, publish the hello example, see it pending, approve it, see it approved
//! in the catalog, verify the audit chain (and see an edit caught).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use warden_test_programs as guests;

struct Server {
    child: Child,
    url: String,
    /// What it printed before it was ready.
    output: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &Path, admin_key: &Path) -> Server {
    serve_with(data, admin_key, &[])
}

fn serve_with(data: &Path, admin_key: &Path, extra: &[&str]) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warden"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .arg("--admin-key")
        .arg(admin_key)
        .args(extra);
    start(&mut command, "warden listening on ")
}

/// Spawns `command` and reads its stdout until a line starts with `ready`,
/// whose next word is the server's URL.
fn start(command: &mut Command, ready: &str) -> Server {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting warden");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut output = Vec::new();
    loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("warden exited before it was ready; it printed {output:?}");
        };
        if let Some(rest) = line.strip_prefix(ready) {
            let url = rest.split_whitespace().next().unwrap().to_owned();
            // Keep draining stdout so the server never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return Server { child, url, output };
        }
        output.push(line);
    }
}

fn first_start_banner(server: &Server) -> bool {
    server
        .output
        .iter()
        .any(|line| line.starts_with("First start"))
}

fn warden(server: &Server, token: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .current_dir(dir)
        .env("WARDEN_URL", &server.url)
        .env("WARDEN_TOKEN", token)
        .output()
        .expect("running warden")
}

#[track_caller]
fn ok(output: Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn newcomer_publishes_approves_and_finds_hello_in_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let data = work.join("warden-data");
    // The admin's key exists first: the server pins it for running releases.
    let keygen = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["keygen", "--out", "bob.key"])
        .current_dir(work)
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let server = serve(&data, &work.join("bob.key"));
    assert!(first_start_banner(&server));
    let admin = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let run = |token: &str, args: &[&str]| warden(&server, token, work, args);

    let publisher_key = ok(run(&admin, &["keygen", "--out", "alice.key"]))
        .trim()
        .to_owned();
    ok(run(
        &admin,
        &[
            "key",
            "add",
            &publisher_key,
            "--kind",
            "publisher",
            "--owner",
            "alice",
        ],
    ));
    ok(run(
        &admin,
        &["key", "add", "bob.key", "--kind", "admin", "--owner", "bob"],
    ));
    let publisher = ok(run(
        &admin,
        &["token", "create", "--name", "ci", "--role", "publisher"],
    ))
    .trim()
    .to_owned();

    std::fs::write(
        work.join("warden.toml"),
        format!(
            "name = \"acme/hello\"\nversion = \"0.1.0\"\ndescription = \"Greets by name\"\ncomponent = \"{}\"\n\n[limits]\nmemory = \"16MiB\"\n",
            guests::HELLO
        ),
    )
    .unwrap();
    let published = ok(run(&publisher, &["publish", "--key", "alice.key"]));
    assert!(
        published.contains("published acme/hello@0.1.0"),
        "{published}"
    );
    // Publishing it again is refused: versions are immutable.
    let again = run(&publisher, &["publish", "--key", "alice.key"]);
    assert_eq!(again.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&again.stderr).contains("version_exists"));

    let pending = ok(run(&admin, &["release", "list", "--pending"]));
    assert!(
        pending.contains("acme/hello@0.1.0") && pending.contains("pending"),
        "{pending}"
    );
    let shown = ok(run(&admin, &["release", "show", "acme/hello@0.1.0"]));
    assert!(
        shown.contains("greet: func(name: string) -> string"),
        "{shown}"
    );
    assert!(shown.contains("(alice)"), "{shown}");
    // The requested limits, and where they differ from the defaults.
    assert!(
        shown.contains("* memory") && shown.contains("16 MiB  (default 64 MiB)"),
        "{shown}"
    );

    // The publisher cannot approve (role), the admin can.
    let denied = run(
        &publisher,
        &["approve", "acme/hello@0.1.0", "--key", "bob.key"],
    );
    assert_eq!(denied.status.code(), Some(7));
    let approved = ok(run(
        &admin,
        &["approve", "acme/hello@0.1.0", "--key", "bob.key"],
    ));
    assert!(approved.contains("approved"), "{approved}");

    let catalog = ok(run(&publisher, &["catalog", "list"]));
    assert!(
        catalog.contains("acme/hello") && catalog.contains("0.1.0"),
        "{catalog}"
    );
    // The portal's role runs it.
    let portal = ok(run(
        &admin,
        &["token", "create", "--name", "portal", "--role", "invoker"],
    ))
    .trim()
    .to_owned();
    let greeting = ok(run(
        &portal,
        &["invoke", "acme/hello", "greet", "\"world\""],
    ));
    assert_eq!(greeting.trim(), "\"Hello, world!\"");
    let unknown = run(&portal, &["invoke", "acme/hello", "shout", "[]"]);
    assert_eq!(unknown.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown_function"));

    let verified = ok(run(&admin, &["audit", "verify"]));
    // Org, two tokens, two keys, two manifest pushes (the second publish
    // was refused, its push is still recorded), publish, approve.
    assert!(verified.contains("verified: 9 entries"), "{verified}");

    // A restart keeps everything and does not bootstrap again.
    drop(server);
    let server = serve(&data, &work.join("bob.key"));
    assert!(!first_start_banner(&server));
    let run = |token: &str, args: &[&str]| warden(&server, token, work, args);
    let catalog = ok(run(&admin, &["catalog", "list", "--json"]));
    let catalog: serde_json::Value = serde_json::from_str(&catalog).unwrap();
    assert_eq!(catalog[0]["latest_approved"], "0.1.0");

    // Someone edits the audit log in the database: verify says so.
    let status = Command::new("sqlite3").arg("--version").output();
    let edited = if status.is_ok() {
        Command::new("sqlite3")
            .arg(data.join("warden.db"))
            .arg("UPDATE audit SET target = 'acme/evil@6.6.6' WHERE seq = 5")
            .status()
            .unwrap()
            .success()
    } else {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            use sqlx::Connection;
            let url = format!("sqlite://{}", data.join("warden.db").display());
            let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query("UPDATE audit SET target = 'acme/evil@6.6.6' WHERE seq = 5")
                .execute(&mut db)
                .await
                .unwrap();
            true
        })
    };
    assert!(edited);
    let broken = run(&admin, &["audit", "verify"]);
    assert_eq!(broken.status.code(), Some(8));
    assert!(
        String::from_utf8_lossy(&broken.stderr).contains("entry 5 does not match its hash"),
        "{}",
        String::from_utf8_lossy(&broken.stderr)
    );

    // SIGTERM: the server finishes what is in flight and exits cleanly.
    let mut server = server;
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = server.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");
}

#[test]
fn commands_without_a_server_or_token_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let no_token = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["release", "list"])
        .env_remove("WARDEN_TOKEN")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(no_token.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("no API token"));

    let unreachable = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "release",
            "list",
            "--url",
            "http://127.0.0.1:9",
            "--token",
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(69));
    assert!(
        String::from_utf8_lossy(&unreachable.stderr).contains("cannot reach the Warden server")
    );

    std::fs::write(
        dir.path().join("warden.toml"),
        "name = \"acme/x\"\nversion = \"1\"\ncomponent = \"x.wasm\"\nflavour = 1\n",
    )
    .unwrap();
    let bad_manifest = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["publish", "--key", "k", "--token", "x"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(bad_manifest.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&bad_manifest.stderr).contains("unknown field `flavour`"),
        "{}",
        String::from_utf8_lossy(&bad_manifest.stderr)
    );
}

#[test]
fn demo_serves_the_examples_approved_and_ready_to_invoke() {
    let dir = tempfile::tempdir().unwrap();
    let components = Path::new(guests::HELLO).parent().unwrap();
    let server = start(
        Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("demo"))
            .arg("--components")
            .arg(components),
        "Warden is running at ",
    );
    let approved: Vec<&str> = server
        .output
        .iter()
        .filter(|line| line.starts_with("  ") && line.trim_end().ends_with("approved"))
        .map(|line| line.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        approved,
        [
            "acme/hello@0.1.0",
            "acme/text-tools@0.1.0",
            "acme/word-report@0.1.0",
            "acme/counter@0.1.0",
            "acme/http-fetch@0.1.0"
        ]
    );
    let portal = std::fs::read_to_string(dir.path().join("demo/portal-token"))
        .unwrap()
        .trim()
        .to_owned();
    let run = |args: &[&str]| warden(&server, &portal, dir.path(), args);
    assert_eq!(
        ok(run(&["invoke", "acme/hello", "greet", "\"world\""])).trim(),
        "\"Hello, world!\""
    );
    // One release waits for review: the next http-fetch, with one more
    // host and a longer timeout than the approved one.
    assert!(
        server
            .output
            .iter()
            .any(|line| line.trim() == "acme/http-fetch@0.2.0        waiting for review"),
        "{:?}",
        server.output
    );
    let admin = std::fs::read_to_string(dir.path().join("demo/admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let proposed: serde_json::Value = serde_json::from_str(&ok(warden(
        &server,
        &admin,
        dir.path(),
        &["release", "show", "acme/http-fetch@0.2.0", "--json"],
    )))
    .unwrap();
    assert_eq!(proposed["status"], "pending");
    assert_eq!(proposed["diff"]["against"], "0.1.0");
    assert_eq!(
        proposed["diff"]["added"],
        serde_json::json!(["http:api.example.org"])
    );
    assert_eq!(proposed["requested_limits"]["timeout"], 10_000);
    assert_eq!(proposed["previous_limits"]["timeout"], 5_000);
    let review = ok(warden(
        &server,
        &admin,
        dir.path(),
        &["release", "show", "acme/http-fetch@0.2.0"],
    ));
    for line in [
        "against 0.1.0: added [], removed [], changed []",
        "against 0.1.0 (last approved): added [http:api.example.org], removed []",
    ] {
        assert!(review.contains(line), "{review}");
    }
    assert_eq!(
        ok(run(&[
            "invoke",
            "acme/counter",
            "increment",
            "[\"visits\", 2]"
        ]))
        .trim(),
        "2"
    );
    // An invocation that crosses a dependency link: word-report calls
    // text-tools, linked at run time.
    let report: serde_json::Value = serde_json::from_str(&ok(run(&[
        "invoke",
        "acme/word-report",
        "summarize",
        "\"hello big world\\nthe world is big, the world is round\"",
        "--json",
    ])))
    .unwrap();
    assert_eq!(report["result"]["title"], "Hello Big World");
    assert_eq!(report["result"]["slug"], "hello-big-world");
    assert_eq!(report["result"]["words"], 11);
    assert_eq!(
        report["result"]["top-words"][0],
        serde_json::json!(["world", 3])
    );
    assert_eq!(report["dependencies"][0]["name"], "acme/text-tools");
    assert_eq!(report["dependencies"][0]["version"], "0.1.0");
    let resolved = ok(run(&["resolve", "acme/word-report"]));
    assert!(
        resolved.contains("acme/word-report 0.1.0")
            && resolved.contains("uses      acme/text-tools 0.1.0"),
        "{resolved}"
    );
    let slug = run(&["invoke", "acme/text-tools", "text.slugify", "[\"!!!\", {}]"]);
    assert_eq!(
        slug.status.code(),
        Some(1),
        "the plugin's own error is exit 1"
    );

    // The portal examples run against it.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let shell = Command::new("sh")
        .arg(root.join("examples/portal/portal.sh"))
        .env("WARDEN_URL", &server.url)
        .env("WARDEN_TOKEN", &portal)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&shell.stdout);
    assert!(
        shell.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&shell.stderr)
    );
    assert!(
        out.contains("\"words\":4") && out.contains("bad_argument"),
        "{out}"
    );
    match Command::new("node").arg("--version").output() {
        Ok(version) if version.status.success() => {
            let node = Command::new("node")
                .arg(root.join("examples/portal/client.mjs"))
                .env("WARDEN_URL", &server.url)
                .env("WARDEN_TOKEN", &portal)
                .output()
                .unwrap();
            let out = String::from_utf8_lossy(&node.stdout);
            assert!(
                node.status.success(),
                "{out}\n{}",
                String::from_utf8_lossy(&node.stderr)
            );
            assert!(
                out.contains("the plugin said:") && out.contains("acme/text-tools@0.1.0"),
                "{out}"
            );
        }
        _ => eprintln!("node is not installed: examples/portal/client.mjs not exercised"),
    }
    // The Rust client (cli/examples/portal_client.rs, built by cargo test).
    let examples = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples");
    let binary = examples.join("portal_client");
    assert!(
        binary.exists(),
        "{} is missing: `cargo test` builds examples unless targets are filtered (cargo build -p warden --example portal_client)",
        binary.display()
    );
    let client = Command::new(binary)
        .env("WARDEN_URL", &server.url)
        .env("WARDEN_TOKEN", &portal)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&client.stdout);
    assert!(
        client.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&client.stderr)
    );
    assert!(
        out.contains("the plugin said: \"nothing usable")
            && out.contains("from acme/text-tools@0.1.0"),
        "{out}"
    );
}

#[test]
fn publishing_to_an_external_registry_and_running_from_it() {
    let registry = guests::Distribution::start();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let keygen = |name: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["keygen", "--out", name])
            .current_dir(work)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    keygen("bob.key");
    let alice = keygen("alice.key");
    let external = [
        "--registry",
        registry.address.as_str(),
        "--registry-insecure",
    ];
    let server = serve_with(&work.join("data"), &work.join("bob.key"), &external);
    let admin = std::fs::read_to_string(work.join("data/admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let run = |token: &str, args: &[&str]| warden(&server, token, work, args);
    ok(run(
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
        &admin,
        &["key", "add", "bob.key", "--kind", "admin", "--owner", "bob"],
    ));
    let publisher = ok(run(
        &admin,
        &["token", "create", "--name", "ci", "--role", "publisher"],
    ))
    .trim()
    .to_owned();
    std::fs::write(
        work.join("warden.toml"),
        format!(
            "name = \"acme/hello\"\nversion = \"2.0.0\"\ncomponent = \"{}\"\n",
            guests::HELLO
        ),
    )
    .unwrap();

    // Pushed to the Warden server's own registry instead, the server does not find it.
    let wrong_place = run(&publisher, &["publish", "--key", "alice.key"]);
    assert_eq!(wrong_place.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&wrong_place.stderr).contains("manifest_unknown"),
        "{}",
        String::from_utf8_lossy(&wrong_place.stderr)
    );

    let mut publish = vec!["publish", "--key", "alice.key"];
    publish.extend(external);
    ok(run(&publisher, &publish));
    // The version tag is in the external registry.
    let tags = Command::new("curl")
        .args([
            "-s",
            &format!("http://{}/v2/acme/hello/tags/list", registry.address),
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&tags.stdout).contains("2.0.0"),
        "{}",
        String::from_utf8_lossy(&tags.stdout)
    );
    let tagged = || {
        let head = Command::new("curl")
            .args([
                "-sI",
                "-H",
                "accept: application/vnd.oci.image.manifest.v1+json",
                &format!("http://{}/v2/acme/hello/manifests/2.0.0", registry.address),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&head.stdout)
            .lines()
            .find_map(|line| {
                line.to_ascii_lowercase()
                    .strip_prefix("docker-content-digest:")
                    .map(|d| d.trim().to_owned())
            })
            .expect("the tag names a manifest")
    };
    let winner = tagged();
    // A second publish of 2.0.0 with other content is refused, and its push
    // (by digest) leaves the tag with the release that was registered.
    std::fs::write(
        work.join("warden.toml"),
        format!(
            "name = \"acme/hello\"\nversion = \"2.0.0\"\ncomponent = \"{}\"\n",
            guests::TEXT_TOOLS
        ),
    )
    .unwrap();
    let loser = run(&publisher, &publish);
    assert!(
        String::from_utf8_lossy(&loser.stderr).contains("version_exists"),
        "{}",
        String::from_utf8_lossy(&loser.stderr)
    );
    assert_eq!(tagged(), winner, "a refused publish moved the version tag");
    ok(run(
        &admin,
        &["approve", "acme/hello@2.0.0", "--key", "bob.key"],
    ));
    let greeting = ok(run(
        &admin,
        &["invoke", "acme/hello", "greet", "\"registry\""],
    ));
    assert_eq!(greeting.trim(), "\"Hello, registry!\"");
}

#[test]
fn demo_restarts_reuse_their_portal_token_and_make_no_lasting_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let components = Path::new(guests::HELLO).parent().unwrap();
    let demo = || {
        start(
            Command::new(env!("CARGO_BIN_EXE_warden"))
                .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
                .arg(dir.path().join("demo"))
                .arg("--components")
                .arg(components),
            "Warden is running at ",
        )
    };
    let tokens = |server: &Server| {
        let admin = std::fs::read_to_string(dir.path().join("demo/admin-token"))
            .unwrap()
            .trim()
            .to_owned();
        let listed = ok(warden(
            server,
            &admin,
            dir.path(),
            &["token", "list", "--json"],
        ));
        let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
        listed.as_array().unwrap().clone()
    };
    let first = demo();
    let portal_path = dir.path().join("demo/portal-token");
    let portal = std::fs::read_to_string(&portal_path).unwrap();
    let before = tokens(&first);
    drop(first);
    let second = demo();
    assert_eq!(
        std::fs::read_to_string(&portal_path).unwrap(),
        portal,
        "the portal token is kept"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&portal_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Nothing needed publishing the second time: no new token at all.
    assert_eq!(tokens(&second).len(), before.len());
    // The publisher token of the first start expires.
    assert!(
        before
            .iter()
            .filter(|t| t["role"] == "publisher")
            .all(|t| t["expires_at"].is_i64()),
        "{before:?}"
    );
}
