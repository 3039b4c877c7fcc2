//! Releases: publishing (the signature, the artifact and the component are
//! checked again by the server), review (one release with the capability
//! diff, the org's releases page by page), approval by N distinct admin keys,
//! rejection and yanking. Signed statements are also attached to the artifact
//! as OCI referrers, after the database has the record.

mod compile_gate;
mod decide;
mod publish;
mod referrers;
mod review;
mod tags;

pub use compile_gate::{CompileGate, CompileRefused};
pub use decide::{approve, reject, yank};
pub use publish::{ImportProblem, check_imports, publish};
pub use referrers::{REPAIR_INTERVAL, repair_referrers};
pub use review::ReleaseChanges;
use tags::version_tag_lock;
pub use tags::{reconcile_pending_tags, repair_external_tags};

use super::approval::SelfApproval;
use super::keys::{self, SignatureError};
use super::names::InvalidName;
use super::resolution::newest_by_version;
use super::status::Status;
use crate::artifact::{ArtifactSource, FetchError};
use crate::db::Db;
use crate::oci::{Digest, OciError, RepositoryName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use warden_host::{Engine, Envelope, FunctionInfo, Limits, ReleaseStatement, beyond};

/// What the release operations need: the database, where artifacts are
/// read (and, embedded, written), the engine that checks components, and
/// how many admin keys must approve.
#[derive(Clone, Copy)]
pub struct ReleaseContext<'a> {
    /// The database.
    pub db: &'a Db,
    /// The artifact source (the embedded store, or an external registry).
    pub artifacts: &'a ArtifactSource,
    /// Compiles published components to check them.
    pub engine: &'a Arc<Engine>,
    /// Approvals from distinct admin keys a release needs.
    pub approvals_required: u32,
    /// The most a release may request or an admin approve.
    pub limit_maxima: &'a Limits,
    /// The largest component a release may carry.
    pub max_component_bytes: u64,
    /// Compiles of published components that may run at once (the rest
    /// wait their turn): publishing cannot take every core.
    pub compiles: &'a Arc<CompileGate>,
}

/// One approval of a release.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApprovalInfo {
    /// The admin key that signed it.
    pub key_id: String,
    /// That key's owner.
    pub owner: String,
    /// The token that submitted it.
    pub approved_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// The DSSE envelope of the approval statement.
    #[schema(value_type = Object)]
    pub envelope: Envelope,
}

/// The imports of a component that one capability covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportGroup {
    /// The capability, e.g. `kv` or `http:api.example.com`.
    pub capability: String,
    /// The WIT interfaces it covers.
    pub imports: Vec<String>,
}

/// Capabilities added and removed against the last approved version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CapabilityDiff {
    /// The version compared against (`null`: no approved version yet, so
    /// everything is new).
    pub against: Option<String>,
    /// Requested now, not granted to that version.
    pub added: Vec<String>,
    /// Granted to that version, not requested now.
    pub removed: Vec<String>,
}

/// The signer of a release.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Signer {
    /// Key id.
    pub key_id: String,
    /// Its registered owner.
    pub owner: Option<String>,
    /// Whether the key has been revoked since.
    pub revoked: bool,
}

