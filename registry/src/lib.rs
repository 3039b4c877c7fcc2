//! `warden-registry`: Warden's control plane.
//!
//! This first part is the embedded OCI registry (OCI Distribution API v1.1 over a
//! content-addressed store on disk), where plugin releases are stored in the
//! CNCF Wasm OCI layout. The catalog, keys, approvals and audit trail build on it.
//!
//! ```no_run
//! use std::sync::Arc;
//! use warden_registry::oci::{OciState, OciStore, StaticTokens, TokenGrant, router};
//!
//! # async fn serve() -> std::io::Result<()> {
//! let store = Arc::new(OciStore::open("./warden-data/oci".as_ref(), 512 << 20).await?);
//! let access = Arc::new(StaticTokens::new().with("s3cret", TokenGrant { org: "acme".into(), push: true }));
//! let app = router(OciState { store, access });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
#![deny(missing_docs)]

pub mod oci;
