//! `warden run`: one sandboxed invocation of a local component, no registry.

use crate::admin::Format;
use crate::exit::{self, Failure, read_component};
use crate::text::printable_lines;
use clap::Args;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use warden_host::{
    Backends, Engine, EngineConfig, Grants, Invocation, KvStore, Limits, LogEntry, LogSource,
    MemoryKvStore, MemorySecretStore, Output, Plugin, PluginSettings, SecretStore, parse_bytes,
    parse_duration, valid_secret_name,
};
use warden_registry::SqlKvStore;

#[derive(Args)]
pub struct RunArgs {
    /// The component (.wasm built for wasm32-wasip2).
    component: PathBuf,
    /// The function: `greet`, or `interface.function` for an exported interface.
    function: String,
    /// JSON arguments: an array (by position), an object (by name), or the bare value of a one-parameter function.
    #[arg(default_value = "null")]
    args: String,
    /// Grant a capability (the forms are listed by `warden run --help`). Repeatable.
    #[arg(long = "grant", value_name = "GRANT", long_help = grant_flag_help())]
    grants: Vec<String>,
    /// A secret the plugin can read if granted `secret:NAME`. Repeatable. A
    /// value on the command line is visible to other local users (`ps`):
    /// prefer --secret-file for real credentials.
    #[arg(long = "secret", value_name = "NAME=VALUE")]
    secrets: Vec<String>,
    /// A file of secrets, one NAME=VALUE per line (blank lines and lines
    /// starting with # are skipped).
    #[arg(long = "secret-file", value_name = "PATH")]
    secret_file: Option<PathBuf>,
    /// A configuration value the plugin can read (grants `config`). Repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Fuel (roughly, instructions) the invocation may use.
    #[arg(long)]
    fuel: Option<u64>,
    /// Linear memory limit, e.g. 64MiB.
    #[arg(long, value_parser = parse_bytes)]
    memory: Option<u64>,
    /// Wall-clock limit, e.g. 2s or 500ms.
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Wasm stack limit, e.g. 512KiB.
    #[arg(long, value_parser = parse_bytes)]
    stack: Option<u64>,
    /// Limit on log messages plus stdout/stderr, e.g. 1MiB.
    #[arg(long, value_parser = parse_bytes)]
    log_limit: Option<u64>,
    /// Limit on the size of the JSON result, e.g. 4MiB.
    #[arg(long, value_parser = parse_bytes)]
    result_limit: Option<u64>,
    /// Limit on one host-call argument (log message, kv value), e.g. 1MiB.
    #[arg(long, value_parser = parse_bytes)]
    host_call_limit: Option<u64>,
    /// Any limit an admin can approve, as NAME=VALUE: fuel, memory, timeout,
    /// table_elements, instances, tables, memories, log_bytes, result_bytes,
    /// host_call_bytes, concurrency, kv_keys, kv_value_bytes. Repeatable;
    /// applied after the flags above.
    #[arg(long = "limit", value_name = "NAME=VALUE")]
    limits: Vec<String>,
    /// Keep the plugin's key-value data in this SQLite file (grants `kv`); by default
    /// a granted kv lives in memory for this one run.
    #[arg(long, value_name = "PATH")]
    kv_file: Option<PathBuf>,
    /// Print fuel used and duration on stderr.
    #[arg(long)]
    stats: bool,
    /// A component the plugin depends on: its exported interfaces are linked
    /// to the plugin's imports of them. Repeatable, in dependency order (each
    /// may use the ones before it). Dependencies run with no capability
    /// beyond logging and with default limits (the plugin's fuel, memory and
    /// deadline cover them too).
    #[arg(long = "dependency", value_name = "COMPONENT")]
    dependencies: Vec<PathBuf>,
    #[command(flatten)]
    cache: CacheArgs,
}

/// Where `warden run` and `warden inspect` keep compiled components.
#[derive(Args)]
pub struct CacheArgs {
    /// Where compiled components are cached (default: $XDG_CACHE_HOME/warden/compiled
    /// or ~/.cache/warden/compiled).
    #[arg(long, env = "WARDEN_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile without the on-disk cache (even if WARDEN_CACHE_DIR is set).
    #[arg(long)]
    no_cache: bool,
}

