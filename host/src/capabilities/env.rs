//! `env`: the host's environment variables a plugin may read
//! (`wasi:cli/environment`), granted by name. The interface is always
//! linked (as part of WASI); only granted variables are in it.

use super::{Instance, Unit};
use crate::state::HostState;
use std::collections::BTreeSet;
use wasmtime::component::Linker;

/// The `env` capability.
pub(crate) struct Env;

impl Unit for Env {
    const NAME: &'static str = "env";
    const DESCRIPTION: &'static str = "environment variables (only those granted by name)";
    const INTERFACES: &'static [(&'static str, &'static [&'static str])] =
        &[("wasi:cli", &["environment"])];
    const GRANT: Option<&'static str> = Some("env:NAME");

    /// The names granted.
    type Grant = BTreeSet<String>;
    type Backend = ();
    type Context = ();

    fn grant(names: &mut BTreeSet<String>, argument: Option<&str>) -> Result<(), String> {
        let name = argument.unwrap_or_default();
        let portable = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !portable {
            return Err(
                "expected env:NAME, a name of ASCII letters, digits and _ not starting with a digit"
                    .into(),
            );
        }
        if is_reserved_env(name) {
            return Err(
                "Warden's own settings and secrets (WARDEN_*, database and registry credentials) are never granted"
                    .into(),
            );
        }
        names.insert(name.to_owned());
        Ok(())
    }

    fn grant_texts(names: &BTreeSet<String>) -> Vec<String> {
        super::named_grant_texts("env", names)
    }

    fn granted(names: &BTreeSet<String>) -> bool {
        !names.is_empty()
    }

    /// Linked with the rest of WASI (see `wasi::Basic`).
    fn add_to_linker(_: &mut Linker<HostState>) -> wasmtime::Result<()> {
        Ok(())
    }

    fn context(names: &BTreeSet<String>, _: &(), instance: &mut Instance<'_>) {
        for name in names {
            if let Ok(value) = std::env::var(name) {
                instance.wasi.env(name, value);
            }
        }
    }
}

/// Environment variables no grant reaches: Warden's own settings (all
/// `WARDEN_*`, among them the database URL, registry password and tokens)
/// and the standard names of database and cloud credentials a server's
/// environment may hold.
pub fn is_reserved_env(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with("WARDEN_")
        || upper.starts_with("PG")
        || upper.starts_with("AWS_")
        || matches!(
            upper.as_str(),
            "DATABASE_URL" | "REGISTRY_PASSWORD" | "GOOGLE_APPLICATION_CREDENTIALS"
        )
}

#[cfg(test)]
mod tests {
    use super::super::Grants;

    #[test]
    fn the_grant_round_trips_through_its_text() {
        let grants = Grants::parse(["env:HOME", "env:_X1"]).unwrap();
        assert_eq!(grants.list(), ["env:HOME", "env:_X1"]);
        assert_eq!(
            Grants::parse(grants.list().iter().map(String::as_str)).unwrap(),
            grants
        );
        for bad in ["env", "env:", "env:1X", "env:WARDEN_TOKEN"] {
            assert!(Grants::parse([bad]).is_err(), "{bad}");
        }
    }
}
