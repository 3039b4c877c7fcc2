//! Talking to a Warden server: where it is (`--url`/`WARDEN_URL`), who we are
//! (`--token`/`WARDEN_TOKEN`), and its JSON errors turned into one-line failures
//! with meaningful exit codes.

use crate::exit::{self, Failure};
use clap::Args;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use warden_registry::types::{
    ErrorBody, PluginPage, PluginSummary, ReleasePage, ReleaseSummary, WhoAmI,
};
use warden_registry::{Credentials, RegistryEndpoint};

/// Where the server is and how to authenticate.
#[derive(Args, Clone, Debug)]
pub struct RemoteArgs {
    /// The Warden server.
    #[arg(
        long,
        env = "WARDEN_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// An API token (`warden serve` writes the first admin token to <data-dir>/admin-token).
    #[arg(long, env = "WARDEN_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

/// A client of one Warden server.
pub struct Remote {
    base: String,
    token: String,
    pub http: reqwest::Client,
}

impl Remote {
    /// A client from the arguments; fails without a token.
    pub fn new(args: &RemoteArgs) -> Result<Remote, Failure> {
        let token = args.token.clone().filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            Failure::new(
                exit::USAGE,
                "no API token: pass --token or set WARDEN_TOKEN (the first admin token is in <data-dir>/admin-token)",
            )
        })?;
        let base = args.url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Failure::new(
                exit::USAGE,
                format!("--url {base:?} must start with http:// or https://"),
            ));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::new(exit::HOST_FAILURE, format!("HTTP client: {e}")))?;
        Ok(Remote {
            base,
            token: token.trim().to_owned(),
            http,
        })
    }

    /// The server's own OCI registry (`/v2/`), with our token.
    pub fn registry_endpoint(&self) -> Result<RegistryEndpoint, Failure> {
        RegistryEndpoint::from_url(&self.base, Credentials::Bearer(self.token.clone()))
            .map_err(|e| Failure::new(exit::USAGE, format!("--url: {e}")))
    }

    /// A request to `path` (absolute, e.g. `/v1/whoami`) with the token.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// GET `path` as JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.call(self.request(Method::GET, path)).await
    }

    /// `method` `path` with a JSON body.
    pub async fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, Failure> {
        self.call(self.request(method, path).json(body)).await
    }

    /// Sends `request`; decodes a JSON answer or turns an error into a Failure.
    pub async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, Failure> {
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.unreachable(e))?;
        if !status.is_success() {
            return Err(api_failure(status, &bytes));
        }
        decode(&bytes)
    }

    pub fn unreachable(&self, error: reqwest::Error) -> Failure {
        Failure::new(
            exit::UNAVAILABLE,
            format!(
                "cannot reach the Warden server at {}: {error} (is `warden serve` running? set --url or WARDEN_URL)",
                self.base
            ),
        )
    }

    /// Sends `request`, expecting no body in the answer (204).
    pub async fn call_empty(&self, request: reqwest::RequestBuilder) -> Result<(), Failure> {
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.map_err(|e| self.unreachable(e))?;
            return Err(api_failure(status, &bytes));
        }
        Ok(())
    }

    /// Every item of a paginated list at `path`, following cursors, 100 per
    /// request, with `query` on each request.
    pub async fn all_pages<P: Page>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<P::Item>, Failure> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut params = vec![("limit", "100".to_owned())];
            params.extend(query.iter().cloned());
            if let Some(cursor) = &cursor {
                params.push(("cursor", cursor.clone()));
            }
            let page: P = self
                .call(self.request(Method::GET, path).query(&params))
                .await?;
            let (page_items, next) = page.into_parts();
            items.extend(page_items);
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// The organization of our token.
    pub async fn my_org(&self) -> Result<String, Failure> {
        let me: WhoAmI = self.get("/v1/whoami").await?;
        Ok(me.org)
    }
}

/// A page of a list endpoint: its items and the cursor of the next page.
pub trait Page: DeserializeOwned {
    /// What the list holds.
    type Item;
    /// The items, and the next page's cursor (none on the last page).
    fn into_parts(self) -> (Vec<Self::Item>, Option<String>);
}

impl Page for PluginPage {
    type Item = PluginSummary;
    fn into_parts(self) -> (Vec<PluginSummary>, Option<String>) {
        (self.items, self.next_cursor)
    }
}

