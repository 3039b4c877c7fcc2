//! The console's pages at 1,000 plugins: each page's answer time on a real
//! server over loopback (the server's time plus a loopback round trip),
//! beside the floor: a bare axum handler answering a page of the same size
//! in the same process, to the same client, in the same run.
//! `cargo bench -p warden-registry --bench console [-- postgres]`.
//!
//! The organization holds 1,000 approved plugins (each a real publish and
//! approval of the hello example), one release pending review, an audit
//! log of every change (about 4,000 entries) and a few tokens and keys.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Backend, org_on, start_tweaked};
use futures_util::StreamExt;
use reqwest::header::COOKIE;
use std::time::Instant;
use warden_host::Limits;
use warden_test_programs::HELLO;

const PLUGINS: usize = 1000;
const ROUNDS: usize = 200;

fn quantiles(mut values: Vec<f64>) -> (f64, f64) {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| values[((values.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

/// `ROUNDS` GETs of `url` one after another: p50 and p99 in ms, and the
/// size of the answer.
async fn timed(client: &reqwest::Client, url: &str, cookie: &str) -> (f64, f64, usize) {
    let mut times = Vec::with_capacity(ROUNDS);
    let mut size = 0;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let answer = client.get(url).header(COOKIE, cookie).send().await.unwrap();
        assert!(answer.status().is_success(), "{url}: {}", answer.status());
        size = answer.bytes().await.unwrap().len();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let (p50, p99) = quantiles(times);
    (p50, p99, size)
}

/// Publishes the hello example as `repo@version`. The organization's
/// compile time is bounded: past it, a publish is told to come back later,
/// and does.
async fn publish(
    o: &common::Org,
    repo: &str,
    version: &str,
    capabilities: &[&str],
) -> serde_json::Value {
    loop {
        let answer = o
            .publish_declaring(&o.alice, repo, version, HELLO, capabilities, &[])
            .await;
        if answer.status != 429 {
            return answer.expect(201);
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let postgres = std::env::args().any(|a| a == "postgres");
    let backend = if postgres {
        Backend::postgres().await.expect("PostgreSQL")
    } else {
        Backend::Sqlite
    };
    let o = org_on(start_tweaked(backend, |_| {}).await).await;
    let h = &o.h;
    let seeding = Instant::now();
    futures_util::stream::iter(0..PLUGINS)
        .for_each_concurrent(4, |n| {
            let o = &o;
            async move {
                let repo = format!("acme/plugin-{n:04}");
                let release = publish(o, &repo, "1.0.0", &[]).await;
                o.approve(&release, &[], Limits::default()).await;
            }
        })
        .await;
    publish(&o, "acme/plugin-0500", "1.1.0", &["kv"]).await;
    for role in ["viewer", "invoker", "publisher"] {
        h.token(&h.admin, "acme", role).await;
    }
    eprintln!(
        "seeded {PLUGINS} plugins in {:.0} s",
        seeding.elapsed().as_secs_f64()
    );

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = common::console_session(&client, &h.url, &h.admin).await;

    let pages = [
        ("catalog, first page", "/console/catalog"),
        ("catalog, searched", "/console/catalog?q=plugin-05"),
        ("plugin", "/console/plugins/acme/plugin-0500"),
        (
            "try it (form)",
            "/console/plugins/acme/plugin-0500/try/greet",
        ),
        ("review queue", "/console/releases"),
        ("release review", "/console/releases/acme/plugin-0500/1.1.0"),
        ("audit log, newest 50", "/console/audit"),
        (
            "audit log, filtered",
            "/console/audit?action=release.approve&target=acme%2Fplugin-07",
        ),
        ("audit chain, 1,000 entries (JSON)", "/console/audit/chain"),
        ("tokens", "/console/tokens"),
        ("keys", "/console/keys"),
    ];
    let mut rows = Vec::new();
    let mut largest = 0;
    for (name, path) in pages {
        let (p50, p99, size) = timed(&client, &format!("{}{path}", h.url), &cookie).await;
        largest = largest.max(size);
        rows.push((name, p50, p99, size));
    }

    // The floor: a bare axum handler with a page as large as the largest.
    let page = "x".repeat(largest);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let floor_url = format!("http://{}/page", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/page",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (f50, f99, _) = timed(&client, &floor_url, "").await;

    let (entries,): (i64,) = sqlx::query_as("SELECT seq FROM audit_heads WHERE org = 'acme'")
        .fetch_one(h.db.pool())
        .await
        .unwrap();
    println!(
        "console pages, {PLUGINS} plugins, {entries} audit entries ({}), {ROUNDS} GETs each",
        if postgres { "PostgreSQL" } else { "SQLite" }
    );
    println!("| page | p50 | p99 | size | p50 / floor |");
    println!("|---|---|---|---|---|");
    for (name, p50, p99, size) in rows {
        println!(
            "| {name} | {p50:.2} ms | {p99:.2} ms | {:.1} KiB | {:.0}x |",
            size as f64 / 1024.0,
            p50 / f50.max(0.001)
        );
    }
    println!(
        "| floor: bare axum handler, {:.1} KiB | {f50:.2} ms | {f99:.2} ms | | 1x |",
        largest as f64 / 1024.0
    );
}
