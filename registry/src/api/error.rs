//! The one error type of the REST API: `{"error": {"code", "message", "details"}}`
//! with the right status, and nothing internal in a 500. Every code the API
//! returns is an [`ErrorCode`], with its status beside it; the domain's
//! errors are mapped to codes here, once.

use crate::artifact::FetchError;
use crate::domain::catalog::CatalogError;
use crate::domain::dependencies::DependencyError;
use crate::domain::keys::{KeyError, SignatureError};
use crate::domain::names::InvalidName;
use crate::domain::orgs::OrgError;
use crate::domain::releases::{ImportProblem, ReleaseError};
use crate::domain::resolution::ResolveError;
use crate::domain::tokens::{AuthError, Denied, TokenError};
use crate::oci::OciError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json_, json};

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = ($code:literal, $status:ident), )*) => {
        /// Every error code of the API, with the HTTP status it comes with.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The code whose text is `text`, if there is one.
            pub fn from_code(text: &str) -> Option<ErrorCode> {
                ErrorCode::ALL.iter().copied().find(|code| code.as_str() == text)
            }

            /// The stable, machine-readable text, e.g. `version_exists`.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The HTTP status that goes with it.
            pub fn status(self) -> StatusCode {
                match self { $(ErrorCode::$variant => StatusCode::$status,)* }
            }
        }
    };
}

