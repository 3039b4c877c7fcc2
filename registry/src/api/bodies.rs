//! Request bodies, which a client can send as slowly as it likes: each has
//! a total deadline (not only a longest pause), one client (one token, or
//! all anonymous clients together) and one organization (whatever tokens
//! its admin mints) may each be sending at most a share of the server's
//! connections' bodies at once, and a JSON body is read only once its
//! caller is authorized ([`UnreadJson`]).

use super::{ApiJson, ApiResult};
use crate::domain::tokens::Caller;
use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The request body was still arriving when its total deadline passed.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyDeadline(pub Duration);

/// The bodies being received, per client and per organization.
pub struct BodyGuard {
    deadline: Duration,
    per_client: usize,
    open: Mutex<HashMap<[u8; 16], Arc<Semaphore>>>,
    /// The same share per organization, taken once the caller is known
    /// ([`UnreadJson::read`]): an org's admin minting tokens gets no more.
    by_org: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl BodyGuard {
    /// Bodies get `deadline` each to arrive in full; one client may be
    /// sending `per_client` at once.
    pub fn new(deadline: Duration, per_client: usize) -> Arc<BodyGuard> {
        Arc::new(BodyGuard {
            deadline,
            per_client: per_client.max(1),
            open: Mutex::new(HashMap::new()),
            by_org: Mutex::new(HashMap::new()),
        })
    }

    /// One more body of organization `org`, within its share.
    fn open_for_org(&self, org: &str) -> Option<OwnedSemaphorePermit> {
        let mut by_org = self.by_org.lock().unwrap_or_else(|e| e.into_inner());
        if by_org.len() > 1024 {
            by_org.retain(|_, share| Arc::strong_count(share) > 1);
        }
        by_org
            .entry(org.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_client)))
            .clone()
            .try_acquire_owned()
            .ok()
    }

    /// The refusal of one more body of `whose`, past its share.
    fn too_many(&self, whose: &str) -> super::ApiError {
        super::ApiError::new(
            super::ErrorCode::TooManyBodies,
            format!(
                "{whose} is already sending {} request bodies; wait for them to finish",
                self.per_client
            ),
        )
    }

    /// One more body of the client `key`, within its share.
    fn open(&self, key: [u8; 16]) -> Option<OwnedSemaphorePermit> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        // Clients with no body in flight are forgotten, so the table holds
        // only clients sending now.
        if open.len() > 1024 {
            let all = self.per_client;
            open.retain(|_, share| share.available_permits() < all);
        }
        open.entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_client)))
            .clone()
            .try_acquire_owned()
            .ok()
    }
}

/// Who sends a body, for its share: the token it presents, or else the
/// console session cookie (hashed; a token or session that turns out
/// invalid is refused before its body is read), or nothing, which all
/// anonymous clients share.
fn client_key(request: &Request) -> [u8; 16] {
    let token = crate::oci::token(request.headers())
        .or_else(|| crate::console::cookie_secret(request.headers()))
        .unwrap_or_default();
    let hash = Sha256::digest(token.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&hash[..16]);
    key
}

/// Middleware: every request with a body gets its deadline and takes one
/// of its client's share of open bodies until the body has arrived (or is
/// dropped). Past the share, 429 at once, without reading the body (so the
/// connection closes and is free for someone else).
pub async fn guard(State(guard): State<Arc<BodyGuard>>, request: Request, next: Next) -> Response {
    use http_body::Body as _;
    if request.body().size_hint().exact() == Some(0) {
        return next.run(request).await;
    }
    let Some(permit) = guard.open(client_key(&request)) else {
        let mut answer = guard.too_many("this client").into_response();
        answer.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        return answer;
    };
    let deadline = guard.deadline;
    let mut request = request;
    request.extensions_mut().insert(guard.clone());
    let request = request.map(|body| {
        Body::new(GuardedBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep(deadline)),
            limit: deadline,
            permit: Some(permit),
        })
    });
    next.run(request).await
}

/// A body with a total deadline, holding its client's permit until it ends.
struct GuardedBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
    permit: Option<OwnedSemaphorePermit>,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if this.permit.is_some() && this.deadline.as_mut().poll(cx).is_ready() {
            this.permit = None;
            return Poll::Ready(Some(Err(axum::Error::new(BodyDeadline(this.limit)))));
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.permit = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A JSON body not yet read: the last argument of a handler, which reads
/// it with [`UnreadJson::read`] once the caller is authorized, so that a
/// caller without the right never gets to hold a connection with a body.
pub struct UnreadJson<T> {
    request: Request,
    _type: std::marker::PhantomData<T>,
}

impl<T: DeserializeOwned> UnreadJson<T> {
    /// Reads and parses the body of `caller`'s request, within its
    /// organization's share of bodies in flight (429 `too_many_bodies`,
    /// unread, past it), refusing it as [`ApiJson`] does.
    pub async fn read(self, caller: &Caller) -> ApiResult<T> {
        let guard = self.request.extensions().get::<Arc<BodyGuard>>().cloned();
        let _org_share = match &guard {
            Some(guard) => match guard.open_for_org(&caller.org) {
                Some(permit) => Some(permit),
                None => {
                    return Err(guard.too_many(&format!("organization {:?}", caller.org)));
                }
            },
            // Served without the guard (an embedder's own server).
            None => None,
        };
        let ApiJson(value) = ApiJson::<T>::from_request(self.request, &()).await?;
        Ok(value)
    }
}

impl<T: Send, S: Send + Sync> FromRequest<S> for UnreadJson<T> {
    type Rejection = std::convert::Infallible;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        Ok(UnreadJson {
            request,
            _type: std::marker::PhantomData,
        })
    }
}
