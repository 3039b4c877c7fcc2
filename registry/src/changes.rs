//! Which organizations changed, so that what is cached from the database is
//! dropped the moment it may be wrong.
//!
//! Each organization has a generation counter. Every change committed
//! through [`crate::audit::Change`] (publish, approve, reject, yank, key,
//! token, configuration: every change is audited) advances its organization's
//! counter on this replica as soon as the transaction commits, before the
//! change's API call returns. Changes committed by other replicas sharing the
//! database are seen by [`watch`], which reads each organization's audit
//! sequence (`audit_heads.seq`, advanced in the same transaction as every
//! change) every [`POLL_INTERVAL`] and advances the counter of each
//! organization whose sequence moved.
//!
//! A cache entry carries a [`Stamp`] taken *before* the database read it came
//! from; it is fresh only while its organization's counter still has the
//! stamped value and the stamp is younger than the cache's maximum age. And
//! nothing cached is served unless a poll that *started* less than
//! [`FOLLOW_BOUND`] ago succeeded ([`Changes::is_following`]): a change
//! committed anywhere at instant `c` is either seen by such a poll or makes
//! the cache unusable from `c + FOLLOW_BOUND` on, so no replica serves what it
//! changed for longer than that, even when its polls fail or stall.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How often the audit sequences are read for changes made by other
/// replicas: the bound on how long another replica's change takes to reach
/// this one (plus one query).
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The longest a change committed by another replica can go unseen here.
pub const FOLLOW_BOUND: Duration = Duration::from_secs(1);

/// The generation counters of every organization seen so far.
#[derive(Debug)]
pub struct Changes {
    /// Bumped with every change of any organization, for whoever waits for
    /// one ([`Changes::subscribe`]: the event streams).
    wake: tokio::sync::watch::Sender<u64>,
    /// Advanced with every organization's counter.
    any: AtomicU64,
    orgs: RwLock<HashMap<String, Arc<AtomicU64>>>,
    /// The audit head (sequence and hash) of each organization at the last
    /// poll.
    seen: Mutex<HashMap<String, (i64, String)>>,
    /// When the last successful poll started.
    followed: Mutex<Option<Instant>>,
    /// Whether the last poll failed (or stalled past [`FOLLOW_BOUND`]):
    /// the database is away, and requests that need it are refused at once
    /// ([`Changes::database_away`]) until a poll succeeds again.
    away: std::sync::atomic::AtomicBool,
}

/// When a cached value was read: its organization's generation and the
/// instant, both taken before the read.
#[derive(Clone, Debug)]
pub struct Stamp {
    counter: Arc<AtomicU64>,
    generation: u64,
    taken: Instant,
}

impl Stamp {
    /// Whether nothing of the organization changed since the stamp was taken
    /// and it is younger than `max_age`.
    pub fn is_fresh(&self, max_age: Duration) -> bool {
        self.counter.load(Ordering::Acquire) == self.generation && self.taken.elapsed() < max_age
    }
}

