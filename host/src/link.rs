//! Linking a plugin to its dependencies at run time.
//!
//! A component's imports that are neither Warden's host interfaces nor WASI
//! are interfaces that its dependencies export. Each is linked to host
//! functions that forward the call to an instance of the dependency, which
//! runs in a store of its own: with its own grants, configuration, key-value
//! namespace and limits. No capability passes between a plugin and its
//! dependencies in either direction; values cross by copy, and interfaces
//! with resources are not linked.
//!
//! One invocation is one call tree ([`CallTree`]): the fuel a dependency
//! burns is taken from its caller's, all linear memories of the tree count
//! against the invoked plugin's memory limit, and every store of the tree
//! stops at the invocation's deadline. Each dependency is instantiated at
//! most once per invocation, on its first call, and the instance is shared
//! by every plugin of the tree that calls it (as a composition would).
//! Whatever stops a dependency ends the invocation, with its error wrapped in
//! [`Error::InDependency`] naming the dependency.

use crate::engine::CompiledComponent;
use crate::error::{Error, Result};
use crate::exports::{Export, MAX_EXPORTED_FUNCTIONS, contains_flags};
use crate::limits::{LimitKind, Limits, format_bytes};
use crate::plugin::{Plugin, classify};
use crate::state::HostState;
use crate::transcript::Transcript;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Instance, Linker, Val};
use wasmtime::{Store, StoreContextMut};

/// One import of a plugin, provided by one of its dependencies.
pub(crate) struct Link {
    /// The import, e.g. `warden-examples:text-tools/text@0.1.0`.
    pub(crate) import: String,
    /// The dependency that exports it.
    pub(crate) dependency: Plugin,
    /// Each function of the import with the dependency's export it calls.
    functions: Vec<(String, Arc<Export>)>,
    /// Whether a parameter of one of them holds `flags`: the caller's read
    /// budget is then divided as for a result with flags (see
    /// [`crate::FLAGS_READ_DIVISOR`]), since it reads the arguments.
    pub(crate) flags_in_params: bool,
}

/// The most imports of one component that dependencies may provide.
pub const MAX_LINKED_IMPORTS: usize = 64;

/// The most plugins one call tree may hold (the invoked plugin and every
/// plugin it depends on, directly or not, each counted once).
pub const MAX_CALL_TREE: usize = 32;

/// The imports of `component` that no host provides, each matched to the
/// one dependency that exports it with the same functions and types.
pub(crate) fn links(
    engine: &wasmtime::Engine,
    component: &CompiledComponent,
    dependencies: &[Plugin],
) -> Result<Vec<Link>> {
    let imports = &component.requested().unsupported;
    // Bounded before any is matched: matching and type comparison cost
    // imports x functions.
    if imports.len() > MAX_LINKED_IMPORTS {
        return Err(Error::Config(format!(
            "it imports {} interfaces no host provides; dependencies provide at most {MAX_LINKED_IMPORTS}",
            imports.len()
        )));
    }
    let mut unprovided = Vec::new();
    let mut links: Vec<Link> = Vec::new();
    for import in imports {
        let providers: Vec<(&Plugin, String)> = dependencies
            .iter()
            .filter_map(|dependency| {
                let exported = dependency.component().interface_matching(import)?;
                Some((dependency, exported))
            })
            .collect();
        match providers.as_slice() {
            [] => unprovided.push(import.clone()),
            [(dependency, exported)] => {
                links.push(link(engine, component, import, dependency, exported)?);
                let functions: usize = links.iter().map(|link| link.functions.len()).sum();
                if functions > MAX_EXPORTED_FUNCTIONS {
                    return Err(Error::Config(format!(
                        "its imports from dependencies hold more than {MAX_EXPORTED_FUNCTIONS} functions; at most that many are linked"
                    )));
                }
            }
            several => {
                return Err(Error::Link {
                    import: import.clone(),
                    dependency: several
                        .iter()
                        .map(|(d, _)| d.settings().name.as_str())
                        .collect::<Vec<_>>()
                        .join(" and "),
                    reason: "more than one dependency exports it".into(),
                });
            }
        }
    }
    if !unprovided.is_empty() {
        return Err(Error::UnprovidedImports {
            imports: unprovided,
            dependencies: dependencies
                .iter()
                .map(|d| d.settings().name.clone())
                .collect(),
        });
    }
    Ok(links)
}

