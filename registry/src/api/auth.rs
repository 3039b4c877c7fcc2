//! Who is calling: the bearer token of a request, authenticated by the
//! domain's tokens module (`Caller` is its answer), and the same failure
//! said in the OCI registry's terms for `/v2`.

use super::AppState;
use super::error::ApiError;
use crate::domain::tokens::{AuthError, Caller};
use crate::oci::OciError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

impl From<AuthError> for OciError {
    fn from(error: AuthError) -> OciError {
        match error {
            AuthError::Missing | AuthError::Unknown | AuthError::Revoked | AuthError::Expired => {
                OciError::Unauthorized
            }
            AuthError::Db(e) if crate::db::is_unavailable(&e) => OciError::Unavailable,
            other => OciError::Internal(std::io::Error::other(other.to_string())),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let secret = crate::oci::token(&parts.headers);
        Ok(state.snapshot.caller(&state.db, secret.as_deref()).await?)
    }
}
