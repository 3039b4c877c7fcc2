//! Putting the control plane together: the data directory, the database, the
//! OCI store, the first-start bootstrap, one router for `/v1` and `/v2`, and
//! serving it until a shutdown signal.

use crate::api::{self, AppState, Metrics};
use crate::artifact::{ArtifactSource, RegistryEndpoint};
use crate::db::{Db, DbError};
use crate::domain::orgs;
use crate::domain::secrets::SqlSecretStore;
use crate::domain::tokens::Permission;
use crate::oci::{self, Action, OciAccess, OciError, OciState, OciStore, RepositoryName};
use crate::runtime::{Runtime, SqlKvStore};
use async_trait::async_trait;
use axum::Router;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How to run the control plane.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where the SQLite file, the OCI store and the admin token live.
    pub data_dir: PathBuf,
    /// `postgres://...` to use PostgreSQL instead of the embedded SQLite file.
    pub database_url: Option<String>,
    /// Approvals from distinct admin keys a release needs.
    pub approvals_required: u32,
    /// The most a release may request or an admin approve, limit by limit.
    pub limit_maxima: warden_host::Limits,
    /// The largest component a release may carry.
    pub max_component_bytes: u64,
    /// Publishes whose components compile at once.
    pub concurrent_compiles: usize,
    /// Publishes of one organization that may wait for a compile slot (more
    /// are refused with 429 `capacity`).
    pub compile_queue_per_org: usize,
    /// Kv keys all the plugins of one organization may hold together.
    pub org_kv_keys: u64,
    /// Bytes of kv keys and values all the plugins of one organization may
    /// hold together.
    pub org_kv_bytes: u64,
    /// Instance slots of the engine's pool: invocations running at once,
    /// all organizations together.
    pub pool_instances: u32,
    /// Invocations one organization may have running at once (its share of
    /// the pool).
    pub org_share: u32,
    /// The organization created on first start.
    pub bootstrap_org: String,
    /// Largest blob the registry accepts.
    pub max_blob_bytes: u64,
    /// The admin keys the runtime trusts for approvals (pinned here, never
    /// taken from the database).
    pub admin_keys: Vec<warden_host::PublicKey>,
    /// Pull artifacts from this registry instead of the embedded one.
    pub external_registry: Option<RegistryEndpoint>,
    /// Longest time what the invoke path keeps in memory (who a token is,
    /// which release runs) is served without reading the database again.
    /// Changes made through the API take effect at once on this replica and
    /// within 1 s on others, and nothing is served from memory while the
    /// database cannot be read; this bounds the rest (a row edited by hand,
    /// which writes no audit entry).
    pub snapshot_max_age: Duration,
    /// The key that encrypts plugin secrets (default: `secrets.key` in the
    /// data directory, created on first start).
    pub secrets_key_file: Option<PathBuf>,
    /// A previous secrets key: at start, every secret encrypted under it is
    /// re-encrypted under the current key (see [`ServerConfig::secrets_key_file`]).
    pub previous_secrets_key_file: Option<PathBuf>,
    /// Where webhooks may go beyond public `https` addresses
    /// (`--webhook-allow-cidr`, `--webhook-allow-http`).
    pub webhook_policy: crate::domain::webhooks::WebhookPolicy,
    /// The time webhook deliveries go by (the system's; tests move their own).
    pub webhook_clock: crate::events::delivery::Clock,
}

