//! Webhook endpoints of an organization (admins only): where its events are
//! delivered, which types, the signing secret (shown once, kept encrypted
//! like plugin secrets, rotated with a day's overlap), and the delivery
//! state that `deliveries` reads and moves. Every change to an endpoint is
//! audited, so it is an event too.

pub mod deliveries;

use super::secrets::{self, SecretsKey};
use crate::audit::{Action, Change};
use crate::db::{Db, now_ms};
use crate::events::EventType;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::net::IpAddr;
use warden_host::address_policy::{self, IpNet};

/// Endpoints one organization may have.
pub const MAX_WEBHOOKS_PER_ORG: i64 = 25;
/// The longest URL an endpoint may have.
pub const MAX_URL_CHARS: usize = 2048;
/// The longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 200;
/// How long a rotated-out secret keeps signing beside the new one.
pub const PREVIOUS_SECRET_MS: i64 = 24 * 3600 * 1000;

/// Where webhooks may go, as the operator configured the server.
#[derive(Clone, Debug, Default)]
pub struct WebhookPolicy {
    /// Networks allowed beyond the public addresses
    /// (`--webhook-allow-cidr`).
    pub allow: Vec<IpNet>,
    /// Whether `http://` URLs are allowed (`--webhook-allow-http`).
    pub allow_http: bool,
}

impl WebhookPolicy {
    /// Whether an address that is not public was allowed by the operator.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = address_policy::canonical(ip);
        self.allow.iter().any(|network| network.contains(&ip))
    }

    /// Whether `ip` may be connected to: public, or allowed.
    pub fn may_reach(&self, ip: IpAddr) -> bool {
        address_policy::is_public(ip) || self.allows(ip)
    }

    /// Checks a URL as given: `https` (or `http` when allowed), a host, no
    /// credentials or fragment, and when the host is an address, one that
    /// may be reached (a name is checked when it is resolved, at each
    /// delivery).
    pub fn check_url(&self, text: &str) -> Result<reqwest::Url, WebhookError> {
        let invalid = |why: &str| WebhookError::InvalidUrl(why.to_owned());
        if text.chars().count() > MAX_URL_CHARS {
            return Err(invalid(&format!(
                "a URL has at most {MAX_URL_CHARS} characters"
            )));
        }
        let url = reqwest::Url::parse(text).map_err(|e| invalid(&format!("not a URL: {e}")))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Err(invalid(
                    "only https URLs are allowed (the server was not started with --webhook-allow-http)",
                ));
            }
            other => return Err(invalid(&format!("scheme {other:?}: only https (or http)"))),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("a URL with credentials is not allowed"));
        }
        if url.fragment().is_some() {
            return Err(invalid("a URL with a fragment (#...) is not allowed"));
        }
        let ip = match url.host() {
            None => return Err(invalid("the URL has no host")),
            Some(url::Host::Domain(_)) => None,
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        };
        if let Some(ip) = ip
            && !self.may_reach(ip)
        {
            return Err(WebhookError::AddressRefused(format!(
                "{} is not a public address (the operator may allow it with --webhook-allow-cidr)",
                address_policy::canonical(ip)
            )));
        }
        Ok(url)
    }
}

/// An endpoint, as admins see it (never its secret).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Webhook {
    /// Its id, e.g. `wh_3f1c...`.
    pub id: String,
    /// The organization.
    pub org: String,
    /// Where events are POSTed.
    pub url: String,
    /// The event types delivered (`["*"]`: all).
    pub events: Vec<String>,
    /// For people.
    pub description: String,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Why it was disabled, when the server disabled it (a 410, failing
    /// for too long).
    pub disabled_reason: Option<String>,
    /// The last event it is done with (delivered, not subscribed, or given
    /// up): deliveries continue after it.
    pub cursor: String,
    /// Attempts made at the event after the cursor (0: none failed).
    pub attempt: i64,
    /// When the next attempt may be made (Unix ms).
    pub next_attempt_at: i64,
    /// Since when deliveries have been failing (Unix ms), if they are.
    pub failing_since: Option<i64>,
    /// Until when the previous secret still signs (Unix ms), after a rotation.
    pub previous_secret_until: Option<i64>,
    /// When created (Unix ms).
    pub created_at: i64,
    /// Who created it.
    pub created_by: String,
    /// When last changed (Unix ms).
    pub updated_at: i64,
}

