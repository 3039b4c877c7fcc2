//! Signing keys: publisher keys (sign releases) and admin keys (sign
//! approvals), registered per organization, revoked, and used to verify the
//! signed statements that reach the control plane. A signature that does not
//! verify is explained (unsigned, revoked, another org's, wrong kind, unknown).

use super::names::is_plain_text;
use crate::audit::{Action, Change};
use crate::db::{Db, is_duplicate, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::json;
use warden_host::{Envelope, PublicKey, TrustError, Verified};

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
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Publisher => "publisher",
            KeyKind::Admin => "admin",
        }
    }

    fn parse(text: &str) -> Result<KeyKind, KeyError> {
        match text {
            "publisher" => Ok(KeyKind::Publisher),
            "admin" => Ok(KeyKind::Admin),
            other => Err(KeyError::Corrupt(format!("unknown key kind {other:?}"))),
        }
    }
}

/// A registered key.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SigningKey {
    /// Key id: hex of the first 16 bytes of SHA-256 of the public key.
    pub key_id: String,
    /// `ed25519:<base64>`.
    pub public_key: String,
    /// What it signs.
    pub kind: KeyKind,
    /// Who holds it (a person or a system), as the admin registered it.
    pub owner: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds at which it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    key_id: String,
    public_key: String,
    kind: String,
    owner: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<KeyRow> for SigningKey {
    type Error = KeyError;

    fn try_from(row: KeyRow) -> Result<SigningKey, KeyError> {
        Ok(SigningKey {
            kind: KeyKind::parse(&row.kind)?,
            key_id: row.key_id,
            public_key: row.public_key,
            owner: row.owner,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        })
    }
}

const KEY_COLUMNS: &str = "key_id, public_key, kind, owner, created_at, revoked_at";

/// Why a key could not be registered, listed or revoked.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The public key does not parse.
    #[error("{0}")]
    InvalidKey(TrustError),
    /// The owner is empty or too long.
    #[error("a key needs an owner of 1 to 200 characters, without control characters")]
    InvalidOwner,
    /// The key is registered in the org already.
    #[error("key {key_id} is already registered in {org:?}")]
    Exists {
        /// The key.
        key_id: String,
        /// The org.
        org: String,
    },
    /// No such active key.
    #[error("no active key {key_id:?} in {org:?}")]
    NotFound {
        /// The key.
        key_id: String,
        /// The org.
        org: String,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// A stored row the control plane wrote is unreadable.
    #[error("corrupt signing key row: {0}")]
    Corrupt(String),
}

/// Registers `public_key` (`ed25519:<base64>`) in `org`, held by `owner`.
pub async fn add(
    db: &Db,
    org: &str,
    actor: &str,
    public_key: &str,
    kind: KeyKind,
    owner: &str,
) -> Result<SigningKey, KeyError> {
    let key: PublicKey = public_key.parse().map_err(KeyError::InvalidKey)?;
    let owner = owner.trim();
    if owner.is_empty() || owner.chars().count() > 200 || !is_plain_text(owner) {
        return Err(KeyError::InvalidOwner);
    }
    let key = SigningKey {
        key_id: key.key_id(),
        public_key: key.to_string(),
        kind,
        owner: owner.to_owned(),
        created_at: now_ms(),
        revoked_at: None,
    };
    let mut change = Change::begin(db, org).await?;
    let inserted = sqlx::query(
        "INSERT INTO signing_keys (org, key_id, public_key, kind, owner, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(org)
    .bind(&key.key_id)
    .bind(&key.public_key)
    .bind(key.kind.as_str())
    .bind(&key.owner)
    .bind(key.created_at)
    .execute(change.tx())
    .await;
    match inserted {
        Err(e) if is_duplicate(&e) => {
            return Err(KeyError::Exists {
                key_id: key.key_id,
                org: org.to_owned(),
            });
        }
        other => other?,
    };
    change
        .commit(
            actor,
            Action::KeyAdd,
            &key.key_id,
            json!({ "kind": key.kind, "owner": key.owner, "public_key": key.public_key }),
        )
        .await?;
    Ok(key)
}

/// The org's keys, revoked ones included, oldest first.
pub async fn list(db: &Db, org: &str) -> Result<Vec<SigningKey>, KeyError> {
    let rows: Vec<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {KEY_COLUMNS} FROM signing_keys WHERE org = $1 ORDER BY created_at, key_id"
    )))
    .bind(org)
    .fetch_all(db.pool())
    .await?;
    rows.into_iter().map(SigningKey::try_from).collect()
}

/// Revokes an active key: its signatures stop counting, for new statements
/// and for those it signed before.
pub async fn revoke(db: &Db, org: &str, actor: &str, key_id: &str) -> Result<(), KeyError> {
    let mut change = Change::begin(db, org).await?;
    let updated = sqlx::query(
        "UPDATE signing_keys SET revoked_at = $1 WHERE org = $2 AND key_id = $3 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(org)
    .bind(key_id)
    .execute(change.tx())
    .await?;
    if updated.rows_affected() == 0 {
        return Err(KeyError::NotFound {
            key_id: key_id.to_owned(),
            org: org.to_owned(),
        });
    }
    change
        .commit(actor, Action::KeyRevoke, key_id, json!({}))
        .await?;
    Ok(())
}

/// The registered owner of a key of `org`, if the key is registered.
pub async fn owner(db: &Db, org: &str, key_id: &str) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT owner FROM signing_keys WHERE org = $1 AND key_id = $2")
            .bind(org)
            .bind(key_id)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.map(|(owner,)| owner))
}

