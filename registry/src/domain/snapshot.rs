//! What the invoke path needs, held in memory: who a token is, which
//! release of a plugin runs with which configuration, and what that
//! release's dependencies resolve to. A hit costs no database
//! round trip; a miss reads the database as [`tokens::authenticate`] and
//! [`resolution::resolve`] do and keeps the answer.
//!
//! Every entry carries a [`Stamp`] of its organization taken before the read
//! (see [`crate::changes`]), so an entry is never served after a change of
//! its organization: on this replica from the moment the change commits, on
//! other replicas within [`crate::changes::POLL_INTERVAL`] plus one query.
//! Nothing is served from memory unless the change feed was read
//! successfully within [`crate::changes::FOLLOW_BOUND`] (1 s): a replica
//! that cannot reach its database, or whose polls stall, goes back to the
//! database (and answers 503 if it is down) instead of serving what it read.
//! An entry is also never served once it is older than the snapshot's
//! maximum age, whatever the change feed says: that bounds how long a row
//! edited behind the control plane's back (which writes no audit entry) goes
//! unnoticed. Only answers that let a call proceed are kept; refusals are read
//! again every time.
//!
//! Each organization holds at most [`MAX_ENTRIES_PER_ORG`] entries of each
//! kind, so no tenant can push another's entries out.

use super::dependencies::{self, DependencyError, DependencySet};
use super::resolution::{self, ResolveError, Resolved};
use super::tokens::{self, AuthError, Caller};
use crate::changes::Stamp;
use crate::db::Db;
use semver::VersionReq;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How long an entry is served at most without being read again.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5);

/// Entries of one kind one organization may hold.
pub const MAX_ENTRIES_PER_ORG: usize = 1024;

/// The invoke path's data, cached per organization.
#[derive(Debug)]
pub struct Snapshot {
    max_age: Duration,
    callers: RwLock<Entries<Caller>>,
    releases: RwLock<Entries<Arc<Resolved>>>,
    dependencies: RwLock<Entries<Arc<DependencySet>>>,
}

impl Snapshot {
    /// A snapshot whose entries are read again after `max_age` at the latest.
    pub fn new(max_age: Duration) -> Snapshot {
        Snapshot {
            max_age,
            callers: RwLock::default(),
            releases: RwLock::default(),
            dependencies: RwLock::default(),
        }
    }

    /// The caller a presented secret authenticates, as
    /// [`tokens::authenticate`] says (expiry checked at every call).
    pub async fn caller(&self, db: &Db, secret: Option<&str>) -> Result<Caller, AuthError> {
        let secret = secret.ok_or(AuthError::Missing)?;
        let key = tokens::secret_hash(secret);
        let cached = db
            .changes()
            .is_following()
            .then(|| read(&self.callers).get(&key, self.max_age))
            .flatten();
        if let Some(caller) = cached {
            if caller.is_expired() {
                return Err(AuthError::Expired);
            }
            return Ok(caller);
        }
        // The token's org is known only from the answer: keep the answer only
        // if no org changed while it was read.
        let before = db.changes().any();
        let caller = tokens::authenticate(db, Some(secret)).await?;
        let stamp = db.changes().stamp(&caller.org);
        if db.changes().any() == before {
            write(&self.callers).insert(key, &caller.org, stamp, caller.clone());
        }
        Ok(caller)
    }

    /// The release of `org/name` that runs for `requirement`, as
    /// [`resolution::resolve`] says. `org` must be one the caller was
    /// authorized for.
    pub async fn release(
        &self,
        db: &Db,
        org: &str,
        name: &str,
        requirement: Option<&VersionReq>,
        approvals_required: u32,
    ) -> Result<Arc<Resolved>, ResolveError> {
        // Org and plugin names have no newline (`names::check_name`).
        let key = match requirement {
            Some(requirement) => format!("{org}\n{name}\n{requirement}"),
            None => format!("{org}\n{name}"),
        };
        self.through(db, &self.releases, org, key, || {
            resolution::resolve(db, org, name, requirement, approvals_required)
        })
        .await
    }

