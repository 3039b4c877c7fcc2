//! Keys and signed statements: ed25519 keys, canonical JSON, and DSSE envelopes.
//!
//! A release statement is signed by its publisher, an approval statement by an
//! admin. Both travel as [DSSE](https://github.com/secure-systems-lab/dsse)
//! envelopes whose payload is canonical JSON (object keys sorted, no whitespace),
//! so the same statement always has the same bytes and the same digest. The host
//! verifies envelopes itself, against keys it was given, at load time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::Path;

/// Why a key, a statement or an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// A key could not be read.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The envelope is malformed.
    #[error("invalid envelope: {0}")]
    InvalidEnvelope(String),
    /// The envelope carries another kind of statement.
    #[error("expected a {expected} envelope, got {found}")]
    WrongPayloadType {
        /// What was expected.
        expected: String,
        /// What the envelope says.
        found: String,
    },
    /// No signature verified under any of the trusted keys.
    #[error("no valid signature from a trusted key (signed by: {})", if .0.is_empty() { "nobody".to_owned() } else { .0.join(", ") })]
    NotTrusted(Vec<String>),
    /// The value cannot be canonicalized (e.g. it holds a floating-point number).
    #[error("cannot canonicalize: {0}")]
    NotCanonical(String),
}

/// A private ed25519 key.
pub struct PrivateKey(SigningKey);

/// A public ed25519 key, written `ed25519:<base64>`.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

const PRIVATE_HEADER: &str = "-----BEGIN WARDEN ED25519 PRIVATE KEY-----";
const PRIVATE_FOOTER: &str = "-----END WARDEN ED25519 PRIVATE KEY-----";

impl PrivateKey {
    /// A new random key.
    pub fn generate() -> PrivateKey {
        PrivateKey(SigningKey::from_bytes(&rand::random::<[u8; 32]>()))
    }

    /// Its public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The key in its file format.
    pub fn to_pem(&self) -> String {
        format!(
            "{PRIVATE_HEADER}\n{}\n{PRIVATE_FOOTER}\n",
            BASE64.encode(self.0.to_bytes())
        )
    }

    /// Reads the file format.
    pub fn from_pem(text: &str) -> Result<PrivateKey, TrustError> {
        let body = text
            .trim()
            .strip_prefix(PRIVATE_HEADER)
            .and_then(|rest| rest.strip_suffix(PRIVATE_FOOTER))
            .ok_or_else(|| TrustError::InvalidKey("not a Warden private key file".into()))?;
        let seed: [u8; 32] = BASE64
            .decode(body.trim())
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| {
                TrustError::InvalidKey("the key is not 32 base64-encoded bytes".into())
            })?;
        Ok(PrivateKey(SigningKey::from_bytes(&seed)))
    }

    /// Writes the key to `path` with mode 0600, atomically (a crash leaves
    /// no empty key file), refusing to overwrite a file.
    pub fn write_new(&self, path: &Path) -> std::io::Result<()> {
        crate::files::write_private(path, self.to_pem().as_bytes(), false)
    }

    /// Signs `statement` (canonicalized) into a DSSE envelope of `payload_type`.
    pub fn sign<T: Serialize>(
        &self,
        payload_type: &str,
        statement: &T,
    ) -> Result<Envelope, TrustError> {
        let payload = canonical_json(
            &serde_json::to_value(statement)
                .map_err(|e| TrustError::NotCanonical(e.to_string()))?,
        )?;
        let signature = self.0.sign(&pae(payload_type, &payload));
        Ok(Envelope {
            payload: BASE64.encode(&payload),
            payload_type: payload_type.to_owned(),
            signatures: vec![EnvelopeSignature {
                keyid: self.public_key().key_id(),
                sig: BASE64.encode(signature.to_bytes()),
            }],
        })
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({})", self.public_key().key_id())
    }
}

impl PublicKey {
    /// A short, stable identifier: the first 16 bytes of the SHA-256 of the key, in hex.
    pub fn key_id(&self) -> String {
        hex::encode(&Sha256::digest(self.0.as_bytes())[..16])
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ed25519:{}", BASE64.encode(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl std::str::FromStr for PublicKey {
    type Err = TrustError;

    fn from_str(text: &str) -> Result<PublicKey, TrustError> {
        let encoded = text.trim().strip_prefix("ed25519:").ok_or_else(|| {
            TrustError::InvalidKey(format!("{text:?}: expected ed25519:<base64>"))
        })?;
        let bytes: [u8; 32] = BASE64
            .decode(encoded)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| {
                TrustError::InvalidKey("a public key is 32 base64-encoded bytes".into())
            })?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| TrustError::InvalidKey("not a valid ed25519 point".into()))
    }
}

/// Most signatures an envelope may carry.
pub const MAX_SIGNATURES: usize = 16;

/// A DSSE envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Envelope {
    /// The statement, base64.
    pub payload: String,
    /// What kind of statement.
    pub payload_type: String,
    /// The signatures.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// The signer's [`PublicKey::key_id`].
    pub keyid: String,
    /// The signature, base64.
    pub sig: String,
}

