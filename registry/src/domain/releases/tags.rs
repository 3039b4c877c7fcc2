//! The version tags of the embedded store across a crash or a replica's
//! start: the lock a publish holds on its tag until its record commits,
//! and the start-up reconciliation that waits on it.

use super::{ReleaseError, stored};
use crate::db::Db;
use crate::oci::RepositoryName;

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
