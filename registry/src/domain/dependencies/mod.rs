//! Dependencies between plugins: which releases a plugin's declared
//! dependencies resolve to, transitively, among the approved and non-yanked
//! releases its organization may use (today: its own), or why none do.

mod gate;
mod solver;

pub use gate::{ORG_SOLVER_BURST, ORG_SOLVER_REFILL, ORG_SOLVES_QUEUED, SolverBusy, SolverGate};
pub use solver::{Candidate, Catalog, MAX_RESOLVE_TIME, Offer, Unresolvable, solve, solve_within};

use super::names::check_name;
use super::resolution::{self, ResolveError};
use super::status::Status;
use crate::db::Db;
pub use crate::records::DependencySet;
use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use warden_host::{Envelope, ReleaseStatement};

/// Why a resolution could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum DependencyError {
    /// No such plugin in the org.
    #[error("no plugin {0}")]
    NoPlugin(String),
    /// A name or requirement that is not well-formed.
    #[error("{0}")]
    Invalid(String),
    /// No set of releases satisfies the request; the explanation says why.
    #[error("{0}")]
    Unresolvable(Unresolvable),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// A stored value that the control plane wrote is unreadable.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A chosen dependency cannot be run (its publisher key is revoked, it
    /// was yanked a moment ago...).
    #[error(transparent)]
    Release(#[from] ResolveError),
    /// The resolver is busy for this organization (its queue is full, or
    /// it spent its solver time).
    #[error(transparent)]
    Busy(#[from] SolverBusy),
    /// The dependencies resolve to more plugins than one invocation links.
    #[error(
        "its dependencies resolve to a call tree of {0} plugins; at most {max} are linked into one",
        max = warden_host::MAX_CALL_TREE
    )]
    TreeTooLarge(usize),
}

/// One release of a resolved set.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResolvedRelease {
    /// `org/name`.
    pub name: String,
    /// The chosen version.
    pub version: String,
    /// `sha256:` of its OCI manifest.
    pub manifest_digest: String,
    /// `sha256:` of its component.
    pub component_digest: String,
    /// Its dependencies: `org/name` -> the version chosen for it.
    pub dependencies: BTreeMap<String, String>,
}

/// The releases a plugin resolves to: the plugin first, then its
/// dependencies in the order they are first depended on.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Resolution {
    /// The plugin, `org/name`.
    pub plugin: String,
    /// The requirement asked for, if any.
    pub requirement: Option<String>,
    /// The chosen releases.
    pub releases: Vec<ResolvedRelease>,
}

/// Resolves `org/name` at `requirement` (any version without one): the
/// newest approved, non-yanked releases satisfying every declared
/// requirement transitively, one version per plugin. The solver runs when
/// `gate` gives `org` a turn; an answer that nothing resolves is
/// remembered there until the organization changes.
pub async fn resolve_dependencies(
    db: &Db,
    gate: &SolverGate,
    org: &str,
    name: &str,
    requirement: Option<&str>,
) -> Result<Resolution, DependencyError> {
    check_name("plugin", name).map_err(|e| DependencyError::Invalid(e.to_string()))?;
    let requirement = requirement
        .map(|text| {
            VersionReq::parse(text).map_err(|e| {
                DependencyError::Invalid(format!("{text:?} is not a semver requirement: {e}"))
            })
        })
        .transpose()?;
    let root = format!("{org}/{name}");
    let exists: Option<(String,)> =
        sqlx::query_as("SELECT name FROM plugins WHERE org = $1 AND name = $2")
            .bind(org)
            .bind(name)
            .fetch_optional(db.pool())
            .await?;
    if exists.is_none() {
        return Err(DependencyError::NoPlugin(root));
    }
    let key = match &requirement {
        Some(requirement) => format!("{root}\n{requirement}"),
        None => root.clone(),
    };
    let remembered = || {
        db.changes()
            .is_following()
            .then(|| gate.remembered(org, &key))
            .flatten()
    };
    if let Some(answer) = remembered() {
        return Err(DependencyError::Unresolvable(answer));
    }
    // Its place in the org's queue before anything is read: an org past
    // its queue costs the database nothing.
    let entry = gate.enter(org).await?;
    // Another request may have found it while this one waited.
    if let Some(answer) = remembered() {
        return Err(DependencyError::Unresolvable(answer));
    }
    // Taken before the catalog is read: a change during the read makes
    // what is remembered stale at once.
    let stamp = db.changes().stamp(org);
    let catalog = load_catalog(db, org, &root).await?;
    let turn = entry.turn().await?;
    // Seconds of CPU at worst (bounded by the turn): off the async workers.
    // The turn goes with the solve, so a caller that hangs up frees
    // nothing before the solve ends, and the solve is charged to its org
    // however the request ended.
    let solved = {
        let (root, requirement) = (root.clone(), requirement.clone());
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let solved = solve_within(&catalog, &root, requirement.as_ref(), turn.limit);
            if let Err(answer) = &solved
                && answer.conclusive
            {
                turn.remember(key, stamp, answer.clone());
            }
            turn.spent(started.elapsed());
            solved
        })
        .await
        .map_err(|e| DependencyError::Corrupt(format!("the resolver stopped: {e}")))?
    };
    let chosen = solved.map_err(DependencyError::Unresolvable)?;
    Ok(Resolution {
        plugin: root,
        requirement: requirement.map(|r| r.to_string()),
        releases: chosen
            .into_iter()
            .map(|c| ResolvedRelease {
                name: c.name,
                version: c.version.to_string(),
                manifest_digest: c.manifest_digest,
                component_digest: c.component_digest,
                dependencies: c
                    .dependencies
                    .into_iter()
                    .map(|(name, version)| (name, version.to_string()))
                    .collect(),
            })
            .collect(),
    })
}

