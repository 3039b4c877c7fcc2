//! A plugin ready to run: a compiled component bound to its grants, limits,
//! configuration and key-value namespace; and the invocation of its functions.

use crate::capabilities::{self, Backends, Grants, Instance};
use crate::engine::EPOCH_TICK;
use crate::engine::{CompiledComponent, Engine, PoolUse};
use crate::error::{Error, Result};
use crate::exports::FLAGS_READ_DIVISOR;
use crate::exports::{Export, FunctionInfo};
use crate::json;
use crate::limits::{LimitKind, Limits, format_bytes};
use crate::link::{self, CallTree, Link, MAX_CALL_TREE};
use crate::state::{HostState, Limiter};
use crate::transcript::{CapturedStream, LogEntry, LogSource, Transcript};
use serde::Serialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use wasmtime::component::{InstancePre, Linker, Val};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;

/// What a plugin runs with, as an admin approved it.
#[derive(Clone, Default)]
pub struct PluginSettings {
    /// The plugin's name, for logs and errors (e.g. `acme/greeter@1.2.0`).
    pub name: String,
    /// The granted capabilities.
    pub grants: Grants,
    /// The limits of each invocation.
    pub limits: Limits,
    /// What its granted capabilities draw on: the configuration values,
    /// the key-value store and the secret store (each with the plugin's
    /// namespace in it).
    pub backends: Backends,
}

/// A component bound to its settings, ready to invoke. Cheap to clone; clones
/// share the concurrency limit.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    engine: Engine,
    component: CompiledComponent,
    pre: InstancePre<HostState>,
    settings: PluginSettings,
    running: Arc<Semaphore>,
    /// The imports its dependencies provide.
    links: Vec<Link>,
    /// What one invocation takes from the pool: each plugin of its call
    /// tree, itself included, counted once.
    pool_use: PoolUse,
    /// What its read budget is divided by at least: [`FLAGS_READ_DIVISOR`]
    /// when it passes `flags` to a dependency, else 1.
    link_read_divisor: u64,
}

/// What the function returned.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// The result (for a function returning `result<T, E>`: the `ok` value).
    Value(Json),
    /// The `err` value of a function returning `result<T, E>`: the plugin's own,
    /// typed error.
    PluginError(Json),
}

/// Resources one invocation used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Metering {
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Wall-clock time, instantiation included (in JSON: `duration_us`).
    #[serde(rename = "duration_us", serialize_with = "as_micros")]
    pub duration: Duration,
}

fn as_micros<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_micros() as u64)
}

/// A finished invocation.
#[derive(Clone, Debug, Serialize)]
pub struct Invocation {
    /// What the function returned.
    pub output: Output,
    /// Fuel and time used.
    pub metering: Metering,
    /// Log messages and stdout/stderr.
    pub logs: Vec<LogEntry>,
}

/// A failed invocation: the error, and what was used and logged until then.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Failure {
    /// Why it failed.
    #[source]
    pub error: Error,
    /// Fuel and time used, if the plugin started running.
    pub metering: Option<Metering>,
    /// Log messages and stdout/stderr written before the failure.
    pub logs: Vec<LogEntry>,
}

impl From<Error> for Box<Failure> {
    fn from(error: Error) -> Self {
        Box::new(Failure {
            error,
            metering: None,
            logs: Vec::new(),
        })
    }
}

impl Plugin {
    /// Binds `component` to `settings`. Refuses, before any of its code runs, a
    /// component that imports a capability that was not granted (naming every
    /// missing one) or an interface Warden does not provide.
    pub fn new(
        engine: &Engine,
        component: &CompiledComponent,
        settings: PluginSettings,
    ) -> Result<Plugin> {
        Plugin::linked(engine, component, settings, &[])
    }

