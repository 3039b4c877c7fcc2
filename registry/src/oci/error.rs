//! OCI distribution errors: the spec's codes, with their HTTP statuses.

use axum::http::StatusCode;

/// An error of the distribution API, answered as
/// `{"errors": [{"code", "message", "detail"}]}`.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The blob is not in this repository.
    #[error("blob unknown to registry: {0}")]
    BlobUnknown(String),
    /// No such upload session (or it belongs to another repository).
    #[error("blob upload unknown to registry: {0}")]
    BlobUploadUnknown(String),
    /// The upload's content does not match its digest.
    #[error("provided digest did not match uploaded content: {0}")]
    DigestInvalid(String),
    /// A manifest references a blob or manifest the repository does not have.
    #[error("manifest references a blob unknown to the repository: {0}")]
    ManifestBlobUnknown(String),
    /// The manifest is malformed.
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    /// No such manifest or tag.
    #[error("manifest unknown: {0}")]
    ManifestUnknown(String),
    /// The repository name is malformed.
    #[error("invalid repository name: {0}")]
    NameInvalid(String),
    /// No such repository.
    #[error("repository name not known to registry: {0}")]
    NameUnknown(String),
    /// A size is wrong or too large.
    #[error("provided length did not match content length or is too large: {0}")]
    SizeInvalid(String),
    /// A chunk does not start where the upload ends.
    #[error("requested range not satisfiable: {0}")]
    RangeInvalid(String),
    /// No or bad credentials.
    #[error("authentication required")]
    Unauthorized,
    /// Valid credentials without the right to do this.
    #[error("requested access to the resource is denied")]
    Denied,
    /// A tag already points to another manifest; tags never move here.
    #[error("tag {0} already points to another manifest; tags are immutable in this registry")]
    TagImmutable(String),
    /// The tag is reserved for another writer (a Warden release's version
    /// tag, which only its publish sets).
    #[error("tag {0} is reserved: {1}")]
    TagReserved(String, &'static str),
    /// A request the registry does not serve.
    #[error("the operation is unsupported: {0}")]
    Unsupported(String),
    /// The organization has too many uploads open, or too many bytes in them.
    #[error("too many uploads in progress: {0}")]
    TooManyUploads(String),
    /// The registry's disk is full: nothing was stored; try again once an
    /// operator freed space.
    #[error("the registry's storage is full; nothing was stored")]
    StorageFull,
    /// A service the registry depends on (the database) is down; try again.
    #[error("the registry is temporarily unavailable")]
    Unavailable,
    /// A failure of the registry itself; never shown in detail.
    #[error("internal error")]
    Internal(#[source] std::io::Error),
}

impl OciError {
    /// The spec's error code.
    pub fn code(&self) -> &'static str {
        match self {
            OciError::BlobUnknown(_) => "BLOB_UNKNOWN",
            OciError::BlobUploadUnknown(_) => "BLOB_UPLOAD_UNKNOWN",
            OciError::DigestInvalid(_) => "DIGEST_INVALID",
            OciError::ManifestBlobUnknown(_) => "MANIFEST_BLOB_UNKNOWN",
            OciError::ManifestInvalid(_) => "MANIFEST_INVALID",
            OciError::ManifestUnknown(_) => "MANIFEST_UNKNOWN",
            OciError::NameInvalid(_) => "NAME_INVALID",
            OciError::NameUnknown(_) => "NAME_UNKNOWN",
            OciError::SizeInvalid(_) => "SIZE_INVALID",
            OciError::RangeInvalid(_) => "BLOB_UPLOAD_INVALID",
            OciError::Unauthorized => "UNAUTHORIZED",
            OciError::Denied | OciError::TagImmutable(_) | OciError::TagReserved(..) => "DENIED",
            OciError::Unsupported(_) => "UNSUPPORTED",
            OciError::TooManyUploads(_) => "TOOMANYREQUESTS",
            OciError::Internal(_) | OciError::Unavailable | OciError::StorageFull => "UNKNOWN",
        }
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            OciError::BlobUnknown(_)
            | OciError::BlobUploadUnknown(_)
            | OciError::ManifestUnknown(_)
            | OciError::NameUnknown(_) => StatusCode::NOT_FOUND,
            OciError::DigestInvalid(_)
            | OciError::ManifestBlobUnknown(_)
            | OciError::ManifestInvalid(_)
            | OciError::NameInvalid(_) => StatusCode::BAD_REQUEST,
            OciError::SizeInvalid(_) => StatusCode::PAYLOAD_TOO_LARGE,
            OciError::RangeInvalid(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            OciError::Unauthorized => StatusCode::UNAUTHORIZED,
            OciError::Denied | OciError::TagImmutable(_) | OciError::TagReserved(..) => {
                StatusCode::FORBIDDEN
            }
            OciError::Unsupported(_) => StatusCode::METHOD_NOT_ALLOWED,
            OciError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            OciError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            OciError::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
            OciError::TooManyUploads(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

impl From<std::io::Error> for OciError {
    fn from(error: std::io::Error) -> OciError {
        if super::store::is_storage_full(&error) {
            OciError::StorageFull
        } else {
            OciError::Internal(error)
        }
    }
}
