//! Webhook delivery latency: from the commit of a change to its event's
//! arrival at a receiver on loopback, for 1,000 events, on a real server
//! (SQLite, default settings but the loopback allowance), beside the floor:
//! the same receiver getting the same number of signed-size POSTs straight
//! from one client.
//! `cargo bench -p warden-registry --bench webhooks [-- postgres]`.
//!
//! The events are token creations, one every 10 ms (100 a second), to one
//! endpoint subscribed to them; each arrival is timed against the event's
//! own timestamp (its commit, to the millisecond).

#[path = "../tests/common/mod.rs"]
mod common;

use axum::extract::State;
use common::{Backend, start_tweaked};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use warden_host::address_policy::parse_network;

const EVENTS: usize = 1000;

type Arrivals = Arc<Mutex<Vec<(String, i64)>>>;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn receive(State(arrivals): State<Arrivals>, body: axum::body::Bytes) -> &'static str {
    let at = now_ms();
    let event: Value = serde_json::from_slice(&body).unwrap_or_default();
    arrivals.lock().unwrap().push((
        event["timestamp"].as_str().unwrap_or_default().to_owned(),
        at,
    ));
    "ok"
}

fn quantiles(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| values[((values.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99), at(1.0))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let postgres = std::env::args().any(|a| a == "postgres");
    let backend = if postgres {
        Backend::postgres().await.expect("PostgreSQL")
    } else {
        Backend::Sqlite
    };
    let arrivals: Arrivals = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(arrivals.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The floor: the same receiver, POSTs of an event's size from one client.
    let client = reqwest::Client::new();
    let body = json!({ "id": "acme:1", "type": "token.created", "timestamp": "", "data": { "name": "x".repeat(200) } }).to_string();
    let mut floor = Vec::with_capacity(EVENTS);
    for _ in 0..EVENTS {
        let started = Instant::now();
        client
            .post(&receiver)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        floor.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    arrivals.lock().unwrap().clear();

    let h = start_tweaked(backend, |config| {
        config.webhook_policy.allow = vec![parse_network("127.0.0.0/8").unwrap()];
        config.webhook_policy.allow_http = true;
    })
    .await;
    h.post(
        &h.admin,
        "/v1/orgs/acme/webhooks",
        json!({ "url": receiver, "events": ["token.created"] }),
    )
    .await
    .expect(201);
    let started = Instant::now();
    let mut every = tokio::time::interval(Duration::from_millis(10));
    for n in 0..EVENTS {
        every.tick().await;
        h.post(
            &h.admin,
            "/v1/orgs/acme/tokens",
            json!({ "name": format!("t{n}"), "role": "viewer" }),
        )
        .await
        .expect(201);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while arrivals.lock().unwrap().len() < EVENTS {
        assert!(Instant::now() < deadline, "not all events arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    let latencies: Vec<f64> = arrivals
        .lock()
        .unwrap()
        .iter()
        .map(|(committed, arrived)| {
            let committed = chrono::DateTime::parse_from_rfc3339(committed)
                .unwrap()
                .timestamp_millis();
            (arrived - committed) as f64
        })
        .collect();
    let (p50, p99, max) = quantiles(latencies);
    let (f50, f99, fmax) = quantiles(floor);
    println!(
        "webhook delivery, {EVENTS} events at 100/s ({}), all delivered in {:.1} s",
        if postgres { "PostgreSQL" } else { "SQLite" },
        took.as_secs_f64()
    );
    println!("| path | p50 | p99 | max |");
    println!("|---|---|---|---|");
    println!("| commit → receiver (Warden) | {p50:.0} ms | {p99:.0} ms | {max:.0} ms |");
    println!("| one POST, client → receiver (floor) | {f50:.2} ms | {f99:.2} ms | {fmax:.2} ms |");
    println!(
        "ratio at p50: {:.0}x the floor (resolution of commit times: 1 ms)",
        p50 / f50.max(0.001)
    );
}
