//! Where release artifacts are read from: the embedded store, in process, or
//! an external OCI registry through `oci-client`. The server never pulls from
//! its own HTTP port.

use super::component_layer;
use super::push::RegistryEndpoint;
use crate::oci::{Descriptor, Digest, MANIFEST_V1, OciError, OciStore, Reference, RepositoryName};
use oci_client::Reference as ClientReference;
use oci_client::manifest::OciDescriptor;
use std::sync::Arc;

/// Where the server reads release artifacts from.
#[derive(Clone)]
pub enum ArtifactSource {
    /// The embedded registry's store, read in process.
    Embedded(Arc<OciStore>),
    /// An external registry, pulled from with `oci-client`.
    External(RegistryEndpoint),
}

/// A Wasm artifact as read: its component layer and the component, each
/// checked against its digest.
#[derive(Debug)]
pub struct FetchedArtifact {
    /// The component's descriptor in the manifest.
    pub layer: Descriptor,
    /// The component's bytes.
    pub component: Vec<u8>,
}

/// Why an artifact could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The source does not have that manifest.
    #[error("{reference}: no such manifest{hint}")]
    NotFound {
        /// What was asked for.
        reference: String,
        /// Where to push it.
        hint: String,
    },
    /// The source could not be read (a registry outage, an I/O error).
    #[error("reading {reference}: {detail}")]
    Unavailable {
        /// What was asked for.
        reference: String,
        /// Why.
        detail: String,
    },
    /// What the source holds is not a Wasm component artifact, or does not
    /// match its digests (tampering, not an outage).
    #[error("{reference}: {detail}")]
    Invalid {
        /// What was asked for.
        reference: String,
        /// What is wrong.
        detail: String,
    },
}

impl ArtifactSource {
    /// The embedded store, when that is the source (the server then also
    /// keeps the version tags and signature referrers there).
    pub fn embedded(&self) -> Option<&Arc<OciStore>> {
        match self {
            ArtifactSource::Embedded(store) => Some(store),
            ArtifactSource::External(_) => None,
        }
    }

    /// Reads the Wasm artifact `repository@manifest`: checks the manifest
    /// against its digest and the Wasm layout, and the component against the
    /// layer's digest and size.
    pub async fn fetch(
        &self,
        repository: &RepositoryName,
        manifest: &Digest,
    ) -> Result<FetchedArtifact, FetchError> {
        match self {
            ArtifactSource::Embedded(store) => fetch_embedded(store, repository, manifest).await,
            ArtifactSource::External(source) => fetch_external(source, repository, manifest).await,
        }
    }
}

async fn fetch_embedded(
    store: &OciStore,
    repository: &RepositoryName,
    digest: &Digest,
) -> Result<FetchedArtifact, FetchError> {
    let reference = format!("{repository}@{digest}");
    let unavailable = |e: OciError| FetchError::Unavailable {
        reference: reference.clone(),
        detail: e.to_string(),
    };
    let invalid = |detail: String| FetchError::Invalid {
        reference: reference.clone(),
        detail,
    };
    // The store checks what it reads against the digest it is stored under.
    let Some((media_type, manifest, _)) = store
        .get_manifest(repository, &Reference::Digest(digest.clone()))
        .await
        .map_err(unavailable)?
    else {
        return Err(FetchError::NotFound {
            reference,
            hint: "; push the artifact first".into(),
        });
    };
    let layer = component_layer(&media_type, &manifest).map_err(invalid)?;
    let component = store
        .read_blob(repository, &layer.digest)
        .await
        .map_err(|e| match e {
            OciError::DigestInvalid(detail) => invalid(detail),
            other => unavailable(other),
        })?;
    check_size(&layer, &component).map_err(invalid)?;
    Ok(FetchedArtifact { layer, component })
}

async fn fetch_external(
    source: &RegistryEndpoint,
    repository: &RepositoryName,
    digest: &Digest,
) -> Result<FetchedArtifact, FetchError> {
    let reference = ClientReference::with_digest(
        source.registry.clone(),
        repository.to_string(),
        digest.to_string(),
    );
    let whole = reference.whole();
    let unavailable = |detail: String| FetchError::Unavailable {
        reference: whole.clone(),
        detail,
    };
    let invalid = |detail: String| FetchError::Invalid {
        reference: whole.clone(),
        detail,
    };
    let client = source.client();
    let auth = source.credentials.registry_auth();
    let (manifest, served) = client
        .pull_manifest_raw(&reference, &auth, &[MANIFEST_V1])
        .await
        .map_err(|e| {
            if is_not_found(&e) {
                FetchError::NotFound {
                    reference: whole.clone(),
                    hint: format!("; push the artifact to {} first", source.registry),
                }
            } else {
                unavailable(e.to_string())
            }
        })?;
    let computed = Digest::of(&manifest);
    if computed != *digest || served != digest.to_string() {
        return Err(invalid(format!(
            "the registry served a manifest that does not match {digest} (got {computed})"
        )));
    }
    let layer = component_layer(MANIFEST_V1, &manifest).map_err(invalid)?;
    let descriptor = OciDescriptor {
        media_type: layer.media_type.clone(),
        digest: layer.digest.to_string(),
        size: i64::try_from(layer.size).unwrap_or(i64::MAX),
        urls: None,
        annotations: None,
        artifact_type: None,
    };
    let mut component = Vec::with_capacity(layer.size.min(256 << 20) as usize);
    client
        .pull_blob(&reference, &descriptor, &mut component)
        .await
        .map_err(|e| match e {
            // The registry answered, with other bytes than the digest names.
            oci_client::errors::OciDistributionError::DigestError(detail) => invalid(format!(
                "the registry served a component that does not match its digest: {detail}"
            )),
            other => unavailable(other.to_string()),
        })?;
    check_size(&layer, &component).map_err(invalid)?;
    Ok(FetchedArtifact { layer, component })
}

/// Whether the registry said it has no such manifest (or repository).
fn is_not_found(error: &oci_client::errors::OciDistributionError) -> bool {
    use oci_client::errors::{OciDistributionError as E, OciErrorCode as Code};
    match error {
        E::ImageManifestNotFoundError(_) => true,
        E::ServerError { code, .. } => *code == 404,
        E::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                Code::ManifestUnknown | Code::NameUnknown | Code::NotFound
            )
        }),
        _ => false,
    }
}

fn check_size(layer: &Descriptor, component: &[u8]) -> Result<(), String> {
    if component.len() as u64 != layer.size {
        return Err(format!(
            "the component is {} bytes, its descriptor says {}",
            component.len(),
            layer.size
        ));
    }
    Ok(())
}
