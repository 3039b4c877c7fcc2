//! Capabilities: what a component asks for (its imports) and what an admin
//! grants.
//!
//! Each capability is one module implementing [`Unit`]: the WIT interfaces
//! it serves, how its grant is written (`kv`, `http:api.example.com`,
//! `secret:STRIPE_KEY`), whether a component needs that grant to load, what
//! the embedder supplies for it (its backend: a store, values), what one
//! instance holds (its context) and how it is added to the linker. The
//! [`units!`] list below names every capability once; the [`Capability`]
//! enum, [`Grants`], [`Backends`], the per-instance contexts, the linker and
//! the grant help are derived from it. Adding a capability is its module,
//! its line in that list, its WIT interface and its SDK module.
//!
//! `config`, `kv`, `http` and `secrets` must be granted; `env` shows only
//! the variables granted by name; the standard WASI interfaces that
//! toolchains pull in anyway are always linked but reach nothing real (no
//! preopened directory, every socket refused, stdout/stderr captured into
//! the transcript).

mod config;
mod env;
mod http;
mod kv;
mod log;
mod secrets;
mod wasi;

pub use http::{HostPattern, HttpRule};
pub use kv::store::{KvError, KvQuota, KvStore, MemoryKvStore, bytes_over, kv_entry_bytes};
pub use secrets::{
    MAX_SECRET_NAME, MemorySecretStore, SecretError, SecretStore, valid_secret_name,
};

use crate::error::{Error, Result};
use crate::state::HostState;
use crate::transcript::Transcript;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtxBuilder;

/// One capability of the host, as one unit.
pub(crate) trait Unit {
    /// Its name in lists and errors, e.g. `kv`.
    const NAME: &'static str;
    /// What the sandbox gives a plugin that has it.
    const DESCRIPTION: &'static str;
    /// The imports it serves: each WIT package with its interfaces
    /// (versions are ignored).
    const INTERFACES: &'static [(&'static str, &'static [&'static str])];
    /// How its grant is written (`kv`, `http:HOST[:PORT]`, `secret:NAME`):
    /// the word before any `:` starts a grant of it. `None`: nothing to
    /// grant.
    const GRANT: Option<&'static str> = None;
    /// Whether a component that imports it loads only if it is granted.
    const NEEDS_GRANT: bool = false;

    /// What an admin granted.
    type Grant: Clone + fmt::Debug + Default + PartialEq + Eq + Send + Sync;
    /// What the embedder supplies for one plugin.
    type Backend: Clone + Default + Send + Sync;
    /// What one instance holds.
    type Context: Send;

    /// Adds one grant: `argument` is what follows `word:` in its text, or
    /// `None` for the bare word.
    fn grant(_grant: &mut Self::Grant, _argument: Option<&str>) -> Result<(), String> {
        Err("nothing to grant".into())
    }

    /// Each grant as written, e.g. `http:api.example.com`.
    fn grant_texts(_grant: &Self::Grant) -> Vec<String> {
        Vec::new()
    }

    /// Whether anything is granted.
    fn granted(_grant: &Self::Grant) -> bool {
        false
    }

    /// Refuses a grant it cannot serve with `backend` (e.g. kv granted
    /// with no store).
    fn check(_grant: &Self::Grant, _backend: &Self::Backend) -> Result<(), String> {
        Ok(())
    }

    /// Adds its interfaces to the linker. Called only when it is granted
    /// (or needs no grant): an ungranted interface is never linked.
    fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()>;

    /// The context of one instance.
    fn context(
        grant: &Self::Grant,
        backend: &Self::Backend,
        instance: &mut Instance<'_>,
    ) -> Self::Context;
}

/// What a unit may draw on while one instance is prepared.
pub(crate) struct Instance<'a> {
    /// The instance's WASI context, being built.
    pub(crate) wasi: &'a mut WasiCtxBuilder,
    /// Its transcript (logs, stdout and stderr).
    pub(crate) transcript: &'a Transcript,
}

