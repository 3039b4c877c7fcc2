//! The control plane's data and its rules, below the HTTP layer: typed rows,
//! the SQL, and the decisions. Functions take a narrow context (the
//! database; for releases also the artifact source and the engine), return
//! their own error types, and know nothing of HTTP.
//!
//! - [`releases`]: publish, review, approve, reject, yank.
//! - [`approval`]: who may not approve a release (no database).
//! - [`status`]: the release life cycle.
//! - [`resolution`]: which release runs (the newest approved match).
//! - [`search`]: catalog text search (the one backend-specific SQL).
//! - [`snapshot`]: what the invoke path needs, held in memory.
//! - [`catalog`]: plugins listed and searched, detail, configuration.
//! - [`secrets`]: plugin secrets, encrypted at rest, never shown.
//! - [`webhooks`]: webhook endpoints and their delivery state.
//! - [`sessions`]: the console's sign-in sessions.
//! - [`keys`]: signing keys and the verification of signed statements.
//! - [`tokens`]: API tokens, roles, who is calling.
//! - [`orgs`]: organizations and the first-start bootstrap.
//! - [`names`]: what an org or plugin name may be.

pub mod approval;
pub mod catalog;
pub mod dependencies;
pub mod keys;
pub mod names;
pub mod orgs;
pub mod releases;
pub mod resolution;
pub mod search;
pub mod secrets;
pub mod sessions;
pub mod snapshot;
pub mod status;
pub mod tokens;
pub mod webhooks;
