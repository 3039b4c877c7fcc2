//! The delivery state of endpoints, in the database: which endpoints have
//! work, the lease one replica takes on an endpoint before it delivers (so
//! that replicas sharing a database deliver each event once in normal
//! operation), the cursor and retry state moved only by the lease's holder,
//! the delivery log, and the redeliveries and replays admins ask for.

use super::{Webhook, WebhookError, get};
use crate::audit::{Action, Change};
use crate::db::{Db, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// How long a lease lasts; a holder renews it with every step, and one that
/// died leaves the endpoint to another replica after this long.
pub const LEASE_MS: i64 = 30_000;
/// Log entries kept per endpoint (the oldest go first).
pub const LOG_PER_WEBHOOK: i64 = 1000;
/// The first bytes of a response the log keeps.
pub const LOG_RESPONSE_BYTES: usize = 1024;

/// An endpoint with work: an event after its cursor that is due, or a
/// redelivery asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The organization.
    pub org: String,
    /// The endpoint.
    pub id: String,
}

/// Up to `limit` enabled endpoints with work at `now` whose lease is free,
/// at most `per_org` of each organization (so that one organization's many
/// due endpoints cannot fill the answer and starve the others).
pub async fn due(db: &Db, now: i64, per_org: i64, limit: i64) -> Result<Vec<Due>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT org, id FROM (
             SELECT w.org, w.id, w.next_attempt_at,
                    ROW_NUMBER() OVER (PARTITION BY w.org ORDER BY w.next_attempt_at, w.id) AS rank
             FROM webhooks w JOIN audit_heads h ON h.org = w.org
             WHERE w.enabled = 1 AND (w.lease_until IS NULL OR w.lease_until < $1)
               AND ((h.seq > w.cursor AND w.next_attempt_at <= $1)
                    OR EXISTS (SELECT 1 FROM webhook_redeliveries r
                               WHERE r.org = w.org AND r.webhook_id = w.id))
         ) due WHERE rank <= $2
         ORDER BY next_attempt_at, org, id LIMIT $3",
    )
    .bind(now)
    .bind(per_org)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(|(org, id)| Due { org, id }).collect())
}

/// Takes the lease of an endpoint for `owner` if nobody holds it; true if
/// taken. One conditional update: of replicas racing for it, one wins.
pub async fn claim(db: &Db, due: &Due, owner: &str, now: i64) -> Result<bool, sqlx::Error> {
    let claimed = sqlx::query(
        "UPDATE webhooks SET lease_owner = $1, lease_until = $2
         WHERE org = $3 AND id = $4 AND enabled = 1
           AND (lease_until IS NULL OR lease_until < $5)",
    )
    .bind(owner)
    .bind(now + LEASE_MS)
    .bind(&due.org)
    .bind(&due.id)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(claimed.rows_affected() == 1)
}

/// Renews the lease, if `owner` still holds it; false if it does not.
pub async fn renew(db: &Db, due: &Due, owner: &str, now: i64) -> Result<bool, sqlx::Error> {
    let renewed = sqlx::query(
        "UPDATE webhooks SET lease_until = $1 WHERE org = $2 AND id = $3 AND lease_owner = $4",
    )
    .bind(now + LEASE_MS)
    .bind(&due.org)
    .bind(&due.id)
    .bind(owner)
    .execute(db.pool())
    .await?;
    Ok(renewed.rows_affected() == 1)
}

/// Gives the lease back.
pub async fn release(db: &Db, due: &Due, owner: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE webhooks SET lease_owner = NULL, lease_until = NULL
         WHERE org = $1 AND id = $2 AND lease_owner = $3",
    )
    .bind(&due.org)
    .bind(&due.id)
    .bind(owner)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The endpoint, for its lease's holder.
pub async fn leased(db: &Db, due: &Due) -> Result<Webhook, WebhookError> {
    get(db, &due.org, &due.id).await
}

