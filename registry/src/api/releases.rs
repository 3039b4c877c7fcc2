//! Releases: publishing (the server checks the signature, the artifact and the
//! component again), review (list, show with the capability diff), approval by
//! N distinct admin keys, rejection and yanking. Signed statements are also
//! attached to the artifact as OCI referrers.

use super::auth::{Caller, Permission};
use super::keys::{KeyKind, active_keys};
use super::{
    ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, AppState, DEFAULT_PAGE, MAX_PAGE, check_name,
    page_size,
};
use crate::artifact::{FetchError, SignatureReferrer};
use crate::audit::Change;
use crate::db::now_ms;
use crate::domain::approval::{Approver, Publisher, check_not_self_approval};
use crate::domain::resolution::newest_by_version;
use crate::oci::{Digest, MANIFEST_V1, OciStore, Reference, RepositoryName};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json_, json};
use std::collections::BTreeMap;
use warden_host::{
    APPROVAL_PAYLOAD_TYPE, ApprovalStatement, Envelope, Limits, RELEASE_PAYLOAD_TYPE,
    ReleaseStatement, TrustError, beyond, capability_list, parse_capabilities,
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/orgs/{org}/releases", get(list_releases))
        .route("/v1/plugins/{org}/{name}/releases", post(publish))
        .route(
            "/v1/plugins/{org}/{name}/releases/{version}",
            get(show_release),
        )
        .route(
            "/v1/plugins/{org}/{name}/releases/{version}/approve",
            post(approve),
        )
        .route(
            "/v1/plugins/{org}/{name}/releases/{version}/reject",
            post(reject),
        )
        .route(
            "/v1/plugins/{org}/{name}/releases/{version}/yank",
            post(yank),
        )
}

pub use crate::domain::status::Status;

/// A stored status, or a 500 (the control plane wrote it).
fn stored_status(text: &str) -> ApiResult<Status> {
    Status::parse(text).map_err(ApiError::internal)
}

/// A release to register: its signed statement, and the OCI manifest (already
/// pushed to `/v2/{org}/{name}/`) that carries the component.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// DSSE envelope of the release statement, signed by a publisher key of the org.
    #[schema(value_type = Object)]
    pub envelope: Envelope,
    /// `sha256:<hex>` of the pushed OCI manifest.
    pub manifest_digest: String,
}

/// A release row, decoded.
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
    pub envelope: Json_,
}