impl ServerConfig {
    /// The defaults, in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            data_dir: data_dir.into(),
            database_url: None,
            approvals_required: 1,
            limit_maxima: warden_host::Limits::default_maxima(),
            max_component_bytes: 64 << 20,
            concurrent_compiles: 2,
            compile_queue_per_org: 4,
            org_kv_keys: crate::runtime::ORG_KV_KEYS,
            org_kv_bytes: crate::runtime::ORG_KV_BYTES,
            pool_instances: 128,
            org_share: 32,
            bootstrap_org: "acme".to_owned(),
            max_blob_bytes: 256 << 20,
            admin_keys: Vec::new(),
            external_registry: None,
            snapshot_max_age: crate::domain::snapshot::DEFAULT_MAX_AGE,
            secrets_key_file: None,
            previous_secrets_key_file: None,
            webhook_policy: Default::default(),
            webhook_clock: Default::default(),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The configuration.
    #[error("{0}")]
    Config(String),
    /// The first-start bootstrap.
    #[error("bootstrap: {0}")]
    Bootstrap(String),
}

/// A control plane ready to serve.
pub struct ControlPlane {
    state: AppState,
    /// The admin token created by this start (first start only).
    pub bootstrap_token: Option<String>,
    /// Where that token was written.
    pub admin_token_path: PathBuf,
}