impl Page for ReleasePage {
    type Item = ReleaseSummary;
    fn into_parts(self) -> (Vec<ReleaseSummary>, Option<String>) {
        (self.items, self.next_cursor)
    }
}

/// The error of the OCI distribution API: `{"errors": [{"code", "message"}]}`.
#[derive(Deserialize)]
struct OciErrors {
    errors: Vec<OciErrorEntry>,
}

#[derive(Deserialize)]
struct OciErrorEntry {
    code: String,
    #[serde(default)]
    message: String,
}

/// A successful answer's JSON body (`null` when empty).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Failure> {
    let bytes = if bytes.is_empty() {
        &b"null"[..]
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| {
        Failure::new(
            exit::HOST_FAILURE,
            format!("unexpected answer from the server: {e}"),
        )
    })
}

/// A failure from an error response: the API's `{"error": {"code", "message"}}`
/// or the OCI `{"errors": [...]}`.
pub fn api_failure(status: StatusCode, body: &[u8]) -> Failure {
    let (code, message) = if let Ok(ErrorBody { error }) = serde_json::from_slice(body) {
        (error.code.as_str().to_owned(), error.message)
    } else if let Some(first) = serde_json::from_slice::<OciErrors>(body)
        .ok()
        .and_then(|e| e.errors.into_iter().next())
    {
        (first.code, first.message)
    } else {
        (
            "http_error".to_owned(),
            String::from_utf8_lossy(body).chars().take(200).collect(),
        )
    };
    let exit_code = match status {
        StatusCode::SERVICE_UNAVAILABLE => exit::UNAVAILABLE,
        s if s.is_server_error() => exit::HOST_FAILURE,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => exit::DENIED,
        _ => exit::INVALID_INPUT,
    };
    Failure::new(
        exit_code,
        format!(
            "{} [{}, HTTP {}]",
            crate::text::printable(&message),
            crate::text::printable(&code),
            status.as_u16()
        ),
    )
}

/// Reads a private key file (from `warden keygen`).
pub fn read_private_key(path: &std::path::Path) -> Result<warden_host::PrivateKey, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::invalid(format!("reading key {}: {e}", path.display())))?;
    warden_host::PrivateKey::from_pem(&text)
        .map_err(|e| Failure::invalid(format!("{}: {e}", path.display())))
}

/// A public key from its text form, a file with it, or a private key file.
pub fn read_public_key(text: &str) -> Result<warden_host::PublicKey, Failure> {
    if let Ok(key) = text.parse::<warden_host::PublicKey>() {
        return Ok(key);
    }
    let contents = std::fs::read_to_string(text).map_err(|e| {
        Failure::invalid(format!(
            "{text:?} is neither a public key (ed25519:...) nor a readable file: {e}"
        ))
    })?;
    if let Ok(private) = warden_host::PrivateKey::from_pem(&contents) {
        return Ok(private.public_key());
    }
    contents
        .trim()
        .parse()
        .map_err(|e: warden_host::TrustError| Failure::invalid(format!("{text}: {e}")))
}

/// Splits `org/name@version`.
pub fn parse_release(text: &str) -> Result<(String, String, String), Failure> {
    let bad = || Failure::new(exit::USAGE, format!("{text:?}: expected org/name@version"));
    let (repo, version) = text.split_once('@').ok_or_else(bad)?;
    let (org, name) = repo.split_once('/').ok_or_else(bad)?;
    if org.is_empty() || name.is_empty() || version.is_empty() {
        return Err(bad());
    }
    Ok((org.to_owned(), name.to_owned(), version.to_owned()))
}

/// Splits `org/name`.
pub fn parse_plugin(text: &str) -> Result<(String, String), Failure> {
    match text.split_once('/') {
        Some((org, name)) if !org.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((org.to_owned(), name.to_owned()))
        }
        _ => Err(Failure::new(
            exit::USAGE,
            format!("{text:?}: expected org/name"),
        )),
    }
}

/// Prints `value` as pretty JSON.
pub fn print_json(value: &impl Serialize) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_as_utc() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_795_000_000_000), "2026-11-18 11:06:40");
    }

    #[test]
    fn release_references_parse() {
        assert_eq!(
            parse_release("acme/hello@1.0.0").unwrap(),
            ("acme".into(), "hello".into(), "1.0.0".into())
        );
        assert!(parse_release("acme/hello").is_err());
        assert!(parse_release("hello@1.0.0").is_err());
    }
}