/// Capabilities added and removed against the last approved version.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
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
    pub functions: Json_,
    /// Capabilities requested (from the signed statement).
    pub requested_capabilities: Vec<String>,
    /// The component's imports, grouped by capability.
    #[schema(value_type = Object)]
    pub imports: Json_,
    /// Limits requested.
    #[schema(value_type = Object)]
    pub requested_limits: Limits,
    /// Dependencies with semver requirements.
    pub dependencies: BTreeMap<String, String>,
    /// Against the last approved version.
    pub diff: CapabilityDiff,
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
    pub envelope: Json_,
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
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReleasePage {
    /// The releases.
    pub items: Vec<ReleaseSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn bad_signature(error: TrustError) -> ApiError {
    ApiError::unprocessable("signature_invalid", error.to_string())
}

/// Explains why no signature of `envelope` verified under the active keys of
/// `kind` in `org`: unsigned, revoked, another org's, wrong kind, or unknown.
async fn explain_untrusted(
    state: &AppState,
    org: &str,
    kind: KeyKind,
    envelope: &Envelope,
) -> ApiError {
    if envelope.signatures.is_empty() {
        return ApiError::unprocessable("signature_missing", "the statement is not signed");
    }
    for signature in &envelope.signatures {
        let found: Result<Vec<(String, String, Option<i64>)>, _> =
            sqlx::query_as("SELECT org, kind, revoked_at FROM signing_keys WHERE key_id = $1")
                .bind(&signature.keyid)
                .fetch_all(state.db.pool())
                .await;
        let Ok(found) = found else { continue };
        let key = &signature.keyid;
        if let Some((_, _, Some(_))) = found
            .iter()
            .find(|(o, k, _)| o == org && k == kind.as_str())
        {
            return ApiError::unprocessable("key_revoked", format!("key {key} was revoked"));
        }
        if found.iter().any(|(o, k, _)| o == org && k == kind.as_str()) {
            return ApiError::unprocessable(
                "signature_invalid",
                format!(
                    "the signature by key {key} does not verify: the statement was altered or signed by another key"
                ),
            );
        }
        if found.iter().any(|(o, _, _)| o == org) {
            return ApiError::unprocessable(
                "wrong_key_kind",
                format!(
                    "key {key} is registered in {org:?}, but not as a {} key",
                    kind.as_str()
                ),
            );
        }
        if !found.is_empty() {
            return ApiError::unprocessable(
                "key_not_in_org",
                format!("key {key} belongs to another organization, not {org:?}"),
            );
        }
    }
    ApiError::unprocessable(
        "key_unknown",
        format!(
            "signed by {}, which is not a registered {} key of {org:?}",
            envelope
                .signatures
                .iter()
                .map(|s| s.keyid.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            kind.as_str()
        ),
    )
}

/// Verifies `envelope` against the org's active keys of `kind`.
async fn verify_envelope(
    state: &AppState,
    org: &str,
    kind: KeyKind,
    payload_type: &str,
    envelope: &Envelope,
) -> ApiResult<(warden_host::Verified, Vec<super::keys::SigningKey>)> {
    let keys = active_keys(state, org, kind).await?;
    let trusted: Vec<_> = keys.iter().map(|(k, _)| k.clone()).collect();
    match envelope.verify(payload_type, &trusted) {
        Ok(verified) => {
            let signers = keys
                .into_iter()
                .filter(|(_, row)| verified.signers.contains(&row.key_id))
                .map(|(_, row)| row)
                .collect();
            Ok((verified, signers))
        }
        Err(TrustError::NotTrusted(_)) => Err(explain_untrusted(state, org, kind, envelope).await),
        Err(other) => Err(bad_signature(other)),
    }
}

fn parse_version(version: &str) -> ApiResult<semver::Version> {
    let parsed = semver::Version::parse(version).map_err(|e| {
        ApiError::bad_request(
            "invalid_version",
            format!("{version:?} is not a semantic version: {e}"),
        )
    })?;
    if !parsed.build.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_version",
            format!("{version:?}: build metadata (+...) cannot be an OCI tag"),
        ));
    }
    Ok(parsed)
}

fn repository(org: &str, name: &str) -> ApiResult<RepositoryName> {
    format!("{org}/{name}")
        .parse()
        .map_err(|e: String| ApiError::bad_request("invalid_name", e))
}

/// Registers a release. The server checks: a publisher key of the org signed
/// it; the statement is well-formed and names this plugin; the version is new;
/// the manifest is a Wasm artifact whose layer is the signed component digest;
/// the component parses and imports nothing beyond the requested capabilities.
#[utoipa::path(post, path = "/v1/plugins/{org}/{name}/releases", tag = "releases", request_body = Publish,
    params(("org" = String, Path, description = "organization"), ("name" = String, Path, description = "plugin")),
    responses((status = 201, body = Release), (status = 400, body = super::ErrorBody),
               (status = 409, body = super::ErrorBody), (status = 422, body = super::ErrorBody)))]
