//! Secrets as users handle them: `warden run --secret` for a local run, and
//! `warden secret set` (from standard input) for a release the server runs;
//! the value never appears in the server's output, its data directory
//! (besides the key file) or any command's output other than the plugin's
//! own answer.

mod common;

use common::{keygen, ok, publisher_and_approver, remote, stderr, stdout, warden};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use warden_test_programs as guests;

const VALUE: &str = "s3cret-cli-value-7d2e";

#[test]
fn warden_run_reads_secrets_from_flags_and_files() {
    let output = warden(&[
        "run",
        guests::KEEPER,
        "greet",
        "\"ada\"",
        "--grant",
        "secret:GREETING",
        "--secret",
        "GREETING=hi",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "\"hi, ada\"");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secrets.env");
    std::fs::write(&file, "# for the keeper\n\nGREETING=hey there\n").unwrap();
    let output = warden(&[
        "run",
        guests::KEEPER,
        "greet",
        "\"ada\"",
        "--grant",
        "secret:GREETING",
        "--secret-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "\"hey there, ada\"");

    // Not granted: refused by name before it runs.
    let output = warden(&[
        "run",
        guests::KEEPER,
        "greet",
        "\"ada\"",
        "--secret",
        "GREETING=hi",
    ]);
    assert_ne!(output.status.code(), Some(0));
    assert!(stderr(&output).contains("secrets"), "{}", stderr(&output));
    // A malformed --secret names the flag, never the text it was given.
    let output = warden(&[
        "run",
        guests::KEEPER,
        "greet",
        "\"ada\"",
        "--grant",
        "secret:GREETING",
        "--secret",
        VALUE,
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(!stderr(&output).contains(VALUE), "{}", stderr(&output));
}

#[test]
fn a_secret_set_with_the_cli_reaches_the_release_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (work, data) = (dir.path(), dir.path().join("data"));
    keygen(work, "bob.key");
    let alice = keygen(work, "alice.key");
    let log = std::fs::File::create(work.join("server.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--admin-key")
        .arg(work.join("bob.key"))
        .env("WARDEN_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let url = loop {
        let line = lines.next().expect("warden serve exited").unwrap();
        if let Some(rest) = line.strip_prefix("warden listening on ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
        printed.push(line);
    };
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let admin = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let run = |token: &str, args: &[&str]| remote(&url, token, work, args).output().unwrap();
    let publisher = publisher_and_approver(&url, &admin, work, &alice);
    std::fs::write(
        work.join("warden.toml"),
        format!(
            "name = \"acme/keeper\"\nversion = \"1.0.0\"\ncomponent = \"{}\"\ncapabilities = [\"secret:GREETING\"]\n",
            guests::KEEPER
        ),
    )
    .unwrap();
    ok(run(&publisher, &["publish", "--key", "alice.key"]));
    let review = ok(run(&admin, &["release", "show", "acme/keeper@1.0.0"]));
    assert!(review.contains("secret:GREETING"), "{review}");
    ok(run(
        &admin,
        &["approve", "acme/keeper@1.0.0", "--key", "bob.key"],
    ));

    // Set from standard input, never the command line.
    let mut set = remote(
        &url,
        &admin,
        work,
        &["secret", "set", "acme/keeper", "GREETING"],
    )
    .stdin(Stdio::piped())
    .spawn()
    .unwrap();
    set.stdin
        .take()
        .unwrap()
        .write_all(format!("{VALUE}\n").as_bytes())
        .unwrap();
    let set = set.wait_with_output().unwrap();
    let said = ok(set);
    assert!(said.contains("GREETING") && !said.contains(VALUE), "{said}");

    let invoked = ok(run(&admin, &["invoke", "acme/keeper", "greet", "\"ada\""]));
    assert_eq!(invoked.trim(), format!("\"{VALUE}, ada\""));
    let listed = ok(run(&admin, &["secret", "list", "acme/keeper"]));
    assert!(
        listed.contains("GREETING") && !listed.contains(VALUE),
        "{listed}"
    );
    let listed = ok(run(&admin, &["secret", "list", "acme/keeper", "--json"]));
    assert!(!listed.contains(VALUE), "{listed}");
    let audit = ok(run(&admin, &["audit", "--json"]));
    assert!(
        audit.contains("secret.set") && !audit.contains(VALUE),
        "{audit}"
    );
    ok(run(
        &admin,
        &["secret", "remove", "acme/keeper", "GREETING"],
    ));
    let invoked = ok(run(&admin, &["invoke", "acme/keeper", "greet", "\"ada\""]));
    assert_eq!(invoked.trim(), "\"hello, ada\"");

    let _ = child.kill();
    let _ = child.wait();
    printed.extend(drain.join().unwrap());
    let mut logged = String::new();
    std::fs::File::open(work.join("server.log"))
        .unwrap()
        .read_to_string(&mut logged)
        .unwrap();
    assert!(
        !logged.is_empty(),
        "the server logged nothing at debug level"
    );
    assert!(!logged.contains(VALUE), "the server's log holds the value");
    assert!(
        !printed.join("\n").contains(VALUE),
        "the server printed the value"
    );
    assert_nowhere_in(&data, &data.join("secrets.key"));
}

/// No file under `dir` but `except` holds [`VALUE`].
fn assert_nowhere_in(dir: &Path, except: &Path) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            assert_nowhere_in(&path, except);
        } else if path != except {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()),
                "{} holds the value",
                path.display()
            );
        }
    }
}
