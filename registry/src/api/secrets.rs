//! `/v1/plugins/{org}/{name}/secrets[/{secret}]`: a plugin's secrets, set,
//! listed and removed by the org's admins. Values go in and never come out.

use super::{ApiPath, ApiResult, AppState, ErrorBody, UnreadJson};
use crate::api::error::{ApiError, ErrorCode};
use crate::domain::secrets::{self, MAX_SECRET_VALUE_BYTES, SecretInfo, SecretList};
use crate::domain::tokens::{Caller, Permission};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_secrets))
        .routes(routes!(set_secret, remove_secret))
}

/// A secret's new value (the body's schema; the handler reads the body as
/// JSON and takes the field itself, see [`value_of`]).
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "documents the body; never deserialized, so errors never quote it"
)]
#[serde(deny_unknown_fields)]
pub struct SecretValue {
    /// The value, at most 64 KiB of UTF-8. It is encrypted at rest and never
    /// shown again.
    #[schema(max_length = 65536)]
    pub value: String,
}

/// Reads `{"value": "..."}`, with errors that never repeat what was sent
/// (a parser's message may quote a value).
fn value_of(body: Value) -> Result<String, ApiError> {
    let bad = || {
        ApiError::new(
            ErrorCode::InvalidBody,
            "expected {\"value\": \"...\"}: one field, a string",
        )
    };
    let Value::Object(mut fields) = body else {
        return Err(bad());
    };
    match (fields.remove("value"), fields.is_empty()) {
        (Some(Value::String(value)), true) => Ok(value),
        _ => Err(bad()),
    }
}

/// The names of a plugin's secrets, and when and by whom each was last set;
/// never a value.
#[utoipa::path(get, path = "/v1/plugins/{org}/{name}/secrets", tag = "secrets",
    params(("org" = String, Path, description = "organization"), ("name" = String, Path, description = "plugin")),
    responses((status = 200, body = SecretList), (status = 404, body = ErrorBody)))]
async fn list_secrets(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, name)): ApiPath<(String, String)>,
) -> ApiResult<Json<SecretList>> {
    caller.require(Permission::Administer, &org)?;
    Ok(Json(secrets::list(&state.db, &org, &name).await?))
}

/// Sets a secret of a plugin (write only: the answer never holds the value).
/// A release reads it if it was granted `secret:NAME`; the next invocation
/// on every replica reads the new value.
#[utoipa::path(put, path = "/v1/plugins/{org}/{name}/secrets/{secret}", tag = "secrets",
    request_body = SecretValue,
    params(("org" = String, Path, description = "organization"), ("name" = String, Path, description = "plugin"),
        ("secret" = String, Path, description = "secret name: ASCII letters, digits and _, not starting with a digit")),
    responses((status = 200, body = SecretInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_secret(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, name, secret)): ApiPath<(String, String, String)>,
    body: UnreadJson<Value>,
) -> ApiResult<Json<SecretInfo>> {
    caller.require(Permission::Administer, &org)?;
    let value = value_of(body.read(&caller).await?)?;
    const { assert!(MAX_SECRET_VALUE_BYTES < super::MAX_BODY_BYTES) };
    let info = secrets::set(
        &state.db,
        &state.secrets_key,
        &org,
        &name,
        &secret,
        &value,
        &caller.actor(),
    )
    .await?;
    Ok(Json(info))
}

/// Removes a secret of a plugin: the next invocation reads none.
#[utoipa::path(delete, path = "/v1/plugins/{org}/{name}/secrets/{secret}", tag = "secrets",
    params(("org" = String, Path, description = "organization"), ("name" = String, Path, description = "plugin"),
        ("secret" = String, Path, description = "secret name")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn remove_secret(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, name, secret)): ApiPath<(String, String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::Administer, &org)?;
    secrets::remove(&state.db, &org, &name, &secret, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_bad_body_is_refused_without_repeating_it() {
        assert_eq!(value_of(json!({ "value": "s3cret" })).unwrap(), "s3cret");
        for bad in [
            json!({ "value": 123456789 }),
            json!({ "value": "s3cret", "other": "s3cret" }),
            json!(["s3cret"]),
            json!("s3cret"),
            json!({}),
        ] {
            let error = value_of(bad).unwrap_err();
            assert!(!format!("{error:?}").contains("s3cret"), "{error:?}");
            assert!(!format!("{error:?}").contains("123456789"), "{error:?}");
        }
    }
}
