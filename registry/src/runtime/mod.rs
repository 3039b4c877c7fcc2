//! Running approved releases: read the artifact from the
//! [`ArtifactSource`] (the embedded store in process, or an external registry
//! through `oci-client`), verify it against the pinned admin keys with
//! [`warden_host::verify_release`], compile it (cached on disk), and keep it
//! loaded; each invocation then gets a fresh instance with exactly the granted
//! capabilities, the admin-set configuration, its kv namespace and the approved
//! limits.

mod kv;
mod per_org;

use per_org::PerOrg;

pub use kv::{ORG_KV_BYTES, ORG_KV_KEYS, SqlKvStore};

use crate::artifact::{ArtifactSource, FetchError};
use crate::oci::RepositoryName;
use crate::records::{DependencySet, LinkedRelease, ReleaseRecord};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use warden_host::{
    Backends, CompiledComponent, Engine, Plugin, PluginSettings, PoolUse, TrustPolicy,
    VerifiedRelease, verify_release,
};

/// Why a release could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The registry could not be reached or did not have the artifact.
    #[error("pulling {reference}: {detail}")]
    Registry {
        /// What was pulled.
        reference: String,
        /// Why it failed.
        detail: String,
    },
    /// The artifact failed verification.
    #[error(transparent)]
    Untrusted(#[from] warden_host::Untrusted),
    /// The artifact is not a Warden release.
    #[error("the artifact is not a Wasm component release: {0}")]
    Artifact(String),
    /// The same release failed verification moments ago and is not checked
    /// again yet.
    #[error("{0} (refused again without re-checking for up to {REFUSAL_MEMORY:?})")]
    Refused(String),
    /// The component does not compile or link with its grants.
    #[error(transparent)]
    Host(#[from] warden_host::Error),
}

/// A verified, compiled release.
pub struct LoadedRelease {
    /// What verification established.
    pub verified: VerifiedRelease,
    /// The compiled component.
    pub compiled: CompiledComponent,
    /// The plugin bound to the configurations and dependencies it was last
    /// built with, newest first (at most [`BOUND_PER_RELEASE`]: a release
    /// can be linked to different versions of a dependency in different
    /// call trees, and alternating between them must not rebuild it).
    plugin: Mutex<Vec<Bound>>,
    /// Set when the on-disk compiled cache held an entry for this component
    /// that failed its check (replaced or corrupted) and was discarded.
    cache_rejected: std::sync::atomic::AtomicBool,
}

impl LoadedRelease {
    /// Whether a compiled-cache entry was rejected while loading; reported once.
    pub fn take_cache_rejection(&self) -> bool {
        self.cache_rejected
            .swap(false, std::sync::atomic::Ordering::SeqCst)
    }
}

/// Bindings of one release kept at most.
const BOUND_PER_RELEASE: usize = 4;

/// A plugin with what it was bound to.
struct Bound {
    config: BTreeMap<String, String>,
    dependencies: Vec<Plugin>,
    plugin: Plugin,
}

/// Why a release's dependencies could not be linked.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// A dependency could not be loaded.
    #[error("its dependency {dependency}: {error}")]
    Load {
        /// `org/name@version`.
        dependency: String,
        /// Why.
        error: LoadError,
    },
    /// What the signed statements declare does not match the releases the
    /// database resolved: refused, since the database may not add trust.
    #[error("{0}")]
    Mismatch(String),
    /// The host refused to link them.
    #[error(transparent)]
    Host(#[from] warden_host::Error),
}

/// A release's plugin linked to its dependencies.
pub struct Linked {
    /// The plugin, ready to invoke.
    pub plugin: Plugin,
    /// The dependencies it was linked with, as verified, each after its
    /// own dependencies.
    pub dependencies: Vec<LinkedRelease>,
}

/// The threads plugins run on: a runtime of their own, so that guests burning
/// CPU up to their limits never starve the control plane's own I/O (database,
/// HTTP) of its worker threads; the OS shares the cores between both.
struct Executor(Option<tokio::runtime::Runtime>);

impl Drop for Executor {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            // Dropping a runtime may block; never do that inside async code.
            runtime.shutdown_background();
        }
    }
}

