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
}
