//! Pushing a Wasm artifact to an OCI registry (the Warden server's embedded
//! `/v2/`, or an external one) through `oci-client`: the blobs the registry
//! lacks, in chunks, with progress reported as they go, then the manifest.
//! `warden publish` and the tests push this way; the runtime pulls with the
//! same client (see [`super::ArtifactSource`]).

use super::WasmArtifact;
use crate::oci::{Digest, MANIFEST_V1, RepositoryName};
use bytes::Bytes;
use futures_util::stream;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

/// Size of each chunk of a blob upload.
pub const PUSH_CHUNK_BYTES: usize = 1 << 20;

/// How to authenticate to a registry.
#[derive(Clone, Default)]
pub enum Credentials {
    /// No credentials.
    #[default]
    Anonymous,
    /// HTTP basic authentication (external registries).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// A bearer token (a Warden API token, for the embedded registry).
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

impl Credentials {
    pub(super) fn registry_auth(&self) -> RegistryAuth {
        match self {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            Credentials::Bearer(token) => RegistryAuth::Bearer(token.clone()),
        }
    }
}

/// An OCI registry to talk to: `host:port`, the protocol, the credentials.
#[derive(Clone, Debug)]
pub struct RegistryEndpoint {
    /// `host:port` of the registry.
    pub registry: String,
    /// Plain HTTP (loopback, tests) instead of HTTPS.
    pub insecure: bool,
    /// Who we are there.
    pub credentials: Credentials,
}

impl RegistryEndpoint {
    /// The registry of a base URL such as `http://127.0.0.1:8080` (the
    /// Warden server's own `/v2/`).
    pub fn from_url(url: &str, credentials: Credentials) -> Result<RegistryEndpoint, String> {
        let (insecure, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (false, rest)
        } else {
            return Err(format!("{url:?} must start with http:// or https://"));
        };
        let registry = rest.trim_end_matches('/');
        if registry.is_empty() || registry.contains('/') {
            return Err(format!(
                "{url:?}: the registry must be served at the root of host:port"
            ));
        }
        Ok(RegistryEndpoint {
            registry: registry.to_owned(),
            insecure,
            credentials,
        })
    }

    pub(super) fn client(&self) -> Client {
        Client::new(ClientConfig {
            protocol: if self.insecure {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            connect_timeout: Some(std::time::Duration::from_secs(5)),
            read_timeout: Some(std::time::Duration::from_secs(30)),
            ..ClientConfig::default()
        })
    }
}

/// Progress of a push, as it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushProgress {
    /// A blob is about to be sent (`total` bytes).
    Started {
        /// `config` or `component`.
        what: &'static str,
        /// Its size.
        total: u64,
    },
    /// `sent` bytes of the blob have been handed to the connection.
    Sent {
        /// `config` or `component`.
        what: &'static str,
        /// Bytes so far.
        sent: u64,
    },
    /// The blob is stored (or the registry had it already).
    Done {
        /// `config` or `component`.
        what: &'static str,
    },
}

/// Where a push reports its progress.
pub type Progress = std::sync::Arc<dyn Fn(PushProgress) + Send + Sync>;

/// What kind of failure a push met, for callers that act on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushFailure {
    /// The registry could not be reached, or failed on its side.
    Unavailable,
    /// The registry refused the credentials or the permission.
    Denied,
    /// The registry refused what was sent.
    Refused,
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The registry refused or failed a request, or could not be reached.
    #[error("pushing {what} of {repository} to {registry}: {detail}")]
    Registry {
        /// `config`, `component` or `manifest`.
        what: &'static str,
        /// The repository.
        repository: RepositoryName,
        /// `host:port`.
        registry: String,
        /// What the client said.
        detail: String,
        /// What kind of failure.
        failure: PushFailure,
    },
    /// The registry stored the blob under another digest than ours.
    #[error("the registry stored {what} as {stored}, not {expected}")]
    DigestMismatch {
        /// `config` or `component`.
        what: &'static str,
        /// Ours.
        expected: Digest,
        /// The registry's.
        stored: String,
    },
}