/// The dependency set of `org/name@version`: [`resolve_dependencies`] for
/// exactly that version, then each chosen dependency as
/// [`resolution::resolve`] reads a release to run (publisher key not
/// revoked, approvals by keys not revoked). Everything here is verified
/// again by the runtime before anything runs.
pub async fn dependency_set(
    db: &Db,
    gate: &SolverGate,
    org: &str,
    name: &str,
    version: &str,
    approvals_required: u32,
) -> Result<DependencySet, DependencyError> {
    let resolution =
        resolve_dependencies(db, gate, org, name, Some(&format!("={version}"))).await?;
    // Refused before each dependency's release is read.
    if resolution.releases.len() > warden_host::MAX_CALL_TREE {
        return Err(DependencyError::TreeTooLarge(resolution.releases.len()));
    }
    let mut resolved = BTreeMap::new();
    for release in resolution.releases.iter().skip(1) {
        let Some((dependency_org, dependency_name)) = release.name.split_once('/') else {
            return Err(DependencyError::Corrupt(format!(
                "dependency {:?} is not org/name",
                release.name
            )));
        };
        let exactly = VersionReq::parse(&format!("={}", release.version))
            .map_err(|e| DependencyError::Corrupt(format!("{}: {e}", release.name)))?;
        let chosen = resolution::resolve(
            db,
            dependency_org,
            dependency_name,
            Some(&exactly),
            approvals_required,
        )
        .await?;
        resolved.insert(release.name.clone(), chosen);
    }
    Ok(DependencySet { resolved })
}

