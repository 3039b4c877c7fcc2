//! `warden-registry`: Warden's control plane.
//!
//! An axum server with the REST API under `/v1` (organizations, tokens and
//! roles, signing keys, releases and their approval, the catalog, the audit
//! chain), the embedded OCI registry under `/v2`, and `/healthz`, `/readyz`,
//! `/metrics`, `/openapi.json`. State lives in SQLite (the embedded default) or
//! PostgreSQL, and in a content-addressed store on disk.
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

pub mod api;
pub mod artifact;
pub mod audit;
pub mod db;
pub mod domain;
pub mod oci;
pub mod runtime;
mod server;

pub use server::{ControlPlane, ServerConfig, StartError, app, serve};
