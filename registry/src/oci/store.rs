//! The content-addressed store on disk behind the embedded registry.
//!
//! ```text
//! root/blobs/sha256/<hex>                      every blob and manifest, once
//! root/uploads/<id>                            upload sessions in progress
//! root/repos/<name with / as +>/blobs/<hex>    blobs linked to a repository
//! root/repos/<…>/manifests/<hex>               manifests of a repository (content: media type)
//! root/repos/<…>/tags/<tag>                    tag -> digest
//! root/repos/<…>/referrers/<subject>/<hex>     referrer descriptors (JSON)
//! root/tmp/                                    staging for atomic writes
//! ```
//!
//! Every write goes to a temporary file, is flushed and fsynced, checked (its
//! size; for blobs its hash), then renamed into place and the directory
//! fsynced, so neither a crash nor a full disk leaves a half-written blob or
//! tag. Upload content is hashed as it arrives; a chunk that fails half-way is
//! cut off again, and the file itself is hashed before it becomes a blob. A
//! blob that is already stored intact is never replaced; one that is not (a
//! disk that filled up under an older version) is replaced by verified content.

use super::error::OciError;
use super::types::{
    Descriptor, Digest, INDEX_V1, MANIFEST_MEDIA_TYPES, ManifestDocument, Reference, RepositoryName,
};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::fs;
use tokio::io::AsyncWriteExt;
use uploads::{Session, Upload};

mod uploads;

pub use uploads::{MAX_UPLOADS_PER_CLIENT, MAX_UPLOADS_PER_ORG, UPLOAD_IDLE};

/// Manifests larger than this are refused.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// The on-disk OCI store.
pub struct OciStore {
    root: PathBuf,
    max_blob_bytes: u64,
    uploads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Upload>>>>,
    /// Open sessions by id: their org, when they were last used, their size.
    sessions: Mutex<HashMap<String, Session>>,
    /// How long an untouched session lives.
    upload_idle: std::time::Duration,
    /// Set when a write failed for lack of space, cleared by the next write
    /// that succeeds: `/readyz` reports it.
    full: AtomicBool,
    /// When a readiness check last probed a full disk.
    last_probe: tokio::sync::Mutex<Option<std::time::Instant>>,
}

/// What a readiness check writes to see whether space returned: room for
/// a small blob at least.
pub const SPACE_PROBE_BYTES: usize = 256 << 10;

/// How often a readiness check probes a full disk at most.
const PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether an I/O error says the disk (or the quota) is full.
pub fn is_storage_full(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::StorageFull
        || error.kind() == std::io::ErrorKind::QuotaExceeded
        || matches!(error.raw_os_error(), Some(28 | 122))
}

/// The size and digest of a file's content as it is on disk.
async fn hash_file(path: &Path) -> std::io::Result<(u64, Digest)> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 64 << 10];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(&buffer[..n]);
        }
        Ok((size, Digest::from_sha256(hasher)))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Fsyncs a directory, so that a rename into it survives a crash.
async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir).await?.sync_all().await
}

