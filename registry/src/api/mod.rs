//! The REST API under `/v1`, the operational endpoints, and the state they share.

mod audit;
mod auth;
mod bodies;
mod catalog;
mod dependencies;
mod error;
mod events;
pub(crate) use events::{Credential, event_stream};
pub(crate) use invoke::answer as invocation_answer;
mod invoke;
mod keys;
mod ops;
mod orgs;
mod releases;
mod secrets;
mod tokens;
mod webhooks;

pub use crate::metrics::Metrics;
pub use bodies::{BodyDeadline, BodyGuard, UnreadJson, guard as guard_bodies};
pub use error::{ApiError, ApiResult, ErrorBody, ErrorCode, ErrorDetail};
pub use invoke::{InvocationFailure, InvokeRequest, InvokeResponse, MeteringReport, ReleaseRan};
pub use keys::AddKey;
pub use ops::{database_gate, openapi, track};
pub use orgs::{CreateOrg, WhoAmI};
pub use releases::{Approve, Publish, Reason};
pub use tokens::CreateToken;
pub use webhooks::{Replayed, WebhookList};

use crate::artifact::ArtifactSource;
use crate::db::Db;
use crate::domain::releases::ReleaseContext;
use crate::oci::OciStore;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;

/// Largest request body of the `/v1` API (the registry's `/v2` has its own).
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Largest page a list endpoint returns.
pub const MAX_PAGE: i64 = 100;
/// Page size when none is asked for.
pub const DEFAULT_PAGE: i64 = 20;

/// What every handler shares: one pointer, cloned for each request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// The state of a control plane.
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    /// The database.
    pub db: Db,
    /// What the invoke path needs, held in memory (tokens, resolved releases).
    pub snapshot: crate::domain::snapshot::Snapshot,
    /// Follows changes made by other replicas while the state is alive.
    #[expect(dead_code, reason = "held for its Drop, which stops the watcher")]
    pub changes_watcher: AbortOnDrop,
    /// The background pass writing referrers and version tags a crash or
    /// an outage left out.
    #[expect(dead_code, reason = "held for its Drop, which stops the pass")]
    pub repair_after_commits: AbortOnDrop,
    /// The embedded OCI store.
    pub oci: Arc<OciStore>,
    /// The engine that checks published components (one thread a compile,
    /// never caching; see `EngineConfig::check_only`). The runtime has its
    /// own, which runs approved ones.
    pub engine: Arc<warden_host::Engine>,
    /// Approvals from distinct admin keys a release needs.
    pub approvals_required: u32,
    /// The most a release may request or an admin approve.
    pub limit_maxima: warden_host::Limits,
    /// The largest component a release may carry.
    pub max_component_bytes: u64,
    /// Compiles of published components that may run at once.
    pub compiles: Arc<crate::domain::releases::CompileGate>,
    /// Who may run the dependency resolver, when, for how long.
    pub solver: crate::domain::dependencies::SolverGate,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Loads and runs approved releases.
    pub runtime: Arc<crate::runtime::Runtime>,
    /// Where release artifacts are read from: the embedded store (`oci`) or
    /// an external registry.
    pub artifacts: ArtifactSource,
    /// The key that encrypts plugin secrets.
    pub secrets_key: crate::domain::secrets::SecretsKey,
    /// The webhook worker (delivering while the state lives).
    #[expect(dead_code, reason = "held so that the worker stops with the state")]
    pub deliveries: AbortOnDrop,
    /// The webhook worker itself (test pings take its per-org share).
    pub deliverer: Arc<crate::events::delivery::Deliverer>,
    /// Where webhooks may go.
    pub webhook_policy: Arc<crate::domain::webhooks::WebhookPolicy>,
    /// The open event streams, bounded per token, org and server.
    pub event_streams: Arc<crate::events::streams::StreamGate>,
    /// Set once the server stops: `/readyz` answers 503, event streams
    /// end, background work takes nothing new.
    pub draining: Arc<tokio::sync::watch::Sender<bool>>,
}

