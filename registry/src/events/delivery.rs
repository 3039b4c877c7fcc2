//! Webhook delivery: at least once, in order per endpoint, from the audit
//! chain. Every [`TICK`] (and at once after a change) the worker asks the
//! database which enabled endpoints have an event due after their cursor,
//! takes the lease of each it has room for (one replica per endpoint), and
//! delivers in a task of its own: events past the cursor in order, each
//! signed (Standard Webhooks), the cursor moved only once an event is done
//! (a 2xx, not subscribed, or given up). A crash between the send and the
//! cursor's move sends that event again after the lease expires, with the
//! same `webhook-id`.
//!
//! Retries follow [`RETRY_SCHEDULE`] (Standard Webhooks' own), with ±10 %
//! jitter, or the receiver's `Retry-After`; the event is given up after
//! [`MAX_ATTEMPTS`]. An endpoint that answers 410 Gone, or whose deliveries
//! have failed for [`DISABLE_AFTER`], is disabled with a `webhook.disabled`
//! event. Fairness: at most [`PER_ORG`] endpoints of one organization are
//! served at once and [`IN_ALL`] in all, so one organization's slow or
//! failing endpoints take its own share, never another's.

use super::outbound::Outbound;
use super::{Event, EventType};
use crate::audit;
use crate::db::Db;
use crate::domain::secrets::SecretsKey;
use crate::domain::webhooks::deliveries::{self, Attempt, Due, Outcome, Progress};
use crate::domain::webhooks::{self, Webhook};
use crate::metrics::Metrics;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How often the worker looks for due endpoints (a change wakes it at once).
pub const TICK: Duration = Duration::from_millis(250);
/// The waits before the 2nd to 8th attempt at one event.
pub const RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];
/// Attempts at one event before it is given up.
pub const MAX_ATTEMPTS: i64 = RETRY_SCHEDULE.len() as i64 + 1;
/// An endpoint whose deliveries have failed this long is disabled (longer
/// than the schedule of one event, so a dead receiver's events are given up
/// one by one before it is).
pub const DISABLE_AFTER: Duration = Duration::from_secs(3 * 24 * 3600);
/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Endpoints of one organization served at once.
pub const PER_ORG: usize = 4;
/// Endpoints served at once in all.
pub const IN_ALL: usize = 32;
/// How often `/metrics`' pending ages are measured.
const PENDING_EVERY: Duration = Duration::from_secs(5);
/// The longest one lease's turn lasts before it lets others in.
const TURN: Duration = Duration::from_secs(15);

/// The time the worker goes by (Unix ms): the system's, or one a test moves.
#[derive(Clone, Debug, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    /// A clock that says what `now` holds (Unix ms), for tests.
    pub fn manual(now: Arc<AtomicI64>) -> Clock {
        Clock(Some(now))
    }

    /// Now, in Unix ms.
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            Some(now) => now.load(Ordering::Acquire),
            None => crate::db::now_ms(),
        }
    }
}

/// The wait before attempt `next` (2 or later) at an event, or what the
/// receiver asked for; with ±10 % jitter on the schedule's.
pub fn retry_delay(next: i64, retry_after: Option<Duration>) -> Duration {
    if let Some(asked) = retry_after {
        return asked.clamp(Duration::from_secs(1), MAX_RETRY_AFTER);
    }
    let index = usize::try_from(next - 2)
        .unwrap_or(0)
        .min(RETRY_SCHEDULE.len() - 1);
    let base = RETRY_SCHEDULE[index];
    base.mul_f64(0.9 + rand::random::<f64>() * 0.2)
}

/// What one attempt came to, and how long it took.
struct Attempted {
    sent: Sent,
    took_ms: i64,
}

/// What one attempt came to.
enum Sent {
    Delivered {
        status: u16,
        head: String,
    },
    Gone {
        head: String,
    },
    Failed {
        status: Option<u16>,
        error: &'static str,
        detail: String,
        head: Option<String>,
        retry_after: Option<Duration>,
    },
}

