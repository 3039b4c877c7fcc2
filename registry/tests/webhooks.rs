//! Webhooks over real HTTP, on SQLite and PostgreSQL: a receiver in the test
//! gets every subscribed event once, in order, signed the Standard Webhooks
//! way (checked here and by the `standardwebhooks` package from PyPI);
//! retries follow the schedule, `Retry-After` and 410 under a clock the test
//! moves; addresses the operator did not allow are never reached; one
//! organization's failing endpoints do not hold up another's.

mod common;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Backend, Harness, org_on, start_tweaked};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warden_host::Limits;
use warden_host::address_policy::parse_network;
use warden_registry::ServerConfig;
use warden_test_programs::HELLO;

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    uri: String,
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

/// How the receiver answers: a status and an optional Retry-After.
#[derive(Clone)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    answer: Arc<Mutex<(u16, Option<u64>)>>,
    /// How long it takes to answer.
    delay: Arc<Mutex<Duration>>,
    url: String,
}

async fn receive(
    State(receiver): State<Receiver>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> impl IntoResponse {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    receiver.got.lock().unwrap().push(Received {
        uri: uri.to_string(),
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: body.to_vec(),
    });
    let delay = *receiver.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let (status, retry_after) = *receiver.answer.lock().unwrap();
    let mut response = (StatusCode::from_u16(status).unwrap(), "thanks").into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", seconds.to_string().parse().unwrap());
    }
    if status == 302 {
        response.headers_mut().insert(
            "location",
            format!("{}/elsewhere", receiver.url).parse().unwrap(),
        );
    }
    response
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let receiver = Receiver {
            got: Arc::default(),
            answer: Arc::new(Mutex::new((200, None))),
            delay: Arc::default(),
            url,
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .route("/elsewhere", axum::routing::post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    fn answer(&self, status: u16, retry_after: Option<u64>) {
        *self.answer.lock().unwrap() = (status, retry_after);
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (at most `within`) until it has `n` requests.
    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} deliveries within {within:?}: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A server whose webhooks may reach loopback over http.
async fn server(backend: Backend, clock: Option<Arc<AtomicI64>>) -> Harness {
    start_tweaked(backend, move |config: &mut ServerConfig| {
        config.webhook_policy.allow = vec![parse_network("127.0.0.0/8").unwrap()];
        config.webhook_policy.allow_http = true;
        if let Some(now) = clock {
            config.webhook_clock = warden_registry::WebhookClock::manual(now);
        }
    })
    .await
}

async fn add_webhook(h: &Harness, url: &str, events: &[&str]) -> (String, String) {
    let created = h
        .post(
            &h.admin,
            "/v1/orgs/acme/webhooks",
            json!({ "url": url, "events": events, "description": "tests" }),
        )
        .await
        .expect(201);
    (
        created["id"].as_str().unwrap().to_owned(),
        created["signing_secret"].as_str().unwrap().to_owned(),
    )
}

/// Whether `received` carries a `v1` signature of `secret` (as the
/// Standard Webhooks specification defines it, computed here).
fn signed_by(received: &Received, secret: &str) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", received.id, received.timestamp).as_bytes());
    mac.update(&received.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    received.signature.split(' ').any(|s| s == expected)
}

async fn a_receiver_gets_each_subscribed_event_once_signed(backend: Backend) {
    let receiver = Receiver::start().await;
    let o = org_on(server(backend, None).await).await;
    let h = &o.h;
    let url = format!("{}/hook?token=s3cret-path-part", receiver.url);
    let (id, secret) = add_webhook(h, &url, &["release.published", "release.approved"]).await;
    assert!(secret.starts_with("whsec_"));

    let release = o
        .publish_declaring(&o.alice, "acme/hello", "1.0.0", HELLO, &[], &[])
        .await
        .expect(201);
    o.approve(&release, &[], Limits::default()).await;
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    let events: Vec<Value> = got
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(events[0]["type"], "release.published");
    assert_eq!(events[1]["type"], "release.approved");
    for (received, event) in got.iter().zip(&events) {
        assert_eq!(received.id, event["id"].as_str().unwrap());
        assert!(signed_by(received, &secret), "{received:?}");
        assert!(!signed_by(
            received,
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        ));
    }

    // Nothing else arrives (unsubscribed types are passed over).
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.got().len(), 2);

    // The endpoint says where it stands; its log has both attempts; the
    // secret is in no answer but the creation's.
    let shown = h
        .get(&h.admin, &format!("/v1/orgs/acme/webhooks/{id}"))
        .await
        .expect(200);
    assert_eq!(shown["attempt"], 0);
    assert_eq!(shown["failing_since"], Value::Null);
    let listed = h.get(&h.admin, "/v1/orgs/acme/webhooks").await.expect(200);
    assert!(!listed.to_string().contains(&secret));
    let log = h
        .get(&h.admin, &format!("/v1/orgs/acme/webhooks/{id}/deliveries"))
        .await
        .expect(200);
    let attempts = log["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{log}");
    assert!(
        attempts
            .iter()
            .all(|a| a["outcome"] == "delivered" && a["status"] == 200)
    );
    assert_eq!(attempts[0]["response"], "thanks");
    // /metrics counts them, and says the endpoint has nothing pending
    // (measured every 5 s).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let metrics = h.metrics(&h.admin).await;
        let pending =
            format!("warden_webhook_oldest_pending_seconds{{org=\"acme\",webhook=\"{id}\"}} 0");
        if metrics.contains("warden_webhook_deliveries_total{outcome=\"delivered\"} 2")
            && metrics.contains(&pending)
        {
            assert!(metrics.contains("warden_webhook_delivery_duration_seconds_count 2"));
            break;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The audit trail (and so the events) name the URL's origin, never its
    // path or query, which may be a credential.
    let audit = h
        .get(&h.admin, "/v1/orgs/acme/audit?limit=1000")
        .await
        .expect(200)
        .to_string();
    assert!(audit.contains("webhook.create"));
    assert!(!audit.contains("s3cret-path-part") && !audit.contains(&secret));

    // A viewer cannot see or change webhooks; another org cannot either.
    let viewer = h.token(&h.admin, "acme", "viewer").await;
    h.get(&viewer, "/v1/orgs/acme/webhooks")
        .await
        .expect_error(403, "insufficient_role");
    let globex = h.create_org("globex").await;
    h.get(&globex, &format!("/v1/orgs/acme/webhooks/{id}"))
        .await
        .expect_error(403, "wrong_org");
    h.get(&globex, &format!("/v1/orgs/globex/webhooks/{id}"))
        .await
        .expect_error(404, "not_found");

    // Redelivering one event sends it again, with the same id.
    let first = got[0].id.clone();
    h.post(
        &h.admin,
        &format!("/v1/orgs/acme/webhooks/{id}/redeliver"),
        json!({ "event": first }),
    )
    .await
    .expect(202);
    let got = receiver.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(got[2].id, first);
    assert_eq!(got[2].body, got[0].body);

    // Rotation: the new secret signs, and the old one beside it.
    let rotated = h
        .post(
            &h.admin,
            &format!("/v1/orgs/acme/webhooks/{id}/rotate"),
            json!({}),
        )
        .await
        .expect(200);
    let new_secret = rotated["signing_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    o.yank("acme/hello", "1.0.0").await;
    h.call(
        &h.admin,
        reqwest::Method::PATCH,
        &format!("/v1/orgs/acme/webhooks/{id}"),
        Some(json!({ "events": ["*"] })),
    )
    .await
    .expect(200);
    let ping = h
        .post(
            &h.admin,
            &format!("/v1/orgs/acme/webhooks/{id}/test"),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(ping["delivered"], true, "{ping}");
    assert_eq!(ping["status"], 200);
    assert!(ping.get("response").is_none(), "{ping}");
    let got = receiver.wait_for(4, Duration::from_secs(10)).await;
    let pinged = got.last().unwrap();
    assert!(signed_by(pinged, &new_secret) && signed_by(pinged, &secret));

    // Replay from the start: every event again, in order (once what is
    // on its way has arrived).
    let delivered_all = async || {
        let head = h
            .get(&h.admin, "/v1/orgs/acme/events?limit=1")
            .await
            .expect(200)["head"]
            .clone();
        h.get(&h.admin, &format!("/v1/orgs/acme/webhooks/{id}"))
            .await
            .expect(200)["cursor"]
            == head
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !delivered_all().await {
        assert!(Instant::now() < deadline, "the endpoint never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = receiver.got().len();
    let replayed = h
        .post(
            &h.admin,
            &format!("/v1/orgs/acme/webhooks/{id}/replay"),
            json!({ "since": "2000-01-01T00:00:00Z" }),
        )
        .await
        .expect(200);
    assert_eq!(replayed["cursor"], "acme:0");
    let head = h
        .get(&h.admin, "/v1/orgs/acme/events?limit=1")
        .await
        .expect(200)["head"]
        .as_str()
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .1
        .parse::<usize>()
        .unwrap();
    let got = receiver
        .wait_for(before + head, Duration::from_secs(20))
        .await;
    let replay: Vec<&str> = got[before..].iter().map(|r| r.id.as_str()).collect();
    let expected: Vec<String> = (1..=head).map(|seq| format!("acme:{seq}")).collect();
    assert_eq!(replay, expected);

    h.call(
        &h.admin,
        reqwest::Method::DELETE,
        &format!("/v1/orgs/acme/webhooks/{id}"),
        None,
    )
    .await
    .expect(204);
    h.get(&h.admin, &format!("/v1/orgs/acme/webhooks/{id}"))
        .await
        .expect_error(404, "not_found");
}
on_both_databases!(a_receiver_gets_each_subscribed_event_once_signed);

/// The Standard Webhooks library (Python, from PyPI) verifies a delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standard_webhooks_library_verifies_a_delivery() {
    let receiver = Receiver::start().await;
    let h = server(Backend::Sqlite, None).await;
    let url = format!("{}/hook", receiver.url);
    let (_, secret) = add_webhook(&h, &url, &["token.created"]).await;
    h.token(&h.admin, "acme", "viewer").await;
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("body"), &got[0].body).unwrap();
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
secret, wid, ts, sig, path = sys.argv[1:6]
body = open(path, "rb").read()
headers = {"webhook-id": wid, "webhook-timestamp": ts, "webhook-signature": sig}
payload = Webhook(secret).verify(body, headers)
print(payload["type"])
try:
    Webhook(secret).verify(body + b" ", headers)
    print("tampered body accepted")
except Exception:
    print("tampered body refused")
"#;
    let python = std::path::Path::new(warden_test_programs::API_TOOLS_BIN).join("python");
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(&secret)
        .arg(&got[0].id)
        .arg(&got[0].timestamp)
        .arg(&got[0].signature)
        .arg(dir.path().join("body"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.trim(), "token.created\ntampered body refused");
}

/// Moves the test's clock and waits until `check` holds (at most 10 s).
async fn advance_until(clock: &AtomicI64, by: Duration, mut check: impl AsyncFnMut() -> bool) {
    clock.fetch_add(by.as_millis() as i64, Ordering::AcqRel);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "not after moving the clock by {by:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn retries_follow_the_schedule_retry_after_and_410(backend: Backend) {
    let receiver = Receiver::start().await;
    let clock = Arc::new(AtomicI64::new(warden_registry_now()));
    let h = server(backend, Some(clock.clone())).await;
    let url = format!("{}/hook", receiver.url);
    let (id, _) = add_webhook(&h, &url, &["token.created"]).await;
    let show = async || {
        h.get(&h.admin, &format!("/v1/orgs/acme/webhooks/{id}"))
            .await
            .expect(200)
    };

    // A 503 with Retry-After: 120: the next attempt waits exactly that.
    receiver.answer(503, Some(120));
    h.token(&h.admin, "acme", "viewer").await;
    advance_until(&clock, Duration::ZERO, async || {
        show().await["attempt"] == 1
    })
    .await;
    let state = show().await;
    let waited = state["next_attempt_at"].as_i64().unwrap() - clock.load(Ordering::Acquire);
    assert_eq!(waited, 120_000, "{state}");
    clock.fetch_add(119_000, Ordering::AcqRel);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.got().len(), 1, "not before Retry-After");
    // Then the schedule after plain failures: 5 min (±10 %) before the 3rd
    // attempt, 30 min before the 4th.
    receiver.answer(500, None);
    advance_until(&clock, Duration::from_secs(2), async || {
        show().await["attempt"] == 2
    })
    .await;
    let state = show().await;
    let waited = state["next_attempt_at"].as_i64().unwrap() - clock.load(Ordering::Acquire);
    assert!((270_000..=330_000).contains(&waited), "{state}");
    clock.fetch_add(waited - 1_000, Ordering::AcqRel);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.got().len(), 2, "not before the schedule says");
    advance_until(&clock, Duration::from_secs(2), async || {
        show().await["attempt"] == 3
    })
    .await;
    let state = show().await;
    let waited = state["next_attempt_at"].as_i64().unwrap() - clock.load(Ordering::Acquire);
    assert!((1_620_000..=1_980_000).contains(&waited), "{state}");
    assert!(state["failing_since"].is_i64());
    // It recovers: delivered, the cursor moves, nothing is failing.
    receiver.answer(204, None);
    advance_until(&clock, Duration::from_secs(1_981), async || {
        show().await["attempt"] == 0
    })
    .await;
    assert_eq!(receiver.got().len(), 4);
    let state = show().await;
    assert_eq!(state["failing_since"], Value::Null, "{state}");
    let ids: Vec<String> = receiver.got().iter().map(|r| r.id.clone()).collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "one event, the same id: {ids:?}"
    );
    let log = h
        .get(&h.admin, &format!("/v1/orgs/acme/webhooks/{id}/deliveries"))
        .await
        .expect(200);
    let outcomes: Vec<(&str, i64)> = log["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["outcome"].as_str().unwrap(),
                a["status"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("delivered", 204),
            ("failed", 500),
            ("failed", 500),
            ("failed", 503)
        ]
    );

    // A receiver that keeps asking for 1 s: after 8 attempts the event is
    // given up and the next one is delivered.
    // (The clock moves only once the endpoint's state says the last
    // attempt is recorded: a move during an attempt would shift its
    // retry time with it.)
    receiver.answer(500, Some(1));
    let cursor = show().await["cursor"].clone();
    h.token(&h.admin, "acme", "viewer").await;
    advance_until(&clock, Duration::ZERO, async || {
        show().await["attempt"] == 1
    })
    .await;
    for k in 2..=7 {
        advance_until(&clock, Duration::from_secs(2), async || {
            show().await["attempt"] == k
        })
        .await;
    }
    advance_until(&clock, Duration::from_secs(2), async || {
        show().await["cursor"] != cursor
    })
    .await;
    assert_eq!(receiver.got().len(), 12);
    receiver.answer(200, None);
    h.token(&h.admin, "acme", "viewer").await;
    advance_until(&clock, Duration::from_secs(2), async || {
        receiver.got().len() == 13
    })
    .await;
    let got = receiver.got();
    assert_ne!(got[12].id, got[11].id, "the given-up event is not retried");
    let log = h
        .get(
            &h.admin,
            &format!("/v1/orgs/acme/webhooks/{id}/deliveries?limit=2"),
        )
        .await
        .expect(200);
    assert_eq!(log["attempts"][1]["outcome"], "given_up", "{log}");
    assert_eq!(log["attempts"][1]["attempt"], 8, "{log}");

    // 410 Gone disables the endpoint, with an event saying why.
    receiver.answer(410, None);
    h.token(&h.admin, "acme", "viewer").await;
    advance_until(&clock, Duration::ZERO, async || {
        show().await["enabled"] == false
    })
    .await;
    let state = show().await;
    assert!(
        state["disabled_reason"].as_str().unwrap().contains("410"),
        "{state}"
    );
    let events = h
        .get(&h.admin, "/v1/orgs/acme/events?limit=1000")
        .await
        .expect(200);
    let disabled = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "webhook.disabled")
        .cloned()
        .unwrap();
    assert_eq!(disabled["actor"], "system");
    assert_eq!(disabled["subject"], id.as_str());

    // Enabled again, failing for 3 days: disabled at the next failure.
    receiver.answer(500, None);
    h.call(
        &h.admin,
        reqwest::Method::PATCH,
        &format!("/v1/orgs/acme/webhooks/{id}"),
        Some(json!({ "enabled": true })),
    )
    .await
    .expect(200);
    advance_until(&clock, Duration::ZERO, async || {
        show().await["attempt"] == 1
    })
    .await;
    advance_until(&clock, Duration::from_secs(73 * 3600), async || {
        show().await["enabled"] == false
    })
    .await;
    let state = show().await;
    assert!(
        state["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("3 days"),
        "{state}"
    );
}
on_both_databases!(retries_follow_the_schedule_retry_after_and_410);

/// Now, as the server's clock reads it (Unix ms).
fn warden_registry_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A server that allows http but no private network: a name that resolves
/// to loopback is refused at delivery (logged as `address_refused`, the
/// receiver never reached), addresses in the URL in any spelling at
/// creation; a redirect is not followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_the_operator_did_not_allow_are_never_reached() {
    let receiver = Receiver::start().await;
    let h = start_tweaked(Backend::Sqlite, |config: &mut ServerConfig| {
        config.webhook_policy.allow_http = true;
    })
    .await;
    for url in [
        "http://127.0.0.1/hook",
        "http://2130706433/hook",
        "http://0x7f000001/hook",
        "http://0177.0.0.1/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
        "http://0.0.0.0/",
    ] {
        let refused = h
            .post(
                &h.admin,
                "/v1/orgs/acme/webhooks",
                json!({ "url": url, "events": ["*"] }),
            )
            .await;
        refused.expect_error(400, "invalid_webhook");
    }
    let port = receiver.url.rsplit_once(':').unwrap().1.to_owned();
    let (id, _) = add_webhook(
        &h,
        &format!("http://localhost:{port}/hook"),
        &["token.created"],
    )
    .await;
    h.token(&h.admin, "acme", "viewer").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = h
            .get(&h.admin, &format!("/v1/orgs/acme/webhooks/{id}/deliveries"))
            .await
            .expect(200);
        if !log["attempts"].as_array().unwrap().is_empty() {
            break log;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(log["attempts"][0]["error"], "address_refused", "{log}");
    assert_eq!(log["attempts"][0]["status"], Value::Null);
    let ping = h
        .post(
            &h.admin,
            &format!("/v1/orgs/acme/webhooks/{id}/test"),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(ping["error"], "address_refused", "{ping}");
    assert!(receiver.got().is_empty(), "the receiver was reached");

    // https only, unless allowed.
    let strict = common::start(Backend::Sqlite).await;
    strict
        .post(
            &strict.admin,
            "/v1/orgs/acme/webhooks",
            json!({ "url": "http://hooks.example.com/", "events": ["*"] }),
        )
        .await
        .expect_error(400, "invalid_webhook");
}

/// A redirect is a failed attempt; its target is never requested.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed() {
    let receiver = Receiver::start().await;
    let h = server(Backend::Sqlite, None).await;
    let (id, _) = add_webhook(&h, &format!("{}/hook", receiver.url), &["*"]).await;
    receiver.answer(302, None);
    let ping = h
        .post(
            &h.admin,
            &format!("/v1/orgs/acme/webhooks/{id}/test"),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(ping["delivered"], false);
    assert_eq!(ping["status"], 302);
    assert_eq!(ping["error"], "redirect");
    // Only /hook was asked (the creation's own event and the ping), never
    // /elsewhere: every request the receiver got carries a webhook-id of
    // this endpoint's deliveries.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = receiver.got();
    assert!(!got.is_empty() && got.len() <= 2, "{got:?}");
}

/// Twenty endpoints of one organization whose receiver never answers do
/// not hold up another organization's delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_orgs_failing_endpoints_do_not_delay_another_org() {
    // A receiver that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/hook", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let receiver = Receiver::start().await;
    let h = server(Backend::Sqlite, None).await;
    let mut stuck = Vec::new();
    for _ in 0..20 {
        stuck.push(add_webhook(&h, &silent_url, &["*"]).await.0);
    }
    let globex = h.create_org("globex").await;
    let created = h
        .post(
            &globex,
            "/v1/orgs/globex/webhooks",
            json!({ "url": format!("{}/hook", receiver.url), "events": ["token.created"] }),
        )
        .await
        .expect(201);
    assert!(created["id"].is_string());
    // acme's endpoints are all stuck on their first events now.
    h.token(&h.admin, "acme", "viewer").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    h.token(&globex, "globex", "viewer").await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "globex's delivery took {took:?} behind acme's stuck endpoints"
    );
    // A test ping takes a place of its organization's share too: acme's
    // are all taken by its stuck deliveries, globex's are free.
    h.post(
        &h.admin,
        &format!("/v1/orgs/acme/webhooks/{}/test", stuck[0]),
        json!({}),
    )
    .await
    .expect_error(429, "capacity");
    let theirs = created["id"].as_str().unwrap();
    let ping = h
        .post(
            &globex,
            &format!("/v1/orgs/globex/webhooks/{theirs}/test"),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(ping["delivered"], true, "{ping}");
}

/// Two replicas on one PostgreSQL database deliver each event to each
/// endpoint once, in order: 500 events to two endpoints, both replicas
/// taking leases as turns end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_deliver_each_event_once() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let Backend::Postgres(database_url) = backend.clone() else {
        unreachable!()
    };
    let receiver = Receiver::start().await;
    let h = server(backend, None).await;
    // The second replica: the same database, data directory (a shared
    // volume) and secrets key.
    let mut config = ServerConfig::new(h.dir.path().join("data"));
    config.database_url = Some(database_url);
    config.admin_keys = h.pinned.iter().map(|k| k.public_key()).collect();
    config.secrets_key_file = Some(h.dir.path().join("data/secrets.key"));
    config.webhook_policy.allow = vec![parse_network("127.0.0.0/8").unwrap()];
    config.webhook_policy.allow_http = true;
    let second = warden_registry::ControlPlane::open(&config).await.unwrap();
    let endpoints = 2;
    for n in 0..endpoints {
        add_webhook(
            &h,
            &format!("{}/hook?endpoint={n}", receiver.url),
            &["token.created"],
        )
        .await;
    }
    let events = 500;
    for _ in 0..events {
        h.token(&h.admin, "acme", "viewer").await;
    }
    let got = receiver
        .wait_for(endpoints * events, Duration::from_secs(120))
        .await;
    // Anything sent twice would come in by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = if receiver.got().len() > got.len() {
        receiver.got()
    } else {
        got
    };
    let mut seen = std::collections::HashMap::new();
    for received in &got {
        *seen
            .entry((received.uri.clone(), received.id.clone()))
            .or_insert(0) += 1;
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "delivered more than once: {repeated:?}"
    );
    assert_eq!(seen.len(), endpoints * events);
    // In order per endpoint.
    for n in 0..endpoints {
        let ids: Vec<i64> = got
            .iter()
            .filter(|r| r.uri.ends_with(&format!("endpoint={n}")))
            .map(|r| r.id.rsplit_once(':').unwrap().1.parse().unwrap())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    }
    drop(second);
}

/// A server that begins to stop while it delivers a backlog to a slow
/// endpoint ends its turn after the event under way, with the cursor
/// saved, well within the grace period; the next start sends the rest,
/// each event once. Before, a turn went on for up to 15 s after the signal,
/// and the end of a shorter grace period cut it off half-way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_server_ends_its_delivery_turn_between_events() {
    let receiver = Receiver::start().await;
    *receiver.delay.lock().unwrap() = Duration::from_millis(400);
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut config = ServerConfig::new(dir.path().join("data"));
        config.webhook_policy.allow = vec![parse_network("127.0.0.0/8").unwrap()];
        config.webhook_policy.allow_http = true;
        config
    };
    let plane = Arc::new(
        warden_registry::ControlPlane::open(&config())
            .await
            .unwrap(),
    );
    let admin = plane.bootstrap_token.clone().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = {
        let plane = plane.clone();
        tokio::spawn(async move {
            plane
                .serve_until(
                    listener,
                    warden_registry::ConnectionLimits::default(),
                    async {
                        let _ = stopped.await;
                    },
                )
                .await
        })
    };
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{url}/v1/orgs/acme/webhooks"))
        .bearer_auth(&admin)
        .json(&json!({ "url": format!("{}/hook", receiver.url), "events": ["token.created"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let events = 12;
    for n in 0..events {
        let made = http
            .post(format!("{url}/v1/orgs/acme/tokens"))
            .bearer_auth(&admin)
            .json(&json!({ "name": format!("t{n}"), "role": "viewer" }))
            .send()
            .await
            .unwrap();
        assert_eq!(made.status(), 201);
    }
    receiver.wait_for(2, Duration::from_secs(20)).await;
    let signalled = Instant::now();
    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
    let took = signalled.elapsed();
    let before_restart = receiver.got().len();
    assert!(
        before_restart < events,
        "the whole backlog went out after the signal ({before_restart} of {events}, in {took:?})"
    );
    drop(plane);

    // The next start sends the rest, nothing twice.
    *receiver.delay.lock().unwrap() = Duration::ZERO;
    let again = warden_registry::ControlPlane::open(&config())
        .await
        .unwrap();
    let got = receiver.wait_for(events, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = if receiver.got().len() > got.len() {
        receiver.got()
    } else {
        got
    };
    let ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    let distinct: std::collections::HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(
        (ids.len(), distinct.len()),
        (events, events),
        "each event once: {ids:?}"
    );
    drop(again);
}