/// A new endpoint, or a rotated secret: the only answer that holds the
/// signing secret.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookWithSecret {
    /// The endpoint.
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The signing secret, `whsec_<base64>` (Standard Webhooks): shown
    /// once, keep it with the receiver.
    pub signing_secret: String,
}

/// What a create request asks for.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where to POST events: `https://...` (`http://`, or an address in
    /// a network the operator allowed, only if the server allows it; the
    /// schema describes the URLs every server takes).
    #[schema(schema_with = url_schema)]
    pub url: String,
    /// Event types (`GET /v1/event-types`), or `["*"]` for all.
    #[schema(schema_with = events_schema)]
    pub events: Vec<String>,
    /// For people (at most 200 characters).
    #[serde(default)]
    #[schema(
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb]*$"
    )]
    pub description: String,
}

/// The URLs every server takes: `https`, a host name whose last label is
/// not a number, an optional port, a path.
fn url_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(MAX_URL_CHARS))
        .pattern(Some(
            r"^https://([a-z0-9-]+\.)*[a-z][a-z0-9-]*(:[1-9][0-9]{0,3})?(/[!$&'()*+,;=:@%/?a-zA-Z0-9._~-]*)?$",
        ))
        .build()
}

/// [`url_schema`], or null (unchanged).
fn optional_url_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    let mut schema = url_schema();
    schema.schema_type = SchemaType::from_iter([Type::String, Type::Null]);
    schema
}

/// [`events_schema`], or null (unchanged).
fn optional_events_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{SchemaType, Type};
    let mut schema = events_schema();
    schema.schema_type = SchemaType::from_iter([Type::Array, Type::Null]);
    schema
}

/// One to 64 event type names, or `*`.
fn events_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let names: Vec<&str> = std::iter::once("*")
        .chain(EventType::ALL.iter().map(|kind| kind.name()))
        .collect();
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(names)),
        )
        .min_items(Some(1))
        .max_items(Some(64))
        .build()
}

/// What an update request changes (absent fields stay).
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookUpdate {
    /// A new URL.
    #[schema(schema_with = optional_url_schema)]
    pub url: Option<String>,
    /// New event types.
    #[schema(schema_with = optional_events_schema)]
    pub events: Option<Vec<String>>,
    /// A new description.
    #[schema(
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb]*$"
    )]
    pub description: Option<String>,
    /// Enable (deliveries resume after the cursor: nothing is lost while
    /// disabled) or disable.
    pub enabled: Option<bool>,
}

/// Why a webhook operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The URL is not acceptable.
    #[error("invalid webhook URL: {0}")]
    InvalidUrl(String),
    /// The URL's address may not be reached.
    #[error("{0}")]
    AddressRefused(String),
    /// The event list is not acceptable.
    #[error("invalid event types: {0}")]
    InvalidEvents(String),
    /// The description is not acceptable.
    #[error("a description has at most {MAX_DESCRIPTION_CHARS} characters of plain text")]
    InvalidDescription,
    /// The organization has as many as it may.
    #[error("the organization has {0} webhook endpoints, the most it may have")]
    TooMany(i64),
    /// No such endpoint (or event).
    #[error("{0}")]
    NotFound(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// A stored secret could not be read.
    #[error("the webhook's signing secret cannot be read: {0}")]
    Secret(String),
}

/// The plugin name under which an endpoint's secrets are kept in the
/// `secrets` table: `~` is in no plugin name.
fn secret_owner(id: &str) -> String {
    format!("~webhook/{id}")
}

const CURRENT_SECRET: &str = "CURRENT";
const PREVIOUS_SECRET: &str = "PREVIOUS";

/// A new Standard Webhooks secret: `whsec_` and 32 random bytes in base64.
fn new_secret() -> String {
    use base64::Engine;
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    )
}

/// The event types as given: each known, or `*` alone; sorted, unique.
fn check_events(events: &[String]) -> Result<Vec<String>, WebhookError> {
    if events.is_empty() {
        return Err(WebhookError::InvalidEvents(
            "name at least one event type, or \"*\" for all".into(),
        ));
    }
    if events.len() > 64 {
        return Err(WebhookError::InvalidEvents("at most 64 event types".into()));
    }
    // Every type, whatever else is named beside it.
    if events.iter().any(|e| e == "*") {
        return Ok(vec!["*".into()]);
    }
    let mut checked: Vec<String> = Vec::with_capacity(events.len());
    for event in events {
        if !EventType::ALL.iter().any(|kind| kind.name() == event) {
            return Err(WebhookError::InvalidEvents(format!(
                "{:?} is not an event type (GET /v1/event-types lists them)",
                event.chars().take(64).collect::<String>()
            )));
        }
        checked.push(event.clone());
    }
    checked.sort();
    checked.dedup();
    Ok(checked)
}

