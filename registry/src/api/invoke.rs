//! `POST /v1/plugins/{org}/{name}/invoke/{function}`: the portal calls an
//! approved plugin's function with JSON and gets JSON back, with the release
//! that ran and what it used, or a precise error.

use super::{ApiError, ApiPath, ApiResult, AppState, ErrorBody, ErrorCode, UnreadJson};
use crate::domain::names;
use crate::domain::resolution::{Resolved, Skipped};
use crate::domain::tokens::{Caller, Permission};
use crate::runtime::{LinkError, Linked, LoadError, LoadedRelease};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json_, json};
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use warden_host::{Error as HostError, LogEntry, Metering, Output};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(invoke))
}

/// A call.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvokeRequest {
    /// Arguments: an array by position, an object by name, or the bare value
    /// of a one-parameter function (default: no arguments).
    #[schema(value_type = serde_json::Value)]
    #[serde(default)]
    pub args: Option<Json_>,
    /// A semver requirement, e.g. `^1.2` (default: the newest approved release).
    #[schema(
        pattern = r"^(\*|(=|>=|<=|>|<|~|\^)?(0|[1-9][0-9]{0,8})(\.(0|[1-9][0-9]{0,8})(\.(0|[1-9][0-9]{0,8})(-(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\.(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?)?)?(, (=|>=|<=|>|<|~|\^)?(0|[1-9][0-9]{0,8})(\.(0|[1-9][0-9]{0,8})(\.(0|[1-9][0-9]{0,8})(-(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\.(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?)?)?)*)$"
    )]
    pub version: Option<String>,
}

/// The release that ran.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReleaseRan {
    /// `org/name`.
    pub name: String,
    /// Version.
    pub version: String,
    /// `sha256:` of the component.
    pub digest: String,
    /// Newer releases matching the request that did not run because the
    /// database no longer trusts them (a revoked publisher key, revoked
    /// approvals), newest first, each with why. Absent when none were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
}

/// What an invocation used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MeteringReport {
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Wall-clock time in microseconds, instantiation included.
    pub duration_us: u64,
}

impl From<Metering> for MeteringReport {
    fn from(metering: Metering) -> MeteringReport {
        MeteringReport {
            fuel_used: metering.fuel_used,
            duration_us: u64::try_from(metering.duration.as_micros()).unwrap_or(u64::MAX),
        }
    }
}

/// What a successful call returns.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InvokeResponse {
    /// The function's result: any JSON value.
    #[schema(value_type = serde_json::Value)]
    pub result: Json_,
    /// The release that ran.
    pub release: ReleaseRan,
    /// The releases of its dependencies linked into the call (each after
    /// its own dependencies; empty for a plugin without dependencies).
    #[serde(default)]
    pub dependencies: Vec<ReleaseRan>,
    /// What the call used.
    pub metering: MeteringReport,
    /// The plugin's log messages and stdout/stderr.
    #[schema(value_type = Vec<Object>)]
    pub logs: Vec<LogEntry>,
}

/// The `details` of an error from a call that ran: the plugin's own error
/// (for `plugin_error`), the release, what it used and what it logged.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InvocationFailure {
    /// The `err` value the plugin returned (`plugin_error` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub error: Option<Json_>,
    /// The release that ran.
    pub release: ReleaseRan,
    /// The releases of its dependencies linked into the call.
    #[serde(default)]
    pub dependencies: Vec<ReleaseRan>,
    /// The dependency in which the call failed (`org/name@version`), if it
    /// failed in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_in: Option<String>,
    /// What the call used until it ended, if it got that far.
    pub metering: Option<MeteringReport>,
    /// The plugin's log messages and stdout/stderr.
    #[schema(value_type = Vec<Object>)]
    pub logs: Vec<LogEntry>,
}

impl InvocationFailure {
    fn details(&self) -> Json_ {
        serde_json::to_value(self).unwrap_or(Json_::Null)
    }
}

