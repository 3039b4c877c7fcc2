//! The embedded OCI registry: pure types, the on-disk store, access control and
//! the `/v2/` HTTP API.

mod access;
mod error;
mod server;
mod store;
mod types;

pub use access::{Action, Anonymous, OciAccess, StaticTokens, TokenGrant, token};
pub use error::OciError;
pub use server::{OciState, router};
pub(crate) use store::is_storage_full;
pub use store::{
    MAX_MANIFEST_BYTES, MAX_UPLOADS_PER_CLIENT, MAX_UPLOADS_PER_ORG, OciStore, UPLOAD_IDLE,
};
pub use types::{
    DOCKER_MANIFEST_LIST_V2, DOCKER_MANIFEST_V2, Descriptor, Digest, INDEX_V1,
    MANIFEST_MEDIA_TYPES, MANIFEST_V1, ManifestDocument, Reference, RepositoryName, WASM_CONFIG_V0,
    WASM_LAYER, valid_tag,
};