fn link(
    engine: &wasmtime::Engine,
    component: &CompiledComponent,
    import: &str,
    dependency: &Plugin,
    exported: &str,
) -> Result<Link> {
    let fail = |reason: String| Error::Link {
        import: import.to_owned(),
        dependency: dependency.settings().name.clone(),
        reason,
    };
    let component_type = component.inner.component.component_type();
    let Some(ComponentItem::ComponentInstance(wanted)) = component_type
        .get_import(engine, import)
        .map(|item| item.ty)
    else {
        return Err(fail("the import is not an interface".into()));
    };
    let mut functions = Vec::new();
    let mut flags_in_params = false;
    for (name, item) in wanted.exports(engine) {
        match item.ty {
            ComponentItem::ComponentFunc(ty) => {
                let export = dependency
                    .component()
                    .inner
                    .exports
                    .iter()
                    .find(|e| e.info.interface.as_deref() == Some(exported) && e.item == name)
                    .ok_or_else(|| fail(format!("{exported} has no function `{name}`")))?;
                // Checked before comparing: a type past the size and depth
                // budgets is never walked.
                if let Some(reason) = &export.info.not_invocable {
                    return Err(fail(format!(
                        "`{name}` cannot cross between plugins: {reason}"
                    )));
                }
                if !same_signature(&ty, &export.ty) {
                    return Err(fail(format!(
                        "`{name}` is `{}` in {exported}",
                        export.info.signature
                    )));
                }
                flags_in_params |= export.ty.params().any(|(_, ty)| contains_flags(&ty));
                if functions.len() >= MAX_EXPORTED_FUNCTIONS {
                    return Err(fail(format!(
                        "it holds more than {MAX_EXPORTED_FUNCTIONS} functions"
                    )));
                }
                functions.push((name.to_owned(), Arc::new(export.clone())));
            }
            ComponentItem::Resource(_) => {
                return Err(fail(format!(
                    "resource `{name}`: resources cannot cross between plugins"
                )));
            }
            _ => {}
        }
    }
    Ok(Link {
        import: import.to_owned(),
        dependency: dependency.clone(),
        functions,
        flags_in_params,
    })
}

/// Same parameter and result types, structurally (names of parameters may
/// differ).
fn same_signature(a: &ComponentFunc, b: &ComponentFunc) -> bool {
    a.params().len() == b.params().len()
        && a.params().zip(b.params()).all(|((_, x), (_, y))| x == y)
        && a.results().eq(b.results())
}

/// Whether an exported interface name serves an import: the same name, or
/// the same interface at a semver-compatible version no older than the one
/// imported (`pkg:ns/text@1.2.0` serves `pkg:ns/text@1.0.0`).
pub fn interface_serves(exported: &str, import: &str) -> bool {
    if exported == import {
        return true;
    }
    let (Some((export_name, export_version)), Some((import_name, import_version))) =
        (exported.split_once('@'), import.split_once('@'))
    else {
        return false;
    };
    let (Ok(have), Ok(want)) = (
        semver::Version::parse(export_version),
        semver::Version::parse(import_version),
    ) else {
        return false;
    };
    export_name == import_name
        && have >= want
        && have.pre.is_empty()
        && want.pre.is_empty()
        && match (want.major, want.minor) {
            (0, 0) => have == want,
            (0, minor) => have.major == 0 && have.minor == minor,
            (major, _) => have.major == major,
        }
}

/// Adds a forwarding host function for every function of every link.
pub(crate) fn add_to_linker(
    linker: &mut Linker<HostState>,
    links: &[Link],
) -> wasmtime::Result<()> {
    for link in links {
        let mut instance = linker.instance(&link.import)?;
        for (name, export) in &link.functions {
            let dependency = link.dependency.clone();
            let export = export.clone();
            instance.func_new_async(name, move |mut caller, _ty, params, results| {
                let dependency = dependency.clone();
                let export = export.clone();
                Box::new(async move {
                    forward(&mut caller, &dependency, &export, params, results).await
                })
            })?;
        }
    }
    Ok(())
}

