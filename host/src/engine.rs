//! The engine: one configured wasmtime engine, its epoch ticker, its compiled-code
//! cache; and the compiled, introspected components it produces.

use crate::cache::{CacheOutcome, CompileCache};
use crate::capabilities::Requested;
use crate::error::{Error, Result};
use crate::exports::{Export, FunctionInfo, exports};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Config, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig, Strategy};

/// How often the epoch advances: the granularity of deadlines.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Engine-wide settings. Everything per plugin lives in [`crate::Limits`].
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// The secret that authenticates cache entries; by default a random key
    /// kept in `cache_dir/cache.key`.
    pub cache_key: Option<[u8; 32]>,
    /// Maximum wasm stack of an invocation, in bytes. Engine-wide because
    /// compiled code depends on it; deep recursion past it is a `stack_overflow`.
    pub max_wasm_stack: usize,
    /// The largest linear memory any plugin may be allowed; per-plugin
    /// [`crate::Limits::memory_bytes`] must not exceed it.
    pub max_memory_bytes: u64,
    /// Pre-allocated slots for running instances (pooling allocator with
    /// copy-on-write memory images); `None` allocates on demand.
    pub pooled_instances: Option<u32>,
    /// Compile only to check components that this engine never runs (a
    /// publish's check): each compile on the calling thread alone, without
    /// Cranelift's optimizations, and no pool. A compile then takes one
    /// core, never the threads another compile waits for.
    pub check_only: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            cache_dir: None,
            cache_key: None,
            max_wasm_stack: 512 << 10,
            max_memory_bytes: 1 << 30,
            pooled_instances: Some(128),
            check_only: false,
        }
    }
}

/// Bytes at the start of each pooled linear memory kept resident (zeroed in
/// place) between instances.
pub const KEEP_RESIDENT_MEMORY_BYTES: usize = 128 << 10;
/// Bytes of each pooled table kept resident between instances.
pub const KEEP_RESIDENT_TABLE_BYTES: usize = 64 << 10;

/// Linear memories the pool holds per instance slot.
pub const MEMORIES_PER_SLOT: u32 = 2;
/// Tables the pool holds per instance slot.
pub const TABLES_PER_SLOT: u32 = 8;
/// The most linear memories one component may define (all its core
/// instances together).
pub const MAX_MEMORIES_PER_COMPONENT: u32 = 8;
/// The most tables one component may define.
pub const MAX_TABLES_PER_COMPONENT: u32 = 64;
/// The most core instances one component may create. The pool holds this
/// many per instance slot (a count, not reserved memory), so core instances
/// run out only after instance slots do.
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 64;

/// What running instances take from the engine's pool: component instances,
/// linear memories and tables. A component may define up to
/// [`MAX_MEMORIES_PER_COMPONENT`] memories while the pool holds only
/// [`MEMORIES_PER_SLOT`] per slot (tables likewise), so a share of the pool
/// that counts instances alone does not bound the rest: an embedder that
/// shares the pool out counts all three ([`PoolUse::of_slots`] is a share's
/// worth of each, [`crate::Plugin::pool_use`] what one invocation takes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolUse {
    /// Component instances (plugins of a call tree).
    pub instances: u32,
    /// Linear memories defined by their core instances.
    pub memories: u32,
    /// Tables defined by their core instances.
    pub tables: u32,
}

impl PoolUse {
    /// What `slots` instance slots of the pool hold: the whole pool for its
    /// size, or a share of it. Shares that add up to at most the pool's
    /// slots add up to at most its memories and tables too.
    pub fn of_slots(slots: u32) -> PoolUse {
        PoolUse {
            instances: slots,
            memories: slots.saturating_mul(MEMORIES_PER_SLOT),
            tables: slots.saturating_mul(TABLES_PER_SLOT),
        }
    }

    /// Both together.
    pub fn plus(self, other: PoolUse) -> PoolUse {
        PoolUse {
            instances: self.instances.saturating_add(other.instances),
            memories: self.memories.saturating_add(other.memories),
            tables: self.tables.saturating_add(other.tables),
        }
    }

    /// Whether this fits within `capacity` in every kind.
    pub fn fits(&self, capacity: &PoolUse) -> bool {
        self.instances <= capacity.instances
            && self.memories <= capacity.memories
            && self.tables <= capacity.tables
    }

