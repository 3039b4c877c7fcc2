//! `/v1/orgs/{org}/tokens`: API tokens created, listed and revoked by the
//! org's admins.

use super::{ApiPath, ApiResult, AppState, ErrorBody, UnreadJson};
use crate::domain::tokens::{self, Caller, NewToken, Permission, Role};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// A token to create.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What it is for, e.g. `portal` or `ci-publisher`.
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb]*[^\s\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb][^\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb]*$",
        max_length = 100
    )]
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Seconds until it expires (none: it does not expire).
    #[serde(default, deserialize_with = "whole_seconds")]
    pub expires_in_seconds: Option<i64>,
}

/// Creates a token; the response carries its secret, shown only this once.
#[utoipa::path(post, path = "/v1/orgs/{org}/tokens", tag = "tokens", request_body = CreateToken,
    params(("org" = String, Path, description = "organization")),
    responses((status = 201, body = NewToken), (status = 400, body = ErrorBody),
               (status = 403, body = ErrorBody)))]
async fn create_token(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
    body: UnreadJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<NewToken>)> {
    caller.require(Permission::Administer, &org)?;
    let body = body.read(&caller).await?;
    let token = tokens::create(
        &state.db,
        &org,
        &caller.actor(),
        &body.name,
        body.role,
        body.expires_in_seconds,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(token)))
}

/// The org's tokens (without secrets).
#[utoipa::path(get, path = "/v1/orgs/{org}/tokens", tag = "tokens",
    params(("org" = String, Path, description = "organization")),
    responses((status = 200, body = Vec<NewToken>), (status = 403, body = ErrorBody)))]
async fn list_tokens(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
) -> ApiResult<Json<Vec<NewToken>>> {
    caller.require(Permission::Administer, &org)?;
    Ok(Json(tokens::list(&state.db, &org).await?))
}

/// Revokes a token: it stops working at once. The org's last active admin
/// token is not revoked (409 `last_admin_token`).
#[utoipa::path(delete, path = "/v1/orgs/{org}/tokens/{id}", tag = "tokens",
    params(("org" = String, Path, description = "organization"), ("id" = String, Path, description = "token id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn revoke_token(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::Administer, &org)?;
    tokens::revoke(&state.db, &org, &caller.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A whole number of seconds, also when a client's JSON writes it as
/// `5171.0` (JSON has one number type; the document says `integer`, which
/// such a number is).
fn whole_seconds<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    let number: Option<serde_json::Number> = serde::Deserialize::deserialize(deserializer)?;
    let Some(number) = number else {
        return Ok(None);
    };
    if let Some(whole) = number.as_i64() {
        return Ok(Some(whole));
    }
    match number.as_f64() {
        Some(float) if float.fract() == 0.0 && float.abs() < 9.0e15 => Ok(Some(float as i64)),
        _ => Err(serde::de::Error::custom(format!(
            "expected a whole number of seconds, got {number}"
        ))),
    }
}