impl ControlPlane {
    /// Opens (and on first start, bootstraps) the control plane.
    pub async fn open(config: &ServerConfig) -> Result<ControlPlane, StartError> {
        if config.org_share == 0 || config.org_share > config.pool_instances {
            return Err(StartError::Config(format!(
                "an organization's share of the instance pool must be between 1 and the pool's {} slots",
                config.pool_instances
            )));
        }
        if config.approvals_required == 0 {
            return Err(StartError::Config(
                "at least one approval must be required".into(),
            ));
        }
        let data_dir = &config.data_dir;
        let io = |source| StartError::DataDir {
            path: data_dir.clone(),
            source,
        };
        tokio::fs::create_dir_all(data_dir).await.map_err(io)?;
        restrict(data_dir).map_err(io)?;
        let db = match &config.database_url {
            Some(url) => Db::connect(url).await?,
            None => Db::open_sqlite(data_dir).await?,
        };
        let oci = Arc::new(
            OciStore::open(&data_dir.join("oci"), config.max_blob_bytes)
                .await
                .map_err(io)?,
        );
        // With PostgreSQL (where replicas share the database) and the
        // embedded store, every replica must share that store.
        if db.backend() == crate::db::Backend::Postgres && config.external_registry.is_none() {
            let store_id = store_id(&data_dir.join("oci")).map_err(io)?;
            // Under the start-up lock: of replicas starting together, the
            // first records its store and the others are held to it.
            let lock = db
                .startup_lock()
                .await
                .map_err(|e| StartError::Config(format!("waiting for the start-up lock: {e}")))?;
            let checked = check_shared_store(&db, &store_id).await;
            lock.release().await;
            checked.map_err(StartError::Config)?;
        }
        // The runtime's engine (compiled code cached on disk once it runs),
        // and one that only checks published components: uncached (a pending
        // release's code is not kept), each compile on one thread, so that a
        // large component takes one core and not another org's compile.
        let check_engine = Arc::new(
            warden_host::Engine::new(warden_host::EngineConfig {
                pooled_instances: None,
                check_only: true,
                ..warden_host::EngineConfig::default()
            })
            .map_err(|e| StartError::Config(format!("engine: {e}")))?,
        );
        let engine = Arc::new(
            warden_host::Engine::new(warden_host::EngineConfig {
                cache_dir: Some(data_dir.join("compiled")),
                pooled_instances: Some(config.pool_instances),
                ..warden_host::EngineConfig::default()
            })
            .map_err(|e| StartError::Config(format!("engine: {e}")))?,
        );
        let artifacts = match &config.external_registry {
            Some(registry) => ArtifactSource::External(registry.clone()),
            None => ArtifactSource::Embedded(oci.clone()),
        };
        let secrets_key = crate::domain::secrets::open_key(
            &db,
            &config
                .secrets_key_file
                .clone()
                .unwrap_or_else(|| data_dir.join("secrets.key")),
            config.previous_secrets_key_file.as_deref(),
        )
        .await
        .map_err(StartError::Config)?;
        let runtime = Runtime::new(
            engine.clone(),
            warden_host::TrustPolicy {
                admin_keys: config.admin_keys.clone(),
                approvals_required: config.approvals_required as usize,
            },
            SqlKvStore::new(db.pool().clone())
                .with_org_max_keys(config.org_kv_keys)
                .with_org_max_bytes(config.org_kv_bytes),
            Arc::new(SqlSecretStore::new(db.clone(), secrets_key.clone())),
            artifacts.clone(),
            config.org_share,
        )
        .map_err(|e| StartError::Config(format!("plugin threads: {e}")))?;
        let watcher = crate::changes::watch(db.clone());
        // Referrers (embedded store) and version tags (external registry)
        // that a crash, a full disk or an outage left out after their
        // change committed are written in the background (and once at
        // start, below).
        let repair = {
            let (db, artifacts) = (db.clone(), artifacts.clone());
            tokio::spawn(async move {
                let mut every = tokio::time::interval(crate::domain::releases::REPAIR_INTERVAL);
                every.tick().await;
                loop {
                    every.tick().await;
                    repair_after_commits(&db, &artifacts).await;
                }
            })
        };
        let webhook_policy = Arc::new(config.webhook_policy.clone());
        let outbound = crate::events::outbound::Outbound::new(webhook_policy.clone());
        let metrics = Arc::new(Metrics::default());
        let deliverer = Arc::new(crate::events::delivery::Deliverer::new(
            db.clone(),
            secrets_key.clone(),
            outbound.clone(),
            config.webhook_clock.clone(),
            metrics.clone(),
        ));
        let draining = Arc::new(tokio::sync::watch::Sender::new(false));
        let state = AppState::new(api::Shared {
            snapshot: crate::domain::snapshot::Snapshot::new(config.snapshot_max_age),
            changes_watcher: api::AbortOnDrop(watcher),
            repair_after_commits: api::AbortOnDrop(repair),
            db,
            oci,
            engine: check_engine,
            approvals_required: config.approvals_required,
            limit_maxima: config.limit_maxima.clone(),
            max_component_bytes: config.max_component_bytes,
            compiles: crate::domain::releases::CompileGate::new(
                config.concurrent_compiles,
                config.compile_queue_per_org,
            ),
            solver: crate::domain::dependencies::SolverGate::default(),
            metrics,
            runtime: Arc::new(runtime),
            artifacts,
            deliveries: api::AbortOnDrop(deliverer.clone().start(draining.subscribe())),
            deliverer,
            webhook_policy,
            secrets_key,
            event_streams: Arc::default(),
            draining,
        });
        crate::domain::releases::reconcile_pending_tags(&state.db, &state.oci)
            .await
            .map_err(|e| {
                StartError::Config(format!("checking version tags left by a crash: {e}"))
            })?;
        // Referrers and tags left out: written now, and in the background
        // from here on (a failure here is tried again there).
        repair_after_commits(&state.db, &state.artifacts).await;
        let admin_token_path = data_dir.join("admin-token");
        let bootstrap_token = first_start(&state.db, &config.bootstrap_org, &admin_token_path)
            .await
            .map_err(StartError::Bootstrap)?;
        Ok(ControlPlane {
            state,
            bootstrap_token,
            admin_token_path,
        })
    }

    /// The whole HTTP surface: `/v1`, `/v2`, operations.
    pub fn router(&self) -> Router {
        app(self.state.clone())
    }

    /// `/metrics` without a token, to serve on an address of its own.
    pub fn metrics_router(&self) -> Router {
        api::metrics_router(self.state.clone())
    }

    /// The database (for operators' tools, and for tests that play a
    /// hostile database).
    pub fn db(&self) -> &Db {
        &self.state.db
    }
}

/// The router of a control plane with `state`.
fn app(state: AppState) -> Router {
    let registry = oci::router(OciState {
        store: state.oci.clone(),
        access: Arc::new(TokenAccess {
            state: state.clone(),
        }),
    });
    api::router(state.clone())
        .merge(registry)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::database_gate,
        ))
        .layer(axum::middleware::from_fn_with_state(state, api::track))
}

