//! The OCI Distribution API v1.1 under `/v2/`: pull, push (monolithic and
//! chunked, cross-repository mount), tag listing with pagination, referrers,
//! and the spec's error codes.

use super::access::{Action, OciAccess, token};
use super::error::OciError;
use super::store::{MAX_MANIFEST_BYTES, OciStore};
use super::types::{Digest, INDEX_V1, Reference, RepositoryName};
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use tokio_util::io::ReaderStream;

/// What the `/v2/` routes share.
#[derive(Clone)]
pub struct OciState {
    /// The store.
    pub store: Arc<OciStore>,
    /// Who may do what.
    pub access: Arc<dyn OciAccess>,
}

/// The `/v2/` router.
pub fn router(state: OciState) -> Router {
    Router::new()
        .route("/v2", any(version_check))
        .route("/v2/", any(version_check))
        .route("/v2/{*path}", any(dispatch))
        .with_state(state)
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        if let OciError::Internal(source) = &self {
            tracing::error!("registry internal error: {source}");
        }
        let status = self.status();
        let body =
            json!({"errors": [{"code": self.code(), "message": self.to_string(), "detail": null}]});
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"warden\""),
            );
        }
        response
    }
}

async fn version_check(
    State(state): State<OciState>,
    headers: HeaderMap,
) -> Result<Response, OciError> {
    state
        .access
        .check(token(&headers).as_deref(), None, Action::Pull)
        .await?;
    Ok((
        StatusCode::OK,
        [("Docker-Distribution-API-Version", "registry/2.0")],
        axum::Json(json!({})),
    )
        .into_response())
}

