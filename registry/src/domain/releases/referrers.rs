//! The signature and approval referrers: the OCI copies of the envelopes
//! the database records, so that they travel with the artifact. A referrer
//! is written after its change commits; the row's `referrer_at` (migration
//! 6) is the record that it was. A kill or a full disk between the commit
//! and the write leaves `referrer_at` empty, and [`repair_referrers`],
//! run at start and in the background, writes what is missing from the
//! envelope the row holds (writing one again is harmless: content
//! addressed, the same bytes).

use super::{ReleaseError, internal, repository};
use crate::artifact::ArtifactSource;
use crate::db::{Db, now_ms};
use crate::oci::Digest;
use std::time::Duration;
use warden_host::{APPROVAL_PAYLOAD_TYPE, RELEASE_PAYLOAD_TYPE};

/// How often the background pass looks for referrers still to write.
pub const REPAIR_INTERVAL: Duration = Duration::from_secs(30);

/// Rows one pass looks at, of each kind.
const PER_PASS: i64 = 500;

/// Which referrer a row stands for.
#[derive(Clone, Copy, Debug)]
pub(super) enum Referrer {
    /// The publisher's release statement.
    Release,
    /// One admin's approval, by its key id.
    Approval,
}

/// Writes the referrer of `org/name@version` (its `envelope`, as the row
/// holds it) and records in the row that it is written. Nothing to do
/// where the artifacts keep no referrers (an external registry).
pub(super) async fn write_referrer(
    db: &Db,
    artifacts: &ArtifactSource,
    kind: Referrer,
    (org, name, version): (&str, &str, &str),
    key_id: Option<&str>,
    manifest: &Digest,
    envelope: &str,
) -> Result<(), ReleaseError> {
    let repo = repository(org, name)?;
    let artifact_type = match kind {
        Referrer::Release => RELEASE_PAYLOAD_TYPE,
        Referrer::Approval => APPROVAL_PAYLOAD_TYPE,
    };
    if !artifacts
        .attach_envelope(&repo, manifest, artifact_type, envelope)
        .await?
    {
        return Ok(());
    }
    let marked = match kind {
        Referrer::Release => sqlx::query(
            "UPDATE releases SET referrer_at = $1 WHERE org = $2 AND name = $3 AND version = $4",
        )
        .bind(now_ms())
        .bind(org)
        .bind(name)
        .bind(version)
        .execute(db.pool())
        .await,
        Referrer::Approval => {
            sqlx::query(
                "UPDATE approvals SET referrer_at = $1
                 WHERE org = $2 AND name = $3 AND version = $4 AND key_id = $5",
            )
            .bind(now_ms())
            .bind(org)
            .bind(name)
            .bind(version)
            .bind(key_id.unwrap_or_default())
            .execute(db.pool())
            .await
        }
    };
    marked?;
    Ok(())
}

/// Writes every referrer whose row says it is not written yet (at most
/// [`PER_PASS`] of each kind a pass). Returns how many it wrote; one that
/// fails is logged and tried again at the next pass.
pub async fn repair_referrers(db: &Db, artifacts: &ArtifactSource) -> Result<usize, ReleaseError> {
    if !artifacts.keeps_referrers() {
        return Ok(0);
    }
    let releases: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT org, name, version, manifest_digest, envelope FROM releases
         WHERE referrer_at IS NULL ORDER BY created_at LIMIT $1",
    )
    .bind(PER_PASS)
    .fetch_all(db.pool())
    .await?;
    let approvals: Vec<(String, String, String, String, String, String)> = sqlx::query_as(
        "SELECT a.org, a.name, a.version, a.key_id, r.manifest_digest, a.envelope
         FROM approvals a JOIN releases r
           ON r.org = a.org AND r.name = a.name AND r.version = a.version
         WHERE a.referrer_at IS NULL ORDER BY a.created_at LIMIT $1",
    )
    .bind(PER_PASS)
    .fetch_all(db.pool())
    .await?;
    let mut written = 0;
    let rows =
        releases
            .into_iter()
            .map(|(org, name, version, manifest, envelope)| {
                (
                    Referrer::Release,
                    org,
                    name,
                    version,
                    None,
                    manifest,
                    envelope,
                )
            })
            .chain(approvals.into_iter().map(
                |(org, name, version, key_id, manifest, envelope)| {
                    (
                        Referrer::Approval,
                        org,
                        name,
                        version,
                        Some(key_id),
                        manifest,
                        envelope,
                    )
                },
            ));
    for (kind, org, name, version, key_id, manifest, envelope) in rows {
        let done = match manifest.parse::<Digest>() {
            Ok(manifest) => {
                write_referrer(
                    db,
                    artifacts,
                    kind,
                    (&org, &name, &version),
                    key_id.as_deref(),
                    &manifest,
                    &envelope,
                )
                .await
            }
            Err(e) => Err(internal(e)),
        };
        match done {
            Ok(()) => written += 1,
            Err(error) => tracing::warn!(release = %format!("{org}/{name}@{version}"), %error,
                "a referrer is still missing; tried again at the next pass"),
        }
    }
    if written > 0 {
        tracing::info!(
            written,
            "wrote referrers a crash or a full disk had left out"
        );
    }
    Ok(written)
}
