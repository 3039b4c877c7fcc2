//! Events: every audit entry, as systems around Warden see it. The audit
//! chain is the outbox: an entry is appended in the same transaction as its
//! change, so an event exists exactly when its change committed, in one
//! total order per organization (the chain's), and nothing is written
//! twice. An event's id is `<org>:<seq>`, its entry's place in the chain;
//! its payload is read from the entry through the type's own fields
//! ([`types`]), so nothing else of the entry leaves the server.

pub mod delivery;
pub mod outbound;
pub mod signature;
pub mod streams;
pub mod types;

use crate::audit::{self, Action, AuditEntry};
use crate::db::Db;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::fmt;
use std::str::FromStr;
pub use types::EventType;

/// Where an event sits: its organization's audit chain, at `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventId {
    /// The organization.
    pub org: String,
    /// The audit entry's sequence number (from 1).
    pub seq: i64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.org, self.seq)
    }
}

impl FromStr for EventId {
    type Err = String;

    fn from_str(text: &str) -> Result<EventId, String> {
        let invalid =
            || format!("{text:?} is not an event id (expected <org>:<seq>, e.g. acme:42)");
        let (org, seq) = text.rsplit_once(':').ok_or_else(invalid)?;
        let seq: i64 = seq.parse().map_err(|_| invalid())?;
        if org.is_empty() || seq < 0 || seq.to_string() != text[org.len() + 1..] {
            return Err(invalid());
        }
        Ok(EventId {
            org: org.to_owned(),
            seq,
        })
    }
}

/// One event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// `<org>:<seq>`: stable, unique, and in order within the organization.
    pub id: String,
    /// What happened, e.g. `release.approved` (`GET /v1/event-types`).
    #[serde(rename = "type")]
    pub kind: String,
    /// When the change committed, RFC 3339 in UTC with milliseconds.
    pub timestamp: String,
    /// The organization.
    pub org: String,
    /// Who: `token:<id>` or `system`.
    pub actor: String,
    /// On what: `org/name@version`, `org/name`, a key id, a token id.
    pub subject: String,
    /// The type's payload (its schema is in `GET /v1/event-types`).
    #[schema(value_type = Object)]
    pub data: Json,
}

impl Event {
    /// The event of an audit entry and its type; `None` for an entry whose
    /// action this server does not know (written by a newer version).
    pub fn of_entry(entry: &AuditEntry) -> Option<(EventType, Event)> {
        let details: Json = serde_json::from_str(&entry.details).unwrap_or(Json::Null);
        let kind = EventType::of_action(Action::parse(&entry.action)?, &details);
        let event = Event {
            id: EventId {
                org: entry.org.clone(),
                seq: entry.seq,
            }
            .to_string(),
            kind: kind.name().to_owned(),
            timestamp: rfc3339_ms(entry.at),
            org: entry.org.clone(),
            actor: entry.actor.clone(),
            subject: entry.target.clone(),
            data: kind.payload(details),
        };
        Some((kind, event))
    }
}

/// Unix milliseconds as RFC 3339 in UTC, e.g. `2026-12-05T07:00:00.000Z`.
pub fn rfc3339_ms(at_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(at_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A page of an organization's events.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventPage {
    /// Events in order.
    pub events: Vec<Event>,
    /// Where this page ends: pass it as `after` for the next one (the
    /// `after` given when the page is empty).
    pub last: String,
    /// The organization's newest event when the page was read.
    pub head: String,
}

/// Who reads events: what each sees is decided here, by the type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// An admin of the organization: every event.
    Admin,
    /// Any other role: the events not [`EventType::for_admins_only`].
    Member,
}

impl Reader {
    /// Whether this reader sees events of `kind`.
    pub fn sees(self, kind: EventType) -> bool {
        self == Reader::Admin || !kind.for_admins_only()
    }
}

/// Up to `limit` entries of `org` after `after` (a sequence number), as the
/// events `reader` sees (the others are passed over, and still move `last`),
/// with where the page ends and the chain's head. A position past the head
/// (a database restored from an older backup) ends at the head: waiting
/// there would pass over every event up to it.
pub async fn page(
    db: &Db,
    org: &str,
    reader: Reader,
    after: i64,
    limit: i64,
) -> Result<EventPage, sqlx::Error> {
    let read = audit::read_page(db, org, after, limit).await?;
    let newest_read = read.entries.last().map(|entry| entry.seq);
    // Entries that committed after the head was read may be on the page.
    let head = read.head.seq.max(newest_read.unwrap_or(0));
    let last = newest_read.unwrap_or(after.min(head));
    let id = |seq| {
        EventId {
            org: org.to_owned(),
            seq,
        }
        .to_string()
    };
    Ok(EventPage {
        events: read
            .entries
            .iter()
            .filter_map(Event::of_entry)
            .filter(|(kind, _)| reader.sees(*kind))
            .map(|(_, event)| event)
            .collect(),
        last: id(last),
        head: id(head),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_refuse_other_spellings() {
        let id: EventId = "acme:42".parse().unwrap();
        assert_eq!(
            id,
            EventId {
                org: "acme".into(),
                seq: 42
            }
        );
        assert_eq!(id.to_string(), "acme:42");
        assert_eq!("acme:0".parse::<EventId>().unwrap().seq, 0);
        for bad in [
            "acme", ":4", "acme:", "acme:-1", "acme:+4", "acme:04", "acme:4x", "acme: 4",
        ] {
            assert!(bad.parse::<EventId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_796_454_000_123), "2026-12-05T07:00:00.123Z");
    }

    #[test]
    fn an_entry_becomes_its_event() {
        let entry = AuditEntry {
            org: "acme".into(),
            seq: 7,
            at: 0,
            actor: "token:t1".into(),
            action: "release.yank".into(),
            target: "acme/hello@1.0.0".into(),
            details: r#"{"reason":"broken","was":"approved"}"#.into(),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let (kind, event) = Event::of_entry(&entry).unwrap();
        assert_eq!(kind, EventType::ReleaseYanked);
        assert_eq!(event.id, "acme:7");
        assert_eq!(event.kind, "release.yanked");
        assert_eq!(event.subject, "acme/hello@1.0.0");
        assert_eq!(
            event.data,
            serde_json::json!({ "reason": "broken", "was": "approved" })
        );
    }
}
