//! Pure OCI types, no I/O: digests, repository names, tags, references, media types.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The OCI image manifest media type.
pub const MANIFEST_V1: &str = "application/vnd.oci.image.manifest.v1+json";
/// The OCI image index media type (also the referrers response).
pub const INDEX_V1: &str = "application/vnd.oci.image.index.v1+json";
/// Docker's schema 2 manifest, accepted for older clients.
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker's manifest list.
pub const DOCKER_MANIFEST_LIST_V2: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// The config media type of a Wasm component artifact (CNCF Wasm OCI layout).
pub const WASM_CONFIG_V0: &str = "application/vnd.wasm.config.v0+json";
/// The layer media type of a Wasm component.
pub const WASM_LAYER: &str = "application/wasm";

/// Manifest media types this registry stores.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    MANIFEST_V1,
    INDEX_V1,
    DOCKER_MANIFEST_V2,
    DOCKER_MANIFEST_LIST_V2,
];

pub use warden_host::Digest;

/// A repository name such as `acme/greeter`, valid per the distribution spec.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepositoryName(String);

impl RepositoryName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first path component: the organization.
    pub fn org(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }
}

fn valid_component(component: &str) -> bool {
    // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = separator == "."
            || separator == "_"
            || separator == "__"
            || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

impl FromStr for RepositoryName {
    type Err = String;

    fn from_str(name: &str) -> Result<RepositoryName, String> {
        if name.is_empty() || name.len() > 255 || !name.split('/').all(valid_component) {
            return Err(format!(
                "{name:?} is not a valid repository name (lower-case letters, digits and . _ - separators, \
                 path components joined by /)"
            ));
        }
        Ok(RepositoryName(name.to_owned()))
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `tag` is a valid tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// What a manifest request names: a tag or a digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    /// A tag, such as `1.2.0`.
    Tag(String),
    /// A digest.
    Digest(Digest),
}

impl FromStr for Reference {
    type Err = String;

    fn from_str(text: &str) -> Result<Reference, String> {
        if text.contains(':') {
            text.parse().map(Reference::Digest)
        } else if valid_tag(text) {
            Ok(Reference::Tag(text.to_owned()))
        } else {
            Err(format!("{text:?} is neither a tag nor a digest"))
        }
    }
}

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the content.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// For artifacts: their type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The parts of a manifest (image manifest or index) the registry checks.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestDocument {
    /// Must be 2.
    pub schema_version: u32,
    /// If present, must match the Content-Type it was pushed with.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The artifact type, for referrers.
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// Image manifests: the config blob.
    #[serde(default)]
    pub config: Option<Descriptor>,
    /// Image manifests: the layers.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Indexes: the manifests.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (signatures, approvals).
    #[serde(default)]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default)]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any text: a name or a refusal, never a panic; names the grammar
        /// allows parse and print back as they were.
        #[test]
        fn repository_names_parse_or_refuse(
            text in "\\PC{0,80}",
            name in "[a-z0-9]{1,8}([._-][a-z0-9]{1,4})?(/[a-z0-9]{1,8}){0,3}",
        ) {
            let _ = text.parse::<RepositoryName>();
            let parsed: RepositoryName = name.parse().unwrap();
            prop_assert_eq!(parsed.to_string(), name);
        }

        #[test]
        fn references_are_digests_or_tags(
            text in "\\PC{0,140}",
            tag in "[A-Za-z0-9_][A-Za-z0-9._-]{0,127}",
            bytes in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let _ = text.parse::<Reference>();
            prop_assert_eq!(tag.parse::<Reference>(), Ok(Reference::Tag(tag.clone())));
            let digest = Digest::of(&bytes);
            prop_assert_eq!(digest.to_string().parse::<Reference>(), Ok(Reference::Digest(digest)));
        }

        #[test]
        fn manifests_parse_or_refuse(bytes in prop::collection::vec(any::<u8>(), 0..512), text in "\\PC{0,200}") {
            let _ = serde_json::from_slice::<ManifestDocument>(&bytes);
            let _ = serde_json::from_str::<ManifestDocument>(&text);
            let _ = serde_json::from_str::<ManifestDocument>(&format!("{{\"schemaVersion\":2,\"layers\":[{text}]}}"));
        }
    }

    #[test]
    fn repository_names_follow_the_spec() {
        for good in [
            "acme/greeter",
            "a",
            "acme/tools/text-tools",
            "a.b/c__d",
            "x--y/z",
        ] {
            assert!(good.parse::<RepositoryName>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "Acme/greeter",
            "acme//greeter",
            "/acme",
            "acme/",
            "acme/../etc",
            "a_-b",
            "-a",
            "a b",
            &"a".repeat(256),
        ] {
            assert!(bad.parse::<RepositoryName>().is_err(), "{bad}");
        }
        assert_eq!(
            "acme/tools/x".parse::<RepositoryName>().unwrap().org(),
            "acme"
        );
    }

    #[test]
    fn references_are_tags_or_digests() {
        assert_eq!(
            "1.2.0".parse::<Reference>(),
            Ok(Reference::Tag("1.2.0".into()))
        );
        assert!(matches!(
            Digest::of(b"x").to_string().parse::<Reference>(),
            Ok(Reference::Digest(_))
        ));
        for bad in ["", ".hidden", "a/b", &"t".repeat(129), "sha256:nothex"] {
            assert!(bad.parse::<Reference>().is_err(), "{bad}");
        }
    }
}
