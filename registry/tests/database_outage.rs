//! PostgreSQL going away under a running server, and coming back: while it
//! is away `/readyz` is 503 and requests that need it are answered 503
//! `database_unavailable` at once (not after waiting for a connection);
//! when it is back the same server serves again, without a restart.
//!
//! The outage is made by a TCP relay between the server and PostgreSQL
//! whose port closes while it is "down": open connections end and new ones
//! are refused, as with a stopped or restarting server.

mod common;

use common::{Backend, org_on, start_tweaked};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use warden_host::Limits;
use warden_test_programs::HELLO;

/// A relay to `target` that can be taken down (its port closed: new
/// connections are refused, open ones end) and brought back on the same
/// port.
struct Relay {
    address: std::net::SocketAddr,
    target: String,
    accepting: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Bumped on every outage: connections of an older epoch end.
    epoch: Arc<tokio::sync::watch::Sender<u64>>,
}

fn listen(address: std::net::SocketAddr) -> TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(address).unwrap();
    socket.listen(128).unwrap()
}

impl Relay {
    async fn start(target: String) -> Relay {
        let address = listen("127.0.0.1:0".parse().unwrap()).local_addr().unwrap();
        let relay = Relay {
            address,
            target,
            accepting: std::sync::Mutex::new(None),
            epoch: Arc::new(tokio::sync::watch::Sender::new(0u64)),
        };
        relay.bring_back();
        relay
    }

    fn take_down(&self) {
        if let Some(accepting) = self.accepting.lock().unwrap().take() {
            accepting.abort();
        }
        self.epoch.send_modify(|n| *n += 1);
    }

    fn bring_back(&self) {
        let listener = listen(self.address);
        let (target, epochs) = (self.target.clone(), self.epoch.clone());
        let accepting = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let target = target.clone();
                let mut ended = epochs.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = ended.changed() => {}
                    }
                });
            }
        });
        *self.accepting.lock().unwrap() = Some(accepting);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_going_away_is_answered_at_once_and_its_return_served() {
    let Some(Backend::Postgres(direct)) = Backend::postgres().await else {
        return;
    };
    // postgres://user:password@host:port/db, through the relay.
    let (before, rest) = direct.split_once('@').unwrap();
    let (target, database) = rest.split_once('/').unwrap();
    let relay = Relay::start(target.to_owned()).await;
    let relayed = format!("{before}@{}/{database}", relay.address);
    let o = org_on(start_tweaked(Backend::Postgres(relayed), |_| {}).await).await;
    let h = &o.h;
    let release = o
        .publish_declaring(&o.alice, "acme/hello", "1.0.0", HELLO, &[], &[])
        .await
        .expect(201);
    o.approve(&release, &[], Limits::default()).await;
    let client = reqwest::Client::new();
    let readyz = format!("{}/readyz", h.url);
    assert_eq!(client.get(&readyz).send().await.unwrap().status(), 200);

    relay.take_down();
    // Noticed within a few change polls (each a quarter second; two failed
    // reads in a row): until then a request may wait for a connection.
    let noticed = Instant::now();
    loop {
        let asked = Instant::now();
        let answer = h.get(&h.admin, "/v1/orgs/acme/plugins").await;
        if answer.status == 503 && asked.elapsed() < Duration::from_millis(500) {
            break;
        }
        assert!(
            noticed.elapsed() < Duration::from_secs(15),
            "never answered at once"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(client.get(&readyz).send().await.unwrap().status(), 503);
    // Then every request that needs the database is answered at once (well
    // within the 2 s a connection is waited for), each with the code.
    for _ in 0..10 {
        let asked = Instant::now();
        let answer = h.get(&h.admin, "/v1/orgs/acme/plugins").await;
        answer.expect_error(503, "database_unavailable");
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "answered after {:?}",
            asked.elapsed()
        );
    }

    relay.bring_back();
    // Served again by the same process, once a poll gets through.
    let back = Instant::now();
    loop {
        if client.get(&readyz).send().await.unwrap().status() == 200 {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(10), "not ready again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let listed = h.get(&h.admin, "/v1/orgs/acme/plugins").await.expect(200);
    assert!(listed.to_string().contains("acme/hello"), "{listed}");
    let greeted = h
        .post(
            &h.admin,
            "/v1/plugins/acme/hello/invoke/greet",
            serde_json::json!({ "args": "back" }),
        )
        .await
        .expect(200);
    assert_eq!(greeted["result"], "Hello, back!");
}
