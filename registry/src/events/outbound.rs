//! Sending a webhook: one POST, to an address the operator's policy allows
//! (`warden_host::address_policy`, the same rules as plugins' HTTP): an
//! address in the URL is checked as written (in whatever spelling the URL
//! parser understood), a name is resolved once at send time and every
//! address it resolves to is checked, and the connection goes to a checked
//! address. No redirect is followed, no proxy from the environment is used,
//! the whole exchange has [`SEND_TIMEOUT`], and at most
//! [`LOG_RESPONSE_BYTES`] of the answer are read.

use crate::domain::webhooks::WebhookPolicy;
use crate::domain::webhooks::deliveries::LOG_RESPONSE_BYTES;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use warden_host::address_policy::{self, AddressRefusal};

/// The longest one delivery may take, answer included.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// What came back.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Its status.
    pub status: u16,
    /// `Retry-After`, in seconds, when it gave one.
    pub retry_after: Option<Duration>,
    /// The first bytes of the body, as text.
    pub head: String,
}

/// Why nothing came back.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// The destination is not allowed (the log says why; the address
    /// itself is only in the server's log).
    #[error("{0}")]
    AddressRefused(String),
    /// It took longer than [`SEND_TIMEOUT`].
    #[error("no answer within {} s", SEND_TIMEOUT.as_secs())]
    Timeout,
    /// The connection failed.
    #[error("could not connect: {0}")]
    Connect(String),
    /// Anything else on the way.
    #[error("{0}")]
    Request(String),
}

impl SendError {
    /// The class the delivery log gives it.
    pub fn class(&self) -> &'static str {
        match self {
            SendError::AddressRefused(_) => "address_refused",
            SendError::Timeout => "timeout",
            SendError::Connect(_) => "connect",
            SendError::Request(_) => "request",
        }
    }
}

/// Resolves names for the client, refusing any whose addresses are not all
/// allowed; the client connects to what this returns.
struct CheckedResolver {
    policy: Arc<WebhookPolicy>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let addresses =
                address_policy::resolve_checked(name.as_str(), 0, |ip| policy.allows(ip))
                    .await
                    .map_err(|refusal| -> Box<dyn std::error::Error + Send + Sync> {
                        Box::new(Refused(refusal))
                    })?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// A refusal, carried through the client's error chain.
#[derive(Debug)]
struct Refused(AddressRefusal);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for Refused {}

/// The sender: one client, shared by every delivery.
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    policy: Arc<WebhookPolicy>,
}

impl Outbound {
    /// A sender under `policy`.
    pub fn new(policy: Arc<WebhookPolicy>) -> Outbound {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(SEND_TIMEOUT)
            .connect_timeout(SEND_TIMEOUT)
            .user_agent(concat!("Warden-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(CheckedResolver {
                policy: policy.clone(),
            }))
            .build()
            .expect("a client with these settings builds");
        Outbound { client, policy }
    }

    /// POSTs `body` (JSON) to `url` with `headers`.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Answer, SendError> {
        let url = self
            .policy
            .check_url(url)
            .map_err(|e| SendError::AddressRefused(e.to_string()))?;
        // An address written in the URL never reaches the resolver: checked
        // here (check_url did; this says it again for the unbracketed form).
        if let Some(host) = url.host_str()
            && let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>()
            && !self.policy.may_reach(ip)
        {
            return Err(SendError::AddressRefused(
                "the URL's address is not public".into(),
            ));
        }
        let started = Instant::now();
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut response = request.send().await.map_err(classify)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut head = Vec::new();
        while head.len() < LOG_RESPONSE_BYTES {
            match tokio::time::timeout(
                SEND_TIMEOUT.saturating_sub(started.elapsed()),
                response.chunk(),
            )
            .await
            {
                Ok(Ok(Some(chunk))) => head.extend_from_slice(&chunk),
                _ => break,
            }
        }
        head.truncate(LOG_RESPONSE_BYTES);
        Ok(Answer {
            status,
            retry_after,
            head: String::from_utf8_lossy(&head).into_owned(),
        })
    }
}

/// What a client error was.
fn classify(error: reqwest::Error) -> SendError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return SendError::AddressRefused(match &refused.0 {
                AddressRefusal::NotPublic { host, .. } => {
                    format!("{host} resolves to an address that is not public")
                }
                other => other.to_string(),
            });
        }
        source = cause.source();
    }
    // Never the URL: its path or query may be a credential.
    let error = error.without_url();
    if error.is_timeout() {
        SendError::Timeout
    } else if error.is_connect() {
        SendError::Connect(error.to_string())
    } else {
        SendError::Request(error.to_string())
    }
}
