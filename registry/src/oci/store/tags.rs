//! Tags: created exclusively and never moved, with the on-disk intent
//! ([`OciStore::tag_pending`]) that lets a start undo a tag whose record
//! never committed.

use super::{OciStore, not_found_is_none, sync_dir};
use crate::oci::error::OciError;
use crate::oci::types::{Digest, RepositoryName};
use std::path::PathBuf;
use tokio::fs;
use tokio::io::AsyncWriteExt;

impl OciStore {
    /// Fails with [`OciError::TagImmutable`] if `tag` points to a manifest other
    /// than `digest`. A release's tag is its version: moving it would swap the
    /// code behind an approved version.
    pub(super) async fn check_tag_free(
        &self,
        repo: &RepositoryName,
        tag: &str,
        digest: &Digest,
    ) -> Result<(), OciError> {
        let current = not_found_is_none(
            fs::read_to_string(self.repo_dir(repo).join("tags").join(tag)).await,
        )?;
        match current {
            Some(current) if current.trim() != digest.to_string() => Err(OciError::TagImmutable(
                format!("{tag} ({})", current.trim()),
            )),
            _ => Ok(()),
        }
    }

    /// Points `tag` of `repo` at the manifest `digest`, which must be in `repo`.
    pub async fn tag(
        &self,
        repo: &RepositoryName,
        tag: &str,
        digest: &Digest,
    ) -> Result<(), OciError> {
        let repo_dir = self.repo_dir(repo);
        if fs::metadata(repo_dir.join("manifests").join(digest.hex()))
            .await
            .is_err()
        {
            return Err(OciError::ManifestUnknown(digest.to_string()));
        }
        self.create_tag(repo, tag, digest).await
    }

    /// Creates `tag` naming `digest`, exclusively: of concurrent creates of
    /// one new tag, one wins and the others are refused unless they name the
    /// same manifest. The staged file is linked into place (which fails if
    /// the tag exists), never renamed over it.
    pub(super) async fn create_tag(
        &self,
        repo: &RepositoryName,
        tag: &str,
        digest: &Digest,
    ) -> Result<(), OciError> {
        self.check_tag_free(repo, tag, digest).await?;
        let dir = self.repo_dir(repo).join("tags");
        let staging = self
            .root
            .join("tmp")
            .join(format!("{:032x}", rand::random::<u128>()));
        let text = digest.to_string();
        let created = async {
            let mut file = fs::File::create(&staging).await?;
            file.write_all(text.as_bytes()).await?;
            file.flush().await?;
            file.sync_all().await?;
            drop(file);
            fs::create_dir_all(&dir).await?;
            let linked = fs::hard_link(&staging, dir.join(tag)).await;
            let _ = fs::remove_file(&staging).await;
            match linked {
                Ok(()) => sync_dir(&dir).await.map(|()| true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            }
        }
        .await;
        if created.is_err() {
            let _ = fs::remove_file(&staging).await;
        }
        if !self.noted(created)? {
            // Someone else created it meanwhile: fine only if it names ours.
            self.check_tag_free(repo, tag, digest).await?;
        }
        Ok(())
    }

    /// Removes `tag` of `repo` if it still names `digest` (undoing a
    /// [`OciStore::tag`] whose change was not committed).
    pub async fn untag(
        &self,
        repo: &RepositoryName,
        tag: &str,
        digest: &Digest,
    ) -> Result<(), OciError> {
        let path = self.repo_dir(repo).join("tags").join(tag);
        let Some(text) = not_found_is_none(fs::read_to_string(&path).await)? else {
            return Ok(());
        };
        if text.trim() == digest.to_string() {
            not_found_is_none(fs::remove_file(&path).await)?;
        }
        Ok(())
    }

    /// Points `tag` at `digest` like [`OciStore::tag`], first noting the
    /// intent on disk, so that a crash before the caller's record commits
    /// can be undone at the next start ([`OciStore::pending_tags`]). The
    /// caller calls [`OciStore::settle_tag`] once the record is committed
    /// (or the tag removed).
    pub async fn tag_pending(
        &self,
        repo: &RepositoryName,
        tag: &str,
        digest: &Digest,
    ) -> Result<(), OciError> {
        let intent = self.pending_path(repo, tag);
        self.write_atomic(&intent, digest.to_string().as_bytes())
            .await?;
        let tagged = self.tag(repo, tag, digest).await;
        if tagged.is_err() {
            let _ = fs::remove_file(&intent).await;
        }
        tagged
    }

    /// Forgets the intent noted by [`OciStore::tag_pending`].
    pub async fn settle_tag(&self, repo: &RepositoryName, tag: &str) {
        let _ = fs::remove_file(self.pending_path(repo, tag)).await;
    }

    /// Tags written by [`OciStore::tag_pending`] and not settled: what a
    /// crash left between the tag and its record. (repository, tag, digest).
    pub async fn pending_tags(&self) -> Vec<(RepositoryName, String, Digest)> {
        let mut pending = Vec::new();
        let Ok(mut dir) = fs::read_dir(self.root.join("pending-tags")).await else {
            return pending;
        };
        while let Ok(Some(entry)) = dir.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((repo, tag)) = name.split_once('@') else {
                continue;
            };
            let repo = repo.replace('+', "/");
            let (Ok(repo), Ok(text)) = (
                repo.parse::<RepositoryName>(),
                fs::read_to_string(entry.path()).await,
            ) else {
                continue;
            };
            if let Ok(digest) = text.trim().parse::<Digest>() {
                pending.push((repo, tag.to_owned(), digest));
            }
        }
        pending
    }

    fn pending_path(&self, repo: &RepositoryName, tag: &str) -> PathBuf {
        self.root
            .join("pending-tags")
            .join(format!("{}@{tag}", repo.as_str().replace('/', "+")))
    }

    /// The tags of `repo`, sorted; `None` if the repository does not exist.
    pub async fn tags(&self, repo: &RepositoryName) -> Result<Option<Vec<String>>, OciError> {
        if !self.repository_exists(repo).await {
            return Ok(None);
        }
        let mut tags = Vec::new();
        if let Some(mut dir) =
            not_found_is_none(fs::read_dir(self.repo_dir(repo).join("tags")).await)?
        {
            while let Some(entry) = dir.next_entry().await? {
                tags.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        tags.sort();
        Ok(Some(tags))
    }
}
