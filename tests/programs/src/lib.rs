//! Paths of the guest components built from source for wasm32-wasip2: the test
//! guests under `tests/guests/` and the example plugins under `examples/`.
//!
//! ```ignore
//! let bytes = std::fs::read(warden_test_programs::HELLO)?;
//! ```

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

pub mod disk;
pub mod postgres;

/// Reads a guest component.
pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading guest {path}: {e}"))
}

/// The CNCF distribution registry (Debian's `docker-registry`) on a loopback
/// port, storing into a temporary directory; stopped when dropped. The
/// external OCI registry of the end-to-end tests.
pub struct Distribution {
    child: std::process::Child,
    /// `127.0.0.1:<port>`.
    pub address: String,
    dir: std::path::PathBuf,
}

impl Distribution {
    /// Starts it and waits until it accepts connections.
    pub fn start() -> Distribution {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let address = format!("127.0.0.1:{port}");
        let dir =
            std::env::temp_dir().join(format!("warden-distribution-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("registry directory");
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n",
                dir.join("data").display()
            ),
        )
        .expect("registry config");
        let child = std::process::Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("docker-registry (Debian package docker-registry; scripts/test installs it) cannot start: {e}")
            });
        let registry = Distribution {
            child,
            address,
            dir,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(&registry.address).is_ok() {
                return registry;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("docker-registry did not listen on {}", registry.address);
    }

    /// Stops it (an outage).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
