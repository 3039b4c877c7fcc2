//! Organizations: the bootstrap of the first one (the operator org) and
//! creating more, each with a first admin token.

use super::names::{InvalidName, check_name};
use super::tokens::{self, NewToken, Role};
use crate::audit::Change;
use crate::db::{Db, is_duplicate, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// An organization.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
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

/// The new organization and its first admin token (shown once).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedOrg {
    /// The organization.
    pub name: String,
    /// The first admin token of the new org.
    pub admin_token: NewToken,
}

/// Why an organization could not be created or read.
#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    /// The name is not valid.
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// The name is taken.
    #[error("organization {0:?} already exists")]
    Exists(String),
    /// No such organization.
    #[error("no organization {0:?}")]
    NotFound(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Creates the operator organization and its first admin token if the
/// database has no organization yet. Returns the token's secret then, `None`
/// on every later start.
pub async fn bootstrap(db: &Db, org: &str) -> Result<Option<String>, OrgError> {
    check_name("organization", org)?;
    let (existing,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orgs")
        .fetch_one(db.pool())
        .await?;
    if existing > 0 {
        return Ok(None);
    }
    let created = insert(db, org, true, "system").await?;
    Ok(created.admin_token.secret)
}

/// Creates an organization (not an operator one) with a first admin token.
pub async fn create(db: &Db, org: &str, actor: &str) -> Result<CreatedOrg, OrgError> {
    check_name("organization", org)?;
    insert(db, org, false, actor).await
}

async fn insert(db: &Db, org: &str, operator: bool, actor: &str) -> Result<CreatedOrg, OrgError> {
    // Two creates of one new org race on its audit chain's first row: the
    // loser is told the org exists, like any later create.
    let mut change = Change::begin(db.pool(), org).await.map_err(|e| {
        if is_duplicate(&e) {
            OrgError::Exists(org.to_owned())
        } else {
            OrgError::Db(e)
        }
    })?;
    let inserted = sqlx::query("INSERT INTO orgs (name, operator, created_at) VALUES ($1, $2, $3)")
        .bind(org)
        .bind(i64::from(operator))
        .bind(now_ms())
        .execute(change.tx())
        .await;
    match inserted {
        Err(e) if is_duplicate(&e) => return Err(OrgError::Exists(org.to_owned())),
        other => other?,
    };
    let token = tokens::insert(&mut change, org, "first admin", Role::Admin, actor, None).await?;
    change
        .commit(
            actor,
            "org.create",
            org,
            json!({ "operator": operator, "admin_token": token.id }),
        )
        .await?;
    Ok(CreatedOrg {
        name: org.to_owned(),
        admin_token: token,
    })
}

/// One organization.
pub async fn get(db: &Db, org: &str, approvals_required: u32) -> Result<Org, OrgError> {
    let row: Option<(String, i64, i64)> =
        sqlx::query_as("SELECT name, operator, created_at FROM orgs WHERE name = $1")
            .bind(org)
            .fetch_optional(db.pool())
            .await?;
    let (name, operator, created_at) = row.ok_or_else(|| OrgError::NotFound(org.to_owned()))?;
    Ok(Org {
        name,
        operator: operator != 0,
        created_at,
        approvals_required,
    })
}
