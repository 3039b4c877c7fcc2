//! `GET /v1/orgs/{org}/audit`: the organization's audit chain, page by page,
//! with its head, so that a client can verify it end to end.

use super::auth::{Caller, Permission};
use super::{ApiPath, ApiQuery, ApiResult, AppState, page_size};
use crate::audit::{AuditEntry, AuditHead, GENESIS};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};

/// Largest page of audit entries.
pub const MAX_AUDIT_PAGE: i64 = 1000;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/audit", get(own_audit))
        .route("/v1/orgs/{org}/audit", get(audit))
}

/// `?after=&limit=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries after this sequence number (default 0: from the start).
    pub after: Option<i64>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<i64>,
}

/// A page of the audit chain.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Entries in sequence order.
    pub entries: Vec<AuditEntry>,
    /// The chain's head when the page was read.
    pub head: AuditHead,
}

/// The audit chain of the caller's own organization. Admins only.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = super::ErrorBody)))]
pub(super) async fn own_audit(
    caller: Caller,
    state: State<AppState>,
    query: ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let org = caller.org.clone();
    audit(caller, state, ApiPath(org), query).await
}

/// The audit chain of an organization. Admins only.
#[utoipa::path(get, path = "/v1/orgs/{org}/audit", tag = "audit",
    params(("org" = String, Path, description = "organization"), AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = super::ErrorBody)))]
async fn audit(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    caller.require(Permission::Administer, &org)?;
    let limit = page_size(query.limit, 100, MAX_AUDIT_PAGE)?;
    let mut tx = state.db.pool().begin().await?;
    let head: Option<AuditHead> =
        sqlx::query_as("SELECT org, seq, hash FROM audit_heads WHERE org = $1")
            .bind(&org)
            .fetch_optional(&mut *tx)
            .await?;
    let entries = sqlx::query_as(
        "SELECT org, seq, at, actor, action, target, details, prev_hash, hash FROM audit
         WHERE org = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(&org)
    .bind(query.after.unwrap_or(0))
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(AuditPage {
        entries,
        head: head.unwrap_or(AuditHead {
            org,
            seq: 0,
            hash: GENESIS.to_owned(),
        }),
    }))
}