/// The shape of a `/v2/<name>/...` path.
#[derive(Debug, PartialEq)]
enum Route<'a> {
    Tags(&'a str),
    Referrers(&'a str, &'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    UploadStart(&'a str),
    Upload(&'a str, &'a str),
}

/// Repository names may contain `/`, so paths are matched from the end.
fn route(path: &str) -> Option<Route<'_>> {
    let path = path.trim_start_matches('/');
    if let Some(name) = path.strip_suffix("/tags/list") {
        return Some(Route::Tags(name));
    }
    if let Some(name) = path
        .strip_suffix("/blobs/uploads/")
        .or_else(|| path.strip_suffix("/blobs/uploads"))
    {
        return Some(Route::UploadStart(name));
    }
    let (head, last) = path.rsplit_once('/')?;
    let (name, kind) = head.rsplit_once('/')?;
    match kind {
        "manifests" => Some(Route::Manifest(name, last)),
        "referrers" => Some(Route::Referrers(name, last)),
        "blobs" => Some(Route::Blob(name, last)),
        "uploads" => name
            .strip_suffix("/blobs")
            .map(|name| Route::Upload(name, last)),
        _ => None,
    }
}

#[derive(Deserialize, Default)]
struct Params {
    digest: Option<String>,
    mount: Option<String>,
    from: Option<String>,
    n: Option<usize>,
    last: Option<String>,
    #[serde(rename = "artifactType")]
    artifact_type: Option<String>,
}

fn repository(name: &str) -> Result<RepositoryName, OciError> {
    name.parse().map_err(OciError::NameInvalid)
}

fn digest(text: &str) -> Result<Digest, OciError> {
    text.parse().map_err(OciError::DigestInvalid)
}

async fn dispatch(
    State(state): State<OciState>,
    Path(path): Path<String>,
    method: Method,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OciError> {
    let route = route(&path)
        .ok_or_else(|| OciError::Unsupported(format!("no such endpoint: /v2/{path}")))?;
    let name = match &route {
        Route::Tags(n)
        | Route::Referrers(n, _)
        | Route::Manifest(n, _)
        | Route::Blob(n, _)
        | Route::UploadStart(n)
        | Route::Upload(n, _) => *n,
    };
    let repo = repository(name)?;
    let action = if matches!(method, Method::GET | Method::HEAD) {
        Action::Pull
    } else {
        Action::Push
    };
    let token = token(&headers);
    state
        .access
        .check(token.as_deref(), Some(&repo), action)
        .await?;
    let store = &state.store;

    match (route, method) {
        (Route::Blob(_, reference), m @ (Method::GET | Method::HEAD)) => {
            let digest = digest(reference)?;
            let (file, size) = store
                .open_blob(&repo, &digest)
                .await?
                .ok_or_else(|| OciError::BlobUnknown(digest.to_string()))?;
            let body = if m == Method::HEAD {
                Body::empty()
            } else {
                Body::from_stream(ReaderStream::new(file))
            };
            Ok(content(
                "application/octet-stream".to_owned(),
                size,
                &digest,
                body,
            ))
        }
        (Route::UploadStart(_), Method::POST) => {
            if let (Some(mount), Some(from)) = (&params.mount, &params.from) {
                let mount = digest(mount)?;
                let from = repository(from)?;
                if state
                    .access
                    .check(token.as_deref(), Some(&from), Action::Pull)
                    .await
                    .is_ok()
                    && store.mount(&repo, &from, &mount).await?
                {
                    return Ok(created(&repo, &mount));
                }
            }
            // Sessions are counted per client by a hash of its token (the
            // token itself is not kept).
            let client = token.as_deref().map_or_else(String::new, |t| {
                use sha2::Digest as _;
                hex::encode(sha2::Sha256::digest(t.as_bytes()))
            });
            let id = store.start_upload(&repo, &client).await?;
            if let Some(expected) = &params.digest {
                // Monolithic: the whole blob in this request.
                let expected = digest(expected)?;
                let appended = store
                    .append(&repo, &id, None, body.into_data_stream())
                    .await;
                if let Err(error) = appended {
                    // A one-request upload that failed leaves no session
                    // and no partial file behind.
                    store.cancel_upload(&repo, &id).await;
                    return Err(error);
                }
                store.finish_upload(&repo, &id, &expected).await?;
                return Ok(created(&repo, &expected));
            }
            Ok(accepted(&repo, &id, 0))
        }
        (Route::Upload(_, id), Method::PATCH) => {
            let start = content_range_start(&headers)?;
            let size = store
                .append(&repo, id, start, body.into_data_stream())
                .await?;
            Ok(accepted(&repo, id, size))
        }
        (Route::Upload(_, id), Method::PUT) => {
            let expected = digest(
                params
                    .digest
                    .as_deref()
                    .ok_or_else(|| OciError::DigestInvalid("PUT needs ?digest=".into()))?,
            )?;
            store
                .append(&repo, id, None, body.into_data_stream())
                .await?;
            store.finish_upload(&repo, id, &expected).await?;
            Ok(created(&repo, &expected))
        }
        (Route::Upload(_, id), Method::GET) => {
            let size = store.upload_size(&repo, id).await?;
            let mut response = accepted(&repo, id, size);
            *response.status_mut() = StatusCode::NO_CONTENT;
            Ok(response)
        }
        (Route::Upload(_, id), Method::DELETE) => {
            store.upload_size(&repo, id).await?;
            store.cancel_upload(&repo, id).await;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Route::Manifest(_, reference), Method::PUT) => {
            let reference: Reference = reference.parse().map_err(OciError::ManifestInvalid)?;
            if let Reference::Tag(tag) = &reference {
                state.access.may_tag(&repo, tag)?;
            }
            let media_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let bytes = to_bytes(body, MAX_MANIFEST_BYTES).await.map_err(|_| {
                OciError::SizeInvalid(format!(
                    "manifests may have at most {MAX_MANIFEST_BYTES} bytes"
                ))
            })?;
            let (digest, subject) = store
                .put_manifest(&repo, &reference, &media_type, &bytes)
                .await?;
            let tag = match &reference {
                Reference::Tag(tag) => Some(tag.as_str()),
                Reference::Digest(_) => None,
            };
            state
                .access
                .record_manifest(token.as_deref(), &repo, &digest.to_string(), tag)
                .await;
            let mut response = created(&repo, &digest);
            *response
                .headers_mut()
                .get_mut(header::LOCATION)
                .expect("set") =
                HeaderValue::from_str(&format!("/v2/{repo}/manifests/{digest}")).expect("ascii");
            if let Some(subject) = subject {
                response.headers_mut().insert(
                    "OCI-Subject",
                    HeaderValue::from_str(&subject.to_string()).expect("ascii"),
                );
            }
            Ok(response)
        }
        (Route::Manifest(_, reference), m @ (Method::GET | Method::HEAD)) => {
            let reference: Reference = reference.parse().map_err(OciError::ManifestInvalid)?;
            let (media_type, bytes, digest) = store
                .get_manifest(&repo, &reference)
                .await?
                .ok_or_else(|| {
                    OciError::ManifestUnknown(format!("{repo}:{}", display(&reference)))
                })?;
            let length = bytes.len();
            let body = if m == Method::HEAD {
                Body::empty()
            } else {
                Body::from(bytes)
            };
            Ok(content(media_type, length as u64, &digest, body))
        }
        (Route::Tags(_), Method::GET) => {
            let tags = store
                .tags(&repo)
                .await?
                .ok_or_else(|| OciError::NameUnknown(repo.to_string()))?;
            let after: Vec<String> = match &params.last {
                Some(last) => tags.into_iter().filter(|t| t > last).collect(),
                None => tags,
            };
            let n = params.n.unwrap_or(usize::MAX);
            let page: Vec<&String> = after.iter().take(n).collect();
            let mut response =
                axum::Json(json!({"name": repo.to_string(), "tags": page})).into_response();
            if after.len() > n
                && let Some(last) = page.last()
            {
                let link = format!("</v2/{repo}/tags/list?n={n}&last={last}>; rel=\"next\"");
                response
                    .headers_mut()
                    .insert(header::LINK, HeaderValue::from_str(&link).expect("ascii"));
            }
            Ok(response)
        }
        (Route::Referrers(_, subject), Method::GET) => {
            let subject = digest(subject)?;
            let mut referrers = store.referrers(&repo, &subject).await?;
            let filtered = params.artifact_type.is_some();
            if let Some(wanted) = &params.artifact_type {
                referrers.retain(|d| d.artifact_type.as_deref() == Some(wanted.as_str()));
            }
            let index = json!({"schemaVersion": 2, "mediaType": INDEX_V1, "manifests": referrers});
            let mut response = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, INDEX_V1)],
                serde_json::to_vec(&index)
                    .map_err(|e| OciError::Internal(std::io::Error::other(e)))?,
            )
                .into_response();
            if filtered {
                response.headers_mut().insert(
                    "OCI-Filters-Applied",
                    HeaderValue::from_static("artifactType"),
                );
            }
            Ok(response)
        }
        (_, method) => Err(OciError::Unsupported(format!("{method} /v2/{path}"))),
    }
}