/// A verified envelope: its payload, and which trusted keys signed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Verified {
    /// The canonical JSON payload.
    pub payload: Vec<u8>,
    /// `sha256:<hex>` of the payload.
    pub payload_digest: String,
    /// Key ids of the trusted keys whose signatures verified (each once).
    pub signers: Vec<String>,
}

impl Envelope {
    /// Parses an envelope from JSON, strictly.
    pub fn from_json(bytes: &[u8]) -> Result<Envelope, TrustError> {
        serde_json::from_slice(bytes).map_err(|e| TrustError::InvalidEnvelope(e.to_string()))
    }

    /// The payload's bytes, decoded but NOT verified: for showing a
    /// statement, or comparing it with a digest the caller trusts.
    pub fn unverified_payload(&self) -> Result<Vec<u8>, TrustError> {
        BASE64
            .decode(&self.payload)
            .map_err(|_| TrustError::InvalidEnvelope("the payload is not base64".into()))
    }

    /// Checks the payload type and the signatures against `trusted` keys. An
    /// envelope with more than [`MAX_SIGNATURES`] signatures is refused before
    /// any signature is checked; a key that signs twice counts once. Only
    /// signatures from trusted keys count; unknown or invalid ones are ignored,
    /// but at least one must verify.
    pub fn verify(
        &self,
        payload_type: &str,
        trusted: &[PublicKey],
    ) -> Result<Verified, TrustError> {
        if self.signatures.len() > MAX_SIGNATURES {
            return Err(TrustError::InvalidEnvelope(format!(
                "{} signatures; an envelope carries at most {MAX_SIGNATURES}",
                self.signatures.len()
            )));
        }
        if self.payload_type != payload_type {
            return Err(TrustError::WrongPayloadType {
                expected: payload_type.to_owned(),
                found: self.payload_type.clone(),
            });
        }
        let payload = self.unverified_payload()?;
        let message = pae(&self.payload_type, &payload);
        let mut signers: Vec<String> = Vec::new();
        for entry in &self.signatures {
            let Some(key) = trusted.iter().find(|k| k.key_id() == entry.keyid) else {
                continue;
            };
            let Some(signature) = BASE64
                .decode(&entry.sig)
                .ok()
                .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
                .map(|bytes| Signature::from_bytes(&bytes))
            else {
                continue;
            };
            if key.0.verify_strict(&message, &signature).is_ok() && !signers.contains(&entry.keyid)
            {
                signers.push(entry.keyid.clone());
            }
        }
        if signers.is_empty() {
            return Err(TrustError::NotTrusted(
                self.signatures.iter().map(|s| s.keyid.clone()).collect(),
            ));
        }
        Ok(Verified {
            payload_digest: crate::Digest::of(&payload).to_string(),
            payload,
            signers,
        })
    }
}

/// DSSE's pre-authentication encoding: what is actually signed.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut message = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    message.extend_from_slice(payload);
    message
}