/// The runtime of a control plane.
pub struct Runtime {
    executor: Executor,
    engine: Arc<Engine>,
    policy: TrustPolicy,
    source: ArtifactSource,
    loaded: Mutex<PerOrg<Arc<LoadedRelease>>>,
    kv: Arc<SqlKvStore>,
    secrets: Arc<dyn warden_host::SecretStore>,
    /// One load at a time per release, so that 200 first calls do not pull
    /// 200 times, and one release's slow load delays no other.
    loading: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Releases that failed verification, by what was verified, and when:
    /// refused again without pulling for [`REFUSAL_MEMORY`].
    refused: Mutex<PerOrg<(std::time::Instant, String)>>,
    /// What each organization's running invocations may take from the
    /// engine's pool at once: `org_share` slots' worth of instances,
    /// memories and tables, so that one tenant's load never takes what
    /// another's calls need.
    org_share: PoolUse,
    org_slots: Mutex<HashMap<String, Arc<OrgSlots>>>,
}

/// One organization's share of the pool, in each kind the pool runs out of.
struct OrgSlots {
    instances: Arc<tokio::sync::Semaphore>,
    memories: Arc<tokio::sync::Semaphore>,
    tables: Arc<tokio::sync::Semaphore>,
}

/// What an admitted invocation holds of its organization's share: its
/// instances, memories and tables (none of a kind it takes none of).
struct OrgPermit {
    _held: [Option<tokio::sync::OwnedSemaphorePermit>; 3],
}

impl OrgSlots {
    fn new(share: PoolUse) -> OrgSlots {
        let semaphore = |n: u32| Arc::new(tokio::sync::Semaphore::new(n as usize));
        OrgSlots {
            instances: semaphore(share.instances),
            memories: semaphore(share.memories),
            tables: semaphore(share.tables),
        }
    }

    /// Takes `used` of the share at once, or nothing.
    fn try_take(&self, used: PoolUse) -> Option<OrgPermit> {
        let take = |semaphore: &Arc<tokio::sync::Semaphore>, n: u32| match n {
            0 => Some(None),
            n => semaphore.clone().try_acquire_many_owned(n).ok().map(Some),
        };
        Some(OrgPermit {
            _held: [
                take(&self.instances, used.instances)?,
                take(&self.memories, used.memories)?,
                take(&self.tables, used.tables)?,
            ],
        })
    }
}

/// Binds the plugins of one call tree, dependencies first.
struct Tree<'a> {
    runtime: &'a Runtime,
    available: &'a BTreeMap<&'a str, (Arc<LoadedRelease>, &'a BTreeMap<String, String>)>,
    built: BTreeMap<String, Plugin>,
    /// Dependencies bound so far, each after its own dependencies.
    order: Vec<String>,
    /// The dependencies being bound, outermost first.
    path: Vec<String>,
}

impl Tree<'_> {
    fn bind(
        &mut self,
        loaded: &LoadedRelease,
        config: &BTreeMap<String, String>,
    ) -> Result<Plugin, LinkError> {
        let statement = &loaded.verified.statement;
        let mut linked = Vec::with_capacity(statement.dependencies.len());
        for (name, requirement) in &statement.dependencies {
            let Some((dependency, dependency_config)) = self.available.get(name.as_str()) else {
                return Err(LinkError::Mismatch(format!(
                    "{} declares the dependency {name} {requirement}, which was not resolved",
                    statement.reference()
                )));
            };
            let chosen = &dependency.verified.statement;
            let satisfied = semver::VersionReq::parse(requirement)
                .ok()
                .zip(semver::Version::parse(&chosen.version).ok())
                .is_some_and(|(requirement, version)| requirement.matches(&version));
            if !satisfied {
                return Err(LinkError::Mismatch(format!(
                    "{} requires {name} {requirement}, which {} does not satisfy",
                    statement.reference(),
                    chosen.reference()
                )));
            }
            if self.path.contains(name) {
                return Err(LinkError::Mismatch(format!(
                    "the dependencies of {} lead back to {name}",
                    statement.reference()
                )));
            }
            let plugin = match self.built.get(name) {
                Some(plugin) => plugin.clone(),
                None => {
                    self.path.push(name.clone());
                    let plugin = self
                        .bind(dependency, dependency_config)
                        .map_err(|e| match e {
                            LinkError::Host(error) => {
                                LinkError::Host(error.in_dependency(&chosen.reference()))
                            }
                            other => other,
                        })?;
                    self.path.pop();
                    self.built.insert(name.clone(), plugin.clone());
                    self.order.push(name.clone());
                    plugin
                }
            };
            linked.push(plugin);
        }
        Ok(self.runtime.plugin(loaded, config, &linked)?)
    }
}