/// What the stores of one invocation share.
pub(crate) struct CallTree {
    /// When the invocation ends, whatever is running.
    pub(crate) deadline: Instant,
    /// The invoked plugin's time limit, which set the deadline.
    pub(crate) timeout: Duration,
    /// Linear memory of all the tree's stores together.
    pub(crate) memory: Arc<TreeMemory>,
    /// The invocation's transcript; each dependency writes to it under its
    /// name.
    pub(crate) transcript: Transcript,
    /// The dependencies' instances, by plugin: taken out while one runs.
    instances: Mutex<Vec<Slot>>,
}

struct Slot {
    plugin: usize,
    running: Option<Running>,
    /// Fuel the dependency burnt in this invocation so far.
    fuel_used: u64,
}

struct Running {
    store: Store<HostState>,
    instance: Instance,
    /// When this dependency's time is up: its own limit from its first
    /// call, or the invocation's deadline if earlier.
    deadline: Instant,
    /// The limit behind `deadline`, for the error.
    timeout: Duration,
    _permit: OwnedSemaphorePermit,
}

impl CallTree {
    pub(crate) fn new(limits: &Limits, transcript: Transcript) -> CallTree {
        CallTree {
            deadline: Instant::now() + limits.timeout,
            timeout: limits.timeout,
            memory: Arc::new(TreeMemory {
                limit: limits.memory_bytes,
                used: AtomicU64::new(0),
            }),
            transcript,
            instances: Mutex::new(Vec::new()),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.instances.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The instance of `plugin` if one was started, and the fuel it used.
    fn take(&self, plugin: usize) -> (Option<Running>, u64) {
        let mut slots = self.slots();
        match slots.iter_mut().find(|slot| slot.plugin == plugin) {
            Some(slot) => (slot.running.take(), slot.fuel_used),
            None => {
                slots.push(Slot {
                    plugin,
                    running: None,
                    fuel_used: 0,
                });
                (None, 0)
            }
        }
    }

    fn put_back(&self, plugin: usize, running: Option<Running>, fuel_used: u64) {
        if let Some(slot) = self.slots().iter_mut().find(|slot| slot.plugin == plugin) {
            slot.running = running;
            slot.fuel_used = fuel_used;
        }
    }
}

/// Linear memory of every store of one call tree, against the invoked
/// plugin's memory limit.
#[derive(Debug)]
pub(crate) struct TreeMemory {
    limit: u64,
    used: AtomicU64,
}

impl TreeMemory {
    /// Takes `bytes` more, or says why not.
    pub(crate) fn grow(&self, bytes: u64) -> Result<(), String> {
        let limit = self.limit;
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|total| *total <= limit)
            })
            .map(|_| ())
            .map_err(|used| {
                format!(
                    "the plugins of this invocation would use {} of linear memory together; the invoked plugin's limit is {}",
                    format_bytes(used.saturating_add(bytes)),
                    format_bytes(limit)
                )
            })
    }
}

