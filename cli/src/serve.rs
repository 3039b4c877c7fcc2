//! `warden serve`: the control plane and the embedded OCI registry.

use crate::exit::{self, Failure};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use warden_registry::{ConnectionLimits, ControlPlane, ServerConfig, serve as serve_http};
use warden_registry::{Credentials, RegistryEndpoint};

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "WARDEN_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the SQLite database, the OCI store and the first admin token live.
    #[arg(long, env = "WARDEN_DATA_DIR", default_value = "./warden-data")]
    data_dir: PathBuf,
    /// Use PostgreSQL instead of the embedded SQLite file, e.g. postgres://user:pass@host/db.
    #[arg(long, env = "WARDEN_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Approvals from distinct admin keys a release needs before it may run.
    #[arg(long, env = "WARDEN_APPROVALS", default_value_t = 1)]
    approvals: u32,
    /// The organization created on first start.
    #[arg(long, default_value = "acme")]
    org: String,
    /// Also serve /metrics without a token on this address (for a
    /// Prometheus scraper on a private network). On the API's address,
    /// /metrics needs an admin token of the operator organization.
    #[arg(long, env = "WARDEN_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Time a client has to send a request's headers (and to start its next
    /// request on an idle connection), e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = warden_host::parse_duration)]
    header_timeout: std::time::Duration,
    /// Longest pause between two parts of a request's body, e.g. 60s.
    #[arg(long, default_value = "60s", value_parser = warden_host::parse_duration)]
    body_timeout: std::time::Duration,
    /// Time to send a whole request body, however steadily, e.g. 120s (a
    /// large blob is pushed in chunks, each a request of its own).
    #[arg(long, default_value = "120s", value_parser = warden_host::parse_duration)]
    body_deadline: std::time::Duration,
    /// Longest wait for a client to take any byte of an answer, e.g. 30s;
    /// then its connection is closed (a client that never reads).
    #[arg(long, default_value = "30s", value_parser = warden_host::parse_duration)]
    write_timeout: std::time::Duration,
    /// Connections served at once; more wait to be accepted. One client
    /// (one token; all anonymous clients together) may be sending bodies on
    /// at most a quarter of them at once (more: 429 `too_many_bodies`).
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// On SIGTERM or ctrl-c: how long calls in flight, uploads and webhook
    /// deliveries under way may take to finish, e.g. 30s. `/readyz`
    /// answers 503 and the listener closes at once; then the server exits 0.
    #[arg(long, env = "WARDEN_SHUTDOWN_GRACE", default_value = "30s", value_parser = warden_host::parse_duration)]
    shutdown_grace: std::time::Duration,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

