//! The control plane's data and its rules, below the HTTP layer: typed rows,
//! the SQL, and the decisions (which release runs, ...). Functions take a
//! narrow context (the database), return their own error types, and know
//! nothing of HTTP.
//!
//! Moving here area by area: version resolution first (used by invocations
//! and, next, by the dependency resolver) and the release life cycle.

pub mod approval;
pub mod resolution;
pub mod status;