/// The webhook worker of one server.
pub struct Deliverer {
    db: Db,
    key: SecretsKey,
    outbound: Outbound,
    clock: Clock,
    metrics: Arc<Metrics>,
    /// This process, as lease owner.
    owner: String,
    all: Arc<Semaphore>,
    orgs: Mutex<HashMap<String, Arc<Semaphore>>>,
    busy: Mutex<HashSet<(String, String)>>,
    /// Set once the server began to stop: a turn under way ends after the
    /// event it is sending, its cursor saved, and is not cut off by the end
    /// of the grace period half-way through its events.
    stopping: std::sync::atomic::AtomicBool,
}

impl Deliverer {
    /// A worker over `db`, signing with secrets under `key`.
    pub fn new(
        db: Db,
        key: SecretsKey,
        outbound: Outbound,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> Deliverer {
        Deliverer {
            db,
            key,
            outbound,
            clock,
            metrics,
            owner: format!("replica-{}", hex::encode(rand::random::<[u8; 8]>())),
            all: Arc::new(Semaphore::new(IN_ALL)),
            orgs: Mutex::default(),
            busy: Mutex::default(),
            stopping: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Runs until the task is aborted.
    pub fn start(
        self: Arc<Deliverer>,
        mut draining: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut wake = self.db.changes().subscribe();
            let mut failing = false;
            let mut measured: Option<Instant> = None;
            // Once the server stops, no endpoint is leased any more; the
            // deliveries under way finish ([`Deliverer::stopped`]).
            while !*draining.borrow() {
                if measured.is_none_or(|at| at.elapsed() >= PENDING_EVERY) {
                    measured = Some(Instant::now());
                    self.measure_pending().await;
                }
                match self.round().await {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!("webhook deliveries resume");
                    }
                    Ok(()) => {}
                    Err(error) if !failing => {
                        failing = true;
                        tracing::warn!("webhook deliveries wait for the database: {error}");
                    }
                    Err(_) => {}
                }
                tokio::select! {
                    _ = tokio::time::timeout(TICK, wake.changed()) => {}
                    _ = draining.changed() => {}
                }
            }
            self.stopping
                .store(true, std::sync::atomic::Ordering::Relaxed);
        })
    }

    /// Returns once no delivery is under way (after the server began to
    /// stop, none starts).
    pub async fn stopped(&self) {
        let _ = self.all.acquire_many(IN_ALL as u32).await;
    }

    /// `/metrics`' age of each endpoint's oldest undelivered event.
    async fn measure_pending(&self) {
        let Ok(pending) = deliveries::pending_since(&self.db).await else {
            return;
        };
        let now = crate::db::now_ms();
        let ages: Vec<(String, String, i64)> = pending
            .into_iter()
            .map(|(org, id, at)| (org, id, at.map_or(0, |at| ((now - at) / 1000).max(0))))
            .collect();
        self.metrics.webhooks_pending(&ages);
    }