/// How long a failed verification is remembered: calls within it are refused
/// without pulling and verifying again (a repaired artifact runs after it).
pub const REFUSAL_MEMORY: std::time::Duration = std::time::Duration::from_secs(30);

/// Loaded releases (and refusals) one organization keeps at most; beyond
/// this its own start over (see [`per_org`]).
const MAX_LOADED_PER_ORG: usize = 64;

impl Runtime {
    /// A runtime verifying against `policy`, reading artifacts from `source`.
    pub fn new(
        engine: Arc<Engine>,
        policy: TrustPolicy,
        kv: SqlKvStore,
        secrets: Arc<dyn warden_host::SecretStore>,
        source: ArtifactSource,
        org_share: u32,
    ) -> std::io::Result<Runtime> {
        let executor = tokio::runtime::Builder::new_multi_thread()
            .thread_name("warden-plugin")
            .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
            .enable_all()
            .build()?;
        Ok(Runtime {
            executor: Executor(Some(executor)),
            engine,
            policy,
            source,
            loaded: Mutex::new(PerOrg::new(MAX_LOADED_PER_ORG)),
            kv: Arc::new(kv),
            secrets,
            loading: Mutex::new(HashMap::new()),
            refused: Mutex::new(PerOrg::new(MAX_LOADED_PER_ORG)),
            org_share: PoolUse::of_slots(org_share.max(1)),
            org_slots: Mutex::new(HashMap::new()),
        })
    }

