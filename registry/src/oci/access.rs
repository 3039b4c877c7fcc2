//! Who may pull and push: a trait the control plane implements with its tokens,
//! and a fixed token table for tests and simple setups.

use super::error::OciError;
use super::types::RepositoryName;
use async_trait::async_trait;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine as _;
use std::collections::HashMap;

/// What a request wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Read manifests, blobs, tags, referrers.
    Pull,
    /// Write blobs and manifests.
    Push,
}

/// The token a client presented: `Authorization: Bearer <token>`, or Basic with
/// the token as the password (any user name).
pub fn token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (_user, password) = decoded.split_once(':')?;
        return Some(password.to_owned());
    }
    None
}

/// Decides whether a request may do `action` on `repository` (`None`: the
/// `/v2/` version check, which only needs valid credentials).
#[async_trait]
pub trait OciAccess: Send + Sync + 'static {
    /// `Ok` to allow; [`OciError::Unauthorized`] without (valid) credentials;
    /// [`OciError::Denied`] with credentials that lack the right.
    async fn check(
        &self,
        token: Option<&str>,
        repository: Option<&RepositoryName>,
        action: Action,
    ) -> Result<(), OciError>;

    /// Whether a manifest may be pushed under `tag` in `repository` through
    /// the `/v2/` API, once [`OciAccess::check`] allowed the push. By default
    /// any tag may.
    fn may_tag(&self, _repository: &RepositoryName, _tag: &str) -> Result<(), OciError> {
        Ok(())
    }

    /// Records a manifest (and the tag it was pushed under, if any) that was
    /// stored for the holder of `token`. The control plane appends it to the
    /// repository's organization's audit log; by default nothing is kept.
    async fn record_manifest(
        &self,
        _token: Option<&str>,
        _repository: &RepositoryName,
        _digest: &str,
        _tag: Option<&str>,
    ) {
    }
}

/// Everyone may do everything. For tests of the protocol only.
pub struct Anonymous;

#[async_trait]
impl OciAccess for Anonymous {
    async fn check(
        &self,
        _: Option<&str>,
        _: Option<&RepositoryName>,
        _: Action,
    ) -> Result<(), OciError> {
        Ok(())
    }
}

/// What one token may do.
#[derive(Clone, Debug)]
pub struct TokenGrant {
    /// The organization (first path component of a repository) it is scoped to.
    pub org: String,
    /// Whether it may push (otherwise pull only).
    pub push: bool,
}

/// A fixed table of tokens.
#[derive(Default)]
pub struct StaticTokens {
    tokens: HashMap<String, TokenGrant>,
}

impl StaticTokens {
    /// An empty table: every request is unauthorized.
    pub fn new() -> StaticTokens {
        StaticTokens::default()
    }

    /// Adds a token.
    pub fn with(mut self, token: &str, grant: TokenGrant) -> StaticTokens {
        self.tokens.insert(token.to_owned(), grant);
        self
    }
}

#[async_trait]
impl OciAccess for StaticTokens {
    async fn check(
        &self,
        token: Option<&str>,
        repository: Option<&RepositoryName>,
        action: Action,
    ) -> Result<(), OciError> {
        let grant = token
            .and_then(|t| self.tokens.get(t))
            .ok_or(OciError::Unauthorized)?;
        match repository {
            None => Ok(()),
            Some(repo) if repo.org() != grant.org => Err(OciError::Denied),
            Some(_) if action == Action::Push && !grant.push => Err(OciError::Denied),
            Some(_) => Ok(()),
        }
    }
}