    /// What one instance of `component` takes: its memories and tables as
    /// its core modules define them, or the most a component may have when
    /// that cannot be told before instantiation (imported core modules).
    fn of_component(component: &Component) -> PoolUse {
        match component.resources_required() {
            Some(required) => PoolUse {
                instances: 1,
                memories: required.num_memories,
                tables: required.num_tables,
            },
            None => PoolUse {
                instances: 1,
                memories: MAX_MEMORIES_PER_COMPONENT,
                tables: MAX_TABLES_PER_COMPONENT,
            },
        }
    }
}

impl std::fmt::Display for PoolUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} instances, {} memories, {} tables",
            self.instances, self.memories, self.tables
        )
    }
}

/// The pooling allocator's configuration for `slots` instances of memories
/// up to `max_memory_bytes`: what [`Engine::new`] uses, public so that a
/// benchmark of raw wasmtime can run on the same pool.
pub fn pool_config(slots: u32, max_memory_bytes: u64) -> PoolingAllocationConfig {
    let capacity = PoolUse::of_slots(slots);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(capacity.instances)
        .total_core_instances(slots.saturating_mul(MAX_CORE_INSTANCES_PER_COMPONENT))
        .total_memories(capacity.memories)
        .total_tables(capacity.tables)
        .total_stacks(slots)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
        .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
        .max_memory_size(usize::try_from(max_memory_bytes).unwrap_or(usize::MAX))
        .table_elements(100_000)
        .max_unused_warm_slots(slots.min(32))
        // A slot's first pages are zeroed in place when it is reused
        // instead of being given back with madvise: every madvise flushes
        // the TLB of every core running this process (an IPI each), and the
        // next instance faults the pages in again. Measured in BENCHMARKS.md
        // (HTTP invoke path).
        .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY_BYTES)
        .table_keep_resident(KEEP_RESIDENT_TABLE_BYTES)
        // Not `PAGEMAP_SCAN`, though it would reset only the pages an
        // instance wrote (1.7x the HTTP throughput, BENCHMARKS.md): in
        // wasmtime 48 its scan looks only at present pages, so a written page
        // that is swapped out or being migrated when the slot is released is
        // neither reset nor given back, and the next instance in the slot, of
        // any tenant, reads it (a stale table entry is a dangling function
        // reference). bytecodealliance/wasmtime#14357 is the fix, not yet
        // released. Pinned off, since wasmtime may make `Auto` the default.
        .pagemap_scan(wasmtime::Enabled::No);
    pool
}

