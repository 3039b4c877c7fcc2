//! Running approved releases: resolve a version among the approved ones, pull
//! the artifact with `oci-client` (from the embedded registry or an external
//! one), verify it against the pinned admin keys with
//! [`warden_host::verify_release`], compile it (cached on disk), and keep it
//! loaded; each invocation then gets a fresh instance with exactly the granted
//! capabilities, the admin-set configuration, its kv namespace and the approved
//! limits.

mod kv;

pub use kv::SqlKvStore;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use warden_host::{
    CompiledComponent, Engine, Envelope, Plugin, PluginSettings, PublicKey, TrustPolicy,
    VerifiedRelease, verify_release,
};

/// Where the host pulls artifacts from.
#[derive(Clone, Debug)]
pub struct RegistrySource {
    /// `host:port` of the registry.
    pub registry: String,
    /// Plain HTTP (loopback, tests) instead of HTTPS.
    pub insecure: bool,
    /// Credentials: `None` for anonymous.
    pub credentials: Option<(String, String)>,
}

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
    /// The component does not compile or link with its grants.
    #[error(transparent)]
    Host(#[from] warden_host::Error),
}

/// What the database says about the release to run; everything here is
/// re-checked by [`verify_release`] before it counts.
#[derive(Clone, Debug)]
pub struct ReleaseRecord {
    /// `org/name`.
    pub repository: String,
    /// Version.
    pub version: String,
    /// `sha256:` of the OCI manifest.
    pub manifest_digest: String,
    /// The release statement's envelope.
    pub envelope: Envelope,
    /// The approvals' envelopes.
    pub approvals: Vec<Envelope>,
    /// The publisher's key, as registered.
    pub publisher: PublicKey,
}

impl ReleaseRecord {
    /// A key that changes whenever anything verified changes (an edited row
    /// is a different key, so it is verified again, not served from cache).
    fn cache_key(&self) -> String {
        let mut hasher = Sha256::new();
        for part in [
            &self.repository,
            &self.version,
            &self.manifest_digest,
            &self.publisher.to_string(),
        ] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        for envelope in std::iter::once(&self.envelope).chain(&self.approvals) {
            hasher.update(serde_json::to_vec(envelope).unwrap_or_default());
            hasher.update([0]);
        }
        hex::encode(hasher.finalize())
    }
}

/// A verified, compiled release.
pub struct LoadedRelease {
    /// What verification established.
    pub verified: VerifiedRelease,
    /// The compiled component.
    pub compiled: CompiledComponent,
    /// The plugin bound to the configuration it was last built with.
    plugin: Mutex<Option<(BTreeMap<String, String>, Plugin)>>,
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
    source: Mutex<Option<RegistrySource>>,
    loaded: Mutex<HashMap<String, Arc<LoadedRelease>>>,
    kv: Arc<SqlKvStore>,
    /// Serializes loads so that 200 first calls do not pull 200 times.
    loading: tokio::sync::Mutex<()>,
}

/// Loaded releases kept at most; beyond this the cache starts over.
const MAX_LOADED: usize = 256;

impl Runtime {
    /// A runtime verifying against `policy`, pulling from `source` (set later
    /// with [`Runtime::set_source`] for the embedded registry, whose address is
    /// known only once the server listens).
    pub fn new(
        engine: Arc<Engine>,
        policy: TrustPolicy,
        kv: SqlKvStore,
        source: Option<RegistrySource>,
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
            source: Mutex::new(source),
            loaded: Mutex::new(HashMap::new()),
            kv: Arc::new(kv),
            loading: tokio::sync::Mutex::new(()),
        })
    }

    /// Invokes `function` of `plugin` on the plugin threads.
    pub async fn invoke(
        &self,
        plugin: Plugin,
        function: String,
        args: serde_json::Value,
    ) -> Result<warden_host::Invocation, Box<warden_host::Failure>> {
        let Some(executor) = &self.executor.0 else {
            return Err(warden_host::Error::Host("the plugin runtime is shut down".into()).into());
        };
        executor
            .spawn(async move { plugin.invoke(&function, &args).await })
            .await
            .unwrap_or_else(|e| {
                Err(warden_host::Error::Host(format!("invocation task: {e}")).into())
            })
    }

    /// Where artifacts are pulled from.
    pub fn set_source(&self, source: RegistrySource) {
        *self.source.lock().unwrap_or_else(|e| e.into_inner()) = Some(source);
    }

    /// Whether a pull source is set.
    pub fn source(&self) -> Option<RegistrySource> {
        self.source
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The pinned policy.
    pub fn policy(&self) -> &TrustPolicy {
        &self.policy
    }

    fn cached(&self, key: &str) -> Option<Arc<LoadedRelease>> {
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// The loaded release for `record`, pulling, verifying and compiling it on
    /// first use.
    pub async fn load(&self, record: &ReleaseRecord) -> Result<Arc<LoadedRelease>, LoadError> {
        let key = record.cache_key();
        if let Some(loaded) = self.cached(&key) {
            return Ok(loaded);
        }
        let _one_at_a_time = self.loading.lock().await;
        if let Some(loaded) = self.cached(&key) {
            return Ok(loaded);
        }
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
            plugin: Mutex::new(None),
            cache_rejected: cache_rejected.into(),
        });
        let mut cache = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_LOADED {
            cache.clear();
        }
        cache.insert(key, loaded.clone());
        tracing::info!(release = %loaded.verified.statement.reference(), "loaded");
        Ok(loaded)
    }

    /// The plugin of `loaded` with `config` (rebuilt when the configuration
    /// changed, so a change applies to the next invocation).
    pub fn plugin(
        &self,
        loaded: &LoadedRelease,
        config: BTreeMap<String, String>,
    ) -> Result<Plugin, warden_host::Error> {
        let mut slot = loaded.plugin.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((current, plugin)) = slot.as_ref()
            && *current == config
        {
            return Ok(plugin.clone());
        }
        let statement = &loaded.verified.statement;
        let settings = PluginSettings {
            name: statement.reference(),
            grants: loaded.verified.grants.clone(),
            limits: loaded.verified.limits.clone(),
            config: config.clone(),
            kv: loaded.verified.grants.kv.then(|| {
                (
                    self.kv.clone() as Arc<dyn warden_host::KvStore>,
                    statement.name.clone(),
                )
            }),
        };
        let plugin = Plugin::new(&self.engine, &loaded.compiled, settings)?;
        *slot = Some((config, plugin.clone()));
        Ok(plugin)
    }

    async fn pull(&self, record: &ReleaseRecord) -> Result<Vec<u8>, LoadError> {
        let source = self.source().ok_or_else(|| LoadError::Registry {
            reference: record.repository.clone(),
            detail: "no registry configured".into(),
        })?;
        let artifact = pull_artifact(&source, &record.repository, &record.manifest_digest).await?;
        Ok(artifact.component)
    }
}

