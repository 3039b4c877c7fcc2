//! The key that encrypts plugin secrets at rest, read from a file the
//! database never holds, and the encryption itself: XChaCha20-Poly1305
//! with a random 24-byte nonce per value, and the value's org, plugin and
//! name as associated data, so a row copied to another plugin or name does
//! not decrypt.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

/// Why the secrets key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("the secrets key file {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// The key file does not hold a key.
    #[error(
        "the secrets key file {0} does not hold a key (expected 64 hexadecimal digits, as `warden serve` writes on first start)"
    )]
    Malformed(PathBuf),
}

/// A 256-bit key and its id (the first 8 bytes of its SHA-256, in hex),
/// which is stored beside each value to say which key it needs.
#[derive(Clone)]
pub struct SecretsKey {
    cipher: XChaCha20Poly1305,
    id: String,
    path: PathBuf,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsKey")
            .field("id", &self.id)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// One value, encrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The id of the key it needs.
    pub key_id: String,
    /// Base64.
    pub nonce: String,
    /// Base64 of the ciphertext and its tag.
    pub ciphertext: String,
}

/// Why a value could not be decrypted (never carries any of it).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// It was encrypted under another key.
    #[error("encrypted under key {stored}, the server's key is {current}")]
    OtherKey {
        /// The key it needs.
        stored: String,
        /// The key the server has.
        current: String,
    },
    /// It does not decrypt: damaged, or moved to another plugin or name.
    #[error("it does not decrypt (damaged, or not this plugin's)")]
    Damaged,
}

impl SecretsKey {
    /// Reads the key at `path`; creates it (mode 0600) when the file does
    /// not exist and `create` is true.
    pub fn open(path: &Path, create: bool) -> Result<SecretsKey, KeyError> {
        let io = |error| KeyError::Io {
            path: path.to_owned(),
            error,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let key: [u8; 32] = rand::random();
                let text = format!("{}\n", hex::encode(key));
                match warden_host::write_private(path, text.as_bytes(), false) {
                    // Another process created it first: use theirs.
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io(e)),
                }
                std::fs::read_to_string(path).map_err(io)?
            }
            Err(e) => return Err(io(e)),
        };
        #[cfg(unix)]
        if let Ok(metadata) = std::fs::metadata(path) {
            use std::os::unix::fs::PermissionsExt;
            if metadata.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    "the secrets key file can be read by other users: make it mode 0600"
                );
            }
        }
        let bytes = hex::decode(text.trim()).map_err(|_| KeyError::Malformed(path.to_owned()))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| KeyError::Malformed(path.to_owned()))?;
        Ok(SecretsKey::from_bytes(key, path))
    }

    fn from_bytes(key: [u8; 32], path: &Path) -> SecretsKey {
        SecretsKey {
            cipher: XChaCha20Poly1305::new(&key.into()),
            id: hex::encode(&Sha256::digest(key)[..8]),
            path: path.to_owned(),
        }
    }

    /// A key for tests, not from a file.
    #[cfg(test)]
    pub fn random() -> SecretsKey {
        SecretsKey::from_bytes(rand::random(), Path::new("(test)"))
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The file it came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Encrypts `value` of secret `name` of plugin `org/plugin`.
    pub fn seal(&self, org: &str, plugin: &str, name: &str, value: &str) -> Sealed {
        let nonce: [u8; 24] = rand::random();
        let aad = associated(org, plugin, name);
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any value of a secret's size");
        Sealed {
            key_id: self.id.clone(),
            nonce: BASE64.encode(nonce),
            ciphertext: BASE64.encode(ciphertext),
        }
    }

    /// Decrypts a value sealed for secret `name` of plugin `org/plugin`.
    pub fn open_value(
        &self,
        org: &str,
        plugin: &str,
        name: &str,
        sealed: &Sealed,
    ) -> Result<String, OpenError> {
        if sealed.key_id != self.id {
            return Err(OpenError::OtherKey {
                stored: sealed.key_id.clone(),
                current: self.id.clone(),
            });
        }
        let nonce = BASE64
            .decode(&sealed.nonce)
            .ok()
            .filter(|n| n.len() == 24)
            .ok_or(OpenError::Damaged)?;
        let ciphertext = BASE64
            .decode(&sealed.ciphertext)
            .map_err(|_| OpenError::Damaged)?;
        let aad = associated(org, plugin, name);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| OpenError::Damaged)?;
        String::from_utf8(plain).map_err(|_| OpenError::Damaged)
    }
}

/// What binds a value to its place: length-prefixed so no two places
/// share a text.
fn associated(org: &str, plugin: &str, name: &str) -> Vec<u8> {
    let mut aad = b"warden secret v1".to_vec();
    for part in [org, plugin, name] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_only_with_its_key_in_its_place() {
        let key = SecretsKey::random();
        let sealed = key.seal("acme", "fetch", "TOKEN", "hunter2");
        assert!(!sealed.ciphertext.contains("hunter2"));
        assert_eq!(
            key.open_value("acme", "fetch", "TOKEN", &sealed).unwrap(),
            "hunter2"
        );
        for (org, plugin, name) in [
            ("globex", "fetch", "TOKEN"),
            ("acme", "other", "TOKEN"),
            ("acme", "fetch", "OTHER"),
            ("acm", "efetch", "TOKEN"),
        ] {
            assert!(matches!(
                key.open_value(org, plugin, name, &sealed),
                Err(OpenError::Damaged)
            ));
        }
        let other = SecretsKey::random();
        assert!(matches!(
            other.open_value("acme", "fetch", "TOKEN", &sealed),
            Err(OpenError::OtherKey { .. })
        ));
        // Two seals of one value differ (a fresh nonce each).
        assert_ne!(key.seal("acme", "fetch", "TOKEN", "hunter2"), sealed);
    }

    #[test]
    fn the_key_file_is_created_private_once_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        assert!(matches!(
            SecretsKey::open(&path, false),
            Err(KeyError::Io { .. })
        ));
        let created = SecretsKey::open(&path, true).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = SecretsKey::open(&path, true).unwrap();
        assert_eq!(created.id(), again.id());
        std::fs::write(&path, "not a key\n").unwrap();
        assert!(matches!(
            SecretsKey::open(&path, true),
            Err(KeyError::Malformed(_))
        ));
        std::fs::write(&path, format!("{}\n", "ab".repeat(31))).unwrap();
        assert!(matches!(
            SecretsKey::open(&path, true),
            Err(KeyError::Malformed(_))
        ));
    }
}