    /// What `org/name@version` links, as [`dependencies::dependency_set`]
    /// says. `org` must be one the caller was authorized for.
    pub async fn dependency_set(
        &self,
        db: &Db,
        gate: &dependencies::SolverGate,
        org: &str,
        name: &str,
        version: &str,
        approvals_required: u32,
    ) -> Result<Arc<DependencySet>, DependencyError> {
        let key = format!("{org}\n{name}\n{version}");
        self.through(db, &self.dependencies, org, key, || {
            dependencies::dependency_set(db, gate, org, name, version, approvals_required)
        })
        .await
    }

    /// The entry of `org` under `key` in `entries` if it may be served;
    /// otherwise what `read_now` answers, kept (with a stamp taken before the
    /// read) if it lets the call proceed.
    async fn through<V, E, F>(
        &self,
        db: &Db,
        entries: &RwLock<Entries<Arc<V>>>,
        org: &str,
        key: String,
        read_now: impl FnOnce() -> F,
    ) -> Result<Arc<V>, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        if db.changes().is_following()
            && let Some(value) = read(entries).get(&key, self.max_age)
        {
            return Ok(value);
        }
        let stamp = db.changes().stamp(org);
        let value = Arc::new(read_now().await?);
        write(entries).insert(key, org, stamp, value.clone());
        Ok(value)
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// Entries by key, each with its organization and stamp, and the keys of
/// each organization (so that one organization's entries start over without
/// looking at any other's).
#[derive(Debug)]
struct Entries<V> {
    entries: HashMap<String, Entry<V>>,
    by_org: HashMap<String, HashSet<String>>,
}

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Entries {
            entries: HashMap::new(),
            by_org: HashMap::new(),
        }
    }
}

#[derive(Debug)]
struct Entry<V> {
    org: String,
    stamp: Stamp,
    value: V,
}

impl<V: Clone> Entries<V> {
    fn get(&self, key: &str, max_age: Duration) -> Option<V> {
        self.entries
            .get(key)
            .filter(|entry| entry.stamp.is_fresh(max_age))
            .map(|entry| entry.value.clone())
    }

    fn insert(&mut self, key: String, org: &str, stamp: Stamp, value: V) {
        if let Some(old) = self.entries.get(&key)
            && old.org != org
            && let Some(keys) = self.by_org.get_mut(&old.org)
        {
            keys.remove(&key);
        }
        let keys = self.by_org.entry(org.to_owned()).or_default();
        if keys.len() >= MAX_ENTRIES_PER_ORG && !keys.contains(&key) {
            // This org's entries start over; no other org's are touched.
            for stale in keys.drain() {
                self.entries.remove(&stale);
            }
        }
        keys.insert(key.clone());
        self.entries.insert(
            key,
            Entry {
                org: org.to_owned(),
                stamp,
                value,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::Changes;

    const AGE: Duration = Duration::from_secs(60);

    #[test]
    fn an_entry_is_served_until_its_org_changes() {
        let changes = Changes::default();
        let mut entries = Entries::default();
        entries.insert("k".into(), "acme", changes.stamp("acme"), 1);
        entries.insert("g".into(), "globex", changes.stamp("globex"), 2);
        assert_eq!(entries.get("k", AGE), Some(1));
        changes.changed("acme");
        assert_eq!(entries.get("k", AGE), None);
        assert_eq!(entries.get("g", AGE), Some(2));
        assert_eq!(entries.get("k", Duration::ZERO), None);
    }

    #[test]
    fn an_org_at_its_cap_starts_over_without_touching_other_orgs() {
        let changes = Changes::default();
        let mut entries = Entries::default();
        entries.insert("globex".into(), "globex", changes.stamp("globex"), 0);
        for i in 0..MAX_ENTRIES_PER_ORG {
            entries.insert(format!("acme-{i}"), "acme", changes.stamp("acme"), i);
        }
        assert_eq!(entries.by_org["acme"].len(), MAX_ENTRIES_PER_ORG);
        assert_eq!(entries.get("acme-0", AGE), Some(0));
        entries.insert("acme-new".into(), "acme", changes.stamp("acme"), 7);
        assert_eq!(entries.by_org["acme"].len(), 1);
        assert_eq!(entries.get("acme-0", AGE), None);
        assert_eq!(entries.get("acme-new", AGE), Some(7));
        assert_eq!(entries.get("globex", AGE), Some(0));
        assert_eq!(entries.entries.len(), 2);
    }
}