    /// Like [`Plugin::new`], with the component's imports that no host
    /// provides linked to the interfaces its `dependencies` export (each
    /// already bound to its own settings and dependencies). Every such
    /// import must be exported by exactly one dependency, with the same
    /// functions and types; nothing else is linked, and each dependency
    /// runs with its own grants, configuration, key-value namespace and
    /// limits (see the `link` module).
    pub fn linked(
        engine: &Engine,
        component: &CompiledComponent,
        settings: PluginSettings,
        dependencies: &[Plugin],
    ) -> Result<Plugin> {
        let links = if dependencies.is_empty() {
            component.requested().check(&settings.grants)?;
            Vec::new()
        } else {
            let links = link::links(engine.wasmtime(), component, dependencies)?;
            let missing = component.requested().missing(&settings.grants);
            if !missing.is_empty() {
                return Err(Error::MissingCapabilities(missing));
            }
            links
        };
        let limits = &settings.limits;
        if limits.memory_bytes > engine.config().max_memory_bytes {
            return Err(Error::Config(format!(
                "memory limit {} exceeds the engine's maximum of {}",
                format_bytes(limits.memory_bytes),
                format_bytes(engine.config().max_memory_bytes)
            )));
        }
        if limits.concurrency == 0 {
            return Err(Error::Config(
                "the concurrency limit must be at least 1".into(),
            ));
        }
        capabilities::check(&settings.grants, &settings.backends)?;

        let linker = linker(engine, &settings.grants, &links)
            .map_err(|e| Error::Host(format!("linking: {e:#}")))?;
        let pre = linker
            .instantiate_pre(&component.inner.component)
            .map_err(|e| Error::InvalidComponent(format!("{e:#}")))?;
        let mut tree = BTreeMap::new();
        for link in &links {
            link.dependency.collect_tree(&mut tree);
        }
        let pool_use = tree
            .values()
            .fold(component.pool_use(), |total, each| total.plus(*each));
        if tree.len() + 1 > MAX_CALL_TREE {
            return Err(Error::Config(format!(
                "its call tree would hold {} plugins; at most {MAX_CALL_TREE} are linked into one",
                tree.len() + 1
            )));
        }
        let link_read_divisor = if links.iter().any(|link| link.flags_in_params) {
            FLAGS_READ_DIVISOR
        } else {
            1
        };
        Ok(Plugin {
            inner: Arc::new(PluginInner {
                engine: engine.clone(),
                component: component.clone(),
                pre,
                running: Arc::new(Semaphore::new(limits.concurrency as usize)),
                settings,
                links,
                pool_use,
                link_read_divisor,
            }),
        })
    }

    fn collect_tree(&self, tree: &mut BTreeMap<usize, PoolUse>) {
        if tree
            .insert(self.key(), self.inner.component.pool_use())
            .is_none()
        {
            for link in &self.inner.links {
                link.dependency.collect_tree(tree);
            }
        }
    }

