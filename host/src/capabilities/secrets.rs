//! `secrets`: credentials an admin set for the plugin
//! (`warden:plugin/secrets`), each granted by name (`secret:STRIPE_KEY`).
//! The values live in the embedder's [`SecretStore`] (the registry keeps
//! them encrypted); a name that is not granted reads as none, and the
//! transcript says so without any value.

use super::{Instance, Unit};
use crate::error::Error;
use crate::state::HostState;
use crate::state::bindings::warden::plugin::secrets;
use crate::transcript::LogLevel;
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use wasmtime::component::{HasSelf, Linker};

/// The longest secret name.
pub const MAX_SECRET_NAME: usize = 128;

/// Whether `name` can name a secret: ASCII letters, digits and `_`, not
/// starting with a digit, at most [`MAX_SECRET_NAME`] bytes.
pub fn valid_secret_name(name: &str) -> bool {
    name.len() <= MAX_SECRET_NAME
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Why a secret could not be read. Never carries a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The store cannot be reached or cannot decrypt.
    #[error("the secret store is unavailable: {0}")]
    Unavailable(String),
}

/// Where secret values come from, one namespace per plugin (`org/name`).
/// Implementations must be safe to call from many invocations at once.
#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// The value of secret `name` of plugin `namespace`, if one is set.
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<String>, SecretError>;
}

/// A [`SecretStore`] in memory: for `warden run` and tests.
#[derive(Debug, Default)]
pub struct MemorySecretStore {
    values: Mutex<BTreeMap<(String, String), String>>,
}

impl MemorySecretStore {
    /// An empty store.
    pub fn new() -> MemorySecretStore {
        MemorySecretStore::default()
    }

    /// Sets secret `name` of plugin `namespace`.
    pub fn set(&self, namespace: &str, name: &str, value: &str) {
        self.values
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((namespace.to_owned(), name.to_owned()), value.to_owned());
    }
}

#[async_trait]
impl SecretStore for MemorySecretStore {
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<String>, SecretError> {
        let values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        Ok(values
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned())
    }
}

/// The `secrets` capability.
pub(crate) struct Secrets;

/// A store and the plugin's namespace in it.
pub(crate) type Namespace = Option<(Arc<dyn SecretStore>, String)>;

/// One instance's secrets: where to read, and which names it may.
pub(crate) struct SecretsContext {
    source: Namespace,
    granted: BTreeSet<String>,
}

impl Unit for Secrets {
    const NAME: &'static str = "secrets";
    const DESCRIPTION: &'static str = "read the secrets an admin set, granted by name";
    const INTERFACES: &'static [(&'static str, &'static [&'static str])] =
        &[("warden:plugin", &["secrets"])];
    const GRANT: Option<&'static str> = Some("secret:NAME");
    const NEEDS_GRANT: bool = true;

    /// The names granted.
    type Grant = BTreeSet<String>;
    /// The store and the plugin's namespace in it; required if granted.
    type Backend = Namespace;
    type Context = SecretsContext;

    fn grant(names: &mut BTreeSet<String>, argument: Option<&str>) -> Result<(), String> {
        let name = argument.unwrap_or_default();
        if !valid_secret_name(name) {
            return Err(format!(
                "expected secret:NAME, a name of at most {MAX_SECRET_NAME} ASCII letters, digits and _ not starting with a digit"
            ));
        }
        names.insert(name.to_owned());
        Ok(())
    }

    fn grant_texts(names: &BTreeSet<String>) -> Vec<String> {
        super::named_grant_texts("secret", names)
    }

    fn granted(names: &BTreeSet<String>) -> bool {
        !names.is_empty()
    }

    fn check(_: &BTreeSet<String>, backend: &Namespace) -> Result<(), String> {
        match backend {
            Some(_) => Ok(()),
            None => Err("secrets are granted but no secret store was given".into()),
        }
    }

    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        secrets::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)
    }

    fn context(
        names: &BTreeSet<String>,
        backend: &Namespace,
        _: &mut Instance<'_>,
    ) -> SecretsContext {
        SecretsContext {
            source: backend.clone(),
            granted: names.clone(),
        }
    }
}

impl secrets::Host for HostState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        self.check_argument("a secret name", name.len())?;
        if !self.caps.secrets.granted.contains(&name) {
            let shown: String = name.escape_debug().take(MAX_SECRET_NAME).collect();
            // Best effort: a full transcript does not stop the plugin here.
            let _ = self.transcript.log(
                LogLevel::Warn,
                format!("secret \"{shown}\" is not granted to this release; it reads as none"),
            );
            return Ok(None);
        }
        let Some((store, namespace)) = self.caps.secrets.source.clone() else {
            return Err(self.trap(Error::Host(
                "secrets are linked but no store is configured".into(),
            )));
        };
        match store.get(&namespace, &name).await {
            Ok(value) => Ok(value),
            Err(error) => Err(self.trap(Error::Host(format!("secret {name}: {error}")))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Grants;
    use super::*;

    #[test]
    fn the_grant_round_trips_through_its_text() {
        let grants = Grants::parse(["secret:STRIPE_KEY", "secret:_b2"]).unwrap();
        assert_eq!(grants.list(), ["secret:STRIPE_KEY", "secret:_b2"]);
        assert_eq!(
            Grants::parse(grants.list().iter().map(String::as_str)).unwrap(),
            grants
        );
        let longest = format!("secret:{}", "A".repeat(MAX_SECRET_NAME));
        Grants::parse([longest.as_str()]).unwrap();
        let too_long = format!("secret:{}", "A".repeat(MAX_SECRET_NAME + 1));
        for bad in [
            "secret",
            "secret:",
            "secret:1X",
            "secret:A-B",
            "secret:A\u{202e}",
            &too_long,
        ] {
            assert!(Grants::parse([bad]).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_memory_store_keeps_namespaces_apart() {
        let store = MemorySecretStore::new();
        store.set("acme/a", "KEY", "one");
        assert_eq!(
            store.get("acme/a", "KEY").await.unwrap().as_deref(),
            Some("one")
        );
        assert_eq!(store.get("acme/b", "KEY").await.unwrap(), None);
    }
}