error_codes! {
    /// No token, or an unknown one.
    Unauthorized = ("unauthorized", UNAUTHORIZED),
    /// The token was revoked.
    TokenRevoked = ("token_revoked", UNAUTHORIZED),
    /// The token has expired.
    TokenExpired = ("token_expired", UNAUTHORIZED),
    /// The object belongs to another organization.
    WrongOrg = ("wrong_org", FORBIDDEN),
    /// The token's role lacks the permission.
    InsufficientRole = ("insufficient_role", FORBIDDEN),
    /// Only operator admins may do this.
    NotOperator = ("not_operator", FORBIDDEN),
    /// Nobody approves their own release.
    SelfApproval = ("self_approval", FORBIDDEN),
    /// No such object.
    NotFound = ("not_found", NOT_FOUND),
    /// The plugin has no approved release (matching the requirement).
    NoApprovedRelease = ("no_approved_release", NOT_FOUND),
    /// The plugin exports no such function.
    UnknownFunction = ("unknown_function", NOT_FOUND),
    /// The version is published already.
    VersionExists = ("version_exists", CONFLICT),
    /// The version tag names another manifest.
    TagConflict = ("tag_conflict", CONFLICT),
    /// The release was decided already.
    ReleaseDecided = ("release_decided", CONFLICT),
    /// An approval disagrees with an earlier one.
    ApprovalMismatch = ("approval_mismatch", CONFLICT),
    /// The key approved this release before.
    AlreadyApprovedByKey = ("already_approved_by_key", CONFLICT),
    /// The key is registered already.
    KeyExists = ("key_exists", CONFLICT),
    /// The organization exists.
    OrgExists = ("org_exists", CONFLICT),
    /// The org's last active admin token cannot be revoked.
    LastAdminToken = ("last_admin_token", CONFLICT),
    /// The release failed verification and does not run.
    ReleaseUntrusted = ("release_untrusted", CONFLICT),
    /// The release imports capabilities it was not granted.
    MissingCapabilities = ("missing_capabilities", CONFLICT),
    /// A dependency does not export an imported interface with the
    /// functions and types the plugin expects.
    LinkFailed = ("link_failed", CONFLICT),
    /// The plugin's configuration cannot be applied.
    InvalidConfig = ("invalid_config", CONFLICT),
    /// The body is not JSON.
    InvalidJson = ("invalid_json", BAD_REQUEST),
    /// The body does not fit the schema.
    InvalidBody = ("invalid_body", BAD_REQUEST),
    /// A webhook endpoint's URL, event types or description is not acceptable,
    /// or its address may not be reached.
    InvalidWebhook = ("invalid_webhook", BAD_REQUEST),
    /// The organization has as many webhook endpoints (or pending
    /// redeliveries) as it may.
    TooManyWebhooks = ("too_many_webhooks", CONFLICT),
    /// The query string does not fit the schema.
    InvalidQuery = ("invalid_query", BAD_REQUEST),
    /// A path parameter does not parse.
    InvalidPath = ("invalid_path", BAD_REQUEST),
    /// A page size out of range.
    InvalidPageSize = ("invalid_page_size", BAD_REQUEST),
    /// A cursor this API did not return.
    InvalidCursor = ("invalid_cursor", BAD_REQUEST),
    /// An organization or plugin name that is not valid.
    InvalidName = ("invalid_name", BAD_REQUEST),
    /// Not a semantic version usable as a tag.
    InvalidVersion = ("invalid_version", BAD_REQUEST),
    /// Not a semver requirement.
    InvalidVersionRequirement = ("invalid_version_requirement", BAD_REQUEST),
    /// A signed statement that does not parse.
    InvalidStatement = ("invalid_statement", BAD_REQUEST),
    /// Capabilities that do not parse or are not canonical.
    InvalidCapabilities = ("invalid_capabilities", BAD_REQUEST),
    /// A description that is too long.
    InvalidDescription = ("invalid_description", BAD_REQUEST),
    /// A dependency that is not `org/name` with a requirement.
    InvalidDependency = ("invalid_dependency", BAD_REQUEST),
    /// The release's dependencies would lead back to it; the message names the cycle.
    DependencyCycle = ("dependency_cycle", UNPROCESSABLE_ENTITY),
    /// A digest that does not parse.
    InvalidDigest = ("invalid_digest", BAD_REQUEST),
    /// A reason that is empty or too long.
    InvalidReason = ("invalid_reason", BAD_REQUEST),
    /// A public key that does not parse.
    InvalidKey = ("invalid_key", BAD_REQUEST),
    /// A key owner that is empty or too long.
    InvalidOwner = ("invalid_owner", BAD_REQUEST),
    /// A token expiry out of range.
    InvalidExpiry = ("invalid_expiry", BAD_REQUEST),
    /// A configuration key that is not valid.
    InvalidConfigKey = ("invalid_config_key", BAD_REQUEST),
    /// Too many configuration values, or one too large.
    ConfigTooLarge = ("config_too_large", BAD_REQUEST),
    /// A secret name that a grant cannot name.
    InvalidSecretName = ("invalid_secret_name", BAD_REQUEST),
    /// A secret's value too large, or too many secrets.
    SecretTooLarge = ("secret_too_large", BAD_REQUEST),
    /// An argument that does not fit the function's parameters.
    BadArgument = ("bad_argument", BAD_REQUEST),
    /// A function whose types cannot cross JSON.
    NotInvocable = ("not_invocable", BAD_REQUEST),
    /// The request body did not arrive in time.
    RequestTimeout = ("request_timeout", REQUEST_TIMEOUT),
    /// The body is larger than the API accepts.
    BodyTooLarge = ("body_too_large", PAYLOAD_TOO_LARGE),
    /// The body is not sent as JSON.
    UnsupportedMediaType = ("unsupported_media_type", UNSUPPORTED_MEDIA_TYPE),
    /// A signature that does not verify.
    SignatureInvalid = ("signature_invalid", UNPROCESSABLE_ENTITY),
    /// An unsigned statement.
    SignatureMissing = ("signature_missing", UNPROCESSABLE_ENTITY),
    /// Signed by a revoked key.
    KeyRevoked = ("key_revoked", UNPROCESSABLE_ENTITY),
    /// Signed by a key of the other kind.
    WrongKeyKind = ("wrong_key_kind", UNPROCESSABLE_ENTITY),
    /// Signed by an unregistered key.
    KeyUnknown = ("key_unknown", UNPROCESSABLE_ENTITY),
    /// The statement is for another plugin.
    NameMismatch = ("name_mismatch", UNPROCESSABLE_ENTITY),
    /// The artifact is not a valid Wasm artifact.
    ArtifactInvalid = ("artifact_invalid", UNPROCESSABLE_ENTITY),
    /// The manifest was not pushed.
    ManifestUnknown = ("manifest_unknown", UNPROCESSABLE_ENTITY),
    /// The artifact holds another component than the statement signs.
    DigestMismatch = ("digest_mismatch", UNPROCESSABLE_ENTITY),
    /// The component does not compile.
    ComponentInvalid = ("component_invalid", UNPROCESSABLE_ENTITY),
    /// The component is larger than the server takes.
    ComponentTooLarge = ("component_too_large", UNPROCESSABLE_ENTITY),
    /// No set of approved releases satisfies the plugin's dependencies; the
    /// details hold the explanation, one sentence per line.
    Unresolvable = ("unresolvable", CONFLICT),
    /// The component imports what no Warden host provides.
    UnsupportedImports = ("unsupported_imports", UNPROCESSABLE_ENTITY),
    /// The component imports capabilities the release does not request.
    CapabilitiesExceeded = ("capabilities_exceeded", UNPROCESSABLE_ENTITY),
    /// The approval is for another release.
    StatementMismatch = ("statement_mismatch", UNPROCESSABLE_ENTITY),
    /// The approval grants what the release does not request.
    GrantExceedsRequest = ("grant_exceeds_request", UNPROCESSABLE_ENTITY),
    /// Limits above what this server allows.
    LimitsAboveMaxima = ("limits_above_maxima", UNPROCESSABLE_ENTITY),
    /// The plugin returned its own error.
    PluginError = ("plugin_error", UNPROCESSABLE_ENTITY),
    /// The invocation ran out of fuel.
    OutOfFuel = ("out_of_fuel", UNPROCESSABLE_ENTITY),
    /// The invocation reached its memory limit.
    MemoryLimit = ("memory_limit", UNPROCESSABLE_ENTITY),
    /// The invocation reached its deadline.
    DeadlineExceeded = ("deadline_exceeded", UNPROCESSABLE_ENTITY),
    /// The invocation overflowed its stack.
    StackOverflow = ("stack_overflow", UNPROCESSABLE_ENTITY),
    /// The invocation reached its table limit.
    TableLimit = ("table_limit", UNPROCESSABLE_ENTITY),
    /// The invocation reached its instance limit.
    InstanceLimit = ("instance_limit", UNPROCESSABLE_ENTITY),
    /// The invocation logged more than its limit.
    LogLimit = ("log_limit", UNPROCESSABLE_ENTITY),
    /// The result is larger than the limit.
    ResultTooLarge = ("result_too_large", UNPROCESSABLE_ENTITY),
    /// A host call's arguments are larger than the limit.
    HostCallTooLarge = ("host_call_too_large", UNPROCESSABLE_ENTITY),
    /// The plugin trapped.
    Trap = ("trap", UNPROCESSABLE_ENTITY),
    /// Too many concurrent invocations of the plugin.
    TooManyConcurrent = ("too_many_concurrent", TOO_MANY_REQUESTS),
    /// No instance slot is free.
    Capacity = ("capacity", TOO_MANY_REQUESTS),
    /// The client is already sending its share of request bodies.
    TooManyBodies = ("too_many_bodies", TOO_MANY_REQUESTS),
    /// Something failed inside the server (the log has the cause).
    Internal = ("internal", INTERNAL_SERVER_ERROR),
    /// The external registry could not be reached.
    RegistryUnavailable = ("registry_unavailable", BAD_GATEWAY),
    /// The database could not be reached.
    DatabaseUnavailable = ("database_unavailable", SERVICE_UNAVAILABLE),
    /// The server is stopping (`/readyz` while it drains).
    ShuttingDown = ("shutting_down", SERVICE_UNAVAILABLE),
    /// The server's disk is full: nothing was stored.
    StorageFull = ("storage_full", INSUFFICIENT_STORAGE),
}

