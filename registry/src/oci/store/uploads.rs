//! Upload sessions of the embedded store, kept on disk so that every
//! replica sharing the store (one data directory on a shared volume) can
//! continue, finish or cancel a session another one started, and a session
//! survives the restart of the replica that started it.
//!
//! A session is two files in `uploads/`: `<id>` holds the bytes received so
//! far and `<id>.session` says whose it is (repository and client), written
//! atomically once the first exists. Every step on a session holds an
//! exclusive lock on its bytes' file (`flock`, which the volume must
//! support), so appends from two replicas never interleave, and checks
//! after locking that the session is still open: a finish removes the
//! `.session` file before it moves the bytes into a blob. The size is the
//! file's length; when the session is finished its file is copied into a
//! new one, hashed as it is written, and the copy becomes the blob. Sessions are opened per client and organization within
//! their caps (counted from the disk, under `uploads.lock`), a chunk that
//! fails half-way is cut off again (a full disk closes the session), and a
//! session untouched for its idle time is discarded by whichever replica
//! next starts one.

use super::{OciStore, sync_dir};
use crate::oci::error::OciError;
use crate::oci::types::{Digest, RepositoryName};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::path::PathBuf;
use tokio::fs;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

/// Upload sessions one organization may have open at once.
pub const MAX_UPLOADS_PER_ORG: usize = 64;
/// Upload sessions one client (one token) may have open at once.
pub const MAX_UPLOADS_PER_CLIENT: usize = 16;
/// By default, an upload session untouched this long is discarded (its
/// bytes too).
pub const UPLOAD_IDLE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// How long a step waits between attempts at a session's lock.
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(5);

/// Who a session belongs to, as its `.session` file says.
#[derive(serde::Serialize, serde::Deserialize)]
struct Owner {
    repo: String,
    /// A hash of the client's token (empty: anonymous).
    client: String,
}

/// An open session's bytes, locked for this step.
struct Locked {
    file: fs::File,
    path: PathBuf,
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

    /// The paths of session `id`'s bytes and owner; `None` for an id this
    /// store never hands out (ids are 32 hex digits), so a name from a
    /// request never reaches another file.
    fn session_paths(&self, id: &str) -> Option<(PathBuf, PathBuf)> {
        let valid = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
        valid.then(|| {
            let dir = self.root.join("uploads");
            (dir.join(id), dir.join(format!("{id}.session")))
        })
    }

    /// Who session `id` belongs to, if it is open and of `repo`.
    async fn owner(&self, repo: &RepositoryName, id: &str) -> Result<Owner, OciError> {
        let unknown = || OciError::BlobUploadUnknown(id.to_owned());
        let (_, owner_path) = self.session_paths(id).ok_or_else(unknown)?;
        let bytes = fs::read(&owner_path).await.map_err(|_| unknown())?;
        let owner: Owner = serde_json::from_slice(&bytes).map_err(|_| unknown())?;
        if owner.repo != repo.as_str() {
            return Err(unknown());
        }
        Ok(owner)
    }

