//! Webhooks as an operator and an admin set them up: `warden serve
//! --webhook-allow-cidr 127.0.0.0/8 --webhook-allow-http`, `warden webhook
//! add` pointing at a local receiver, then a publish and an approval reach
//! it signed; `warden webhook test|deliveries` report; and an event whose
//! delivery a SIGKILL interrupted is delivered after the restart.

mod common;

use common::{Server, database, keygen, ok, publisher_and_approver, remote};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warden_test_programs as guests;

/// One POST the receiver got: its headers (lower-case names) and body.
#[derive(Clone, Debug)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// A plain HTTP/1.1 receiver on `listener` that answers 200 to every POST.
fn receive(listener: TcpListener) -> Arc<Mutex<Vec<Received>>> {
    receive_slowly(listener, Duration::ZERO)
}

/// [`receive`], taking `pause` over each answer.
fn receive_slowly(listener: TcpListener, pause: Duration) -> Arc<Mutex<Vec<Received>>> {
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let store = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
                }
            }
            let length: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            store.lock().unwrap().push(Received { headers, body });
            std::thread::sleep(pause);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    got
}

fn wait_for(got: &Mutex<Vec<Received>>, n: usize, within: Duration) -> Vec<Received> {
    let deadline = Instant::now() + within;
    loop {
        let now = got.lock().unwrap().clone();
        if now.len() >= n {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} deliveries within {within:?}",
            now.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_publish_and_an_approval_reach_a_receiver_signed_and_a_crash_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (work, data) = (dir.path(), dir.path().join("data"));
    keygen(work, "bob.key");
    let alice = keygen(work, "alice.key");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = receive(listener);
    let serve_args = [
        "--data-dir".to_owned(),
        data.display().to_string(),
        "--admin-key".to_owned(),
        work.join("bob.key").display().to_string(),
        "--webhook-allow-cidr".to_owned(),
        "127.0.0.0/8".to_owned(),
        "--webhook-allow-http".to_owned(),
    ];
    let server = Server::start(&serve_args);
    let admin = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let run =
        |url: &str, token: &str, args: &[&str]| remote(url, token, work, args).output().unwrap();
    let url = server.url.clone();
    let added = ok(run(
        &url,
        &admin,
        &[
            "webhook",
            "add",
            &format!("http://127.0.0.1:{port}/hook"),
            "--event",
            "release.published",
            "--event",
            "release.approved",
            "--event",
            "token.created",
            "--json",
        ],
    ));
    let added: Value = serde_json::from_str(&added).unwrap();
    let id = added["id"].as_str().unwrap().to_owned();
    assert!(
        added["signing_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );

    let publisher = publisher_and_approver(&url, &admin, work, &alice);
    std::fs::write(
        work.join("warden.toml"),
        format!(
            "name = \"acme/hello\"\nversion = \"1.0.0\"\ncomponent = \"{}\"\n",
            guests::HELLO
        ),
    )
    .unwrap();
    ok(run(&url, &publisher, &["publish", "--key", "alice.key"]));
    ok(run(
        &url,
        &admin,
        &["approve", "acme/hello@1.0.0", "--key", "bob.key"],
    ));
    let received = wait_for(&got, 3, Duration::from_secs(30));
    let types: Vec<String> = received
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        types,
        ["token.created", "release.published", "release.approved"]
    );
    for r in &received {
        assert!(r.header("webhook-signature").starts_with("v1,"), "{r:?}");
        assert!(!r.header("webhook-id").is_empty());
    }
    let log = ok(run(&url, &admin, &["webhook", "deliveries", &id]));
    assert_eq!(log.matches("Delivered").count(), 3, "{log}");
    let shown = ok(run(&url, &admin, &["webhook", "show", &id]));
    assert!(shown.contains("state       enabled"), "{shown}");
    let tested = ok(run(&url, &admin, &["webhook", "test", &id]));
    assert!(tested.starts_with("delivered: 200"), "{tested}");

    // The receiver goes away, a change commits, its delivery fails, and the
    // server is killed before any retry: after the restart it arrives.
    let before = got.lock().unwrap().len();
    drop(got);
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    drop(silent);
    ok(run(
        &url,
        &admin,
        &[
            "webhook",
            "update",
            &id,
            "--target",
            &format!("http://127.0.0.1:{silent_port}/hook"),
        ],
    ));
    ok(run(
        &url,
        &admin,
        &["token", "create", "--name", "late", "--role", "viewer"],
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = ok(run(&url, &admin, &["webhook", "deliveries", &id, "--json"]));
        let log: Value = serde_json::from_str(&log).unwrap();
        if log["attempts"][0]["outcome"] == "failed" {
            assert_eq!(log["attempts"][0]["error"], "connect", "{log}");
            break;
        }
        assert!(Instant::now() < deadline, "{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(server); // SIGKILL
    let back = TcpListener::bind(("127.0.0.1", silent_port)).unwrap();
    let got = receive(back);
    let server = Server::start(&serve_args);
    let received = wait_for(&got, 1, Duration::from_secs(90));
    let event: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(event["type"], "token.created");
    assert_eq!(
        received[0].header("webhook-id"),
        event["id"].as_str().unwrap()
    );
    assert!(before >= 3);
    drop(server);
}

/// Two replicas on one PostgreSQL database deliver to one endpoint while
/// each is killed (SIGKILL) in turn mid-way: every event arrives, and an
/// event that arrives twice is the same event with the same `webhook-id`.
#[test]
fn replicas_killed_mid_way_lose_no_event() {
    if std::env::var("WARDEN_TEST_POSTGRES").as_deref() == Ok("skip") {
        eprintln!("WARDEN_TEST_POSTGRES=skip: not running the two-replica test");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (work, data) = (dir.path(), dir.path().join("data"));
    keygen(work, "bob.key");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = receive_slowly(listener, Duration::from_millis(10));
    let database = database();
    let args = [
        "--data-dir".to_owned(),
        data.display().to_string(),
        "--database-url".to_owned(),
        database,
        "--admin-key".to_owned(),
        work.join("bob.key").display().to_string(),
        "--webhook-allow-cidr".to_owned(),
        "127.0.0.0/8".to_owned(),
        "--webhook-allow-http".to_owned(),
    ];
    let a = Server::start(&args);
    let b = Server::start(&args);
    let admin = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    ok(remote(
        &a.url,
        &admin,
        work,
        &[
            "webhook",
            "add",
            &format!("http://127.0.0.1:{port}/hook"),
            "--event",
            "token.created",
        ],
    )
    .output()
    .unwrap());
    let events = 300;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let create = |url: &str, n: usize| {
        let (url, admin) = (url.to_owned(), admin.clone());
        runtime.block_on(async move {
            let client = reqwest::Client::new();
            for i in 0..n {
                let answer = client
                    .post(format!("{url}/v1/orgs/acme/tokens"))
                    .bearer_auth(&admin)
                    .json(&serde_json::json!({ "name": format!("t{i}"), "role": "viewer" }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(answer.status(), 201);
            }
        })
    };
    create(&a.url, events);
    // Killed one after the other while deliveries are under way; a new
    // replica takes the killed one's place.
    wait_for(&got, events / 3, Duration::from_secs(60));
    drop(b);
    let b = Server::start(&args);
    wait_for(&got, 2 * events / 3, Duration::from_secs(90));
    drop(a);
    // Every event, however many deliveries that takes.
    let deadline = Instant::now() + Duration::from_secs(120);
    let received = loop {
        let received = got.lock().unwrap().clone();
        let ids: std::collections::HashSet<&str> =
            received.iter().map(|r| r.header("webhook-id")).collect();
        if ids.len() >= events {
            break received;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {events} events arrived",
            ids.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut bodies: std::collections::HashMap<String, Vec<u8>> = std::collections::HashMap::new();
    for r in &received {
        let id = r.header("webhook-id").to_owned();
        if let Some(body) = bodies.get(&id) {
            assert_eq!(body, &r.body, "{id} sent twice with different bodies");
        }
        bodies.insert(id, r.body.clone());
    }
    let created: usize = bodies
        .values()
        .filter(|body| serde_json::from_slice::<Value>(body).unwrap()["type"] == "token.created")
        .count();
    assert_eq!(created, events, "every event arrived");
    eprintln!(
        "{} deliveries for {} events ({} repeated after a kill)",
        received.len(),
        bodies.len(),
        received.len() - bodies.len()
    );
    drop(b);
}