/// Everything an admin reviews before approving.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Release {
    /// `org/name`.
    pub name: String,
    /// Version.
    pub version: String,
    /// Status.
    pub status: Status,
    /// Description from the release statement.
    pub description: String,
    /// The publisher's key.
    pub signer: Signer,
    /// The token that published it.
    pub published_by: String,
    /// `sha256:` of the component.
    pub component_digest: String,
    /// Component size in bytes.
    pub component_size: i64,
    /// `sha256:` of the OCI manifest.
    pub manifest_digest: String,
    /// Exported functions with WIT types and JSON Schemas.
    #[schema(value_type = Vec<Object>)]
    pub functions: Vec<FunctionInfo>,
    /// Capabilities requested (from the signed statement).
    pub requested_capabilities: Vec<String>,
    /// The component's imports, grouped by capability.
    pub imports: Vec<ImportGroup>,
    /// Limits requested.
    #[schema(value_type = Object)]
    pub requested_limits: Limits,
    /// The defaults, for comparison.
    #[schema(value_type = Object)]
    pub default_limits: Limits,
    /// What the version in `diff.against` was granted (`null`: no approved
    /// version before).
    #[schema(value_type = Option<Object>)]
    pub previous_limits: Option<Limits>,
    /// The most this server lets an admin approve.
    #[schema(value_type = Object)]
    pub limit_maxima: Limits,
    /// Dependencies with semver requirements.
    pub dependencies: BTreeMap<String, String>,
    /// Against the last approved version.
    pub diff: CapabilityDiff,
    /// Functions, dependencies and size against the same version.
    pub changes: ReleaseChanges,
    /// Approvals so far.
    pub approvals: Vec<ApprovalInfo>,
    /// Approvals needed.
    pub approvals_required: u32,
    /// What the approvals granted (once there is one).
    pub granted_capabilities: Option<Vec<String>>,
    /// Limits the approvals granted.
    #[schema(value_type = Option<Object>)]
    pub granted_limits: Option<Limits>,
    /// Why it was rejected or yanked.
    pub reason: Option<String>,
    /// `sha256:` of the release statement: what an approval signs.
    pub statement_digest: String,
    /// The DSSE envelope of the release statement.
    #[schema(value_type = Object)]
    pub envelope: Envelope,
    /// Unix milliseconds.
    pub created_at: i64,
    /// When it was approved, rejected or yanked.
    pub decided_at: Option<i64>,
}

/// A release in a list.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReleaseSummary {
    /// `org/name`.
    pub name: String,
    /// Version.
    pub version: String,
    /// Status.
    pub status: Status,
    /// `sha256:` of the component.
    pub component_digest: String,
    /// Publisher key id.
    pub publisher_key: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A page of releases.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReleasePage {
    /// The releases.
    pub items: Vec<ReleaseSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Why a release operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// No such release.
    #[error("no release {0}")]
    NotFound(String),
    /// The plugin name is not valid.
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// The statement's signature is not accepted.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The statement does not parse.
    #[error("{0}")]
    InvalidStatement(String),
    /// The statement is for another plugin.
    #[error("the statement is for {statement:?}, not {path}")]
    NameMismatch {
        /// What the statement names.
        statement: String,
        /// The plugin of the request.
        path: String,
    },
    /// The statement names a publisher key that did not sign it.
    #[error("the statement names publisher key {named} but is signed by {signed_by}")]
    PublisherKeyMismatch {
        /// The key the statement names.
        named: String,
        /// The keys that signed it.
        signed_by: String,
    },
    /// The version is not a semantic version usable as a tag.
    #[error("{0}")]
    InvalidVersion(String),
    /// Capabilities that do not parse or are not in canonical order.
    #[error("{0}")]
    InvalidCapabilities(String),
    /// The description is too long.
    #[error(
        "a description has at most {MAX_DESCRIPTION_CHARS} characters and no control characters"
    )]
    InvalidDescription,
    /// A dependency that is not `org/name` with a semver requirement.
    #[error("{0}")]
    InvalidDependency(String),
    /// The organization already has the most publishes waiting to compile.
    #[error(transparent)]
    CompileQueueFull(#[from] CompileRefused),
    /// The release's dependencies would lead back to it.
    #[error("the dependencies would form a cycle: {}", .0.join(" -> "))]
    DependencyCycle(Vec<String>),
    /// The version exists.
    #[error("{0} is already published; versions are immutable, publish a new one")]
    VersionExists(String),
    /// The manifest digest does not parse.
    #[error("{0}")]
    InvalidDigest(String),
    /// The artifact could not be read or is not a Wasm artifact.
    #[error(transparent)]
    Artifact(#[from] FetchError),
    /// The artifact holds another component than the statement signs.
    #[error(
        "the signed statement is for component {signed} ({signed_size} bytes), the artifact holds {found} ({found_size} bytes)"
    )]
    DigestMismatch {
        /// The signed digest.
        signed: String,
        /// The signed size.
        signed_size: u64,
        /// The artifact's layer digest.
        found: String,
        /// The artifact's layer size.
        found_size: u64,
    },
    /// The component does not compile.
    #[error("{0}")]
    ComponentInvalid(String),
    /// The component is larger than this server takes.
    #[error("the component has {size} bytes; this server takes at most {max}")]
    ComponentTooLarge {
        /// Its size.
        size: u64,
        /// The maximum.
        max: u64,
    },
    /// The component's imports do not fit the release.
    #[error(transparent)]
    Imports(#[from] ImportProblem),
    /// The embedded store's version tag names another manifest.
    #[error("tag {version} of {repository} already points to another manifest")]
    TagConflict {
        /// The repository.
        repository: RepositoryName,
        /// The tag.
        version: String,
    },
    /// The approval is for another release or statement.
    #[error("{0}")]
    StatementMismatch(String),
    /// The approval grants what the release does not request.
    #[error("the approval grants what the release does not request: {}", .0.join(", "))]
    GrantExceedsRequest(Vec<String>),
    /// The approver published the release.
    #[error(transparent)]
    SelfApproval(#[from] SelfApproval),
    /// This approval disagrees with an earlier one.
    #[error(
        "this approval grants other capabilities or limits than the earlier approval; approvals must agree"
    )]
    ApprovalMismatch,
    /// The release is in a state that does not allow the move.
    #[error("{reference} is {status}")]
    Decided {
        /// `org/name@version`.
        reference: String,
        /// Where it stands.
        status: &'static str,
    },
    /// The key approved this release before.
    #[error("key {key_id} has already approved {reference}")]
    AlreadyApprovedByKey {
        /// The key.
        key_id: String,
        /// `org/name@version`.
        reference: String,
    },
    /// The reason is empty or too long.
    #[error("give a reason of 1 to {MAX_REASON_CHARS} characters, without control characters")]
    InvalidReason,
    /// Limits above what this server allows.
    #[error("limits above this server's maxima: {}", .0.join(", "))]
    LimitsAboveMaxima(Vec<String>),
    /// A page cursor this API did not return.
    #[error("the cursor is not one this API returned")]
    InvalidCursor,
    /// The embedded store failed.
    #[error(transparent)]
    Store(#[from] OciError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// A stored value the control plane wrote is unreadable, or a task failed.
    #[error("{0}")]
    Internal(String),
}

