//! API tokens and who is calling: tokens created by an org's admins with a
//! role and an optional expiry, shown once, stored as a SHA-256 hash,
//! revocable; the roles and what each may do; the check every request makes
//! against the role and the organization of the object.

use crate::audit::{Action, Change};
use crate::db::{Db, now_ms};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// What a token may do within its organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything in the org: tokens, keys, approvals, configuration, audit.
    Admin,
    /// Publish releases (and read).
    Publisher,
    /// Invoke approved plugins (and read): the portal.
    Invoker,
    /// Read the catalog and releases.
    Viewer,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Publisher, Role::Invoker, Role::Viewer];

    /// Whether this role carries `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        match permission {
            Permission::Read => true,
            Permission::Invoke => matches!(self, Role::Admin | Role::Invoker),
            Permission::Publish => matches!(self, Role::Admin | Role::Publisher),
            Permission::Administer => self == Role::Admin,
        }
    }

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Publisher => "publisher",
            Role::Invoker => "invoker",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role {s:?} (expected admin, publisher, invoker or viewer)")
            })
    }
}

/// What an operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Read catalog, releases, keys.
    Read,
    /// Invoke plugins.
    Invoke,
    /// Publish releases, push to the registry.
    Publish,
    /// Manage the org.
    Administer,
}

impl Permission {
    /// Lowercase name, as error details give it.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Invoke => "invoke",
            Permission::Publish => "publish",
            Permission::Administer => "administer",
        }
    }
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The token's id (not its secret).
    pub token_id: String,
    /// The token's organization.
    pub org: String,
    /// The token's role.
    pub role: Role,
    /// Whether the org is the operator org (may create organizations).
    pub operator: bool,
    /// Unix milliseconds after which the token stops working, if ever.
    pub expires_at: Option<i64>,
}

/// Why a caller may not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The object belongs to another organization.
    #[error("this token belongs to organization {caller_org:?}, not {org:?}")]
    WrongOrg {
        /// The caller's org.
        caller_org: String,
        /// The object's org.
        org: String,
    },
    /// The role lacks the permission.
    #[error("a {role} token cannot do this ({permission:?} is needed)")]
    InsufficientRole {
        /// The caller's role.
        role: Role,
        /// What is needed.
        permission: Permission,
    },
    /// Only the operator organization's admins may do this.
    #[error("only admins of the operator organization create organizations")]
    NotOperator,
}

impl Caller {
    /// Whether the token has expired by now.
    pub fn is_expired(&self) -> bool {
        self.expires_at.is_some_and(|at| at <= now_ms())
    }

    /// `token:<id>`, as the audit log names actors.
    pub fn actor(&self) -> String {
        format!("token:{}", self.token_id)
    }

    /// Refuses unless the caller's role carries `permission` in `org`.
    pub fn require(&self, permission: Permission, org: &str) -> Result<(), Denied> {
        if self.org != org {
            return Err(Denied::WrongOrg {
                caller_org: self.org.clone(),
                org: org.to_owned(),
            });
        }
        if !self.role.allows(permission) {
            return Err(Denied::InsufficientRole {
                role: self.role,
                permission,
            });
        }
        Ok(())
    }

    /// Refuses unless the caller is an admin of the operator organization.
    pub fn require_operator(&self) -> Result<(), Denied> {
        self.require(Permission::Administer, &self.org)?;
        if !self.operator {
            return Err(Denied::NotOperator);
        }
        Ok(())
    }
}

/// A new token secret: `wdn_` and 32 random bytes, base64url.
pub fn new_secret() -> String {
    format!(
        "wdn_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    )
}

/// What is stored instead of the secret.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Why a presented token does not authenticate anyone.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token was presented.
    #[error("an API token is required (Authorization: Bearer <token>)")]
    Missing,
    /// No such token.
    #[error("unknown API token")]
    Unknown,
    /// The token was revoked.
    #[error("this API token was revoked")]
    Revoked,
    /// The token has expired.
    #[error("this API token has expired")]
    Expired,
    /// The database could not be asked.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// A stored row the control plane wrote is unreadable.
    #[error("corrupt token row: {0}")]
    Corrupt(String),
}

#[derive(sqlx::FromRow)]
struct CallerRow {
    id: String,
    org: String,
    role: String,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    operator: i64,
}

