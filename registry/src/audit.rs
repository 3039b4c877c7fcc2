//! The audit log: every change is appended in the same transaction as the
//! change, to a hash chain per organization.
//!
//! Entry `n` stores `hash = sha256(prev_hash || canonical JSON of the entry)`
//! with `prev_hash` the hash of entry `n - 1` (64 zeros for the first), and
//! `audit_heads` keeps the last sequence number and hash of each chain. An
//! edited entry no longer matches its hash; a deleted entry leaves a gap, a
//! broken link, or a head that points past the end. [`verify_chain`] checks all
//! of this and is what `warden audit verify` runs on what the server returns.

use crate::db::now_ms;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use sqlx::{Any, Transaction};

/// The `prev_hash` of the first entry of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

macro_rules! actions {
    ($( $(#[$doc:meta])* $variant:ident = $text:literal, )*) => {
        /// What an audit entry records: every action the server writes, in
        /// one list. The events module says which event each one is, by an
        /// exhaustive match, so a new action cannot go without an event.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Action {
            $( $(#[$doc])* $variant, )*
        }

        impl Action {
            /// Every action.
            pub const ALL: &'static [Action] = &[$(Action::$variant),*];

            /// As the entry stores it, e.g. `release.publish`.
            pub fn as_str(self) -> &'static str {
                match self { $(Action::$variant => $text,)* }
            }

            /// The action an entry names.
            pub fn parse(text: &str) -> Option<Action> {
                match text { $($text => Some(Action::$variant),)* _ => None }
            }
        }
    };
}

actions! {
    /// A release was published.
    ReleasePublish = "release.publish",
    /// An approval of a release was recorded.
    ReleaseApprove = "release.approve",
    /// A release was rejected.
    ReleaseReject = "release.reject",
    /// A release was yanked.
    ReleaseYank = "release.yank",
    /// The server refused to run a release it could not verify.
    ReleaseRefused = "release.refused",
    /// A compiled-code cache entry failed its check and was discarded.
    CacheRejected = "cache.rejected",
    /// A key was registered.
    KeyAdd = "key.add",
    /// A key was revoked.
    KeyRevoke = "key.revoke",
    /// A token was created.
    TokenCreate = "token.create",
    /// A token was revoked.
    TokenRevoke = "token.revoke",
    /// A plugin's configuration was replaced.
    PluginConfig = "plugin.config",
    /// A plugin's secret was set.
    SecretSet = "secret.set",
    /// A plugin's secret was removed.
    SecretRemoved = "secret.removed",
    /// The organization was created.
    OrgCreate = "org.create",
    /// A manifest was pushed through `/v2`.
    ManifestPut = "oci.manifest.put",
    /// A webhook endpoint was created.
    WebhookCreate = "webhook.create",
    /// A webhook endpoint was changed.
    WebhookUpdate = "webhook.update",
    /// A webhook endpoint was removed.
    WebhookDelete = "webhook.delete",
    /// A webhook endpoint's signing secret was rotated.
    WebhookRotate = "webhook.rotate",
    /// The server disabled a webhook endpoint.
    WebhookDisable = "webhook.disable",
    /// A webhook endpoint's deliveries were moved back to replay events.
    WebhookReplay = "webhook.replay",
    /// One event's redelivery to a webhook endpoint was asked for.
    WebhookRedeliver = "webhook.redeliver",
}

/// One entry of an organization's audit chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditEntry {
    /// The organization whose chain this is.
    pub org: String,
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When, in Unix milliseconds.
    pub at: i64,
    /// Who: `token:<id>` or `system`.
    pub actor: String,
    /// What, e.g. `release.publish`.
    pub action: String,
    /// On what, e.g. `acme/hello@1.0.0`.
    pub target: String,
    /// The particulars, as a JSON object (text).
    pub details: String,
    /// The hash of the previous entry.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

/// The last entry of a chain, as `audit_heads` records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditHead {
    /// The organization.
    pub org: String,
    /// Sequence number of the last entry (0: empty chain).
    pub seq: i64,
    /// Hash of the last entry.
    pub hash: String,
}

/// The hash of an entry given its fields.
pub fn entry_hash(entry: &AuditEntry) -> String {
    let details: Json =
        serde_json::from_str(&entry.details).unwrap_or(Json::String(entry.details.clone()));
    let body = json!({
        "org": entry.org,
        "seq": entry.seq,
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "details": details,
    });
    let canonical = warden_host::canonical_json(&body)
        .unwrap_or_else(|_| serde_json::to_vec(&body).unwrap_or_default());
    let mut hasher = Sha256::new();
    hasher.update(entry.prev_hash.as_bytes());
    hasher.update(&canonical);
    hex::encode(hasher.finalize())
}

/// Where a chain is broken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// An entry is missing.
    #[error("entry {expected} is missing (found {found} next): an entry was deleted")]
    Gap {
        /// The sequence number that should come next.
        expected: i64,
        /// The one that came.
        found: i64,
    },
    /// An entry's content does not match its hash.
    #[error("entry {0} does not match its hash: it was edited")]
    Edited(i64),
    /// An entry does not link to the one before it.
    #[error("entry {0} does not link to entry {prev}: the chain was rewritten", prev = .0 - 1)]
    Unlinked(i64),
    /// The head says the chain is longer (or different) than the entries.
    #[error(
        "the chain head says entry {head_seq} ends it, the entries end at {last}: entries were deleted or the head was edited"
    )]
    Head {
        /// The head's sequence number.
        head_seq: i64,
        /// The last entry's.
        last: i64,
    },
}