    /// The places of `org`'s share ([`PER_ORG`]), taken by its deliveries
    /// and pings alike.
    fn org_share(&self, org: &str) -> Arc<Semaphore> {
        self.orgs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(org.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(PER_ORG)))
            .clone()
    }

    /// One look for due endpoints; each it has room for and can lease is
    /// served in a task of its own.
    async fn round(self: &Arc<Deliverer>) -> Result<(), sqlx::Error> {
        let now = self.clock.now_ms();
        for due in deliveries::due(&self.db, now, PER_ORG as i64, (IN_ALL * 2) as i64).await? {
            let key = (due.org.clone(), due.id.clone());
            if self
                .busy
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&key)
            {
                continue;
            }
            let Ok(org_permit) = self.org_share(&due.org).try_acquire_owned() else {
                continue;
            };
            let Ok(permit) = self.all.clone().try_acquire_owned() else {
                break;
            };
            if !deliveries::claim(&self.db, &due, &self.owner, now).await? {
                continue;
            }
            self.busy
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.clone());
            let worker = self.clone();
            tokio::spawn(async move {
                worker.serve(due, (permit, org_permit)).await;
                worker
                    .busy
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
            });
        }
        Ok(())
    }

    async fn serve(&self, due: Due, _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit)) {
        if let Err(error) = self.deliver(&due).await {
            tracing::warn!(org = %due.org, webhook = %due.id, "delivering webhooks: {error}");
        }
        if let Err(error) = deliveries::release(&self.db, &due, &self.owner).await {
            tracing::warn!(org = %due.org, webhook = %due.id, "releasing a webhook lease: {error}");
        }
    }

    /// One turn at an endpoint: the redeliveries asked for, then events in
    /// order from its cursor until one fails, none is left, or the turn is
    /// over.
    async fn deliver(&self, due: &Due) -> Result<(), webhooks::WebhookError> {
        let webhook = deliveries::leased(&self.db, due).await?;
        if !webhook.enabled {
            return Ok(());
        }
        let secrets =
            webhooks::signing_secrets(&self.db, &self.key, &webhook, self.clock.now_ms()).await?;
        let turn = Instant::now();
        for seq in deliveries::redeliveries(&self.db, due).await? {
            if turn.elapsed() >= TURN
                || self.is_stopping()
                || !deliveries::renew(&self.db, due, &self.owner, self.clock.now_ms()).await?
            {
                return Ok(());
            }
            if let Some(event) = self.event_at(due, seq).await? {
                let attempted = self.send(&webhook, &secrets, &event).await;
                self.log(due, seq, 0, &event, &attempted, false).await?;
            }
            deliveries::redelivered(&self.db, due, seq).await?;
        }
        let cursor = webhook
            .cursor
            .rsplit_once(':')
            .and_then(|(_, seq)| seq.parse().ok())
            .unwrap_or(0);
        let mut progress = Progress {
            cursor,
            attempt: webhook.attempt,
            next_attempt_at: webhook.next_attempt_at,
            failing_since: webhook.failing_since,
        };
        while turn.elapsed() < TURN && progress.next_attempt_at <= self.clock.now_ms() {
            let page = audit::read_page(&self.db, &due.org, progress.cursor, 50).await?;
            if page.entries.is_empty() {
                break;
            }
            for entry in &page.entries {
                if self.is_stopping() {
                    // Each event sent so far has moved the cursor.
                    return Ok(());
                }
                let wanted =
                    Event::of_entry(entry).filter(|(kind, _)| subscribed(&webhook.events, *kind));
                let Some((_, event)) = wanted else {
                    // Passed over (a subscription changed while this one
                    // was retried): its retries are not the next one's.
                    progress = Progress {
                        cursor: entry.seq,
                        attempt: 0,
                        next_attempt_at: 0,
                        failing_since: progress.failing_since,
                    };
                    continue;
                };
                let sent = self.send(&webhook, &secrets, &event).await;
                let now = self.clock.now_ms();
                let attempt = progress.attempt + 1;
                match &sent.sent {
                    Sent::Delivered { .. } => {
                        self.log(due, entry.seq, attempt, &event, &sent, false)
                            .await?;
                        progress = Progress {
                            cursor: entry.seq,
                            attempt: 0,
                            next_attempt_at: 0,
                            failing_since: None,
                        };
                    }
                    Sent::Gone { .. } => {
                        self.log(due, entry.seq, attempt, &event, &sent, false)
                            .await?;
                        deliveries::disable(
                            &self.db,
                            due,
                            &self.owner,
                            "the endpoint answered 410 Gone",
                        )
                        .await?;
                        return Ok(());
                    }
                    Sent::Failed { retry_after, .. } => {
                        let since = progress.failing_since.unwrap_or(now);
                        if now - since >= DISABLE_AFTER.as_millis() as i64 {
                            self.log(due, entry.seq, attempt, &event, &sent, true)
                                .await?;
                            deliveries::disable(
                                &self.db,
                                due,
                                &self.owner,
                                &format!(
                                    "deliveries failed for {} days",
                                    DISABLE_AFTER.as_secs() / 86_400
                                ),
                            )
                            .await?;
                            return Ok(());
                        }
                        if attempt >= MAX_ATTEMPTS {
                            // Given up: the next event's turn.
                            self.log(due, entry.seq, attempt, &event, &sent, true)
                                .await?;
                            progress = Progress {
                                cursor: entry.seq,
                                attempt: 0,
                                next_attempt_at: 0,
                                failing_since: Some(since),
                            };
                        } else {
                            self.log(due, entry.seq, attempt, &event, &sent, false)
                                .await?;
                            progress = Progress {
                                cursor: progress.cursor,
                                attempt,
                                next_attempt_at: now
                                    + retry_delay(attempt + 1, *retry_after).as_millis() as i64,
                                failing_since: Some(since),
                            };
                            deliveries::advance(&self.db, due, &self.owner, progress, now).await?;
                            return Ok(());
                        }
                    }
                }
                if !deliveries::advance(&self.db, due, &self.owner, progress, now).await? {
                    // Another replica holds the endpoint now.
                    return Ok(());
                }
            }
            let now = self.clock.now_ms();
            if !deliveries::advance(&self.db, due, &self.owner, progress, now).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Whether the server began to stop (the turns under way end after
    /// the event each is sending).
    fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The event at `seq` of the endpoint's organization, if there is one.
    async fn event_at(&self, due: &Due, seq: i64) -> Result<Option<Event>, sqlx::Error> {
        let page = audit::read_page(&self.db, &due.org, seq - 1, 1).await?;
        Ok(page
            .entries
            .first()
            .filter(|entry| entry.seq == seq)
            .and_then(Event::of_entry)
            .map(|(_, event)| event))
    }

    /// One signed POST of `event`.
    async fn send(&self, webhook: &Webhook, secrets: &[String], event: &Event) -> Attempted {
        let body = serde_json::to_vec(event).unwrap_or_default();
        let started = Instant::now();
        let sent = post(
            &self.outbound,
            &self.clock,
            webhook,
            secrets,
            &event.id,
            body,
        )
        .await;
        Attempted {
            sent,
            took_ms: started.elapsed().as_millis() as i64,
        }
    }

    async fn log(
        &self,
        due: &Due,
        seq: i64,
        attempt: i64,
        event: &Event,
        attempted: &Attempted,
        given_up: bool,
    ) -> Result<(), sqlx::Error> {
        let now = self.clock.now_ms();
        let (outcome, status, error, response, detail) = match &attempted.sent {
            Sent::Delivered { status, head } => (
                Outcome::Delivered,
                Some(*status),
                None,
                Some(head.clone()),
                None,
            ),
            Sent::Gone { head } => (
                Outcome::Failed,
                Some(410),
                Some("gone"),
                Some(head.clone()),
                None,
            ),
            Sent::Failed {
                status,
                error,
                detail,
                head,
                ..
            } => (
                if given_up {
                    Outcome::GivenUp
                } else {
                    Outcome::Failed
                },
                *status,
                Some(*error),
                head.clone(),
                Some(detail.clone()),
            ),
        };
        let latency = matches!(outcome, Outcome::Delivered).then(|| {
            chrono::DateTime::parse_from_rfc3339(&event.timestamp)
                .map(|at| (crate::db::now_ms() - at.timestamp_millis()).max(0) as f64 / 1000.0)
                .unwrap_or(0.0)
        });
        let label = match (outcome, error) {
            (_, Some("address_refused")) => "refused",
            (Outcome::Delivered, _) => "delivered",
            (Outcome::GivenUp, _) => "given_up",
            (Outcome::Failed, _) => "failed",
        };
        self.metrics.webhook_attempt(label, latency);
        if let Some(detail) = detail {
            tracing::info!(org = %due.org, webhook = %due.id, event = %event.id, attempt,
                "webhook delivery failed: {detail}");
        }
        deliveries::log_attempt(
            &self.db,
            due,
            &self.owner,
            seq,
            &Attempt {
                event: event.id.clone(),
                attempt,
                at: now,
                outcome,
                status: status.map(i64::from),
                duration_ms: attempted.took_ms,
                error: error.map(str::to_owned),
                response,
            },
        )
        .await
    }
}

/// Whether an endpoint subscribed to `kind`.
fn subscribed(events: &[String], kind: EventType) -> bool {
    events.iter().any(|e| e == "*" || e == kind.name())
}

/// POSTs `body` as message `id` to the endpoint, signed.
async fn post(
    outbound: &Outbound,
    clock: &Clock,
    webhook: &Webhook,
    secrets: &[String],
    id: &str,
    body: Vec<u8>,
) -> Sent {
    let timestamp = clock.now_ms() / 1000;
    let signature = super::signature::sign(secrets, id, timestamp, &body);
    let headers = [
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
    ];
    match outbound.post(&webhook.url, &headers, body).await {
        Ok(answer) if (200..300).contains(&answer.status) => Sent::Delivered {
            status: answer.status,
            head: answer.head,
        },
        Ok(answer) if answer.status == 410 => Sent::Gone { head: answer.head },
        Ok(answer) => Sent::Failed {
            status: Some(answer.status),
            error: if (300..400).contains(&answer.status) {
                "redirect"
            } else {
                "status"
            },
            detail: format!("answered {}", answer.status),
            head: Some(answer.head),
            retry_after: answer.retry_after,
        },
        Err(error) => Sent::Failed {
            status: None,
            error: error.class(),
            detail: error.to_string(),
            head: None,
            retry_after: None,
        },
    }
}

/// What a test ping came to: its status and timing, nothing of the answer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PingResult {
    /// Whether it got a 2xx.
    pub delivered: bool,
    /// The answer's status, if there was one.
    pub status: Option<u16>,
    /// How long it took, in ms.
    pub duration_ms: u64,
    /// What went wrong, as the delivery log classes it.
    pub error: Option<String>,
}

/// Why a ping was not sent.
#[derive(Debug, thiserror::Error)]
pub enum PingError {
    /// The organization's share of concurrent deliveries is in use.
    #[error(
        "the organization has {PER_ORG} webhook deliveries or pings under way, the most it may; try again shortly"
    )]
    Busy,
    /// The endpoint could not be read.
    #[error(transparent)]
    Webhook(#[from] webhooks::WebhookError),
}

