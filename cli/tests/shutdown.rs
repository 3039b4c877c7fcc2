//! `warden serve` stopping: on SIGTERM the listener closes at once (a new
//! connection is refused, not kept waiting), the calls in flight all
//! finish with their answers, and the process exits 0.

mod common;

use common::{Server, keygen, ok, publisher_and_approver, remote};
use std::time::{Duration, Instant};
use warden_test_programs as guests;

/// Calls in flight when the signal comes.
const IN_FLIGHT: usize = 50;

#[test]
fn sigterm_lets_calls_in_flight_finish_and_refuses_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    keygen(work, "bob.key");
    let alice = keygen(work, "alice.key");
    let data = work.join("data");
    let mut server = Server::start([
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--admin-key".as_ref(),
        work.join("bob.key").as_os_str(),
        "--org-share".as_ref(),
        "64".as_ref(),
        "--shutdown-grace".as_ref(),
        std::ffi::OsStr::new("20s"),
    ]);
    let admin = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let publisher = publisher_and_approver(&server.url, &admin, work, &alice);
    std::fs::write(
        work.join("warden.toml"),
        format!(
            "name = \"acme/sleeper\"\nversion = \"1.0.0\"\ncomponent = \"{}\"\ncapabilities = []\n\n[limits]\nconcurrency = 64\ntimeout = \"10s\"\n",
            guests::HOSTILE
        ),
    )
    .unwrap();
    let run =
        |token: &str, args: &[&str]| ok(remote(&server.url, token, work, args).output().unwrap());
    run(&publisher, &["publish", "--key", "alice.key"]);
    run(
        &admin,
        &["approve", "acme/sleeper@1.0.0", "--key", "bob.key"],
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/v1/plugins/acme/sleeper/invoke/sleep", server.url);
    // Warm: the first call compiles.
    runtime.block_on(async {
        let warm = client
            .post(&url)
            .bearer_auth(&admin)
            .json(&serde_json::json!({ "args": 1 }))
            .send()
            .await
            .unwrap();
        assert_eq!(warm.status(), 200);
    });
    let calls: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (client, url, admin) = (client.clone(), url.clone(), admin.clone());
            runtime.spawn(async move {
                client
                    .post(&url)
                    .bearer_auth(&admin)
                    .json(&serde_json::json!({ "args": 1500 }))
                    .send()
                    .await
                    .map(|answer| answer.status().as_u16())
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    // An event stream is open too: it ends when the server stops (its
    // client resumes elsewhere) instead of holding the server to the end of
    // its grace period.
    let stream = runtime.block_on(async {
        client
            .get(format!("{}/v1/orgs/acme/events", server.url))
            .bearer_auth(&admin)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap()
    });
    assert_eq!(stream.status(), 200);
    let stream_end = runtime.spawn(async move {
        let mut stream = stream;
        while let Ok(Some(_)) = stream.chunk().await {}
    });
    // All 50 are running when the signal comes (each sleeps 1.5 s).
    std::thread::sleep(Duration::from_millis(700));
    let signalled = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // The listener closes at once: a new connection is refused.
    let address = server.url.trim_start_matches("http://").to_owned();
    loop {
        match std::net::TcpStream::connect_timeout(
            &address.parse().unwrap(),
            Duration::from_secs(1),
        ) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            _ if signalled.elapsed() > Duration::from_secs(1) => {
                panic!("still accepting connections 1 s after SIGTERM")
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let statuses: Vec<Result<u16, String>> = runtime.block_on(async {
        let mut statuses = Vec::new();
        for call in calls {
            statuses.push(call.await.unwrap());
        }
        statuses
    });
    assert!(
        statuses.iter().all(|status| status == &Ok(200)),
        "every call in flight answered: {statuses:?}"
    );
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), stream_end)
            .await
            .expect("the event stream ended")
            .unwrap();
    });
    // Nothing is left to wait for: it exits well before the 20 s grace.
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("exited once the calls were answered");
    assert!(status.success(), "exit status {status:?}");
}
