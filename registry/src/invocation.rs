//! The invoke path as one service: a call of `org/name`'s `function` is
//! resolved to a release (through the snapshot: no database round trip in
//! the steady state), loaded and verified, linked to its dependencies as
//! they resolve now, admitted within the org's share of the pool, run, and
//! counted in the metrics; a release refused on the way is recorded in the
//! audit log. The HTTP handler calls [`Invoker::invoke`] once and maps what
//! comes back; any other caller (the console's try-it, a trigger) gets the
//! same path.

use crate::audit::Action;
use crate::db::Db;
use crate::domain::dependencies::{DependencyError, SolverGate};
use crate::domain::names::{self, InvalidName};
use crate::domain::resolution::{ResolveError, Resolved, Skipped};
use crate::domain::snapshot::Snapshot;
use crate::metrics::Metrics;
use crate::runtime::{LinkError, Linked, LoadError, LoadedRelease, Runtime};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use warden_host::{Digest, Error as HostError, Failure, Invocation, Metering, Output};

/// The release that ran.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReleaseRan {
    /// `org/name`.
    pub name: String,
    /// Version.
    pub version: String,
    /// `sha256:` of the component.
    #[schema(value_type = String)]
    pub digest: Digest,
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

/// What the service needs: parts of the control plane, borrowed.
pub struct Invoker<'a> {
    /// The database (audit entries of refusals; what the snapshot misses).
    pub db: &'a Db,
    /// Which release runs, and the dependency sets, held in memory.
    pub snapshot: &'a Snapshot,
    /// Who may run the dependency resolver, when.
    pub solver: &'a SolverGate,
    /// Loads, links and runs releases.
    pub runtime: &'a Runtime,
    /// Invocations, errors, fuel and latency per release.
    pub metrics: &'a Metrics,
    /// Approvals a release needs.
    pub approvals_required: u32,
}

/// One call, as its caller asked for it.
pub struct Call<'a> {
    /// The organization (the caller is authorized for it already).
    pub org: &'a str,
    /// The plugin.
    pub name: &'a str,
    /// The function, e.g. `greet` or `text.count`.
    pub function: &'a str,
    /// The arguments (an array by position, an object by name, or the bare
    /// value of a one-parameter function).
    pub args: Json,
    /// A semver requirement; default: the newest approved release.
    pub requirement: Option<&'a str>,
    /// Who calls (for the audit entry of a refusal).
    pub actor: &'a str,
}

/// A call that ran (to its end or to a failure).
pub struct Ran {
    /// `org/name@version` of the release that ran.
    pub reference: String,
    /// The release.
    pub release: ReleaseRan,
    /// The releases of its dependencies linked into the call, each after
    /// its own dependencies.
    pub dependencies: Vec<ReleaseRan>,
    /// What it returned, or how it failed.
    pub outcome: Result<Invocation, Box<Failure>>,
}

/// Why a call did not run.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The plugin name is not one.
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// The requirement does not parse.
    #[error("{requirement:?} is not a semver requirement: {error}")]
    InvalidRequirement {
        /// As given.
        requirement: String,
        /// Why.
        error: semver::Error,
    },
    /// No release to run.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// Its dependencies do not resolve.
    #[error(transparent)]
    Dependencies(#[from] DependencyError),
    /// The host refused to bind or link it (missing capabilities, limits).
    #[error("{0}")]
    Host(HostError),
    /// The registry could not be reached.
    #[error("{reference} could not be pulled from the registry: {error}")]
    RegistryUnavailable {
        /// `org/name@version`.
        reference: String,
        /// Why.
        error: String,
    },
    /// It (or a dependency) failed verification: refused, and audited.
    #[error("{reference} was refused: {reason}")]
    Untrusted {
        /// `org/name@version`.
        reference: String,
        /// Why.
        reason: String,
    },
}

