//! One organization's attack against another organization's ordinary work,
//! at the scale of the attacks in issue 19, on a real server on loopback
//! (SQLite, default settings unless said):
//! `cargo bench -p warden-registry --bench isolation [-- solver|compile|bodies|kv]`.
//!
//! Each scenario measures the victim (globex) alone, then under the attack
//! (acme), and prints what the attacker got. The server runs in this
//! process, so the peak memory printed is the server's and the clients'.
//!
//! - `solver`: a pigeonhole catalog of 181 releases; 96 concurrent `/resolve`
//!   loops of an acme viewer, each asking a requirement never asked before,
//!   against globex invoking a plugin of its own.
//! - `compile`: acme publishes compile bombs (22.5 MB, 900 functions), one
//!   and then five at once, against globex publishing a 134-byte component.
//! - `bodies`: 25 sockets of one acme invoker token trickling a body one
//!   byte every 5 s, against health checks and a globex invoke, with
//!   `--max-connections 20`.
//! - `kv`: an acme invoker writes 256 KiB values under new keys for 20 s;
//!   the database's growth, and a globex kv write after it.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Backend, Harness, Org, approval_body, org};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use warden_host::{Limits, PrivateKey};
use warden_test_programs::{CAPABILITIES, HELLO, read};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runs = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    if runs("solver") {
        solver().await;
    }
    if runs("compile") {
        compile().await;
    }
    if runs("bodies") {
        bodies().await;
    }
    if runs("kv") {
        kv().await;
    }
}

/// Latencies of one kind of request, and how they ended.
#[derive(Default)]
struct Sample {
    times: Vec<Duration>,
    statuses: std::collections::BTreeMap<String, usize>,
}

impl Sample {
    fn add(&mut self, took: Duration, outcome: impl Into<String>) {
        self.times.push(took);
        *self.statuses.entry(outcome.into()).or_default() += 1;
    }

