//! What the server keeps beside each release: the version tag, written by
//! the publish that records the release and by no other, and in the
//! embedded store the signed envelopes (the release statement, each
//! approval) as OCI referrers of the release's manifest.
//!
//! In the embedded store the tag is written before the record commits and
//! undone if it does not. In an external registry the tag is written once
//! the record has committed ([`ArtifactSource::tag_in_external_registry`]):
//! two publishes of one version may both push their artifacts there, but
//! only the one whose record committed names its manifest under the
//! version. Referrers are not written to an external registry. Each step
//! does nothing where it has nothing to do, so the domain need not ask
//! which store it has.

use super::{ArtifactSource, SignatureReferrer};
use crate::oci::{Digest, MANIFEST_V1, OciError, OciStore, Reference, RepositoryName};
use oci_client::Reference as ClientReference;

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

    /// Points `repo:version` at `manifest` in an external registry, for a
    /// release whose record has committed: the manifest is read back by its
    /// digest, checked, and put again under the version. Returns false,
    /// having written nothing, for the embedded store (its tag is written
    /// with the record). Writing it again is harmless: the same bytes. The
    /// server's registry credentials need push rights for this.
    pub async fn tag_in_external_registry(
        &self,
        repo: &RepositoryName,
        version: &str,
        manifest: &Digest,
    ) -> Result<bool, String> {
        let ArtifactSource::External(endpoint) = self else {
            return Ok(false);
        };
        let client = endpoint.client();
        let auth = endpoint.credentials.registry_auth();
        let by_digest = ClientReference::with_digest(
            endpoint.registry.clone(),
            repo.to_string(),
            manifest.to_string(),
        );
        let (bytes, _) = client
            .pull_manifest_raw(&by_digest, &auth, &[MANIFEST_V1])
            .await
            .map_err(|e| format!("reading {}: {e}", by_digest.whole()))?;
        if Digest::of(&bytes) != *manifest {
            return Err(format!(
                "{} served a manifest that does not match its digest",
                by_digest.whole()
            ));
        }
        let by_tag = ClientReference::with_tag(
            endpoint.registry.clone(),
            repo.to_string(),
            version.to_owned(),
        );
        client.store_auth_if_needed(&endpoint.registry, &auth).await;
        client
            .push_manifest_raw(
                &by_tag,
                bytes.to_vec(),
                MANIFEST_V1
                    .parse()
                    .expect("the manifest media type is a valid header value"),
            )
            .await
            .map_err(|e| format!("tagging {}: {e}", by_tag.whole()))?;
        Ok(true)
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