impl CacheArgs {
    /// An engine for one local invocation (no pool to pre-allocate) using this cache.
    pub fn local_engine(&self, max_wasm_stack: Option<u64>) -> Result<Engine, Failure> {
        let mut config = EngineConfig {
            cache_dir: if self.no_cache {
                None
            } else {
                self.cache_dir.clone().or_else(default_cache_dir)
            },
            pooled_instances: None,
            ..EngineConfig::default()
        };
        if let Some(stack) = max_wasm_stack {
            config.max_wasm_stack =
                usize::try_from(stack).map_err(|_| Failure::invalid("--stack is too large"))?;
        }
        Ok(Engine::new(config)?)
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("warden").join("compiled"))
}

impl RunArgs {
    fn limits(&self) -> Result<Limits, Failure> {
        let mut limits = Limits::default();
        if let Some(fuel) = self.fuel {
            limits.fuel = fuel;
        }
        if let Some(memory) = self.memory {
            limits.memory_bytes = memory;
        }
        if let Some(timeout) = self.timeout {
            limits.timeout = timeout;
        }
        if let Some(bytes) = self.log_limit {
            limits.log_bytes = bytes;
        }
        if let Some(bytes) = self.result_limit {
            limits.result_bytes = bytes;
        }
        if let Some(bytes) = self.host_call_limit {
            limits.host_call_bytes = bytes;
        }
        for pair in &self.limits {
            limits
                .set_pair(pair)
                .map_err(|e| Failure::new(exit::USAGE, format!("--limit: {e}")))?;
        }
        Ok(limits)
    }

    async fn settings(&self) -> Result<PluginSettings, Failure> {
        let mut grants = Grants::parse(self.grants.iter().map(String::as_str))?;
        let mut config = BTreeMap::new();
        for pair in &self.config {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                Failure::invalid(format!("--config {pair:?}: expected KEY=VALUE"))
            })?;
            config.insert(key.to_owned(), value.to_owned());
            grants.config = true;
        }
        let store: Option<Arc<dyn KvStore>> = match &self.kv_file {
            Some(path) => {
                grants.kv = true;
                let store = SqlKvStore::open_file(path).await.map_err(|e| {
                    Failure::invalid(format!("opening the kv file {}: {e}", path.display()))
                })?;
                Some(Arc::new(store))
            }
            None if grants.kv => Some(Arc::new(MemoryKvStore::new())),
            None => None,
        };
        let kv = store.map(|store| (store, "local".to_owned()));
        let secrets = self.secrets()?;
        Ok(PluginSettings {
            name: self.component.display().to_string(),
            grants,
            limits: self.limits()?,
            backends: Backends {
                config: Arc::new(config),
                kv,
                secrets: Some((secrets, "local".to_owned())),
            },
        })
    }

    /// The secrets of --secret and --secret-file.
    fn secrets(&self) -> Result<Arc<dyn SecretStore>, Failure> {
        let store = MemorySecretStore::new();
        let add = |pair: &str, origin: &str| {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| Failure::invalid(format!("{origin}: expected NAME=VALUE")))?;
            if !valid_secret_name(name) {
                return Err(Failure::invalid(format!(
                    "{origin}: {name:?} is not a secret name (ASCII letters, digits and _, not starting with a digit)"
                )));
            }
            store.set("local", name, value);
            Ok(())
        };
        for (n, pair) in self.secrets.iter().enumerate() {
            add(pair, &format!("--secret number {}", n + 1))?;
        }
        if let Some(path) = &self.secret_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Failure::invalid(format!("reading the secret file {}: {e}", path.display()))
            })?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                add(line, &format!("{} line {}", path.display(), n + 1))?;
            }
        }
        Ok(Arc::new(store))
    }
}

/// The --grant help: every form of grant, from the host's list of capabilities.
fn grant_flag_help() -> String {
    format!(
        "Grant a capability: {}. http takes a host, *.DOMAIN, an address or a CIDR, and :PORT. Repeatable.",
        warden_host::grant_help()
    )
}

