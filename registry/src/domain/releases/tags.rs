//! The version tags across a crash or a replica's start. In the embedded
//! store: the lock a publish holds on its tag until its record commits,
//! and the start-up reconciliation that waits on it. In an external
//! registry: the tag written after the commit, by the publish that won,
//! and written again in the background if that failed.

use super::{ReleaseError, internal, repository, stored};
use crate::artifact::ArtifactSource;
use crate::db::{Db, now_ms};
use crate::oci::{Digest, RepositoryName};

/// Untagged releases one background pass looks at.
const UNTAGGED_PER_PASS: i64 = 500;

/// The advisory lock that a publish holds from before it writes a version
/// tag until its record commits or rolls back, and that
/// [`reconcile_pending_tags`] takes before it judges that tag: a replica
/// starting while another publishes waits for that publish to end instead
/// of removing its tag.
pub(super) fn version_tag_lock(repo: &RepositoryName, tag: &str) -> String {
    format!("warden:version-tag:{repo}@{tag}")
}

/// Removes the version tags a crash left in the embedded store between a
/// publish's tag and its commit: a tag whose release is not recorded (with
/// that manifest) goes; one whose release is, stays. Run at start; a
/// publish still under way (by another replica on a shared store) is
/// waited for first.
pub async fn reconcile_pending_tags(
    db: &Db,
    store: &crate::oci::OciStore,
) -> Result<(), ReleaseError> {
    for (repo, tag, digest) in store.pending_tags().await {
        let (org, name) = (
            repo.org().to_owned(),
            repo.as_str()[repo.org().len() + 1..].to_owned(),
        );
        let mut waited = db.pool().begin().await?;
        db.lock_in_transaction(&mut waited, &version_tag_lock(&repo, &tag))
            .await?;
        let recorded = stored(db, &org, &name, &tag)
            .await?
            .is_some_and(|release| release.manifest_digest == digest);
        if !recorded {
            store.untag(&repo, &tag, &digest).await?;
            tracing::warn!(%repo, %tag, "removed a version tag whose publish did not commit (a crash)");
        }
        store.settle_tag(&repo, &tag).await;
        waited.commit().await?;
    }
    Ok(())
}

/// Writes the version tag of `org/name@version`, whose record has committed,
/// in an external registry, and records in the row (`tagged_at`) that the
/// tag is in place. (The embedded store's tag was written with the record:
/// only the row is marked.)
pub(super) async fn tag_committed_release(
    db: &Db,
    artifacts: &ArtifactSource,
    (org, name, version): (&str, &str, &str),
    manifest: &Digest,
) -> Result<(), ReleaseError> {
    let repo = repository(org, name)?;
    artifacts
        .tag_in_external_registry(&repo, version, manifest)
        .await
        .map_err(ReleaseError::Internal)?;
    sqlx::query("UPDATE releases SET tagged_at = $1 WHERE org = $2 AND name = $3 AND version = $4")
        .bind(now_ms())
        .bind(org)
        .bind(name)
        .bind(version)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Writes the external registry's version tags that a registry outage or a
/// crash left out after their publish committed (at most
/// [`UNTAGGED_PER_PASS`] a pass), and marks the rows. Returns how many it
/// wrote; one that fails is logged and tried again at the next pass.
pub async fn repair_external_tags(
    db: &Db,
    artifacts: &ArtifactSource,
) -> Result<usize, ReleaseError> {
    let untagged: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT org, name, version, manifest_digest FROM releases
         WHERE tagged_at IS NULL ORDER BY created_at LIMIT $1",
    )
    .bind(UNTAGGED_PER_PASS)
    .fetch_all(db.pool())
    .await?;
    let mut written = 0;
    for (org, name, version, manifest) in untagged {
        let done = match manifest.parse::<Digest>() {
            Ok(manifest) => {
                tag_committed_release(db, artifacts, (&org, &name, &version), &manifest).await
            }
            Err(e) => Err(internal(e)),
        };
        match done {
            Ok(()) => written += 1,
            Err(error) => tracing::warn!(release = %format!("{org}/{name}@{version}"), %error,
                "a version tag is still missing in the external registry; tried again at the next pass"),
        }
    }
    if written > 0 {
        tracing::info!(
            written,
            "wrote version tags an outage or a crash had left out"
        );
    }
    Ok(written)
}