impl Default for Changes {
    fn default() -> Changes {
        Changes {
            wake: tokio::sync::watch::Sender::new(0),
            any: AtomicU64::default(),
            orgs: RwLock::default(),
            seen: Mutex::default(),
            followed: Mutex::default(),
            away: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl Changes {
    fn counter(&self, org: &str) -> Arc<AtomicU64> {
        if let Some(counter) = self.orgs.read().unwrap_or_else(|e| e.into_inner()).get(org) {
            return counter.clone();
        }
        self.orgs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(org.to_owned())
            .or_default()
            .clone()
    }

    /// A stamp for a read of `org`'s data that is about to start. Only for
    /// organizations that exist (the caller was authorized for it), so the
    /// counters stay as many as the organizations.
    pub fn stamp(&self, org: &str) -> Stamp {
        let counter = self.counter(org);
        let generation = counter.load(Ordering::Acquire);
        Stamp {
            counter,
            generation,
            taken: Instant::now(),
        }
    }

    /// A value that advances with every change of any organization: read it
    /// before a read whose organization is known only from its result (a
    /// token), and keep the result only if it has not moved by the time the
    /// result's stamp is taken.
    pub fn any(&self) -> u64 {
        self.any.load(Ordering::Acquire)
    }

    /// `org` changed: everything cached from its data is stale.
    pub fn changed(&self, org: &str) {
        // `any` first: a reader that sees the org's new generation in its
        // stamp must also see `any` moved (see `Snapshot::caller`).
        self.any.fetch_add(1, Ordering::AcqRel);
        self.counter(org).fetch_add(1, Ordering::AcqRel);
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// `org`'s generation: it moves with every change of `org` committed
    /// here or seen by the poll.
    pub fn generation(&self, org: &str) -> u64 {
        self.counter(org).load(Ordering::Acquire)
    }

    /// A receiver that wakes after every change of any organization from
    /// now on (compare [`Changes::generation`] to see whether one's own
    /// organization moved).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.wake.subscribe()
    }

    /// Whether the database is away: the last poll failed or stalled. A
    /// request that needs the database is then answered 503 at once
    /// instead of waiting for a connection; the next poll that succeeds
    /// (every [`POLL_INTERVAL`]) ends it.
    pub fn database_away(&self) -> bool {
        self.away.load(Ordering::Relaxed)
    }

    /// Whether a poll that started less than [`FOLLOW_BOUND`] ago succeeded:
    /// only then may anything cached be served.
    pub fn is_following(&self) -> bool {
        self.followed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|started| started.elapsed() < FOLLOW_BOUND)
    }

    /// `org` changed on this replica and its audit head is now `seq`,
    /// `hash`: marked changed, and the poll will not count that head again
    /// (each organization's changes are serialized on its audit head, so
    /// every entry before `seq` was committed before it).
    pub fn committed(&self, org: &str, seq: i64, hash: &str) {
        self.changed(org);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match seen.get_mut(org) {
            Some(head) if head.0 >= seq => {}
            Some(head) => *head = (seq, hash.to_owned()),
            None => {
                seen.insert(org.to_owned(), (seq, hash.to_owned()));
            }
        }
    }

    /// Reads every organization's audit head and marks those that moved
    /// (another sequence or hash) or vanished since the last poll as changed.
    /// Returns how many did.
    pub async fn poll(&self, pool: &sqlx::AnyPool) -> Result<usize, sqlx::Error> {
        let started = Instant::now();
        let heads: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT org, seq, hash FROM audit_heads")
                .fetch_all(pool)
                .await?;
        let moved: Vec<String> = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let mut now: HashMap<String, (i64, String)> = HashMap::with_capacity(heads.len());
            let mut moved = Vec::new();
            for (org, seq, hash) in heads {
                if seen
                    .get(&org)
                    .is_none_or(|head| head.0 != seq || head.1 != hash)
                {
                    moved.push(org.clone());
                }
                now.insert(org, (seq, hash));
            }
            moved.extend(seen.keys().filter(|org| !now.contains_key(*org)).cloned());
            *seen = now;
            moved
        };
        for org in &moved {
            self.changed(org);
        }
        let mut followed = self.followed.lock().unwrap_or_else(|e| e.into_inner());
        if followed.is_none_or(|previous| previous < started) {
            *followed = Some(started);
        }
        Ok(moved.len())
    }
}

/// Polls `db`'s audit sequences every [`POLL_INTERVAL`] until the returned
/// task is aborted. A failing database is logged once per outage; nothing
/// cached is served from [`FOLLOW_BOUND`] after the last successful poll
/// started until a poll succeeds again.
pub fn watch(db: crate::db::Db) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(POLL_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            interval.tick().await;
            // A stalled read counts as a failed one.
            let polled =
                match tokio::time::timeout(FOLLOW_BOUND, db.changes().poll(db.pool())).await {
                    Ok(polled) => polled,
                    Err(_) => Err(sqlx::Error::PoolTimedOut),
                };
            // Away after two failed reads in a row: one slow read (a busy
            // pool) does not turn the API away.
            let failed_before = failing;
            db.changes()
                .away
                .store(polled.is_err() && failed_before, Ordering::Relaxed);
            match polled {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("the database answers again; changes are followed");
                }
                Ok(_) => {}
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(
                        "cannot read changes from the database ({error}); cached entries expire by age"
                    );
                }
                Err(_) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_makes_stamps_of_its_org_stale_and_no_other() {
        let changes = Changes::default();
        let acme = changes.stamp("acme");
        let globex = changes.stamp("globex");
        let any = changes.any();
        assert!(acme.is_fresh(Duration::from_secs(60)));
        changes.changed("acme");
        assert!(!acme.is_fresh(Duration::from_secs(60)));
        assert!(globex.is_fresh(Duration::from_secs(60)));
        assert_ne!(changes.any(), any);
        assert!(changes.stamp("acme").is_fresh(Duration::from_secs(60)));
    }

    #[test]
    fn a_change_moves_any_no_later_than_its_org() {
        let changes = Changes::default();
        let any = changes.any();
        changes.changed("acme");
        assert_ne!(changes.any(), any);
        assert!(!changes.is_following(), "no poll yet");
    }

    #[test]
    fn a_stamp_expires_with_age() {
        let changes = Changes::default();
        let stamp = changes.stamp("acme");
        assert!(stamp.is_fresh(Duration::from_secs(60)));
        assert!(!stamp.is_fresh(Duration::ZERO));
    }
}