    /// Opens and locks session `id`'s bytes, waiting for a step under way
    /// elsewhere (in this process or another replica) to end; then checks
    /// that the session is still open and that the file locked is still its
    /// bytes (a finish may have moved them into a blob meanwhile).
    async fn lock_session(&self, repo: &RepositoryName, id: &str) -> Result<Locked, OciError> {
        self.owner(repo, id).await?;
        let unknown = || OciError::BlobUploadUnknown(id.to_owned());
        let (path, owner_path) = self.session_paths(id).ok_or_else(unknown)?;
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .await
            .map_err(|_| unknown())?
            .into_std()
            .await;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => tokio::time::sleep(LOCK_RETRY).await,
                Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
            }
        }
        let still_open = fs::metadata(&owner_path).await.is_ok()
            && same_file(&file, &fs::metadata(&path).await.map_err(|_| unknown())?);
        if !still_open {
            return Err(unknown());
        }
        Ok(Locked {
            file: fs::File::from_std(file),
            path,
        })
    }

    /// Closes session `id`: its owner file first (from then on no step
    /// finds it open), then its bytes unless `keep_bytes`.
    async fn close_session(&self, id: &str, keep_bytes: bool) {
        if let Some((path, owner_path)) = self.session_paths(id) {
            let _ = fs::remove_file(&owner_path).await;
            if !keep_bytes {
                let _ = fs::remove_file(&path).await;
            }
        }
    }

    /// Starts an upload session for `repo` on behalf of `client` (an opaque
    /// id of who asks: a token's hash): at most [`MAX_UPLOADS_PER_ORG`] open
    /// per organization and [`MAX_UPLOADS_PER_CLIENT`] per client, counted
    /// from the disk under the store's upload lock, so replicas sharing the
    /// store share the caps.
    pub async fn start_upload(
        &self,
        repo: &RepositoryName,
        client: &str,
    ) -> Result<String, OciError> {
        let org = repo.org().to_owned();
        // One start at a time in this process (its waiters hold no thread),
        // then across replicas.
        let _turn = self.upload_starts.lock().await;
        let lock_path = self.root.join("uploads.lock");
        let store_lock = tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(lock_path)?;
            file.lock()?;
            Ok::<_, std::io::Error>(file)
        })
        .await
        .map_err(|e| OciError::Internal(std::io::Error::other(e)))??;
        let open = self.expire_idle_uploads().await?;
        let by_client = open.iter().filter(|o| o.client == client).count();
        if by_client >= MAX_UPLOADS_PER_CLIENT {
            return Err(OciError::TooManyUploads(format!(
                "this client has {by_client} uploads open; finish or cancel some"
            )));
        }
        let of_org = open
            .iter()
            .filter(|o| repo_org(&o.repo) == Some(org.as_str()))
            .count();
        if of_org >= MAX_UPLOADS_PER_ORG {
            return Err(OciError::TooManyUploads(format!(
                "{org} has {of_org} uploads open; finish or cancel some (idle ones are discarded after {} s)",
                self.upload_idle.as_secs()
            )));
        }
        let id = format!("{:032x}", rand::random::<u128>());
        let (path, owner_path) = self
            .session_paths(&id)
            .expect("a generated id is 32 hex digits");
        self.noted(fs::File::create(&path).await.map(drop))?;
        let owner = serde_json::to_vec(&Owner {
            repo: repo.to_string(),
            client: client.to_owned(),
        })
        .map_err(|e| OciError::Internal(std::io::Error::other(e)))?;
        if let Err(error) = self.write_atomic(&owner_path, &owner).await {
            let _ = fs::remove_file(&path).await;
            return Err(error);
        }
        drop(store_lock);
        Ok(id)
    }

    /// Reads every open session's owner, discarding on the way the sessions
    /// untouched for the idle time (and not in use now), and bytes or owner
    /// files left without their other half for that long (a crash between
    /// the two writes of a start or of a close).
    async fn expire_idle_uploads(&self) -> Result<Vec<Owner>, OciError> {
        let dir = self.root.join("uploads");
        let mut open = Vec::new();
        let mut entries = fs::read_dir(&dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".session").unwrap_or(&name).to_owned();
            let Some((path, owner_path)) = self.session_paths(&id) else {
                continue;
            };
            let owner = if name.ends_with(".session") {
                match fs::read(&owner_path).await {
                    Ok(bytes) => serde_json::from_slice::<Owner>(&bytes).ok(),
                    Err(_) => continue,
                }
            } else if fs::metadata(&owner_path).await.is_ok() {
                // Judged with its owner file.
                continue;
            } else {
                None
            };
            let idle = match fs::metadata(&path).await.and_then(|m| m.modified()) {
                Ok(touched) => touched.elapsed().unwrap_or_default() >= self.upload_idle,
                // Bytes gone: judge the owner file by its own age.
                Err(_) => fs::metadata(&owner_path)
                    .await
                    .and_then(|m| m.modified())
                    .map(|at| at.elapsed().unwrap_or_default() >= self.upload_idle)
                    .unwrap_or(false),
            };
            match owner {
                Some(owner) if !idle => open.push(owner),
                _ if idle => {
                    // Not while a step holds it; closed while locked, so a
                    // step that opened it meanwhile finds it closed.
                    let held = match std::fs::File::open(&path) {
                        Ok(file) => match file.try_lock() {
                            Ok(()) => {
                                let _ = fs::remove_file(&owner_path).await;
                                let _ = fs::remove_file(&path).await;
                                false
                            }
                            Err(_) => true,
                        },
                        Err(_) => {
                            let _ = fs::remove_file(&owner_path).await;
                            false
                        }
                    };
                    if !held {
                        tracing::info!(upload = %id, "discarded an idle upload session");
                    }
                }
                _ => {}
            }
        }
        Ok(open)
    }

    /// The bytes received so far by an upload.
    pub async fn upload_size(&self, repo: &RepositoryName, id: &str) -> Result<u64, OciError> {
        let locked = self.lock_session(repo, id).await?;
        Ok(locked.file.metadata().await?.len())
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
        let Locked { mut file, .. } = self.lock_session(repo, id).await?;
        let before = file.metadata().await?.len();
        if let Some(start) = start
            && start != before
        {
            return Err(OciError::RangeInvalid(format!(
                "the chunk starts at {start} but the upload has {before} bytes"
            )));
        }
        // What the org's other sessions hold: on disk now, and what other
        // appends in this process add as they go.
        let others_on_disk = self.org_bytes_on_disk(repo.org(), id).await;
        // However the append ends (even dropped half-way), its
        // reservation goes.
        let _reserved = Reservation { store: self, id };
        let mut body = body;
        let mut size = before;
        let appended: Result<(), OciError> = async {
            file.seek(std::io::SeekFrom::End(0)).await?;
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
                if !self.reserve_bytes(id, repo.org(), others_on_disk + before, size - before) {
                    return Err(OciError::TooManyUploads(format!(
                        "the open uploads of {} would hold more than {} bytes",
                        repo.org(),
                        self.org_upload_bytes()
                    )));
                }
                self.noted(file.write_all(&chunk).await)?;
            }
            self.noted(file.flush().await)
        }
        .await;
        drop(_reserved);
        if let Err(error) = appended {
            // A chunk that failed half-way (a client that hung up, a full
            // disk, a blob too large) leaves the session exactly as it was:
            // the file is cut back to what was received before it.
            let _ = file.flush().await;
            let restored = file.set_len(before).await.is_ok();
            let too_large =
                matches!(&error, OciError::SizeInvalid(m) if m.starts_with("blobs may"));
            // A full disk closes the session too: its client would retry
            // into the same wall, and each open session counts against it.
            let full = matches!(&error, OciError::StorageFull);
            if !restored || too_large || full {
                self.close_session(id, false).await;
            }
            return Err(error);
        }
        Ok(size)
    }

    /// The bytes on disk of `org`'s open sessions other than `except`
    /// (those other appends are adding to are counted both here and as they
    /// go, by [`Self::reserve_bytes`]: the quota errs on the strict side).
    async fn org_bytes_on_disk(&self, org: &str, except: &str) -> u64 {
        let Ok(mut entries) = fs::read_dir(self.root.join("uploads")).await else {
            return 0;
        };
        let mut total = 0;
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".session") else {
                continue;
            };
            if id == except {
                continue;
            }
            let Ok(bytes) = fs::read(entry.path()).await else {
                continue;
            };
            let Ok(owner) = serde_json::from_slice::<Owner>(&bytes) else {
                continue;
            };
            if repo_org(&owner.repo) != Some(org) {
                continue;
            }
            if let Some((path, _)) = self.session_paths(id)
                && let Ok(meta) = fs::metadata(path).await
            {
                total += meta.len();
            }
        }
        total
    }

    fn lock_appending(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (String, u64)>> {
        self.appending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records that the append to session `id` of `org` now adds `added`
    /// bytes, if the org's sessions stay within their quota (with
    /// `on_disk` bytes in its other sessions); `false` (and nothing
    /// recorded) otherwise. Checked and recorded under one lock.
    fn reserve_bytes(&self, id: &str, org: &str, on_disk: u64, added: u64) -> bool {
        let mut appending = self.lock_appending();
        let others: u64 = appending
            .iter()
            .filter(|(other, (of, _))| *other != id && of == org)
            .map(|(_, (_, bytes))| bytes)
            .sum();
        if on_disk + others + added > self.org_upload_bytes() {
            return false;
        }
        appending.insert(id.to_owned(), (org.to_owned(), added));
        true
    }

    /// The append to session `id` ended: its bytes are on disk (or cut off).
    fn release_bytes(&self, id: &str) {
        self.lock_appending().remove(id);
    }

    /// Completes an upload: the content must match `digest`; then it becomes a
    /// blob linked to `repo`. A mismatch discards the upload.
    pub async fn finish_upload(
        &self,
        repo: &RepositoryName,
        id: &str,
        digest: &Digest,
    ) -> Result<u64, OciError> {
        let locked = self.lock_session(repo, id).await?;
        // Closed while locked: a step waiting for the lock finds it closed
        // and never touches the file that becomes the blob. The lock is held
        // until the file is in place.
        self.close_session(id, true).await;
        let staged = locked.path.clone();
        // The blob is a copy, hashed as it is written: the session's own
        // file never becomes the blob, so a step that still wrote to it
        // (a volume whose locks do not hold across machines) could not
        // change a blob under its digest.
        let copy = self
            .root
            .join("tmp")
            .join(format!("{:032x}", rand::random::<u128>()));
        let stored = async {
            let (size, actual) = self.noted(copy_hashed(&staged, &copy).await)?;
            if actual != *digest {
                return Err(OciError::DigestInvalid(format!(
                    "the content is {actual}, not {digest}"
                )));
            }
            if !self.blob_intact(digest).await {
                // Never replace a blob that is stored intact.
                let blob = self.blob_path(digest);
                self.noted(fs::rename(&copy, &blob).await)?;
                self.noted(sync_dir(blob.parent().unwrap_or(&self.root)).await)?;
            }
            self.noted(self.link_blob(repo, digest).await)?;
            Ok(size)
        }
        .await;
        let _ = fs::remove_file(&copy).await;
        let _ = fs::remove_file(&staged).await;
        drop(locked);
        stored
    }

    /// Abandons an upload (one that is not open, or not of `repo`, is left
    /// alone).
    pub async fn cancel_upload(&self, repo: &RepositoryName, id: &str) {
        // Under the session's lock: a finish under way completes first.
        if let Ok(locked) = self.lock_session(repo, id).await {
            self.close_session(id, false).await;
            drop(locked);
        }
    }
}

/// An append's byte reservation, released when the append ends.
struct Reservation<'a> {
    store: &'a OciStore,
    id: &'a str,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.store.release_bytes(self.id);
    }
}

