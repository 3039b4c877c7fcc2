//! Which release runs: the newest approved version of a plugin that matches
//! a semver requirement, with what the runtime needs to verify and load it.
//! The one place where "the newest approved version" is chosen.

use super::status::Status;
use crate::db::Db;
pub use crate::records::{ReleaseRecord, Resolved, Skipped};
use semver::{Version, VersionReq};
use warden_host::{Digest, Envelope};

/// Why no release could be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// No such plugin in the org.
    #[error("no plugin {org}/{name}")]
    NoPlugin {
        /// The org.
        org: String,
        /// The plugin.
        name: String,
    },
    /// The plugin has no approved release (matching the requirement).
    #[error("{plugin} has no approved release{}", requirement.as_ref().map(|r| format!(" matching {r}")).unwrap_or_default())]
    NoApprovedRelease {
        /// `org/name`.
        plugin: String,
        /// The requirement, if one was given.
        requirement: Option<VersionReq>,
    },
    /// The chosen release cannot be trusted from what the database holds
    /// (its publisher key is revoked or unknown, a stored envelope is
    /// malformed): refused before anything is loaded.
    #[error("{reference} was refused: {reason}")]
    Untrusted {
        /// `org/name@version`.
        reference: String,
        /// Why.
        reason: String,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// A stored value that the control plane wrote is unreadable.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// An approved release of a plugin, as stored, with whether the database
/// still trusts its publisher key (registered and not revoked).
#[derive(Debug)]
pub(crate) struct ApprovedRelease {
    /// Its version.
    pub version: Version,
    /// The release statement's envelope (JSON).
    pub envelope: String,
    /// Of its OCI manifest.
    pub manifest_digest: Digest,
    /// Of its component (`sha256:...`).
    pub component_digest: String,
    /// The key id of its publisher key.
    pub publisher_key: String,
    /// Whether that key is registered and not revoked.
    pub publisher_trusted: bool,
}

/// The approved releases of `org/name`, in no order: the one query both the
/// choice of a release to run ([`resolve`]) and the dependency solver's
/// catalog read. A row whose version or manifest digest does not parse
/// (not written by this server) is left out: the database may remove
/// trust, never add it.
pub(crate) async fn approved_releases(
    db: &Db,
    org: &str,
    name: &str,
) -> Result<Vec<ApprovedRelease>, sqlx::Error> {
    let rows: Vec<(String, String, String, String, String, i64)> = sqlx::query_as(
        "SELECT r.version, r.envelope, r.manifest_digest, r.component_digest, r.publisher_key,
                CAST(CASE WHEN k.key_id IS NOT NULL AND k.revoked_at IS NULL
                          THEN 1 ELSE 0 END AS BIGINT)
         FROM releases r LEFT JOIN signing_keys k
           ON k.org = r.org AND k.key_id = r.publisher_key
         WHERE r.org = $1 AND r.name = $2 AND r.status = $3",
    )
    .bind(org)
    .bind(name)
    .bind(Status::Approved.as_str())
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(
            |(version, envelope, manifest, component_digest, publisher_key, trusted)| {
                let parsed = Version::parse(&version).ok().zip(manifest.parse().ok());
                if parsed.is_none() {
                    tracing::warn!(release = %format!("{org}/{name}@{version}"),
                        "an approved release's version or manifest digest is unreadable; left out");
                }
                let (version, manifest_digest) = parsed?;
                Some(ApprovedRelease {
                    version,
                    envelope,
                    manifest_digest,
                    component_digest,
                    publisher_key,
                    publisher_trusted: trusted != 0,
                })
            },
        )
        .collect())
}

/// The row with the newest semver version among `rows` that `keep` accepts;
/// rows whose version does not parse are skipped.
pub fn newest_by_version<T>(
    rows: impl IntoIterator<Item = T>,
    version: impl Fn(&T) -> &str,
    keep: impl Fn(&Version) -> bool,
) -> Option<T> {
    rows.into_iter()
        .filter_map(|row| Some((Version::parse(version(&row)).ok()?, row)))
        .filter(|(parsed, _)| keep(parsed))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, row)| row)
}