    fn line(&self, what: &str) -> String {
        let mut times = self.times.clone();
        times.sort();
        let at = |q: f64| {
            times
                .get(((times.len() as f64 - 1.0) * q).round() as usize)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        format!(
            "| {what} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:?} |",
            times.len(),
            at(0.5),
            at(0.99),
            at(1.0),
            self.statuses
        )
    }
}

const HEADER: &str = "| requests | n | p50 | p99 | max | outcomes |\n|---|---|---|---|---|---|";

/// Forgets the process's peak resident memory, so the next [`peak_mib`]
/// reports the peak from now on.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// globex, with an approved release of `component` as `globex/<name>`
/// granted `grants`; returns its admin, publisher and invoker tokens and its
/// publisher key.
async fn globex(
    h: &Harness,
    name: &str,
    component: &[u8],
    grants: &[&str],
) -> (String, String, String, PrivateKey) {
    let admin = h.create_org("globex").await;
    let publisher = h.token(&admin, "globex", "publisher").await;
    let invoker = h.token(&admin, "globex", "invoker").await;
    let carol = h.key(&admin, "globex", "publisher", "carol").await;
    let dave = PrivateKey::from_pem(&h.pinned[1].to_pem()).unwrap();
    h.post(
        &admin,
        "/v1/orgs/globex/keys",
        json!({ "public_key": dave.public_key().to_string(), "kind": "admin", "owner": "dave" }),
    )
    .await
    .expect(201);
    let release = h
        .publish(
            &publisher,
            &carol,
            &format!("globex/{name}"),
            "1.0.0",
            component,
            grants,
        )
        .await
        .expect(201);
    h.post(
        &admin,
        &format!("/v1/plugins/globex/{name}/releases/1.0.0/approve"),
        approval_body(&dave, &release, grants, Limits::default()),
    )
    .await
    .expect(200);
    (admin, publisher, invoker, carol)
}

/// Runs `victim` over and over until `attack` ends, sampling it; returns
/// the sample.
async fn while_attacked<F, A>(mut victim: impl FnMut() -> F, attack: A) -> Sample
where
    F: std::future::Future<Output = String>,
    A: std::future::Future<Output = ()>,
{
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut sample = Sample::default();
    let watch = async {
        // The attack gets going first.
        tokio::time::sleep(Duration::from_millis(500)).await;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let started = Instant::now();
            let outcome = victim().await;
            sample.add(started.elapsed(), outcome);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let attack = async {
        attack.await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    tokio::join!(watch, attack);
    sample
}

fn outcome(answer: &common::Answer) -> String {
    match answer.body["error"]["code"].as_str() {
        Some(code) => format!("{} {code}", answer.status.as_u16()),
        None => answer.status.as_u16().to_string(),
    }
}

// ---------------------------------------------------------------- solver

/// The pigeonhole catalog of `2n(n+1) + 1` releases that nothing resolves
/// (as in `tests/dependencies.rs`).
async fn pigeonhole(o: &Org, n: usize) {
    let publish = |repo: String, version: String, needs: Vec<(String, String)>| async move {
        let needs: Vec<(&str, &str)> = needs
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let release = o
            .publish_declaring(&o.alice, &repo, &version, HELLO, &[], &needs)
            .await
            .expect(201);
        o.approve(&release, &[], Limits::default()).await;
    };
    for hole in 1..=n {
        for pigeon in 1..=n + 1 {
            publish(format!("acme/hole{hole}"), format!("{pigeon}.0.0"), vec![]).await;
        }
    }
    for pigeon in 1..=n + 1 {
        for hole in 1..=n {
            let needs = vec![(format!("acme/hole{hole}"), format!("={pigeon}.0.0"))];
            publish(format!("acme/pigeon{pigeon}"), format!("1.0.{hole}"), needs).await;
        }
    }
    let pigeons = (1..=n + 1)
        .map(|p| (format!("acme/pigeon{p}"), "^1".to_owned()))
        .collect();
    publish("acme/root".into(), "1.0.0".into(), pigeons).await;
}

async fn solver() {
    println!("\n## solver: 96 viewers resolving a 181-release pigeonhole catalog\n");
    let o = org(Backend::Sqlite, 1).await;
    pigeonhole(&o, 9).await;
    let h = &o.h;
    let viewer = h.token(&h.admin, "acme", "viewer").await;
    let (_, _, invoker, _) = globex(h, "base", &read(HELLO), &[]).await;
    let invoke = || async {
        let answer = h
            .post(
                &invoker,
                "/v1/plugins/globex/base/invoke/greet",
                json!({ "args": "world" }),
            )
            .await;
        outcome(&answer)
    };
    let mut alone = Sample::default();
    for _ in 0..100 {
        let started = Instant::now();
        let outcome = invoke().await;
        alone.add(started.elapsed(), outcome);
    }
    reset_peak();
    let attacker = std::sync::Mutex::new(Sample::default());
    let asked = std::sync::atomic::AtomicUsize::new(0);
    let attack = async {
        let until = Instant::now() + Duration::from_secs(20);
        futures_util::future::join_all((0..96).map(|_| async {
            while Instant::now() < until {
                // A requirement never asked before: no remembered answer.
                let n = asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let started = Instant::now();
                let answer = h
                    .get(
                        &viewer,
                        &format!("/v1/plugins/acme/root/resolve?version=%3E%3D0.0.{n}"),
                    )
                    .await;
                attacker
                    .lock()
                    .unwrap()
                    .add(started.elapsed(), outcome(&answer));
            }
        }))
        .await;
    };
    let attacked = while_attacked(invoke, attack).await;
    println!("{HEADER}");
    println!("{}", alone.line("globex invoke, alone"));
    println!(
        "{}",
        attacked.line("globex invoke, during 20 s of 96 acme resolves")
    );
    println!("{}", attacker.lock().unwrap().line("acme resolve"));
    println!(
        "\npeak resident memory during the attack: {} MiB",
        peak_mib()
    );
}

// --------------------------------------------------------------- compile

/// A component whose core module has `functions` functions of `body_bytes`
/// bytes of arithmetic each (a compile bomb when large).
fn compile_bomb(functions: usize, body_bytes: usize) -> Vec<u8> {
    // 10 bytes of code per repetition.
    let body =
        "local.get 0 i32.const 7 i32.mul i32.const 3 i32.xor local.set 0 ".repeat(body_bytes / 10);
    let mut module = String::from("(core module $m\n");
    for n in 0..functions {
        module.push_str(&format!(
            "(func $f{n} (param i32) (result i32) {body} local.get 0)\n"
        ));
    }
    module.push_str("(func (export \"run\") (result i32) i32.const 0 call $f0))\n");
    wat::parse_str(format!(
        r#"(component {module}
            (core instance $i (instantiate $m))
            (func $run (result u32) (canon lift (core func $i "run")))
            (export "run" (func $run)))"#
    ))
    .unwrap()
}

async fn compile() {
    println!("\n## compile: acme's compile bombs against globex's 134-byte publish\n");
    let bomb = compile_bomb(900, 25_000);
    let tiny = wat::parse_str("(component)").unwrap();
    println!(
        "bomb: {:.1} MB, 900 functions; globex's component: {} bytes\n",
        bomb.len() as f64 / 1e6,
        tiny.len()
    );
    // The check alone, on the engine publishes use.
    let checker = warden_host::Engine::new(warden_host::EngineConfig {
        check_only: true,
        ..Default::default()
    })
    .unwrap();
    println!("| component | size | one check (one thread, no optimization) |\n|---|---|---|");
    let check = |what: &str, bytes: &[u8]| {
        let started = Instant::now();
        let outcome = match checker.compile_uncached(bytes) {
            Ok(_) => format!("{:.1} s", started.elapsed().as_secs_f64()),
            Err(e) => format!(
                "refused after {:.1} s: {e}",
                started.elapsed().as_secs_f64()
            ),
        };
        println!(
            "| {what} | {:.1} MB | {outcome} |",
            bytes.len() as f64 / 1e6
        );
    };
    check("the bomb: 900 functions of 25 KB", &bomb);
    check(
        "at the 64 MiB cap: 2,680 functions of 25 KB",
        &compile_bomb(2_680, 25_000),
    );
    check(
        "one function of 7.5 MB (near wasmparser's 7,654,321-byte limit)",
        &compile_bomb(1, 7_500_000),
    );
    check(
        "a real one: the Python polyglot guest (componentize-py)",
        &read(warden_test_programs::PYTHON_POLYGLOT),
    );
    check(
        "a real one: the JavaScript polyglot guest (componentize-js)",
        &read(warden_test_programs::JAVASCRIPT_POLYGLOT),
    );
    println!();
    let o = &org(Backend::Sqlite, 1).await;
    let h = &o.h;
    let (_, publisher, _, carol) = globex(h, "base", &read(HELLO), &[]).await;
    let versions = std::sync::atomic::AtomicUsize::new(0);
    let publish_tiny = || async {
        let n = versions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let answer = h
            .publish(
                &publisher,
                &carol,
                &format!("globex/tiny{n}"),
                "1.0.0",
                &tiny,
                &[],
            )
            .await;
        outcome(&answer)
    };
    let mut alone = Sample::default();
    for _ in 0..10 {
        let started = Instant::now();
        let outcome = publish_tiny().await;
        alone.add(started.elapsed(), outcome);
    }
    println!("{HEADER}");
    println!("{}", alone.line("globex publish, alone"));
    for bombs in [1, 5] {
        reset_peak();
        let attacker = std::sync::Mutex::new(Sample::default());
        let attack = async {
            futures_util::future::join_all((0..bombs).map(|n| {
                let (attacker, bomb) = (&attacker, &bomb);
                async move {
                    let started = Instant::now();
                    let answer =
                        o.h.publish(
                            &o.publisher,
                            &o.alice,
                            &format!("acme/bomb-{bombs}-{n}"),
                            "1.0.0",
                            bomb,
                            &[],
                        )
                        .await;
                    attacker
                        .lock()
                        .unwrap()
                        .add(started.elapsed(), outcome(&answer));
                }
            }))
            .await;
        };
        let attacked = while_attacked(publish_tiny, attack).await;
        println!(
            "{}",
            attacked.line(&format!(
                "globex publish, while acme publishes {bombs} bomb(s) at once"
            ))
        );
        println!(
            "{}",
            attacker
                .lock()
                .unwrap()
                .line(&format!("acme bomb publishes ({bombs} at once)"))
        );
        println!("peak resident memory: {} MiB", peak_mib());
    }
}

// ---------------------------------------------------------------- bodies

async fn bodies() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    println!("\n## bodies: 25 trickling bodies of one token, --max-connections 20\n");
    let dir = tempfile::tempdir().unwrap();
    let mut config = warden_registry::ServerConfig::new(dir.path().join("data"));
    let pinned = vec![PrivateKey::generate(), PrivateKey::generate()];
    config.admin_keys = pinned.iter().map(PrivateKey::public_key).collect();
    let plane = warden_registry::ControlPlane::open(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let limits = warden_registry::ConnectionLimits {
        max_connections: 20,
        ..Default::default()
    };
    let h = Harness {
        push_base: format!("http://{address}"),
        pinned,
        url: format!("http://{address}"),
        admin: plane.bootstrap_token.clone().unwrap(),
        db: plane.db().clone(),
        http: reqwest::Client::new(),
        dir,
    };
    tokio::spawn(warden_registry::serve_with(
        listener,
        plane.router(),
        limits,
    ));
    let o = common::org_on(h).await;
    let h = &o.h;
    let hello = o
        .publish_declaring(&o.alice, "acme/hello", "1.0.0", HELLO, &[], &[])
        .await
        .expect(201);
    o.approve(&hello, &[], Limits::default()).await;
    let acme_invoker = h.token(&h.admin, "acme", "invoker").await;
    let (_, _, invoker, _) = globex(h, "base", &read(HELLO), &[]).await;
    let probe = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let check = || async {
        let health = probe.get(format!("{}/healthz", h.url)).send().await;
        let invoke = probe
            .post(format!("{}/v1/plugins/globex/base/invoke/greet", h.url))
            .bearer_auth(&invoker)
            .json(&json!({ "args": "world" }))
            .send()
            .await;
        let status = |r: reqwest::Result<reqwest::Response>| match r {
            Ok(r) => r.status().as_u16().to_string(),
            Err(e) if e.is_timeout() => "timeout".to_owned(),
            Err(_) => "error".to_owned(),
        };
        format!("healthz {} + invoke {}", status(health), status(invoke))
    };
    let refused = std::sync::atomic::AtomicUsize::new(0);
    let held = std::sync::atomic::AtomicUsize::new(0);
    let attack = async {
        let until = Instant::now() + Duration::from_secs(40);
        futures_util::future::join_all((0..25).map(|_| async {
            let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else {
                return;
            };
            let head = format!(
                "POST /v1/plugins/acme/hello/invoke/greet HTTP/1.1\r\nHost: x\r\n\
                 Authorization: Bearer {acme_invoker}\r\nContent-Type: application/json\r\n\
                 Content-Length: 1000\r\n\r\n{{"
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let mut answer = [0u8; 512];
            while Instant::now() < until {
                tokio::select! {
                    read = stream.read(&mut answer) => {
                        // An answer (429 too_many_bodies) or a close: let go.
                        if matches!(read, Ok(n) if n > 0) {
                            refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        return;
                    }
                    () = tokio::time::sleep(Duration::from_secs(5)) => {
                        if stream.write_all(b" ").await.is_err() {
                            return;
                        }
                    }
                }
            }
            held.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }))
        .await;
    };
    let watched = while_attacked(check, attack).await;
    println!("{HEADER}");
    println!(
        "{}",
        watched.line("healthz then a globex invoke, during 40 s of trickling")
    );
    println!(
        "\nacme's 25 trickling bodies: {} answered at once (429), {} still held after 40 s",
        refused.load(std::sync::atomic::Ordering::Relaxed),
        held.load(std::sync::atomic::Ordering::Relaxed)
    );
}

// -------------------------------------------------------------------- kv

fn disk_use(dir: &std::path::Path) -> u64 {
    common::walk(dir)
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

async fn kv() {
    println!("\n## kv: an acme invoker writing 256 KiB values for 20 s\n");
    let o = org(Backend::Sqlite, 1).await;
    let h = &o.h;
    let caps = ["config", "http:example.com", "kv"];
    let release = o
        .publish_declaring(&o.alice, "acme/caps", "1.0.0", CAPABILITIES, &caps, &[])
        .await
        .expect(201);
    o.approve(&release, &caps, Limits::default()).await;
    let acme_invoker = h.token(&h.admin, "acme", "invoker").await;
    let (_, _, invoker, _) = globex(h, "caps", &read(CAPABILITIES), &caps).await;
    let data = h.dir.path().join("data");
    let before = disk_use(&data);
    let attacker = std::sync::Mutex::new(Sample::default());
    let keys = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    futures_util::future::join_all((0..4).map(|_| async {
        while started.elapsed() < Duration::from_secs(20) {
            let n = keys.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let at = Instant::now();
            let answer = h
                .post(
                    &acme_invoker,
                    "/v1/plugins/acme/caps/invoke/kv-set-size",
                    json!({ "args": [format!("key-{n}"), 256 << 10] }),
                )
                .await;
            let result: &Value = &answer.body["result"];
            let outcome = match result.get("err") {
                Some(err) => format!("{} err: {}", outcome(&answer), trim(err)),
                None => outcome(&answer),
            };
            attacker.lock().unwrap().add(at.elapsed(), outcome);
        }
    }))
    .await;
    let after = disk_use(&data);
    println!("{HEADER}");
    println!(
        "{}",
        attacker.lock().unwrap().line("acme kv-set-size, 256 KiB")
    );
    let globex = h
        .post(
            &invoker,
            "/v1/plugins/globex/caps/invoke/kv-set-size",
            json!({ "args": ["k", 256 << 10] }),
        )
        .await;
    println!(
        "\ndata directory: {:.0} MiB before, {:.0} MiB after 20 s (+{:.0} MiB)",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        (after - before) as f64 / 1048576.0
    );
    println!(
        "globex's kv-set of 256 KiB afterwards: {} {}",
        outcome(&globex),
        globex.body["result"]
    );
}

/// The first line of an error value, shortened.
fn trim(error: &Value) -> String {
    let text = error
        .as_str()
        .map_or_else(|| error.to_string(), str::to_owned);
    text.chars().take(60).collect()
}
