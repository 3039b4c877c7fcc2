//! Signing keys: publisher keys (sign releases) and admin keys (sign
//! approvals), registered per organization by its admins, and revoked.

use super::auth::{Caller, Permission};
use super::{ApiError, ApiJson, ApiPath, ApiResult, AppState};
use crate::audit::Change;
use crate::db::now_ms;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use warden_host::PublicKey;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/orgs/{org}/keys", get(list_keys).post(add_key))
        .route("/v1/orgs/{org}/keys/{key_id}/revoke", post(revoke_key))
}

/// What a key signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// Release statements.
    Publisher,
    /// Approval statements.
    Admin,
}

impl KeyKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            KeyKind::Publisher => "publisher",
            KeyKind::Admin => "admin",
        }
    }
}

/// A registered key.
#[derive(Clone, Debug, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SigningKey {
    /// Key id: hex of the first 16 bytes of SHA-256 of the public key.
    pub key_id: String,
    /// `ed25519:<base64>`.
    pub public_key: String,
    /// `publisher` or `admin`.
    pub kind: String,
    /// Who holds it (a person or a system), as the admin registered it.
    pub owner: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds at which it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

/// A key to register.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddKey {
    /// `ed25519:<base64>`, as `warden keygen` prints it.
    pub public_key: String,
    /// What it signs.
    pub kind: KeyKind,
    /// Who holds it. Approvals are refused when the approving key's owner is
    /// the publishing key's owner.
    pub owner: String,
}

/// Registers a key.
#[utoipa::path(post, path = "/v1/orgs/{org}/keys", tag = "keys", request_body = AddKey,
    params(("org" = String, Path, description = "organization")),
    responses((status = 201, body = SigningKey), (status = 400, body = super::ErrorBody),
               (status = 409, body = super::ErrorBody)))]
async fn add_key(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
    ApiJson(body): ApiJson<AddKey>,
) -> ApiResult<(StatusCode, Json<SigningKey>)> {
    caller.require(Permission::Administer, &org)?;
    let key: PublicKey = body
        .public_key
        .parse()
        .map_err(|e: warden_host::TrustError| {
            ApiError::bad_request("invalid_key", e.to_string())
        })?;
    if body.owner.trim().is_empty() || body.owner.len() > 200 {
        return Err(ApiError::bad_request(
            "invalid_owner",
            "a key needs an owner of 1 to 200 characters",
        ));
    }
    let row = SigningKey {
        key_id: key.key_id(),
        public_key: key.to_string(),
        kind: body.kind.as_str().to_owned(),
        owner: body.owner.trim().to_owned(),
        created_at: now_ms(),
        revoked_at: None,
    };
    let mut change = Change::begin(state.db.pool(), &org).await?;
    let inserted = sqlx::query(
        "INSERT INTO signing_keys (org, key_id, public_key, kind, owner, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&org)
    .bind(&row.key_id)
    .bind(&row.public_key)
    .bind(&row.kind)
    .bind(&row.owner)
    .bind(row.created_at)
    .execute(change.tx())
    .await;
    match inserted {
        Err(e) if crate::db::is_duplicate(&e) => {
            return Err(ApiError::conflict(
                "key_exists",
                format!("key {} is already registered in {org:?}", row.key_id),
            ));
        }
        other => other?,
    };
    change
        .commit(
            &caller.actor(),
            "key.add",
            &row.key_id,
            json!({ "kind": row.kind, "owner": row.owner, "public_key": row.public_key }),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// The org's keys, revoked ones included.
#[utoipa::path(get, path = "/v1/orgs/{org}/keys", tag = "keys",
    params(("org" = String, Path, description = "organization")),
    responses((status = 200, body = Vec<SigningKey>), (status = 403, body = super::ErrorBody)))]
async fn list_keys(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
) -> ApiResult<Json<Vec<SigningKey>>> {
    caller.require(Permission::Read, &org)?;
    let keys = sqlx::query_as(
        "SELECT key_id, public_key, kind, owner, created_at, revoked_at FROM signing_keys
         WHERE org = $1 ORDER BY created_at, key_id",
    )
    .bind(&org)
    .fetch_all(state.db.pool())
    .await?;
    Ok(Json(keys))
}

/// Revokes a key: its signatures no longer count, for new releases and approvals
/// and for the releases it signed.
#[utoipa::path(post, path = "/v1/orgs/{org}/keys/{key_id}/revoke", tag = "keys",
    params(("org" = String, Path, description = "organization"), ("key_id" = String, Path, description = "key id")),
    responses((status = 204), (status = 404, body = super::ErrorBody)))]
async fn revoke_key(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, key_id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::Administer, &org)?;
    let mut change = Change::begin(state.db.pool(), &org).await?;
    let updated = sqlx::query(
        "UPDATE signing_keys SET revoked_at = $1 WHERE org = $2 AND key_id = $3 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(&org)
    .bind(&key_id)
    .execute(change.tx())
    .await?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::not_found(format!(
            "no active key {key_id:?} in {org:?}"
        )));
    }
    change
        .commit(&caller.actor(), "key.revoke", &key_id, json!({}))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The active keys of `kind` in `org`.
pub(super) async fn active_keys(
    state: &AppState,
    org: &str,
    kind: KeyKind,
) -> ApiResult<Vec<(PublicKey, SigningKey)>> {
    let rows: Vec<SigningKey> = sqlx::query_as(
        "SELECT key_id, public_key, kind, owner, created_at, revoked_at FROM signing_keys
         WHERE org = $1 AND kind = $2 AND revoked_at IS NULL",
    )
    .bind(org)
    .bind(kind.as_str())
    .fetch_all(state.db.pool())
    .await?;
    rows.into_iter()
        .map(|row| {
            let key = row.public_key.parse().map_err(ApiError::internal)?;
            Ok((key, row))
        })
        .collect()
}