/// Derives everything that lists capabilities from one list. `granted`
/// units have a grant (a field of [`Grants`]), maybe a backend (a field of
/// [`Backends`]; a unit without one gets `()`) and a per-instance context;
/// `always` units need no grant and hold nothing per instance.
macro_rules! units {
    // A unit's backend: its field of `Backends`, or `()` when it has none.
    (@backend $backends:ident . $field:ident : $backend:ty) => { &$backends.$field };
    (@backend $backends:ident . $field:ident) => { &() };
    (
        granted { $(
            $(#[$gdoc:meta])*
            $gvariant:ident = $gfield:ident : $gunit:ty {
                grant: $grant:ty $(, backend: $backend:ty)? $(,)?
            },
        )* }
        always { $( $(#[$adoc:meta])* $avariant:ident = $aunit:ty, )* }
    ) => {
        /// One capability a component can request through its imports.
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(rename_all = "snake_case")]
        pub enum Capability {
            $( $(#[$adoc])* $avariant, )*
            $( $(#[$gdoc])* $gvariant, )*
        }

        impl Capability {
            /// Every capability.
            pub const ALL: &'static [Capability] =
                &[$(Capability::$avariant,)* $(Capability::$gvariant,)*];

            /// Its name in lists and errors, e.g. `kv`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Capability::$avariant => <$aunit as Unit>::NAME,)*
                    $(Capability::$gvariant => <$gunit as Unit>::NAME,)*
                }
            }

            /// Whether an admin must grant this capability for the component to load.
            pub fn needs_grant(&self) -> bool {
                match self {
                    $(Capability::$avariant => <$aunit as Unit>::NEEDS_GRANT,)*
                    $(Capability::$gvariant => <$gunit as Unit>::NEEDS_GRANT,)*
                }
            }

            /// What the sandbox gives a plugin that has this capability.
            pub fn description(&self) -> &'static str {
                match self {
                    $(Capability::$avariant => <$aunit as Unit>::DESCRIPTION,)*
                    $(Capability::$gvariant => <$gunit as Unit>::DESCRIPTION,)*
                }
            }

            /// How its grant is written, e.g. `http:HOST[:PORT]`; `None`
            /// when there is nothing to grant.
            pub fn grant_syntax(self) -> Option<&'static str> {
                match self {
                    $(Capability::$avariant => <$aunit as Unit>::GRANT,)*
                    $(Capability::$gvariant => <$gunit as Unit>::GRANT,)*
                }
            }

            fn interfaces(self) -> &'static [(&'static str, &'static [&'static str])] {
                match self {
                    $(Capability::$avariant => <$aunit as Unit>::INTERFACES,)*
                    $(Capability::$gvariant => <$gunit as Unit>::INTERFACES,)*
                }
            }
        }

        /// What an admin granted a plugin: one entry per capability that
        /// has a grant.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct Grants {
            $( $(#[$gdoc])* pub $gfield: $grant, )*
        }

        // The types written in the list are the units' own.
        $(
            const _: fn(<$gunit as Unit>::Grant) -> $grant = |grant| grant;
            $( const _: fn(<$gunit as Unit>::Backend) -> $backend = |backend| backend; )?
        )*

        impl Grants {
            /// Whether `capability` is granted (or needs no grant).
            pub fn allows(&self, capability: &Capability) -> bool {
                match capability {
                    $(Capability::$avariant => true,)*
                    $(Capability::$gvariant => !<$gunit as Unit>::NEEDS_GRANT
                        || <$gunit as Unit>::granted(&self.$gfield),)*
                }
            }

            /// Adds one grant written as on the command line (see [`grant_help`]).
            pub fn add(&mut self, grant: &str) -> Result<()> {
                let bad = |why: &str| Error::Config(format!("grant {grant:?}: {why}"));
                let (word, argument) = match grant.split_once(':') {
                    Some((word, argument)) => (word, Some(argument)),
                    None => (grant, None),
                };
                $(
                    if grant_word::<$gunit>() == Some(word) {
                        return <$gunit as Unit>::grant(&mut self.$gfield, argument)
                            .map_err(|why| bad(&why));
                    }
                )*
                Err(bad(&format!("expected {}", grant_help())))
            }

            /// The canonical list of what is granted, each as written:
            /// sorted, no duplicates.
            pub fn list(&self) -> Vec<String> {
                let mut list = Vec::new();
                $( list.extend(<$gunit as Unit>::grant_texts(&self.$gfield)); )*
                list.sort();
                list.dedup();
                list
            }
        }

        /// What the embedder supplies for a plugin's capabilities (stores,
        /// values); each is needed only when its capability is granted.
        #[derive(Clone, Default)]
        pub struct Backends {
            $( $(
                #[doc = concat!("What `", stringify!($gfield), "` draws on (needed only when it is granted).")]
                pub $gfield: $backend,
            )? )*
        }

        /// What one instance holds for each capability.
        #[allow(dead_code, reason = "a unit that holds nothing per instance has a field of ()")]
        pub(crate) struct Contexts {
            $( pub(crate) $gfield: <$gunit as Unit>::Context, )*
        }

        /// Refuses grants the backends cannot serve.
        pub(crate) fn check(grants: &Grants, backends: &Backends) -> Result<()> {
            $(
                if <$gunit as Unit>::granted(&grants.$gfield) {
                    <$gunit as Unit>::check(
                        &grants.$gfield,
                        units!(@backend backends.$gfield $(: $backend)?),
                    )
                        .map_err(Error::Config)?;
                }
            )*
            Ok(())
        }

        /// Adds every granted capability (and every one that needs no
        /// grant) to `linker`, and nothing else.
        pub(crate) fn add_to_linker(
            linker: &mut Linker<HostState>,
            grants: &Grants,
        ) -> wasmtime::Result<()> {
            $( <$aunit as Unit>::add_to_linker(linker)?; )*
            $(
                if grants.allows(&Capability::$gvariant) {
                    <$gunit as Unit>::add_to_linker(linker)?;
                }
            )*
            Ok(())
        }

        /// The contexts of one instance.
        pub(crate) fn contexts(
            grants: &Grants,
            backends: &Backends,
            instance: &mut Instance<'_>,
        ) -> Contexts {
            Contexts {
                $( $gfield: <$gunit as Unit>::context(
                    &grants.$gfield,
                    units!(@backend backends.$gfield $(: $backend)?),
                    instance,
                ), )*
            }
        }
    };
}

units! {
    granted {
        /// `warden:plugin/config`: the configuration values an admin set.
        Config = config: config::Config { grant: bool, backend: Arc<BTreeMap<String, String>> },
        /// `warden:plugin/kv`: the plugin's own key-value namespace.
        Kv = kv: kv::Kv { grant: bool, backend: Option<(Arc<dyn KvStore>, String)> },
        /// `wasi:http/outgoing-handler`: outgoing HTTP to the hosts on the allow-list.
        Http = http: http::Http { grant: Vec<HttpRule> },
        /// `warden:plugin/secrets`: the secrets granted by name.
        Secrets = secrets: secrets::Secrets {
            grant: BTreeSet<String>,
            backend: Option<(Arc<dyn SecretStore>, String)>
        },
        /// `wasi:cli/environment`: only the variables granted by name are visible.
        Environment = env: env::Env { grant: BTreeSet<String> },
    }
    always {
        /// `warden:plugin/log`: always granted.
        Log = log::Log,
        /// `wasi:filesystem`: linked, but no directory is ever opened.
        Filesystem = wasi::Filesystem,
        /// `wasi:sockets`: linked, but every address is refused.
        Sockets = wasi::Sockets,
        /// `wasi:cli` stdio: captured into the size-capped transcript.
        Stdio = wasi::Stdio,
        /// Clocks, randomness, I/O streams, exit: harmless basics.
        Basic = wasi::Basic,
    }
}

/// A grant that is one bare word (`kv`, `config`): `argument` must be
/// absent.
fn grant_bare(word: &str, grant: &mut bool, argument: Option<&str>) -> Result<(), String> {
    match argument {
        None => {
            *grant = true;
            Ok(())
        }
        Some(_) => Err(format!("{word} takes no argument")),
    }
}

/// The texts of a grant by name (`env:NAME`, `secret:NAME`), one per name.
fn named_grant_texts(word: &str, names: &BTreeSet<String>) -> Vec<String> {
    names.iter().map(|name| format!("{word}:{name}")).collect()
}

/// The word that starts a grant of `U` (`http` of `http:HOST[:PORT]`).
fn grant_word<U: Unit>() -> Option<&'static str> {
    U::GRANT.map(|syntax| syntax.split(':').next().unwrap_or(syntax))
}

