//! `GET /v1/orgs/{org}/audit`: the organization's audit chain, page by page,
//! with its head, so that a client can verify it end to end.

use super::{ApiPath, ApiQuery, ApiResult, AppState, ErrorBody, page_size};
use crate::audit::{self, AuditPage};
use crate::domain::tokens::{Caller, Permission};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest page of audit entries.
pub const MAX_AUDIT_PAGE: i64 = 1000;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(own_audit))
        .routes(routes!(org_audit))
}

/// `?after=&limit=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries after this sequence number (default 0: from the start).
    pub after: Option<i64>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// The audit chain of the caller's own organization. Admins only.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = ErrorBody)))]
async fn own_audit(
    caller: Caller,
    state: State<AppState>,
    query: ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let org = caller.org.clone();
    org_audit(caller, state, ApiPath(org), query).await
}

/// The audit chain of an organization. Admins only.
#[utoipa::path(get, path = "/v1/orgs/{org}/audit", tag = "audit",
    params(("org" = String, Path, description = "organization"), AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = ErrorBody)))]
async fn org_audit(
    caller: Caller,
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    caller.require(Permission::Administer, &org)?;
    let limit = page_size(query.limit, 100, MAX_AUDIT_PAGE)?;
    let page = audit::read_page(&state.db, &org, query.after.unwrap_or(0), limit).await?;
    Ok(Json(page))
}
