//! `warden-registry`: Warden's control plane.
//!
//! An axum server with the REST API under `/v1` (organizations, tokens and
//! roles, signing keys, releases and their approval, the catalog, the audit
//! chain), the embedded OCI registry under `/v2`, and `/healthz`, `/readyz`,
//! `/metrics`, `/openapi.json`. State lives in SQLite (the embedded default) or
//! PostgreSQL, and in a content-addressed store on disk.
//!
//! The crate's surface is what the `warden` CLI and an embedder need: the
//! server ([`ControlPlane`], [`serve`]), the release artifact and how it is
//! pushed ([`WasmArtifact`], [`push_artifact`]), the audit chain check
//! ([`verify_chain`]), the API's request and response types ([`types`]),
//! and the OCI types ([`oci`]).
//!
//! ```
//! use warden_registry::{ControlPlane, ServerConfig, serve};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let data_dir = dir.path().join("warden-data");
//! let plane = ControlPlane::open(&ServerConfig::new(data_dir)).await?;
//! if let Some(token) = &plane.bootstrap_token {
//!     println!("first start: admin token {token}");
//! }
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let address = listener.local_addr()?;
//! // Ready as it is: the runtime reads artifacts from the embedded store in
//! // process, not through this listener.
//! let server = tokio::spawn(serve(listener, plane.router()));
//! # let health = reqwest::get(format!("http://{address}/readyz")).await?;
//! # assert!(health.status().is_success());
//! # server.abort();
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod api;
mod artifact;
mod audit;
mod changes;
mod console;
mod db;
mod domain;
mod events;
mod invocation;
mod metrics;
pub mod oci;
mod records;
mod runtime;
mod server;
mod stalled_writes;

pub use api::{MAX_BODY_BYTES, openapi};
pub use artifact::{
    Credentials, Progress as PushProgressSink, PushError, PushFailure, PushProgress,
    RegistryEndpoint, WasmArtifact, push as push_artifact,
};
pub use audit::{ChainBreak, verify_chain};
pub use db::Db;
/// Dependency resolution over a catalog in memory (what `/resolve` runs after
/// reading the org's approved releases), for benchmarks and tools.
pub mod resolver {
    pub use crate::domain::dependencies::{
        Candidate, Catalog, MAX_RESOLVE_TIME, ORG_SOLVER_BURST, ORG_SOLVER_REFILL,
        ORG_SOLVES_QUEUED, Offer, Unresolvable, solve, solve_within,
    };
}
pub use domain::dependencies::PROVIDER_RELEASES_READ;
pub use domain::names::reorders_or_hides;
pub use domain::releases::{ImportProblem, check_imports};
pub use domain::search::{PLANNED_SEARCH_MS, SHORT_TEXT_WINDOW};
pub use events::delivery::Clock as WebhookClock;
pub use oci::{Digest, RepositoryName};
pub use runtime::SqlKvStore;
pub use server::{ConnectionLimits, ControlPlane, ServerConfig, StartError, serve, serve_with};

/// The `/v1` API's requests and responses, as the server writes and reads
/// them: a client deserializes what the server serializes.
pub mod types {
    pub use crate::api::{
        AddKey, Approve, CreateOrg, CreateToken, ErrorBody, ErrorCode, ErrorDetail,
        InvocationFailure, InvokeRequest, InvokeResponse, MeteringReport, Publish, Reason,
        ReleaseRan, Replayed, WebhookList, WhoAmI,
    };
    pub use crate::audit::{AuditEntry, AuditHead, AuditPage};
    pub use crate::domain::catalog::{
        PluginConfig, PluginDetail, PluginPage, PluginSummary, VersionInfo,
    };
    pub use crate::domain::dependencies::{Resolution, ResolvedRelease};
    pub use crate::domain::keys::{KeyKind, SigningKey};
    pub use crate::domain::orgs::{CreatedOrg, Org};
    pub use crate::domain::releases::{
        ApprovalInfo, CapabilityDiff, ImportGroup, Release, ReleasePage, ReleaseSummary, Signer,
    };
    pub use crate::domain::secrets::{SecretInfo, SecretList};
    pub use crate::domain::status::Status;
    pub use crate::domain::tokens::{NewToken, Role};
    pub use crate::domain::webhooks::deliveries::{Attempt, AttemptPage, Outcome};
    pub use crate::domain::webhooks::{Webhook, WebhookWithSecret};
    pub use crate::events::delivery::PingResult;
    pub use crate::events::{Event, EventPage};
}