/// Pushes `artifact` to `repository` on `endpoint`: each blob the registry
/// does not have yet, then the manifest, by digest (the server writes the
/// version tag once it has registered the release). Returns the manifest's
/// digest.
pub async fn push(
    endpoint: &RegistryEndpoint,
    repository: &RepositoryName,
    artifact: &WasmArtifact,
    progress: Progress,
) -> Result<Digest, PushError> {
    let client = endpoint.client();
    let auth = endpoint.credentials.registry_auth();
    client.store_auth_if_needed(&endpoint.registry, &auth).await;
    let failed = |what: &'static str| {
        move |e: oci_client::errors::OciDistributionError| PushError::Registry {
            what,
            repository: repository.clone(),
            registry: endpoint.registry.clone(),
            failure: classify(&e),
            detail: e.to_string(),
        }
    };
    for (what, bytes) in [
        ("config", &artifact.config),
        ("component", &artifact.component),
    ] {
        let digest = Digest::of(bytes);
        let reference = Reference::with_digest(
            endpoint.registry.clone(),
            repository.to_string(),
            digest.to_string(),
        );
        progress(PushProgress::Started {
            what,
            total: bytes.len() as u64,
        });
        if client
            .blob_exists(&reference, &digest.to_string())
            .await
            .map_err(failed(what))?
        {
            progress(PushProgress::Done { what });
            continue;
        }
        let chunks: Vec<Bytes> = bytes
            .chunks(PUSH_CHUNK_BYTES)
            .map(Bytes::copy_from_slice)
            .collect();
        // Each chunk is reported as the client takes it to send.
        let report = progress.clone();
        let mut sent = 0u64;
        let chunks = stream::iter(chunks.into_iter().map(move |chunk| {
            sent += chunk.len() as u64;
            report(PushProgress::Sent { what, sent });
            Ok::<_, oci_client::errors::OciDistributionError>(chunk)
        }));
        let pushed = client
            .push_blob_stream_chunked(&reference, chunks)
            .await
            .map_err(failed(what))?;
        if pushed.blob_digest != digest.to_string() {
            return Err(PushError::DigestMismatch {
                what,
                expected: digest,
                stored: pushed.blob_digest,
            });
        }
        progress(PushProgress::Done { what });
    }
    let manifest_digest = artifact.manifest_digest();
    let reference = Reference::with_digest(
        endpoint.registry.clone(),
        repository.to_string(),
        manifest_digest.to_string(),
    );
    client
        .push_manifest_raw(
            &reference,
            artifact.manifest.clone(),
            MANIFEST_V1
                .parse()
                .expect("the manifest media type is a valid header value"),
        )
        .await
        .map_err(failed("manifest"))?;
    Ok(manifest_digest)
}

impl PushError {
    /// What kind of failure this is.
    pub fn failure(&self) -> PushFailure {
        match self {
            PushError::Registry { failure, .. } => *failure,
            PushError::DigestMismatch { .. } => PushFailure::Refused,
        }
    }
}

fn classify(error: &oci_client::errors::OciDistributionError) -> PushFailure {
    use oci_client::errors::{OciDistributionError as E, OciErrorCode as Code};
    match error {
        E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => PushFailure::Denied,
        E::ServerError {
            code: 401 | 403, ..
        } => PushFailure::Denied,
        E::ServerError { code, .. } if *code >= 500 => PushFailure::Unavailable,
        E::RegistryError { envelope, .. }
            if envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, Code::Denied | Code::Unauthorized)) =>
        {
            PushFailure::Denied
        }
        E::RequestError(_) | E::IoError(_) => PushFailure::Unavailable,
        _ => PushFailure::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_url_names_its_registry() {
        let endpoint =
            RegistryEndpoint::from_url("http://127.0.0.1:8080/", Credentials::Anonymous).unwrap();
        assert_eq!(endpoint.registry, "127.0.0.1:8080");
        assert!(endpoint.insecure);
        let endpoint =
            RegistryEndpoint::from_url("https://warden.example", Credentials::Anonymous).unwrap();
        assert!(!endpoint.insecure);
        assert!(RegistryEndpoint::from_url("ftp://x", Credentials::Anonymous).is_err());
        assert!(RegistryEndpoint::from_url("http://x/prefix", Credentials::Anonymous).is_err());
    }

    #[test]
    fn credentials_never_print_their_secrets() {
        let basic = Credentials::Basic {
            username: "ci".into(),
            password: "hunter2".into(),
        };
        assert_eq!(format!("{basic:?}"), "Basic(ci, ***)");
        assert_eq!(
            format!("{:?}", Credentials::Bearer("wdn_x".into())),
            "Bearer(***)"
        );
    }
}
