//! `POST /v1/plugins/{org}/{name}/invoke/{function}`: the portal calls an
//! approved plugin's function with JSON and gets JSON back, with the release
//! that ran and what it used, or a precise error.

use super::auth::{Caller, Permission};
use super::{ApiError, ApiJson, ApiPath, ApiResult, AppState};
use crate::audit::Change;
use crate::domain::resolution::{self, ResolveError};
use crate::runtime::{LoadError, ReleaseRecord};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json_, json};
use std::collections::BTreeMap;
use warden_host::{Error as HostError, LogEntry, Output};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/v1/plugins/{org}/{name}/invoke/{function}", post(invoke))
}

/// A call.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvokeRequest {
    /// Arguments: an array by position, an object by name, or the bare value
    /// of a one-parameter function (default: no arguments).
    #[schema(value_type = Object)]
    #[serde(default)]
    pub args: Option<Json_>,
    /// A semver requirement, e.g. `^1.2` (default: the newest approved release).
    pub version: Option<String>,
}

/// The release that ran.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReleaseRan {
    /// `org/name`.
    pub name: String,
    /// Version.
    pub version: String,
    /// `sha256:` of the component.
    pub digest: String,
}

/// What a successful call returns.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct InvokeResponse {
    /// The function's result.
    #[schema(value_type = Object)]
    pub result: Json_,
    /// The release that ran.
    pub release: ReleaseRan,
    /// `{"fuel_used", "duration_us"}`.
    #[schema(value_type = Object)]
    pub metering: Json_,
    /// The plugin's log messages and stdout/stderr.
    #[schema(value_type = Vec<Object>)]
    pub logs: Vec<LogEntry>,
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
    responses((status = 200, body = InvokeResponse), (status = 400, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody),
              (status = 422, body = super::ErrorBody), (status = 429, body = super::ErrorBody),
              (status = 502, body = super::ErrorBody)))]
pub(super) async fn invoke(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, name, function)): ApiPath<(String, String, String)>,
    ApiJson(body): ApiJson<InvokeRequest>,
) -> ApiResult<Json<InvokeResponse>> {
    caller.require(Permission::Invoke, &org)?;
    let (record, config) = resolve(&state, &org, &name, body.version.as_deref()).await?;
    let reference = format!("{org}/{name}@{}", record.version);
    let plugin_label = format!("{org}/{name}");
    let loaded = match state.runtime.load(&record).await {
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
    let plugin = state
        .runtime
        .plugin(&loaded, config)
        .map_err(|e| host_error(&e, None))?;
    let args = body.args.unwrap_or_else(|| Json_::Array(Vec::new()));
    let release = ReleaseRan {
        name: plugin_label.clone(),
        version: record.version.clone(),
        digest: loaded.verified.statement.component.digest.clone(),
    };
    match state.runtime.invoke(plugin, function, args).await {
        Ok(invocation) => {
            let metering = serde_json::to_value(invocation.metering).map_err(ApiError::internal)?;
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
                    Err(ApiError::unprocessable("plugin_error", format!("{reference} returned an error"))
                        .with_details(json!({ "error": error, "release": release, "metering": metering, "logs": invocation.logs })))
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
            let details = json!({
                "release": release,
                "metering": failure.metering,
                "logs": failure.logs,
            });
            Err(host_error(&failure.error, Some(details)))
        }
    }
}

/// The status and code of a host error; internals of host failures stay in the log.
fn host_error(error: &HostError, details: Option<Json_>) -> ApiError {
    let (status, code) = match error {
        HostError::BadArgument { .. } | HostError::NotInvocable { .. } => {
            (StatusCode::BAD_REQUEST, error.code())
        }
        HostError::UnknownFunction { .. } => (StatusCode::NOT_FOUND, error.code()),
        HostError::LimitExceeded { .. } | HostError::Trap { .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, error.code())
        }
        HostError::TooManyConcurrent { .. } | HostError::Capacity(_) => {
            (StatusCode::TOO_MANY_REQUESTS, error.code())
        }
        HostError::MissingCapabilities(_)
        | HostError::UnsupportedImports(_)
        | HostError::Config(_) => (StatusCode::CONFLICT, error.code()),
        _ => return ApiError::internal(format!("invocation: {error}")),
    };
    let mut api = ApiError::new(status, code, error.to_string());
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
                StatusCode::BAD_GATEWAY,
                "registry_unavailable",
                format!("{reference} could not be pulled from the registry: {error}"),
            );
        }
        LoadError::Host(e) => host_error(e, None),
        LoadError::Untrusted(_) | LoadError::Artifact(_) => ApiError::conflict(
            "release_untrusted",
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
    let recorded = async {
        let change = Change::begin(state.db.pool(), org).await?;
        change
            .commit(
                &caller.actor(),
                action,
                reference,
                json!({ "reason": reason }),
            )
            .await
    }
    .await;
    if let Err(e) = recorded {
        tracing::error!(%reference, "could not record the refusal in the audit log: {e}");
    }
}

/// Parses the requirement and resolves the release through the domain layer,
/// mapping its errors to statuses and codes.
async fn resolve(
    state: &AppState,
    org: &str,
    name: &str,
    requirement: Option<&str>,
) -> ApiResult<(ReleaseRecord, BTreeMap<String, String>)> {
    let requirement = requirement
        .map(|r| {
            semver::VersionReq::parse(r).map_err(|e| {
                ApiError::bad_request(
                    "invalid_version_requirement",
                    format!("{r:?} is not a semver requirement: {e}"),
                )
            })
        })
        .transpose()?;
    match resolution::resolve(&state.db, org, name, requirement.as_ref()).await {
        Ok(resolved) => Ok((resolved.record, resolved.config)),
        Err(e @ ResolveError::NoPlugin { .. }) => Err(ApiError::not_found(e.to_string())),
        Err(e @ ResolveError::NoApprovedRelease { .. }) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_approved_release",
            e.to_string(),
        )),
        Err(e @ ResolveError::Untrusted { .. }) => {
            Err(ApiError::conflict("release_untrusted", e.to_string()))
        }
        Err(ResolveError::Db(e)) => Err(e.into()),
        Err(e @ ResolveError::Corrupt(_)) => Err(ApiError::internal(e)),
    }
}