/// How long a client may take, and how many may be served at once. A
/// connection that sends nothing, or sends its headers one byte a minute,
/// is closed; a body whose bytes stop arriving, or that is still arriving
/// at its deadline, gets 408; one client (one token; all anonymous clients
/// together) may be sending at most [`ConnectionLimits::bodies_per_client`]
/// bodies at once, so it never holds every connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Time to send a request's headers, and to start the next request on
    /// an idle keep-alive connection.
    pub header_timeout: Duration,
    /// Longest pause between two parts of a request's body.
    pub body_timeout: Duration,
    /// Time to send a whole request body, however steadily (a large blob
    /// goes in chunks, each a request of its own).
    pub body_deadline: Duration,
    /// Longest wait for the client to take any byte of an answer; then the
    /// connection is closed (a client that never reads its answers).
    pub write_timeout: Duration,
    /// Connections served at once; further ones wait to be accepted.
    pub max_connections: usize,
    /// After SIGTERM (or ctrl-c), how long requests in flight and
    /// background work may take to finish before the server stops anyway.
    pub shutdown_grace: Duration,
}

impl ConnectionLimits {
    /// Request bodies one client may be sending at once: a quarter of
    /// [`ConnectionLimits::max_connections`] (at least 1); more are refused
    /// with 429 `too_many_bodies` before they are read.
    pub fn bodies_per_client(&self) -> usize {
        (self.max_connections / 4).max(1)
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            body_deadline: Duration::from_secs(120),
            write_timeout: Duration::from_secs(30),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on `listener` with the default [`ConnectionLimits`] until
/// ctrl-c or SIGTERM, then lets requests in flight finish.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    serve_with(listener, router, ConnectionLimits::default()).await
}

/// Serves `router` on `listener` within `limits` until ctrl-c or SIGTERM,
/// then lets requests in flight finish (for at most
/// [`ConnectionLimits::shutdown_grace`]).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    serve_until(listener, router, limits, shutdown_signal(), || {}).await
}

impl ControlPlane {
    /// Serves the control plane on `listener` within `limits` until
    /// ctrl-c or SIGTERM, then drains: `/readyz` answers 503 and event
    /// streams end at once, the listener closes (a new connection is
    /// refused), requests in flight and webhook deliveries under way
    /// finish within [`ConnectionLimits::shutdown_grace`], and it returns.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        limits: ConnectionLimits,
    ) -> std::io::Result<()> {
        self.serve_until(listener, limits, shutdown_signal()).await
    }

    /// Begins to stop: `/readyz` answers 503 `shutting_down`, event streams
    /// end, the webhook worker leases nothing more.
    pub fn begin_draining(&self) {
        self.state.draining.send_replace(true);
    }

    /// [`ControlPlane::serve`] until `stop` completes instead of a signal.
    pub async fn serve_until(
        &self,
        listener: tokio::net::TcpListener,
        limits: ConnectionLimits,
        stop: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let grace = limits.shutdown_grace;
        let drained_at = std::sync::OnceLock::new();
        let served = serve_until(listener, self.router(), limits, stop, || {
            let _ = drained_at.set(tokio::time::Instant::now());
            self.begin_draining()
        })
        .await;
        // The grace runs from the signal, for requests and deliveries alike.
        let since = drained_at.get().map_or(Duration::ZERO, |at| at.elapsed());
        let left = grace.saturating_sub(since.min(grace));
        if tokio::time::timeout(
            left.max(Duration::from_secs(1)),
            self.state.deliverer.stopped(),
        )
        .await
        .is_err()
        {
            tracing::warn!("webhook deliveries still under way at the end of the grace period");
        }
        served
    }
}