async fn publish(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, name)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<Publish>,
) -> ApiResult<(StatusCode, Json<Release>)> {
    caller.require(Permission::Publish, &org)?;
    check_name("plugin", &name)?;
    let (verified, signers) = verify_envelope(
        &state,
        &org,
        KeyKind::Publisher,
        RELEASE_PAYLOAD_TYPE,
        &body.envelope,
    )
    .await?;
    let statement: ReleaseStatement = serde_json::from_slice(&verified.payload).map_err(|e| {
        ApiError::bad_request("invalid_statement", format!("release statement: {e}"))
    })?;
    if statement.name != format!("{org}/{name}") {
        return Err(ApiError::unprocessable(
            "name_mismatch",
            format!(
                "the statement is for {:?}, not {org}/{name}",
                statement.name
            ),
        ));
    }
    if !signers.iter().any(|s| s.key_id == statement.publisher_key) {
        return Err(ApiError::unprocessable(
            "signature_invalid",
            format!(
                "the statement names publisher key {} but is signed by {}",
                statement.publisher_key,
                verified.signers.join(", ")
            ),
        ));
    }
    parse_version(&statement.version)?;
    let grants = statement
        .validate()
        .map_err(|e| ApiError::bad_request("invalid_capabilities", e.to_string()))?;
    if statement.description.chars().count() > 500 {
        return Err(ApiError::bad_request(
            "invalid_description",
            "descriptions have at most 500 characters",
        ));
    }
    for (dependency, requirement) in &statement.dependencies {
        let valid_name = dependency
            .split_once('/')
            .is_some_and(|(o, n)| check_name("", o).is_ok() && check_name("", n).is_ok());
        if !valid_name {
            return Err(ApiError::bad_request(
                "invalid_dependency",
                format!("dependency {dependency:?} is not org/name"),
            ));
        }
        semver::VersionReq::parse(requirement).map_err(|e| {
            ApiError::bad_request(
                "invalid_dependency",
                format!(
                    "dependency {dependency}: {requirement:?} is not a semver requirement: {e}"
                ),
            )
        })?;
    }
    if release_row(&state, &org, &name, &statement.version)
        .await?
        .is_some()
    {
        return Err(version_exists(&org, &name, &statement.version));
    }

    // The artifact, as pushed.
    let repo = repository(&org, &name)?;
    let manifest_digest: Digest = body
        .manifest_digest
        .parse()
        .map_err(|e: String| ApiError::bad_request("invalid_digest", e))?;
    let artifact = state
        .artifacts
        .fetch(&repo, &manifest_digest)
        .await
        .map_err(|e| match e {
            FetchError::Invalid { .. } => {
                ApiError::unprocessable("artifact_invalid", e.to_string())
            }
            FetchError::NotFound { .. } | FetchError::Unavailable { .. } => {
                ApiError::unprocessable("manifest_unknown", e.to_string())
            }
        })?;
    let layer = &artifact.layer;
    if layer.digest.to_string() != statement.component.digest
        || layer.size != statement.component.size
    {
        return Err(ApiError::unprocessable(
            "digest_mismatch",
            format!(
                "the signed statement is for component {} ({} bytes), the artifact holds {} ({} bytes)",
                statement.component.digest, statement.component.size, layer.digest, layer.size
            ),
        ));
    }
    let manifest_size = artifact.manifest.len();
    let bytes = artifact.component;
    // The component itself: it must parse, and ask for nothing it did not declare.
    let engine = state.engine.clone();
    let compiled = tokio::task::spawn_blocking(move || engine.compile(&bytes))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::unprocessable("component_invalid", e.to_string()))?;
    let requested = compiled.requested();
    if !requested.unsupported.is_empty() {
        return Err(ApiError::unprocessable(
            "unsupported_imports",
            format!(
                "the component imports interfaces no Warden host provides: {}",
                requested.unsupported.join(", ")
            ),
        )
        .with_details(json!({ "unsupported": requested.unsupported })));
    }
    let missing = requested.missing(&grants);
    if !missing.is_empty() {
        let missing: Vec<String> = missing.iter().map(ToString::to_string).collect();
        return Err(ApiError::unprocessable(
            "capabilities_exceeded",
            format!(
                "the component imports capabilities the release does not request: {}",
                missing.join(", ")
            ),
        )
        .with_details(json!({ "missing": missing })));
    }
    let functions: Vec<_> = compiled.functions().cloned().collect();
    let imports: Vec<Json_> = requested
        .capabilities
        .iter()
        .map(|(capability, imports)| json!({ "capability": capability.to_string(), "imports": imports }))
        .collect();

    let now = now_ms();
    let envelope_json = serde_json::to_string(&body.envelope).map_err(ApiError::internal)?;
    let mut change = Change::begin(state.db.pool(), &org).await?;
    sqlx::query(
        "INSERT INTO plugins (org, name, description, config, created_at, updated_at)
         VALUES ($1, $2, $3, '{}', $4, $4)
         ON CONFLICT (org, name) DO UPDATE SET description = $3, updated_at = $4",
    )
    .bind(&org)
    .bind(&name)
    .bind(&statement.description)
    .bind(now)
    .execute(change.tx())
    .await?;
    let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO releases ({RELEASE_COLUMNS}) VALUES
         ($1, $2, $3, 'pending', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, NULL, NULL, $14, NULL)"
    )))
    .bind(&org)
    .bind(&name)
    .bind(&statement.version)
    .bind(&envelope_json)
    .bind(&verified.payload_digest)
    .bind(manifest_digest.to_string())
    .bind(&statement.component.digest)
    .bind(statement.component.size as i64)
    .bind(&statement.publisher_key)
    .bind(&caller.token_id)
    .bind(serde_json::to_string(&statement.capabilities).map_err(ApiError::internal)?)
    .bind(serde_json::to_string(&functions).map_err(ApiError::internal)?)
    .bind(Json_::Array(imports).to_string())
    .bind(now)
    .execute(change.tx())
    .await;
    match inserted {
        Err(e) if crate::db::is_duplicate(&e) => {
            return Err(version_exists(&org, &name, &statement.version));
        }
        other => other?,
    };
    // The version tag never moves once set. It is written last before the
    // commit (refusing a tag that names another manifest) and removed again
    // if the commit fails, so a refused or failed publish leaves no tag. (An
    // external registry keeps its own tags; releases are pinned by manifest
    // digest anyway.)
    let store = state.artifacts.embedded();
    if let Some(store) = store {
        store
            .tag(&repo, &statement.version, &manifest_digest)
            .await
            .map_err(|e| match e {
                crate::oci::OciError::TagImmutable(_) => tag_conflict(&repo, &statement.version),
                other => other.into(),
            })?;
    }
    let committed = change
        .commit(
            &caller.actor(),
            "release.publish",
            &statement.reference(),
            json!({
                "component": statement.component.digest,
                "manifest": manifest_digest.to_string(),
                "statement": verified.payload_digest,
                "publisher_key": statement.publisher_key,
                "capabilities": statement.capabilities,
            }),
        )
        .await;
    if let Err(error) = committed {
        if let Some(store) = store
            && let Err(e) = store
                .untag(&repo, &statement.version, &manifest_digest)
                .await
        {
            tracing::error!(release = %statement.reference(), "the publish failed and its tag could not be removed: {e}");
        }
        return Err(error.into());
    }
    // The signature referrer is the record's OCI copy, written once the
    // record exists.
    if let Some(store) = store
        && let Err(e) = attach(
            store,
            &repo,
            &manifest_digest,
            manifest_size,
            RELEASE_PAYLOAD_TYPE,
            &envelope_json,
        )
        .await
    {
        tracing::error!(release = %statement.reference(), error = %e.message,
            "published, but writing its signature referrer failed");
    }
    tracing::info!(release = %statement.reference(), "published");
    let release = load_release(&state, &org, &name, &statement.version).await?;
    Ok((StatusCode::CREATED, Json(release)))
}

