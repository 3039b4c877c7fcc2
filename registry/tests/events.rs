//! Events over real HTTP, on SQLite and PostgreSQL: every audit entry is an
//! event, in order, paged as JSON or streamed as Server-Sent Events that
//! resume from `Last-Event-ID`; payloads carry only their type's fields;
//! no organization sees another's.

mod common;

use common::{Backend, Harness, org};
use serde_json::{Value, json};
use std::time::Duration;
use warden_host::Limits;
use warden_test_programs::HELLO;

/// The events of `acme` after `after`, all pages.
async fn all_events(h: &Harness, token: &str, after: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = after.to_owned();
    loop {
        let page = h
            .get(
                token,
                &format!("/v1/orgs/acme/events?after={after}&limit=3"),
            )
            .await
            .expect(200);
        let batch = page["events"].as_array().unwrap().clone();
        after = page["last"].as_str().unwrap().to_owned();
        if batch.is_empty() {
            assert_eq!(page["last"], page["head"], "{page}");
            return events;
        }
        events.extend(batch);
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

async fn every_change_is_an_event_in_order(backend: Backend) {
    let o = org(backend, 1).await;
    let h = &o.h;
    let viewer = h.token(&h.admin, "acme", "viewer").await;
    let release = o
        .publish_declaring(&o.alice, "acme/hello", "1.0.0", HELLO, &[], &[])
        .await
        .expect(201);
    o.approve(&release, &[], Limits::default()).await;
    o.yank("acme/hello", "1.0.0").await;

    // An admin of the org sees them all, in the chain's order, one per
    // audit entry.
    let events = all_events(h, &h.admin, "acme:0").await;
    let audit = h
        .get(&h.admin, "/v1/orgs/acme/audit?limit=1000")
        .await
        .expect(200);
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(events.len(), entries.len(), "{events:#?}");
    for (seq, (event, entry)) in events.iter().zip(entries).enumerate() {
        assert_eq!(event["id"], format!("acme:{}", seq + 1));
        assert_eq!(event["org"], "acme");
        assert_eq!(event["actor"], entry["actor"]);
        assert_eq!(event["subject"], entry["target"]);
        assert!(
            event["timestamp"].as_str().unwrap().ends_with('Z'),
            "{event}"
        );
    }
    let kinds = types(&events);
    assert_eq!(kinds[0], "org.created");
    assert_eq!(
        &kinds[kinds.len() - 3..],
        ["release.published", "release.approved", "release.yanked"]
    );
    assert!(kinds.contains(&"token.created") && kinds.contains(&"key.added"));
    let published = &events[events.len() - 3];
    assert_eq!(published["subject"], "acme/hello@1.0.0");
    assert_eq!(published["data"]["component"], release["component_digest"]);
    assert_eq!(
        published["data"]["publisher_key"],
        o.alice.public_key().key_id()
    );
    let approved = &events[events.len() - 2];
    assert_eq!(approved["data"]["approvals"], 1);
    assert_eq!(approved["data"]["required"], 1);
    assert_eq!(events[events.len() - 1]["data"]["was"], "approved");

    // No token secret, in any event (the org's creation names its first
    // admin token in the audit details: not in the event).
    let text = serde_json::to_string(&events).unwrap();
    for secret in [&h.admin, &viewer, &o.publisher] {
        assert!(!text.contains(secret.as_str()));
    }
    assert_eq!(events[0]["data"], json!({ "operator": true }));

    // A viewer sees the same events but those about tokens, secrets,
    // configuration and refusals, which only admins read elsewhere too.
    let seen = all_events(h, &viewer, "acme:0").await;
    let admins_only = [
        "token.created",
        "token.revoked",
        "config.changed",
        "secret.set",
    ];
    let expected: Vec<&Value> = events
        .iter()
        .filter(|e| !admins_only.contains(&e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(seen.iter().collect::<Vec<_>>(), expected);
    assert!(kinds.iter().any(|k| admins_only.contains(k)));
    // Pages: `last` continues, an empty page ends at the head.
    let page = h
        .get(&h.admin, "/v1/orgs/acme/events?after=acme:2&limit=2")
        .await
        .expect(200);
    assert_eq!(types(page["events"].as_array().unwrap()), kinds[2..4]);
    assert_eq!(page["last"], "acme:4");
    assert_eq!(page["head"], format!("acme:{}", events.len()));

    // A change whose transaction fails (here: a second yank, refused after
    // its transaction began) is no event: the chain does not move.
    h.post(
        &h.admin,
        "/v1/plugins/acme/hello/releases/1.0.0/yank",
        json!({ "reason": "again" }),
    )
    .await
    .expect_error(409, "release_decided");
    let after = h
        .get(&h.admin, "/v1/orgs/acme/events?after=acme:0&limit=1")
        .await
        .expect(200);
    assert_eq!(after["head"], format!("acme:{}", events.len()));

    // Bad positions, and another org's events, are refused.
    for bad in ["acme", "acme:x", "acme:-1", "acme:01"] {
        h.get(&viewer, &format!("/v1/orgs/acme/events?after={bad}"))
            .await
            .expect_error(400, "invalid_query");
    }
    h.get(&viewer, "/v1/orgs/acme/events?after=globex:1")
        .await
        .expect_error(404, "not_found");
    // A position past the newest (an older backup restored) ends at the
    // newest: nothing after it is passed over.
    let past = h
        .get(
            &h.admin,
            &format!("/v1/orgs/acme/events?after=acme:{}", events.len() + 5),
        )
        .await
        .expect(200);
    assert_eq!(past["events"], json!([]));
    assert_eq!(past["last"], format!("acme:{}", events.len()));
    let globex = h.create_org("globex").await;
    h.get(&globex, "/v1/orgs/acme/events")
        .await
        .expect_error(403, "wrong_org");
    let theirs = h.get(&globex, "/v1/orgs/globex/events").await.expect(200);
    assert_eq!(types(theirs["events"].as_array().unwrap()), ["org.created"]);
}
on_both_databases!(every_change_is_an_event_in_order);

#[tokio::test]
async fn the_event_types_are_listed_with_their_schemas() {
    let h = common::start(Backend::Sqlite).await;
    let listed: Value = reqwest::get(format!("{}/v1/event-types", h.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for name in [
        "release.published",
        "release.approval_recorded",
        "release.approved",
        "release.rejected",
        "release.yanked",
        "key.added",
        "key.revoked",
        "token.created",
        "token.revoked",
        "config.changed",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let published = &listed["types"][0];
    assert_eq!(published["name"], "release.published");
    assert!(
        published["schema"]["properties"]["component"].is_object(),
        "{published}"
    );
    let document: Value = reqwest::get(format!("{}/openapi.json", h.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(document["components"]["schemas"]["PublishedData"].is_object());
    assert!(document["paths"]["/v1/orgs/{org}/events"]["get"].is_object());
}

/// A Server-Sent Events stream being read.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(h: &Harness, token: &str, last_event_id: Option<&str>) -> Stream {
        let mut request = h
            .http
            .get(format!("{}/v1/orgs/acme/events", h.url))
            .bearer_auth(token)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Stream {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (`id`, `event`, the data as JSON), skipping
    /// keep-alive comments; `None` when the stream ended.
    async fn next(&mut self) -> Option<(String, String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if id.is_empty() {
                    continue;
                }
                return Some((id, event, serde_json::from_str(&data).unwrap()));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.response.chunk())
                .await
                .expect("an event within 30 s")
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn a_stream_follows_changes_and_resumes_without_gap_or_repeat(backend: Backend) {
    let o = org(backend, 1).await;
    let h = &o.h;
    let reader = h.token(&h.admin, "acme", "admin").await;
    let viewer = h.token(&h.admin, "acme", "viewer").await;
    let head = h
        .get(&reader, "/v1/orgs/acme/events?limit=1")
        .await
        .expect(200)["head"]
        .as_str()
        .unwrap()
        .to_owned();
    let head_seq: u64 = head.rsplit_once(':').unwrap().1.parse().unwrap();

    // From the start (an empty Last-Event-ID is none): everything so far,
    // in order, then live changes.
    let mut stream = Stream::open(h, &reader, Some("")).await;
    for n in 1..=head_seq {
        let (id, _, event) = stream.next().await.unwrap();
        assert_eq!(id, format!("acme:{n}"));
        assert_eq!(event["id"], id);
    }
    // Every event from here on comes with the next id: no gap, no repeat.
    let mut seq = head_seq;
    let mut until = async |stream: &mut Stream, wanted: &str| -> (String, Value) {
        loop {
            let (id, kind, event) = stream.next().await.unwrap();
            seq += 1;
            assert_eq!(id, format!("acme:{seq}"), "{event}");
            assert_eq!(event["type"], kind);
            if kind == wanted {
                return (id, event);
            }
            // The publish's push comes first.
            assert_eq!(kind, "artifact.pushed", "{event}");
        }
    };
    let release = o
        .publish_declaring(&o.alice, "acme/hello", "1.0.0", HELLO, &[], &[])
        .await
        .expect(201);
    let (_, event) = until(&mut stream, "release.published").await;
    assert_eq!(event["subject"], "acme/hello@1.0.0");
    // Another org's changes never reach it.
    let globex = h.create_org("globex").await;
    h.token(&globex, "globex", "viewer").await;
    o.approve(&release, &[], Limits::default()).await;
    let (approved, _) = until(&mut stream, "release.approved").await;

    // Dropped; two changes meanwhile; resumed from the last id seen: the
    // next two events, no gap, no repeat.
    drop(stream);
    let config = h
        .call(
            &h.admin,
            reqwest::Method::PUT,
            "/v1/plugins/acme/hello/config",
            Some(json!({ "values": { "greeting": "hi" } })),
        )
        .await;
    assert!(config.status.is_success(), "{:?}", config.body);
    o.yank("acme/hello", "1.0.0").await;
    let mut stream = Stream::open(h, &reader, Some(&approved)).await;
    let (_, event) = until(&mut stream, "config.changed").await;
    assert_eq!(event["data"], json!({ "keys": ["greeting"] }));
    assert!(!event.to_string().contains("\"hi\""), "{event}");
    let (yanked, _) = until(&mut stream, "release.yanked").await;
    assert_eq!(seq, head_seq + 5, "a push, publish, approve, config, yank");
    // A viewer's stream passes over the configuration change.
    let mut theirs = Stream::open(h, &viewer, Some(&approved)).await;
    let (id, kind, _) = theirs.next().await.unwrap();
    assert_eq!((id, kind.as_str()), (yanked, "release.yanked"));
    drop(theirs);

    // A token has at most 4 streams open: the fifth is refused until one
    // closes. (`stream` is the first.)
    let mut more = Vec::new();
    for _ in 0..3 {
        more.push(Stream::open(h, &reader, None).await);
    }
    let refused = h
        .http
        .get(format!("{}/v1/orgs/acme/events", h.url))
        .bearer_auth(&reader)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "capacity", "{body}");
    drop(more.pop());
    // Its place is given back once the server sees the connection close.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let again = h
            .http
            .get(format!("{}/v1/orgs/acme/events", h.url))
            .bearer_auth(&reader)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        if again.status() == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", again.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(more);

    // A revoked token's stream ends.
    let tokens = h.get(&h.admin, "/v1/orgs/acme/tokens").await.expect(200);
    let reader_id = tokens
        .as_array()
        .or_else(|| tokens["tokens"].as_array())
        .unwrap()
        .iter()
        .rev()
        .find(|t| t["role"] == "admin" && t["name"] == "admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.call(
        &h.admin,
        reqwest::Method::DELETE,
        &format!("/v1/orgs/acme/tokens/{reader_id}"),
        None,
    )
    .await;
    // The revocation is itself an event: the stream may deliver it or not,
    // but it ends.
    let mut ended = false;
    for _ in 0..2 {
        if stream.next().await.is_none() {
            ended = true;
            break;
        }
    }
    assert!(ended, "the stream of a revoked token must end");
    // The other org's stream starts at its own first event.
    let mut theirs = {
        let response = h
            .http
            .get(format!("{}/v1/orgs/globex/events", h.url))
            .bearer_auth(&globex)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        Stream {
            response,
            buffer: String::new(),
        }
    };
    let (id, kind, _) = theirs.next().await.unwrap();
    assert_eq!((id.as_str(), kind.as_str()), ("globex:1", "org.created"));
}
on_both_databases!(a_stream_follows_changes_and_resumes_without_gap_or_repeat);