/// Serves until `stop`, then calls `draining` and lets requests in flight
/// finish within the grace period.
async fn serve_until(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ConnectionLimits,
    stop: impl std::future::Future<Output = ()>,
    draining: impl FnOnce(),
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let bodies = api::BodyGuard::new(limits.body_deadline, limits.bodies_per_client());
    let router = router
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            limits.body_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            bodies,
            api::guard_bodies,
        ));
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    // HTTP/1.1 only: its header-read timer runs from the moment the server
    // waits for a request, so a connection that sends nothing (or half a
    // request, or nothing more after one) is closed and gives its slot back.
    // (With protocol detection in front, a silent client would hold its
    // slot forever.)
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let shutdown = stop;
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.map_err(std::io::Error::other)?,
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!("accepting a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small answers go out at once: with Nagle's algorithm on, a response
        // written in two parts waits for the client's delayed ACK (40 ms).
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {error}");
        }
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let stream = crate::stalled_writes::StallLimited::new(stream, limits.write_timeout);
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!("connection ended: {error}");
            }
            drop(permit);
        });
    }
    // Ready no more, and no new connection: the load balancer moves on,
    // and a client that connects now is refused, not kept waiting.
    draining();
    drop(listener);
    let grace = limits.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still in flight after {} s; stopping anyway",
            grace.as_secs()
        );
    }
    Ok(())
}

/// The first start's organization and admin token, under the start-up
/// lock (replicas starting at once on one database create them once). The
/// token is staged in `.admin-token.pending` and becomes `admin-token`
/// only after its creation committed; what an earlier start left staged is
/// finished first (made the token file if its token exists, else removed).
async fn first_start(
    db: &crate::db::Db,
    org: &str,
    token_path: &Path,
) -> Result<Option<String>, String> {
    let staged = token_path.with_file_name(".admin-token.pending");
    // What a crash left half-written holds a token: gone before anything else.
    warden_host::remove_stale_staging(token_path);
    warden_host::remove_stale_staging(&staged);
    let lock = db
        .startup_lock()
        .await
        .map_err(|e| format!("waiting for the start-up lock: {e}"))?;
    let publish = || -> std::io::Result<()> {
        std::fs::rename(&staged, token_path)?;
        let dir = token_path.parent().unwrap_or(Path::new("."));
        std::fs::File::open(dir)?.sync_all()
    };
    let started = async {
        if let Ok(secret) = std::fs::read_to_string(&staged) {
            if orgs::staged_token_exists(db, secret.trim())
                .await
                .map_err(|e| e.to_string())?
            {
                publish().map_err(|e| format!("publishing the staged admin token: {e}"))?;
                tracing::warn!(
                    "finished a first start that crashed after creating its admin token: {}",
                    token_path.display()
                );
            } else {
                let _ = std::fs::remove_file(&staged);
            }
        }
        let created = orgs::bootstrap(
            db,
            org,
            |secret| warden_host::write_private(&staged, format!("{secret}\n").as_bytes(), true),
            publish,
        )
        .await;
        if created.is_err() {
            // Removed only if its token surely did not commit (an error
            // after the commit, or a failed rename, leaves it for the next
            // start to publish).
            if let Ok(secret) = std::fs::read_to_string(&staged)
                && matches!(
                    orgs::staged_token_exists(db, secret.trim()).await,
                    Ok(false)
                )
            {
                let _ = std::fs::remove_file(&staged);
            }
        }
        created.map_err(|e| e.to_string())
    }
    .await;
    lock.release().await;
    started
}

/// The id of the embedded store in `dir` (`store-id`), made on its first
/// use. Replicas sharing the directory share it.
fn store_id(dir: &Path) -> std::io::Result<String> {
    let path = dir.join("store-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        return Ok(id.trim().to_owned());
    }
    let id = hex::encode(rand::random::<[u8; 16]>());
    match warden_host::write_private(&path, format!("{id}\n").as_bytes(), false) {
        Ok(()) => Ok(id),
        // Another replica on the same directory made it first.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(&path)?.trim().to_owned())
        }
        Err(error) => Err(error),
    }
}

