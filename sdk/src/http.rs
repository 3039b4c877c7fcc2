//! Outgoing HTTP through the standard `wasi:http/outgoing-handler` (capability `http`).
//!
//! The host only lets requests through to the hosts on the plugin's allow-list;
//! anything else fails with [`Error::Http`] carrying `HTTP-request-denied` or
//! `destination-IP-prohibited`.
//!
//! ```ignore
//! let response = warden_sdk::http::get("https://api.example.com/v1/status")?;
//! assert_eq!(response.status, 200);
//! let text = response.text();
//! ```

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method as WitMethod, OutgoingBody, OutgoingRequest, Scheme,
};
use wasip2::io::streams::StreamError;

/// Responses larger than this are refused unless [`Request::max_response_bytes`] says otherwise.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// An HTTP method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
}

/// Why a request failed.
#[derive(Debug)]
pub enum Error {
    /// The URL is not an absolute `http://` or `https://` URL.
    InvalidUrl(String),
    /// A header name or value was refused.
    InvalidHeader(String),
    /// The host or the network refused or failed the request.
    Http(ErrorCode),
    /// The response body was longer than allowed.
    ResponseTooLarge(usize),
    /// Reading or writing a body failed.
    Body(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidUrl(url) => write!(f, "invalid URL {url:?}"),
            Error::InvalidHeader(header) => write!(f, "invalid header {header:?}"),
            Error::Http(code) => write!(f, "HTTP request failed: {code:?}"),
            Error::ResponseTooLarge(limit) => write!(f, "response body exceeds {limit} bytes"),
            Error::Body(message) => write!(f, "body: {message}"),
        }
    }
}

impl std::error::Error for Error {}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, in the order received.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (invalid UTF-8 is replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
    }
}

/// A request being built.
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    max_response_bytes: usize,
}

/// `GET url`, read whole.
pub fn get(url: &str) -> Result<Response, Error> {
    Request::new(Method::Get, url).send()
}

impl Request {
    /// A request with no headers and an empty body.
    pub fn new(method: Method, url: &str) -> Self {
        Request {
            method,
            url: url.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Refuses responses whose body is longer than `limit` bytes.
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// Sends the request and reads the whole response.
    pub fn send(self) -> Result<Response, Error> {
        let target = Target::parse(&self.url)?;
        let fields: Vec<(String, Vec<u8>)> = self.headers.clone();
        let headers = Fields::from_list(&fields)
            .map_err(|error| Error::InvalidHeader(format!("{error:?}")))?;
        let request = OutgoingRequest::new(headers);
        let method = match self.method {
            Method::Get => WitMethod::Get,
            Method::Head => WitMethod::Head,
            Method::Post => WitMethod::Post,
            Method::Put => WitMethod::Put,
            Method::Patch => WitMethod::Patch,
            Method::Delete => WitMethod::Delete,
        };
        let invalid = || Error::InvalidUrl(self.url.clone());
        request.set_method(&method).map_err(|()| invalid())?;
        request
            .set_scheme(Some(&target.scheme))
            .map_err(|()| invalid())?;
        request
            .set_authority(Some(&target.authority))
            .map_err(|()| invalid())?;
        request
            .set_path_with_query(Some(&target.path_and_query))
            .map_err(|()| invalid())?;

        let outgoing_body = request
            .body()
            .map_err(|()| Error::Body("request body already taken".into()))?;
        let pending = outgoing_handler::handle(request, None).map_err(Error::Http)?;
        if !self.body.is_empty() {
            let stream = outgoing_body
                .write()
                .map_err(|()| Error::Body("request body stream already taken".into()))?;
            for chunk in self.body.chunks(4096) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|error| Error::Body(format!("writing request body: {error:?}")))?;
            }
        }
        OutgoingBody::finish(outgoing_body, None).map_err(Error::Http)?;

        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(Error::Http(code)),
            Some(Err(())) | None => {
                return Err(Error::Body("response already taken".into()));
            }
        };
        let status = response.status();
        let headers = response.headers().entries();
        let incoming = response
            .consume()
            .map_err(|()| Error::Body("response body already taken".into()))?;
        let body = read_body(&incoming, self.max_response_bytes)?;
        IncomingBody::finish(incoming);
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

fn read_body(incoming: &IncomingBody, limit: usize) -> Result<Vec<u8>, Error> {
    let stream = incoming
        .stream()
        .map_err(|()| Error::Body("response stream already taken".into()))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                if body.len() + chunk.len() > limit {
                    return Err(Error::ResponseTooLarge(limit));
                }
                body.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => return Ok(body),
            Err(StreamError::LastOperationFailed(error)) => {
                return Err(Error::Body(error.to_debug_string()));
            }
        }
    }
}

/// The parts of an absolute URL that `wasi:http` wants separately.
struct Target {
    scheme: Scheme,
    authority: String,
    path_and_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, Error> {
        let invalid = || Error::InvalidUrl(url.to_owned());
        let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(invalid()),
        };
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(split);
        if authority.is_empty() || authority.contains('@') {
            return Err(invalid());
        }
        let tail = tail.split('#').next().unwrap_or("");
        let path_and_query = match tail.chars().next() {
            None => "/".to_owned(),
            Some('?') => format!("/{tail}"),
            Some(_) => tail.to_owned(),
        };
        Ok(Target {
            scheme,
            authority: authority.to_owned(),
            path_and_query,
        })
    }
}