/// How every grant is written, for help texts and errors: `config, kv,
/// http:HOST[:PORT], ...`.
pub fn grant_help() -> String {
    let forms: Vec<&str> = Capability::ALL
        .iter()
        .filter_map(|c| c.grant_syntax())
        .collect();
    match forms.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

impl Capability {
    /// Classifies one import name, e.g. `wasi:http/types@0.2.3`.
    pub fn of_import(name: &str) -> Option<Capability> {
        let unversioned = name.split('@').next().unwrap_or(name);
        let (package, interface) = unversioned.split_once('/')?;
        Capability::ALL.iter().copied().find(|capability| {
            capability
                .interfaces()
                .iter()
                .any(|(p, interfaces)| *p == package && interfaces.contains(&interface))
        })
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The capabilities one component requests, derived from its imports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Requested {
    /// Each capability with the imports that request it.
    pub capabilities: Vec<(Capability, Vec<String>)>,
    /// Imports no Warden host provides.
    pub unsupported: Vec<String>,
}

impl Requested {
    /// Classifies a component's import names.
    pub fn classify<'a>(imports: impl IntoIterator<Item = &'a str>) -> Requested {
        let mut requested = Requested::default();
        for name in imports {
            match Capability::of_import(name) {
                Some(capability) => {
                    match requested
                        .capabilities
                        .iter_mut()
                        .find(|(c, _)| *c == capability)
                    {
                        Some((_, names)) => names.push(name.to_owned()),
                        None => requested
                            .capabilities
                            .push((capability, vec![name.to_owned()])),
                    }
                }
                None => requested.unsupported.push(name.to_owned()),
            }
        }
        requested.capabilities.sort();
        requested
    }

    /// Whether `capability` is among the requested ones.
    pub fn contains(&self, capability: &Capability) -> bool {
        self.capabilities.iter().any(|(c, _)| c == capability)
    }

    /// The requested capabilities that need a grant and do not have one.
    pub fn missing(&self, grants: &Grants) -> Vec<Capability> {
        self.capabilities
            .iter()
            .map(|(c, _)| c)
            .filter(|c| c.needs_grant() && !grants.allows(c))
            .cloned()
            .collect()
    }

    /// Refuses unsupported imports and ungranted capabilities, naming all of them.
    pub fn check(&self, grants: &Grants) -> Result<()> {
        if !self.unsupported.is_empty() {
            return Err(Error::UnsupportedImports(self.unsupported.clone()));
        }
        let missing = self.missing(grants);
        if !missing.is_empty() {
            return Err(Error::MissingCapabilities(missing));
        }
        Ok(())
    }
}

impl Grants {
    /// Nothing granted beyond the always-available basics.
    pub fn none() -> Grants {
        Grants::default()
    }

    /// Parses a list of grants as written on the command line.
    pub fn parse<'a>(grants: impl IntoIterator<Item = &'a str>) -> Result<Grants> {
        let mut parsed = Grants::default();
        for grant in grants {
            parsed.add(grant)?;
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_classified_by_interface_ignoring_versions() {
        let requested = Requested::classify([
            "warden:plugin/kv@0.1.0",
            "wasi:http/outgoing-handler@0.2.0",
            "wasi:http/types@0.2.0",
            "wasi:cli/environment@0.2.3",
            "wasi:filesystem/preopens@0.2.3",
            "wasi:sockets/tcp@0.2.3",
            "wasi:io/streams@0.2.3",
            "acme:evil/backdoor@1.0.0",
        ]);
        assert!(requested.contains(&Capability::Kv));
        assert!(requested.contains(&Capability::Http));
        assert!(requested.contains(&Capability::Environment));
        assert!(requested.contains(&Capability::Filesystem));
        assert!(requested.contains(&Capability::Sockets));
        assert_eq!(requested.unsupported, vec!["acme:evil/backdoor@1.0.0"]);
        let http = requested
            .capabilities
            .iter()
            .find(|(c, _)| *c == Capability::Http)
            .unwrap();
        assert_eq!(http.1.len(), 2);
    }

    #[test]
    fn missing_grants_are_all_named() {
        let requested = Requested::classify([
            "warden:plugin/kv@0.1.0",
            "warden:plugin/config@0.1.0",
            "wasi:http/types@0.2.0",
        ]);
        let error = requested.check(&Grants::none()).unwrap_err();
        assert!(matches!(&error, Error::MissingCapabilities(m)
            if *m == vec![Capability::Config, Capability::Kv, Capability::Http]));
        assert_eq!(
            error.to_string(),
            "capabilities not granted: config, kv, http"
        );
        let grants = Grants::parse(["kv", "config", "http:example.com"]).unwrap();
        requested.check(&grants).unwrap();
    }

    #[test]
    fn grants_parse_and_reject_nonsense() {
        let grants = Grants::parse([
            "kv",
            "env:HOME",
            "http:api.example.com:8443",
            "http:10.0.0.0/8",
        ])
        .unwrap();
        assert!(grants.kv && !grants.config);
        assert!(grants.env.contains("HOME"));
        assert_eq!(grants.http.len(), 2);
        for bad in [
            "http",
            "http:",
            "http:https://x.com",
            "files",
            "env:",
            "http:bad_host",
            "http:x.com:99999",
            "env:WARDEN_DATABASE_URL",
            "env:WARDEN_REGISTRY_PASSWORD",
            "env:warden_token",
            "env:DATABASE_URL",
            "env:PGPASSWORD",
        ] {
            let error = Grants::parse([bad]).unwrap_err();
            assert!(error.to_string().contains(bad), "{bad}: {error}");
        }
        // An environment variable's name is a portable one: nothing that
        // could draw on the terminal of the admin reviewing it.
        for bad in [
            "env:X\u{1b}[1A\u{1b}[2K",
            "env:1ST",
            "env:A B",
            "env:A\u{202e}",
            "env:a-b",
        ] {
            assert!(Grants::parse([bad]).is_err(), "{bad:?}");
        }
        Grants::parse(["env:_PRIVATE_1", "env:lower_case"]).unwrap();
    }
}