/// Longest description of a release.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Longest reason for a rejection or a yank.
pub const MAX_REASON_CHARS: usize = 2000;

impl From<super::keys::KeyError> for ReleaseError {
    fn from(error: super::keys::KeyError) -> ReleaseError {
        ReleaseError::Signature(SignatureError::Keys(error))
    }
}

fn internal(what: impl std::fmt::Display) -> ReleaseError {
    ReleaseError::Internal(what.to_string())
}

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ReleaseError> {
    serde_json::from_str(text).map_err(|e| internal(format!("stored JSON: {e}")))
}

/// A release row as stored.
#[derive(Debug, sqlx::FromRow)]
struct ReleaseRow {
    org: String,
    name: String,
    version: String,
    status: String,
    envelope: String,
    statement_digest: String,
    manifest_digest: String,
    component_digest: String,
    component_size: i64,
    publisher_key: String,
    published_by: String,
    capabilities: String,
    functions: String,
    imports: String,
    granted_capabilities: Option<String>,
    granted_limits: Option<String>,
    reason: Option<String>,
    created_at: i64,
    decided_at: Option<i64>,
}

const RELEASE_COLUMNS: &str = "org, name, version, status, envelope, statement_digest, \
    manifest_digest, component_digest, component_size, publisher_key, published_by, capabilities, \
    functions, imports, granted_capabilities, granted_limits, reason, created_at, decided_at";

/// What the approvals of a release granted.
#[derive(Debug, Clone, PartialEq)]
struct Grant {
    capabilities: Vec<String>,
    limits: Limits,
}

/// A stored release, decoded: states as [`Status`], JSON columns parsed.
#[derive(Debug)]
struct StoredRelease {
    org: String,
    name: String,
    version: String,
    status: Status,
    envelope: String,
    statement_digest: String,
    manifest_digest: Digest,
    component_digest: String,
    component_size: i64,
    publisher_key: String,
    published_by: String,
    requested: Vec<String>,
    functions: Vec<FunctionInfo>,
    imports: Vec<ImportGroup>,
    granted: Option<Grant>,
    reason: Option<String>,
    created_at: i64,
    decided_at: Option<i64>,
}

