//! Who is calling: API tokens (stored hashed), their roles, and the check every
//! endpoint makes against the role and the organization of the object.

use super::AppState;
use super::error::ApiError;
use crate::db::now_ms;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
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

/// What an endpoint needs.
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
}

impl Caller {
    /// `token:<id>`, as the audit log names actors.
    pub fn actor(&self) -> String {
        format!("token:{}", self.token_id)
    }

    /// Refuses unless the caller's role carries `permission` in `org`.
    pub fn require(&self, permission: Permission, org: &str) -> Result<(), ApiError> {
        if self.org != org {
            return Err(ApiError::forbidden(
                "wrong_org",
                format!(
                    "this token belongs to organization {:?}, not {org:?}",
                    self.org
                ),
            ));
        }
        if !self.role.allows(permission) {
            return Err(ApiError::forbidden(
                "insufficient_role",
                format!("a {} token cannot do this ({permission:?} is needed)", self.role),
            )
            .with_details(serde_json::json!({ "role": self.role, "needs": format!("{permission:?}").to_lowercase() })));
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

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    org: String,
    role: String,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    operator: i64,
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

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> ApiError {
        match error {
            AuthError::Db(e) => e.into(),
            AuthError::Corrupt(_) => ApiError::internal(error),
            AuthError::Missing | AuthError::Unknown => {
                ApiError::unauthorized("unauthorized", error.to_string())
            }
            AuthError::Revoked => ApiError::unauthorized("token_revoked", error.to_string()),
            AuthError::Expired => ApiError::unauthorized("token_expired", error.to_string()),
        }
    }
}

impl From<AuthError> for crate::oci::OciError {
    fn from(error: AuthError) -> crate::oci::OciError {
        use crate::oci::OciError;
        match error {
            AuthError::Missing | AuthError::Unknown | AuthError::Revoked | AuthError::Expired => {
                OciError::Unauthorized
            }
            AuthError::Db(e) if crate::db::is_unavailable(&e) => OciError::Unavailable,
            other => OciError::Internal(std::io::Error::other(other.to_string())),
        }
    }
}

/// Looks a presented secret up. `Err` for missing, unknown, revoked or expired tokens.
pub async fn authenticate(state: &AppState, secret: Option<&str>) -> Result<Caller, AuthError> {
    let secret = secret.ok_or(AuthError::Missing)?;
    let row: Option<TokenRow> = sqlx::query_as(
        "SELECT t.id, t.org, t.role, t.expires_at, t.revoked_at, o.operator
         FROM tokens t JOIN orgs o ON o.name = t.org WHERE t.secret_hash = $1",
    )
    .bind(secret_hash(secret))
    .fetch_optional(state.db.pool())
    .await?;
    let Some(TokenRow {
        id: token_id,
        org,
        role,
        expires_at,
        revoked_at,
        operator,
    }) = row
    else {
        return Err(AuthError::Unknown);
    };
    if revoked_at.is_some() {
        return Err(AuthError::Revoked);
    }
    if expires_at.is_some_and(|at| at <= now_ms()) {
        return Err(AuthError::Expired);
    }
    let role = role.parse().map_err(AuthError::Corrupt)?;
    Ok(Caller {
        token_id,
        org,
        role,
        operator: operator != 0,
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let secret = crate::oci::token(&parts.headers);
        Ok(authenticate(state, secret.as_deref()).await?)
    }
}
