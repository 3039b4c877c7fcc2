//! `warden webhook add|list|show|remove|rotate|test|deliveries|redeliver|
//! replay`: the organization's webhook endpoints (admins).

use crate::admin::Format;
use crate::exit::{self, Failure};
use crate::remote::{Remote, RemoteArgs, format_time};
use crate::text::printable;
use clap::Subcommand;
use reqwest::Method;
use serde_json::json;
use warden_registry::types::{
    AttemptPage, PingResult, Replayed, Webhook, WebhookList, WebhookWithSecret,
};

#[derive(Subcommand)]
pub enum WebhookCommand {
    /// Add an endpoint; prints its signing secret, once.
    Add {
        /// Where to POST events (https://...).
        #[arg(value_name = "URL")]
        target: String,
        /// An event type to deliver (repeatable; see `GET /v1/event-types`);
        /// default: every type.
        #[arg(long = "event", value_name = "TYPE")]
        events: Vec<String>,
        /// For people.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the endpoints.
    List,
    /// Show one endpoint and where its deliveries stand.
    Show {
        /// The endpoint's id (wh_...).
        id: String,
    },
    /// Enable or disable an endpoint, or change its URL or event types.
    Update {
        /// The endpoint's id.
        id: String,
        /// A new URL to POST events to (`--url` is the server's).
        #[arg(long, value_name = "URL")]
        target: Option<String>,
        /// New event types (repeatable).
        #[arg(long = "event", value_name = "TYPE")]
        events: Vec<String>,
        /// Enable (deliveries resume where they stopped).
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Disable.
        #[arg(long)]
        disable: bool,
    },
    /// Remove an endpoint.
    Remove {
        /// The endpoint's id.
        id: String,
    },
    /// A new signing secret (printed once); the old one signs beside it for 24 hours.
    Rotate {
        /// The endpoint's id.
        id: String,
    },
    /// Send a signed test ping now and say how it went.
    Test {
        /// The endpoint's id.
        id: String,
    },
    /// The delivery log, newest first.
    Deliveries {
        /// The endpoint's id.
        id: String,
        /// How many attempts.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Deliver one event again (same webhook-id).
    Redeliver {
        /// The endpoint's id.
        id: String,
        /// The event's id, `<org>:<seq>`.
        event: String,
    },
    /// Deliver every event since a time again, in order.
    Replay {
        /// The endpoint's id.
        id: String,
        /// RFC 3339, e.g. 2026-12-05T07:00:00Z.
        #[arg(long)]
        since: String,
    },
}

fn show_webhook(webhook: &Webhook) {
    outln!("webhook     {}", printable(&webhook.id));
    outln!("url         {}", printable(&webhook.url));
    outln!("events      {}", printable(&webhook.events.join(", ")));
    if !webhook.description.is_empty() {
        outln!("description {}", printable(&webhook.description));
    }
    match (&webhook.enabled, &webhook.disabled_reason) {
        (true, _) => outln!("state       enabled"),
        (false, Some(reason)) => {
            outln!("state       disabled by the server: {}", printable(reason))
        }
        (false, None) => outln!("state       disabled"),
    }
    outln!("delivered   through {}", printable(&webhook.cursor));
    if webhook.attempt > 0 {
        outln!(
            "retrying    the next event: {} attempt(s) failed, next at {}",
            webhook.attempt,
            format_time(webhook.next_attempt_at)
        );
    }
    if let Some(since) = webhook.failing_since {
        outln!("failing     since {}", format_time(since));
    }
}

pub async fn webhook(
    command: WebhookCommand,
    output: Format,
    remote: &RemoteArgs,
) -> Result<u8, Failure> {
    let remote = Remote::new(remote)?;
    let org = remote.my_org().await?;
    let base = format!("/v1/orgs/{org}/webhooks");
    match command {
        WebhookCommand::Add {
            target,
            events,
            description,
        } => {
            let events = if events.is_empty() {
                vec!["*".to_owned()]
            } else {
                events
            };
            let created: WebhookWithSecret = remote
                .send(
                    Method::POST,
                    &base,
                    &json!({ "url": target, "events": events, "description": description }),
                )
                .await?;
            output.show(&created, |created| {
                show_webhook(&created.webhook);
                outln!("secret      {}", created.signing_secret);
                outln!("(the secret is shown once: keep it with the receiver, which verifies each delivery's webhook-signature with it)");
            });
        }
        WebhookCommand::List => {
            let list: WebhookList = remote.get(&base).await?;
            output.show(&list, |list| {
                for webhook in &list.webhooks {
                    outln!(
                        "{}  {}  {}  {}",
                        printable(&webhook.id),
                        if webhook.enabled {
                            "enabled "
                        } else {
                            "disabled"
                        },
                        printable(&webhook.url),
                        printable(&webhook.events.join(","))
                    );
                }
            });
        }
        WebhookCommand::Show { id } => {
            let webhook: Webhook = remote.get(&format!("{base}/{}", path(&id)?)).await?;
            output.show(&webhook, show_webhook);
        }
        WebhookCommand::Update {
            id,
            target,
            events,
            enable,
            disable,
        } => {
            let enabled = match (enable, disable) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            let patch = json!({
                "url": target,
                "events": (!events.is_empty()).then_some(events),
                "enabled": enabled,
            });
            let webhook: Webhook = remote
                .send(Method::PATCH, &format!("{base}/{}", path(&id)?), &patch)
                .await?;
            output.show(&webhook, show_webhook);
        }
        WebhookCommand::Remove { id } => {
            remote
                .call_empty(remote.request(Method::DELETE, &format!("{base}/{}", path(&id)?)))
                .await?;
            outln!("removed webhook {}", printable(&id));
        }
        WebhookCommand::Rotate { id } => {
            let rotated: WebhookWithSecret = remote
                .send(
                    Method::POST,
                    &format!("{base}/{}/rotate", path(&id)?),
                    &json!({}),
                )
                .await?;
            output.show(&rotated, |rotated| {
                outln!("secret      {}", rotated.signing_secret);
                if let Some(until) = rotated.webhook.previous_secret_until {
                    outln!(
                        "(the previous secret also signs until {})",
                        format_time(until)
                    );
                }
            });
        }
        WebhookCommand::Test { id } => {
            let ping: PingResult = remote
                .send(
                    Method::POST,
                    &format!("{base}/{}/test", path(&id)?),
                    &json!({}),
                )
                .await?;
            output.show(&ping, |ping| {
                let status = ping
                    .status
                    .map_or_else(|| "no answer".to_owned(), |s| s.to_string());
                match &ping.error {
                    None => outln!("delivered: {status} in {} ms", ping.duration_ms),
                    Some(error) => outln!(
                        "not delivered ({error}): {status} after {} ms",
                        ping.duration_ms
                    ),
                }
            });
            if !ping.delivered {
                return Ok(exit::UNAVAILABLE);
            }
        }
        WebhookCommand::Deliveries { id, limit } => {
            let page: AttemptPage = remote
                .get(&format!("{base}/{}/deliveries?limit={limit}", path(&id)?))
                .await?;
            output.show(&page, |page| {
                for attempt in &page.attempts {
                    outln!(
                        "{}  {:<14} #{} {:?} {} {} ms{}",
                        format_time(attempt.at),
                        printable(&attempt.event),
                        attempt.attempt,
                        attempt.outcome,
                        attempt.status.map_or_else(|| "-".into(), |s| s.to_string()),
                        attempt.duration_ms,
                        attempt
                            .error
                            .as_ref()
                            .map(|e| format!(" ({})", printable(e)))
                            .unwrap_or_default()
                    );
                }
            });
        }
        WebhookCommand::Redeliver { id, event } => {
            remote
                .call_empty(
                    remote
                        .request(Method::POST, &format!("{base}/{}/redeliver", path(&id)?))
                        .json(&json!({ "event": event })),
                )
                .await?;
            outln!("event {} will be delivered again", printable(&event));
        }
        WebhookCommand::Replay { id, since } => {
            let replayed: Replayed = remote
                .send(
                    Method::POST,
                    &format!("{base}/{}/replay", path(&id)?),
                    &json!({ "since": since }),
                )
                .await?;
            output.show(&replayed, |replayed| {
                outln!(
                    "deliveries continue after {}: every event since {} again",
                    printable(&replayed.cursor),
                    printable(&since)
                );
            });
        }
    }
    Ok(exit::OK)
}

/// An endpoint id as it may go into a path.
fn path(id: &str) -> Result<&str, Failure> {
    if !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(id)
    } else {
        Err(Failure::new(
            exit::USAGE,
            format!("{:?} is not a webhook id (wh_...)", printable(id)),
        ))
    }
}