/// Calls a function of the newest approved release (or the newest matching
/// `version`). Errors: 400 bad arguments (with the path), 404 unknown plugin,
/// release or function, 409 release refused by verification, 422 the plugin's
/// own error or a limit/trap (`out_of_fuel`, `memory_limit`, `timeout`, ...),
/// 429 too many concurrent invocations, 502 registry unreachable.
#[utoipa::path(post, path = "/v1/plugins/{org}/{name}/invoke/{function}", tag = "invoke",
    request_body = InvokeRequest,
    params(("org" = String, Path, description = "organization"), ("name" = String, Path, description = "plugin"),
           ("function" = String, Path, description = "function, e.g. greet or text.count")),
    responses((status = 200, body = InvokeResponse), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
              (status = 502, body = ErrorBody)))]
async fn invoke(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, name, function)): ApiPath<(String, String, String)>,
    body: UnreadJson<InvokeRequest>,
) -> ApiResult<Json<InvokeResponse>> {
    caller.require(Permission::Invoke, &org)?;
    let body = body.read(&caller).await?;
    names::check_name("plugin", &name)?;
    let resolved = resolve(&state, &org, &name, body.version.as_deref()).await?;
    let record = &resolved.record;
    let reference = format!("{}@{}", record.repository, record.version);
    let plugin_label = record.repository.clone();
    let loaded = match state.runtime.load(record).await {
        Ok(loaded) => loaded,
        Err(error) => {
            state
                .metrics
                .invocation(&plugin_label, &record.version, Some("load_failed"), None);
            return Err(refused(&state, &caller, &org, &reference, error).await);
        }
    };
    if loaded.take_cache_rejection() {
        tracing::warn!(%reference, "a compiled-cache entry failed its check; recompiled from the verified bytes");
        audit_refusal(
            &state,
            &caller,
            &org,
            &reference,
            "cache.rejected",
            "a compiled-cache entry failed its HMAC check and was discarded; the verified component was recompiled",
        )
        .await;
    }
    let Linked {
        plugin,
        dependencies,
    } = match link(&state, &caller, &org, &name, &resolved, &loaded).await {
        Ok(linked) => linked,
        Err(error) => {
            state
                .metrics
                .invocation(&plugin_label, &record.version, Some("load_failed"), None);
            return Err(error);
        }
    };
    let args = body.args.unwrap_or_else(|| Json_::Array(Vec::new()));
    let release = ReleaseRan {
        name: plugin_label.clone(),
        version: record.version.clone(),
        digest: loaded.verified.statement.component.digest.clone(),
        skipped: resolved.skipped.clone(),
    };
    let dependencies: Vec<ReleaseRan> = dependencies
        .into_iter()
        .map(|(name, version, digest)| {
            state
                .metrics
                .dependency_linked(&plugin_label, &record.version, &name, &version);
            ReleaseRan {
                name,
                version,
                digest,
                skipped: Vec::new(),
            }
        })
        .collect();
    match state.runtime.invoke(&org, plugin, function, args).await {
        Ok(invocation) => {
            let metering = MeteringReport::from(invocation.metering);
            match invocation.output {
                Output::Value(result) => {
                    state.metrics.invocation(
                        &plugin_label,
                        &release.version,
                        None,
                        Some(&invocation.metering),
                    );
                    Ok(Json(InvokeResponse {
                        result,
                        release,
                        dependencies,
                        metering,
                        logs: invocation.logs,
                    }))
                }
                Output::PluginError(error) => {
                    state.metrics.invocation(
                        &plugin_label,
                        &release.version,
                        Some("plugin_error"),
                        Some(&invocation.metering),
                    );
                    let details = InvocationFailure {
                        error: Some(error),
                        release,
                        dependencies,
                        failed_in: None,
                        metering: Some(metering),
                        logs: invocation.logs,
                    };
                    Err(ApiError::new(
                        ErrorCode::PluginError,
                        format!("{reference} returned an error"),
                    )
                    .with_details(details.details()))
                }
            }
        }
        Err(failure) => {
            state.metrics.invocation(
                &plugin_label,
                &release.version,
                Some(failure.error.code()),
                failure.metering.as_ref(),
            );
            let details = InvocationFailure {
                error: None,
                release,
                dependencies,
                failed_in: failure.error.dependency().map(str::to_owned),
                metering: failure.metering.map(MeteringReport::from),
                logs: failure.logs,
            };
            Err(host_error(&failure.error, Some(details.details())))
        }
    }
}