impl StoredRelease {
    fn reference(&self) -> String {
        format!("{}/{}@{}", self.org, self.name, self.version)
    }

    /// Refuses unless the release may move to `next`.
    fn check_may_become(&self, next: Status) -> Result<(), ReleaseError> {
        check_transition(&self.reference(), self.status, next)
    }
}

fn check_transition(reference: &str, from: Status, to: Status) -> Result<(), ReleaseError> {
    if from.may_become(to) {
        Ok(())
    } else {
        Err(ReleaseError::Decided {
            reference: reference.to_owned(),
            status: from.as_str(),
        })
    }
}

impl TryFrom<ReleaseRow> for StoredRelease {
    type Error = ReleaseError;

    fn try_from(row: ReleaseRow) -> Result<StoredRelease, ReleaseError> {
        let granted = match (&row.granted_capabilities, &row.granted_limits) {
            (Some(capabilities), Some(limits)) => Some(Grant {
                capabilities: decode(capabilities)?,
                limits: decode(limits)?,
            }),
            _ => None,
        };
        Ok(StoredRelease {
            status: Status::parse(&row.status).map_err(internal)?,
            requested: decode(&row.capabilities)?,
            functions: decode(&row.functions)?,
            imports: decode(&row.imports)?,
            granted,
            org: row.org,
            name: row.name,
            version: row.version,
            envelope: row.envelope,
            statement_digest: row.statement_digest,
            manifest_digest: row.manifest_digest.parse().map_err(internal)?,
            component_digest: row.component_digest,
            component_size: row.component_size,
            publisher_key: row.publisher_key,
            published_by: row.published_by,
            reason: row.reason,
            created_at: row.created_at,
            decided_at: row.decided_at,
        })
    }
}

fn reference(org: &str, name: &str, version: &str) -> String {
    format!("{org}/{name}@{version}")
}

fn repository(org: &str, name: &str) -> Result<RepositoryName, ReleaseError> {
    format!("{org}/{name}")
        .parse()
        .map_err(|e: String| internal(format!("repository {org}/{name}: {e}")))
}

async fn stored(
    db: &Db,
    org: &str,
    name: &str,
    version: &str,
) -> Result<Option<StoredRelease>, ReleaseError> {
    let row: Option<ReleaseRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RELEASE_COLUMNS} FROM releases WHERE org = $1 AND name = $2 AND version = $3"
    )))
    .bind(org)
    .bind(name)
    .bind(version)
    .fetch_optional(db.pool())
    .await?;
    row.map(StoredRelease::try_from).transpose()
}

async fn existing(
    db: &Db,
    org: &str,
    name: &str,
    version: &str,
) -> Result<StoredRelease, ReleaseError> {
    stored(db, org, name, version)
        .await?
        .ok_or_else(|| ReleaseError::NotFound(reference(org, name, version)))
}