/// Refuses a replica whose embedded store is not the one this database's
/// releases are in (it would answer 502 for every release published through
/// another replica); the first replica's store is recorded.
async fn check_shared_store(db: &crate::db::Db, store_id: &str) -> Result<(), String> {
    let recorded: Vec<(String,)> = sqlx::query_as("SELECT store_id FROM embedded_store")
        .fetch_all(db.pool())
        .await
        .map_err(|e| format!("reading the embedded store's id: {e}"))?;
    if recorded.is_empty() {
        sqlx::query("INSERT INTO embedded_store (store_id, first_seen) VALUES ($1, $2)")
            .bind(store_id)
            .bind(crate::db::now_ms())
            .execute(db.pool())
            .await
            .map_err(|e| format!("recording the embedded store's id: {e}"))?;
        return Ok(());
    }
    if recorded.iter().any(|(id,)| id == store_id) {
        return Ok(());
    }
    Err(format!(
        "this database's releases are in another replica's embedded store (store {}), not in this \
         data directory's (store {store_id}): replicas on one PostgreSQL database must share one \
         data directory (a shared volume) or use an external registry (--registry)",
        recorded[0].0
    ))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// The registry's `/v2/` access, decided by the same API tokens: any role of
/// the repository's org may pull, publishers and admins may push.
struct TokenAccess {
    state: AppState,
}

#[async_trait]
impl OciAccess for TokenAccess {
    async fn check(
        &self,
        token: Option<&str>,
        repository: Option<&RepositoryName>,
        action: Action,
    ) -> Result<(), OciError> {
        let caller = self.state.snapshot.caller(&self.state.db, token).await?;
        let Some(repository) = repository else {
            return Ok(());
        };
        let permission = match action {
            Action::Pull => Permission::Read,
            Action::Push => Permission::Publish,
        };
        caller
            .require(permission, repository.org())
            .map_err(|_| OciError::Denied)
    }

    /// A version tag names a release: only its publish sets it (in the same
    /// change as the release's row), so a manifest pushed under a version
    /// before it is published cannot take the version from it.
    fn may_tag(&self, _repository: &RepositoryName, tag: &str) -> Result<(), OciError> {
        if semver::Version::parse(tag).is_ok() {
            return Err(OciError::TagReserved(
                tag.to_owned(),
                "a release's version tag is set by its publish (POST /v1/plugins/{org}/{name}/releases), never pushed",
            ));
        }
        Ok(())
    }

    async fn record_manifest(
        &self,
        token: Option<&str>,
        repository: &RepositoryName,
        digest: &str,
        tag: Option<&str>,
    ) {
        let Ok(caller) = self.state.snapshot.caller(&self.state.db, token).await else {
            return;
        };
        let target = match tag {
            Some(tag) => format!("{repository}:{tag}"),
            None => format!("{repository}@{digest}"),
        };
        let recorded = crate::audit::record(
            &self.state.db,
            repository.org(),
            &caller.actor(),
            crate::audit::Action::ManifestPut,
            &target,
            serde_json::json!({ "digest": digest, "tag": tag }),
        )
        .await;
        if let Err(e) = recorded {
            tracing::error!(%target, "a manifest was stored but could not be audited: {e}");
        }
    }
}

fn restrict(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// One pass writing what a committed change left out: referrers in the
/// embedded store, version tags in an external registry. Failures are
/// logged and tried again at the next pass.
async fn repair_after_commits(db: &crate::db::Db, artifacts: &ArtifactSource) {
    if let Err(e) = crate::domain::releases::repair_referrers(db, artifacts).await {
        tracing::warn!("writing missing referrers: {e}");
    }
    if let Err(e) = crate::domain::releases::repair_external_tags(db, artifacts).await {
        tracing::warn!("writing missing version tags: {e}");
    }
}
