//! Upload sessions of the embedded store: opened per client and
//! organization within their caps, chunks appended and hashed as they
//! arrive (a chunk that fails half-way is cut off again, and a full disk
//! closes the session), finished into a blob once the whole file hashes to
//! its digest, discarded when idle.

use super::{OciStore, hash_file, sync_dir};
use crate::oci::error::OciError;
use crate::oci::types::{Digest, RepositoryName};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::fs;
use tokio::io::AsyncWriteExt;

/// Upload sessions one organization may have open at once.
pub const MAX_UPLOADS_PER_ORG: usize = 64;
/// Upload sessions one client (one token) may have open at once.
pub const MAX_UPLOADS_PER_CLIENT: usize = 16;
/// By default, an upload session untouched this long is discarded (its
/// bytes too).
pub const UPLOAD_IDLE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// What the store tracks of an open upload session, beside its state.
pub(super) struct Session {
    pub(super) org: String,
    /// Who opened it: a hash of the client's token (empty: anonymous).
    pub(super) client: String,
    pub(super) touched: std::time::Instant,
    pub(super) bytes: u64,
}

/// Where an upload stands.
pub(super) struct Upload {
    pub(super) repo: RepositoryName,
    pub(super) hasher: Sha256,
    pub(super) size: u64,
}

impl OciStore {
    /// Discards upload sessions untouched for `idle` (instead of
    /// [`UPLOAD_IDLE`]).
    pub fn with_upload_idle(mut self, idle: std::time::Duration) -> OciStore {
        self.upload_idle = idle;
        self
    }

    /// Bytes the open sessions of one org may hold together.
    fn org_upload_bytes(&self) -> u64 {
        self.max_blob_bytes.saturating_mul(4)
    }

    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Discards sessions idle for [`UPLOAD_IDLE`] (and not in use now).
    async fn expire_idle_uploads(&self) {
        let idle: Vec<String> = self
            .lock_sessions()
            .iter()
            .filter(|(_, session)| session.touched.elapsed() >= self.upload_idle)
            .map(|(id, _)| id.clone())
            .collect();
        for id in idle {
            let in_use = self
                .lock_uploads()
                .get(&id)
                .is_some_and(|upload| upload.try_lock().is_err());
            if !in_use {
                self.forget_upload(&id).await;
                tracing::info!(upload = %id, "discarded an idle upload session");
            }
        }
    }

    /// Removes a session and its partial file.
    async fn forget_upload(&self, id: &str) {
        self.lock_uploads().remove(id);
        self.lock_sessions().remove(id);
        let _ = fs::remove_file(self.root.join("uploads").join(id)).await;
    }

    /// Starts an upload session for `repo` on behalf of `client` (an opaque
    /// id of who asks: a token's hash): at most [`MAX_UPLOADS_PER_ORG`] open
    /// per organization and [`MAX_UPLOADS_PER_CLIENT`] per client.
    pub async fn start_upload(
        &self,
        repo: &RepositoryName,
        client: &str,
    ) -> Result<String, OciError> {
        self.expire_idle_uploads().await;
        let org = repo.org().to_owned();
        let id = format!("{:032x}", rand::random::<u128>());
        {
            // Counted and reserved under one lock: concurrent starts cannot
            // all pass the check.
            let mut sessions = self.lock_sessions();
            let by_client = sessions.values().filter(|s| s.client == client).count();
            if by_client >= MAX_UPLOADS_PER_CLIENT {
                return Err(OciError::TooManyUploads(format!(
                    "this client has {by_client} uploads open; finish or cancel some"
                )));
            }
            let open = sessions.values().filter(|s| s.org == org).count();
            if open >= MAX_UPLOADS_PER_ORG {
                return Err(OciError::TooManyUploads(format!(
                    "{org} has {open} uploads open; finish or cancel some (idle ones are discarded after {} s)",
                    self.upload_idle.as_secs()
                )));
            }
            sessions.insert(
                id.clone(),
                Session {
                    org,
                    client: client.to_owned(),
                    touched: std::time::Instant::now(),
                    bytes: 0,
                },
            );
        }
        if let Err(error) = self.noted(fs::File::create(self.root.join("uploads").join(&id)).await)
        {
            self.lock_sessions().remove(&id);
            return Err(error);
        }
        let upload = Upload {
            repo: repo.clone(),
            hasher: Sha256::new(),
            size: 0,
        };
        self.lock_uploads()
            .insert(id.clone(), Arc::new(tokio::sync::Mutex::new(upload)));
        Ok(id)
    }

