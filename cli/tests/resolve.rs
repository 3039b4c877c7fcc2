//! `warden resolve` and `warden release show` against a real server:
//! dependencies declared in warden.toml, published and approved with the
//! CLI, resolved to a set of releases, or explained when they cannot be.

mod common;

use common::{Server, keygen, ok, publisher_and_approver, remote};
use std::ffi::OsStr;
use std::path::Path;
use std::process::Output;
use warden_test_programs as guests;

fn run(server: &Server, token: &str, dir: &Path, args: &[&str]) -> Output {
    remote(&server.url, token, dir, args).output().unwrap()
}

#[test]
fn resolve_shows_the_set_or_why_there_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let (work, data) = (dir.path(), dir.path().join("data"));
    keygen(work, "bob.key");
    let alice = keygen(work, "alice.key");
    let server = Server::start([
        AsRef::<OsStr>::as_ref("--data-dir"),
        data.as_os_str(),
        "--admin-key".as_ref(),
        work.join("bob.key").as_os_str(),
    ]);
    let admin = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let publisher = publisher_and_approver(&server.url, &admin, work, &alice);
    let publish = |name: &str, version: &str, dependencies: &str, approve: bool| {
        std::fs::write(
            work.join("warden.toml"),
            format!(
                "name = \"{name}\"\nversion = \"{version}\"\ncomponent = \"{}\"\ncapabilities = []\n\n[dependencies]\n{dependencies}\n",
                guests::HELLO
            ),
        )
        .unwrap();
        ok(run(
            &server,
            &publisher,
            work,
            &["publish", "--key", "alice.key"],
        ));
        if approve {
            ok(run(
                &server,
                &admin,
                work,
                &["approve", &format!("{name}@{version}"), "--key", "bob.key"],
            ));
        }
    };
    publish("acme/base", "1.0.0", "", true);
    publish("acme/base", "1.4.0", "", true);
    publish("acme/app", "1.0.0", "\"acme/base\" = \"^1.2\"", true);

    let shown = ok(run(&server, &admin, work, &["resolve", "acme/app"]));
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines[0], "acme/app 1.0.0", "{shown}");
    assert!(lines.contains(&"  uses      acme/base 1.4.0"), "{shown}");
    assert!(lines.contains(&"acme/base 1.4.0"), "{shown}");
    // The admin's review shows what a dependency resolves to now.
    publish("acme/tool", "2.0.0", "\"acme/base\" = \"~1.0\"", false);
    let review = ok(run(
        &server,
        &admin,
        work,
        &["release", "show", "acme/tool@2.0.0"],
    ));
    assert!(review.contains("  acme/base ~1.0 -> 1.0.0 now"), "{review}");

    // Nothing satisfies ^2: the explanation, and the exit code of refused input.
    let failed = run(&server, &admin, work, &["resolve", "acme/app@^2"]);
    assert_eq!(failed.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(
        stderr.trim_end(),
        "acme/app@^2 cannot be resolved:\n  \
         The request is for acme/app ^2, and no approved release of acme/app matches it.\n  \
         So no set of approved releases satisfies acme/app ^2."
    );
}