fn display(reference: &Reference) -> String {
    match reference {
        Reference::Tag(tag) => tag.clone(),
        Reference::Digest(digest) => digest.to_string(),
    }
}

fn content_range_start(headers: &HeaderMap) -> Result<Option<u64>, OciError> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default();
    let text = text.strip_prefix("bytes ").unwrap_or(text);
    let start = text
        .split_once('-')
        .and_then(|(start, _)| start.trim().parse().ok())
        .ok_or_else(|| OciError::RangeInvalid(format!("bad Content-Range {text:?}")))?;
    Ok(Some(start))
}

/// A blob or manifest (`body` is empty for HEAD; the length is the content's).
fn content(media_type: String, length: u64, digest: &Digest, body: Body) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, media_type),
            (header::CONTENT_LENGTH, length.to_string()),
            (
                header::HeaderName::from_static("docker-content-digest"),
                digest.to_string(),
            ),
        ],
        body,
    )
        .into_response()
}

fn created(repo: &RepositoryName, digest: &Digest) -> Response {
    (
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/v2/{repo}/blobs/{digest}")),
            (
                header::HeaderName::from_static("docker-content-digest"),
                digest.to_string(),
            ),
        ],
    )
        .into_response()
}

fn accepted(repo: &RepositoryName, id: &str, size: u64) -> Response {
    let range = if size == 0 {
        "0-0".to_owned()
    } else {
        format!("0-{}", size - 1)
    };
    (
        StatusCode::ACCEPTED,
        [
            (header::LOCATION, format!("/v2/{repo}/blobs/uploads/{id}")),
            (header::RANGE, range),
            (
                header::HeaderName::from_static("docker-upload-uuid"),
                id.to_owned(),
            ),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn range(text: &str) -> Result<Option<u64>, OciError> {
        let mut headers = HeaderMap::new();
        match axum::http::HeaderValue::from_str(text) {
            Ok(value) => {
                headers.insert(header::CONTENT_RANGE, value);
                content_range_start(&headers)
            }
            Err(_) => Ok(None),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any `Content-Range`: its start, or a refusal; never a panic.
        #[test]
        fn content_ranges_parse_or_refuse(text in "\\PC{0,40}", start in proptest::arbitrary::any::<u64>(), end in proptest::arbitrary::any::<u64>()) {
            let _ = range(&text);
            prop_assert_eq!(range(&format!("{start}-{end}")).unwrap(), Some(start));
            prop_assert_eq!(range(&format!("bytes {start}-{end}")).unwrap(), Some(start));
        }
    }

    #[test]
    fn paths_are_matched_from_the_end() {
        assert_eq!(
            route("acme/hello/tags/list"),
            Some(Route::Tags("acme/hello"))
        );
        assert_eq!(
            route("acme/hello/manifests/1.0.0"),
            Some(Route::Manifest("acme/hello", "1.0.0"))
        );
        assert_eq!(
            route("acme/blobs/blobs/sha256:ab"),
            Some(Route::Blob("acme/blobs", "sha256:ab"))
        );
        assert_eq!(
            route("acme/hello/blobs/uploads/"),
            Some(Route::UploadStart("acme/hello"))
        );
        assert_eq!(
            route("acme/hello/blobs/uploads/abc"),
            Some(Route::Upload("acme/hello", "abc"))
        );
        assert_eq!(
            route("a/b/c/referrers/sha256:ab"),
            Some(Route::Referrers("a/b/c", "sha256:ab"))
        );
        assert_eq!(route("acme/hello/secrets/x"), None);
        assert_eq!(route("nothing"), None);
    }
}
