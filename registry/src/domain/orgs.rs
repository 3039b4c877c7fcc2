//! Organizations: the bootstrap of the first one (the operator org) and
//! creating more, each with a first admin token.

use super::names::{InvalidName, check_name};
use super::tokens::{self, NewToken, Role};
use crate::audit::{Action, Change};
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
    /// The first admin token could not be kept (written to its file).
    #[error("keeping the first admin token: {0}")]
    KeepToken(std::io::Error),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Creates the operator organization and its first admin token if the
/// database has no organization yet. Run under the database's start-up
/// lock (`Db::startup_lock`), so that of replicas starting at once exactly
/// one creates them. The secret is handed to `stage` (which keeps it where
/// it is not yet read as the token) before the token exists, and `publish`
/// makes it visible once the token has committed: a start whose creation
/// did not commit never publishes a token, and one that crashed after its
/// commit left the staged secret for [`staged_token_exists`] to finish
/// with. Returns the secret then, `None` on every later start.
pub async fn bootstrap(
    db: &Db,
    org: &str,
    stage: impl FnOnce(&str) -> std::io::Result<()>,
    publish: impl FnOnce() -> std::io::Result<()>,
) -> Result<Option<String>, OrgError> {
    check_name("organization", org)?;
    let (existing,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orgs")
        .fetch_one(db.pool())
        .await?;
    if existing > 0 {
        return Ok(None);
    }
    let secret = tokens::new_secret();
    stage(&secret).map_err(OrgError::KeepToken)?;
    insert(db, org, true, "system", Some(secret.clone())).await?;
    publish().map_err(OrgError::KeepToken)?;
    Ok(Some(secret))
}

/// Whether a staged first admin token (left by a start that crashed after
/// staging it) is a token of the database: then its creation committed
/// and the staged secret is the operator's token.
pub async fn staged_token_exists(db: &Db, secret: &str) -> Result<bool, OrgError> {
    match tokens::authenticate(db, Some(secret)).await {
        Ok(_) => Ok(true),
        Err(tokens::AuthError::Db(error)) => Err(OrgError::Db(error)),
        Err(_) => Ok(false),
    }
}

/// Creates an organization (not an operator one) with a first admin token.
pub async fn create(db: &Db, org: &str, actor: &str) -> Result<CreatedOrg, OrgError> {
    check_name("organization", org)?;
    insert(db, org, false, actor, None).await
}

async fn insert(
    db: &Db,
    org: &str,
    operator: bool,
    actor: &str,
    secret: Option<String>,
) -> Result<CreatedOrg, OrgError> {
    // Two creates of one new org race on its audit chain's first row: the
    // loser is told the org exists, like any later create.
    let mut change = Change::begin(db, org).await.map_err(|e| {
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
    let secret = secret.unwrap_or_else(tokens::new_secret);
    let token = tokens::insert_with_secret(
        &mut change,
        org,
        "first admin",
        Role::Admin,
        actor,
        None,
        secret,
    )
    .await?;
    change
        .commit(
            actor,
            Action::OrgCreate,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_first_admin_token_that_could_not_be_kept_leaves_no_org_behind() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_sqlite(dir.path()).await.unwrap();
        // The token cannot be staged (a full disk, say): nothing is
        // created, nothing published, so the next start bootstraps again.
        let failed = bootstrap(
            &db,
            "acme",
            |_| Err(std::io::Error::other("disk full")),
            || panic!("published a token that was not created"),
        )
        .await;
        assert!(matches!(failed, Err(OrgError::KeepToken(_))));
        let mut staged = None;
        let mut published = false;
        let secret = bootstrap(
            &db,
            "acme",
            |secret| {
                staged = Some(secret.to_owned());
                Ok(())
            },
            || {
                published = true;
                Ok(())
            },
        )
        .await
        .unwrap()
        .expect("bootstrapped the second time");
        assert_eq!(staged.as_deref(), Some(secret.as_str()));
        assert!(published, "published once created");
        assert!(staged_token_exists(&db, &secret).await.unwrap());
        assert!(!staged_token_exists(&db, "wdn_not-a-token").await.unwrap());
        let caller = tokens::authenticate(&db, Some(&secret)).await.unwrap();
        assert_eq!((caller.org.as_str(), caller.role), ("acme", Role::Admin));
        // Once done, never again.
        let again = bootstrap(
            &db,
            "acme",
            |_| panic!("bootstrapped twice"),
            || panic!("published twice"),
        )
        .await;
        assert!(again.unwrap().is_none());
    }
}