/// The full review view of one release.
pub async fn show(
    cx: &ReleaseContext<'_>,
    org: &str,
    name: &str,
    version: &str,
) -> Result<Release, ReleaseError> {
    let row = existing(cx.db, org, name, version).await?;
    let envelope: Envelope = decode(&row.envelope)?;
    let statement: ReleaseStatement =
        serde_json::from_slice(&envelope.unverified_payload().map_err(internal)?)
            .map_err(internal)?;
    let signer = keys::find(cx.db, org, &row.publisher_key).await?;
    let approvals: Vec<(String, String, String, i64, Option<String>)> = sqlx::query_as(
        "SELECT a.key_id, a.envelope, a.approved_by, a.created_at, k.owner FROM approvals a
         LEFT JOIN signing_keys k ON k.org = a.org AND k.key_id = a.key_id
         WHERE a.org = $1 AND a.name = $2 AND a.version = $3 ORDER BY a.created_at, a.key_id",
    )
    .bind(org)
    .bind(name)
    .bind(version)
    .fetch_all(cx.db.pool())
    .await?;
    let approvals = approvals
        .into_iter()
        .map(|(key_id, envelope, approved_by, created_at, owner)| {
            Ok(ApprovalInfo {
                key_id,
                owner: owner.unwrap_or_default(),
                approved_by,
                created_at,
                envelope: decode(&envelope)?,
            })
        })
        .collect::<Result<Vec<_>, ReleaseError>>()?;
    let previous = last_approved(cx.db, &row).await?;
    let previous_statement = previous
        .as_ref()
        .map(|previous| statement_of(&previous.envelope))
        .transpose()?;
    let changes = review::compare(
        previous
            .as_ref()
            .zip(previous_statement.as_ref())
            .map(|(previous, statement)| review::Side {
                version: &previous.version,
                functions: &previous.functions,
                dependencies: &statement.dependencies,
                size: previous.component_size,
            })
            .as_ref(),
        &review::Side {
            version: &row.version,
            functions: &row.functions,
            dependencies: &statement.dependencies,
            size: row.component_size,
        },
    );
    let previous_grant =
        previous.and_then(|previous| previous.granted.map(|grant| (previous.version, grant)));
    let previous_limits = previous_grant
        .as_ref()
        .map(|(_, grant)| grant.limits.clone());
    let diff = capability_diff(
        &row.requested,
        previous_grant.map(|(version, grant)| (version, grant.capabilities)),
    );
    let (granted_capabilities, granted_limits) = match row.granted {
        Some(grant) => (Some(grant.capabilities), Some(grant.limits)),
        None => (None, None),
    };
    Ok(Release {
        name: format!("{}/{}", row.org, row.name),
        version: row.version,
        status: row.status,
        description: statement.description,
        signer: Signer {
            key_id: row.publisher_key,
            owner: signer.as_ref().map(|key| key.owner.clone()),
            revoked: signer.as_ref().is_none_or(|key| key.revoked_at.is_some()),
        },
        published_by: row.published_by,
        component_digest: row.component_digest,
        component_size: row.component_size,
        manifest_digest: row.manifest_digest.to_string(),
        functions: row.functions,
        requested_capabilities: row.requested,
        imports: row.imports,
        requested_limits: statement.limits,
        default_limits: Limits::default(),
        previous_limits,
        limit_maxima: cx.limit_maxima.clone(),
        dependencies: statement.dependencies,
        diff,
        changes,
        approvals,
        approvals_required: cx.approvals_required,
        granted_capabilities,
        granted_limits,
        reason: row.reason,
        statement_digest: row.statement_digest,
        envelope,
        created_at: row.created_at,
        decided_at: row.decided_at,
    })
}

/// The newest approved other version of the release's plugin.
async fn last_approved(
    db: &Db,
    row: &StoredRelease,
) -> Result<Option<StoredRelease>, ReleaseError> {
    let approved: Vec<(String,)> = sqlx::query_as(
        "SELECT version FROM releases
         WHERE org = $1 AND name = $2 AND status = $3 AND version <> $4",
    )
    .bind(&row.org)
    .bind(&row.name)
    .bind(Status::Approved.as_str())
    .bind(&row.version)
    .fetch_all(db.pool())
    .await?;
    let Some((version,)) = newest_by_version(approved, |(v,)| v.as_str(), |_| true) else {
        return Ok(None);
    };
    stored(db, &row.org, &row.name, &version).await
}

/// The release statement inside a stored envelope (its signature was
/// checked when it was published).
fn statement_of(envelope: &str) -> Result<ReleaseStatement, ReleaseError> {
    let envelope: Envelope = decode(envelope)?;
    serde_json::from_slice(&envelope.unverified_payload().map_err(internal)?).map_err(internal)
}

/// Requested capabilities against what a version was granted (`None`: no
/// approved version yet, so everything requested is new).
pub fn capability_diff(
    requested: &[String],
    against: Option<(String, Vec<String>)>,
) -> CapabilityDiff {
    match against {
        None => CapabilityDiff {
            against: None,
            added: requested.to_vec(),
            removed: Vec::new(),
        },
        Some((version, granted)) => CapabilityDiff {
            against: Some(version),
            added: beyond(requested, &granted),
            removed: beyond(&granted, requested),
        },
    }
}

