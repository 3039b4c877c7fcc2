//! The one error type of the REST API: `{"error": {"code", "message", "details"}}`
//! with the right status, and nothing internal in a 500.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value as Json_, json};

/// An API failure, already worded for the caller.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code, e.g. `version_exists`.
    pub code: &'static str,
    /// One sentence for people.
    pub message: String,
    /// Structured particulars (`null` if none).
    pub details: Json_,
}

/// The body of every error response (for the OpenAPI document).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Structured particulars, or null.
    #[schema(value_type = Object)]
    pub details: Json_,
}

/// The API's result type.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
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

    /// 400.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    /// 422.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 403.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 401.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 500: the cause is logged, the caller learns only that it happened.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        let incident = format!("{:016x}", rand::random::<u64>());
        tracing::error!(incident, "internal error: {cause}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("internal error (incident {incident}; the server log has the cause)"),
        )
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> ApiError {
        if crate::db::is_unavailable(&error) {
            tracing::warn!("database unavailable: {error}");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the database is unavailable; try again shortly",
            )
        } else {
            ApiError::internal(format!("database: {error}"))
        }
    }
}

impl From<crate::oci::OciError> for ApiError {
    fn from(error: crate::oci::OciError) -> ApiError {
        match error {
            crate::oci::OciError::Internal(cause) => {
                ApiError::internal(format!("oci store: {cause}"))
            }
            other => ApiError::unprocessable("artifact_invalid", other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": { "code": self.code, "message": self.message, "details": self.details }
        });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"warden\""),
            );
        }
        response
    }
}
