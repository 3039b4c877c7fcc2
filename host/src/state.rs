//! The store data of one invocation and the host side of `warden:plugin`:
//! log, config and kv, each checking the host-call argument limit.

use crate::error::Error;
use crate::http::HttpPolicy;
use crate::kv::{KvError, KvStore};
use crate::limits::{LimitKind, Limits, format_bytes};
use crate::link::{CallTree, TreeMemory};
use crate::transcript::{LogLevel, Transcript};
use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "warden:plugin/host",
        imports: { default: async | trappable },
    });
}

use bindings::warden::plugin::{config, kv, log};

/// Keys longer than this are refused with `too-large`.
pub(crate) const MAX_KEY_BYTES: usize = 512;

/// Everything one invocation's store holds.
pub(crate) struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) http_ctx: WasiHttpCtx,
    pub(crate) http: HttpPolicy,
    pub(crate) limiter: Limiter,
    pub(crate) transcript: Transcript,
    pub(crate) kv: Option<(Arc<dyn KvStore>, String)>,
    pub(crate) config: Arc<BTreeMap<String, String>>,
    pub(crate) limits: Limits,
    /// The first limit the host itself enforced (the guest may have swallowed
    /// the failure and trapped differently afterwards).
    pub(crate) fault: Option<Error>,
    /// The invocation's call tree, for a plugin linked to dependencies.
    pub(crate) tree: Option<Weak<CallTree>>,
}

impl HostState {
    /// Records `error` as the cause and turns it into a trap.
    pub(crate) fn trap(&mut self, error: Error) -> wasmtime::Error {
        let message = error.to_string();
        if self.fault.is_none() {
            self.fault = Some(error);
        }
        wasmtime::Error::msg(message)
    }

    fn check_argument(&mut self, what: &str, bytes: usize) -> wasmtime::Result<()> {
        let limit = self.limits.host_call_bytes;
        if bytes as u64 > limit {
            return Err(self.trap(Error::limit(
                LimitKind::HostCall,
                format!(
                    "{what} of {} exceeds {}",
                    format_bytes(bytes as u64),
                    format_bytes(limit)
                ),
            )));
        }
        Ok(())
    }

    fn kv(&mut self) -> wasmtime::Result<(Arc<dyn KvStore>, String)> {
        match &self.kv {
            Some((store, namespace)) => Ok((store.clone(), namespace.clone())),
            None => Err(self.trap(Error::Host(
                "kv is linked but no store is configured".into(),
            ))),
        }
    }

    fn check_key(&mut self, key: &str) -> wasmtime::Result<Result<(), kv::Error>> {
        self.check_argument("a kv key", key.len())?;
        if key.len() > MAX_KEY_BYTES {
            return Ok(Err(kv::Error::TooLarge(format!(
                "the key is {} bytes; keys may have at most {MAX_KEY_BYTES}",
                key.len()
            ))));
        }
        Ok(Ok(()))
    }
}

fn to_wit(error: KvError) -> kv::Error {
    match error {
        KvError::TooLarge(m) => kv::Error::TooLarge(m),
        KvError::QuotaExceeded(m) => kv::Error::QuotaExceeded(m),
        KvError::Unavailable(m) => kv::Error::Unavailable(m),
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.http,
            table: &mut self.table,
            ctx: &mut self.http_ctx,
        }
    }
}

impl log::Host for HostState {
    async fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        self.check_argument("a log message", message.len())?;
        let level = match level {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        let logged = self.transcript.log(level, message);
        logged.map_err(|error| self.trap(error))
    }
}

