//! `warden-host`: runs untrusted WebAssembly components safely.
//!
//! The host takes a component a plugin author compiled for `wasm32-wasip2`,
//! checks its imports against the capabilities an admin granted, and runs its
//! exported functions with JSON in and JSON out, each call in a fresh instance
//! under fuel, memory, time, stack, table, instance, log, result, host-call and
//! concurrency limits. A misbehaving plugin ends its own invocation with a typed
//! [`Error`]; the [`Engine`], other plugins and later calls are unaffected.
//!
//! ```no_run
//! use warden_host::{Engine, EngineConfig, Grants, Plugin, PluginSettings};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::new(EngineConfig::default())?;
//! let component = engine.compile(&std::fs::read("hello.wasm")?)?;
//! let plugin = Plugin::new(&engine, &component, PluginSettings {
//!     grants: Grants::parse(["http:api.example.com"])?,
//!     ..PluginSettings::default()
//! })?;
//! let call = plugin.invoke("greet", &serde_json::json!(["world"])).await?;
//! println!("{:?} using {} fuel", call.output, call.metering.fuel_used);
//! # Ok(())
//! # }
//! ```
//!
//! The host never touches SQL or HTTP routing: storage comes in through
//! [`KvStore`] and [`SecretStore`], and serving is the registry's job.
#![deny(missing_docs)]

pub mod address_policy;
mod approval;
mod cache;
mod capabilities;
mod digest;
mod engine;
mod error;
mod exports;
mod files;
mod json;
mod limits;
mod link;
mod plugin;
mod schema;
mod state;
mod statement;
mod transcript;
mod trust;
mod verify;

pub use approval::{ApprovalFault, counts_as_approver};
pub use cache::CacheOutcome;
pub use capabilities::{
    Backends, Capability, Grants, HostPattern, HttpRule, KvError, KvQuota, KvStore,
    MAX_SECRET_NAME, MemoryKvStore, MemorySecretStore, Requested, SecretError, SecretStore,
    bytes_over as kv_bytes_over, grant_help, kv_entry_bytes, valid_secret_name,
};
pub use digest::Digest;
pub use engine::{
    CompiledComponent, Engine, EngineConfig, MAX_MEMORIES_PER_COMPONENT, MAX_TABLES_PER_COMPONENT,
    MEMORIES_PER_SLOT, PoolUse, TABLES_PER_SLOT, pool_config,
};
pub use error::{Error, Result};
pub use exports::{
    FLAGS_READ_DIVISOR, FunctionInfo, MAX_EXPORTED_FUNCTIONS, MAX_TYPE_DEPTH, MAX_TYPE_PARTS,
    ParamInfo,
};
pub use files::{STALE_STAGING, remove_stale_staging, write_private};
pub use limits::{
    LimitKind, Limits, MAX_READ_BUDGET, READ_SLACK_BYTES, RESULT_READ_FACTOR, format_bytes,
    format_duration, parse_bytes, parse_duration,
};
pub use link::{LINK_BYTES_PER_FUEL, MAX_CALL_TREE, MAX_LINKED_IMPORTS, interface_serves};
pub use plugin::{Failure, Invocation, Metering, Output, Plugin, PluginSettings};
pub use statement::{
    APPROVAL_PAYLOAD_TYPE, ApprovalStatement, ComponentRef, RELEASE_PAYLOAD_TYPE, ReleaseStatement,
    beyond, capability_list, parse_capabilities,
};
pub use transcript::{LOG_ENTRY_OVERHEAD, LogEntry, LogLevel, LogSource, MAX_LOG_ENTRIES};
pub use trust::{
    Envelope, EnvelopeSignature, MAX_SIGNATURES, PrivateKey, PublicKey, TrustError, Verified,
    canonical_json,
};
pub use verify::{TrustPolicy, Untrusted, VerifiedRelease, verify_release};
