//! `warden-registry`: Warden's control plane.
//!
//! An axum server with the REST API under `/v1` (organizations, tokens and
//! roles, signing keys, releases and their approval, the catalog, the audit
//! chain), the embedded OCI registry under `/v2`, and `/healthz`, `/readyz`,
//! `/metrics`, `/openapi.json`. State lives in SQLite (the embedded default) or
//! PostgreSQL, and in a content-addressed store on disk.
//!
//! ```no_run
//! use warden_registry::{ControlPlane, ServerConfig, serve};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let plane = ControlPlane::open(&ServerConfig::new("./warden-data")).await?;
//! if let Some(token) = &plane.bootstrap_token {
//!     println!("first start: admin token {token}");
//! }
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! serve(listener, plane.router()).await?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod api;
pub mod audit;
pub mod db;
pub mod oci;
pub mod runtime;
mod server;

pub use server::{ControlPlane, ServerConfig, StartError, app, serve};
