//! Files Warden writes (keys, tokens): whole or not at all, readable only by
//! their owner. A temporary file in the same directory is written, flushed
//! and fsynced, then renamed (or, when an existing file must not be
//! replaced, hard-linked) into place, and the directory is fsynced, so a
//! crash or a full disk leaves either the old file or the new one, never an
//! empty or partial one.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically with mode 0600. With `replace`
/// false, an existing file is an error (`AlreadyExists`) and is left as it is.
pub fn write_private(path: &Path, bytes: &[u8], replace: bool) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    remove_stale_staging(path);
    let staging = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&staging)?;
        file.write_all(bytes)?;
        file.flush()?;
        file.sync_all()?;
        if file.metadata()?.len() != bytes.len() as u64 {
            return Err(std::io::Error::other("the file was not written whole"));
        }
        drop(file);
        if replace {
            std::fs::rename(&staging, path)?;
        } else {
            std::fs::hard_link(&staging, path)?;
            std::fs::remove_file(&staging)?;
        }
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&staging);
    }
    written
}

/// How old a staging file must be before it counts as left by a crash
/// (younger ones may be another process's write in progress).
pub const STALE_STAGING: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes what [`write_private`] staged for `path` and a crash (kill -9
/// between writing and renaming) left behind: such a file may hold a
/// secret (a token) that nothing else would ever remove. Only files older
/// than [`STALE_STAGING`] are removed. Returns how many.
pub fn remove_stale_staging(path: &Path) -> usize {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return 0;
    };
    let prefix = format!(".{name}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let Some(random) = file_name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tmp"))
        else {
            continue;
        };
        if random.len() != 16 || !random.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age >= STALE_STAGING);
        if old && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_written_whole_private_and_replaced_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        write_private(&path, b"one\n", false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let refused = write_private(&path, b"two\n", false).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"one\n");
        write_private(&path, b"two\n", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two\n");
        // No staging file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn staging_a_crash_left_is_removed_once_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portal-token");
        let left = dir.path().join(".portal-token.00112233aabbccdd.tmp");
        let young = dir.path().join(".portal-token.ffeeddccbbaa9988.tmp");
        let other = dir.path().join(".admin-token.00112233aabbccdd.tmp");
        for file in [&left, &young, &other] {
            std::fs::write(file, b"wdn_live_secret\n").unwrap();
        }
        let long_ago = std::time::SystemTime::now() - 2 * STALE_STAGING;
        for file in [&left, &other] {
            std::fs::File::options()
                .write(true)
                .open(file)
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
        }
        assert_eq!(remove_stale_staging(&path), 1);
        assert!(!left.exists());
        assert!(young.exists(), "maybe another process's write in progress");
        assert!(other.exists(), "another file's staging");
        // Writing the file cleans up after an earlier crash too.
        write_private(&dir.path().join("admin-token"), b"t\n", false).unwrap();
        assert!(!other.exists());
    }
}
