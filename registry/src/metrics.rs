//! The server's Prometheus metrics: requests by route and status,
//! invocations, errors, fuel and latency per release, dependency links,
//! and the publish compile gauges. Recorded by the HTTP layer (requests)
//! and the invoke service (`crate::invocation`); rendered at `/metrics`
//! (`api/ops.rs`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    org: String,
    webhook: String,
}

/// The server's Prometheus metrics.
pub struct Metrics {
    webhook_deliveries: Family<OutcomeLabels, Counter>,
    webhook_seconds: Histogram,
    webhook_oldest: Family<WebhookLabels, Gauge>,
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
    /// Calls of each function, for the console (not exported to
    /// Prometheus: functions would multiply the series).
    functions: std::collections::HashMap<String, FunctionCounts>,
}

/// Functions of one release counted at most: a component may export
/// many, and each counted name is kept.
pub const MAX_FUNCTIONS_COUNTED: usize = 256;

/// Calls of one function on this server since it started (while its
/// release is among those [`MAX_RELEASES_IN_METRICS`] keeps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FunctionCounts {
    /// Calls that ran or were refused at load.
    pub invocations: u64,
    /// Of those, the ones that ended with an error.
    pub errors: u64,
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
        let webhook_deliveries = Family::<OutcomeLabels, Counter>::default();
        let webhook_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let webhook_oldest = Family::<WebhookLabels, Gauge>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered, failed, given_up, refused)",
            webhook_deliveries.clone(),
        );
        registry.register(
            "webhook_delivery_duration_seconds",
            "Time from an event's commit to its delivery (first successful attempt)",
            webhook_seconds.clone(),
        );
        registry.register(
            "webhook_oldest_pending_seconds",
            "Age of each enabled endpoint's oldest undelivered event (0: none)",
            webhook_oldest.clone(),
        );
        Metrics {
            webhook_deliveries,
            webhook_seconds,
            webhook_oldest,
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
    /// One webhook delivery attempt and how it ended; `latency` (from the
    /// event's commit) for a delivered one.
    pub fn webhook_attempt(&self, outcome: &str, latency: Option<f64>) {
        self.webhook_deliveries
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
        if let Some(seconds) = latency {
            self.webhook_seconds.observe(seconds);
        }
    }

    /// The age in seconds of each enabled endpoint's oldest undelivered
    /// event (0: none), replacing what was there (a removed or disabled
    /// endpoint's series goes).
    pub fn webhooks_pending(&self, ages: &[(String, String, i64)]) {
        self.webhook_oldest.clear();
        for (org, webhook, age) in ages {
            self.webhook_oldest
                .get_or_create(&WebhookLabels {
                    org: org.clone(),
                    webhook: webhook.clone(),
                })
                .set(*age);
        }
    }

    /// One answered request: its method, matched route, status and time.
    pub fn request(&self, method: String, route: String, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route: route.clone(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route })
            .observe(seconds);
    }

    /// Records one invocation of `plugin@version`: its outcome (`None` for
    /// success, else the error kind), fuel and duration when it ran, and the
    /// function called when the release exports it (`None`: not counted by
    /// function, e.g. a name the caller made up or a release that did not
    /// load).
    pub fn invocation(
        &self,
        plugin: &str,
        version: &str,
        function: Option<&str>,
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
            if let Some(function) = function {
                // Looked up first: a function counted before costs no copy
                // of its name.
                let room = series.functions.len() < MAX_FUNCTIONS_COUNTED;
                let counts = if series.functions.contains_key(function) {
                    series.functions.get_mut(function)
                } else if room {
                    Some(series.functions.entry(function.to_owned()).or_default())
                } else {
                    None
                };
                if let Some(counts) = counts {
                    counts.invocations += 1;
                    counts.errors += u64::from(error.is_some());
                }
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

    /// Calls of each function of `plugin` (`org/name`) on this server, all
    /// its versions together.
    pub fn function_counts(&self, plugin: &str) -> BTreeMap<String, FunctionCounts> {
        let tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        let mut counts: BTreeMap<String, FunctionCounts> = BTreeMap::new();
        for (release, series) in &tracked.releases {
            if release.plugin != plugin {
                continue;
            }
            for (function, of_release) in &series.functions {
                let total = counts.entry(function.clone()).or_default();
                total.invocations += of_release.invocations;
                total.errors += of_release.errors;
            }
        }
        counts
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_per_function_up_to_a_bound() {
        let metrics = Metrics::default();
        metrics.invocation("acme/a", "1.0.0", Some("greet"), None, None);
        metrics.invocation("acme/a", "1.1.0", Some("greet"), Some("trap"), None);
        metrics.invocation("acme/a", "1.1.0", None, Some("unknown_function"), None);
        metrics.invocation("acme/b", "1.0.0", Some("greet"), None, None);
        assert_eq!(
            metrics.function_counts("acme/a"),
            BTreeMap::from([(
                "greet".to_owned(),
                FunctionCounts {
                    invocations: 2,
                    errors: 1
                }
            )])
        );
        for i in 1..MAX_FUNCTIONS_COUNTED {
            metrics.invocation("acme/a", "1.0.0", Some(&format!("f{i}")), None, None);
        }
        let counted = metrics.function_counts("acme/a");
        assert_eq!(counted.len(), MAX_FUNCTIONS_COUNTED);
        metrics.invocation("acme/a", "1.0.0", Some("one-too-many"), None, None);
        metrics.invocation("acme/a", "1.0.0", Some("greet"), None, None);
        let counted = metrics.function_counts("acme/a");
        assert!(!counted.contains_key("one-too-many"));
        assert_eq!(counted["greet"].invocations, 3, "counted ones still count");
    }

    #[test]
    fn series_are_kept_for_a_bounded_number_of_releases_and_dropped_when_yanked() {
        let metrics = Metrics::default();
        let metering = warden_host::Metering {
            fuel_used: 7,
            duration: std::time::Duration::from_millis(1),
        };
        metrics.invocation(
            "acme/first",
            "1.0.0",
            Some("run"),
            Some("trap"),
            Some(&metering),
        );
        metrics.dependency_linked("acme/first", "1.0.0", "acme/base", "1.0.0");
        for i in 0..MAX_RELEASES_IN_METRICS {
            metrics.invocation(
                "acme/many",
                &format!("0.0.{i}"),
                Some("run"),
                None,
                Some(&metering),
            );
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