fn tag_conflict(repo: &RepositoryName, version: &str) -> ApiError {
    ApiError::conflict(
        "tag_conflict",
        format!("tag {version} of {repo} already points to another manifest"),
    )
}

fn version_exists(org: &str, name: &str, version: &str) -> ApiError {
    ApiError::conflict(
        "version_exists",
        format!(
            "{org}/{name}@{version} is already published; versions are immutable, publish a new one"
        ),
    )
}

/// Stores `envelope` as an OCI referrer of the manifest `subject`.
async fn attach(
    store: &OciStore,
    repo: &RepositoryName,
    subject: &Digest,
    subject_size: usize,
    artifact_type: &str,
    envelope: &str,
) -> ApiResult<()> {
    let referrer = SignatureReferrer::new(subject, subject_size, artifact_type, envelope);
    store.put_blob(repo, &referrer.config).await?;
    store.put_blob(repo, &referrer.envelope).await?;
    store
        .put_manifest(
            repo,
            &Reference::Digest(Digest::of(&referrer.manifest)),
            MANIFEST_V1,
            &referrer.manifest,
        )
        .await?;
    Ok(())
}

async fn release_row(
    state: &AppState,
    org: &str,
    name: &str,
    version: &str,
) -> ApiResult<Option<ReleaseRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RELEASE_COLUMNS} FROM releases WHERE org = $1 AND name = $2 AND version = $3"
    )))
    .bind(org)
    .bind(name)
    .bind(version)
    .fetch_optional(state.db.pool())
    .await?)
}

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> ApiResult<T> {
    serde_json::from_str(text).map_err(|e| ApiError::internal(format!("stored JSON: {e}")))
}