    /// What admits one more running invocation of `org`, whose call tree
    /// takes `used` from the pool, within the org's share, or says with the
    /// `capacity` error that the org is at its share.
    fn org_admission(
        &self,
        org: &str,
        used: PoolUse,
    ) -> impl FnOnce() -> Result<OrgPermit, warden_host::Error> + Send + 'static {
        let slots = self
            .org_slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(org.to_owned())
            .or_insert_with(|| Arc::new(OrgSlots::new(self.org_share)))
            .clone();
        let (org, share) = (org.to_owned(), self.org_share);
        move || {
            if !used.fits(&share) {
                return Err(warden_host::Error::Capacity(format!(
                    "an invocation of this plugin takes {used} (itself and its dependencies); organization {org:?} may run {share} at once"
                )));
            }
            slots.try_take(used).ok_or_else(|| {
                warden_host::Error::Capacity(format!(
                    "organization {org:?} has its share of the instance pool ({share}) in use; try again shortly"
                ))
            })
        }
    }

    /// Invokes `function` of `plugin` of `org` on the plugin threads,
    /// within the org's share of the instance pool.
    pub async fn invoke(
        &self,
        org: &str,
        plugin: Plugin,
        function: String,
        args: serde_json::Value,
    ) -> Result<warden_host::Invocation, Box<warden_host::Failure>> {
        let Some(executor) = &self.executor.0 else {
            return Err(warden_host::Error::Host("the plugin runtime is shut down".into()).into());
        };
        let admit = self.org_admission(org, plugin.pool_use());
        executor
            .spawn(async move { plugin.invoke_admitted(&function, &args, admit).await })
            .await
            .unwrap_or_else(|e| {
                Err(warden_host::Error::Host(format!("invocation task: {e}")).into())
            })
    }

    fn cached(&self, record: &ReleaseRecord) -> Option<Arc<LoadedRelease>> {
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(record.org(), record.cache_key())
    }

    /// The loaded release for `record`, pulling, verifying and compiling it on
    /// first use.
    pub async fn load(&self, record: &ReleaseRecord) -> Result<Arc<LoadedRelease>, LoadError> {
        if let Some(loaded) = self.cached(record) {
            return Ok(loaded);
        }
        let key = record.cache_key().to_owned();
        if let Some(reason) = self.refused_recently(record) {
            return Err(LoadError::Refused(reason));
        }
        let lock = self
            .loading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        if let Some(loaded) = self.cached(record) {
            return Ok(loaded);
        }
        if let Some(reason) = self.refused_recently(record) {
            return Err(LoadError::Refused(reason));
        }
        let loaded = self.load_now(record, &key).await;
        {
            // Only this load's lock: a newer one others wait on stays.
            let mut loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
            if loading.get(&key).is_some_and(|l| Arc::ptr_eq(l, &lock)) {
                loading.remove(&key);
            }
        }
        if let Err(error @ (LoadError::Untrusted(_) | LoadError::Artifact(_))) = &loaded {
            let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
            refused.insert(
                record.org(),
                &key,
                (std::time::Instant::now(), error.to_string()),
            );
        }
        loaded
    }

    /// Why the release under `key` was refused, if it was within
    /// [`REFUSAL_MEMORY`].
    fn refused_recently(&self, record: &ReleaseRecord) -> Option<String> {
        let refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        refused
            .get(record.org(), record.cache_key())
            .filter(|(at, _)| at.elapsed() < REFUSAL_MEMORY)
            .map(|(_, reason)| reason.clone())
    }

    async fn load_now(
        &self,
        record: &ReleaseRecord,
        key: &str,
    ) -> Result<Arc<LoadedRelease>, LoadError> {
        let bytes = self.pull(record).await?;
        let verified = verify_release(
            &record.envelope,
            &record.approvals,
            &bytes,
            &record.publisher,
            &self.policy,
        )?;
        if verified.statement.reference() != format!("{}@{}", record.repository, record.version) {
            return Err(LoadError::Artifact(format!(
                "the signed statement is for {}, not {}@{}",
                verified.statement.reference(),
                record.repository,
                record.version
            )));
        }
        let engine = self.engine.clone();
        let compiled = tokio::task::spawn_blocking(move || engine.compile(&bytes))
            .await
            .map_err(|e| LoadError::Artifact(format!("compiling: {e}")))??;
        let cache_rejected = compiled.cache_outcome() == warden_host::CacheOutcome::Rejected;
        let loaded = Arc::new(LoadedRelease {
            verified,
            compiled,
            plugin: Mutex::new(Vec::new()),
            cache_rejected: cache_rejected.into(),
        });
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(record.org(), key, loaded.clone());
        tracing::info!(release = %loaded.verified.statement.reference(), "loaded");
        Ok(loaded)
    }

    /// The plugin of `loaded` with `config`, linked to `dependencies`
    /// (rebuilt when either changed, so a change applies to the next
    /// invocation).
    pub fn plugin(
        &self,
        loaded: &LoadedRelease,
        config: &BTreeMap<String, String>,
        dependencies: &[Plugin],
    ) -> Result<Plugin, warden_host::Error> {
        let mut bindings = loaded.plugin.lock().unwrap_or_else(|e| e.into_inner());
        let found = bindings.iter().position(|bound| {
            bound.config == *config
                && bound.dependencies.len() == dependencies.len()
                && bound
                    .dependencies
                    .iter()
                    .zip(dependencies)
                    .all(|(a, b)| a.is_same(b))
        });
        if let Some(index) = found {
            // Most recently used first.
            let bound = bindings.remove(index);
            let plugin = bound.plugin.clone();
            bindings.insert(0, bound);
            return Ok(plugin);
        }
        let statement = &loaded.verified.statement;
        let grants = &loaded.verified.grants;
        let namespace = || statement.name.clone();
        let settings = PluginSettings {
            name: statement.reference(),
            grants: grants.clone(),
            limits: loaded.verified.limits.clone(),
            backends: Backends {
                config: Arc::new(config.clone()),
                kv: grants.kv.then(|| {
                    (
                        self.kv.clone() as Arc<dyn warden_host::KvStore>,
                        namespace(),
                    )
                }),
                secrets: (!grants.secrets.is_empty()).then(|| (self.secrets.clone(), namespace())),
            },
        };
        let plugin = Plugin::linked(&self.engine, &loaded.compiled, settings, dependencies)?;
        bindings.truncate(BOUND_PER_RELEASE - 1);
        bindings.insert(
            0,
            Bound {
                config: config.clone(),
                dependencies: dependencies.to_vec(),
                plugin: plugin.clone(),
            },
        );
        Ok(plugin)
    }

    /// The plugin of `loaded` with `config`, linked to the dependencies of
    /// `set`: each loaded and verified like any release, bound to its own
    /// configuration, and checked against the requirement of the verified
    /// statement that declares it (what the database resolved is trusted
    /// for nothing).
    pub async fn linked(
        &self,
        loaded: &LoadedRelease,
        config: &BTreeMap<String, String>,
        set: &DependencySet,
    ) -> Result<Linked, LinkError> {
        // Refused before anything is loaded: a tree no invocation could run.
        let plugins = set.resolved.len() + 1;
        if plugins > warden_host::MAX_CALL_TREE {
            return Err(LinkError::Host(warden_host::Error::Config(format!(
                "its dependencies resolve to a call tree of {plugins} plugins; at most {} are linked into one",
                warden_host::MAX_CALL_TREE
            ))));
        }
        if plugins > self.org_share.instances as usize {
            return Err(LinkError::Host(warden_host::Error::Config(format!(
                "an invocation of it instantiates {plugins} plugins (itself and its dependencies); an organization may run {} at once",
                self.org_share.instances
            ))));
        }
        let mut dependencies = BTreeMap::new();
        for (name, resolved) in &set.resolved {
            let release = self
                .load(&resolved.record)
                .await
                .map_err(|error| LinkError::Load {
                    dependency: format!("{name}@{}", resolved.record.version),
                    error,
                })?;
            dependencies.insert(name.as_str(), (release, &resolved.config));
        }
        let mut tree = Tree {
            runtime: self,
            available: &dependencies,
            built: BTreeMap::new(),
            order: Vec::new(),
            path: Vec::new(),
        };
        let plugin = tree.bind(loaded, config)?;
        // Counted once bound: what each plugin's component defines.
        let used = plugin.pool_use();
        if !used.fits(&self.org_share) {
            return Err(LinkError::Host(warden_host::Error::Config(format!(
                "an invocation of it takes {used} from the pool (itself and its dependencies); an organization may run {} at once",
                self.org_share
            ))));
        }
        let order = tree.order;
        Ok(Linked {
            plugin,
            dependencies: order
                .into_iter()
                .map(|name| {
                    let statement = &dependencies[name.as_str()].0.verified.statement;
                    LinkedRelease {
                        version: statement.version.clone(),
                        digest: statement.component.digest.clone(),
                        name,
                    }
                })
                .collect(),
        })
    }

    async fn pull(&self, record: &ReleaseRecord) -> Result<Vec<u8>, LoadError> {
        let repository: RepositoryName = record
            .repository
            .parse()
            .map_err(|e: String| LoadError::Artifact(e))?;
        let digest = &record.manifest_digest;
        match self.source.fetch(&repository, digest).await {
            Ok(artifact) => Ok(artifact.component),
            // Tampering or a foreign artifact, not an outage.
            Err(error @ FetchError::Invalid { .. }) => Err(LoadError::Artifact(error.to_string())),
            Err(error) => Err(LoadError::Registry {
                reference: format!("{repository}@{digest}"),
                detail: error.to_string(),
            }),
        }
    }
}