/// Which of `imports` (a component's imports that no host provides) no
/// declared dependency can provide: an import is provided when a pending or
/// approved release of a dependency of `org`, matching its requirement,
/// exports that interface (or a semver-compatible newer version of it).
/// Checked at publish, among the [`PROVIDER_RELEASES_READ`] newest matching
/// releases of each dependency; linking checks the functions and types of the
/// releases that actually run.
pub async fn unprovided_imports(
    conn: &mut sqlx::AnyConnection,
    org: &str,
    dependencies: &BTreeMap<String, String>,
    imports: &[String],
) -> Result<Vec<String>, DependencyError> {
    /// Only the interface of each stored function description is read.
    #[derive(Deserialize)]
    struct Exported {
        interface: Option<String>,
    }
    let unversioned = |name: &str| name.split('@').next().unwrap_or(name).to_owned();
    let mut unprovided: Vec<String> = imports.to_vec();
    for (dependency, requirement) in dependencies {
        if unprovided.is_empty() {
            break;
        }
        let Some((dependency_org, dependency_name)) = dependency.split_once('/') else {
            continue;
        };
        if dependency_org != org {
            continue;
        }
        let requirement = VersionReq::parse(requirement)
            .map_err(|e| DependencyError::Invalid(format!("{dependency}: {e}")))?;
        // The newest matching versions first, chosen from the versions alone.
        let versions: Vec<(String,)> = sqlx::query_as(
            "SELECT version FROM releases WHERE org = $1 AND name = $2 AND status IN ($3, $4)",
        )
        .bind(dependency_org)
        .bind(dependency_name)
        .bind(Status::Pending.as_str())
        .bind(Status::Approved.as_str())
        .fetch_all(&mut *conn)
        .await?;
        let mut matching: Vec<(Version, String)> = versions
            .into_iter()
            .filter_map(|(text,)| Some((Version::parse(&text).ok()?, text)))
            .filter(|(version, _)| requirement.matches(version))
            .collect();
        matching.sort_by(|a, b| b.0.cmp(&a.0));
        matching.truncate(PROVIDER_RELEASES_READ);
        // Exported interfaces by name without version: an import is only
        // compared with the versions of its own name.
        let mut exported: HashMap<String, HashSet<String>> = HashMap::new();
        for (_, version) in matching {
            let functions: Option<(String,)> = sqlx::query_as(
                "SELECT functions FROM releases WHERE org = $1 AND name = $2 AND version = $3",
            )
            .bind(dependency_org)
            .bind(dependency_name)
            .bind(&version)
            .fetch_optional(&mut *conn)
            .await?;
            let Some((functions,)) = functions else {
                continue;
            };
            let functions: Vec<Exported> = serde_json::from_str(&functions)
                .map_err(|e| DependencyError::Corrupt(format!("{dependency}@{version}: {e}")))?;
            for interface in functions.into_iter().filter_map(|f| f.interface) {
                exported
                    .entry(unversioned(&interface))
                    .or_default()
                    .insert(interface);
            }
        }
        unprovided.retain(|import| {
            !exported.get(&unversioned(import)).is_some_and(|names| {
                names
                    .iter()
                    .any(|name| warden_host::interface_serves(name, import))
            })
        });
    }
    Ok(unprovided)
}

/// Releases of one dependency that publishing reads to find the interfaces
/// it exports: the newest pending or approved ones matching the requirement.
pub const PROVIDER_RELEASES_READ: usize = 32;

/// The most plugins one resolution reads from the database.
pub const MAX_PLUGINS_READ: usize = 10_000;

/// What the solver may choose from for `root`: the approved releases of
/// every plugin reachable from it through declared dependencies, read one
/// plugin at a time. A plugin of another organization is unusable.
async fn load_catalog(db: &Db, org: &str, root: &str) -> Result<Catalog, DependencyError> {
    let mut catalog = Catalog::new();
    let mut queue = VecDeque::from([root.to_owned()]);
    while let Some(plugin) = queue.pop_front() {
        if catalog.contains_key(&plugin) {
            continue;
        }
        if catalog.len() >= MAX_PLUGINS_READ {
            catalog.insert(
                plugin,
                Offer::Unusable(format!(
                    "is past the {MAX_PLUGINS_READ} plugins one resolution reads"
                )),
            );
            continue;
        }
        let Some((plugin_org, plugin_name)) = plugin.split_once('/') else {
            catalog.insert(plugin, Offer::Unusable("is not an org/name".into()));
            continue;
        };
        if plugin_org != org {
            catalog.insert(
                plugin.clone(),
                Offer::Unusable(format!(
                    "is in another organization, whose plugins {org} may not use"
                )),
            );
            continue;
        }
        // With whether the database still trusts each release's publisher
        // key: one it no longer trusts is no candidate (it removes trust
        // here as when a release is chosen to run, `resolution::resolve`),
        // so an older release signed by a valid key is chosen instead.
        let approved = resolution::approved_releases(db, plugin_org, plugin_name).await?;
        let mut releases = Vec::with_capacity(approved.len());
        let mut distrusted = Vec::new();
        for release in approved {
            let resolution::ApprovedRelease {
                version,
                envelope,
                manifest_digest,
                component_digest,
                publisher_key,
                publisher_trusted,
            } = release;
            if !publisher_trusted {
                distrusted.push(format!("{version} (publisher key {publisher_key})"));
                continue;
            }
            let dependencies = declared_dependencies(&envelope)
                .map_err(|e| DependencyError::Corrupt(format!("{plugin}@{version}: {e}")))?;
            for dependency in dependencies.keys() {
                if !catalog.contains_key(dependency) {
                    queue.push_back(dependency.clone());
                }
            }
            releases.push(Candidate {
                version,
                dependencies,
                manifest_digest: manifest_digest.to_string(),
                component_digest,
            });
        }
        if releases.is_empty() && !distrusted.is_empty() {
            distrusted.sort();
            catalog.insert(
                plugin,
                Offer::Unusable(format!(
                    "has approved releases, but their publisher keys are revoked or unknown: {}",
                    distrusted.join(", ")
                )),
            );
            continue;
        }
        catalog.insert(plugin, Offer::Releases(releases));
    }
    Ok(catalog)
}

