//! Operations: `/healthz` (the process answers), `/readyz` (the database
//! answers), Prometheus `/metrics`, and the OpenAPI document at `/openapi.json`.

use super::AppState;
use crate::domain::tokens::Caller;
use axum::Json;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;
use std::time::Instant;
use utoipa::OpenApi;

/// The operational routes, and `/openapi.json` serving `document`.
pub(super) fn router(document: utoipa::openapi::OpenApi) -> Router<AppState> {
    let document = Arc::new(document);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(move || {
                let document = document.clone();
                async move { Json(document.as_ref().clone()) }
            }),
        )
}

/// Middleware: while the database is away (its last read by the change
/// watcher failed or stalled), a request that needs it is answered 503
/// `database_unavailable` at once rather than after waiting for a
/// connection. `/healthz` and `/metrics` need no database; invocations keep
/// their own rule (served from memory for at most the snapshot's bound).
pub async fn database_gate(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if state.db.changes().database_away() {
        let path = request.uri().path();
        let needs_database =
            !(path == "/healthz" || path == "/metrics" || path.contains("/invoke/"));
        if needs_database {
            return super::ApiError::new(
                super::ErrorCode::DatabaseUnavailable,
                "the database is unavailable; try again shortly",
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// Middleware counting requests by matched route (never the raw path, so
/// label values stay bounded) and status.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Label values stay bounded: a made-up method is counted as "other".
    let method = match request.method().as_str() {
        known @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => known,
        _ => "other",
    }
    .to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| {
            if request.uri().path().starts_with("/v2") {
                "/v2/*"
            } else {
                "unmatched"
            }
            .to_owned()
        });
    let response = next.run(request).await;
    state.metrics.request(
        method,
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    // Stopping: the listener closes at the same moment, so this is seen
    // only on a connection already open; a load balancer sees the refused
    // connections (and retries elsewhere) while calls in flight finish.
    if *state.draining.borrow() {
        return super::ApiError::new(super::ErrorCode::ShuttingDown, "the server is stopping")
            .into_response();
    }
    if !state.db.ping().await {
        return super::ApiError::new(
            super::ErrorCode::DatabaseUnavailable,
            "the database is unavailable",
        )
        .into_response();
    }
    if !state.oci.space_is_back().await {
        return super::ApiError::new(
            super::ErrorCode::StorageFull,
            "the data directory's disk is full",
        )
        .into_response();
    }
    (StatusCode::OK, "ready").into_response()
}

/// `/metrics` on the API's address: for the operator organization's tokens
/// only (plugin names of every org are in it). `warden serve
/// --metrics-listen` serves it without a token on an address of its own.
async fn metrics(caller: Caller, State(state): State<AppState>) -> Response {
    if !caller.operator || caller.role != crate::domain::tokens::Role::Admin {
        return super::ApiError::new(
            super::ErrorCode::NotOperator,
            "metrics are for admin tokens of the operator organization",
        )
        .into_response();
    }
    metrics_text(&state)
}

/// The metrics in the text exposition format.
pub(super) fn metrics_text(state: &AppState) -> Response {
    state.metrics.compiles(&state.compiles);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// What the document says beyond its paths: the title, and bearer tokens.
#[derive(OpenApi)]
#[openapi(
    info(title = "Warden control plane", description = "Catalog, keys, releases, approvals and audit of Warden plugins. The OCI Distribution API is served under /v2/."),
    components(schemas(super::ErrorCode)),
    modifiers(&BearerAuth),
    security(("token" = [])),
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document the routes are added to.
pub(super) fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The OpenAPI 3 document of the `/v1` API, generated from the routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = super::v1().into_openapi();
    document_common_answers(&mut document);
    document_event_payloads(&mut document);
    document_path_parameters(&mut document);
    document
}

/// The JSON Schema of each event type's payload, under its name in the
/// components (events carry them as `data`; `GET /v1/event-types` lists
/// which type has which).
pub(super) fn document_event_payloads(document: &mut utoipa::openapi::OpenApi) {
    let components = document.components.get_or_insert_with(Default::default);
    for (name, schema) in crate::events::types::data_schemas() {
        components.schemas.insert(name, schema);
    }
}

/// What path parameters may hold, declared on each (the server refuses
/// anything else before it reads it): organization and plugin names follow
/// the name grammar, a version is a semantic version, a secret's name is
/// what a `secret:NAME` grant names, and every other
/// parameter (a function, a key or token id) is text without control
/// characters.
pub(super) fn document_path_parameters(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let text = |pattern: &str, max: Option<usize>| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(max)
            .pattern(Some(pattern))
            .build()
    };
    each_operation(document, |_, operation| {
        for parameter in operation.parameters.iter_mut().flatten() {
            if !matches!(parameter.parameter_in, ParameterIn::Path) {
                continue;
            }
            let schema = match parameter.name.as_str() {
                "org" | "name" => text(r"^[a-z0-9]+([._-][a-z0-9]+)*$", Some(64)),
                "version" => text(
                    r"^(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})(-(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\.(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?$",
                    Some(64),
                ),
                "secret" => text(
                    r"^[A-Za-z_][A-Za-z0-9_]*$",
                    Some(warden_host::MAX_SECRET_NAME),
                ),
                _ => text(r"^[^\x00-\x1f\x7f-\x9f]+$", None),
            };
            parameter.schema = Some(schema.into());
        }
    });
}

/// Calls `f` with each operation of the document and its path.
fn each_operation(
    document: &mut utoipa::openapi::OpenApi,
    mut f: impl FnMut(&str, &mut utoipa::openapi::path::Operation),
) {
    for (path, item) in document.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            f(path, operation);
        }
    }
}

/// The answers every operation can give besides its own, documented on each
/// (a client must expect them): 401 and 403 (tokens and roles), 400 (a path,
/// query or body that does not parse), 404 where the path names an object,
/// 507 (a full disk),
/// 408, 413, 415 and 429 where a body is sent, 500 and 503 (the database is
/// down).
pub(super) fn document_common_answers(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    each_operation(document, |path, operation| {
        let mut common = vec![
            ("400", "The path, query or body is not valid."),
            ("401", "No valid token."),
            (
                "403",
                "The token's role or organization does not allow this.",
            ),
            ("500", "Internal error (the server log has the cause)."),
            ("503", "The database is unavailable; try again."),
            (
                "507",
                "The disk of the database or the OCI store is full (`storage_full`); nothing was stored.",
            ),
        ];
        if path.contains('{') {
            common.push(("404", "No such object."));
        }
        if operation.request_body.is_some() {
            common.push(("408", "The body did not arrive in time."));
            common.push(("413", "The body is too large."));
            common.push(("415", "The body is not sent as JSON."));
            common.push((
                    "429",
                    "This client is already sending its share of request bodies (`too_many_bodies`), or the operation's own limit.",
                ));
        }
        for (status, description) in common {
            operation
                .responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| error(description).into());
        }
    });
}
