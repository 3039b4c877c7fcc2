//! Organizations: the bootstrap of the first one, creating more (operator
//! admins only), and `whoami`.

use super::auth::{Caller, Permission, Role};
use super::tokens::{NewToken, insert_token};
use super::{ApiError, ApiJson, ApiPath, ApiResult, AppState, check_name};
use crate::audit::Change;
use crate::db::now_ms;
use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/whoami", get(whoami))
        .route("/v1/orgs", post(create_org))
        .route("/v1/orgs/{org}", get(get_org))
}

/// Creates the operator organization and its first admin token if the
/// database has no organization yet. Returns the token's secret then, `None`
/// on every later start.
pub async fn bootstrap(state: &AppState, org: &str) -> Result<Option<String>, ApiError> {
    check_name("organization", org)?;
    let existing: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orgs")
        .fetch_one(state.db.pool())
        .await?;
    if existing.0 > 0 {
        return Ok(None);
    }
    let (secret, _) = insert_org(state, org, true, "system").await?;
    Ok(Some(secret))
}

async fn insert_org(
    state: &AppState,
    org: &str,
    operator: bool,
    actor: &str,
) -> ApiResult<(String, NewToken)> {
    let mut change = Change::begin(state.db.pool(), org).await?;
    let inserted = sqlx::query("INSERT INTO orgs (name, operator, created_at) VALUES ($1, $2, $3)")
        .bind(org)
        .bind(i64::from(operator))
        .bind(now_ms())
        .execute(change.tx())
        .await;
    match inserted {
        Err(e) if crate::db::is_duplicate(&e) => {
            return Err(ApiError::conflict(
                "org_exists",
                format!("organization {org:?} already exists"),
            ));
        }
        other => other?,
    };
    let (secret, token) =
        insert_token(change.tx(), org, "first admin", Role::Admin, actor, None).await?;
    change
        .commit(
            actor,
            "org.create",
            org,
            json!({ "operator": operator, "admin_token": token.id }),
        )
        .await?;
    Ok((secret, token))
}

/// The caller, as the server sees it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// Token id.
    pub token_id: String,
    /// Organization.
    pub org: String,
    /// Role.
    pub role: Role,
    /// Whether the org may create other organizations.
    pub operator: bool,
}

/// Who the presented token is.
#[utoipa::path(get, path = "/v1/whoami", tag = "orgs",
    responses((status = 200, body = WhoAmI), (status = 401, body = super::ErrorBody)))]
async fn whoami(caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        token_id: caller.token_id,
        org: caller.org,
        role: caller.role,
        operator: caller.operator,
    })
}

/// A new organization.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    /// Its name: lowercase letters, digits, `.`, `_`, `-`.
    pub name: String,
}

/// The new organization and its first admin token (shown once).
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedOrg {
    /// The organization.
    pub name: String,
    /// The first admin token of the new org.
    pub admin_token: NewToken,
}

/// Creates an organization with a first admin token. Operator admins only.
#[utoipa::path(post, path = "/v1/orgs", tag = "orgs", request_body = CreateOrg,
    responses((status = 201, body = CreatedOrg), (status = 403, body = super::ErrorBody),
               (status = 409, body = super::ErrorBody)))]
async fn create_org(
    caller: Caller,
    axum::extract::State(state): axum::extract::State<AppState>,
    ApiJson(body): ApiJson<CreateOrg>,
) -> ApiResult<(StatusCode, Json<CreatedOrg>)> {
    caller.require(Permission::Administer, &caller.org.clone())?;
    if !caller.operator {
        return Err(ApiError::forbidden(
            "not_operator",
            "only admins of the operator organization create organizations",
        ));
    }
    check_name("organization", &body.name)?;
    let (secret, mut token) = insert_org(&state, &body.name, false, &caller.actor()).await?;
    token.secret = Some(secret);
    Ok((
        StatusCode::CREATED,
        Json(CreatedOrg {
            name: body.name,
            admin_token: token,
        }),
    ))
}

/// An organization.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Org {
    /// Name.
    pub name: String,
    /// Whether it is the operator organization.
    pub operator: bool,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Approvals from distinct admin keys a release of this server needs.
    pub approvals_required: u32,
}

/// One organization.
#[utoipa::path(get, path = "/v1/orgs/{org}", tag = "orgs",
    params(("org" = String, Path, description = "organization")),
    responses((status = 200, body = Org), (status = 403, body = super::ErrorBody)))]
async fn get_org(
    caller: Caller,
    axum::extract::State(state): axum::extract::State<AppState>,
    ApiPath(org): ApiPath<String>,
) -> ApiResult<Json<Org>> {
    caller.require(Permission::Read, &org)?;
    let (name, operator, created_at): (String, i64, i64) =
        sqlx::query_as("SELECT name, operator, created_at FROM orgs WHERE name = $1")
            .bind(&org)
            .fetch_optional(state.db.pool())
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no organization {org:?}")))?;
    Ok(Json(Org {
        name,
        operator: operator != 0,
        created_at,
        approvals_required: state.approvals_required,
    }))
}