/// The full review view of one release.
pub(super) async fn load_release(
    state: &AppState,
    org: &str,
    name: &str,
    version: &str,
) -> ApiResult<Release> {
    let row = release_row(state, org, name, version)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no release {org}/{name}@{version}")))?;
    let envelope: Json_ = decode(&row.envelope)?;
    let statement: ReleaseStatement = {
        let envelope: Envelope = decode(&row.envelope)?;
        use base64::Engine as _;
        let payload = base64::engine::general_purpose::STANDARD
            .decode(&envelope.payload)
            .map_err(ApiError::internal)?;
        serde_json::from_slice(&payload).map_err(ApiError::internal)?
    };
    let signer: Option<(String, Option<i64>)> =
        sqlx::query_as("SELECT owner, revoked_at FROM signing_keys WHERE org = $1 AND key_id = $2")
            .bind(org)
            .bind(&row.publisher_key)
            .fetch_optional(state.db.pool())
            .await?;
    let approvals: Vec<(String, String, String, i64, Option<String>)> = sqlx::query_as(
        "SELECT a.key_id, a.envelope, a.approved_by, a.created_at, k.owner FROM approvals a
         LEFT JOIN signing_keys k ON k.org = a.org AND k.key_id = a.key_id
         WHERE a.org = $1 AND a.name = $2 AND a.version = $3 ORDER BY a.created_at, a.key_id",
    )
    .bind(org)
    .bind(name)
    .bind(version)
    .fetch_all(state.db.pool())
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
        .collect::<ApiResult<Vec<_>>>()?;
    let requested: Vec<String> = decode(&row.capabilities)?;
    let diff = capability_diff(state, &row, &requested).await?;
    Ok(Release {
        name: format!("{}/{}", row.org, row.name),
        version: row.version.clone(),
        status: stored_status(&row.status)?,
        description: statement.description.clone(),
        signer: Signer {
            key_id: row.publisher_key.clone(),
            owner: signer.as_ref().map(|(owner, _)| owner.clone()),
            revoked: signer.as_ref().is_none_or(|(_, revoked)| revoked.is_some()),
        },
        published_by: row.published_by.clone(),
        component_digest: row.component_digest.clone(),
        component_size: row.component_size,
        manifest_digest: row.manifest_digest.clone(),
        functions: decode(&row.functions)?,
        requested_capabilities: requested,
        imports: decode(&row.imports)?,
        requested_limits: statement.limits.clone(),
        dependencies: statement.dependencies.clone(),
        diff,
        approvals,
        approvals_required: state.approvals_required,
        granted_capabilities: row
            .granted_capabilities
            .as_deref()
            .map(decode)
            .transpose()?,
        granted_limits: row.granted_limits.as_deref().map(decode).transpose()?,
        reason: row.reason.clone(),
        statement_digest: row.statement_digest.clone(),
        envelope,
        created_at: row.created_at,
        decided_at: row.decided_at,
    })
}

/// Requested capabilities of `row` against what the newest approved other
/// version of the plugin was granted.
async fn capability_diff(
    state: &AppState,
    row: &ReleaseRow,
    requested: &[String],
) -> ApiResult<CapabilityDiff> {
    let approved: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT version, granted_capabilities FROM releases
         WHERE org = $1 AND name = $2 AND status = 'approved' AND version <> $3",
    )
    .bind(&row.org)
    .bind(&row.name)
    .bind(&row.version)
    .fetch_all(state.db.pool())
    .await?;
    let Some((version, granted)) = newest_by_version(approved, |(v, _)| v.as_str(), |_| true)
    else {
        return Ok(CapabilityDiff {
            against: None,
            added: requested.to_vec(),
            removed: Vec::new(),
        });
    };
    let granted: Vec<String> = granted
        .as_deref()
        .map(decode)
        .transpose()?
        .unwrap_or_default();
    Ok(CapabilityDiff {
        against: Some(version),
        added: beyond(requested, &granted),
        removed: beyond(&granted, requested),
    })
}

/// One release, for review.
#[utoipa::path(get, path = "/v1/plugins/{org}/{name}/releases/{version}", tag = "releases",
    params(("org" = String, Path, description = "organization"), ("name" = String, Path, description = "plugin"),
           ("version" = String, Path, description = "version")),
    responses((status = 200, body = Release), (status = 404, body = super::ErrorBody)))]
async fn show_release(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, name, version)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<Release>> {
    caller.require(Permission::Read, &org)?;
    Ok(Json(load_release(&state, &org, &name, &version).await?))
}

/// `?status=&limit=&cursor=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReleaseQuery {
    /// Only releases in this status.
    pub status: Option<Status>,
    /// Page size, 1 to 100.
    pub limit: Option<i64>,
    /// From the previous page.
    pub cursor: Option<String>,
}

