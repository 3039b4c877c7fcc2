//! `POST /v1/plugins/{org}/{name}/invoke/{function}`: the portal calls an
//! approved plugin's function with JSON and gets JSON back, with the release
//! that ran and what it used, or a precise error.

use super::{ApiError, ApiPath, ApiResult, AppState, ErrorBody, ErrorCode, UnreadJson};
use crate::domain::tokens::{Caller, Permission};
use crate::invocation::{Call, Ran};
pub use crate::invocation::{MeteringReport, ReleaseRan};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json_;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use warden_host::{Error as HostError, LogEntry, Output};

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
    let actor = caller.actor();
    let ran = state
        .invoker()
        .invoke(Call {
            org: &org,
            name: &name,
            function: &function,
            args: body.args.unwrap_or_else(|| Json_::Array(Vec::new())),
            requirement: body.version.as_deref(),
            actor: &actor,
        })
        .await?;
    answer(ran).map(Json)
}

/// What a call that ran answers: its result, or the error (the plugin's
/// own, a limit, a trap) with what it used and logged. The console's
/// try-it page shows the same.
pub(crate) fn answer(ran: Ran) -> ApiResult<InvokeResponse> {
    let Ran {
        reference,
        release,
        dependencies,
        outcome,
    } = ran;
    match outcome {
        Ok(invocation) => {
            let metering = MeteringReport::from(invocation.metering);
            match invocation.output {
                Output::Value(result) => Ok(InvokeResponse {
                    result,
                    release,
                    dependencies,
                    metering,
                    logs: invocation.logs,
                }),
                Output::PluginError(error) => {
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

/// The code of a host error; internals of host failures stay in the log.
pub(super) fn host_error(error: &HostError, details: Option<Json_>) -> ApiError {
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