    fn lock_uploads(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<Upload>>>> {
        self.uploads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn upload(&self, id: &str) -> Result<Arc<tokio::sync::Mutex<Upload>>, OciError> {
        let upload = self
            .lock_uploads()
            .get(id)
            .cloned()
            .ok_or_else(|| OciError::BlobUploadUnknown(id.to_owned()))?;
        Ok(upload)
    }

    /// The bytes received so far by an upload.
    pub async fn upload_size(&self, repo: &RepositoryName, id: &str) -> Result<u64, OciError> {
        let upload = self.upload(id)?;
        let upload = upload.lock().await;
        if upload.repo != *repo {
            return Err(OciError::BlobUploadUnknown(id.to_owned()));
        }
        Ok(upload.size)
    }

    /// Appends a chunk to an upload. `start`, if given (from `Content-Range`),
    /// must be where the upload currently ends. Returns the new size.
    pub async fn append<S, E>(
        &self,
        repo: &RepositoryName,
        id: &str,
        start: Option<u64>,
        body: S,
    ) -> Result<u64, OciError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let session = self.upload(id)?;
        let mut upload = session.lock().await;
        // Waiting for the lock, the session may have been finished or
        // cancelled: then its file is (or is about to be) a blob, and must
        // not be written to.
        if upload.repo != *repo || !self.still_open(id, &session) {
            return Err(OciError::BlobUploadUnknown(id.to_owned()));
        }
        if let Some(start) = start
            && start != upload.size
        {
            return Err(OciError::RangeInvalid(format!(
                "the chunk starts at {start} but the upload has {} bytes",
                upload.size
            )));
        }
        let path = self.root.join("uploads").join(id);
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .await
            .map_err(|_| OciError::BlobUploadUnknown(id.to_owned()))?;
        let mut body = body;
        let mut hasher = upload.hasher.clone();
        let mut size = upload.size;
        let appended: Result<(), OciError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk
                    .map_err(|e| OciError::SizeInvalid(format!("reading the request body: {e}")))?;
                size += chunk.len() as u64;
                if size > self.max_blob_bytes {
                    return Err(OciError::SizeInvalid(format!(
                        "blobs may have at most {} bytes",
                        self.max_blob_bytes
                    )));
                }
                // Reserved chunk by chunk, so that concurrent appends of one
                // org see each other's bytes.
                if !self.reserve_bytes(id, repo.org(), size) {
                    return Err(OciError::TooManyUploads(format!(
                        "the open uploads of {} would hold more than {} bytes",
                        repo.org(),
                        self.org_upload_bytes()
                    )));
                }
                hasher.update(&chunk);
                self.noted(file.write_all(&chunk).await)?;
            }
            self.noted(file.flush().await)
        }
        .await;
        if let Err(error) = appended {
            if let Some(session) = self.lock_sessions().get_mut(id) {
                session.bytes = upload.size;
            }
            // A chunk that failed half-way (a client that hung up, a full
            // disk, a blob too large) leaves the session exactly as it was:
            // the file is cut back to what was received before it.
            let _ = file.flush().await;
            drop(file);
            let restored = match fs::OpenOptions::new().write(true).open(&path).await {
                Ok(file) => file.set_len(upload.size).await.is_ok(),
                Err(_) => false,
            };
            let too_large =
                matches!(&error, OciError::SizeInvalid(m) if m.starts_with("blobs may"));
            // A full disk closes the session too: its client would retry
            // into the same wall, and each open session counts against it.
            let full = matches!(&error, OciError::StorageFull);
            if !restored || too_large || full {
                drop(upload);
                self.cancel_upload(repo, id).await;
            }
            return Err(error);
        }
        upload.hasher = hasher;
        upload.size = size;
        if let Some(session) = self.lock_sessions().get_mut(id) {
            session.bytes = size;
            session.touched = std::time::Instant::now();
        }
        Ok(size)
    }

    /// Whether `id` still names this very session (not finished or
    /// cancelled meanwhile).
    fn still_open(&self, id: &str, session: &Arc<tokio::sync::Mutex<Upload>>) -> bool {
        self.lock_uploads()
            .get(id)
            .is_some_and(|current| Arc::ptr_eq(current, session))
    }

    /// Records that session `id` of `org` now holds `size` bytes, if the
    /// org's open sessions stay within their quota; `false` (and nothing
    /// recorded) otherwise. Checked and recorded under one lock.
    fn reserve_bytes(&self, id: &str, org: &str, size: u64) -> bool {
        let mut sessions = self.lock_sessions();
        let others: u64 = sessions
            .iter()
            .filter(|(other, session)| *other != id && session.org == org)
            .map(|(_, session)| session.bytes)
            .sum();
        if others + size > self.org_upload_bytes() {
            return false;
        }
        if let Some(session) = sessions.get_mut(id) {
            session.bytes = size;
        }
        true
    }

    /// Completes an upload: the content must match `digest`; then it becomes a
    /// blob linked to `repo`. A mismatch discards the upload.
    pub async fn finish_upload(
        &self,
        repo: &RepositoryName,
        id: &str,
        digest: &Digest,
    ) -> Result<u64, OciError> {
        let session = self.upload(id)?;
        let upload = session.lock().await;
        if upload.repo != *repo || !self.still_open(id, &session) {
            return Err(OciError::BlobUploadUnknown(id.to_owned()));
        }
        let received = Digest::from_sha256(upload.hasher.clone());
        let size = upload.size;
        // Closed while locked: an append waiting for the lock finds it gone
        // and never touches the file that becomes the blob. The lock is held
        // until the file is in place.
        let staged = self.root.join("uploads").join(id);
        self.lock_uploads().remove(id);
        self.lock_sessions().remove(id);
        let stored = async {
            if received != *digest {
                return Err(OciError::DigestInvalid(format!(
                    "the content is {received}, not {digest}"
                )));
            }
            // The file itself, not only what the session counted, must be
            // the content named.
            let (on_disk, actual) = hash_file(&staged).await?;
            if on_disk != size || actual != *digest {
                return Err(OciError::DigestInvalid(format!(
                    "the stored upload holds {on_disk} bytes ({actual}), not the {size} received"
                )));
            }
            self.noted(fs::File::open(&staged).await?.sync_all().await)?;
            if self.blob_intact(digest).await {
                // Never replace a blob that is stored intact.
                let _ = fs::remove_file(&staged).await;
            } else {
                let blob = self.blob_path(digest);
                self.noted(fs::rename(&staged, &blob).await)?;
                self.noted(sync_dir(blob.parent().unwrap_or(&self.root)).await)?;
            }
            self.noted(self.link_blob(repo, digest).await)
        }
        .await;
        if stored.is_err() {
            let _ = fs::remove_file(&staged).await;
        }
        drop(upload);
        stored.map(|()| size)
    }

    /// Abandons an upload.
    pub async fn cancel_upload(&self, repo: &RepositoryName, id: &str) {
        let removed = {
            let mut uploads = self.lock_uploads();
            let owned = uploads
                .get(id)
                .and_then(|u| u.try_lock().ok().map(|u| u.repo == *repo))
                .unwrap_or(true);
            if owned { uploads.remove(id) } else { None }
        };
        if removed.is_some() {
            self.forget_upload(id).await;
        }
    }
}
