//! Blobs: stored once under their digest, linked into each repository that
//! has them, read back only when they still match their digest.

use super::{OciStore, hash_file, not_found_is_none};
use crate::oci::error::OciError;
use crate::oci::types::{Digest, RepositoryName};
use std::path::PathBuf;
use tokio::fs;

impl OciStore {
    pub(super) fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Whether the blob `digest` is stored and its content matches it.
    pub(super) async fn blob_intact(&self, digest: &Digest) -> bool {
        matches!(hash_file(&self.blob_path(digest)).await, Ok((_, actual)) if actual == *digest)
    }

    /// Stores `bytes` as the blob `digest` unless it is already stored intact.
    pub(super) async fn store_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), OciError> {
        if !self.blob_intact(digest).await {
            self.write_atomic(&self.blob_path(digest), bytes).await?;
        }
        Ok(())
    }

    /// The size of a blob linked to `repo`.
    pub async fn blob_size(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>, OciError> {
        let linked = fs::metadata(self.repo_dir(repo).join("blobs").join(digest.hex()))
            .await
            .is_ok()
            || fs::metadata(self.repo_dir(repo).join("manifests").join(digest.hex()))
                .await
                .is_ok();
        if !linked {
            return Ok(None);
        }
        Ok(not_found_is_none(fs::metadata(self.blob_path(digest)).await)?.map(|m| m.len()))
    }

    /// Opens a blob linked to `repo` for reading.
    pub async fn open_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<(fs::File, u64)>, OciError> {
        let Some(size) = self.blob_size(repo, digest).await? else {
            return Ok(None);
        };
        Ok(
            not_found_is_none(fs::File::open(self.blob_path(digest)).await)?
                .map(|file| (file, size)),
        )
    }

    pub(super) async fn link_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> std::io::Result<()> {
        let dir = self.repo_dir(repo).join("blobs");
        fs::create_dir_all(&dir).await?;
        fs::File::create(dir.join(digest.hex())).await.map(drop)
    }

    /// Links an existing blob of `from` into `repo` (cross-repository mount).
    /// Returns false if `from` does not have it.
    pub async fn mount(
        &self,
        repo: &RepositoryName,
        from: &RepositoryName,
        digest: &Digest,
    ) -> Result<bool, OciError> {
        if self.blob_size(from, digest).await?.is_none() {
            return Ok(false);
        }
        self.link_blob(repo, digest).await?;
        Ok(true)
    }

    /// Stores `bytes` as a blob of `repo` (for what the registry writes itself,
    /// such as signature referrers) and returns its digest.
    pub async fn put_blob(&self, repo: &RepositoryName, bytes: &[u8]) -> Result<Digest, OciError> {
        let digest = Digest::of(bytes);
        self.store_blob(&digest, bytes).await?;
        self.noted(self.link_blob(repo, &digest).await)?;
        Ok(digest)
    }

    /// Reads a whole blob of `repo`, checking it against its digest.
    pub async fn read_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Vec<u8>, OciError> {
        if self.blob_size(repo, digest).await?.is_none() {
            return Err(OciError::BlobUnknown(digest.to_string()));
        }
        let bytes = fs::read(self.blob_path(digest)).await?;
        if Digest::of(&bytes) != *digest {
            tracing::error!(%digest, "stored blob does not match its digest");
            return Err(OciError::DigestInvalid(format!(
                "the stored blob {digest} no longer matches its digest"
            )));
        }
        Ok(bytes)
    }
}
