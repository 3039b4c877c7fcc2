//! `config`: read-only configuration values an admin set for the plugin
//! (`warden:plugin/config`).

use super::{Instance, Unit};
use crate::state::HostState;
use crate::state::bindings::warden::plugin::config;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// The `config` capability.
pub(crate) struct Config;

impl Unit for Config {
    const NAME: &'static str = "config";
    const DESCRIPTION: &'static str = "read the configuration values an admin set";
    const INTERFACES: &'static [(&'static str, &'static [&'static str])] =
        &[("warden:plugin", &["config"])];
    const GRANT: Option<&'static str> = Some("config");
    const NEEDS_GRANT: bool = true;

    /// Whether it is granted.
    type Grant = bool;
    /// The plugin's values, by key.
    type Backend = Arc<BTreeMap<String, String>>;
    type Context = Arc<BTreeMap<String, String>>;

    fn grant(grant: &mut bool, argument: Option<&str>) -> Result<(), String> {
        super::grant_bare("config", grant, argument)
    }

    fn grant_texts(grant: &bool) -> Vec<String> {
        grant.then(|| "config".to_owned()).into_iter().collect()
    }

    fn granted(grant: &bool) -> bool {
        *grant
    }

    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        config::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)
    }

    fn context(_: &bool, values: &Self::Backend, _: &mut Instance<'_>) -> Self::Context {
        values.clone()
    }
}

impl config::Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.check_argument("a config key", key.len())?;
        Ok(self.caps.config.get(&key).cloned())
    }

    async fn get_all(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self
            .caps
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Grants;

    #[test]
    fn the_grant_round_trips_through_its_text() {
        let grants = Grants::parse(["config"]).unwrap();
        assert!(grants.config);
        assert_eq!(grants.list(), ["config"]);
        assert_eq!(
            Grants::parse(grants.list().iter().map(String::as_str)).unwrap(),
            grants
        );
        assert!(Grants::parse(["config:x"]).is_err());
        assert!(Grants::none().list().is_empty());
    }
}