/// The plugin of the resolved release, linked to its dependencies as they
/// resolve now (each verified like any release), with the dependencies'
/// names, versions and component digests.
async fn link(
    state: &AppState,
    caller: &Caller,
    org: &str,
    name: &str,
    resolved: &Resolved,
    loaded: &LoadedRelease,
) -> ApiResult<Linked> {
    if loaded.verified.statement.dependencies.is_empty() {
        let plugin = state
            .runtime
            .plugin(loaded, &resolved.config, &[])
            .map_err(|e| host_error(&e, None))?;
        return Ok(Linked {
            plugin,
            dependencies: Vec::new(),
        });
    }
    let record = &resolved.record;
    let set = state
        .snapshot
        .dependency_set(
            &state.db,
            &state.solver,
            org,
            name,
            &record.version,
            state.approvals_required,
        )
        .await?;
    match state.runtime.linked(loaded, &resolved.config, &set).await {
        Ok(linked) => Ok(linked),
        Err(LinkError::Host(error)) => Err(host_error(&error, None)),
        Err(LinkError::Load { dependency, error }) => {
            Err(refused(state, caller, org, &dependency, error).await)
        }
        Err(LinkError::Mismatch(why)) => {
            let reference = format!("{}@{}", record.repository, record.version);
            tracing::error!(%reference, "refusing to run: {why}");
            audit_refusal(state, caller, org, &reference, "release.refused", &why).await;
            Err(ApiError::new(
                ErrorCode::ReleaseUntrusted,
                format!("{reference} was refused: {why}"),
            ))
        }
    }
}

/// The code of a host error; internals of host failures stay in the log.
fn host_error(error: &HostError, details: Option<Json_>) -> ApiError {
    // The host's codes are API codes (`ErrorCode` lists each with its
    // status); a host failure has none of them and stays in the log.
    let Some(code) = ErrorCode::from_code(error.code()) else {
        return ApiError::internal(format!("invocation: {error}"));
    };
    let mut api = ApiError::new(code, error.to_string());
    if let Some(details) = details {
        api = api.with_details(details);
    }
    api
}

/// A release that cannot be loaded: registry trouble is a 502; anything that
/// failed verification is refused (409) and recorded in the audit log.
async fn refused(
    state: &AppState,
    caller: &Caller,
    org: &str,
    reference: &str,
    error: LoadError,
) -> ApiError {
    let api = match &error {
        LoadError::Registry { .. } => {
            tracing::warn!(%reference, "{error}");
            return ApiError::new(
                ErrorCode::RegistryUnavailable,
                format!("{reference} could not be pulled from the registry: {error}"),
            );
        }
        LoadError::Host(e) => host_error(e, None),
        // Refused moments ago, and audited then: not audited again.
        LoadError::Refused(_) => {
            return ApiError::new(
                ErrorCode::ReleaseUntrusted,
                format!("{reference} was refused: {error}"),
            );
        }
        LoadError::Untrusted(_) | LoadError::Artifact(_) => ApiError::new(
            ErrorCode::ReleaseUntrusted,
            format!("{reference} was refused: {error}"),
        ),
    };
    tracing::error!(%reference, "refusing to run: {error}");
    audit_refusal(
        state,
        caller,
        org,
        reference,
        "release.refused",
        &error.to_string(),
    )
    .await;
    api
}

async fn audit_refusal(
    state: &AppState,
    caller: &Caller,
    org: &str,
    reference: &str,
    action: &str,
    reason: &str,
) {
    let recorded = crate::audit::record(
        &state.db,
        org,
        &caller.actor(),
        action,
        reference,
        json!({ "reason": reason }),
    )
    .await;
    if let Err(e) = recorded {
        tracing::error!(%reference, "could not record the refusal in the audit log: {e}");
    }
}

/// Parses the requirement and resolves the release through the snapshot.
async fn resolve(
    state: &AppState,
    org: &str,
    name: &str,
    requirement: Option<&str>,
) -> ApiResult<Arc<Resolved>> {
    let requirement = requirement
        .map(|r| {
            semver::VersionReq::parse(r).map_err(|e| {
                ApiError::new(
                    ErrorCode::InvalidVersionRequirement,
                    format!("{r:?} is not a semver requirement: {e}"),
                )
            })
        })
        .transpose()?;
    Ok(state
        .snapshot
        .release(
            &state.db,
            org,
            name,
            requirement.as_ref(),
            state.approvals_required,
        )
        .await?)
}