/// The newest approved release of `org/name` matching `requirement` (any
/// version without one) that the database still trusts, with its approvals (those by admin keys revoked in
/// the database left out: fewer than `approvals_required` left is refused),
/// its publisher key (which must be registered and not revoked) and the
/// plugin's configuration.
pub async fn resolve(
    db: &Db,
    org: &str,
    name: &str,
    requirement: Option<&VersionReq>,
    approvals_required: u32,
) -> Result<Resolved, ResolveError> {
    let plugin: Option<(String,)> =
        sqlx::query_as("SELECT config FROM plugins WHERE org = $1 AND name = $2")
            .bind(org)
            .bind(name)
            .fetch_optional(db.pool())
            .await?;
    let Some((config,)) = plugin else {
        return Err(ResolveError::NoPlugin {
            org: org.to_owned(),
            name: name.to_owned(),
        });
    };
    // Newest first, among those matching the requirement.
    let mut candidates: Vec<ApprovedRelease> = approved_releases(db, org, name)
        .await?
        .into_iter()
        .filter(|release| requirement.is_none_or(|r| r.matches(&release.version)))
        .collect();
    candidates.sort_by(|a, b| b.version.cmp(&a.version));
    if candidates.is_empty() {
        return Err(ResolveError::NoApprovedRelease {
            plugin: format!("{org}/{name}"),
            requirement: requirement.cloned(),
        });
    }
    // The newest release the database still trusts runs; the newer ones
    // it does not are skipped, and the answer says which and why. If none
    // is trusted, the newest one's reason is the refusal.
    let mut skipped = Vec::new();
    for candidate in candidates.into_iter().take(MAX_SKIPPED + 1) {
        let ApprovedRelease {
            version,
            envelope,
            manifest_digest,
            publisher_key,
            ..
        } = candidate;
        let version = version.to_string();
        let reference = format!("{org}/{name}@{version}");
        let untrusted = |reason: String| ResolveError::Untrusted {
            reference: reference.clone(),
            reason,
        };
        let trust = trust_of(db, org, name, &version, &publisher_key, approvals_required).await?;
        let (publisher, counted) = match trust {
            Ok(trusted) => trusted,
            Err(reason) => {
                skipped.push(Skipped { version, reason });
                continue;
            }
        };
        let parse = |text: &str| -> Result<Envelope, ResolveError> {
            serde_json::from_str(text)
                .map_err(|e| untrusted(format!("a stored envelope is malformed: {e}")))
        };
        let record = ReleaseRecord {
            repository: format!("{org}/{name}"),
            version: version.clone(),
            manifest_digest,
            envelope: parse(&envelope)?,
            approvals: counted.iter().map(|e| parse(e)).collect::<Result<_, _>>()?,
            publisher,
            key: Default::default(),
        };
        let config = serde_json::from_str(&config)
            .map_err(|e| ResolveError::Corrupt(format!("configuration of {org}/{name}: {e}")))?;
        return Ok(Resolved {
            record,
            config,
            skipped,
        });
    }
    let newest = skipped.swap_remove(0);
    Err(ResolveError::Untrusted {
        reference: format!("{org}/{name}@{}", newest.version),
        reason: newest.reason,
    })
}

/// Newer releases one resolution passes over for an older trusted one, at
/// most; past them, the plugin is refused.
pub const MAX_SKIPPED: usize = 16;