/// Calls `export` of `dependency` for the plugin in `caller`'s store: in the
/// dependency's instance of this invocation (started on the first call),
/// with the fuel the caller has left (at most the dependency's own limit),
/// and charges the caller what it burnt.
async fn forward(
    caller: &mut StoreContextMut<'_, HostState>,
    dependency: &Plugin,
    export: &Export,
    params: &[Val],
    results: &mut [Val],
) -> wasmtime::Result<()> {
    let Some(tree) = caller.data().tree.as_ref().and_then(Weak::upgrade) else {
        return Err(caller.data_mut().trap(Error::Host(
            "a dependency was called outside of an invocation".into(),
        )));
    };
    let name = &dependency.settings().name;
    let own = &dependency.settings().limits;
    let key = dependency.key();
    // What crosses the link is copied by the host, out of the caller's
    // memory into the dependency's and back: charged to the caller's fuel
    // like the instructions that would copy it (LINK_BYTES_PER_FUEL).
    let sent = copy_fuel(params);
    let caller_fuel = caller.get_fuel()?;
    if sent > caller_fuel {
        return Err(caller.data_mut().trap(Error::limit(
            LimitKind::Fuel,
            format!(
                "passing {} to {name} costs {sent} units of fuel; {caller_fuel} are left",
                format_bytes(sent.saturating_mul(LINK_BYTES_PER_FUEL))
            ),
        )));
    }
    let caller_fuel = caller_fuel - sent;
    let (running, fuel_used) = tree.take(key);
    let own_left = own.fuel.saturating_sub(fuel_used);
    let given = caller_fuel.min(own_left);
    let outcome = call(&tree, dependency, running, given, export, params, results).await;
    let (running, burnt, failure) = match outcome {
        Ok((running, burnt)) => (Some(running), burnt, None),
        Err((
            burnt,
            Error::LimitExceeded {
                kind: LimitKind::Fuel,
                ..
            },
        )) => {
            // Whose budget ran out: the caller's leftover, or the
            // dependency's own limit.
            let detail = if caller_fuel < own_left {
                format!("the invocation's fuel ran out here (its caller had {given} units left)")
            } else {
                format!(
                    "used all {given} units of fuel its own limit of {} leaves it in this invocation",
                    own.fuel
                )
            };
            (None, burnt, Some(Error::limit(LimitKind::Fuel, detail)))
        }
        Err((burnt, error)) => (None, burnt, Some(error)),
    };
    tree.put_back(key, running, fuel_used + burnt);
    let left = caller_fuel.saturating_sub(burnt);
    if let Some(error) = failure {
        caller.set_fuel(left)?;
        return Err(caller.data_mut().trap(error.in_dependency(name)));
    }
    let returned = copy_fuel(results);
    if returned > left {
        caller.set_fuel(0)?;
        return Err(caller.data_mut().trap(Error::limit(
            LimitKind::Fuel,
            format!(
                "the result of {name} ({}) costs {returned} units of fuel to pass back; {left} are left",
                format_bytes(returned.saturating_mul(LINK_BYTES_PER_FUEL))
            ),
        )));
    }
    caller.set_fuel(left - returned)?;
    Ok(())
}

/// Bytes the host copies across a link per unit of the caller's fuel: about
/// what the copy would cost a plugin in instructions doing it itself.
pub const LINK_BYTES_PER_FUEL: u64 = 8;

/// The fuel to copy `values` across a link: their bytes (a string's, each
/// element's, at least one per value) per [`LINK_BYTES_PER_FUEL`].
fn copy_fuel(values: &[Val]) -> u64 {
    values
        .iter()
        .map(value_bytes)
        .sum::<u64>()
        .div_ceil(LINK_BYTES_PER_FUEL)
}

/// What one value's copy moves, in bytes.
fn value_bytes(value: &Val) -> u64 {
    let all = |values: &[Val]| values.iter().map(value_bytes).sum::<u64>();
    match value {
        Val::Bool(_) | Val::S8(_) | Val::U8(_) => 1,
        Val::S16(_) | Val::U16(_) => 2,
        Val::S32(_) | Val::U32(_) | Val::Float32(_) | Val::Char(_) => 4,
        Val::S64(_) | Val::U64(_) | Val::Float64(_) => 8,
        Val::String(text) => 8 + text.len() as u64,
        Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => 8 + all(items),
        Val::Map(pairs) => {
            8 + pairs
                .iter()
                .map(|(k, v)| value_bytes(k) + value_bytes(v))
                .sum::<u64>()
        }
        Val::Record(fields) => fields
            .iter()
            .map(|(_, v)| value_bytes(v))
            .sum::<u64>()
            .max(1),
        Val::Variant(_, payload) => 4 + payload.as_deref().map_or(0, value_bytes),
        Val::Enum(_) => 4,
        Val::Option(inner) => 1 + inner.as_deref().map_or(0, value_bytes),
        Val::Result(Ok(payload) | Err(payload)) => 1 + payload.as_deref().map_or(0, value_bytes),
        Val::Flags(names) => 4 + names.len() as u64 / 8,
        Val::Resource(_) | Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_) => 4,
    }
}

