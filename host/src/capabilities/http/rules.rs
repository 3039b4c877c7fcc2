//! The HTTP allow-list: which hosts (and ports, and networks) a plugin
//! granted `http:RULE` may reach, parsed from and printed as the grant text.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One entry of the HTTP allow-list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HttpRule {
    /// Which hosts.
    pub host: HostPattern,
    /// Which port; any port when absent.
    pub port: Option<u16>,
}

/// The host part of an [`HttpRule`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    /// Any host name (public addresses only).
    Any,
    /// Exactly this host name (lower-case).
    Name(String),
    /// This host name's subdomains (`*.example.com` matches `api.example.com`).
    Subdomains(String),
    /// This network; the only way to reach private addresses.
    Network(IpNet),
}

impl HttpRule {
    /// Whether a request to `host:port` is covered by this rule (before the
    /// addresses it resolves to are checked).
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match (&self.host, host.parse::<IpAddr>()) {
            (HostPattern::Network(net), Ok(ip)) => net.contains(&ip),
            (HostPattern::Network(_), Err(_)) => false,
            (HostPattern::Any, _) => true,
            (_, Ok(_)) => false,
            (HostPattern::Name(name), Err(_)) => host.eq_ignore_ascii_case(name),
            (HostPattern::Subdomains(suffix), Err(_)) => {
                let host = host.to_ascii_lowercase();
                host.len() > suffix.len() + 1
                    && host.ends_with(suffix.as_str())
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
            }
        }
    }

    /// Whether this rule explicitly lists `ip` (private addresses are reachable
    /// only this way).
    pub fn lists_address(&self, ip: IpAddr) -> bool {
        matches!(&self.host, HostPattern::Network(net) if net.contains(&ip))
    }
}

impl FromStr for HttpRule {
    type Err = String;

    fn from_str(text: &str) -> Result<HttpRule, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty host".into());
        }
        if text.contains("://") || text.contains('/') && text.parse::<IpNet>().is_err() {
            return Err(format!(
                "{text:?}: give a host (and optional port), not a URL"
            ));
        }
        // `[v6]:port`, `v6`, `v6/len`, `host:port`, `host`.
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("{text:?}: unclosed ["))?;
            (host, after.strip_prefix(':'))
        } else if text.matches(':').count() > 1 {
            (text, None)
        } else {
            match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .map_err(|_| format!("{text:?}: bad port {p:?}"))
            })
            .transpose()?;
        let host = if host == "*" {
            HostPattern::Any
        } else if let Ok(net) = crate::address_policy::parse_network(host) {
            HostPattern::Network(net)
        } else if let Some(suffix) = host.strip_prefix("*.") {
            valid_name(suffix)?;
            HostPattern::Subdomains(suffix.to_ascii_lowercase())
        } else {
            valid_name(host)?;
            HostPattern::Name(host.to_ascii_lowercase())
        };
        Ok(HttpRule { host, port })
    }
}

fn valid_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a valid host name"))
    }
}

impl TryFrom<String> for HttpRule {
    type Error = String;
    fn try_from(text: String) -> Result<HttpRule, String> {
        text.parse()
    }
}

impl From<HttpRule> for String {
    fn from(rule: HttpRule) -> String {
        rule.to_string()
    }
}

impl fmt::Display for HttpRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match &self.host {
            HostPattern::Any => "*".to_owned(),
            HostPattern::Name(name) => name.clone(),
            HostPattern::Subdomains(suffix) => format!("*.{suffix}"),
            HostPattern::Network(net) if net.prefix_len() == net.max_prefix_len() => {
                match net.addr() {
                    IpAddr::V6(v6) if self.port.is_some() => format!("[{v6}]"),
                    ip => ip.to_string(),
                }
            }
            HostPattern::Network(net) => net.to_string(),
        };
        match self.port {
            Some(port) => write!(f, "{host}:{port}"),
            None => f.write_str(&host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_rules_match_hosts_ports_and_networks() {
        let rule: HttpRule = "api.example.com".parse().unwrap();
        assert!(rule.matches("api.example.com", 443));
        assert!(rule.matches("API.example.com", 80));
        assert!(!rule.matches("evil.com", 443));
        assert!(!rule.matches("api.example.com.evil.com", 443));

        let rule: HttpRule = "*.example.com:8443".parse().unwrap();
        assert!(rule.matches("a.example.com", 8443));
        assert!(!rule.matches("a.example.com", 443));
        assert!(!rule.matches("example.com", 8443));
        assert!(!rule.matches("badexample.com", 8443));

        let rule: HttpRule = "127.0.0.1:8080".parse().unwrap();
        assert!(rule.matches("127.0.0.1", 8080));
        assert!(!rule.matches("127.0.0.2", 8080));
        assert!(rule.lists_address("127.0.0.1".parse().unwrap()));

        let any: HttpRule = "*".parse().unwrap();
        assert!(any.matches("whatever.org", 80));
        assert!(!any.lists_address("10.0.0.1".parse().unwrap()));

        let v6: HttpRule = "[::1]:8080".parse().unwrap();
        assert!(v6.matches("[::1]", 8080));
        assert_eq!(v6.to_string(), "[::1]:8080");
    }

    #[test]
    fn http_rules_round_trip_through_text() {
        for text in [
            "api.example.com",
            "*.example.com:8443",
            "10.0.0.0/8",
            "127.0.0.1:8080",
            "*",
        ] {
            let rule: HttpRule = text.parse().unwrap();
            assert_eq!(rule.to_string(), text);
            let json = serde_json::to_string(&rule).unwrap();
            assert_eq!(serde_json::from_str::<HttpRule>(&json).unwrap(), rule);
        }
    }
}