/// The org's releases, by plugin name and version; `?status=pending` for the review queue.
#[utoipa::path(get, path = "/v1/orgs/{org}/releases", tag = "releases",
    params(("org" = String, Path, description = "organization"), ReleaseQuery),
    responses((status = 200, body = ReleasePage), (status = 400, body = super::ErrorBody)))]
async fn list_releases(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
    ApiQuery(query): ApiQuery<ReleaseQuery>,
) -> ApiResult<Json<ReleasePage>> {
    caller.require(Permission::Read, &org)?;
    let limit = page_size(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let (after_name, after_version) = match &query.cursor {
        None => (String::new(), String::new()),
        Some(cursor) => cursor
            .split_once('@')
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .ok_or_else(|| {
                ApiError::bad_request("invalid_cursor", "the cursor is not one this API returned")
            })?,
    };
    let rows: Vec<(String, String, String, String, String, i64)> = sqlx::query_as(
        "SELECT name, version, status, component_digest, publisher_key, created_at FROM releases
         WHERE org = $1 AND ($2 = '' OR status = $2) AND (name > $3 OR (name = $3 AND version > $4))
         ORDER BY name, version LIMIT $5",
    )
    .bind(&org)
    .bind(query.status.map(Status::as_str).unwrap_or(""))
    .bind(&after_name)
    .bind(&after_version)
    .bind(limit + 1)
    .fetch_all(state.db.pool())
    .await?;
    let mut items = rows
        .into_iter()
        .map(
            |(name, version, status, component_digest, publisher_key, created_at)| {
                Ok(ReleaseSummary {
                    name: format!("{org}/{name}"),
                    version,
                    status: stored_status(&status)?,
                    component_digest,
                    publisher_key,
                    created_at,
                })
            },
        )
        .collect::<ApiResult<Vec<_>>>()?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|r| {
            format!(
                "{}@{}",
                r.name.split_once('/').map_or("", |(_, n)| n),
                r.version
            )
        })
    } else {
        None
    };
    Ok(Json(ReleasePage { items, next_cursor }))
}

/// An approval to record.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Approve {
    /// DSSE envelope of the approval statement, signed by an admin key of the org.
    #[schema(value_type = Object)]
    pub envelope: Envelope,
}

/// Records an approval. The release becomes approved once approvals from the
/// required number of distinct admin keys agree on the same grants.
#[utoipa::path(post, path = "/v1/plugins/{org}/{name}/releases/{version}/approve", tag = "releases",
    request_body = Approve,
    params(("org" = String, Path, description = "organization"), ("name" = String, Path, description = "plugin"),
           ("version" = String, Path, description = "version")),
    responses((status = 200, body = Release), (status = 403, body = super::ErrorBody),
               (status = 409, body = super::ErrorBody), (status = 422, body = super::ErrorBody)))]