/// Runs one call in the dependency's instance; the fuel it burnt, and the
/// instance to keep if the call succeeded. The call ends at the
/// dependency's deadline even while it waits in a host call (HTTP, kv),
/// where no epoch check runs.
async fn call(
    tree: &Arc<CallTree>,
    dependency: &Plugin,
    running: Option<Running>,
    fuel: u64,
    export: &Export,
    params: &[Val],
    results: &mut [Val],
) -> std::result::Result<(Running, u64), (u64, Error)> {
    let settings = dependency.settings();
    let limits = Limits {
        fuel,
        ..settings.limits.clone()
    };
    let mut running = match running {
        Some(mut running) => {
            if let Err(error) = running.store.set_fuel(fuel) {
                return Err((0, Error::Host(format!("{error:#}"))));
            }
            // This call's result is read within the budget its type requires.
            running
                .store
                .set_hostcall_fuel(dependency.read_budget(export));
            running
        }
        None => {
            let Ok(permit) = dependency.try_admit() else {
                return Err((
                    0,
                    Error::TooManyConcurrent {
                        limit: settings.limits.concurrency,
                    },
                ));
            };
            let own_deadline = Instant::now() + settings.limits.timeout;
            let (deadline, timeout) = if own_deadline < tree.deadline {
                (own_deadline, settings.limits.timeout)
            } else {
                (tree.deadline, tree.timeout)
            };
            let transcript = tree.transcript.labelled(&settings.name);
            let read_budget = dependency.read_budget(export);
            let mut store =
                dependency.store(transcript, read_budget, deadline, timeout, Some(tree));
            if let Err(error) = store.set_fuel(fuel) {
                return Err((0, Error::Host(format!("{error:#}"))));
            }
            // What instantiating burns is charged with the call.
            let instantiated = tokio::time::timeout_at(
                deadline.into(),
                dependency.pre().instantiate_async(&mut store),
            )
            .await;
            let burnt =
                |store: &Store<HostState>| fuel.saturating_sub(store.get_fuel().unwrap_or(0));
            match instantiated {
                Ok(Ok(instance)) => Running {
                    store,
                    instance,
                    deadline,
                    timeout,
                    _permit: permit,
                },
                Ok(Err(error)) => {
                    return Err((burnt(&store), failed(error, &mut store, &limits)));
                }
                Err(_elapsed) => return Err((burnt(&store), Error::deadline(timeout))),
            }
        }
    };
    let (deadline, timeout) = (running.deadline, running.timeout);
    let store = &mut running.store;
    let outcome = match running.instance.get_func(&mut *store, export.index) {
        Some(func) => {
            tokio::time::timeout_at(
                deadline.into(),
                func.call_async(&mut *store, params, results),
            )
            .await
        }
        None => Ok(Err(wasmtime::Error::msg(format!(
            "export `{}` vanished",
            export.info.name
        )))),
    };
    let burnt = fuel.saturating_sub(store.get_fuel().unwrap_or(0));
    match outcome {
        Ok(Ok(())) => Ok((running, burnt)),
        Ok(Err(error)) => Err((burnt, failed(error, store, &limits))),
        Err(_elapsed) => Err((burnt, Error::deadline(timeout))),
    }
}

fn failed(error: wasmtime::Error, store: &mut Store<HostState>, limits: &Limits) -> Error {
    let read_budget = store.hostcall_fuel();
    let transcript = store.data().transcript.clone();
    classify(error, store.data_mut(), &transcript, limits, read_budget)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_serves_the_same_or_a_compatible_newer_interface() {
        assert!(interface_serves("a:b/c@1.0.0", "a:b/c@1.0.0"));
        assert!(interface_serves("a:b/c", "a:b/c"));
        assert!(interface_serves("a:b/c@1.2.0", "a:b/c@1.0.0"));
        assert!(!interface_serves("a:b/c@1.0.0", "a:b/c@1.2.0"));
        assert!(!interface_serves("a:b/c@2.0.0", "a:b/c@1.0.0"));
        assert!(interface_serves("a:b/c@0.1.3", "a:b/c@0.1.0"));
        assert!(!interface_serves("a:b/c@0.2.0", "a:b/c@0.1.0"));
        assert!(!interface_serves("a:b/c@0.0.2", "a:b/c@0.0.1"));
        assert!(!interface_serves("a:b/d@1.0.0", "a:b/c@1.0.0"));
        assert!(!interface_serves("a:b/c@1.1.0-rc.1", "a:b/c@1.0.0"));
        assert!(!interface_serves("a:b/c", "a:b/c@1.0.0"));
    }

    #[test]
    fn the_tree_memory_is_one_budget() {
        let memory = TreeMemory {
            limit: 10,
            used: AtomicU64::new(0),
        };
        assert!(memory.grow(6).is_ok());
        assert!(memory.grow(5).is_err());
        assert!(memory.grow(4).is_ok());
        assert!(memory.grow(1).is_err());
        assert!(memory.grow(u64::MAX).is_err());
    }
}