/// A cycle that publishing `plugin` declaring `dependencies` would close
/// (read through `conn`: publishing checks again inside its transaction,
/// after the org's change lock, so two publishes cannot close a cycle
/// from both ends at once),
/// as `[plugin, ..., plugin]`: followed through the declared dependencies of
/// every pending or approved release of the org (any version: a cycle
/// between names is refused before any version could close it).
pub async fn find_cycle(
    conn: &mut sqlx::AnyConnection,
    org: &str,
    plugin: &str,
    dependencies: impl IntoIterator<Item = &String>,
) -> Result<Option<Vec<String>>, DependencyError> {
    // Breadth first from the new release's dependencies, remembering who led
    // to each plugin, until the path comes back to `plugin`.
    let mut came_from: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = VecDeque::new();
    for dependency in dependencies {
        if !came_from.contains_key(dependency) {
            came_from.insert(dependency.clone(), plugin.to_owned());
            queue.push_back(dependency.clone());
        }
    }
    while let Some(current) = queue.pop_front() {
        if current == plugin {
            let mut path = Vec::new();
            let mut at = came_from[plugin].clone();
            while at != plugin {
                path.push(at.clone());
                at = came_from[&at].clone();
            }
            path.reverse();
            let mut cycle = vec![plugin.to_owned()];
            cycle.extend(path);
            cycle.push(plugin.to_owned());
            return Ok(Some(cycle));
        }
        let Some((current_org, current_name)) = current.split_once('/') else {
            continue;
        };
        if current_org != org {
            continue;
        }
        if came_from.len() > MAX_PLUGINS_READ {
            return Err(DependencyError::Invalid(format!(
                "the dependencies reach more than {MAX_PLUGINS_READ} plugins"
            )));
        }
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT envelope FROM releases WHERE org = $1 AND name = $2 AND status IN ($3, $4)",
        )
        .bind(current_org)
        .bind(current_name)
        .bind(Status::Pending.as_str())
        .bind(Status::Approved.as_str())
        .fetch_all(&mut *conn)
        .await?;
        for (envelope,) in rows {
            let declared = declared_dependencies(&envelope)
                .map_err(|e| DependencyError::Corrupt(format!("{current}: {e}")))?;
            for next in declared.into_keys() {
                if next == plugin {
                    came_from.insert(next.clone(), current.clone());
                    queue.push_front(next);
                    break;
                }
                if !came_from.contains_key(&next) {
                    came_from.insert(next.clone(), current.clone());
                    queue.push_back(next);
                }
            }
        }
    }
    Ok(None)
}

/// The dependencies a stored release statement declares (checked when it
/// was published; the runtime verifies the signature before anything runs).
fn declared_dependencies(envelope: &str) -> Result<BTreeMap<String, VersionReq>, String> {
    let envelope: Envelope = serde_json::from_str(envelope).map_err(|e| e.to_string())?;
    let payload = envelope.unverified_payload().map_err(|e| e.to_string())?;
    let statement: ReleaseStatement =
        serde_json::from_slice(&payload).map_err(|e| e.to_string())?;
    statement
        .dependencies
        .into_iter()
        .map(|(name, requirement)| {
            let parsed = VersionReq::parse(&requirement).map_err(|e| e.to_string())?;
            Ok((name, parsed))
        })
        .collect()
}