impl Invoker<'_> {
    /// Resolves, loads, links and runs `call`.
    pub async fn invoke(&self, call: Call<'_>) -> Result<Ran, InvokeError> {
        names::check_name("plugin", call.name)?;
        let resolved = self.resolve(&call).await?;
        let record = &resolved.record;
        let reference = format!("{}@{}", record.repository, record.version);
        let plugin_label = record.repository.clone();
        let load_failed = || {
            self.metrics.invocation(
                &plugin_label,
                &record.version,
                None,
                Some("load_failed"),
                None,
            )
        };
        let loaded = match self.runtime.load(record).await {
            Ok(loaded) => loaded,
            Err(error) => {
                load_failed();
                return Err(self.refused(&call, &reference, error).await);
            }
        };
        if loaded.take_cache_rejection() {
            tracing::warn!(%reference, "a compiled-cache entry failed its check; recompiled from the verified bytes");
            self.audit_refusal(
                &call,
                &reference,
                Action::CacheRejected,
                "a compiled-cache entry failed its HMAC check and was discarded; the verified component was recompiled",
            )
            .await;
        }
        let Linked {
            plugin,
            dependencies,
        } = match self.link(&call, &resolved, &loaded).await {
            Ok(linked) => linked,
            Err(error) => {
                load_failed();
                return Err(error);
            }
        };
        let release = ReleaseRan {
            name: plugin_label.clone(),
            version: record.version.clone(),
            digest: loaded.verified.statement.component.digest.clone(),
            skipped: resolved.skipped.clone(),
        };
        let dependencies: Vec<ReleaseRan> = dependencies
            .into_iter()
            .map(|linked| {
                self.metrics.dependency_linked(
                    &plugin_label,
                    &record.version,
                    &linked.name,
                    &linked.version,
                );
                ReleaseRan {
                    name: linked.name,
                    version: linked.version,
                    digest: linked.digest,
                    skipped: Vec::new(),
                }
            })
            .collect();
        // Counted by function only under a name the release exports: a
        // caller's made-up names take no memory.
        let counted_as = plugin
            .functions()
            .any(|f| f.name == call.function)
            .then_some(call.function);
        let outcome = self
            .runtime
            .invoke(call.org, plugin, call.function.to_owned(), call.args)
            .await;
        match &outcome {
            Ok(invocation) => {
                let kind = match invocation.output {
                    Output::Value(_) => None,
                    Output::PluginError(_) => Some("plugin_error"),
                };
                self.metrics.invocation(
                    &plugin_label,
                    &release.version,
                    counted_as,
                    kind,
                    Some(&invocation.metering),
                );
            }
            Err(failure) => self.metrics.invocation(
                &plugin_label,
                &release.version,
                counted_as,
                Some(failure.error.code()),
                failure.metering.as_ref(),
            ),
        }
        Ok(Ran {
            reference,
            release,
            dependencies,
            outcome,
        })
    }

    /// Parses the requirement and resolves the release through the snapshot.
    async fn resolve(&self, call: &Call<'_>) -> Result<std::sync::Arc<Resolved>, InvokeError> {
        let requirement = call
            .requirement
            .map(|r| {
                semver::VersionReq::parse(r).map_err(|error| InvokeError::InvalidRequirement {
                    requirement: r.to_owned(),
                    error,
                })
            })
            .transpose()?;
        Ok(self
            .snapshot
            .release(
                self.db,
                call.org,
                call.name,
                requirement.as_ref(),
                self.approvals_required,
            )
            .await?)
    }

    /// The plugin of the resolved release, linked to its dependencies as
    /// they resolve now (each verified like any release), with the
    /// dependencies' names, versions and component digests.
    async fn link(
        &self,
        call: &Call<'_>,
        resolved: &Resolved,
        loaded: &LoadedRelease,
    ) -> Result<Linked, InvokeError> {
        if loaded.verified.statement.dependencies.is_empty() {
            let plugin = self
                .runtime
                .plugin(loaded, &resolved.config, &[])
                .map_err(InvokeError::Host)?;
            return Ok(Linked {
                plugin,
                dependencies: Vec::new(),
            });
        }
        let record = &resolved.record;
        let set = self
            .snapshot
            .dependency_set(
                self.db,
                self.solver,
                call.org,
                call.name,
                &record.version,
                self.approvals_required,
            )
            .await?;
        match self.runtime.linked(loaded, &resolved.config, &set).await {
            Ok(linked) => Ok(linked),
            Err(LinkError::Host(error)) => Err(InvokeError::Host(error)),
            Err(LinkError::Load { dependency, error }) => {
                Err(self.refused(call, &dependency, error).await)
            }
            Err(LinkError::Mismatch(why)) => {
                let reference = format!("{}@{}", record.repository, record.version);
                tracing::error!(%reference, "refusing to run: {why}");
                self.audit_refusal(call, &reference, Action::ReleaseRefused, &why)
                    .await;
                Err(InvokeError::Untrusted {
                    reference,
                    reason: why,
                })
            }
        }
    }

    /// A release that cannot be loaded: registry trouble says so; anything
    /// that failed verification is refused and recorded in the audit log.
    async fn refused(&self, call: &Call<'_>, reference: &str, error: LoadError) -> InvokeError {
        let reason = error.to_string();
        let refusal = match error {
            LoadError::Registry { .. } => {
                tracing::warn!(%reference, "{reason}");
                return InvokeError::RegistryUnavailable {
                    reference: reference.to_owned(),
                    error: reason,
                };
            }
            // Refused moments ago, and audited then: not audited again.
            LoadError::Refused(_) => {
                return InvokeError::Untrusted {
                    reference: reference.to_owned(),
                    reason,
                };
            }
            LoadError::Host(e) => InvokeError::Host(e),
            LoadError::Untrusted(_) | LoadError::Artifact(_) => InvokeError::Untrusted {
                reference: reference.to_owned(),
                reason: reason.clone(),
            },
        };
        tracing::error!(%reference, "refusing to run: {reason}");
        self.audit_refusal(call, reference, Action::ReleaseRefused, &reason)
            .await;
        refusal
    }

    async fn audit_refusal(&self, call: &Call<'_>, reference: &str, action: Action, reason: &str) {
        let recorded = crate::audit::record(
            self.db,
            call.org,
            call.actor,
            action,
            reference,
            json!({ "reason": reason }),
        )
        .await;
        if let Err(e) = recorded {
            tracing::error!(%reference, "could not record the refusal in the audit log: {e}");
        }
    }
}
