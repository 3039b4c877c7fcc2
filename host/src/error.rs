//! The one error type of the host: every way loading or invoking a plugin can fail.

use crate::capabilities::Capability;
use crate::limits::LimitKind;
use std::time::Duration;

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when loading or invoking a plugin.
///
/// Errors that the plugin itself caused while running (limits, traps) end only
/// that invocation; the [`crate::Engine`] and other plugins are unaffected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly file (no `\\0asm` header)")]
    NotWasm,
    /// A core module was given where a component is required.
    #[error(
        "this is a core WebAssembly module, not a component; build the plugin with \
         `cargo build --target wasm32-wasip2` (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    /// The component does not validate or cannot be compiled.
    #[error("invalid component: {0}")]
    InvalidComponent(String),
    /// The component imports something no Warden host provides.
    #[error("the component imports interfaces Warden does not provide: {}", .0.join(", "))]
    UnsupportedImports(Vec<String>),
    /// The component imports interfaces that none of its dependencies
    /// exports.
    #[error("the component imports {}, which {}", .imports.join(", "), provided_by(.dependencies))]
    UnprovidedImports {
        /// The imports nothing provides.
        imports: Vec<String>,
        /// The dependencies it was linked with (`org/name@version`).
        dependencies: Vec<String>,
    },
    /// A dependency exports an interface the component imports, but not
    /// with the functions and types the component expects.
    #[error("cannot link {import} to {dependency}: {reason}")]
    Link {
        /// The import.
        import: String,
        /// The dependency exporting it (`org/name@version`).
        dependency: String,
        /// What does not match.
        reason: String,
    },
    /// A dependency failed while the invoked plugin was calling it; `error`
    /// is what stopped it (its code is this error's code).
    #[error("in dependency {plugin}: {error}")]
    InDependency {
        /// The dependency that failed (`org/name@version`), the innermost one
        /// when dependencies call dependencies.
        plugin: String,
        /// What stopped it.
        error: Box<Error>,
    },
    /// The component needs capabilities that were not granted.
    #[error("capabilities not granted: {}", list(.0))]
    MissingCapabilities(Vec<Capability>),
    /// No exported function has that name.
    #[error("no function `{name}`; available: {}", .available.join(", "))]
    UnknownFunction {
        /// The requested name.
        name: String,
        /// The invocable functions.
        available: Vec<String>,
    },
    /// The function exists but its types cannot cross JSON.
    #[error("function `{name}` cannot be invoked over JSON: {reason}")]
    NotInvocable {
        /// The function.
        name: String,
        /// Which type prevents it.
        reason: String,
    },
    /// An argument does not match the function's parameter types.
    #[error("{path}: {message}")]
    BadArgument {
        /// Where in the arguments, e.g. `args.user.age`.
        path: String,
        /// What was expected and what was found.
        message: String,
    },
    /// A limit stopped the invocation.
    #[error("{kind} limit exceeded: {detail}")]
    LimitExceeded {
        /// Which limit.
        kind: LimitKind,
        /// The limit and, where known, what was attempted.
        detail: String,
    },
    /// The plugin already runs as many invocations as its limit allows.
    #[error("plugin is busy: {limit} concurrent invocations already running")]
    TooManyConcurrent {
        /// The concurrency limit.
        limit: u32,
    },
    /// The engine has no free instance slot (all pooled slots are in use).
    #[error("the engine is at capacity: {0}")]
    Capacity(String),
    /// The plugin trapped or panicked.
    #[error("plugin trapped: {message}")]
    Trap {
        /// One line: the trap and, for a Rust panic, the panic message.
        message: String,
        /// The guest's wasm backtrace, for the plugin's author.
        backtrace: Option<String>,
    },
    /// The configuration given to the host is not valid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A failure of the host itself, not of the plugin.
    #[error("host failure: {0}")]
    Host(String),
    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn provided_by(dependencies: &[String]) -> String {
    match dependencies {
        [] => "no Warden host provides and no dependency is declared to provide".into(),
        [one] => format!("its dependency {one} does not export"),
        many => format!("none of its dependencies ({}) exports", many.join(", ")),
    }
}

fn list(capabilities: &[Capability]) -> String {
    capabilities
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    /// A short stable identifier for the kind of error, e.g. `out_of_fuel`,
    /// for APIs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotWasm | Error::CoreModule | Error::InvalidComponent(_) => "invalid_component",
            Error::UnsupportedImports(_) | Error::UnprovidedImports { .. } => "unsupported_imports",
            Error::Link { .. } => "link_failed",
            Error::InDependency { error, .. } => error.code(),
            Error::MissingCapabilities(_) => "missing_capabilities",
            Error::UnknownFunction { .. } => "unknown_function",
            Error::NotInvocable { .. } => "not_invocable",
            Error::BadArgument { .. } => "bad_argument",
            Error::LimitExceeded { kind, .. } => kind.code(),
            Error::TooManyConcurrent { .. } => "too_many_concurrent",
            Error::Capacity(_) => "capacity",
            Error::Trap { .. } => "trap",
            Error::Config(_) => "invalid_config",
            Error::Host(_) | Error::Io { .. } => "host_failure",
        }
    }

    /// Whether the plugin caused this error while running (a limit or a trap),
    /// as opposed to bad input or a host problem.
    pub fn is_plugin_fault(&self) -> bool {
        match self {
            Error::LimitExceeded { .. } | Error::Trap { .. } => true,
            Error::InDependency { error, .. } => error.is_plugin_fault(),
            _ => false,
        }
    }

    /// The dependency in which the error happened, if it did in one.
    pub fn dependency(&self) -> Option<&str> {
        match self {
            Error::InDependency { plugin, .. } => Some(plugin),
            _ => None,
        }
    }

    /// This error as it happened in the dependency `plugin`: wrapped in
    /// [`Error::InDependency`], unless it already names the (innermost)
    /// dependency it happened in.
    pub fn in_dependency(self, plugin: &str) -> Error {
        match self {
            Error::InDependency { .. } => self,
            error => Error::InDependency {
                plugin: plugin.to_owned(),
                error: Box::new(error),
            },
        }
    }

    /// The error itself, whichever plugin it happened in.
    pub fn innermost(&self) -> &Error {
        match self {
            Error::InDependency { error, .. } => error.innermost(),
            other => other,
        }
    }

    pub(crate) fn limit(kind: LimitKind, detail: impl Into<String>) -> Error {
        Error::LimitExceeded {
            kind,
            detail: detail.into(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn deadline(timeout: Duration) -> Error {
        Error::limit(
            LimitKind::Deadline,
            format!(
                "ran longer than {}",
                crate::limits::format_duration(timeout)
            ),
        )
    }
}