/// How the server runs approved releases.
#[derive(Args, Clone)]
pub struct RuntimeArgs {
    /// An admin public key whose approvals this host trusts: `ed25519:...` or a
    /// file holding one (repeat, or comma-separate in WARDEN_ADMIN_KEYS). Pinned
    /// here, never taken from the database.
    #[arg(long = "admin-key", env = "WARDEN_ADMIN_KEYS", value_delimiter = ',')]
    pub admin_keys: Vec<String>,
    /// Pull artifacts from this external OCI registry (host:port) instead of the embedded one.
    #[arg(long, env = "WARDEN_REGISTRY")]
    pub registry: Option<String>,
    /// User name for the external registry.
    #[arg(long, env = "WARDEN_REGISTRY_USERNAME", requires = "registry")]
    pub registry_username: Option<String>,
    /// Password for the external registry.
    #[arg(
        long,
        env = "WARDEN_REGISTRY_PASSWORD",
        hide_env_values = true,
        requires = "registry"
    )]
    pub registry_password: Option<String>,
    /// Talk plain HTTP to the external registry (loopback and tests only).
    #[arg(long, requires = "registry")]
    pub registry_insecure: bool,
    /// The most a release may request and an admin approve for one limit,
    /// e.g. --max-limit memory=1GiB (repeat; the others keep their default
    /// maxima, listed in the README).
    #[arg(long = "max-limit", value_name = "NAME=VALUE")]
    pub max_limits: Vec<String>,
    /// Instance slots of the pool: plugins running at once, all
    /// organizations together. Each slot brings 2 linear memories and 8
    /// tables to the pool.
    #[arg(long, env = "WARDEN_POOL_INSTANCES", default_value_t = 128)]
    pub pool_instances: u32,
    /// One organization's share of the pool, in slots: its running
    /// invocations together may take this many plugin instances (a call
    /// tree takes one per plugin) and 2 memories and 8 tables per slot
    /// (a component may define up to 8 memories and 64 tables; each is
    /// counted). Past its share a call is refused with 429 `capacity`;
    /// shares never exhaust the pool while fewer than pool/share
    /// organizations are at theirs (defaults: 4).
    #[arg(long, env = "WARDEN_ORG_SHARE", default_value_t = 32)]
    pub org_share: u32,
    /// Bytes of kv keys and values all the plugins of one organization may
    /// hold together, e.g. 1GiB (each plugin also has its own `kv_bytes`
    /// limit); past it, writes that grow the store get `quota-exceeded`.
    #[arg(long, env = "WARDEN_ORG_KV_BYTES", default_value = "1GiB", value_parser = warden_host::parse_bytes)]
    pub org_kv_bytes: u64,
    /// Published components compiled at once to check them (more publishes
    /// wait their turn; `/metrics` shows how many run and wait).
    #[arg(long, env = "WARDEN_CONCURRENT_COMPILES", default_value_t = 2)]
    pub concurrent_compiles: usize,
    /// Publishes of one organization that may wait for a compile slot; more
    /// are refused at once with 429 `capacity` (other organizations' are not).
    #[arg(long, env = "WARDEN_COMPILE_QUEUE", default_value_t = 4)]
    pub compile_queue: usize,
    /// The largest component a release may carry, e.g. 64MiB (larger ones are
    /// refused at publish with 422 `component_too_large`).
    #[arg(long, env = "WARDEN_MAX_COMPONENT_SIZE", default_value = "64MiB", value_parser = warden_host::parse_bytes)]
    pub max_component_size: u64,
    /// Longest time a token or a plugin's resolved release is served from
    /// memory without reading the database again, e.g. 5s (changes made
    /// through the API take effect sooner: at once here, within 1 s on
    /// other replicas); bounds how long a row edited by hand goes unseen.
    #[arg(long, env = "WARDEN_SNAPSHOT_MAX_AGE", default_value = "5s", value_parser = warden_host::parse_duration)]
    pub snapshot_max_age: std::time::Duration,
    /// The key that encrypts plugin secrets at rest (64 hexadecimal
    /// digits). Default: `secrets.key` in the data directory, created with
    /// mode 0600 on first start. Keep it out of database backups: a
    /// database without it reveals no secret, and secrets cannot be read
    /// without it. Every replica needs the same key.
    #[arg(long, env = "WARDEN_SECRETS_KEY_FILE", value_name = "PATH")]
    pub secrets_key_file: Option<std::path::PathBuf>,
    /// To move to a new secrets key: the old key's file. At start every
    /// secret encrypted under it is re-encrypted under --secrets-key-file,
    /// in one transaction; then the old key is refused. Drop this flag
    /// afterwards (README: "Rotating the secrets key").
    #[arg(long, env = "WARDEN_PREVIOUS_SECRETS_KEY_FILE", value_name = "PATH")]
    pub previous_secrets_key_file: Option<std::path::PathBuf>,
    /// A network webhooks may reach although it is not public (loopback,
    /// private, link-local...), e.g. 10.20.0.0/16 or 127.0.0.1; repeatable.
    /// Without it, webhooks reach public addresses only.
    #[arg(
        long = "webhook-allow-cidr",
        value_name = "CIDR",
        env = "WARDEN_WEBHOOK_ALLOW_CIDR",
        value_delimiter = ','
    )]
    pub webhook_allow_cidrs: Vec<String>,
    /// Allow http:// webhook URLs (default: https only).
    #[arg(long, env = "WARDEN_WEBHOOK_ALLOW_HTTP")]
    pub webhook_allow_http: bool,
}