fn check_description(description: &str) -> Result<(), WebhookError> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS
        || (!description.is_empty() && !super::names::is_plain_text(description))
    {
        return Err(WebhookError::InvalidDescription);
    }
    Ok(())
}

/// What an audit entry (and so an event) says of a URL: its origin only.
/// The path and query of a webhook URL are often a credential (a chat
/// service's incoming webhook).
pub fn url_origin(url: &str) -> String {
    reqwest::Url::parse(url).map_or_else(|_| String::new(), |u| u.origin().ascii_serialization())
}

type WebhookRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
    String,
    i64,
);

const COLUMNS: &str = "org, id, url, events, description, enabled, disabled_reason, cursor, \
     attempt, next_attempt_at, failing_since, previous_secret_until, created_at, created_by, updated_at";

fn from_row(row: WebhookRow) -> Webhook {
    let (
        org,
        id,
        url,
        events,
        description,
        enabled,
        disabled_reason,
        cursor,
        attempt,
        next_attempt_at,
        failing_since,
        previous_secret_until,
        created_at,
        created_by,
        updated_at,
    ) = row;
    Webhook {
        cursor: crate::events::EventId {
            org: org.clone(),
            seq: cursor,
        }
        .to_string(),
        events: serde_json::from_str(&events).unwrap_or_default(),
        id,
        org,
        url,
        description,
        enabled: enabled != 0,
        disabled_reason,
        attempt,
        next_attempt_at,
        failing_since,
        previous_secret_until,
        created_at,
        created_by,
        updated_at,
    }
}

/// Creates an endpoint of `org`; deliveries start with the next event.
pub async fn create(
    db: &Db,
    key: &SecretsKey,
    policy: &WebhookPolicy,
    org: &str,
    actor: &str,
    request: &NewWebhook,
) -> Result<WebhookWithSecret, WebhookError> {
    let url = policy.check_url(&request.url)?;
    let events = check_events(&request.events)?;
    check_description(&request.description)?;
    let id = format!("wh_{}", hex::encode(rand::random::<[u8; 8]>()));
    let secret = new_secret();
    let now = now_ms();
    let mut change = Change::begin(db, org).await?;
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM webhooks WHERE org = $1")
        .bind(org)
        .fetch_one(change.tx())
        .await?;
    if count >= MAX_WEBHOOKS_PER_ORG {
        return Err(WebhookError::TooMany(MAX_WEBHOOKS_PER_ORG));
    }
    // The chain's head before this change's own entry: the endpoint's
    // creation is its first event.
    let (head,): (i64,) = sqlx::query_as("SELECT seq FROM audit_heads WHERE org = $1")
        .bind(org)
        .fetch_one(change.tx())
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO webhooks ({COLUMNS}) VALUES
         ($1, $2, $3, $4, $5, 1, NULL, $6, 0, 0, NULL, NULL, $7, $8, $7)"
    )))
    .bind(org)
    .bind(&id)
    .bind(url.as_str())
    .bind(serde_json::to_string(&events).unwrap_or_default())
    .bind(&request.description)
    .bind(head - 1)
    .bind(now)
    .bind(actor)
    .execute(change.tx())
    .await?;
    secrets::store_in(
        change.tx(),
        key,
        org,
        &secret_owner(&id),
        CURRENT_SECRET,
        &secret,
        actor,
    )
    .await?;
    change
        .commit(
            actor,
            Action::WebhookCreate,
            &id,
            json!({ "origin": url_origin(url.as_str()), "events": events }),
        )
        .await?;
    let webhook = get(db, org, &id).await?;
    Ok(WebhookWithSecret {
        webhook,
        signing_secret: secret,
    })
}

/// The endpoints of `org`, oldest first.
pub async fn list(db: &Db, org: &str) -> Result<Vec<Webhook>, WebhookError> {
    let rows: Vec<WebhookRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhooks WHERE org = $1 ORDER BY created_at, id"
    )))
    .bind(org)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// One endpoint.