fn not_found_is_none<T>(result: std::io::Result<T>) -> Result<Option<T>, OciError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl OciStore {
    /// Opens (creating) a store under `root`; blobs larger than `max_blob_bytes`
    /// are refused.
    pub async fn open(root: &Path, max_blob_bytes: u64) -> std::io::Result<OciStore> {
        for dir in ["blobs/sha256", "uploads", "repos", "tmp"] {
            fs::create_dir_all(root.join(dir)).await?;
        }
        // Uploads do not survive a restart (their hash state was in memory),
        // and staging files are what a crash left half-written.
        for dir in ["uploads", "tmp"] {
            let mut stale = fs::read_dir(root.join(dir)).await?;
            while let Some(entry) = stale.next_entry().await? {
                let _ = fs::remove_file(entry.path()).await;
            }
        }
        Ok(OciStore {
            root: root.to_owned(),
            max_blob_bytes,
            uploads: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            upload_idle: UPLOAD_IDLE,
            full: AtomicBool::new(false),
            last_probe: tokio::sync::Mutex::new(None),
        })
    }

    /// Whether the last write failed because the disk is full.
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// Whether the store's disk has room: false when the file system has
    /// less than [`SPACE_PROBE_BYTES`] available (then the flag goes up), or
    /// while the flag is up and a probe of that size (written, synced,
    /// removed) still does not fit; a probe that fits lowers the flag. For
    /// readiness checks, which must see a disk fill up (the database's, in
    /// the same data directory, too) and see space return without waiting
    /// for a client's write.
    pub async fn space_is_back(&self) -> bool {
        if let Ok(stats) = rustix::fs::statvfs(&self.root) {
            let available = stats.f_bavail.saturating_mul(stats.f_frsize);
            if available < SPACE_PROBE_BYTES as u64 {
                self.full.store(true, Ordering::Relaxed);
                return false;
            }
        }
        if !self.is_full() {
            return true;
        }
        // One probe at a time, at most one a second, whoever asks (anyone
        // may call /readyz); the others get the last answer.
        let Ok(mut last) = self.last_probe.try_lock() else {
            return false;
        };
        if last.is_some_and(|at: std::time::Instant| at.elapsed() < PROBE_EVERY) {
            return !self.is_full();
        }
        *last = Some(std::time::Instant::now());
        // In a task of its own: a caller that hangs up does not leave the
        // probe's file behind.
        let probe = self
            .root
            .join("tmp")
            .join(format!("space-probe-{}", rand::random::<u64>()));
        let written = tokio::spawn(async move {
            let written = async {
                let mut file = fs::File::create(&probe).await?;
                file.write_all(&[0u8; SPACE_PROBE_BYTES]).await?;
                file.sync_all().await
            }
            .await;
            let _ = fs::remove_file(&probe).await;
            written
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        self.noted(written).is_ok()
    }

    /// Notes whether a write succeeded or ran out of space.
    fn noted<T>(&self, result: std::io::Result<T>) -> Result<T, OciError> {
        match result {
            Ok(value) => {
                self.full.store(false, Ordering::Relaxed);
                Ok(value)
            }
            Err(e) => {
                if is_storage_full(&e) {
                    self.full.store(true, Ordering::Relaxed);
                    tracing::error!("the OCI store's disk is full: {e}");
                }
                Err(e.into())
            }
        }
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    fn repo_dir(&self, repo: &RepositoryName) -> PathBuf {
        // `+` cannot occur in a repository name, so this is one-to-one.
        self.root
            .join("repos")
            .join(repo.as_str().replace('/', "+"))
    }

    /// Writes `bytes` to `path` atomically: a temporary file, written,
    /// flushed (tokio reports a failed background write only then), fsynced,
    /// checked to hold every byte, renamed into place, the directory fsynced.
    /// On failure the temporary file is removed and `path` is untouched.
    async fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), OciError> {
        let staging = self
            .root
            .join("tmp")
            .join(format!("{:032x}", rand::random::<u128>()));
        let written = async {
            let mut file = fs::File::create(&staging).await?;
            file.write_all(bytes).await?;
            file.flush().await?;
            file.sync_all().await?;
            let size = file.metadata().await?.len();
            if size != bytes.len() as u64 {
                return Err(std::io::Error::other(format!(
                    "wrote {size} of {} bytes",
                    bytes.len()
                )));
            }
            drop(file);
            let parent = path.parent().unwrap_or(&self.root);
            fs::create_dir_all(parent).await?;
            fs::rename(&staging, path).await?;
            sync_dir(parent).await
        }
        .await;
        if written.is_err() {
            let _ = fs::remove_file(&staging).await;
        }
        self.noted(written)
    }

    /// Whether the blob `digest` is stored and its content matches it.
    async fn blob_intact(&self, digest: &Digest) -> bool {
        matches!(hash_file(&self.blob_path(digest)).await, Ok((_, actual)) if actual == *digest)
    }

    /// Stores `bytes` as the blob `digest` unless it is already stored intact.
    async fn store_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), OciError> {
        if !self.blob_intact(digest).await {
            self.write_atomic(&self.blob_path(digest), bytes).await?;
        }
        Ok(())
    }

    /// Whether the repository exists (has anything pushed to it).
    pub async fn repository_exists(&self, repo: &RepositoryName) -> bool {
        fs::metadata(self.repo_dir(repo)).await.is_ok()
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

    async fn link_blob(&self, repo: &RepositoryName, digest: &Digest) -> std::io::Result<()> {
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

    /// Fails with [`OciError::TagImmutable`] if `tag` points to a manifest other
    /// than `digest`. A release's tag is its version: moving it would swap the
    /// code behind an approved version.
    async fn check_tag_free(
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
    async fn create_tag(
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