/// A page of the org's releases by plugin name and version after `cursor`
/// (`name@version`, as the previous page returned it), only those in
/// `status` if given.
pub async fn list(
    db: &Db,
    org: &str,
    status: Option<Status>,
    cursor: Option<&str>,
    limit: i64,
) -> Result<ReleasePage, ReleaseError> {
    let (after_name, after_version) = match cursor {
        None => ("", ""),
        Some(cursor) => cursor.split_once('@').ok_or(ReleaseError::InvalidCursor)?,
    };
    let rows: Vec<(String, String, String, String, String, i64)> = sqlx::query_as(
        "SELECT name, version, status, component_digest, publisher_key, created_at FROM releases
         WHERE org = $1 AND ($2 = '' OR status = $2) AND (name > $3 OR (name = $3 AND version > $4))
         ORDER BY name, version LIMIT $5",
    )
    .bind(org)
    .bind(status.map(Status::as_str).unwrap_or(""))
    .bind(after_name)
    .bind(after_version)
    .bind(limit + 1)
    .fetch_all(db.pool())
    .await?;
    let more = rows.len() as i64 > limit;
    let next_cursor = more
        .then(|| rows.get(limit as usize - 1))
        .flatten()
        .map(|(name, version, ..)| format!("{name}@{version}"));
    let items = rows
        .into_iter()
        .take(limit as usize)
        .map(
            |(name, version, status, component_digest, publisher_key, created_at)| {
                Ok(ReleaseSummary {
                    name: format!("{org}/{name}"),
                    version,
                    status: Status::parse(&status).map_err(internal)?,
                    component_digest,
                    publisher_key,
                    created_at,
                })
            },
        )
        .collect::<Result<Vec<_>, ReleaseError>>()?;
    Ok(ReleasePage { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(list: &[&str]) -> Vec<String> {
        list.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn without_an_approved_version_everything_requested_is_new() {
        let diff = capability_diff(&caps(&["kv", "log"]), None);
        assert_eq!(
            diff,
            CapabilityDiff {
                against: None,
                added: caps(&["kv", "log"]),
                removed: vec![],
            }
        );
    }

    #[test]
    fn the_diff_names_what_was_added_and_what_was_dropped() {
        let diff = capability_diff(
            &caps(&["http:api.example.com", "kv"]),
            Some(("1.0.0".into(), caps(&["kv", "config"]))),
        );
        assert_eq!(diff.against.as_deref(), Some("1.0.0"));
        assert_eq!(diff.added, caps(&["http:api.example.com"]));
        assert_eq!(diff.removed, caps(&["config"]));
    }

    #[tokio::test]
    async fn a_tag_left_by_a_crash_before_the_commit_is_removed_at_start() {
        use crate::artifact::WasmArtifact;
        use crate::oci::{MANIFEST_V1, OciStore, Reference};
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_sqlite(dir.path()).await.unwrap();
        let store = OciStore::open(&dir.path().join("oci"), 1 << 20)
            .await
            .unwrap();
        let repo: RepositoryName = "acme/hello".parse().unwrap();
        let artifact = WasmArtifact::new(b"\0asm\x0d\0\x01\0".to_vec(), &[], &[]);
        store.put_blob(&repo, &artifact.config).await.unwrap();
        store.put_blob(&repo, &artifact.component).await.unwrap();
        let digest = artifact.manifest_digest();
        store
            .put_manifest(
                &repo,
                &Reference::Digest(digest.clone()),
                MANIFEST_V1,
                &artifact.manifest,
            )
            .await
            .unwrap();
        // A tag written by a publish that crashed before its commit, and a
        // tag pushed the ordinary way.
        store.tag_pending(&repo, "1.0.0", &digest).await.unwrap();
        store.tag(&repo, "pushed", &digest).await.unwrap();
        assert_eq!(store.pending_tags().await.len(), 1);
        reconcile_pending_tags(&db, &store).await.unwrap();
        assert_eq!(store.tags(&repo).await.unwrap().unwrap(), ["pushed"]);
        assert!(store.pending_tags().await.is_empty());
    }

    #[test]
    fn a_decided_release_cannot_be_decided_again() {
        assert!(check_transition("a/b@1.0.0", Status::Pending, Status::Approved).is_ok());
        let refused = check_transition("a/b@1.0.0", Status::Rejected, Status::Approved);
        assert_eq!(refused.unwrap_err().to_string(), "a/b@1.0.0 is rejected");
    }
}