/// A configured wasmtime engine shared by every plugin it loads. Cheap to clone.
///
/// It ticks an epoch every 10ms on a background thread (for deadlines) until
/// the last clone is dropped.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    wasmtime: wasmtime::Engine,
    config: EngineConfig,
    cache: Option<CompileCache>,
    fingerprint: String,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl Engine {
    /// Creates an engine.
    pub fn new(config: EngineConfig) -> Result<Engine> {
        let mut wasm = Config::new();
        wasm.strategy(Strategy::Cranelift)
            .cranelift_opt_level(OptLevel::Speed)
            .consume_fuel(true)
            .epoch_interruption(true)
            // Wasm backtraces stay on (wasmtime's default, pinned): besides
            // their use in trap reports, they tell a host call's exhausted read
            // budget from the result's (`plugin::read_budget_exhausted`).
            .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(20))
            .max_wasm_stack(config.max_wasm_stack)
            // Room for host calls on top of the wasm stack.
            .async_stack_size(config.max_wasm_stack + (1 << 20))
            .wasm_component_model(true)
            .wasm_relaxed_simd(false)
            .wasm_wide_arithmetic(false)
            .wasm_custom_page_sizes(false)
            .parallel_compilation(true);
        if config.check_only {
            wasm.parallel_compilation(false)
                .cranelift_opt_level(OptLevel::None);
        } else if let Some(slots) = config.pooled_instances {
            let pool = pool_config(slots, config.max_memory_bytes);
            wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let wasmtime = wasmtime::Engine::new(&wasm)
            .map_err(|e| Error::Config(format!("wasmtime engine: {e:#}")))?;

        let fingerprint = {
            let mut hasher = ShaHasher(Sha256::new());
            "warden-host engine v1".hash(&mut hasher);
            env!("CARGO_PKG_VERSION").hash(&mut hasher);
            wasmtime.precompile_compatibility_hash().hash(&mut hasher);
            config.max_wasm_stack.hash(&mut hasher);
            config.check_only.hash(&mut hasher);
            hex::encode(&hasher.0.finalize()[..8])
        };
        let cache = match &config.cache_dir {
            Some(dir) => Some(CompileCache::open(dir, config.cache_key)?),
            None => None,
        };

        let ticker_stop = Arc::new(AtomicBool::new(false));
        {
            let engine = wasmtime.clone();
            let stop = ticker_stop.clone();
            std::thread::Builder::new()
                .name("warden-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| Error::io("starting the epoch thread", e))?;
        }

        Ok(Engine {
            inner: Arc::new(EngineInner {
                wasmtime,
                config,
                cache,
                fingerprint,
                ticker_stop,
            }),
        })
    }

    pub(crate) fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.wasmtime
    }

    /// The engine's settings.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Identifies the compiled-code format of this engine (wasmtime version,
    /// settings); part of every cache key.
    pub fn fingerprint(&self) -> &str {
        &self.inner.fingerprint
    }

    /// Validates, compiles (or loads from the cache) and introspects a component.
    ///
    /// This is CPU-bound (seconds for large components on a cache miss); call it
    /// from `spawn_blocking` in async code.
    pub fn compile(&self, bytes: &[u8]) -> Result<CompiledComponent> {
        self.compile_with(bytes, true)
    }

    /// Like [`Engine::compile`], but neither reads nor writes the compiled-code
    /// cache: for checking a component that may never run (a release waiting
    /// for approval), whose compiled code is not worth keeping.
    pub fn compile_uncached(&self, bytes: &[u8]) -> Result<CompiledComponent> {
        self.compile_with(bytes, false)
    }

    fn compile_with(&self, bytes: &[u8], cached: bool) -> Result<CompiledComponent> {
        check_header(bytes)?;
        let digest = crate::Digest::of(bytes);
        let (component, cache) = if cached {
            self.compile_or_load(bytes, digest.hex())?
        } else {
            (self.compile_fresh(bytes)?, CacheOutcome::Disabled)
        };
        let exports = exports(&component)?;
        let pool_use = PoolUse::of_component(&component);
        let engine = self.wasmtime();
        let requested = Requested::classify(
            component
                .component_type()
                .imports(engine)
                .map(|(name, _)| name),
        );
        Ok(CompiledComponent {
            inner: Arc::new(CompiledInner {
                component,
                digest,
                size: bytes.len() as u64,
                exports,
                requested,
                cache,
                pool_use,
            }),
        })
    }

    fn compile_or_load(&self, bytes: &[u8], digest: &str) -> Result<(Component, CacheOutcome)> {
        let Some(cache) = &self.inner.cache else {
            return Ok((self.compile_fresh(bytes)?, CacheOutcome::Disabled));
        };
        let fingerprint = self.fingerprint();
        let mut outcome = CacheOutcome::Miss;
        match cache.load(digest, fingerprint) {
            Ok(Some(code)) => {
                // SAFETY: `code` carries a valid HMAC under our secret key over
                // (digest, fingerprint, code), so it was produced by
                // `Component::serialize` of this engine configuration, from the
                // component with this digest.
                match unsafe { Component::deserialize(self.wasmtime(), &code) } {
                    Ok(component) => return Ok((component, CacheOutcome::Hit)),
                    Err(e) => {
                        tracing::warn!(digest, "cached component did not load ({e}); recompiling");
                        outcome = CacheOutcome::Rejected;
                    }
                }
            }
            Ok(None) => {}
            Err(()) => outcome = CacheOutcome::Rejected,
        }
        let component = self.compile_fresh(bytes)?;
        match component.serialize() {
            Ok(code) => {
                if let Err(e) = cache.store(digest, fingerprint, &code) {
                    tracing::warn!(digest, "could not cache the compiled component: {e}");
                }
            }
            Err(e) => tracing::warn!(digest, "could not serialize the compiled component: {e}"),
        }
        Ok((component, outcome))
    }

    fn compile_fresh(&self, bytes: &[u8]) -> Result<Component> {
        Component::new(self.wasmtime(), bytes)
            .map_err(|e| Error::InvalidComponent(format!("{e:#}")))
    }
}