/// A key of `org` with its owner and whether it is revoked.
pub(crate) async fn find(db: &Db, org: &str, key_id: &str) -> Result<Option<SigningKey>, KeyError> {
    let row: Option<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {KEY_COLUMNS} FROM signing_keys WHERE org = $1 AND key_id = $2"
    )))
    .bind(org)
    .bind(key_id)
    .fetch_optional(db.pool())
    .await?;
    row.map(SigningKey::try_from).transpose()
}

/// The active keys of `kind` in `org`, parsed.
async fn active(
    db: &Db,
    org: &str,
    kind: KeyKind,
) -> Result<Vec<(PublicKey, SigningKey)>, KeyError> {
    let rows: Vec<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {KEY_COLUMNS} FROM signing_keys WHERE org = $1 AND kind = $2 AND revoked_at IS NULL"
    )))
    .bind(org)
    .bind(kind.as_str())
    .fetch_all(db.pool())
    .await?;
    rows.into_iter()
        .map(|row| {
            let key = SigningKey::try_from(row)?;
            let public = key
                .public_key
                .parse()
                .map_err(|e| KeyError::Corrupt(format!("key {}: {e}", key.key_id)))?;
            Ok((public, key))
        })
        .collect()
}

/// Why a signed statement is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// No signature at all.
    #[error("the statement is not signed")]
    Missing,
    /// Signed by a key that was revoked.
    #[error("key {0} was revoked")]
    KeyRevoked(String),
    /// Signed by a key of the right kind whose signature does not verify,
    /// or malformed.
    #[error("{0}")]
    Invalid(String),
    /// Signed by a key of the org, of the other kind.
    #[error("key {key_id} is registered in {org:?}, but not as a {} key", kind.as_str())]
    WrongKeyKind {
        /// The key.
        key_id: String,
        /// The org.
        org: String,
        /// The kind that was needed.
        kind: KeyKind,
    },
    /// Signed by keys not registered in the org (whether another org has
    /// them is not said: that would tell one tenant about another's keys).
    #[error("signed by {}, which is not a registered {} key of {org:?}", key_ids.join(", "), kind.as_str())]
    KeyUnknown {
        /// The keys.
        key_ids: Vec<String>,
        /// The org.
        org: String,
        /// The kind that was needed.
        kind: KeyKind,
    },
    /// The keys could not be read.
    #[error(transparent)]
    Keys(#[from] KeyError),
}

impl From<sqlx::Error> for SignatureError {
    fn from(error: sqlx::Error) -> SignatureError {
        SignatureError::Keys(KeyError::Db(error))
    }
}

/// A statement that verified, with the registered keys that signed it.
#[derive(Debug)]
pub struct SignedStatement {
    /// The verified payload and its digest.
    pub verified: Verified,
    /// The org's active keys whose signatures verified.
    pub signers: Vec<SigningKey>,
}

/// Verifies `envelope` (of `payload_type`) against the org's active keys of
/// `kind`; when no signature verifies, says why.
pub async fn verify_signed(
    db: &Db,
    org: &str,
    kind: KeyKind,
    payload_type: &str,
    envelope: &Envelope,
) -> Result<SignedStatement, SignatureError> {
    let keys = active(db, org, kind).await?;
    let trusted: Vec<PublicKey> = keys.iter().map(|(key, _)| key.clone()).collect();
    match envelope.verify(payload_type, &trusted) {
        Ok(verified) => {
            let signers = keys
                .into_iter()
                .filter(|(_, row)| verified.signers.contains(&row.key_id))
                .map(|(_, row)| row)
                .collect();
            Ok(SignedStatement { verified, signers })
        }
        Err(TrustError::NotTrusted(_)) => Err(explain_untrusted(db, org, kind, envelope).await?),
        Err(other) => Err(SignatureError::Invalid(other.to_string())),
    }
}

/// Why no signature of `envelope` verified under the active keys of `kind`.
async fn explain_untrusted(
    db: &Db,
    org: &str,
    kind: KeyKind,
    envelope: &Envelope,
) -> Result<SignatureError, sqlx::Error> {
    if envelope.signatures.is_empty() {
        return Ok(SignatureError::Missing);
    }
    for signature in &envelope.signatures {
        let key = &signature.keyid;
        let found: Vec<(String, String, Option<i64>)> = sqlx::query_as(
            "SELECT org, kind, revoked_at FROM signing_keys WHERE key_id = $1 AND org = $2",
        )
        .bind(key)
        .bind(org)
        .fetch_all(db.pool())
        .await?;
        let in_org_of_kind = found
            .iter()
            .find(|(o, k, _)| o == org && k == kind.as_str());
        if let Some((_, _, revoked)) = in_org_of_kind {
            return Ok(if revoked.is_some() {
                SignatureError::KeyRevoked(key.clone())
            } else {
                SignatureError::Invalid(format!(
                    "the signature by key {key} does not verify: the statement was altered or signed by another key"
                ))
            });
        }
        if found.iter().any(|(o, _, _)| o == org) {
            return Ok(SignatureError::WrongKeyKind {
                key_id: key.clone(),
                org: org.to_owned(),
                kind,
            });
        }
    }
    Ok(SignatureError::KeyUnknown {
        key_ids: envelope
            .signatures
            .iter()
            .map(|s| s.keyid.clone())
            .collect(),
        org: org.to_owned(),
        kind,
    })
}