async fn approve(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, name, version)): ApiPath<(String, String, String)>,
    ApiJson(body): ApiJson<Approve>,
) -> ApiResult<Json<Release>> {
    caller.require(Permission::Administer, &org)?;
    let row = release_row(&state, &org, &name, &version)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no release {org}/{name}@{version}")))?;
    check_open(&row, Status::Approved)?;
    let (verified, signers) = verify_envelope(
        &state,
        &org,
        KeyKind::Admin,
        APPROVAL_PAYLOAD_TYPE,
        &body.envelope,
    )
    .await?;
    let statement: ApprovalStatement = serde_json::from_slice(&verified.payload).map_err(|e| {
        ApiError::bad_request("invalid_statement", format!("approval statement: {e}"))
    })?;
    let reference = format!("{org}/{name}@{version}");
    if statement.release != reference || statement.release_statement != row.statement_digest {
        return Err(ApiError::unprocessable(
            "statement_mismatch",
            format!(
                "the approval is for {} (statement {}), this release is {reference} (statement {})",
                statement.release, statement.release_statement, row.statement_digest
            ),
        ));
    }
    let grants = parse_capabilities(&statement.capabilities)
        .map_err(|e| ApiError::bad_request("invalid_capabilities", e.to_string()))?;
    if capability_list(&grants) != statement.capabilities {
        return Err(ApiError::bad_request(
            "invalid_capabilities",
            format!(
                "capabilities must be sorted and unique: {:?}",
                capability_list(&grants)
            ),
        ));
    }
    let requested: Vec<String> = decode(&row.capabilities)?;
    let extra = beyond(&statement.capabilities, &requested);
    if !extra.is_empty() {
        return Err(ApiError::unprocessable(
            "grant_exceeds_request",
            format!(
                "the approval grants what the release does not request: {}",
                extra.join(", ")
            ),
        )
        .with_details(json!({ "extra": extra })));
    }
    let publisher_owner: Option<(String,)> =
        sqlx::query_as("SELECT owner FROM signing_keys WHERE org = $1 AND key_id = $2")
            .bind(&org)
            .bind(&row.publisher_key)
            .fetch_optional(state.db.pool())
            .await?;
    let approvers: Vec<Approver<'_>> = signers
        .iter()
        .map(|signer| Approver {
            key_id: &signer.key_id,
            owner: &signer.owner,
        })
        .collect();
    let publisher = Publisher {
        key_id: &row.publisher_key,
        owner: publisher_owner.as_ref().map(|(owner,)| owner.as_str()),
        token_id: &row.published_by,
    };
    check_not_self_approval(publisher, &approvers, &caller.token_id)
        .map_err(|e| ApiError::forbidden("self_approval", e.to_string()))?;
    let granted_capabilities =
        serde_json::to_string(&statement.capabilities).map_err(ApiError::internal)?;
    let granted_limits = serde_json::to_string(&statement.limits).map_err(ApiError::internal)?;
    if let (Some(caps), Some(limits)) = (&row.granted_capabilities, &row.granted_limits)
        && (decode::<Vec<String>>(caps)? != statement.capabilities
            || decode::<Limits>(limits)? != statement.limits)
    {
        return Err(ApiError::conflict(
            "approval_mismatch",
            "this approval grants other capabilities or limits than the earlier approval; approvals must agree",
        ));
    }

    let envelope_json = serde_json::to_string(&body.envelope).map_err(ApiError::internal)?;
    let mut change = Change::begin(state.db.pool(), &org).await?;
    // Re-read inside the transaction: another admin may have decided meanwhile.
    let status: (String,) =
        sqlx::query_as("SELECT status FROM releases WHERE org = $1 AND name = $2 AND version = $3")
            .bind(&org)
            .bind(&name)
            .bind(&version)
            .fetch_one(change.tx())
            .await?;
    if !stored_status(&status.0)?.may_become(Status::Approved) {
        return Err(ApiError::conflict(
            "release_decided",
            format!("{reference} is {} now", status.0),
        ));
    }
    let now = now_ms();
    for signer in &signers {
        let inserted = sqlx::query(
            "INSERT INTO approvals (org, name, version, key_id, envelope, approved_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&org)
        .bind(&name)
        .bind(&version)
        .bind(&signer.key_id)
        .bind(&envelope_json)
        .bind(&caller.token_id)
        .bind(now)
        .execute(change.tx())
        .await;
        match inserted {
            Err(e) if crate::db::is_duplicate(&e) => {
                return Err(ApiError::conflict(
                    "already_approved_by_key",
                    format!("key {} has already approved {reference}", signer.key_id),
                ));
            }
            other => other?,
        };
    }
    let (count,): (i64,) = sqlx::query_as(
        "SELECT COUNT(DISTINCT key_id) FROM approvals WHERE org = $1 AND name = $2 AND version = $3",
    )
    .bind(&org)
    .bind(&name)
    .bind(&version)
    .fetch_one(change.tx())
    .await?;
    let approved = count >= i64::from(state.approvals_required);
    sqlx::query(
        "UPDATE releases SET granted_capabilities = $1, granted_limits = $2, status = $3, decided_at = $4
         WHERE org = $5 AND name = $6 AND version = $7",
    )
    .bind(&granted_capabilities)
    .bind(&granted_limits)
    .bind(if approved { "approved" } else { "pending" })
    .bind(approved.then_some(now))
    .bind(&org)
    .bind(&name)
    .bind(&version)
    .execute(change.tx())
    .await?;
    change
        .commit(
            &caller.actor(),
            "release.approve",
            &reference,
            json!({
                "keys": signers.iter().map(|s| s.key_id.clone()).collect::<Vec<_>>(),
                "capabilities": statement.capabilities,
                "approvals": count,
                "required": state.approvals_required,
                "approved": approved,
            }),
        )
        .await?;
    // After the commit, like the publish's: the referrer is the record's OCI view.
    if let Some(store) = state.artifacts.embedded() {
        let written = async {
            let repo = repository(&org, &name)?;
            let manifest: Digest = row.manifest_digest.parse().map_err(ApiError::internal)?;
            let manifest_size = store.blob_size(&repo, &manifest).await?.ok_or_else(|| {
                ApiError::internal(format!("manifest {manifest} of {reference} is gone"))
            })?;
            attach(
                store,
                &repo,
                &manifest,
                manifest_size as usize,
                APPROVAL_PAYLOAD_TYPE,
                &envelope_json,
            )
            .await
        };
        if let Err(e) = written.await {
            tracing::error!(release = %reference, error = %e.message,
                "approved, but writing its approval referrer failed");
        }
    }
    Ok(Json(load_release(&state, &org, &name, &version).await?))
}

fn check_open(row: &ReleaseRow, next: Status) -> ApiResult<()> {
    if stored_status(&row.status)?.may_become(next) {
        return Ok(());
    }
    Err(ApiError::conflict(
        "release_decided",
        format!("{}/{}@{} is {}", row.org, row.name, row.version, row.status),
    ))
}

/// Why a release is rejected or yanked.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// The reason, for the publisher and the audit log.
    pub reason: String,
}

