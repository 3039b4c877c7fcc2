//! Manifests: checked (schema, media type, everything they reference
//! present) before they are stored, with the referrers index kept beside
//! them.

use super::{MAX_MANIFEST_BYTES, OciStore, not_found_is_none};
use crate::oci::error::OciError;
use crate::oci::types::{
    Descriptor, Digest, INDEX_V1, MANIFEST_MEDIA_TYPES, ManifestDocument, Reference, RepositoryName,
};
use tokio::fs;

impl OciStore {
    /// Stores a manifest under `reference` after checking it: JSON, schema 2, the
    /// media type it claims, everything it references present in `repo`.
    pub async fn put_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(Digest, Option<Digest>), OciError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(OciError::SizeInvalid(format!(
                "manifests may have at most {MAX_MANIFEST_BYTES} bytes"
            )));
        }
        if !MANIFEST_MEDIA_TYPES.contains(&media_type) {
            return Err(OciError::ManifestInvalid(format!(
                "unsupported manifest media type {media_type:?} (expected one of {})",
                MANIFEST_MEDIA_TYPES.join(", ")
            )));
        }
        let document: ManifestDocument = serde_json::from_slice(bytes)
            .map_err(|e| OciError::ManifestInvalid(format!("not a manifest: {e}")))?;
        if document.schema_version != 2 {
            return Err(OciError::ManifestInvalid(format!(
                "schemaVersion is {}, expected 2",
                document.schema_version
            )));
        }
        if let Some(claimed) = &document.media_type
            && claimed != media_type
        {
            return Err(OciError::ManifestInvalid(format!(
                "the manifest says mediaType {claimed:?} but was sent as {media_type:?}"
            )));
        }
        let digest = Digest::of(bytes);
        if let Reference::Digest(expected) = reference
            && *expected != digest
        {
            return Err(OciError::DigestInvalid(format!(
                "the manifest is {digest}, not {expected}"
            )));
        }
        if let Reference::Tag(tag) = reference {
            self.check_tag_free(repo, tag, &digest).await?;
        }
        let index = media_type == INDEX_V1 || media_type.contains("manifest.list");
        if index {
            for child in &document.manifests {
                if fs::metadata(
                    self.repo_dir(repo)
                        .join("manifests")
                        .join(child.digest.hex()),
                )
                .await
                .is_err()
                {
                    return Err(OciError::ManifestBlobUnknown(child.digest.to_string()));
                }
            }
        } else {
            let config = document.config.as_ref().ok_or_else(|| {
                OciError::ManifestInvalid("an image manifest needs a config".into())
            })?;
            for blob in std::iter::once(config).chain(&document.layers) {
                match self.blob_size(repo, &blob.digest).await? {
                    None => return Err(OciError::ManifestBlobUnknown(blob.digest.to_string())),
                    Some(size) if size != blob.size => {
                        return Err(OciError::ManifestInvalid(format!(
                            "{} has {size} bytes, the manifest says {}",
                            blob.digest, blob.size
                        )));
                    }
                    Some(_) => {}
                }
            }
        }

        let repo_dir = self.repo_dir(repo);
        self.store_blob(&digest, bytes).await?;
        self.write_atomic(
            &repo_dir.join("manifests").join(digest.hex()),
            media_type.as_bytes(),
        )
        .await?;
        let subject = document.subject.as_ref().map(|s| s.digest.clone());
        if let Some(subject) = &subject {
            let descriptor = Descriptor {
                media_type: media_type.to_owned(),
                digest: digest.clone(),
                size: bytes.len() as u64,
                artifact_type: document
                    .artifact_type
                    .clone()
                    .or_else(|| document.config.as_ref().map(|c| c.media_type.clone())),
                annotations: document.annotations.clone(),
            };
            let entry = serde_json::to_vec(&descriptor)
                .map_err(|e| OciError::Internal(std::io::Error::other(e)))?;
            self.write_atomic(
                &repo_dir
                    .join("referrers")
                    .join(subject.hex())
                    .join(digest.hex()),
                &entry,
            )
            .await?;
        }
        if let Reference::Tag(tag) = reference {
            self.create_tag(repo, tag, &digest).await?;
        }
        Ok((digest, subject))
    }

    /// A manifest of `repo` by tag or digest: (media type, bytes, digest).
    pub async fn get_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<(String, Vec<u8>, Digest)>, OciError> {
        let digest = match reference {
            Reference::Digest(digest) => digest.clone(),
            Reference::Tag(tag) => {
                let Some(text) = not_found_is_none(
                    fs::read_to_string(self.repo_dir(repo).join("tags").join(tag)).await,
                )?
                else {
                    return Ok(None);
                };
                text.trim()
                    .parse()
                    .map_err(|e: String| OciError::Internal(std::io::Error::other(e)))?
            }
        };
        let Some(media_type) = not_found_is_none(
            fs::read_to_string(self.repo_dir(repo).join("manifests").join(digest.hex())).await,
        )?
        else {
            return Ok(None);
        };
        let Some(bytes) = not_found_is_none(fs::read(self.blob_path(&digest)).await)? else {
            return Ok(None);
        };
        // What is served is checked against what it claims to be.
        if Digest::of(&bytes) != digest {
            tracing::error!(%digest, "stored manifest does not match its digest");
            return Err(OciError::Internal(std::io::Error::other(
                "corrupted manifest",
            )));
        }
        Ok(Some((media_type, bytes, digest)))
    }

    /// The manifests of `repo` whose subject is `subject`.
    pub async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> Result<Vec<Descriptor>, OciError> {
        let mut found = Vec::new();
        let dir = self.repo_dir(repo).join("referrers").join(subject.hex());
        if let Some(mut entries) = not_found_is_none(fs::read_dir(dir).await)? {
            while let Some(entry) = entries.next_entry().await? {
                let bytes = fs::read(entry.path()).await?;
                let descriptor: Descriptor = serde_json::from_slice(&bytes)
                    .map_err(|e| OciError::Internal(std::io::Error::other(e)))?;
                found.push(descriptor);
            }
        }
        found.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(found)
    }
}