/// Checks a whole chain, in order from entry 1, against its head. Returns the
/// number of entries checked.
pub fn verify_chain(entries: &[AuditEntry], head: &AuditHead) -> Result<usize, ChainBreak> {
    let mut prev = GENESIS.to_owned();
    let mut expected = 1;
    for entry in entries {
        if entry.seq != expected {
            return Err(ChainBreak::Gap {
                expected,
                found: entry.seq,
            });
        }
        if entry.prev_hash != prev {
            return Err(ChainBreak::Unlinked(entry.seq));
        }
        if entry_hash(entry) != entry.hash {
            return Err(ChainBreak::Edited(entry.seq));
        }
        prev = entry.hash.clone();
        expected += 1;
    }
    let last = expected - 1;
    if head.seq != last || head.hash != prev && last > 0 {
        return Err(ChainBreak::Head {
            head_seq: head.seq,
            last,
        });
    }
    Ok(entries.len())
}

/// A write transaction with its audit entry reserved: the organization's chain
/// is locked (first statement of the transaction, so SQLite takes its write
/// lock at once and PostgreSQL serializes writers of one org on the head row)
/// until [`Change::commit`] appends the entry, commits, and marks the org
/// changed for whatever caches its data ([`crate::changes`]).
pub struct Change {
    db: crate::db::Db,
    tx: Transaction<'static, Any>,
    org: String,
    seq: i64,
    prev_hash: String,
}

impl Change {
    /// Starts a change to `org`'s objects.
    pub async fn begin(db: &crate::db::Db, org: &str) -> Result<Change, sqlx::Error> {
        let mut tx = db.pool().begin().await?;
        let row: Option<(i64, String)> = sqlx::query_as(
            "UPDATE audit_heads SET seq = seq + 1 WHERE org = $1 RETURNING seq, hash",
        )
        .bind(org)
        .fetch_optional(&mut *tx)
        .await?;
        let (seq, prev_hash) = match row {
            Some(row) => row,
            None => {
                // The organization's first change: its creation.
                sqlx::query("INSERT INTO audit_heads (org, seq, hash) VALUES ($1, 1, $2)")
                    .bind(org)
                    .bind(GENESIS)
                    .execute(&mut *tx)
                    .await?;
                (1, GENESIS.to_owned())
            }
        };
        Ok(Change {
            db: db.clone(),
            tx,
            org: org.to_owned(),
            seq,
            prev_hash,
        })
    }