/// Where an endpoint's deliveries stand after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The last event done with.
    pub cursor: i64,
    /// Attempts made at the next one.
    pub attempt: i64,
    /// When the next attempt may be made.
    pub next_attempt_at: i64,
    /// Since when deliveries fail, if they do.
    pub failing_since: Option<i64>,
}

/// Records `progress`, if `owner` still holds the lease (renewing it);
/// false if it does not (another replica took over: stop).
pub async fn advance(
    db: &Db,
    due: &Due,
    owner: &str,
    progress: Progress,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let moved = sqlx::query(
        "UPDATE webhooks SET cursor = $1, attempt = $2, next_attempt_at = $3, failing_since = $4,
             lease_until = $5
         WHERE org = $6 AND id = $7 AND lease_owner = $8",
    )
    .bind(progress.cursor)
    .bind(progress.attempt)
    .bind(progress.next_attempt_at)
    .bind(progress.failing_since)
    .bind(now + LEASE_MS)
    .bind(&due.org)
    .bind(&due.id)
    .bind(owner)
    .execute(db.pool())
    .await?;
    Ok(moved.rows_affected() == 1)
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A 2xx answer.
    Delivered,
    /// Anything else; tried again on the schedule.
    Failed,
    /// The last attempt of the schedule failed: the event was given up.
    GivenUp,
}

/// One attempt, as the delivery log keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    /// The event (`<org>:<seq>`).
    pub event: String,
    /// Which attempt at it (from 1).
    pub attempt: i64,
    /// When (Unix ms).
    pub at: i64,
    /// How it ended.
    pub outcome: Outcome,
    /// The answer's HTTP status, if there was one.
    pub status: Option<i64>,
    /// How long it took, in ms.
    pub duration_ms: i64,
    /// What went wrong: `status` (a non-2xx answer), `timeout`, `connect`,
    /// `address_refused`, `redirect`, `gone`, `tls`, `request`.
    pub error: Option<String>,
    /// The first 1 KiB of the answer's body, as text.
    pub response: Option<String>,
}

/// Appends an attempt to the endpoint's log, dropping the oldest past
/// [`LOG_PER_WEBHOOK`], if `owner` still holds the endpoint's lease (an
/// endpoint removed or taken over meanwhile gets no row).
pub async fn log_attempt(
    db: &Db,
    due: &Due,
    owner: &str,
    event_seq: i64,
    attempt: &Attempt,
) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    let held: Option<(i64,)> =
        sqlx::query_as("SELECT 1 FROM webhooks WHERE org = $1 AND id = $2 AND lease_owner = $3")
            .bind(&due.org)
            .bind(&due.id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
    if held.is_none() {
        return Ok(());
    }
    // A redelivery adds to the attempts already made at that event.
    let (last,): (Option<i64>,) = sqlx::query_as(
        "SELECT MAX(attempt) FROM webhook_attempts
         WHERE org = $1 AND webhook_id = $2 AND event_seq = $3",
    )
    .bind(&due.org)
    .bind(&due.id)
    .bind(event_seq)
    .fetch_one(&mut *tx)
    .await?;
    let number = attempt.attempt.max(last.unwrap_or(0) + 1);
    sqlx::query(
        "INSERT INTO webhook_attempts
             (org, webhook_id, event_seq, attempt, at, outcome, status, duration_ms, error, response)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&due.org)
    .bind(&due.id)
    .bind(event_seq)
    .bind(number)
    .bind(attempt.at)
    .bind(outcome_text(attempt.outcome))
    .bind(attempt.status)
    .bind(attempt.duration_ms)
    .bind(attempt.error.clone())
    .bind(attempt.response.clone())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM webhook_attempts WHERE org = $1 AND webhook_id = $2 AND at < (
             SELECT MIN(at) FROM (SELECT at FROM webhook_attempts
                                  WHERE org = $1 AND webhook_id = $2
                                  ORDER BY at DESC LIMIT $3) newest)",
    )
    .bind(&due.org)
    .bind(&due.id)
    .bind(LOG_PER_WEBHOOK)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