/// Whether the database still trusts `org/name@version`, signed by
/// `publisher_key`: the key, registered and not revoked, and the approvals
/// by admin keys not revoked (fewer than `approvals_required` left is no
/// trust). `Ok(Err(reason))` when it does not.
async fn trust_of(
    db: &Db,
    org: &str,
    name: &str,
    version: &str,
    publisher_key: &str,
    approvals_required: u32,
) -> Result<Result<(warden_host::PublicKey, Vec<String>), String>, ResolveError> {
    let key: Option<(String, Option<i64>)> = sqlx::query_as(
        "SELECT public_key, revoked_at FROM signing_keys WHERE org = $1 AND key_id = $2",
    )
    .bind(org)
    .bind(publisher_key)
    .fetch_optional(db.pool())
    .await?;
    let publisher = match key {
        Some((public_key, None)) => public_key
            .parse()
            .map_err(|e| ResolveError::Corrupt(format!("signing key {publisher_key}: {e}")))?,
        Some((_, Some(_))) | None => {
            return Ok(Err(format!(
                "publisher key {publisher_key} is revoked or unknown"
            )));
        }
    };
    // The database may remove trust, never add it: an approval by a key
    // revoked here no longer counts, whatever the pinned keys say.
    let approvals: Vec<(String, String, Option<i64>)> = sqlx::query_as(
        "SELECT a.envelope, a.key_id, k.revoked_at FROM approvals a
         LEFT JOIN signing_keys k ON k.org = a.org AND k.key_id = a.key_id
         WHERE a.org = $1 AND a.name = $2 AND a.version = $3
         ORDER BY a.key_id",
    )
    .bind(org)
    .bind(name)
    .bind(version)
    .fetch_all(db.pool())
    .await?;
    let revoked: Vec<&str> = approvals
        .iter()
        .filter(|(_, _, revoked_at)| revoked_at.is_some())
        .map(|(_, key_id, _)| key_id.as_str())
        .collect();
    let counted: Vec<String> = approvals
        .iter()
        .filter(|(_, _, revoked_at)| revoked_at.is_none())
        .map(|(envelope, _, _)| envelope.clone())
        .collect();
    if !revoked.is_empty() && counted.len() < approvals_required as usize {
        return Ok(Err(format!(
            "it was approved with admin key {} which has been revoked; {} of {approvals_required} approvals remain",
            revoked.join(", "),
            counted.len()
        )));
    }
    Ok(Ok((publisher, counted)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn newest(versions: &[&str], requirement: Option<&str>) -> Option<String> {
        let requirement = requirement.map(|r| VersionReq::parse(r).unwrap());
        newest_by_version(
            versions.iter().map(|v| v.to_string()),
            String::as_str,
            |v| requirement.as_ref().is_none_or(|r| r.matches(v)),
        )
    }

    #[test]
    fn the_newest_version_is_chosen_by_semver_not_by_text() {
        assert_eq!(
            newest(&["1.9.0", "1.10.0", "1.2.0"], None).as_deref(),
            Some("1.10.0")
        );
        assert_eq!(newest(&[], None), None);
    }

    #[test]
    fn a_requirement_limits_the_choice() {
        let versions = ["1.0.0", "1.4.2", "2.0.0", "2.1.0"];
        assert_eq!(newest(&versions, Some("^1")).as_deref(), Some("1.4.2"));
        assert_eq!(newest(&versions, Some("~1.0")).as_deref(), Some("1.0.0"));
        assert_eq!(newest(&versions, Some("=2.0.0")).as_deref(), Some("2.0.0"));
        assert_eq!(newest(&versions, Some("^3")), None);
    }

    #[test]
    fn pre_releases_run_only_when_asked_for() {
        let versions = ["1.0.0", "1.1.0-beta.1"];
        assert_eq!(newest(&versions, Some("^1")).as_deref(), Some("1.0.0"));
        assert_eq!(
            newest(&versions, Some(">=1.1.0-beta.1")).as_deref(),
            Some("1.1.0-beta.1")
        );
    }

    #[test]
    fn unparsable_versions_are_never_chosen() {
        assert_eq!(
            newest(&["not-a-version", "0.1.0"], None).as_deref(),
            Some("0.1.0")
        );
    }
}
