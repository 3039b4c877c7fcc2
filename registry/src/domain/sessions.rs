//! Console sessions: a browser signs in with an API token and holds a
//! random session secret in a cookie; the database keeps only its SHA-256.
//! A session acts as its token, so what it may see and do is decided by the
//! same rules as the API ([`Caller`]), and revoking or expiring the token
//! ends it. Each session has its anti-forgery token, which every form
//! sends back.

use super::tokens::{self, AuthError, Caller};
use crate::db::{Db, now_ms};
use sha2::{Digest as _, Sha256};

/// How long a session lasts (never past its token's expiry).
pub const SESSION_MS: i64 = 8 * 3600 * 1000;

/// A session just started: the cookie's secret and the forms' token.
#[derive(Debug)]
pub struct NewSession {
    /// What the cookie holds (never stored).
    pub secret: String,
    /// How many seconds the cookie lasts.
    pub max_age_secs: i64,
}

/// A session in use.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who it acts as.
    pub caller: Caller,
    /// The token each form of this session must send back.
    pub csrf: String,
}

/// Why there is no session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No cookie, an unknown one, or one whose session ended.
    #[error("not signed in (or the session ended): sign in again")]
    None,
    /// The token behind it no longer counts.
    #[error(transparent)]
    Token(#[from] AuthError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Signs in with the API token `token`: a new session acting as it.
pub async fn start(db: &Db, token: &str) -> Result<NewSession, SessionError> {
    let caller = tokens::authenticate(db, Some(token)).await?;
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let csrf = hex::encode(rand::random::<[u8; 32]>());
    let now = now_ms();
    let expires_at = caller
        .expires_at
        .map_or(now + SESSION_MS, |t| t.min(now + SESSION_MS));
    sqlx::query(
        "INSERT INTO console_sessions (id_hash, token_id, csrf, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(hash(&secret))
    .bind(&caller.token_id)
    .bind(&csrf)
    .bind(now)
    .bind(expires_at)
    .execute(db.pool())
    .await?;
    // Sessions that ended are dropped as new ones start.
    sqlx::query("DELETE FROM console_sessions WHERE expires_at < $1")
        .bind(now)
        .execute(db.pool())
        .await?;
    Ok(NewSession {
        secret,
        max_age_secs: (expires_at - now) / 1000,
    })
}

/// The session whose cookie holds `secret`, with who it acts as now.
pub async fn find(db: &Db, secret: &str) -> Result<Session, SessionError> {
    let row: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT token_id, csrf, expires_at FROM console_sessions WHERE id_hash = $1",
    )
    .bind(hash(secret))
    .fetch_optional(db.pool())
    .await?;
    let Some((token_id, csrf, expires_at)) = row else {
        return Err(SessionError::None);
    };
    if expires_at <= now_ms() {
        return Err(SessionError::None);
    }
    let caller = tokens::caller_by_id(db, &token_id).await?;
    Ok(Session { caller, csrf })
}

/// Ends the session whose cookie holds `secret` (signing out).
pub async fn end(db: &Db, secret: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
        .bind(hash(secret))
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Whether `sent` is the session's anti-forgery token (compared in
/// constant time).
pub fn csrf_matches(session: &Session, sent: &str) -> bool {
    let (a, b) = (session.csrf.as_bytes(), sent.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
