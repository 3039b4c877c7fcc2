//! `kv`: a durable key-value namespace owned by the plugin alone
//! (`warden:plugin/kv`), with quotas of keys and bytes. The storage is the
//! embedder's [`KvStore`].

pub(crate) mod store;

use super::{Instance, Unit};
use crate::error::Error;
use crate::limits::format_bytes;
use crate::state::HostState;
use crate::state::bindings::warden::plugin::kv;
use std::sync::Arc;
use store::{KvError, KvQuota, KvStore};
use wasmtime::component::{HasSelf, Linker};

/// Keys longer than this are refused with `too-large`.
pub(crate) const MAX_KEY_BYTES: usize = 512;

/// The `kv` capability.
pub(crate) struct Kv;

/// A store and the plugin's namespace in it.
pub(crate) type Namespace = Option<(Arc<dyn KvStore>, String)>;

impl Unit for Kv {
    const NAME: &'static str = "kv";
    const DESCRIPTION: &'static str = "a durable key-value namespace of its own";
    const INTERFACES: &'static [(&'static str, &'static [&'static str])] =
        &[("warden:plugin", &["kv"])];
    const GRANT: Option<&'static str> = Some("kv");
    const NEEDS_GRANT: bool = true;

    /// Whether it is granted.
    type Grant = bool;
    /// The store and the plugin's namespace in it; required if granted.
    type Backend = Namespace;
    type Context = Namespace;

    fn grant(grant: &mut bool, argument: Option<&str>) -> Result<(), String> {
        super::grant_bare("kv", grant, argument)
    }

    fn grant_texts(grant: &bool) -> Vec<String> {
        grant.then(|| "kv".to_owned()).into_iter().collect()
    }

    fn granted(grant: &bool) -> bool {
        *grant
    }

    fn check(_: &bool, backend: &Namespace) -> Result<(), String> {
        match backend {
            Some(_) => Ok(()),
            None => Err("kv is granted but no key-value store was given".into()),
        }
    }

    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        kv::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)
    }

    fn context(_: &bool, backend: &Namespace, _: &mut Instance<'_>) -> Namespace {
        backend.clone()
    }
}

impl HostState {
    fn kv(&mut self) -> wasmtime::Result<(Arc<dyn KvStore>, String)> {
        match &self.caps.kv {
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
        let quota = KvQuota::of(&self.limits);
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

#[cfg(test)]
mod tests {
    use super::super::Grants;

    #[test]
    fn the_grant_round_trips_through_its_text() {
        let grants = Grants::parse(["kv"]).unwrap();
        assert!(grants.kv && !grants.config);
        assert_eq!(grants.list(), ["kv"]);
        assert_eq!(
            Grants::parse(grants.list().iter().map(String::as_str)).unwrap(),
            grants
        );
        assert!(Grants::parse(["kv:other"]).is_err());
    }
}