impl config::Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.check_argument("a config key", key.len())?;
        Ok(self.config.get(&key).cloned())
    }

    async fn get_all(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

impl kv::Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, kv::Error>> {
        if let Err(e) = self.check_key(&key)? {
            return Ok(Err(e));
        }
        let (store, namespace) = self.kv()?;
        Ok(store.get(&namespace, &key).await.map_err(to_wit))
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), kv::Error>> {
        if let Err(e) = self.check_key(&key)? {
            return Ok(Err(e));
        }
        self.check_argument("a kv value", value.len())?;
        let limit = self.limits.kv_value_bytes;
        if value.len() as u64 > limit {
            return Ok(Err(kv::Error::TooLarge(format!(
                "the value is {}; values may have at most {}",
                format_bytes(value.len() as u64),
                format_bytes(limit)
            ))));
        }
        let (store, namespace) = self.kv()?;
        let quota = crate::kv::KvQuota::of(&self.limits);
        Ok(store
            .set(&namespace, &key, &value, quota)
            .await
            .map_err(to_wit))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, kv::Error>> {
        if let Err(e) = self.check_key(&key)? {
            return Ok(Err(e));
        }
        let (store, namespace) = self.kv()?;
        Ok(store.delete(&namespace, &key).await.map_err(to_wit))
    }

    async fn list_keys(
        &mut self,
        prefix: String,
    ) -> wasmtime::Result<Result<Vec<String>, kv::Error>> {
        self.check_argument("a kv prefix", prefix.len())?;
        let (store, namespace) = self.kv()?;
        let limit = self.limits.kv_keys;
        Ok(store
            .list_keys(&namespace, &prefix, limit)
            .await
            .map_err(to_wit))
    }
}

/// Enforces the memory, table and instance limits, recording which one refused.
pub(crate) struct Limiter {
    pub(crate) limits: Limits,
    pub(crate) hit: Option<(LimitKind, String)>,
    /// Bytes of all linear memories together (initial sizes count as growth from 0).
    pub(crate) memory_bytes: u64,
    /// Elements of all tables together.
    pub(crate) table_elements: u64,
    /// The linear memory of the whole call tree, when the plugin is linked
    /// to dependencies.
    pub(crate) tree: Option<Arc<TreeMemory>>,
}

impl Limiter {
    pub(crate) fn new(limits: Limits, tree: Option<Arc<TreeMemory>>) -> Limiter {
        Limiter {
            limits,
            hit: None,
            memory_bytes: 0,
            table_elements: 0,
            tree,
        }
    }
}

impl Limiter {
    fn refuse(&mut self, kind: LimitKind, detail: String) -> wasmtime::Result<bool> {
        tracing::debug!(%kind, "limit refused: {detail}");
        if self.hit.is_none() {
            self.hit = Some((kind, detail));
        }
        Ok(false)
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let limit = self.limits.memory_bytes;
        let total = (self.memory_bytes + desired as u64).saturating_sub(current as u64);
        if total > limit {
            return self.refuse(
                LimitKind::Memory,
                format!(
                    "the plugin asked for {} of linear memory in all (a memory growing from {} to {}); the limit is {}",
                    format_bytes(total),
                    format_bytes(current as u64),
                    format_bytes(desired as u64),
                    format_bytes(limit)
                ),
            );
        }
        if let Some(tree) = &self.tree
            && let Err(detail) = tree.grow(desired.saturating_sub(current) as u64)
        {
            return self.refuse(LimitKind::Memory, detail);
        }
        self.memory_bytes = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let limit = self.limits.table_elements;
        let total = (self.table_elements + desired as u64).saturating_sub(current as u64);
        if total > limit {
            return self.refuse(
                LimitKind::Tables,
                format!(
                    "the tables would hold {total} elements in all (one growing from {current} to {desired}); the limit is {limit}"
                ),
            );
        }
        self.table_elements = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.limits.instances as usize
    }

    fn tables(&self) -> usize {
        self.limits.tables as usize
    }

    fn memories(&self) -> usize {
        self.limits.memories as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn memory_and_tables_are_limited_in_total_across_all_of_them() {
        let limits = Limits {
            memory_bytes: 10 << 20,
            table_elements: 100,
            ..Limits::default()
        };
        let mut limiter = Limiter::new(limits, None);
        assert!(limiter.memory_growing(0, 6 << 20, None).unwrap());
        assert!(limiter.memory_growing(6 << 20, 8 << 20, None).unwrap());
        // A second memory: 8 + 3 MiB > 10 MiB.
        assert!(!limiter.memory_growing(0, 3 << 20, None).unwrap());
        assert_eq!(
            limiter.hit.as_ref().map(|(kind, _)| *kind),
            Some(LimitKind::Memory)
        );
        assert!(limiter.memory_growing(0, 2 << 20, None).unwrap());

        assert!(limiter.table_growing(0, 60, None).unwrap());
        assert!(!limiter.table_growing(0, 41, None).unwrap());
        assert!(limiter.table_growing(0, 40, None).unwrap());
    }
}