/// Rejects a pending release.
#[utoipa::path(post, path = "/v1/plugins/{org}/{name}/releases/{version}/reject", tag = "releases",
    request_body = Reason,
    params(("org" = String, Path, description = "organization"), ("name" = String, Path, description = "plugin"),
           ("version" = String, Path, description = "version")),
    responses((status = 200, body = Release), (status = 409, body = super::ErrorBody)))]
async fn reject(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, name, version)): ApiPath<(String, String, String)>,
    ApiJson(body): ApiJson<Reason>,
) -> ApiResult<Json<Release>> {
    decide(
        caller,
        state,
        org,
        name,
        version,
        body,
        Status::Rejected,
        "release.reject",
    )
    .await
}

/// Yanks a release: it never runs again.
#[utoipa::path(post, path = "/v1/plugins/{org}/{name}/releases/{version}/yank", tag = "releases",
    request_body = Reason,
    params(("org" = String, Path, description = "organization"), ("name" = String, Path, description = "plugin"),
           ("version" = String, Path, description = "version")),
    responses((status = 200, body = Release), (status = 409, body = super::ErrorBody)))]
async fn yank(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, name, version)): ApiPath<(String, String, String)>,
    ApiJson(body): ApiJson<Reason>,
) -> ApiResult<Json<Release>> {
    decide(
        caller,
        state,
        org,
        name,
        version,
        body,
        Status::Yanked,
        "release.yank",
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn decide(
    caller: Caller,
    state: AppState,
    org: String,
    name: String,
    version: String,
    body: Reason,
    to: Status,
    action: &str,
) -> ApiResult<Json<Release>> {
    caller.require(Permission::Administer, &org)?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.len() > 2000 {
        return Err(ApiError::bad_request(
            "invalid_reason",
            "give a reason of 1 to 2000 characters",
        ));
    }
    let reference = format!("{org}/{name}@{version}");
    let mut change = Change::begin(state.db.pool(), &org).await?;
    let status: Option<(String,)> =
        sqlx::query_as("SELECT status FROM releases WHERE org = $1 AND name = $2 AND version = $3")
            .bind(&org)
            .bind(&name)
            .bind(&version)
            .fetch_optional(change.tx())
            .await?;
    let Some((status,)) = status else {
        return Err(ApiError::not_found(format!("no release {reference}")));
    };
    if !stored_status(&status)?.may_become(to) {
        return Err(ApiError::conflict(
            "release_decided",
            format!("{reference} is {status}"),
        ));
    }
    sqlx::query(
        "UPDATE releases SET status = $1, reason = $2, decided_at = $3 WHERE org = $4 AND name = $5 AND version = $6",
    )
    .bind(to.as_str())
    .bind(reason)
    .bind(now_ms())
    .bind(&org)
    .bind(&name)
    .bind(&version)
    .execute(change.tx())
    .await?;
    change
        .commit(
            &caller.actor(),
            action,
            &reference,
            json!({ "reason": reason, "was": status }),
        )
        .await?;
    Ok(Json(load_release(&state, &org, &name, &version).await?))
}
