//! `/v1/orgs/{org}/keys`: signing keys registered, listed and revoked by the
//! org's admins.

use super::{ApiPath, ApiResult, AppState, ErrorBody, UnreadJson};
use crate::domain::keys::{self, KeyKind, SigningKey};
use crate::domain::tokens::{Caller, Permission};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, add_key))
        .routes(routes!(revoke_key))
}

/// A key to register.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddKey {
    /// `ed25519:<base64>`, as `warden keygen` prints it.
    #[schema(pattern = r"^ed25519:[A-Za-z0-9+/]{43}=$")]
    pub public_key: String,
    /// What it signs.
    pub kind: KeyKind,
    /// Who holds it. Approvals are refused when the approving key's owner is
    /// the publishing key's owner.
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb]*[^\s\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb][^\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb]*$",
        max_length = 200
    )]
    pub owner: String,
}

/// Registers a key.
#[utoipa::path(post, path = "/v1/orgs/{org}/keys", tag = "keys", request_body = AddKey,
    params(("org" = String, Path, description = "organization")),
    responses((status = 201, body = SigningKey), (status = 400, body = ErrorBody),
               (status = 409, body = ErrorBody)))]
async fn add_key(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
    body: UnreadJson<AddKey>,
) -> ApiResult<(StatusCode, Json<SigningKey>)> {
    caller.require(Permission::Administer, &org)?;
    let body = body.read(&caller).await?;
    let key = keys::add(
        &state.db,
        &org,
        &caller.actor(),
        &body.public_key,
        body.kind,
        &body.owner,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(key)))
}

/// The org's keys, revoked ones included.
#[utoipa::path(get, path = "/v1/orgs/{org}/keys", tag = "keys",
    params(("org" = String, Path, description = "organization")),
    responses((status = 200, body = Vec<SigningKey>), (status = 403, body = ErrorBody)))]
async fn list_keys(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
) -> ApiResult<Json<Vec<SigningKey>>> {
    caller.require(Permission::Read, &org)?;
    Ok(Json(keys::list(&state.db, &org).await?))
}

/// Revokes a key: its signatures no longer count, for new releases and approvals
/// and for the releases it signed.
#[utoipa::path(post, path = "/v1/orgs/{org}/keys/{key_id}/revoke", tag = "keys",
    params(("org" = String, Path, description = "organization"), ("key_id" = String, Path, description = "key id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn revoke_key(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath((org, key_id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::Administer, &org)?;
    keys::revoke(&state.db, &org, &caller.actor(), &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