impl ErrorCode {
    /// Whether this code says an invocation stopped at one of its limits.
    pub fn is_limit(self) -> bool {
        matches!(
            self,
            ErrorCode::OutOfFuel
                | ErrorCode::MemoryLimit
                | ErrorCode::DeadlineExceeded
                | ErrorCode::StackOverflow
                | ErrorCode::TableLimit
                | ErrorCode::InstanceLimit
                | ErrorCode::LogLimit
                | ErrorCode::ResultTooLarge
                | ErrorCode::HostCallTooLarge
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An API failure, already worded for the caller.
#[derive(Debug)]
pub struct ApiError {
    /// What went wrong; gives the status.
    pub code: ErrorCode,
    /// One sentence for people.
    pub message: String,
    /// Structured particulars (`null` if none).
    pub details: Json_,
}

/// The body of every error response.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable message.
    pub message: String,
    /// Structured particulars (an object), or null.
    #[schema(value_type = serde_json::Value)]
    #[serde(default)]
    pub details: Json_,
}

/// The API's result type.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            details: Json_::Null,
        }
    }

    /// Adds details.
    pub fn with_details(mut self, details: Json_) -> ApiError {
        self.details = details;
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// 500: the cause is logged, the caller learns only that it happened.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        let incident = format!("{:016x}", rand::random::<u64>());
        tracing::error!(incident, "internal error: {cause}");
        ApiError::new(
            ErrorCode::Internal,
            format!("internal error (incident {incident}; the server log has the cause)"),
        )
    }

    fn from_display(code: ErrorCode, error: impl std::fmt::Display) -> ApiError {
        ApiError::new(code, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = json!({
            "error": { "code": self.code, "message": self.message, "details": self.details }
        });
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"warden\""),
            );
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> ApiError {
        if crate::db::is_storage_full(&error) {
            tracing::error!("the database's disk is full: {error}");
            return ApiError::new(
                ErrorCode::StorageFull,
                "the database's disk is full; nothing was stored",
            );
        }
        if crate::db::is_unavailable(&error) {
            tracing::warn!("database unavailable: {error}");
            ApiError::new(
                ErrorCode::DatabaseUnavailable,
                "the database is unavailable; try again shortly",
            )
        } else {
            ApiError::internal(format!("database: {error}"))
        }
    }
}

