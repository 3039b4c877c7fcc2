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
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReleaseLabels {
    plugin: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DependencyLabels {
    plugin: String,
    dependency: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    plugin: String,
    version: String,
    kind: String,
}

/// The server's Prometheus metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    invocations: Family<ReleaseLabels, Counter>,
    invocation_errors: Family<ErrorLabels, Counter>,
    fuel: Family<ReleaseLabels, Counter>,
    invocation_seconds: Family<ReleaseLabels, Histogram>,
    dependencies: Family<DependencyLabels, Counter>,
    compiles_running: Gauge,
    compiles_waiting: Gauge,
    /// The releases with series, and what each has: the series stay
    /// bounded (the least lately invoked release's are dropped past
    /// [`MAX_RELEASES_IN_METRICS`]) and a yanked release's go.
    tracked: std::sync::Mutex<Tracked>,
}

/// Releases whose series `/metrics` keeps at most; past it, the release
/// invoked least lately loses its series (its counters start again from 0
/// if it is invoked again, which Prometheus reads as a reset).
pub const MAX_RELEASES_IN_METRICS: usize = 256;

#[derive(Default)]
struct Tracked {
    tick: u64,
    releases: std::collections::HashMap<ReleaseLabels, Series>,
}

/// What one release has series for, and when it was last invoked.
#[derive(Default)]
struct Series {
    last: u64,
    kinds: std::collections::HashSet<String>,
    links: std::collections::HashSet<DependencyLabels>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("warden");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        let invocations = Family::<ReleaseLabels, Counter>::default();
        let invocation_errors = Family::<ErrorLabels, Counter>::default();
        let fuel = Family::<ReleaseLabels, Counter>::default();
        let invocation_seconds = Family::<ReleaseLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.00005, 2.0, 18))
        });
        registry.register(
            "plugin_invocations",
            "Invocations by plugin and version",
            invocations.clone(),
        );
        registry.register(
            "plugin_invocation_errors",
            "Failed invocations by plugin, version and error kind",
            invocation_errors.clone(),
        );
        registry.register(
            "plugin_fuel",
            "Fuel consumed by plugin and version",
            fuel.clone(),
        );
        registry.register(
            "plugin_invocation_duration_seconds",
            "Invocation wall-clock time by plugin and version",
            invocation_seconds.clone(),
        );
        let dependencies = Family::<DependencyLabels, Counter>::default();
        registry.register(
            "plugin_dependency_links",
            "Invocations by plugin and the dependency release (name and version) linked into them",
            dependencies.clone(),
        );
        let compiles_running = Gauge::default();
        let compiles_waiting = Gauge::default();
        registry.register(
            "publish_compiles_running",
            "Published components being compiled to check them",
            compiles_running.clone(),
        );
        registry.register(
            "publish_compiles_waiting",
            "Publishes waiting for a compile slot (warden serve --concurrent-compiles)",
            compiles_waiting.clone(),
        );
        Metrics {
            registry,
            compiles_running,
            compiles_waiting,
            requests,
            latency,
            invocations,
            invocation_errors,
            fuel,
            invocation_seconds,
            dependencies,
            tracked: std::sync::Mutex::default(),
        }
    }
}

impl Metrics {
    /// Records one invocation of `plugin@version`: its outcome (`None` for
    /// success, else the error kind), fuel and duration when it ran.
    pub fn invocation(
        &self,
        plugin: &str,
        version: &str,
        error: Option<&str>,
        metering: Option<&warden_host::Metering>,
    ) {
        let labels = ReleaseLabels {
            plugin: plugin.to_owned(),
            version: version.to_owned(),
        };
        self.track(&labels, |series| {
            if let Some(kind) = error
                && !series.kinds.contains(kind)
            {
                series.kinds.insert(kind.to_owned());
            }
        });
        self.invocations.get_or_create(&labels).inc();
        if let Some(kind) = error {
            self.invocation_errors
                .get_or_create(&ErrorLabels {
                    plugin: plugin.to_owned(),
                    version: version.to_owned(),
                    kind: kind.to_owned(),
                })
                .inc();
        }
        if let Some(metering) = metering {
            self.fuel.get_or_create(&labels).inc_by(metering.fuel_used);
            self.invocation_seconds
                .get_or_create(&labels)
                .observe(metering.duration.as_secs_f64());
        }
    }