pub async fn get(db: &Db, org: &str, id: &str) -> Result<Webhook, WebhookError> {
    let row: Option<WebhookRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhooks WHERE org = $1 AND id = $2"
    )))
    .bind(org)
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.map(from_row)
        .ok_or_else(|| WebhookError::NotFound(format!("no webhook {id} in {org}")))
}

/// Changes an endpoint. Enabling one the server disabled clears why, and
/// deliveries resume after its cursor. The lease is taken back, so a turn
/// in progress stops at its next step and the change counts from the next
/// delivery on.
pub async fn update(
    db: &Db,
    policy: &WebhookPolicy,
    org: &str,
    id: &str,
    actor: &str,
    patch: &WebhookUpdate,
) -> Result<Webhook, WebhookError> {
    let url = patch
        .url
        .as_deref()
        .map(|u| policy.check_url(u))
        .transpose()?;
    let events = patch.events.as_deref().map(check_events).transpose()?;
    if let Some(description) = &patch.description {
        check_description(description)?;
    }
    let mut change = Change::begin(db, org).await?;
    let current: Option<(i64,)> =
        sqlx::query_as("SELECT enabled FROM webhooks WHERE org = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .fetch_optional(change.tx())
            .await?;
    let Some((enabled,)) = current else {
        return Err(WebhookError::NotFound(format!("no webhook {id} in {org}")));
    };
    let now = now_ms();
    sqlx::query(
        "UPDATE webhooks SET url = COALESCE($1, url), events = COALESCE($2, events),
             description = COALESCE($3, description), enabled = COALESCE($4, enabled),
             disabled_reason = CASE WHEN $4 = 1 AND enabled = 0 THEN NULL ELSE disabled_reason END,
             failing_since = CASE WHEN $4 = 1 AND enabled = 0 THEN NULL ELSE failing_since END,
             next_attempt_at = CASE WHEN $4 = 1 AND enabled = 0 THEN 0 ELSE next_attempt_at END,
             lease_owner = NULL, lease_until = NULL, updated_at = $5
         WHERE org = $6 AND id = $7",
    )
    .bind(url.as_ref().map(|u| u.as_str().to_owned()))
    .bind(
        events
            .as_ref()
            .map(|e| serde_json::to_string(e).unwrap_or_default()),
    )
    .bind(patch.description.clone())
    .bind(patch.enabled.map(i64::from))
    .bind(now)
    .bind(org)
    .bind(id)
    .execute(change.tx())
    .await?;
    change
        .commit(
            actor,
            Action::WebhookUpdate,
            id,
            json!({
                "origin": url.as_ref().map(|u| url_origin(u.as_str())),
                "events": events,
                "enabled": patch.enabled,
                "was_enabled": enabled != 0,
            }),
        )
        .await?;
    get(db, org, id).await
}

/// Removes an endpoint with its secrets, log and pending redeliveries.
pub async fn delete(db: &Db, org: &str, id: &str, actor: &str) -> Result<(), WebhookError> {
    let mut change = Change::begin(db, org).await?;
    let deleted = sqlx::query("DELETE FROM webhooks WHERE org = $1 AND id = $2")
        .bind(org)
        .bind(id)
        .execute(change.tx())
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(WebhookError::NotFound(format!("no webhook {id} in {org}")));
    }
    for table in ["webhook_attempts", "webhook_redeliveries"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE org = $1 AND webhook_id = $2"
        )))
        .bind(org)
        .bind(id)
        .execute(change.tx())
        .await?;
    }
    sqlx::query("DELETE FROM secrets WHERE org = $1 AND plugin = $2")
        .bind(org)
        .bind(secret_owner(id))
        .execute(change.tx())
        .await?;
    change
        .commit(actor, Action::WebhookDelete, id, json!({}))
        .await?;
    Ok(())
}

