//! What the domain hands the runtime to run: a release as the database
//! describes it ([`ReleaseRecord`], verified again before anything counts),
//! a plugin's release as resolved ([`Resolved`], with what was [`Skipped`]),
//! and the dependency set of one invocation ([`DependencySet`]). Both the
//! domain and the runtime import this module; neither imports the other.

use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use warden_host::{Digest, Envelope, PublicKey};

/// What the database says about the release to run; everything here is
/// re-checked by `warden_host::verify_release` before it counts.
#[derive(Clone, Debug)]
pub struct ReleaseRecord {
    /// `org/name`.
    pub repository: String,
    /// Version.
    pub version: String,
    /// Of the OCI manifest.
    pub manifest_digest: Digest,
    /// The release statement's envelope.
    pub envelope: Envelope,
    /// The approvals' envelopes.
    pub approvals: Vec<Envelope>,
    /// The publisher's key, as registered.
    pub publisher: PublicKey,
    /// [`ReleaseRecord::cache_key`], computed once.
    pub key: std::sync::OnceLock<String>,
}

impl ReleaseRecord {
    /// The organization the release belongs to.
    pub(crate) fn org(&self) -> &str {
        self.repository
            .split_once('/')
            .map_or(self.repository.as_str(), |(org, _)| org)
    }

    /// A key that changes whenever anything verified changes (an edited row
    /// is a different key, so it is verified again, not served from cache).
    pub(crate) fn cache_key(&self) -> &str {
        self.key.get_or_init(|| self.compute_cache_key())
    }

    fn compute_cache_key(&self) -> String {
        let mut hasher = Sha256::new();
        for part in [
            &self.repository,
            &self.version,
            &self.manifest_digest.to_string(),
            &self.publisher.to_string(),
        ] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        for envelope in std::iter::once(&self.envelope).chain(&self.approvals) {
            hasher.update(serde_json::to_vec(envelope).unwrap_or_default());
            hasher.update([0]);
        }
        hex::encode(hasher.finalize())
    }
}

/// A resolved release: what to load, and the plugin's configuration.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The release, as the database describes it (verified again on load).
    pub record: ReleaseRecord,
    /// The admin-set configuration values of the plugin.
    pub config: BTreeMap<String, String>,
    /// Newer releases matching the requirement that were passed over
    /// because the database no longer trusts them, newest first.
    pub skipped: Vec<Skipped>,
}

/// A newer release passed over, and why.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Skipped {
    /// Its version.
    pub version: String,
    /// Why it is not trusted (a revoked publisher key, revoked approvals).
    pub reason: String,
}

/// A dependency as an invocation linked it, verified: `org/name`, version
/// and the digest of the component that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedRelease {
    /// `org/name`.
    pub name: String,
    /// Version.
    pub version: String,
    /// Of the component.
    pub digest: Digest,
}

/// What an invocation of one release links: its dependencies as they
/// resolve now, with what the runtime needs to verify and load each.
#[derive(Debug)]
pub struct DependencySet {
    /// Each dependency's record and configuration, by `org/name`.
    pub resolved: BTreeMap<String, Resolved>,
}
