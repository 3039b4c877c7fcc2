//! What the server keeps beside each release in the embedded store: the
//! version tag, written by the publish that records the release and by no
//! other, and the signed envelopes (the release statement, each approval)
//! as OCI referrers of the release's manifest. An external registry keeps
//! its own tags and is not written to: there, each step here does nothing,
//! and the domain need not ask which store it has.

use super::{ArtifactSource, SignatureReferrer};
use crate::oci::{Digest, MANIFEST_V1, OciError, OciStore, Reference, RepositoryName};

/// A version tag written before its publish commits: [`VersionTag::keep`]
/// once the record is committed, [`VersionTag::undo`] when it is not, so a
/// refused or failed publish leaves no tag. A crash in between leaves the
/// intent on disk, undone at the next start unless the record committed.
#[must_use = "a written tag is kept or undone once the publish's commit is known"]
pub struct VersionTag<'a> {
    written: Option<(&'a OciStore, &'a RepositoryName, &'a str, &'a Digest)>,
}

impl ArtifactSource {
    /// Points `repo:version` at `manifest` in the embedded store, noting
    /// the intent first. [`OciError::TagImmutable`] when the tag names
    /// another manifest: a version's tag never moves. Nothing to write for
    /// an external registry.
    pub async fn write_version_tag<'a>(
        &'a self,
        repo: &'a RepositoryName,
        version: &'a str,
        manifest: &'a Digest,
    ) -> Result<VersionTag<'a>, OciError> {
        let Some(store) = self.embedded() else {
            return Ok(VersionTag { written: None });
        };
        store.tag_pending(repo, version, manifest).await?;
        Ok(VersionTag {
            written: Some((store, repo, version, manifest)),
        })
    }

    /// Whether this source keeps the envelopes as referrers (the embedded
    /// store does; an external registry is not written to).
    pub fn keeps_referrers(&self) -> bool {
        self.embedded().is_some()
    }

    /// Stores `envelope` (a DSSE envelope's JSON, of payload type
    /// `artifact_type`) as a referrer of the manifest `subject` of `repo`.
    /// Returns false, having written nothing, when the source keeps no
    /// referrers. Writing one again is harmless: content addressed, the
    /// same bytes.
    pub async fn attach_envelope(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: &str,
        envelope: &str,
    ) -> Result<bool, OciError> {
        let Some(store) = self.embedded() else {
            return Ok(false);
        };
        let size = store
            .blob_size(repo, subject)
            .await?
            .ok_or_else(|| OciError::ManifestUnknown(format!("{repo}@{subject}")))?;
        let referrer = SignatureReferrer::new(subject, size as usize, artifact_type, envelope);
        store.put_blob(repo, &referrer.config).await?;
        store.put_blob(repo, &referrer.envelope).await?;
        store
            .put_manifest(
                repo,
                &Reference::Digest(Digest::of(&referrer.manifest)),
                MANIFEST_V1,
                &referrer.manifest,
            )
            .await?;
        Ok(true)
    }
}

impl VersionTag<'_> {
    /// The publish committed: the tag stays, its intent is forgotten.
    pub async fn keep(self) {
        if let Some((store, repo, version, _)) = self.written {
            store.settle_tag(repo, version).await;
        }
    }

    /// The publish did not commit: the tag goes (if it still names this
    /// manifest). One that cannot be removed now is removed at the next
    /// start, from its intent.
    pub async fn undo(self) {
        let Some((store, repo, version, manifest)) = self.written else {
            return;
        };
        match store.untag(repo, version, manifest).await {
            Ok(()) => store.settle_tag(repo, version).await,
            Err(e) => tracing::error!(%repo, %version,
                "a publish failed and its tag could not be removed (removed at the next start): {e}"),
        }
    }
}