/// A new signing secret for an endpoint; the previous one keeps signing
/// beside it for [`PREVIOUS_SECRET_MS`], so receivers can switch over.
pub async fn rotate(
    db: &Db,
    key: &SecretsKey,
    org: &str,
    id: &str,
    actor: &str,
) -> Result<WebhookWithSecret, WebhookError> {
    let owner = secret_owner(id);
    let secret = new_secret();
    let until = now_ms() + PREVIOUS_SECRET_MS;
    let mut change = Change::begin(db, org).await?;
    // Read within the change: two rotations at once keep each other's
    // secrets straight (the org's changes are serialized).
    let current = secrets::value_in(change.tx(), key, org, &owner, CURRENT_SECRET)
        .await?
        .ok_or_else(|| WebhookError::NotFound(format!("no webhook {id} in {org}")))?
        .map_err(|e| WebhookError::Secret(e.to_string()))?;
    let updated = sqlx::query(
        "UPDATE webhooks SET previous_secret_until = $1, updated_at = $2 WHERE org = $3 AND id = $4",
    )
    .bind(until)
    .bind(now_ms())
    .bind(org)
    .bind(id)
    .execute(change.tx())
    .await?;
    if updated.rows_affected() == 0 {
        return Err(WebhookError::NotFound(format!("no webhook {id} in {org}")));
    }
    secrets::store_in(
        change.tx(),
        key,
        org,
        &owner,
        PREVIOUS_SECRET,
        &current,
        actor,
    )
    .await?;
    secrets::store_in(
        change.tx(),
        key,
        org,
        &owner,
        CURRENT_SECRET,
        &secret,
        actor,
    )
    .await?;
    change
        .commit(
            actor,
            Action::WebhookRotate,
            id,
            json!({ "previous_until": until }),
        )
        .await?;
    let webhook = get(db, org, id).await?;
    Ok(WebhookWithSecret {
        webhook,
        signing_secret: secret,
    })
}

/// The secrets that sign a delivery made at `now`: the current one, and
/// the previous one while it still signs.
pub async fn signing_secrets(
    db: &Db,
    key: &SecretsKey,
    webhook: &Webhook,
    now: i64,
) -> Result<Vec<String>, WebhookError> {
    let owner = secret_owner(&webhook.id);
    let mut names = vec![CURRENT_SECRET];
    if webhook
        .previous_secret_until
        .is_some_and(|until| until > now)
    {
        names.push(PREVIOUS_SECRET);
    }
    let mut found = Vec::new();
    for name in names {
        if let Some(value) = secrets::value(db, key, &webhook.org, &owner, name).await? {
            found.push(value.map_err(|e| WebhookError::Secret(e.to_string()))?);
        }
    }
    if found.is_empty() {
        return Err(WebhookError::Secret("no signing secret is stored".into()));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], allow_http: bool) -> WebhookPolicy {
        WebhookPolicy {
            allow: allow
                .iter()
                .map(|a| address_policy::parse_network(a).unwrap())
                .collect(),
            allow_http,
        }
    }

    #[test]
    fn urls_must_be_https_and_reach_no_private_address_in_any_spelling() {
        let strict = policy(&[], false);
        assert!(strict.check_url("https://hooks.example.com/in?x=1").is_ok());
        for refused in [
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
            "https://user:pass@hooks.example.com/",
            "https://hooks.example.com/#frag",
            "https://",
            "https://127.0.0.1/",
            "https://2130706433/",
            "https://0x7f.0.0.1/",
            "https://0177.0.0.1/",
            "https://127.1/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.1/",
            "https://100.64.0.1/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://0.0.0.0/",
            "https://[::]/",
        ] {
            assert!(strict.check_url(refused).is_err(), "{refused}");
        }
        let open = policy(&["127.0.0.0/8"], true);
        assert!(open.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(open.check_url("http://2130706433/").is_ok());
        assert!(open.check_url("http://10.0.0.1/").is_err());
        assert!(open.check_url("http://169.254.169.254/").is_err());
    }

    #[test]
    fn event_lists_are_known_types_or_everything() {
        assert_eq!(check_events(&["*".into()]).unwrap(), ["*"]);
        assert_eq!(
            check_events(&[
                "release.yanked".into(),
                "release.approved".into(),
                "release.yanked".into()
            ])
            .unwrap(),
            ["release.approved", "release.yanked"]
        );
        assert_eq!(
            check_events(&["release.yanked".into(), "*".into()]).unwrap(),
            ["*"]
        );
        for bad in [vec![], vec!["release.nope".to_string()]] {
            assert!(check_events(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_audited_url_is_its_origin() {
        assert_eq!(
            url_origin("https://hooks.slack.example/services/T000/B000/XXXXSECRET?x=1"),
            "https://hooks.slack.example"
        );
        assert_eq!(
            url_origin("http://127.0.0.1:9000/a"),
            "http://127.0.0.1:9000"
        );
    }
}