/// A Wasm artifact as pulled: the manifest's bytes and media type, and the
/// component (its one `application/wasm` layer).
pub struct PulledArtifact {
    /// The manifest's bytes.
    pub manifest: Vec<u8>,
    /// The manifest, parsed.
    pub document: crate::oci::ManifestDocument,
    /// The component's bytes.
    pub component: Vec<u8>,
}

/// Pulls the artifact `repository@manifest_digest` from `source` with
/// `oci-client`; the client checks each blob against its digest.
pub async fn pull_artifact(
    source: &RegistrySource,
    repository: &str,
    manifest_digest: &str,
) -> Result<PulledArtifact, LoadError> {
    let reference = Reference::with_digest(
        source.registry.clone(),
        repository.to_owned(),
        manifest_digest.to_owned(),
    );
    let failed = |detail: String| LoadError::Registry {
        reference: reference.whole(),
        detail,
    };
    let client = Client::new(ClientConfig {
        protocol: if source.insecure {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        connect_timeout: Some(std::time::Duration::from_secs(5)),
        read_timeout: Some(std::time::Duration::from_secs(30)),
        ..ClientConfig::default()
    });
    let auth = match &source.credentials {
        Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
        None => RegistryAuth::Anonymous,
    };
    let (manifest, digest) = client
        .pull_manifest_raw(&reference, &auth, &[crate::oci::MANIFEST_V1])
        .await
        .map_err(|e| failed(e.to_string()))?;
    let computed = crate::oci::Digest::of(&manifest).to_string();
    if computed != manifest_digest || digest != manifest_digest {
        return Err(LoadError::Artifact(format!(
            "the registry served a manifest that does not match {manifest_digest} (got {computed})"
        )));
    }
    let document: crate::oci::ManifestDocument = serde_json::from_slice(&manifest)
        .map_err(|e| LoadError::Artifact(format!("the manifest is malformed: {e}")))?;
    let layers: Vec<&crate::oci::Descriptor> = document
        .layers
        .iter()
        .filter(|l| l.media_type == crate::oci::WASM_LAYER)
        .collect();
    let [layer] = layers.as_slice() else {
        return Err(LoadError::Artifact(format!(
            "expected one {} layer, found {}",
            crate::oci::WASM_LAYER,
            layers.len()
        )));
    };
    let descriptor = OciDescriptor {
        media_type: layer.media_type.clone(),
        digest: layer.digest.to_string(),
        size: layer.size as i64,
        urls: None,
        annotations: None,
        artifact_type: None,
    };
    let mut component = Vec::with_capacity(layer.size.min(256 << 20) as usize);
    client
        .pull_blob(&reference, &descriptor, &mut component)
        .await
        .map_err(|e| match e {
            // The registry answered, with other bytes than the digest names:
            // tampering, not an outage.
            oci_client::errors::OciDistributionError::DigestError(digest) => LoadError::Artifact(
                format!("the registry served a component that does not match its digest: {digest}"),
            ),
            other => failed(other.to_string()),
        })?;
    Ok(PulledArtifact {
        manifest: manifest.to_vec(),
        document,
        component,
    })
}