/// Canonical JSON: object keys sorted by their UTF-16 code units (as RFC 8785),
/// no insignificant whitespace, integers only.
pub fn canonical_json(value: &Json) -> Result<Vec<u8>, TrustError> {
    fn write(value: &Json, out: &mut Vec<u8>) -> Result<(), TrustError> {
        match value {
            Json::Number(n) if n.is_f64() => {
                return Err(TrustError::NotCanonical(format!(
                    "floating-point number {n}"
                )));
            }
            Json::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(item, out)?;
                }
                out.push(b']');
            }
            Json::Object(map) => {
                let mut entries: Vec<(&String, &Json)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
                out.push(b'{');
                for (i, (key, item)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend(serde_json::to_vec(key).expect("strings serialize"));
                    out.push(b':');
                    write(item, out)?;
                }
                out.push(b'}');
            }
            scalar => out.extend(serde_json::to_vec(scalar).expect("scalars serialize")),
        }
        Ok(())
    }
    let mut out = Vec::new();
    write(value, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RELEASE: &str = "application/vnd.warden.release.v1+json";

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let a = json!({"b": 1, "a": {"z": [1, 2], "y": "é"}, "c": null});
        let b: Json =
            serde_json::from_str(r#"{ "c": null, "a": { "y": "é", "z": [1,2] }, "b": 1 }"#)
                .unwrap();
        let canonical = canonical_json(&a).unwrap();
        assert_eq!(canonical, canonical_json(&b).unwrap());
        assert_eq!(
            String::from_utf8(canonical).unwrap(),
            r#"{"a":{"y":"é","z":[1,2]},"b":1,"c":null}"#
        );
        assert!(matches!(
            canonical_json(&json!({"x": 1.5})),
            Err(TrustError::NotCanonical(_))
        ));
    }

    #[test]
    fn an_envelope_carries_at_most_a_few_signatures() {
        let key = PrivateKey::generate();
        let statement = json!({"name": "acme/hello"});
        let signed = key.sign(RELEASE, &statement).unwrap();
        let trusted = [key.public_key()];
        // Up to the cap, padded with strangers' signatures: still verifies.
        let mut padded = signed.clone();
        for _ in 1..MAX_SIGNATURES {
            let stranger = PrivateKey::generate().sign(RELEASE, &statement).unwrap();
            padded.signatures.extend(stranger.signatures);
        }
        assert!(padded.verify(RELEASE, &trusted).is_ok());
        // One more is refused before any signature is checked.
        let stranger = PrivateKey::generate().sign(RELEASE, &statement).unwrap();
        padded.signatures.extend(stranger.signatures);
        assert!(matches!(
            padded.verify(RELEASE, &trusted),
            Err(TrustError::InvalidEnvelope(_))
        ));
        // The same key many times counts once.
        let mut twice = signed.clone();
        twice.signatures.push(signed.signatures[0].clone());
        assert_eq!(twice.verify(RELEASE, &trusted).unwrap().signers.len(), 1);
    }

    #[test]
    fn envelopes_verify_only_under_trusted_keys_and_untampered() {
        let publisher = PrivateKey::generate();
        let stranger = PrivateKey::generate();
        let statement = json!({"name": "acme/hello", "version": "1.0.0"});
        let envelope = publisher.sign(RELEASE, &statement).unwrap();

        let verified = envelope
            .verify(RELEASE, &[stranger.public_key(), publisher.public_key()])
            .unwrap();
        assert_eq!(verified.signers, vec![publisher.public_key().key_id()]);
        assert_eq!(verified.payload, canonical_json(&statement).unwrap());
        assert!(verified.payload_digest.starts_with("sha256:"));

        assert!(matches!(
            envelope.verify(RELEASE, &[stranger.public_key()]),
            Err(TrustError::NotTrusted(_))
        ));
        assert!(matches!(
            envelope.verify("application/other", &[publisher.public_key()]),
            Err(TrustError::WrongPayloadType { .. })
        ));

        // A changed payload, a changed type, a signature from another key under the
        // publisher's key id: each is refused.
        let mut tampered = envelope.clone();
        tampered.payload = BASE64.encode(br#"{"name":"acme/hello","version":"6.6.6"}"#);
        assert!(matches!(
            tampered.verify(RELEASE, &[publisher.public_key()]),
            Err(TrustError::NotTrusted(_))
        ));
        let mut forged = stranger.sign(RELEASE, &statement).unwrap();
        forged.signatures[0].keyid = publisher.public_key().key_id();
        assert!(matches!(
            forged.verify(RELEASE, &[publisher.public_key()]),
            Err(TrustError::NotTrusted(_))
        ));
        let mut garbage = envelope.clone();
        garbage.signatures[0].sig = "not base64!".into();
        assert!(matches!(
            garbage.verify(RELEASE, &[publisher.public_key()]),
            Err(TrustError::NotTrusted(_))
        ));

        // The same signer twice counts once.
        let mut doubled = envelope.clone();
        doubled.signatures.push(doubled.signatures[0].clone());
        assert_eq!(
            doubled
                .verify(RELEASE, &[publisher.public_key()])
                .unwrap()
                .signers
                .len(),
            1
        );
    }

    #[test]
    fn envelopes_parse_strictly() {
        let key = PrivateKey::generate();
        let envelope = key.sign(RELEASE, &json!({"a": 1})).unwrap();
        let text = serde_json::to_vec(&envelope).unwrap();
        assert_eq!(Envelope::from_json(&text).unwrap(), envelope);
        for bad in [
            &b"{}"[..],
            b"not json",
            br#"{"payload":"","payloadType":"x","signatures":[],"extra":1}"#,
        ] {
            assert!(matches!(
                Envelope::from_json(bad),
                Err(TrustError::InvalidEnvelope(_))
            ));
        }
        let unsigned = Envelope {
            signatures: vec![],
            ..envelope
        };
        assert_eq!(
            unsigned
                .verify(RELEASE, &[key.public_key()])
                .unwrap_err()
                .to_string(),
            "no valid signature from a trusted key (signed by: nobody)"
        );
    }

    #[test]
    fn keys_round_trip_through_their_text_forms() {
        let key = PrivateKey::generate();
        let again = PrivateKey::from_pem(&key.to_pem()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let public: PublicKey = key.public_key().to_string().parse().unwrap();
        assert_eq!(public, key.public_key());
        assert_eq!(public.key_id().len(), 32);
        for bad in ["", "ed25519:", "ed25519:AAAA", "rsa:AAAA"] {
            assert!(bad.parse::<PublicKey>().is_err(), "{bad}");
        }
        assert!(
            PrivateKey::from_pem(
                "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----"
            )
            .is_err()
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        key.write_new(&path).unwrap();
        assert!(key.write_new(&path).is_err(), "never overwrites a key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let read = PrivateKey::from_pem(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(read.public_key(), key.public_key());
    }
}
