//! Outgoing HTTP policy: which requests a plugin's `wasi:http` calls may make.
//!
//! A request goes out only if its host is on the plugin's allow-list and every
//! address the host resolves to is public, unless the allow-list names that
//! address (or its network) explicitly. Every request is then sent to the very
//! address that was checked, so a DNS answer that changes between the check
//! and the connection (DNS rebinding) cannot redirect it: plain HTTP keeps the
//! name in the Host header; HTTPS connects to the checked address and
//! validates the certificate against the requested host name (also its SNI).

use super::rules::HttpRule;
use crate::address_policy::{AddressRefusal, resolve_checked};
use crate::transcript::Transcript;
use http_body_util::BodyExt;
use std::net::{IpAddr, SocketAddr};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Denial {
    /// The host is not on the allow-list.
    NotAllowed(String),
    /// The host resolves to an address that is not public and not listed.
    Prohibited { host: String, address: IpAddr },
    /// The host name does not resolve.
    Unresolvable(String),
}

impl Denial {
    fn error_code(&self) -> HttpError {
        match self {
            Denial::NotAllowed(_) => HttpError::HttpRequestDenied,
            Denial::Prohibited { .. } => HttpError::DestinationIpProhibited,
            Denial::Unresolvable(_) => HttpError::DestinationNotFound,
        }
    }

    /// What the plugin's transcript (which invokers read) says: never the
    /// private address a name resolved to, which would map the server's
    /// network for whoever can invoke.
    fn note(&self) -> String {
        match self {
            Denial::Prohibited { host, .. } => format!(
                "http request to {host} denied: it resolves to an address that is not public \
                 (grant that address explicitly to allow it)"
            ),
            other => other.describe(),
        }
    }

    /// What the server log says.
    fn describe(&self) -> String {
        match self {
            Denial::NotAllowed(host) => {
                format!("http request to {host} denied: not on the allow-list")
            }
            Denial::Prohibited { host, address }
                if host.trim_matches(['[', ']']) == address.to_string() =>
            {
                format!(
                    "http request to {host} denied: not a public address (grant that address explicitly to allow it)"
                )
            }
            Denial::Prohibited { host, address } => format!(
                "http request to {host} denied: it resolves to {address}, which is not a public \
                 address (grant that address explicitly to allow it)"
            ),
            Denial::Unresolvable(host) => {
                format!("http request to {host} failed: name does not resolve")
            }
        }
    }
}

/// Checks `host:port` against `rules` and returns the address to connect to
/// (the address policy is `crate::address_policy`'s, shared with the
/// registry's webhooks: public addresses, and those a matching rule lists).
pub(crate) async fn authorize(
    rules: &[HttpRule],
    host: &str,
    port: u16,
) -> Result<SocketAddr, Denial> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let matching: Vec<&HttpRule> = rules.iter().filter(|r| r.matches(bare, port)).collect();
    if matching.is_empty() {
        return Err(Denial::NotAllowed(format!("{host}:{port}")));
    }
    let addresses = resolve_checked(host, port, |ip| {
        matching.iter().any(|r| r.lists_address(ip))
    })
    .await
    .map_err(|refusal| match refusal {
        AddressRefusal::NotPublic { address, .. } => Denial::Prohibited {
            host: host.to_owned(),
            address,
        },
        AddressRefusal::Unresolvable(_) => Denial::Unresolvable(host.to_owned()),
    })?;
    Ok(addresses[0])
}

/// The `wasi:http` hooks of one invocation: the allow-list check in front of the
/// standard sender.
pub(crate) struct HttpPolicy {
    pub(crate) rules: Vec<HttpRule>,
    pub(crate) transcript: Transcript,
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
)>;

