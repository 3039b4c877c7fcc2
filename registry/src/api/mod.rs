//! The REST API under `/v1`, the operational endpoints, and the state they share.

mod audit;
mod auth;
mod catalog;
mod error;
mod invoke;
mod keys;
mod ops;
mod orgs;
mod releases;
mod tokens;

pub use auth::{Caller, Permission, Role, authenticate, new_secret, secret_hash};
pub use error::{ApiError, ApiResult, ErrorBody};
pub use ops::{Metrics, openapi, track};
pub use orgs::bootstrap;

use crate::db::Db;
use crate::oci::OciStore;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// Largest request body of the `/v1` API (the registry's `/v2` has its own).
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Largest page a list endpoint returns.
pub const MAX_PAGE: i64 = 100;
/// Page size when none is asked for.
pub const DEFAULT_PAGE: i64 = 20;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The embedded OCI store.
    pub oci: Arc<OciStore>,
    /// The engine: compiles published components to check them (the runtime
    /// shares it, so the compiled code is cached for the first invocation).
    pub engine: Arc<warden_host::Engine>,
    /// Approvals from distinct admin keys a release needs.
    pub approvals_required: u32,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Loads and runs approved releases.
    pub runtime: Arc<crate::runtime::Runtime>,
    /// Where release artifacts are read from: the embedded store (`oci`) or
    /// an external registry.
    pub artifacts: crate::artifact::ArtifactSource,
}

/// All `/v1` routes, plus `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(orgs::router())
        .merge(tokens::router())
        .merge(keys::router())
        .merge(releases::router())
        .merge(catalog::router())
        .merge(audit::router())
        .merge(invoke::router())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .merge(ops::router())
        .with_state(state)
}

/// A JSON body, refused with our error format: unknown fields, wrong types and
/// oversized bodies each get a specific code.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as JSON (Content-Type: application/json)",
                ),
                JsonRejection::BytesRejection(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
                    )
                }
                JsonRejection::JsonSyntaxError(r) => {
                    ApiError::bad_request("invalid_json", r.body_text())
                }
                JsonRejection::JsonDataError(r) => {
                    ApiError::bad_request("invalid_body", r.body_text())
                }
                other => ApiError::bad_request("invalid_body", other.body_text()),
            }),
        }
    }
}

/// The page size a list endpoint was asked for: `default` when absent,
/// refused outside `1..=max`.
pub fn page_size(limit: Option<i64>, default: i64, max: i64) -> ApiResult<i64> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(
            "invalid_page_size",
            format!("limit must be between 1 and {max}, got {n}"),
        )),
    }
}

/// Query strings parsed strictly, refused with our error format.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))
    }
}

/// Path parameters, refused with our error format.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|r| ApiError::bad_request("invalid_path", r.body_text()))
    }
}

/// Checks a name used for orgs and plugins: what the OCI grammar accepts for
/// one path component, kept simple: `[a-z0-9]+([._-][a-z0-9]+)*`, 1 to 64 chars.
pub fn check_name(what: &str, name: &str) -> ApiResult<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.split(['.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_name",
            format!(
                "{what} {name:?} is not valid: lowercase letters and digits, separated by single . _ or -, at most 64 characters"
            ),
        ))
    }
}