    /// Whether `other` is this plugin (or a clone of it).
    pub fn is_same(&self, other: &Plugin) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Identifies this plugin (and its clones) among the plugins of a call tree.
    pub(crate) fn key(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    pub(crate) fn pre(&self) -> &InstancePre<HostState> {
        &self.inner.pre
    }

    /// The read budget of a call of `export`: see [`Limits::read_budget`].
    pub(crate) fn read_budget(&self, export: &Export) -> usize {
        let divisor = export.read_divisor().max(self.inner.link_read_divisor);
        self.inner.settings.limits.read_budget_divided(divisor)
    }

    /// One more running instance within the plugin's concurrency limit.
    pub(crate) fn try_admit(
        &self,
    ) -> std::result::Result<tokio::sync::OwnedSemaphorePermit, tokio::sync::TryAcquireError> {
        self.inner.running.clone().try_acquire_owned()
    }

    /// The dependencies linked to its imports: each import with the plugin
    /// that provides it.
    pub fn dependencies(&self) -> impl Iterator<Item = (&str, &Plugin)> {
        self.inner
            .links
            .iter()
            .map(|link| (link.import.as_str(), &link.dependency))
    }

    /// How many plugins one invocation may instantiate: itself and each
    /// plugin it depends on, directly or not, once.
    pub fn tree_size(&self) -> usize {
        self.inner.pool_use.instances as usize
    }

    /// What one invocation may take from the engine's pool: the instances,
    /// memories and tables of itself and each plugin it depends on,
    /// directly or not, once.
    pub fn pool_use(&self) -> PoolUse {
        self.inner.pool_use
    }

    /// The compiled component.
    pub fn component(&self) -> &CompiledComponent {
        &self.inner.component
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &PluginSettings {
        &self.inner.settings
    }

    /// Every exported function.
    pub fn functions(&self) -> impl ExactSizeIterator<Item = &FunctionInfo> {
        self.inner.component.functions()
    }

    /// Calls `function` with JSON `args` (an array by position, an object by
    /// parameter name, or the bare value for a one-parameter function) in a fresh
    /// instance.
    pub async fn invoke(&self, function: &str, args: &Json) -> Result<Invocation, Box<Failure>> {
        self.invoke_admitted(function, args, || Ok(())).await
    }

    /// Like [`Plugin::invoke`], with `admit` asked once the arguments are
    /// valid and the plugin's own concurrency limit lets the call in, just
    /// before an instance is taken; what it returns is held until the call
    /// ends. An embedder's share of a pool that several plugins draw on
    /// goes here, so that calls this plugin refuses anyway take no share.
    pub async fn invoke_admitted<G>(
        &self,
        function: &str,
        args: &Json,
        admit: impl FnOnce() -> Result<G, Error>,
    ) -> Result<Invocation, Box<Failure>> {
        let export = self.inner.component.find(function)?;
        if let Some(reason) = &export.info.not_invocable {
            return Err(Error::NotInvocable {
                name: export.info.name.clone(),
                reason: reason.clone(),
            }
            .into());
        }
        let params = json::arguments(args, &export.param_types())?;
        let limits = &self.inner.settings.limits;
        let Ok(_permit) = self.try_admit() else {
            tracing::info!(plugin = %self.inner.settings.name, "concurrency limit refused an invocation");
            return Err(Error::TooManyConcurrent {
                limit: limits.concurrency,
            }
            .into());
        };
        let _admitted = admit()?;

        let transcript = Transcript::new(limits.log_bytes);
        // A plugin linked to dependencies: what its call tree shares. The
        // stores hold it weakly; it ends with this call.
        let tree = (!self.inner.links.is_empty())
            .then(|| Arc::new(CallTree::new(limits, transcript.clone())));
        let started = Instant::now();
        let mut store = self.store(
            transcript.clone(),
            self.read_budget(export),
            started + limits.timeout,
            limits.timeout,
            tree.as_ref(),
        );
        // With dependencies, the deadline is enforced in each store (which
        // names the dependency that ran over); this is the backstop.
        let backstop = if tree.is_some() {
            limits.timeout + 3 * EPOCH_TICK
        } else {
            limits.timeout
        };
        let outcome =
            tokio::time::timeout(backstop, call(&self.inner.pre, &mut store, export, &params))
                .await;
        let duration = started.elapsed();
        let fuel_left = store.get_fuel().unwrap_or(0);
        let metering = Metering {
            fuel_used: limits.fuel.saturating_sub(fuel_left),
            duration,
        };

        let result = match outcome {
            Err(_elapsed) => Err(Error::deadline(limits.timeout)),
            Ok(Err(error)) => {
                let read_budget = store.hostcall_fuel();
                Err(classify(
                    error,
                    store.data_mut(),
                    &transcript,
                    limits,
                    read_budget,
                ))
            }
            Ok(Ok(value)) => self.output(export, value),
        };
        if let Err(error) = &result
            && error.is_plugin_fault()
        {
            tracing::info!(plugin = %self.inner.settings.name, function, code = error.code(), "{error}");
        }
        drop(store);
        drop(tree);
        let logs = transcript.take();
        match result {
            Ok(output) => Ok(Invocation {
                output,
                metering,
                logs,
            }),
            Err(error) => Err(Box::new(Failure {
                error,
                metering: Some(metering),
                logs,
            })),
        }
    }

    /// A store for one instance of this plugin, reading values out of it
    /// within `read_budget` (see [`Plugin::read_budget`]), ending at
    /// `deadline` (the end of `timeout`), in `tree` if the invocation has
    /// dependencies.
    pub(crate) fn store(
        &self,
        transcript: Transcript,
        read_budget: usize,
        deadline: Instant,
        timeout: Duration,
        tree: Option<&Arc<CallTree>>,
    ) -> Store<HostState> {
        let settings = &self.inner.settings;
        let limits = &settings.limits;
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(CapturedStream {
            transcript: transcript.clone(),
            source: LogSource::Stdout,
        })
        .stderr(CapturedStream {
            transcript: transcript.clone(),
            source: LogSource::Stderr,
        })
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
        let caps = capabilities::contexts(
            &settings.grants,
            &settings.backends,
            &mut Instance {
                wasi: &mut wasi,
                transcript: &transcript,
            },
        );
        let state = HostState {
            wasi: wasi.build(),
            table: Default::default(),
            caps,
            limiter: Limiter::new(limits.clone(), tree.map(|tree| tree.memory.clone())),
            transcript,
            limits: limits.clone(),
            fault: None,
            tree: tree.map(Arc::downgrade),
        };
        let mut store = Store::new(self.inner.engine.wasmtime(), state);
        store.limiter(|state| &mut state.limiter);
        store
            .set_fuel(limits.fuel)
            .expect("fuel is enabled on every Warden engine");
        // Bounds what wasmtime allocates while it reads the result or a host
        // call's arguments out of the guest, before Warden can look at its size.
        store.set_hostcall_fuel(read_budget);
        // Check the deadline on every epoch tick and yield to the executor, so a
        // spinning plugin neither overruns nor starves other tasks on the thread.
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(wasmtime::Error::new(Error::deadline(timeout)))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store.set_epoch_deadline(1);
        store
    }

    fn output(&self, export: &Export, value: Option<Val>) -> Result<Output> {
        let limit = self.inner.settings.limits.result_bytes;
        // For a function returning `result<T, E>`: the `ok` or `err` payload.
        let (value, plugin_error) = match (export.result_type(), &value) {
            (Some(wasmtime::component::types::Type::Result(_)), Some(Val::Result(result))) => {
                match result {
                    Ok(ok) => (ok.as_deref(), false),
                    Err(err) => (err.as_deref(), true),
                }
            }
            (_, value) => (value.as_ref(), false),
        };
        // Measured before a JSON tree of it exists.
        let size = value.map_or(4, |value| json_size(&json::AsJson(value)));
        if size > limit {
            return Err(Error::limit(
                LimitKind::Result,
                format!(
                    "the result is {} as JSON; the limit is {}",
                    format_bytes(size),
                    format_bytes(limit)
                ),
            ));
        }
        let json = value.map_or(Json::Null, json::from_val);
        Ok(if plugin_error {
            Output::PluginError(json)
        } else {
            Output::Value(json)
        })
    }
}

async fn call(
    pre: &InstancePre<HostState>,
    store: &mut Store<HostState>,
    export: &Export,
    params: &[Val],
) -> wasmtime::Result<Option<Val>> {
    let instance = pre.instantiate_async(&mut *store).await?;
    let func = instance
        .get_func(&mut *store, export.index)
        .ok_or_else(|| wasmtime::Error::msg(format!("export `{}` vanished", export.info.name)))?;
    let mut results = vec![Val::Bool(false); export.ty.results().len()];
    func.call_async(&mut *store, params, &mut results).await?;
    Ok(results.pop())
}

/// Why the call failed, most specific cause first.
pub(crate) fn classify(
    error: wasmtime::Error,
    state: &mut HostState,
    transcript: &Transcript,
    limits: &Limits,
    read_budget: usize,
) -> Error {
    if let Some(fault) = state.fault.take() {
        return fault;
    }
    if let Some((kind, detail)) = state.limiter.hit.take() {
        return Error::limit(kind, detail);
    }
    if let Some(error) = error.downcast_ref::<Error>() {
        return match error {
            Error::LimitExceeded { kind, detail } => Error::limit(*kind, detail.clone()),
            other => Error::Host(other.to_string()),
        };
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        match trap {
            Trap::OutOfFuel => {
                return Error::limit(
                    LimitKind::Fuel,
                    format!("used all {} units of fuel", limits.fuel),
                );
            }
            Trap::Interrupt => return Error::deadline(limits.timeout),
            Trap::StackOverflow => {
                return Error::limit(
                    LimitKind::Stack,
                    "the plugin exhausted its wasm stack (runaway recursion?)",
                );
            }
            _ => {}
        }
    }
    let message = format!("{error:#}");
    for (needle, kind) in [
        ("instance count too high", LimitKind::Instances),
        ("memory count too high", LimitKind::Instances),
        ("table count too high", LimitKind::Tables),
    ] {
        if message.contains(needle) {
            return Error::limit(
                kind,
                format!(
                    "{}; the limits are {} instances, {} memories, {} tables",
                    error, limits.instances, limits.memories, limits.tables
                ),
            );
        }
    }
    if message.contains(READ_BUDGET_EXHAUSTED) {
        return read_budget_exhausted(&error, limits, read_budget);
    }
    if message.contains("maximum concurrent") || message.contains("pooling allocator") {
        return Error::Capacity(error.to_string());
    }
    let trap = match error.downcast_ref::<Trap>() {
        Some(trap) => trap
            .to_string()
            .trim_start_matches("wasm trap: ")
            .to_owned(),
        None => error
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
    };
    let message = match transcript.panic_message() {
        Some(panic) => format!("{trap} ({panic})"),
        None => trap,
    };
    Error::Trap {
        message,
        backtrace: error
            .downcast_ref::<wasmtime::WasmBacktrace>()
            .map(ToString::to_string),
    }
}

/// How wasmtime says that reading a value out of the guest went past
/// [`Limits::read_budget`] (its "hostcall fuel").
const READ_BUDGET_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

/// Names the limit behind an exhausted read budget. A host call's arguments are
/// read while the guest waits inside the call, so the error passed through its
/// frames and carries a wasm backtrace; the result is read after the guest
/// returned, so its error carries none.
fn read_budget_exhausted(error: &wasmtime::Error, limits: &Limits, budget: usize) -> Error {
    let budget = format_bytes(budget as u64);
    if error.downcast_ref::<wasmtime::WasmBacktrace>().is_some() {
        Error::limit(
            LimitKind::HostCall,
            format!(
                "a host call's arguments take more than {budget} to read; the limit for one argument is {}",
                format_bytes(limits.host_call_bytes)
            ),
        )
    } else {
        Error::limit(
            LimitKind::Result,
            format!(
                "the result takes more than {budget} of host memory to read (the read budget for a result limit of {})",
                format_bytes(limits.result_bytes),
            ),
        )
    }
}

/// The length of `json` serialized, without building the string.
fn json_size(json: &impl Serialize) -> u64 {
    struct Counter(u64);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, json).expect("counting cannot fail");
    counter.0
}

/// The linker for one set of grants: each granted capability (and each
/// that needs no grant; WASI reaches nothing unless granted), and the
/// dependencies' interfaces.
fn linker(engine: &Engine, grants: &Grants, links: &[Link]) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine.wasmtime());
    capabilities::add_to_linker(&mut linker, grants)?;
    link::add_to_linker(&mut linker, links)?;
    Ok(linker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_size_matches_serialization() {
        let value = serde_json::json!({"a": [1, 2, "three"], "b": null, "c": "\u{e9}\n"});
        assert_eq!(
            json_size(&value),
            serde_json::to_vec(&value).unwrap().len() as u64
        );
    }
}