impl Deliverer {
    /// Sends a `webhook.ping` to the endpoint now, signed like any
    /// delivery; not logged, not retried. It takes a place of the
    /// organization's share, like a delivery: pings cannot add to what one
    /// organization has going out at once.
    pub async fn ping(&self, webhook: &Webhook) -> Result<PingResult, PingError> {
        let _place = self
            .org_share(&webhook.org)
            .try_acquire_owned()
            .map_err(|_| PingError::Busy)?;
        Ok(ping(&self.db, &self.key, &self.outbound, webhook).await?)
    }
}

/// Sends a `webhook.ping` to the endpoint now, signed like any delivery.
async fn ping(
    db: &Db,
    key: &SecretsKey,
    outbound: &Outbound,
    webhook: &Webhook,
) -> Result<PingResult, webhooks::WebhookError> {
    let clock = Clock::default();
    let secrets = webhooks::signing_secrets(db, key, webhook, clock.now_ms()).await?;
    let id = format!(
        "{}:ping-{}",
        webhook.org,
        hex::encode(rand::random::<[u8; 6]>())
    );
    let body = serde_json::json!({
        "id": id,
        "type": "webhook.ping",
        "timestamp": super::rfc3339_ms(clock.now_ms()),
        "org": webhook.org,
        "subject": webhook.id,
        "data": {},
    });
    let started = Instant::now();
    let sent = post(
        outbound,
        &clock,
        webhook,
        &secrets,
        &id,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
    .await;
    let duration_ms = started.elapsed().as_millis() as u64;
    Ok(match sent {
        Sent::Delivered { status, .. } => PingResult {
            delivered: true,
            status: Some(status),
            duration_ms,
            error: None,
        },
        Sent::Gone { .. } => PingResult {
            delivered: false,
            status: Some(410),
            duration_ms,
            error: Some("gone".into()),
        },
        Sent::Failed { status, error, .. } => PingResult {
            delivered: false,
            status,
            duration_ms,
            error: Some(error.into()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_the_standard_one_with_jitter_or_what_the_receiver_asked() {
        for (next, base) in [
            (2, 5),
            (3, 300),
            (4, 1800),
            (5, 7200),
            (8, 36000),
            (12, 36000),
        ] {
            let delay = retry_delay(next, None).as_secs_f64();
            let base = base as f64;
            assert!(
                delay >= base * 0.9 && delay <= base * 1.1,
                "{next}: {delay}"
            );
        }
        assert_eq!(
            retry_delay(2, Some(Duration::from_secs(120))),
            Duration::from_secs(120)
        );
        assert_eq!(retry_delay(2, Some(Duration::ZERO)), Duration::from_secs(1));
        assert_eq!(
            retry_delay(2, Some(Duration::from_secs(10 * 24 * 3600))),
            MAX_RETRY_AFTER
        );
        assert_eq!(MAX_ATTEMPTS, 8);
    }
}