/// A task that stops when the last owner is gone.
#[derive(Debug)]
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl AppState {
    /// What the release operations of the domain need.
    pub fn releases(&self) -> ReleaseContext<'_> {
        ReleaseContext {
            db: &self.db,
            artifacts: &self.artifacts,
            engine: &self.engine,
            approvals_required: self.approvals_required,
            limit_maxima: &self.limit_maxima,
            max_component_bytes: self.max_component_bytes,
            compiles: &self.compiles,
        }
    }

    /// The invoke service over this state (see `crate::invocation`).
    pub fn invoker(&self) -> crate::invocation::Invoker<'_> {
        crate::invocation::Invoker {
            db: &self.db,
            snapshot: &self.snapshot,
            solver: &self.solver,
            runtime: &self.runtime,
            metrics: &self.metrics,
            approvals_required: self.approvals_required,
        }
    }
}

/// Every `/v1` route, each declared once with its OpenAPI description.
fn v1() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ops::document())
        .merge(orgs::router())
        .merge(tokens::router())
        .merge(keys::router())
        .merge(releases::router())
        .merge(catalog::router())
        .merge(secrets::router())
        .merge(dependencies::router())
        .merge(audit::router())
        .merge(events::router())
        .merge(webhooks::router())
        .merge(invoke::router())
}

/// All `/v1` routes, plus `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.
pub fn router(state: AppState) -> Router {
    let (v1, mut document) = v1().split_for_parts();
    ops::document_common_answers(&mut document);
    ops::document_event_payloads(&mut document);
    ops::document_path_parameters(&mut document);
    v1.layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .merge(ops::router(document))
        .with_state(state.clone())
        .merge(crate::console::router(state))
}

/// `/metrics` alone, without a token: for an address only the operator's
/// scraper reaches (`warden serve --metrics-listen`).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            axum::routing::get(
                |axum::extract::State(state): axum::extract::State<AppState>| async move {
                    ops::metrics_text(&state)
                },
            ),
        )
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
                    ErrorCode::UnsupportedMediaType,
                    "send the body as JSON (Content-Type: application/json)",
                ),
                JsonRejection::BytesRejection(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::new(
                        ErrorCode::BodyTooLarge,
                        format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
                    )
                }
                JsonRejection::BytesRejection(r)
                    if std::error::Error::source(&r).is_some_and(is_body_timeout) =>
                {
                    ApiError::new(
                        ErrorCode::RequestTimeout,
                        "the request body did not arrive in time",
                    )
                }
                JsonRejection::JsonSyntaxError(r) => {
                    ApiError::new(ErrorCode::InvalidJson, r.body_text())
                }
                JsonRejection::JsonDataError(r) => {
                    ApiError::new(ErrorCode::InvalidBody, r.body_text())
                }
                other => ApiError::new(ErrorCode::InvalidBody, other.body_text()),
            }),
        }
    }
}

/// Whether a body-read failure is the body timeout's doing.
fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<tower_http::timeout::TimeoutError>() || error.is::<BodyDeadline>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// The page size a list endpoint was asked for: `default` when absent,
/// refused outside `1..=max`.
pub fn page_size(limit: Option<i64>, default: i64, max: i64) -> ApiResult<i64> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::new(
            ErrorCode::InvalidPageSize,
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
        if parts.uri.query().is_some_and(decodes_to_control) {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                "the query string holds a control character",
            ));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|r| ApiError::new(ErrorCode::InvalidQuery, r.body_text()))
    }
}

/// Whether percent-decoding `text` gives a control character (a NUL, say):
/// no name, version, id or cursor holds one, and PostgreSQL refuses a NUL
/// in text outright, so such a path or query is refused before any of it
/// reaches the database.
fn decodes_to_control(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(high), Some(low)) if hex(high).is_some() && hex(low).is_some() => {
                decoded.push((hex(high).unwrap_or(0) * 16 + hex(low).unwrap_or(0)) as u8);
                i += 3;
            }
            (byte, _, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded)
        .chars()
        .any(char::is_control)
}

/// Path parameters, refused with our error format.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        if decodes_to_control(parts.uri.path()) {
            return Err(ApiError::new(
                ErrorCode::InvalidPath,
                "the path holds a control character",
            ));
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|r| ApiError::new(ErrorCode::InvalidPath, r.body_text()))
    }
}