impl From<OciError> for ApiError {
    fn from(error: OciError) -> ApiError {
        match error {
            OciError::Internal(cause) => ApiError::internal(format!("oci store: {cause}")),
            OciError::StorageFull => ApiError::from_display(ErrorCode::StorageFull, error),
            other => ApiError::from_display(ErrorCode::ArtifactInvalid, other),
        }
    }
}

impl From<InvalidName> for ApiError {
    fn from(error: InvalidName) -> ApiError {
        ApiError::from_display(ErrorCode::InvalidName, error)
    }
}

impl From<Denied> for ApiError {
    fn from(error: Denied) -> ApiError {
        match &error {
            Denied::WrongOrg { .. } => ApiError::from_display(ErrorCode::WrongOrg, &error),
            Denied::NotOperator => ApiError::from_display(ErrorCode::NotOperator, &error),
            Denied::InsufficientRole { role, permission } => {
                let details = json!({ "role": role, "needs": permission.as_str() });
                ApiError::from_display(ErrorCode::InsufficientRole, &error).with_details(details)
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> ApiError {
        match error {
            AuthError::Db(e) => e.into(),
            AuthError::Corrupt(_) => ApiError::internal(error),
            AuthError::Missing | AuthError::Unknown => {
                ApiError::from_display(ErrorCode::Unauthorized, error)
            }
            AuthError::Revoked => ApiError::from_display(ErrorCode::TokenRevoked, error),
            AuthError::Expired => ApiError::from_display(ErrorCode::TokenExpired, error),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> ApiError {
        let code = match error {
            TokenError::Db(e) => return e.into(),
            TokenError::Corrupt(_) => return ApiError::internal(error),
            TokenError::InvalidName => ErrorCode::InvalidName,
            TokenError::InvalidExpiry(_) => ErrorCode::InvalidExpiry,
            TokenError::NotFound { .. } => ErrorCode::NotFound,
            TokenError::LastAdmin { .. } => ErrorCode::LastAdminToken,
        };
        ApiError::from_display(code, error)
    }
}

impl From<KeyError> for ApiError {
    fn from(error: KeyError) -> ApiError {
        let code = match error {
            KeyError::Db(e) => return e.into(),
            KeyError::Corrupt(_) => return ApiError::internal(error),
            KeyError::InvalidKey(_) => ErrorCode::InvalidKey,
            KeyError::InvalidOwner => ErrorCode::InvalidOwner,
            KeyError::Exists { .. } => ErrorCode::KeyExists,
            KeyError::NotFound { .. } => ErrorCode::NotFound,
        };
        ApiError::from_display(code, error)
    }
}

impl From<SignatureError> for ApiError {
    fn from(error: SignatureError) -> ApiError {
        let code = match error {
            SignatureError::Keys(e) => return e.into(),
            SignatureError::Missing => ErrorCode::SignatureMissing,
            SignatureError::KeyRevoked(_) => ErrorCode::KeyRevoked,
            SignatureError::Invalid(_) => ErrorCode::SignatureInvalid,
            SignatureError::WrongKeyKind { .. } => ErrorCode::WrongKeyKind,
            SignatureError::KeyUnknown { .. } => ErrorCode::KeyUnknown,
        };
        ApiError::from_display(code, error)
    }
}

impl From<OrgError> for ApiError {
    fn from(error: OrgError) -> ApiError {
        let code = match error {
            OrgError::Db(e) => return e.into(),
            OrgError::InvalidName(e) => return e.into(),
            OrgError::KeepToken(_) => return ApiError::internal(error),
            OrgError::Exists(_) => ErrorCode::OrgExists,
            OrgError::NotFound(_) => ErrorCode::NotFound,
        };
        ApiError::from_display(code, error)
    }
}

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> ApiError {
        let code = match error {
            CatalogError::Db(e) => return e.into(),
            CatalogError::Corrupt(_) => return ApiError::internal(error),
            CatalogError::SearchTooLong | CatalogError::ControlCharacter(_) => {
                ErrorCode::InvalidQuery
            }
            CatalogError::NoPlugin { .. } => ErrorCode::NotFound,
            CatalogError::ConfigTooLarge(_) => ErrorCode::ConfigTooLarge,
            CatalogError::InvalidConfigKey(_) => ErrorCode::InvalidConfigKey,
        };
        ApiError::from_display(code, error)
    }
}

impl From<crate::domain::secrets::SecretError> for ApiError {
    fn from(error: crate::domain::secrets::SecretError) -> ApiError {
        use crate::domain::secrets::SecretError;
        let code = match error {
            SecretError::Db(e) => return e.into(),
            SecretError::InvalidName(_) => ErrorCode::InvalidSecretName,
            SecretError::TooLarge(_) => ErrorCode::SecretTooLarge,
            SecretError::NoPlugin(_) | SecretError::NoSecret { .. } => ErrorCode::NotFound,
        };
        ApiError::from_display(code, error)
    }
}

impl From<crate::domain::webhooks::WebhookError> for ApiError {
    fn from(error: crate::domain::webhooks::WebhookError) -> ApiError {
        use crate::domain::webhooks::WebhookError;
        let code = match error {
            WebhookError::Db(e) => return e.into(),
            WebhookError::Secret(e) => return ApiError::internal(e),
            WebhookError::InvalidUrl(_)
            | WebhookError::AddressRefused(_)
            | WebhookError::InvalidEvents(_)
            | WebhookError::InvalidDescription => ErrorCode::InvalidWebhook,
            WebhookError::TooMany(_) => ErrorCode::TooManyWebhooks,
            WebhookError::NotFound(_) => ErrorCode::NotFound,
        };
        ApiError::from_display(code, error)
    }
}

impl From<crate::events::delivery::PingError> for ApiError {
    fn from(error: crate::events::delivery::PingError) -> ApiError {
        use crate::events::delivery::PingError;
        match error {
            PingError::Webhook(e) => e.into(),
            busy @ PingError::Busy => ApiError::from_display(ErrorCode::Capacity, busy),
        }
    }
}

impl From<crate::events::streams::StreamsFull> for ApiError {
    fn from(full: crate::events::streams::StreamsFull) -> ApiError {
        ApiError::from_display(ErrorCode::Capacity, full)
    }
}

impl From<crate::invocation::InvokeError> for ApiError {
    fn from(error: crate::invocation::InvokeError) -> ApiError {
        use crate::invocation::InvokeError;
        let code = match error {
            InvokeError::InvalidName(e) => return e.into(),
            InvokeError::Resolve(e) => return e.into(),
            InvokeError::Dependencies(e) => return e.into(),
            InvokeError::Host(e) => return super::invoke::host_error(&e, None),
            InvokeError::InvalidRequirement { .. } => ErrorCode::InvalidVersionRequirement,
            InvokeError::RegistryUnavailable { .. } => ErrorCode::RegistryUnavailable,
            InvokeError::Untrusted { .. } => ErrorCode::ReleaseUntrusted,
        };
        ApiError::from_display(code, error)
    }
}

impl From<DependencyError> for ApiError {
    fn from(error: DependencyError) -> ApiError {
        let code = match error {
            DependencyError::Db(e) => return e.into(),
            DependencyError::Release(e) => return e.into(),
            DependencyError::TreeTooLarge(_) => ErrorCode::InvalidConfig,
            DependencyError::Busy(_) => ErrorCode::Capacity,
            DependencyError::Corrupt(_) => return ApiError::internal(error),
            DependencyError::NoPlugin(_) => ErrorCode::NotFound,
            DependencyError::Invalid(_) => ErrorCode::InvalidQuery,
            DependencyError::Unresolvable(explanation) => {
                return ApiError::new(
                    ErrorCode::Unresolvable,
                    format!("no set of approved releases satisfies the request:\n{explanation}"),
                )
                .with_details(json!({ "explanation": explanation.lines }));
            }
        };
        ApiError::from_display(code, error)
    }
}

impl From<ResolveError> for ApiError {
    fn from(error: ResolveError) -> ApiError {
        let code = match error {
            ResolveError::Db(e) => return e.into(),
            ResolveError::Corrupt(_) => return ApiError::internal(error),
            ResolveError::NoPlugin { .. } => ErrorCode::NotFound,
            ResolveError::NoApprovedRelease { .. } => ErrorCode::NoApprovedRelease,
            ResolveError::Untrusted { .. } => ErrorCode::ReleaseUntrusted,
        };
        ApiError::from_display(code, error)
    }
}

impl From<ReleaseError> for ApiError {
    fn from(error: ReleaseError) -> ApiError {
        use ReleaseError as E;
        let code = match error {
            E::Db(e) => return e.into(),
            E::Store(e) => return e.into(),
            E::Internal(_) => return ApiError::internal(error),
            E::InvalidName(e) => return e.into(),
            E::Signature(e) => return e.into(),
            E::Imports(ImportProblem::Unsupported(ref unsupported)) => {
                let details = json!({ "unsupported": unsupported });
                return ApiError::from_display(ErrorCode::UnsupportedImports, &error)
                    .with_details(details);
            }
            E::Imports(ImportProblem::TooManyLinked(_)) => ErrorCode::UnsupportedImports,
            E::Imports(ImportProblem::Unprovided { ref imports, .. }) => {
                let details = json!({ "unprovided": imports });
                return ApiError::from_display(ErrorCode::UnsupportedImports, &error)
                    .with_details(details);
            }
            E::Imports(ImportProblem::NotRequested(ref missing)) => {
                let details = json!({ "missing": missing });
                return ApiError::from_display(ErrorCode::CapabilitiesExceeded, &error)
                    .with_details(details);
            }
            E::LimitsAboveMaxima(ref above) => {
                let details = json!({ "above": above });
                return ApiError::from_display(ErrorCode::LimitsAboveMaxima, &error)
                    .with_details(details);
            }
            E::GrantExceedsRequest(ref extra) => {
                let details = json!({ "extra": extra });
                return ApiError::from_display(ErrorCode::GrantExceedsRequest, &error)
                    .with_details(details);
            }
            E::Artifact(FetchError::Invalid { .. }) => ErrorCode::ArtifactInvalid,
            E::Artifact(FetchError::NotFound { .. } | FetchError::Unavailable { .. }) => {
                ErrorCode::ManifestUnknown
            }
            E::NotFound(_) => ErrorCode::NotFound,
            E::InvalidStatement(_) => ErrorCode::InvalidStatement,
            E::NameMismatch { .. } => ErrorCode::NameMismatch,
            E::PublisherKeyMismatch { .. } => ErrorCode::SignatureInvalid,
            E::InvalidVersion(_) => ErrorCode::InvalidVersion,
            E::InvalidCapabilities(_) => ErrorCode::InvalidCapabilities,
            E::InvalidDescription => ErrorCode::InvalidDescription,
            E::InvalidDependency(_) => ErrorCode::InvalidDependency,
            E::DependencyCycle(_) => ErrorCode::DependencyCycle,
            E::CompileQueueFull(_) => ErrorCode::Capacity,
            E::VersionExists(_) => ErrorCode::VersionExists,
            E::InvalidDigest(_) => ErrorCode::InvalidDigest,
            E::DigestMismatch { .. } => ErrorCode::DigestMismatch,
            E::ComponentInvalid(_) => ErrorCode::ComponentInvalid,
            E::ComponentTooLarge { .. } => ErrorCode::ComponentTooLarge,
            E::TagConflict { .. } => ErrorCode::TagConflict,
            E::StatementMismatch(_) => ErrorCode::StatementMismatch,
            E::SelfApproval(_) => ErrorCode::SelfApproval,
            E::ApprovalMismatch => ErrorCode::ApprovalMismatch,
            E::Decided { .. } => ErrorCode::ReleaseDecided,
            E::AlreadyApprovedByKey { .. } => ErrorCode::AlreadyApprovedByKey,
            E::InvalidReason => ErrorCode::InvalidReason,
            E::InvalidCursor => ErrorCode::InvalidCursor,
        };
        ApiError::from_display(code, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_serializes_as_its_text_and_back() {
        for &code in ErrorCode::ALL {
            let text = serde_json::to_value(code).unwrap();
            assert_eq!(text, Json_::String(code.as_str().to_owned()));
            assert_eq!(serde_json::from_value::<ErrorCode>(text).unwrap(), code);
            assert_eq!(ErrorCode::from_code(code.as_str()), Some(code));
        }
    }

    #[test]
    fn host_failures_have_no_api_code() {
        // What `api::invoke` keeps in the log instead of answering.
        assert_eq!(ErrorCode::from_code("host_failure"), None);
        assert_eq!(ErrorCode::from_code("invalid_component"), None);
        assert_eq!(
            ErrorCode::from_code("out_of_fuel"),
            Some(ErrorCode::OutOfFuel)
        );
    }

    #[test]
    fn codes_are_unique_and_only_internal_is_a_500() {
        let mut seen = std::collections::HashSet::new();
        for &code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert_eq!(
                code.status() == StatusCode::INTERNAL_SERVER_ERROR,
                code == ErrorCode::Internal,
                "{code}"
            );
        }
    }
}