    /// Counts one invocation of `plugin@plugin_version` linked with
    /// `dependency` at `version`.
    pub fn dependency_linked(
        &self,
        plugin: &str,
        plugin_version: &str,
        dependency: &str,
        version: &str,
    ) {
        let link = DependencyLabels {
            plugin: plugin.to_owned(),
            dependency: dependency.to_owned(),
            version: version.to_owned(),
        };
        let release = ReleaseLabels {
            plugin: plugin.to_owned(),
            version: plugin_version.to_owned(),
        };
        self.track(&release, |series| {
            if !series.links.contains(&link) {
                series.links.insert(link.clone());
            }
        });
        self.dependencies.get_or_create(&link).inc();
    }

    /// Notes that `release` is invoked now (and what `note` adds), dropping
    /// the series of the release invoked least lately when there are too
    /// many.
    fn track(&self, release: &ReleaseLabels, note: impl FnOnce(&mut Series)) {
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        tracked.tick += 1;
        let tick = tracked.tick;
        // Looked up before inserting: a release invoked before (every call
        // but its first) costs no copy of its labels.
        let series = match tracked.releases.get_mut(release) {
            Some(series) => series,
            None => tracked.releases.entry(release.clone()).or_default(),
        };
        series.last = tick;
        note(series);
        if tracked.releases.len() > MAX_RELEASES_IN_METRICS {
            let oldest = tracked
                .releases
                .iter()
                .min_by_key(|(_, series)| series.last)
                .map(|(labels, _)| labels.clone());
            if let Some(oldest) = oldest
                && let Some(series) = tracked.releases.remove(&oldest)
            {
                self.drop_series(&oldest, &series);
            }
        }
    }

    fn drop_series(&self, release: &ReleaseLabels, series: &Series) {
        self.invocations.remove(release);
        self.fuel.remove(release);
        self.invocation_seconds.remove(release);
        for kind in &series.kinds {
            self.invocation_errors.remove(&ErrorLabels {
                plugin: release.plugin.clone(),
                version: release.version.clone(),
                kind: kind.clone(),
            });
        }
        for link in &series.links {
            self.dependencies.remove(link);
        }
    }

    /// Drops every series of `plugin@version` (yanked: it never runs
    /// again), and the links of other releases to it.
    pub fn forget_release(&self, plugin: &str, version: &str) {
        let release = ReleaseLabels {
            plugin: plugin.to_owned(),
            version: version.to_owned(),
        };
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(series) = tracked.releases.remove(&release) {
            self.drop_series(&release, &series);
        }
        for series in tracked.releases.values_mut() {
            series.links.retain(|link| {
                let to_it = link.dependency == plugin && link.version == version;
                if to_it {
                    self.dependencies.remove(link);
                }
                !to_it
            });
        }
    }

    /// Sets the gauges of the publish compile gate.
    pub fn compiles(&self, gate: &crate::domain::releases::CompileGate) {
        self.compiles_running.set(gate.running());
        self.compiles_waiting.set(gate.waiting());
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
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
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route: route.clone(),
            status: response.status().as_u16(),
        })
        .inc();
    state
        .metrics
        .latency
        .get_or_create(&RouteLabels { route })
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
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
    document_path_parameters(&mut document);
    document
}

/// What path parameters may hold, declared on each (the server refuses
/// anything else before it reads it): organization and plugin names follow
/// the name grammar, a version is a semantic version, and every other
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_kept_for_a_bounded_number_of_releases_and_dropped_when_yanked() {
        let metrics = Metrics::default();
        let metering = warden_host::Metering {
            fuel_used: 7,
            duration: std::time::Duration::from_millis(1),
        };
        metrics.invocation("acme/first", "1.0.0", Some("trap"), Some(&metering));
        metrics.dependency_linked("acme/first", "1.0.0", "acme/base", "1.0.0");
        for i in 0..MAX_RELEASES_IN_METRICS {
            metrics.invocation("acme/many", &format!("0.0.{i}"), None, Some(&metering));
        }
        let text = metrics.encode();
        // The release invoked least lately lost all its series.
        assert!(!text.contains("acme/first"), "{text}");
        assert!(text.contains(r#"plugin="acme/many",version="0.0.0""#));
        let series = text
            .lines()
            .filter(|l| l.starts_with("warden_plugin_invocations_total"))
            .count();
        assert_eq!(series, MAX_RELEASES_IN_METRICS);
        // A yanked release's series go at once, and links to it.
        metrics.dependency_linked("acme/many", "0.0.1", "acme/base", "2.0.0");
        metrics.forget_release("acme/many", "0.0.0");
        metrics.forget_release("acme/base", "2.0.0");
        let text = metrics.encode();
        assert!(!text.contains(r#"version="0.0.0""#), "{text}");
        assert!(!text.contains("acme/base"), "{text}");
        assert!(text.contains(r#"plugin="acme/many",version="0.0.1""#));
    }
}