/// Looks a presented secret up. `Err` for missing, unknown, revoked or
/// expired tokens.
pub async fn authenticate(db: &Db, secret: Option<&str>) -> Result<Caller, AuthError> {
    let secret = secret.ok_or(AuthError::Missing)?;
    let row: Option<CallerRow> = sqlx::query_as(
        "SELECT t.id, t.org, t.role, t.expires_at, t.revoked_at, o.operator
         FROM tokens t JOIN orgs o ON o.name = t.org WHERE t.secret_hash = $1",
    )
    .bind(secret_hash(secret))
    .fetch_optional(db.pool())
    .await?;
    caller_of(row.ok_or(AuthError::Unknown)?)
}

/// The caller a token stands for, by its id (a console session holds the
/// id, not the secret): refused like [`authenticate`] once the token is
/// revoked or expired.
pub async fn caller_by_id(db: &Db, id: &str) -> Result<Caller, AuthError> {
    let row: Option<CallerRow> = sqlx::query_as(
        "SELECT t.id, t.org, t.role, t.expires_at, t.revoked_at, o.operator
         FROM tokens t JOIN orgs o ON o.name = t.org WHERE t.id = $1",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    caller_of(row.ok_or(AuthError::Unknown)?)
}

fn caller_of(row: CallerRow) -> Result<Caller, AuthError> {
    if row.revoked_at.is_some() {
        return Err(AuthError::Revoked);
    }
    let caller = Caller {
        role: row.role.parse().map_err(AuthError::Corrupt)?,
        token_id: row.id,
        org: row.org,
        operator: row.operator != 0,
        expires_at: row.expires_at,
    };
    if caller.is_expired() {
        return Err(AuthError::Expired);
    }
    Ok(caller)
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Longest expiry a token can be given: ten years.
pub const MAX_EXPIRY_SECONDS: i64 = 10 * 365 * 86_400;

/// Why a token could not be created, listed or revoked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The name is empty or too long.
    #[error("a token needs a name of 1 to 100 characters, without control characters")]
    InvalidName,
    /// The expiry is out of range.
    #[error("expires_in_seconds must be between 1 and {MAX_EXPIRY_SECONDS}, got {0}")]
    InvalidExpiry(i64),
    /// The token is the org's last active admin token: revoking it would
    /// lock the org out.
    #[error("{id} is the last active admin token of {org:?}; create another admin token first")]
    LastAdmin {
        /// The token id.
        id: String,
        /// The org.
        org: String,
    },
    /// No such active token.
    #[error("no active token {id:?} in {org:?}")]
    NotFound {
        /// The token id.
        id: String,
        /// The org.
        org: String,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// A stored row the control plane wrote is unreadable.
    #[error("corrupt token row: {0}")]
    Corrupt(String),
}

/// Inserts a token with a new secret within `change`; returns it with its
/// secret (the only time the secret exists outside the caller's hands).
pub(crate) async fn insert(
    change: &mut Change,
    org: &str,
    name: &str,
    role: Role,
    created_by: &str,
    expires_at: Option<i64>,
) -> Result<NewToken, sqlx::Error> {
    insert_with_secret(
        change,
        org,
        name,
        role,
        created_by,
        expires_at,
        new_secret(),
    )
    .await
}

/// Inserts a token whose secret the caller made (and kept) beforehand.
pub(crate) async fn insert_with_secret(
    change: &mut Change,
    org: &str,
    name: &str,
    role: Role,
    created_by: &str,
    expires_at: Option<i64>,
    secret: String,
) -> Result<NewToken, sqlx::Error> {
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
    .execute(change.tx())
    .await?;
    Ok(NewToken {
        id,
        name: name.to_owned(),
        role,
        expires_at,
        revoked_at: None,
        secret: Some(secret),
    })
}

/// Creates a token in `org`; the result carries its secret.
pub async fn create(
    db: &Db,
    org: &str,
    actor: &str,
    name: &str,
    role: Role,
    expires_in_seconds: Option<i64>,
) -> Result<NewToken, TokenError> {
    if name.trim().is_empty() || name.chars().count() > 100 || !super::names::is_plain_text(name) {
        return Err(TokenError::InvalidName);
    }
    let expires_at = match expires_in_seconds {
        None => None,
        Some(s) if (1..=MAX_EXPIRY_SECONDS).contains(&s) => Some(now_ms() + s * 1000),
        Some(s) => return Err(TokenError::InvalidExpiry(s)),
    };
    let mut change = Change::begin(db, org).await?;
    let token = insert(&mut change, org, name, role, actor, expires_at).await?;
    change
        .commit(
            actor,
            Action::TokenCreate,
            &token.id,
            json!({ "name": token.name, "role": token.role, "expires_at": expires_at }),
        )
        .await?;
    Ok(token)
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    name: String,
    role: String,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

/// The org's tokens, without secrets, oldest first.
pub async fn list(db: &Db, org: &str) -> Result<Vec<NewToken>, TokenError> {
    let rows: Vec<TokenRow> = sqlx::query_as(
        "SELECT id, name, role, expires_at, revoked_at FROM tokens WHERE org = $1 ORDER BY created_at, id",
    )
    .bind(org)
    .fetch_all(db.pool())
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(NewToken {
                role: row.role.parse().map_err(TokenError::Corrupt)?,
                id: row.id,
                name: row.name,
                expires_at: row.expires_at,
                revoked_at: row.revoked_at,
                secret: None,
            })
        })
        .collect()
}

/// Revokes an active token: it stops working at once. The org's last
/// active admin token is not revoked.
pub async fn revoke(db: &Db, org: &str, actor: &str, id: &str) -> Result<(), TokenError> {
    let mut change = Change::begin(db, org).await?;
    // Within the change (the org's writers are serialized): who else could
    // still administer the org?
    let now = now_ms();
    let admins: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM tokens WHERE org = $1 AND role = $2 AND revoked_at IS NULL
         AND (expires_at IS NULL OR expires_at > $3)",
    )
    .bind(org)
    .bind(Role::Admin.as_str())
    .bind(now)
    .fetch_all(change.tx())
    .await?;
    if admins.len() == 1 && admins[0].0 == id {
        return Err(TokenError::LastAdmin {
            id: id.to_owned(),
            org: org.to_owned(),
        });
    }
    let updated = sqlx::query(
        "UPDATE tokens SET revoked_at = $1 WHERE org = $2 AND id = $3 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(org)
    .bind(id)
    .execute(change.tx())
    .await?;
    if updated.rows_affected() == 0 {
        return Err(TokenError::NotFound {
            id: id.to_owned(),
            org: org.to_owned(),
        });
    }
    change
        .commit(actor, Action::TokenRevoke, id, json!({}))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(org: &str, role: Role) -> Caller {
        Caller {
            token_id: "tok_1".into(),
            org: org.into(),
            role,
            operator: false,
            expires_at: None,
        }
    }

    #[test]
    fn each_role_carries_exactly_its_permissions() {
        use Permission::*;
        let table = [
            (Role::Admin, [true, true, true, true]),
            (Role::Publisher, [true, false, true, false]),
            (Role::Invoker, [true, true, false, false]),
            (Role::Viewer, [true, false, false, false]),
        ];
        for (role, expected) in table {
            let got = [Read, Invoke, Publish, Administer].map(|p| role.allows(p));
            assert_eq!(got, expected, "{role}");
        }
    }

    #[test]
    fn no_role_reaches_into_another_org() {
        for role in Role::ALL {
            assert_eq!(
                caller("acme", role).require(Permission::Read, "other"),
                Err(Denied::WrongOrg {
                    caller_org: "acme".into(),
                    org: "other".into()
                })
            );
        }
        assert_eq!(
            caller("acme", Role::Viewer).require(Permission::Publish, "acme"),
            Err(Denied::InsufficientRole {
                role: Role::Viewer,
                permission: Permission::Publish
            })
        );
    }

    #[test]
    fn only_operator_admins_create_organizations() {
        let mut admin = caller("ops", Role::Admin);
        assert_eq!(admin.require_operator(), Err(Denied::NotOperator));
        admin.operator = true;
        assert_eq!(admin.require_operator(), Ok(()));
        let mut publisher = caller("ops", Role::Publisher);
        publisher.operator = true;
        assert!(matches!(
            publisher.require_operator(),
            Err(Denied::InsufficientRole { .. })
        ));
    }
}