/// Refuses what is not a component before wasmtime sees it, with a precise reason.
fn check_header(bytes: &[u8]) -> Result<()> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(Error::NotWasm);
    }
    match [bytes[4], bytes[5], bytes[6], bytes[7]] {
        [1, 0, 0, 0] => Err(Error::CoreModule),
        [0x0d, 0, 1, 0] => Ok(()),
        [a, b, c, d] => Err(Error::InvalidComponent(format!(
            "unsupported binary version {:#x} (layer {:#x})",
            u16::from_le_bytes([a, b]),
            u16::from_le_bytes([c, d])
        ))),
    }
}

/// Feeds `Hash` into SHA-256 so that fingerprints are stable across builds.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        unreachable!("only the SHA-256 digest is used")
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// A validated, compiled component with what it exports and imports. Cheap to
/// clone; independent of grants and limits (see [`crate::Plugin`]).
#[derive(Clone)]
pub struct CompiledComponent {
    pub(crate) inner: Arc<CompiledInner>,
}

pub(crate) struct CompiledInner {
    pub(crate) component: Component,
    pub(crate) digest: crate::Digest,
    pub(crate) size: u64,
    pub(crate) exports: Vec<Export>,
    pub(crate) requested: Requested,
    pub(crate) cache: CacheOutcome,
    pub(crate) pool_use: PoolUse,
}

impl CompiledComponent {
    /// The digest of the component bytes.
    pub fn digest(&self) -> &crate::Digest {
        &self.inner.digest
    }

    /// Size of the component in bytes.
    pub fn size(&self) -> u64 {
        self.inner.size
    }

    /// Every exported function, in export order.
    pub fn functions(&self) -> impl ExactSizeIterator<Item = &FunctionInfo> {
        self.inner.exports.iter().map(|e| &e.info)
    }

    /// The capabilities the component's imports request.
    pub fn requested(&self) -> &Requested {
        &self.inner.requested
    }

    /// What one instance of it takes from the engine's pool.
    pub fn pool_use(&self) -> PoolUse {
        self.inner.pool_use
    }

    /// Whether this came from the compiled-code cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.inner.cache
    }

    /// The exported interface that serves `import` (the same name, or a
    /// semver-compatible newer version of it), if one does.
    pub fn interface_matching(&self, import: &str) -> Option<String> {
        self.inner
            .exports
            .iter()
            .filter_map(|e| e.info.interface.as_deref())
            .filter(|exported| crate::link::interface_serves(exported, import))
            .max_by_key(|exported| *exported == import)
            .map(str::to_owned)
    }

    pub(crate) fn find(&self, name: &str) -> Result<&Export> {
        let exports = &self.inner.exports;
        exports
            .iter()
            .find(|e| e.info.name == name)
            // Also accept the full `interface#function` form.
            .or_else(|| {
                let (interface, function) = name.split_once('#')?;
                exports.iter().find(|e| {
                    e.info.interface.as_deref() == Some(interface)
                        && e.info.name.ends_with(&format!(".{function}"))
                })
            })
            .ok_or_else(|| Error::UnknownFunction {
                name: name.to_owned(),
                available: exports
                    .iter()
                    .filter(|e| e.info.not_invocable.is_none())
                    .map(|e| e.info.name.clone())
                    .collect(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_slots_are_not_reset_by_pagemap_scan() {
        // See `pool_config`: wasmtime 48's scan leaves written pages that are
        // not present (swapped, migrating) for the next instance.
        let pool = pool_config(4, 1 << 30);
        assert_eq!(pool.get_pagemap_scan(), wasmtime::Enabled::No);
        assert_eq!(pool.get_memory_keep_resident(), KEEP_RESIDENT_MEMORY_BYTES);
    }

    #[test]
    fn headers_are_checked_before_compiling() {
        assert!(matches!(check_header(b""), Err(Error::NotWasm)));
        assert!(matches!(
            check_header(b"#!/bin/sh\necho hi"),
            Err(Error::NotWasm)
        ));
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0"),
            Err(Error::CoreModule)
        ));
        assert!(matches!(check_header(b"\0asm\x0d\0\x01\0"), Ok(())));
        assert!(matches!(
            check_header(b"\0asm\x0c\0\x01\0"),
            Err(Error::InvalidComponent(_))
        ));
    }
}