/// The organization of a repository name as a session file holds it.
fn repo_org(repo: &str) -> Option<&str> {
    repo.split_once('/').map(|(org, _)| org)
}

/// Whether `file` is the file `path_meta` describes (not a new file put
/// under its path, nor a path whose file moved away).
fn same_file(file: &std::fs::File, path_meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    file.metadata()
        .is_ok_and(|meta| meta.dev() == path_meta.dev() && meta.ino() == path_meta.ino())
}

/// Copies `from` to `to` (a new file), hashing the bytes as they are
/// written, and syncs the copy. Returns its size and digest.
async fn copy_hashed(
    from: &std::path::Path,
    to: &std::path::Path,
) -> std::io::Result<(u64, Digest)> {
    let (from, to) = (from.to_owned(), to.to_owned());
    tokio::task::spawn_blocking(move || {
        use sha2::Digest as _;
        use std::io::{Read, Write};
        let mut source = std::fs::File::open(from)?;
        let mut copy = std::fs::File::create_new(&to)?;
        let mut hasher = sha2::Sha256::new();
        let mut buffer = vec![0u8; 64 << 10];
        let mut size = 0u64;
        loop {
            let n = source.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            copy.write_all(&buffer[..n])?;
            size += n as u64;
        }
        copy.flush()?;
        copy.sync_all()?;
        Ok((size, Digest::from_sha256(hasher)))
    })
    .await
    .map_err(std::io::Error::other)?
}
