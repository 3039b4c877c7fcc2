//! The release artifact, in one place: a component in the CNCF Wasm OCI layout
//! (config `application/vnd.wasm.config.v0+json`, one `application/wasm`
//! layer), built here for `warden publish` and the tests, checked here for the
//! server's publish and the runtime's loads, and read through an
//! [`ArtifactSource`]: the embedded store in process, or an external registry,
//! which also keeps (in the embedded store) the version tags and referrers
//! beside each release.

mod kept;
mod push;
mod source;

pub use push::{
    Credentials, Progress, PushError, PushFailure, PushProgress, RegistryEndpoint, push,
};
pub use source::{ArtifactSource, FetchError};

use crate::oci::{Descriptor, Digest, MANIFEST_V1, ManifestDocument, WASM_CONFIG_V0, WASM_LAYER};
use serde_json::json;

/// A Wasm component artifact ready to push: its config, component and manifest
/// blobs. The manifest's digest is what a release is pinned to.
#[derive(Clone, Debug)]
pub struct WasmArtifact {
    /// The config blob (`application/vnd.wasm.config.v0+json`).
    pub config: Vec<u8>,
    /// The component: the one layer.
    pub component: Vec<u8>,
    /// The OCI image manifest (`application/vnd.oci.image.manifest.v1+json`).
    pub manifest: Vec<u8>,
}

impl WasmArtifact {
    /// The artifact of `component`, whose config lists the component's
    /// exported functions and its imports (the capabilities it asks for).
    pub fn new(component: Vec<u8>, exports: &[&str], imports: &[&str]) -> WasmArtifact {
        let component_digest = Digest::of(&component);
        let config = json!({
            "architecture": "wasm",
            "os": "wasip2",
            "layerDigests": [component_digest],
            "component": { "exports": exports, "imports": imports },
        })
        .to_string()
        .into_bytes();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_V1,
            "artifactType": WASM_CONFIG_V0,
            "config": { "mediaType": WASM_CONFIG_V0, "digest": Digest::of(&config), "size": config.len() },
            "layers": [{ "mediaType": WASM_LAYER, "digest": component_digest, "size": component.len() }],
        })
        .to_string()
        .into_bytes();
        WasmArtifact {
            config,
            component,
            manifest,
        }
    }

    /// The digest of the config blob.
    pub fn config_digest(&self) -> Digest {
        Digest::of(&self.config)
    }

    /// The digest of the component (the layer).
    pub fn component_digest(&self) -> Digest {
        Digest::of(&self.component)
    }

    /// The digest of the manifest: the release's pin.
    pub fn manifest_digest(&self) -> Digest {
        Digest::of(&self.manifest)
    }
}

/// Media type of a DSSE envelope stored as a referrer layer.
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// Media type of the empty config `{}` of a referrer.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// A signed statement (a release's DSSE envelope, or an approval's) as an OCI
/// referrer of the release's manifest, so that it travels with the artifact.
#[derive(Clone, Debug)]
pub struct SignatureReferrer {
    /// The empty config blob, `{}`.
    pub config: Vec<u8>,
    /// The envelope: the one layer.
    pub envelope: Vec<u8>,
    /// The referrer's manifest, whose `subject` is the release's manifest.
    pub manifest: Vec<u8>,
}

impl SignatureReferrer {
    /// `envelope` (JSON) as a referrer of type `artifact_type` (the envelope's
    /// payload type) of the manifest `subject` of `subject_size` bytes.
    pub fn new(
        subject: &Digest,
        subject_size: usize,
        artifact_type: &str,
        envelope: &str,
    ) -> SignatureReferrer {
        let config = b"{}".to_vec();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_V1,
            "artifactType": artifact_type,
            "config": { "mediaType": EMPTY_MEDIA_TYPE, "digest": Digest::of(&config), "size": config.len() },
            "layers": [{ "mediaType": DSSE_MEDIA_TYPE, "digest": Digest::of(envelope.as_bytes()), "size": envelope.len() }],
            "subject": { "mediaType": MANIFEST_V1, "digest": subject, "size": subject_size },
        })
        .to_string()
        .into_bytes();
        SignatureReferrer {
            config,
            envelope: envelope.as_bytes().to_vec(),
            manifest,
        }
    }
}

/// Checks that `manifest`, served with `media_type`, is a Wasm component
/// artifact (an OCI image manifest with the Wasm config and exactly one
/// `application/wasm` layer) and returns its component layer.
pub fn component_layer(media_type: &str, manifest: &[u8]) -> Result<Descriptor, String> {
    let document: ManifestDocument =
        serde_json::from_slice(manifest).map_err(|e| format!("the manifest is malformed: {e}"))?;
    let config_type = document.config.as_ref().map(|c| c.media_type.as_str());
    if media_type != MANIFEST_V1
        || config_type != Some(WASM_CONFIG_V0)
        || document.layers.len() != 1
    {
        return Err(format!(
            "expected an OCI image manifest with config {WASM_CONFIG_V0} and one {WASM_LAYER} layer"
        ));
    }
    let layer = document
        .layers
        .into_iter()
        .next()
        .unwrap_or_else(|| unreachable!());
    if layer.media_type != WASM_LAYER {
        return Err(format!(
            "the layer is {}, expected {WASM_LAYER}",
            layer.media_type
        ));
    }
    Ok(layer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_artifact_passes_its_own_check() {
        let artifact = WasmArtifact::new(b"\0asm component".to_vec(), &["greet"], &[]);
        let layer = component_layer(MANIFEST_V1, &artifact.manifest).unwrap();
        assert_eq!(layer.digest, artifact.component_digest());
        assert_eq!(layer.size, artifact.component.len() as u64);
        let document: ManifestDocument = serde_json::from_slice(&artifact.manifest).unwrap();
        let config = document.config.unwrap();
        assert_eq!(config.digest, artifact.config_digest());
        assert_eq!(config.size, artifact.config.len() as u64);
        assert_eq!(document.artifact_type.as_deref(), Some(WASM_CONFIG_V0));
    }

    #[test]
    fn anything_but_one_wasm_layer_under_the_wasm_config_is_refused() {
        let artifact = WasmArtifact::new(b"component".to_vec(), &[], &[]);
        let manifest: serde_json::Value = serde_json::from_slice(&artifact.manifest).unwrap();
        let edited = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut manifest = manifest.clone();
            edit(&mut manifest);
            component_layer(MANIFEST_V1, manifest.to_string().as_bytes())
        };
        assert!(
            component_layer(
                "application/vnd.oci.image.index.v1+json",
                &artifact.manifest
            )
            .unwrap_err()
            .contains("one application/wasm layer")
        );
        assert!(
            edited(&|m| m["config"]["mediaType"] = json!("application/json"))
                .unwrap_err()
                .contains("config application/vnd.wasm.config.v0+json")
        );
        assert!(
            edited(&|m| m["layers"][0]["mediaType"] = json!("application/octet-stream"))
                .unwrap_err()
                .contains("the layer is application/octet-stream")
        );
        assert!(
            edited(&|m| {
                let layer = m["layers"][0].clone();
                m["layers"] = json!([layer.clone(), layer]);
            })
            .is_err()
        );
        assert!(
            component_layer(MANIFEST_V1, b"{not json")
                .unwrap_err()
                .contains("malformed")
        );
    }
}