impl WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let rules = self.rules.clone();
        let transcript = self.transcript.clone();
        Box::new(async move {
            let uri = request.uri().clone();
            let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
            let host = uri
                .host()
                .ok_or(HttpError::HttpRequestUriInvalid)?
                .to_owned();
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let address = match authorize(&rules, &host, port).await {
                Ok(address) => address,
                Err(denial) => {
                    tracing::info!(target: "warden::http", "{}", denial.describe());
                    transcript.note(denial.note());
                    return Err(denial.error_code());
                }
            };
            if https {
                return send_https(request, address, &host).await;
            }
            {
                // Connect to the checked address, not to whatever the name
                // resolves to next time; the Host header keeps the name.
                let path = uri.path_and_query().map_or("/", |p| p.as_str());
                *request.uri_mut() = http::Uri::builder()
                    .scheme("http")
                    .authority(address.to_string())
                    .path_and_query(path)
                    .build()
                    .map_err(|_| HttpError::HttpRequestUriInvalid)?;
            }
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// Sends an HTTPS request over a TCP connection to `address` (the checked
/// one, never a new lookup), with TLS for `host` validated against the
/// public web PKI roots.
async fn send_https(
    mut request: http::Request<WasiBody>,
    address: SocketAddr,
    host: &str,
) -> SendResult {
    let tcp = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::net::TcpStream::connect(address),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)?
    .map_err(HttpError::Connect)?;
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    // The provider is named: with two in the dependency graph, rustls cannot
    // pick a process default by itself (and would panic).
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| HttpError::Tls(std::io::Error::other(e)))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(HttpError::Tls)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(HttpError::from)?;
    let driver = tokio::spawn(connection);
    // The request line carries the path only; the Host header the name.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(HttpError::from)?;
    let io = async move {
        match driver.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(HttpError::from(error)),
            Err(_) => Ok(()),
        }
    };
    Ok((
        response.map(|body| body.map_err(HttpError::from).boxed_unsync()),
        Box::new(io) as Box<dyn Future<Output = _> + Send>,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[&str]) -> Vec<HttpRule> {
        list.iter().map(|r| r.parse().unwrap()).collect()
    }

    #[tokio::test]
    async fn loopback_and_metadata_are_refused_unless_listed() {
        let any = rules(&["*"]);
        assert!(matches!(
            authorize(&any, "127.0.0.1", 80).await,
            Err(Denial::Prohibited { .. })
        ));
        assert!(matches!(
            authorize(&any, "169.254.169.254", 80).await,
            Err(Denial::Prohibited { .. })
        ));
        assert!(matches!(
            authorize(&any, "localhost", 80).await,
            Err(Denial::Prohibited { .. })
        ));
        assert!(matches!(
            authorize(&any, "[::1]", 80).await,
            Err(Denial::Prohibited { .. })
        ));

        let listed = rules(&["127.0.0.1:8080"]);
        assert_eq!(
            authorize(&listed, "127.0.0.1", 8080).await,
            Ok("127.0.0.1:8080".parse().unwrap())
        );
        assert!(matches!(
            authorize(&listed, "127.0.0.1", 8081).await,
            Err(Denial::NotAllowed(_))
        ));
        // Listing a name does not open the private addresses it resolves to.
        let by_name = rules(&["localhost"]);
        assert!(matches!(
            authorize(&by_name, "localhost", 8080).await,
            Err(Denial::Prohibited { .. })
        ));
    }

    #[tokio::test]
    async fn https_connects_to_the_checked_address_and_names_the_host_for_tls() {
        // The checked address; the name stands for one whose DNS answer
        // could change after the check (rebinding): no new lookup is made.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let hello = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut bytes = vec![0u8; 4096];
            let n = stream.read(&mut bytes).await.unwrap();
            bytes.truncate(n);
            bytes
        });
        let body = http_body_util::Empty::<bytes::Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        let request = http::Request::builder()
            .uri("https://rebinding.invalid/secret")
            .header("host", "rebinding.invalid")
            .body(body)
            .unwrap();
        // The peer is no TLS server: the handshake fails, after the hello.
        assert!(
            send_https(request, address, "rebinding.invalid")
                .await
                .is_err()
        );
        let hello = hello.await.unwrap();
        assert_eq!(hello.first(), Some(&0x16), "a TLS handshake record");
        let sni = b"rebinding.invalid";
        assert!(
            hello.windows(sni.len()).any(|w| w == sni),
            "the ClientHello names the requested host"
        );
    }

    #[test]
    fn notes_to_invokers_do_not_show_private_addresses() {
        let denial = Denial::Prohibited {
            host: "internal.example".into(),
            address: "10.1.2.3".parse().unwrap(),
        };
        assert!(denial.describe().contains("10.1.2.3"));
        assert!(!denial.note().contains("10.1.2.3"), "{}", denial.note());
        assert!(denial.note().contains("internal.example"));
    }

    #[tokio::test]
    async fn hosts_off_the_list_are_refused_before_any_lookup() {
        let list = rules(&["api.example.com"]);
        assert_eq!(
            authorize(&list, "evil.example.net", 443).await,
            Err(Denial::NotAllowed("evil.example.net:443".into()))
        );
    }
}