    /// The transaction, for the change itself.
    pub fn tx(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    /// Appends the audit entry and commits everything.
    pub async fn commit(
        mut self,
        actor: &str,
        action: Action,
        target: &str,
        details: Json,
    ) -> Result<AuditEntry, sqlx::Error> {
        let mut entry = AuditEntry {
            org: self.org.clone(),
            seq: self.seq,
            at: now_ms(),
            actor: actor.to_owned(),
            action: action.as_str().to_owned(),
            target: target.to_owned(),
            details: details.to_string(),
            prev_hash: self.prev_hash.clone(),
            hash: String::new(),
        };
        entry.hash = entry_hash(&entry);
        sqlx::query(
            "INSERT INTO audit (org, seq, at, actor, action, target, details, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&entry.org)
        .bind(entry.seq)
        .bind(entry.at)
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(&entry.details)
        .bind(&entry.prev_hash)
        .bind(&entry.hash)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query("UPDATE audit_heads SET hash = $1 WHERE org = $2")
            .bind(&entry.hash)
            .bind(&entry.org)
            .execute(&mut *self.tx)
            .await?;
        let committed = self.tx.commit().await;
        // Whether or not the commit reached the database, what was cached
        // from this org's data is dropped: a change never goes unnoticed.
        match committed {
            Ok(()) => self
                .db
                .changes()
                .committed(&self.org, entry.seq, &entry.hash),
            Err(error) => {
                self.db.changes().changed(&self.org);
                return Err(error);
            }
        }
        Ok(entry)
    }
}

/// A page of the audit chain.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Entries in sequence order.
    pub entries: Vec<AuditEntry>,
    /// The chain's head when the page was read.
    pub head: AuditHead,
}

/// Up to `limit` entries of `org`'s chain after sequence number `after`,
/// with the head, read in one transaction so they agree.
pub async fn read_page(
    db: &crate::db::Db,
    org: &str,
    after: i64,
    limit: i64,
) -> Result<AuditPage, sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    let head: Option<AuditHead> =
        sqlx::query_as("SELECT org, seq, hash FROM audit_heads WHERE org = $1")
            .bind(org)
            .fetch_optional(&mut *tx)
            .await?;
    let entries = sqlx::query_as(
        "SELECT org, seq, at, actor, action, target, details, prev_hash, hash FROM audit
         WHERE org = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(org)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(AuditPage {
        entries,
        head: head.unwrap_or(AuditHead {
            org: org.to_owned(),
            seq: 0,
            hash: GENESIS.to_owned(),
        }),
    })
}

/// What a reader narrows the log to.
#[derive(Clone, Copy, Debug, Default)]
pub struct AuditFilter<'a> {
    /// Only this action, e.g. `release.reject`.
    pub action: Option<&'a str>,
    /// Only targets that start with this, e.g. `acme/hello`.
    pub target_prefix: Option<&'a str>,
}

/// Up to `limit` entries of `org`'s chain that pass `filter`, newest first,
/// among those numbered from `from` up to (not including) `before`: the
/// caller bounds how many rows one read may pass over.
pub async fn read_newest(
    db: &crate::db::Db,
    org: &str,
    from: i64,
    before: i64,
    limit: i64,
    filter: AuditFilter<'_>,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT org, seq, at, actor, action, target, details, prev_hash, hash FROM audit
         WHERE org = $1 AND seq >= $2 AND seq < $3 AND ($4 = '' OR action = $4)
           AND ($5 = '' OR substr(target, 1, length($5)) = $5)
         ORDER BY seq DESC LIMIT $6",
    )
    .bind(org)
    .bind(from)
    .bind(before)
    .bind(filter.action.unwrap_or(""))
    .bind(filter.target_prefix.unwrap_or(""))
    .bind(limit)
    .fetch_all(db.pool())
    .await
}

/// Appends one entry that records an event rather than a change (a refused
/// release, a discarded cache entry).
pub async fn record(
    db: &crate::db::Db,
    org: &str,
    actor: &str,
    action: Action,
    target: &str,
    details: Json,
) -> Result<AuditEntry, sqlx::Error> {
    Change::begin(db, org)
        .await?
        .commit(actor, action, target, details)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> (Vec<AuditEntry>, AuditHead) {
        let mut prev = GENESIS.to_owned();
        let mut entries = Vec::new();
        for seq in 1..=n {
            let mut entry = AuditEntry {
                org: "acme".into(),
                seq,
                at: 1000 + seq,
                actor: "system".into(),
                action: "test".into(),
                target: format!("t{seq}"),
                details: r#"{"b":1,"a":"x"}"#.into(),
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            entry.hash = entry_hash(&entry);
            prev = entry.hash.clone();
            entries.push(entry);
        }
        let head = AuditHead {
            org: "acme".into(),
            seq: n,
            hash: prev,
        };
        (entries, head)
    }

    #[test]
    fn an_intact_chain_verifies() {
        let (entries, head) = chain(5);
        assert_eq!(verify_chain(&entries, &head), Ok(5));
    }

    #[test]
    fn an_edited_entry_is_found() {
        let (mut entries, head) = chain(5);
        entries[2].target = "something else".into();
        assert_eq!(verify_chain(&entries, &head), Err(ChainBreak::Edited(3)));
    }

    #[test]
    fn a_deleted_entry_is_found() {
        let (mut entries, head) = chain(5);
        entries.remove(1);
        assert_eq!(
            verify_chain(&entries, &head),
            Err(ChainBreak::Gap {
                expected: 2,
                found: 3
            })
        );
        let (mut entries, head) = chain(5);
        entries.pop();
        assert_eq!(
            verify_chain(&entries, &head),
            Err(ChainBreak::Head {
                head_seq: 5,
                last: 4
            })
        );
    }

    #[test]
    fn a_rehashed_entry_breaks_the_link_to_the_next() {
        let (mut entries, head) = chain(5);
        entries[1].target = "forged".into();
        entries[1].hash = entry_hash(&entries[1]);
        assert_eq!(verify_chain(&entries, &head), Err(ChainBreak::Unlinked(3)));
    }
}