/// Compiles a component, off the async threads.
async fn compile(
    engine: &warden_host::Engine,
    bytes: Vec<u8>,
) -> Result<warden_host::CompiledComponent, Failure> {
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || engine.compile(&bytes))
        .await
        .map_err(|e| Failure::new(exit::HOST_FAILURE, format!("compiling: {e}")))?
        .map_err(Failure::from)
}

pub async fn run(args: RunArgs, output: Format) -> Result<u8, Failure> {
    let call_args: Json = serde_json::from_str(&args.args)
        .map_err(|e| Failure::invalid(format!("the arguments are not valid JSON: {e}")))?;
    let bytes = read_component(&args.component)?;
    let settings = args.settings().await?;
    let engine = args.cache.local_engine(args.stack)?;
    let component = compile(&engine, bytes).await?;
    let mut dependencies: Vec<Plugin> = Vec::new();
    for path in &args.dependencies {
        let compiled = compile(&engine, read_component(path)?).await?;
        let name = path.file_stem().map_or_else(
            || path.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        let settings = warden_host::PluginSettings {
            name,
            ..warden_host::PluginSettings::default()
        };
        let dependency = Plugin::linked(&engine, &compiled, settings, &dependencies)
            .map_err(|e| Failure::new(exit::code_of(&e), format!("{}: {e}", path.display())))?;
        dependencies.push(dependency);
    }
    let plugin = Plugin::linked(&engine, &component, settings, &dependencies).map_err(|e| {
        let unsupported = matches!(e, warden_host::Error::UnsupportedImports(_));
        let mut failure = Failure::from(e);
        if unsupported {
            failure.message.push_str(
                " (if another plugin exports them, pass its component with --dependency)",
            );
        }
        failure
    })?;
    match plugin.invoke(&args.function, &call_args).await {
        Ok(call) => Ok(report_success(&args, output, &call)),
        Err(failure) => {
            if output.json {
                let outcome = json!({
                    "error": {"code": failure.error.code(), "message": failure.error.to_string()},
                    "metering": failure.metering,
                    "logs": failure.logs,
                });
                outln!("{outcome}");
            } else {
                print_logs(&failure.logs);
                if let (true, Some(metering)) = (args.stats, failure.metering) {
                    eprintln!(
                        "fuel used: {}, duration: {:?}",
                        metering.fuel_used, metering.duration
                    );
                }
            }
            Err(failure.error.into())
        }
    }
}

fn report_success(args: &RunArgs, output: Format, call: &Invocation) -> u8 {
    if output.json {
        let (key, value, code) = match &call.output {
            Output::Value(value) => ("result", value, exit::OK),
            Output::PluginError(error) => ("plugin_error", error, exit::PLUGIN_ERROR),
        };
        outln!(
            "{}",
            json!({key: value, "metering": call.metering, "logs": call.logs})
        );
        return code;
    }
    print_logs(&call.logs);
    if args.stats {
        eprintln!(
            "fuel used: {}, duration: {:?}",
            call.metering.fuel_used, call.metering.duration
        );
    }
    match &call.output {
        Output::Value(value) => {
            outln!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
            exit::OK
        }
        Output::PluginError(error) => {
            outln!(
                "{}",
                serde_json::to_string_pretty(error).unwrap_or_default()
            );
            eprintln!("the plugin returned an error");
            exit::PLUGIN_ERROR
        }
    }
}

/// The plugin's transcript on stderr, each line with its source, control
/// characters escaped (a plugin cannot draw on the terminal or fake a line).
fn print_logs(logs: &[LogEntry]) {
    for entry in logs {
        let prefix = match entry.source {
            LogSource::Log(level) => format!("{level:?}").to_lowercase(),
            LogSource::Stdout => "stdout".to_owned(),
            LogSource::Stderr => "stderr".to_owned(),
            LogSource::Host => "warden".to_owned(),
        };
        let prefix = match &entry.plugin {
            Some(plugin) => format!("{plugin} {prefix}"),
            None => prefix,
        };
        for line in printable_lines(entry.message.trim_end_matches('\n')) {
            eprintln!("[{prefix}] {line}");
        }
    }
}
