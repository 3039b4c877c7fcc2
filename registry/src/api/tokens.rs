//! API tokens: created by an org's admins with a role and an optional expiry,
//! shown once, stored as a SHA-256 hash, revocable.

use super::auth::{Caller, Permission, Role, new_secret, secret_hash};
use super::{ApiError, ApiJson, ApiPath, ApiResult, AppState};
use crate::audit::Change;
use crate::db::now_ms;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/orgs/{org}/tokens", get(list_tokens).post(create_token))
        .route("/v1/orgs/{org}/tokens/{id}", delete(revoke_token))
}

/// A token as listed (never with its secret, except once at creation).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewToken {
    /// Its id (used to revoke it; not a secret).
    pub id: String,
    /// What it is for.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Unix milliseconds after which it stops working, if any.
    pub expires_at: Option<i64>,
    /// Unix milliseconds at which it was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// The secret: only in the response that creates the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Inserts a token; returns its secret and its listing.
pub(super) async fn insert_token(
    tx: &mut sqlx::AnyConnection,
    org: &str,
    name: &str,
    role: Role,
    created_by: &str,
    expires_at: Option<i64>,
) -> Result<(String, NewToken), sqlx::Error> {
    let secret = new_secret();
    let id = format!("tok_{}", hex::encode(rand::random::<[u8; 8]>()));
    sqlx::query(
        "INSERT INTO tokens (id, org, name, role, secret_hash, created_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(org)
    .bind(name)
    .bind(role.as_str())
    .bind(secret_hash(&secret))
    .bind(created_by)
    .bind(now_ms())
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    Ok((
        secret,
        NewToken {
            id,
            name: name.to_owned(),
            role,
            expires_at,
            revoked_at: None,
            secret: None,
        },
    ))
}

/// A token to create.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What it is for, e.g. `portal` or `ci-publisher`.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Seconds until it expires (none: it does not expire).
    pub expires_in_seconds: Option<i64>,
}

/// Creates a token; the response carries its secret, shown only this once.
#[utoipa::path(post, path = "/v1/orgs/{org}/tokens", tag = "tokens", request_body = CreateToken,
    params(("org" = String, Path, description = "organization")),
    responses((status = 201, body = NewToken), (status = 400, body = super::ErrorBody),
               (status = 403, body = super::ErrorBody)))]
async fn create_token(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
    ApiJson(body): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<NewToken>)> {
    caller.require(Permission::Administer, &org)?;
    if body.name.trim().is_empty() || body.name.len() > 100 {
        return Err(ApiError::bad_request(
            "invalid_name",
            "a token needs a name of 1 to 100 characters",
        ));
    }
    let expires_at = match body.expires_in_seconds {
        None => None,
        Some(s) if (1..=10 * 365 * 86_400).contains(&s) => Some(now_ms() + s * 1000),
        Some(s) => {
            return Err(ApiError::bad_request(
                "invalid_expiry",
                format!("expires_in_seconds must be between 1 and 315360000, got {s}"),
            ));
        }
    };
    let mut change = Change::begin(state.db.pool(), &org).await?;
    let (secret, mut token) = insert_token(
        change.tx(),
        &org,
        &body.name,
        body.role,
        &caller.actor(),
        expires_at,
    )
    .await?;
    change
        .commit(
            &caller.actor(),
            "token.create",
            &token.id,
            json!({ "name": token.name, "role": token.role, "expires_at": expires_at }),
        )
        .await?;
    token.secret = Some(secret);
    Ok((StatusCode::CREATED, Json(token)))
}

#[derive(sqlx::FromRow)]
struct TokenListRow {
    id: String,
    name: String,
    role: String,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

/// The org's tokens (without secrets).
#[utoipa::path(get, path = "/v1/orgs/{org}/tokens", tag = "tokens",
    params(("org" = String, Path, description = "organization")),
    responses((status = 200, body = Vec<NewToken>), (status = 403, body = super::ErrorBody)))]
async fn list_tokens(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
) -> ApiResult<Json<Vec<NewToken>>> {
    caller.require(Permission::Administer, &org)?;
    let rows: Vec<TokenListRow> = sqlx::query_as(
        "SELECT id, name, role, expires_at, revoked_at FROM tokens WHERE org = $1 ORDER BY created_at, id",
    )
    .bind(&org)
    .fetch_all(state.db.pool())
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(NewToken {
                id: row.id,
                name: row.name,
                role: row.role.parse().map_err(ApiError::internal)?,
                expires_at: row.expires_at,
                revoked_at: row.revoked_at,
                secret: None,
            })
        })
        .collect::<ApiResult<Vec<_>>>()
        .map(Json)
}

/// Revokes a token: it stops working at once.
#[utoipa::path(delete, path = "/v1/orgs/{org}/tokens/{id}", tag = "tokens",
    params(("org" = String, Path, description = "organization"), ("id" = String, Path, description = "token id")),
    responses((status = 204), (status = 404, body = super::ErrorBody)))]
async fn revoke_token(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::Administer, &org)?;
    let mut change = Change::begin(state.db.pool(), &org).await?;
    let updated = sqlx::query(
        "UPDATE tokens SET revoked_at = $1 WHERE org = $2 AND id = $3 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(&org)
    .bind(&id)
    .execute(change.tx())
    .await?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::not_found(format!(
            "no active token {id:?} in {org:?}"
        )));
    }
    change
        .commit(&caller.actor(), "token.revoke", &id, json!({}))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
