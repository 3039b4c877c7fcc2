//! The content-addressed store on disk behind the embedded registry.
//!
//! ```text
//! root/blobs/sha256/<hex>                      every blob and manifest, once
//! root/uploads/<id>, <id>.session               upload sessions in progress (bytes, owner)
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
//! tag. A chunk of an upload that fails half-way is cut off again, and the
//! upload's file is hashed before it becomes a blob. A
//! blob that is already stored intact is never replaced; one that is not (a
//! disk that filled up under an older version) is replaced by verified content.
//!
//! This module holds the store itself, its space probe and the atomic write;
//! each concern is a submodule: `blobs`, `uploads` (chunked upload sessions
//! and their caps), `manifests` (with the referrers index) and `tags`.

use super::error::OciError;
use super::types::{Digest, RepositoryName};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::fs;
use tokio::io::AsyncWriteExt;

mod blobs;
mod manifests;
mod tags;
mod uploads;

pub use uploads::{MAX_UPLOADS_PER_CLIENT, MAX_UPLOADS_PER_ORG, UPLOAD_IDLE};

/// Manifests larger than this are refused.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// The on-disk OCI store.
pub struct OciStore {
    root: PathBuf,
    max_blob_bytes: u64,
    /// The appends under way in this process, by session: the org and the
    /// bytes added so far (the org's byte quota counts them as they go).
    appending: Mutex<HashMap<String, (String, u64)>>,
    /// Upload session starts in this process, one at a time.
    upload_starts: tokio::sync::Mutex<()>,
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

/// A staging file untouched this long is what a crash left: removed when a
/// store is opened.
const STALE_STAGING: std::time::Duration = std::time::Duration::from_secs(15 * 60);

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
        // Staging files untouched for a while are what a crash left
        // half-written. Younger ones may be writes under way in a replica
        // sharing the store; so may upload sessions, which survive a
        // restart and are discarded when idle (`uploads.rs`).
        let mut staged = fs::read_dir(root.join("tmp")).await?;
        while let Some(entry) = staged.next_entry().await? {
            let stale = entry
                .metadata()
                .await
                .and_then(|m| m.modified())
                .is_ok_and(|at| at.elapsed().unwrap_or_default() >= STALE_STAGING);
            if stale {
                let _ = fs::remove_file(entry.path()).await;
            }
        }
        Ok(OciStore {
            root: root.to_owned(),
            max_blob_bytes,
            appending: Mutex::new(HashMap::new()),
            upload_starts: tokio::sync::Mutex::new(()),
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

    /// Whether the repository exists (has anything pushed to it).
    pub async fn repository_exists(&self, repo: &RepositoryName) -> bool {
        fs::metadata(self.repo_dir(repo)).await.is_ok()
    }
}
