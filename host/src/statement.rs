//! The two signed statements of Warden's trust model (DESIGN.md section 6): the
//! release statement a publisher signs and the approval statement an admin signs.
//!
//! Both are serialized as canonical JSON inside DSSE envelopes (see
//! [`Envelope`](crate::Envelope)); both refuse unknown fields, so a statement
//! means exactly what its fields say.

use crate::capabilities::Grants;
use crate::error::{Error, Result};
use crate::limits::Limits;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// DSSE payload type of a [`ReleaseStatement`].
pub const RELEASE_PAYLOAD_TYPE: &str = "application/vnd.warden.release.v1+json";
/// DSSE payload type of an [`ApprovalStatement`].
pub const APPROVAL_PAYLOAD_TYPE: &str = "application/vnd.warden.approval.v1+json";

/// What a publisher signs: this component, under this name and version, asking
/// for these capabilities and limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseStatement {
    /// `org/name`.
    pub name: String,
    /// A semantic version, e.g. `1.2.0`.
    pub version: String,
    /// One line for the catalog.
    pub description: String,
    /// The component: `sha256:<hex>` of its bytes, and its size.
    pub component: ComponentRef,
    /// Requested capabilities as written on the command line: `kv`, `config`,
    /// `http:api.example.com`, `env:NAME`. Sorted, no duplicates.
    pub capabilities: Vec<String>,
    /// Requested limits.
    pub limits: Limits,
    /// Other plugins (`org/name`) with semver requirements.
    pub dependencies: BTreeMap<String, String>,
    /// Key id of the publisher key that signs this statement.
    pub publisher_key: String,
}

/// The component a release statement is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentRef {
    /// Of its bytes (`sha256:<hex>` in the statement's JSON).
    pub digest: crate::Digest,
    /// Bytes.
    pub size: u64,
}

/// What an admin signs: this release statement (by digest) may run with these
/// capabilities and limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalStatement {
    /// `org/name@version`, for people reading the statement.
    pub release: String,
    /// `sha256:<hex>` of the release statement's canonical JSON (the DSSE
    /// payload), which pins the component digest and the publisher.
    pub release_statement: String,
    /// Granted capabilities, a subset of the requested ones.
    pub capabilities: Vec<String>,
    /// Granted limits.
    pub limits: Limits,
}

/// Parses capabilities written as on the command line into [`Grants`], with
/// the offending entry named in the error.
pub fn parse_capabilities(capabilities: &[String]) -> Result<Grants> {
    Grants::parse(capabilities.iter().map(String::as_str))
}

/// The canonical list form of `grants`: sorted, no duplicates (see
/// [`Grants::list`]).
pub fn capability_list(grants: &Grants) -> Vec<String> {
    grants.list()
}

/// The entries of `granted` that `requested` does not contain; empty when
/// `granted` is within `requested`.
pub fn beyond(granted: &[String], requested: &[String]) -> Vec<String> {
    granted
        .iter()
        .filter(|grant| !requested.contains(grant))
        .cloned()
        .collect()
}

impl ReleaseStatement {
    /// `org/name@version`.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// Checks what can be checked without the component: the capabilities parse
    /// and are listed canonically.
    pub fn validate(&self) -> Result<Grants> {
        let grants = parse_capabilities(&self.capabilities)?;
        if capability_list(&grants) != self.capabilities {
            return Err(Error::Config(format!(
                "capabilities must be sorted and unique, expected {:?}",
                capability_list(&grants)
            )));
        }
        Ok(grants)
    }
}