impl RuntimeArgs {
    /// Applies these options to `config`.
    pub fn apply(&self, config: &mut ServerConfig) -> Result<(), Failure> {
        config.admin_keys = self
            .admin_keys
            .iter()
            .filter(|k| !k.trim().is_empty())
            .map(|k| crate::remote::read_public_key(k.trim()))
            .collect::<Result<_, _>>()?;
        config.external_registry = self.registry.as_ref().map(|registry| RegistryEndpoint {
            registry: registry.clone(),
            insecure: self.registry_insecure,
            credentials: match &self.registry_username {
                Some(username) => Credentials::Basic {
                    username: username.clone(),
                    password: self.registry_password.clone().unwrap_or_default(),
                },
                None => Credentials::Anonymous,
            },
        });
        config.pool_instances = self.pool_instances;
        config.org_share = self.org_share;
        config.org_kv_bytes = self.org_kv_bytes;
        config.concurrent_compiles = self.concurrent_compiles;
        config.compile_queue_per_org = self.compile_queue;
        config.max_component_bytes = self.max_component_size;
        config.snapshot_max_age = self.snapshot_max_age;
        config.secrets_key_file = self.secrets_key_file.clone();
        config.previous_secrets_key_file = self.previous_secrets_key_file.clone();
        config.webhook_policy.allow_http = self.webhook_allow_http;
        config.webhook_policy.allow = self
            .webhook_allow_cidrs
            .iter()
            .map(|cidr| {
                warden_host::address_policy::parse_network(cidr.trim())
                    .map_err(|e| Failure::new(exit::USAGE, format!("--webhook-allow-cidr: {e}")))
            })
            .collect::<Result<_, _>>()?;
        for pair in &self.max_limits {
            config
                .limit_maxima
                .set_pair(pair)
                .map_err(|e| Failure::new(exit::USAGE, format!("--max-limit: {e}")))?;
        }
        Ok(())
    }
}

pub async fn serve(args: ServeArgs) -> Result<u8, Failure> {
    let mut config = ServerConfig::new(&args.data_dir);
    config.database_url = args.database_url;
    config.approvals_required = args.approvals;
    config.bootstrap_org = args.org.clone();
    args.runtime.apply(&mut config)?;
    if config.admin_keys.is_empty() {
        eprintln!(
            "warning: no admin key pinned (--admin-key): approved releases cannot be invoked until the server is restarted with one"
        );
    }
    let (plane, listener, address) = open_and_listen(&config, args.listen).await?;
    let url = format!("http://{address}");
    if plane.bootstrap_token.is_some() {
        outln!(
            "First start: created organization {:?} and its first admin token.",
            args.org
        );
        outln!(
            "The token is in {} (mode 0600). Use it with:",
            plane.admin_token_path.display()
        );
        outln!();
        outln!("  export WARDEN_URL={url}");
        outln!(
            "  export WARDEN_TOKEN=$(cat {})",
            plane.admin_token_path.display()
        );
        outln!();
    }
    outln!(
        "warden listening on {url} (data in {})",
        args.data_dir.display()
    );
    if let Some(address) = args.metrics_listen {
        let metrics = tokio::net::TcpListener::bind(address).await.map_err(|e| {
            Failure::new(
                exit::HOST_FAILURE,
                format!("--metrics-listen {address}: {e}"),
            )
        })?;
        outln!("metrics on http://{address}/metrics");
        tokio::spawn(serve_http(metrics, plane.metrics_router()));
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let limits = ConnectionLimits {
        header_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
        body_deadline: args.body_deadline,
        write_timeout: args.write_timeout,
        max_connections: args.max_connections,
        shutdown_grace: args.shutdown_grace,
    };
    plane
        .serve(listener, limits)
        .await
        .map_err(|e| Failure::new(exit::HOST_FAILURE, format!("serving: {e}")))?;
    plane.db().close().await;
    Ok(exit::OK)
}

/// Opens the control plane for `config`, binds `listen`, and tells the runtime
/// where the embedded registry now listens. Shared by `serve` and `demo`.
pub async fn open_and_listen(
    config: &ServerConfig,
    listen: SocketAddr,
) -> Result<(ControlPlane, tokio::net::TcpListener, SocketAddr), Failure> {
    let plane = ControlPlane::open(config)
        .await
        .map_err(|e| Failure::new(exit::UNAVAILABLE, format!("starting: {e}")))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Failure::new(exit::UNAVAILABLE, format!("listening on {listen}: {e}")))?;
    let address = listener
        .local_addr()
        .map_err(|e| Failure::new(exit::HOST_FAILURE, e.to_string()))?;
    Ok((plane, listener, address))
}