fn outcome_text(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Delivered => "delivered",
        Outcome::Failed => "failed",
        Outcome::GivenUp => "given_up",
    }
}

fn outcome_of(text: &str) -> Outcome {
    match text {
        "delivered" => Outcome::Delivered,
        "given_up" => Outcome::GivenUp,
        _ => Outcome::Failed,
    }
}

/// A page of an endpoint's log, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptPage {
    /// Attempts, newest first.
    pub attempts: Vec<Attempt>,
}

/// The newest `limit` attempts of an endpoint (at or before `before`, Unix
/// ms, when given).
pub async fn attempts(
    db: &Db,
    org: &str,
    id: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<AttemptPage, WebhookError> {
    get(db, org, id).await?;
    type Row = (
        i64,
        i64,
        i64,
        String,
        Option<i64>,
        i64,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT event_seq, attempt, at, outcome, status, duration_ms, error, response
         FROM webhook_attempts WHERE org = $1 AND webhook_id = $2 AND at <= $3
         ORDER BY at DESC, event_seq DESC, attempt DESC LIMIT $4",
    )
    .bind(org)
    .bind(id)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(AttemptPage {
        attempts: rows
            .into_iter()
            .map(
                |(seq, attempt, at, outcome, status, duration_ms, error, response)| Attempt {
                    event: crate::events::EventId {
                        org: org.to_owned(),
                        seq,
                    }
                    .to_string(),
                    attempt,
                    at,
                    outcome: outcome_of(&outcome),
                    status,
                    duration_ms,
                    error,
                    response,
                },
            )
            .collect(),
    })
}

/// Asks for event `seq` to be delivered to the endpoint once more (with
/// the same `webhook-id`), whatever happened to it before.
pub async fn redeliver(
    db: &Db,
    org: &str,
    id: &str,
    seq: i64,
    actor: &str,
) -> Result<(), WebhookError> {
    let mut change = Change::begin(db, org).await?;
    let exists: Option<(i64,)> =
        sqlx::query_as("SELECT 1 FROM webhooks WHERE org = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .fetch_optional(change.tx())
            .await?;
    if exists.is_none() {
        return Err(WebhookError::NotFound(format!("no webhook {id} in {org}")));
    }
    let event: Option<(i64,)> = sqlx::query_as("SELECT seq FROM audit WHERE org = $1 AND seq = $2")
        .bind(org)
        .bind(seq)
        .fetch_optional(change.tx())
        .await?;
    if event.is_none() {
        return Err(WebhookError::NotFound(format!("no event {org}:{seq}")));
    }
    let pending: (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM webhook_redeliveries WHERE org = $1 AND webhook_id = $2",
    )
    .bind(org)
    .bind(id)
    .fetch_one(change.tx())
    .await?;
    if pending.0 >= 100 {
        return Err(WebhookError::TooMany(100));
    }
    sqlx::query(
        "INSERT INTO webhook_redeliveries (org, webhook_id, event_seq, requested_at, requested_by)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org, webhook_id, event_seq) DO NOTHING",
    )
    .bind(org)
    .bind(id)
    .bind(seq)
    .bind(now_ms())
    .bind(actor)
    .execute(change.tx())
    .await?;
    change
        .commit(
            actor,
            Action::WebhookRedeliver,
            id,
            json!({ "event": format!("{org}:{seq}") }),
        )
        .await?;
    Ok(())
}

/// The redeliveries asked of an endpoint, oldest event first.
pub async fn redeliveries(db: &Db, due: &Due) -> Result<Vec<i64>, sqlx::Error> {
    let rows: Vec<(i64,)> = sqlx::query_as(
        "SELECT event_seq FROM webhook_redeliveries WHERE org = $1 AND webhook_id = $2
         ORDER BY event_seq LIMIT 100",
    )
    .bind(&due.org)
    .bind(&due.id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(|(seq,)| seq).collect())
}

/// A redelivery made (whatever its outcome: the log says it).
pub async fn redelivered(db: &Db, due: &Due, seq: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM webhook_redeliveries WHERE org = $1 AND webhook_id = $2 AND event_seq = $3",
    )
    .bind(&due.org)
    .bind(&due.id)
    .bind(seq)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Moves an endpoint's cursor back to just before the first event at or
/// after `since` (Unix ms): every event from then on is delivered again,
/// in order, with its own `webhook-id`. Returns the new cursor.
pub async fn replay(
    db: &Db,
    org: &str,
    id: &str,
    since: i64,
    actor: &str,
) -> Result<i64, WebhookError> {
    let mut change = Change::begin(db, org).await?;
    let (before,): (Option<i64>,) =
        sqlx::query_as("SELECT MAX(seq) FROM audit WHERE org = $1 AND at < $2")
            .bind(org)
            .bind(since)
            .fetch_one(change.tx())
            .await?;
    let wanted = before.unwrap_or(0);
    // The lease is taken back too: a turn in progress must not write its
    // own cursor over this one.
    let moved = sqlx::query(
        "UPDATE webhooks SET cursor = $1, attempt = 0, next_attempt_at = 0, updated_at = $2,
             lease_owner = NULL, lease_until = NULL
         WHERE org = $3 AND id = $4 AND cursor > $1",
    )
    .bind(wanted)
    .bind(now_ms())
    .bind(org)
    .bind(id)
    .execute(change.tx())
    .await?;
    // Not moved: it does not exist, or its cursor is before that already.
    let (cursor,): (i64,) =
        sqlx::query_as("SELECT cursor FROM webhooks WHERE org = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .fetch_optional(change.tx())
            .await?
            .ok_or_else(|| WebhookError::NotFound(format!("no webhook {id} in {org}")))?;
    debug_assert!(moved.rows_affected() == 0 || cursor == wanted);
    change
        .commit(
            actor,
            Action::WebhookReplay,
            id,
            json!({ "since": since, "cursor": format!("{org}:{cursor}") }),
        )
        .await?;
    Ok(cursor)
}

/// Disables an endpoint the server gave up on, saying why (audited, as
/// `webhook.disabled`, by the system), if `owner` still holds its lease:
/// one removed, changed or taken over meanwhile is left as it is.
pub async fn disable(db: &Db, due: &Due, owner: &str, reason: &str) -> Result<(), sqlx::Error> {
    let mut change = Change::begin(db, &due.org).await?;
    let disabled = sqlx::query(
        "UPDATE webhooks SET enabled = 0, disabled_reason = $1, lease_owner = NULL,
             lease_until = NULL, updated_at = $2
         WHERE org = $3 AND id = $4 AND lease_owner = $5",
    )
    .bind(reason)
    .bind(now_ms())
    .bind(&due.org)
    .bind(&due.id)
    .bind(owner)
    .execute(change.tx())
    .await?;
    if disabled.rows_affected() == 0 {
        // Dropped: the change rolls back, and no event says otherwise.
        return Ok(());
    }
    change
        .commit(
            "system",
            Action::WebhookDisable,
            &due.id,
            json!({ "reason": reason }),
        )
        .await?;
    Ok(())
}

/// Each enabled endpoint (org, id) with when its oldest undelivered event
/// committed (Unix ms; `None` when it has none), for `/metrics`.
pub async fn pending_since(db: &Db) -> Result<Vec<(String, String, Option<i64>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT w.org, w.id, a.at FROM webhooks w
         LEFT JOIN audit a ON a.org = w.org AND a.seq = w.cursor + 1
         WHERE w.enabled = 1 ORDER BY w.org, w.id LIMIT 10000",
    )
    .fetch_all(db.pool())
    .await
}
