//! The on-disk cache of compiled components.
//!
//! Loading compiled code is `unsafe`: wasmtime trusts it to be its own output. So
//! an entry is only ever loaded if it carries a valid HMAC-SHA256, under a
//! secret key, of the component digest, the engine fingerprint and the code.
//! A corrupted, truncated, foreign or swapped file fails that check, is removed
//! and the component is recompiled.

use crate::error::{Error, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"WRDNCODE";
const FORMAT: u32 = 1;
const HEADER: usize = MAGIC.len() + 4 + 32;

/// Where a cache lookup ended, for logs and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// The cache is disabled.
    Disabled,
    /// Loaded from a valid entry.
    Hit,
    /// No entry; compiled and stored.
    Miss,
    /// An entry existed but failed verification; it was discarded and the
    /// component recompiled.
    Rejected,
}

#[derive(Clone)]
pub(crate) struct CompileCache {
    dir: PathBuf,
    key: [u8; 32],
}

impl CompileCache {
    /// Opens (creating if needed) a cache in `dir`. The key is `key` if given,
    /// else read from (or created in) `dir/cache.key` with mode 0600.
    pub(crate) fn open(dir: &Path, key: Option<[u8; 32]>) -> Result<CompileCache> {
        fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating cache directory {}", dir.display()), e))?;
        let key = match key {
            Some(key) => key,
            None => load_or_create_key(&dir.join("cache.key"))?,
        };
        Ok(CompileCache {
            dir: dir.to_owned(),
            key,
        })
    }

    fn path(&self, digest: &str, fingerprint: &str) -> PathBuf {
        self.dir.join(format!("{digest}-{fingerprint}.cwasm"))
    }

    fn mac(&self, digest: &str, fingerprint: &str, code: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key size");
        mac.update(digest.as_bytes());
        mac.update(b"\n");
        mac.update(fingerprint.as_bytes());
        mac.update(b"\n");
        mac.update(code);
        mac
    }

    /// The verified code of an entry: `Ok(None)` if there is none, `Err(())` if
    /// one exists but fails verification (it is removed).
    pub(crate) fn load(&self, digest: &str, fingerprint: &str) -> Result<Option<Vec<u8>>, ()> {
        let path = self.path(digest, fingerprint);
        let Ok(mut bytes) = fs::read(&path) else {
            return Ok(None);
        };
        let valid = bytes.len() > HEADER
            && &bytes[..8] == MAGIC
            && bytes[8..12] == FORMAT.to_le_bytes()
            && self
                .mac(digest, fingerprint, &bytes[HEADER..])
                .verify_slice(&bytes[12..HEADER])
                .is_ok();
        if !valid {
            tracing::warn!(path = %path.display(), "compiled-code cache entry failed verification; recompiling");
            let _ = fs::remove_file(&path);
            return Err(());
        }
        bytes.drain(..HEADER);
        Ok(Some(bytes))
    }

    /// Stores `code` atomically (temporary file, fsync, rename).
    pub(crate) fn store(&self, digest: &str, fingerprint: &str, code: &[u8]) -> Result<()> {
        let path = self.path(digest, fingerprint);
        let tag = self.mac(digest, fingerprint, code).finalize().into_bytes();
        let context = || format!("writing compiled-code cache entry {}", path.display());
        let mut file =
            tempfile::NamedTempFile::new_in(&self.dir).map_err(|e| Error::io(context(), e))?;
        file.write_all(MAGIC)
            .and_then(|()| file.write_all(&FORMAT.to_le_bytes()))
            .and_then(|()| file.write_all(&tag))
            .and_then(|()| file.write_all(code))
            .and_then(|()| file.as_file().sync_all())
            .map_err(|e| Error::io(context(), e))?;
        file.persist(&path)
            .map_err(|e| Error::io(context(), e.error))?;
        Ok(())
    }
}

fn load_or_create_key(path: &Path) -> Result<[u8; 32]> {
    match fs::read(path) {
        Ok(bytes) => bytes.try_into().map_err(|_| {
            Error::Config(format!(
                "{} is not a 32-byte cache key; delete it (and the cache) to start afresh",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = rand::random();
            let mut options = fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let written = options.open(path).and_then(|mut file| {
                file.write_all(&key)?;
                file.sync_all()
            });
            match written {
                Ok(()) => Ok(key),
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_key(path),
                Err(e) => Err(Error::io(
                    format!("creating cache key {}", path.display()),
                    e,
                )),
            }
        }
        Err(e) => Err(Error::io(
            format!("reading cache key {}", path.display()),
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_any_change_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path(), None).unwrap();
        assert_eq!(cache.load("d", "f"), Ok(None));
        cache.store("d", "f", b"machine code").unwrap();
        assert_eq!(cache.load("d", "f"), Ok(Some(b"machine code".to_vec())));

        // Flip one byte of the code.
        let path = cache.path("d", "f");
        let mut bytes = fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(cache.load("d", "f"), Err(()));
        assert!(!path.exists(), "a rejected entry is removed");

        // An entry made under another key (a foreign file) is rejected too.
        let other = CompileCache::open(dir.path(), Some([7; 32])).unwrap();
        other.store("d", "f", b"machine code").unwrap();
        assert_eq!(cache.load("d", "f"), Err(()));

        // An entry renamed to another digest is rejected.
        cache.store("d", "f", b"machine code").unwrap();
        fs::rename(cache.path("d", "f"), cache.path("e", "f")).unwrap();
        assert_eq!(cache.load("e", "f"), Err(()));
    }

    #[test]
    fn the_key_persists_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = CompileCache::open(dir.path(), None).unwrap();
        let second = CompileCache::open(dir.path(), None).unwrap();
        assert_eq!(first.key, second.key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("cache.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::write(dir.path().join("cache.key"), b"short").unwrap();
        assert!(matches!(
            CompileCache::open(dir.path(), None),
            Err(Error::Config(_))
        ));
    }
}
