//! The store data of one instance: the WASI context, one context per
//! capability (see `capabilities`), the limits and what the host enforced.
//! The capabilities' host calls check their arguments against the
//! host-call limit here.

use crate::capabilities::Contexts;
use crate::error::Error;
use crate::limits::{LimitKind, Limits, format_bytes};
use crate::link::{CallTree, TreeMemory};
use crate::transcript::Transcript;
use std::sync::{Arc, Weak};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "warden:plugin/host",
        imports: { default: async | trappable },
    });
}

/// Everything one invocation's store holds.
pub(crate) struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    /// One context per granted capability.
    pub(crate) caps: Contexts,
    pub(crate) limiter: Limiter,
    pub(crate) transcript: Transcript,
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

    /// Traps with a `host-call` limit error when an argument of `bytes` is
    /// over the limit.
    pub(crate) fn check_argument(&mut self, what: &str, bytes: usize) -> wasmtime::Result<()> {
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
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
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
