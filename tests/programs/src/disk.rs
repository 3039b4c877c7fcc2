//! A small disk for tests of what a full disk does: a tmpfs of a given size
//! mounted on a fresh directory (root only, as CI runs; elsewhere the test
//! says it did not run).

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped.
pub struct SmallDisk {
    /// The mounted directory.
    pub dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (`mount -o size=`, e.g. `1m`), or `None`
    /// (with a line on standard error) when not running as root.
    pub fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0\n"))
            .unwrap_or(false);
        if !root {
            eprintln!("not run: mounting a small tmpfs needs root");
            return None;
        }
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(mounted.success(), "mount -t tmpfs failed as root");
        Some(SmallDisk { dir })
    }

    /// The mounted directory.
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
