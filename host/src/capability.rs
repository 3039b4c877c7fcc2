//! Capabilities: what a component asks for (its imports) and what an admin grants.
//!
//! Every import of a component is classified into a [`Capability`]. `kv`,
//! `config` and `http` must be granted explicitly; the standard WASI interfaces
//! that toolchains pull in anyway are always linked but reach nothing real
//! (no preopened directory, every socket refused, only granted environment
//! variables, stdout/stderr captured into the transcript).

use crate::error::{Error, Result};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One capability a component can request through its imports.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// `warden:plugin/log`: always granted.
    Log,
    /// `warden:plugin/config`: the admin-set configuration values.
    Config,
    /// `warden:plugin/kv`: the plugin's key-value namespace.
    Kv,
    /// `wasi:http/outgoing-handler`: outgoing HTTP to allow-listed hosts.
    Http,
    /// `wasi:cli/environment`: only the granted variables are visible.
    Environment,
    /// `wasi:filesystem`: linked, but no directory is ever opened.
    Filesystem,
    /// `wasi:sockets`: linked, but every address is refused.
    Sockets,
    /// `wasi:cli` stdio: captured into the size-capped transcript.
    Stdio,
    /// Clocks, randomness, I/O streams, exit: harmless basics.
    Basic,
}

impl Capability {
    /// Whether an admin must grant this capability for the component to load.
    pub fn needs_grant(&self) -> bool {
        matches!(self, Capability::Config | Capability::Kv | Capability::Http)
    }

    /// What the sandbox gives a plugin that has this capability.
    pub fn description(&self) -> &'static str {
        match self {
            Capability::Log => "levelled log messages (always granted)",
            Capability::Config => "read the configuration values an admin set",
            Capability::Kv => "a durable key-value namespace of its own",
            Capability::Http => "outgoing HTTP to the hosts on the allow-list",
            Capability::Environment => "environment variables (only those granted by name)",
            Capability::Filesystem => "filesystem interfaces (no directory is ever opened)",
            Capability::Sockets => "socket interfaces (every address is refused)",
            Capability::Stdio => "stdout/stderr (captured into the log)",
            Capability::Basic => "clocks, randomness and I/O streams",
        }
    }

    /// Classifies one import name, e.g. `wasi:http/types@0.2.3`.
    pub fn of_import(name: &str) -> Option<Capability> {
        let unversioned = name.split('@').next().unwrap_or(name);
        let (package, interface) = unversioned.split_once('/')?;
        Some(match (package, interface) {
            ("warden:plugin", "log") => Capability::Log,
            ("warden:plugin", "config") => Capability::Config,
            ("warden:plugin", "kv") => Capability::Kv,
            ("wasi:http", "outgoing-handler" | "types") => Capability::Http,
            ("wasi:cli", "environment") => Capability::Environment,
            (
                "wasi:cli",
                "stdin" | "stdout" | "stderr" | "terminal-input" | "terminal-output"
                | "terminal-stdin" | "terminal-stdout" | "terminal-stderr",
            ) => Capability::Stdio,
            ("wasi:cli", "exit") => Capability::Basic,
            ("wasi:filesystem", "types" | "preopens") => Capability::Filesystem,
            (
                "wasi:sockets",
                "network" | "instance-network" | "tcp" | "tcp-create-socket" | "udp"
                | "udp-create-socket" | "ip-name-lookup",
            ) => Capability::Sockets,
            ("wasi:clocks", "monotonic-clock" | "wall-clock")
            | ("wasi:random", "random" | "insecure" | "insecure-seed")
            | ("wasi:io", "error" | "poll" | "streams") => Capability::Basic,
            _ => return None,
        })
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Capability::Log => "log",
            Capability::Config => "config",
            Capability::Kv => "kv",
            Capability::Http => "http",
            Capability::Environment => "env",
            Capability::Filesystem => "filesystem",
            Capability::Sockets => "sockets",
            Capability::Stdio => "stdio",
            Capability::Basic => "basic",
        })
    }
}

/// The capabilities one component requests, derived from its imports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Requested {
    /// Each capability with the imports that request it.
    pub capabilities: Vec<(Capability, Vec<String>)>,
    /// Imports no Warden host provides.
    pub unsupported: Vec<String>,
}

impl Requested {
    /// Classifies a component's import names.
    pub fn classify<'a>(imports: impl IntoIterator<Item = &'a str>) -> Requested {
        let mut requested = Requested::default();
        for name in imports {
            match Capability::of_import(name) {
                Some(capability) => {
                    match requested
                        .capabilities
                        .iter_mut()
                        .find(|(c, _)| *c == capability)
                    {
                        Some((_, names)) => names.push(name.to_owned()),
                        None => requested
                            .capabilities
                            .push((capability, vec![name.to_owned()])),
                    }
                }
                None => requested.unsupported.push(name.to_owned()),
            }
        }
        requested.capabilities.sort();
        requested
    }

    /// Whether `capability` is among the requested ones.
    pub fn contains(&self, capability: &Capability) -> bool {
        self.capabilities.iter().any(|(c, _)| c == capability)
    }

    /// The requested capabilities that need a grant and do not have one.
    pub fn missing(&self, grants: &Grants) -> Vec<Capability> {
        self.capabilities
            .iter()
            .map(|(c, _)| c)
            .filter(|c| c.needs_grant() && !grants.allows(c))
            .cloned()
            .collect()
    }

    /// Refuses unsupported imports and ungranted capabilities, naming all of them.
    pub fn check(&self, grants: &Grants) -> Result<()> {
        if !self.unsupported.is_empty() {
            return Err(Error::UnsupportedImports(self.unsupported.clone()));
        }
        let missing = self.missing(grants);
        if !missing.is_empty() {
            return Err(Error::MissingCapabilities(missing));
        }
        Ok(())
    }
}

/// What an admin granted a plugin.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Grants {
    /// The key-value namespace.
    pub kv: bool,
    /// The admin-set configuration values.
    pub config: bool,
    /// Hosts that outgoing HTTP may reach; empty means no HTTP at all.
    pub http: Vec<HttpRule>,
    /// Names of the host's environment variables the plugin may read.
    pub env: BTreeSet<String>,
}

impl Grants {
    /// Nothing granted beyond the always-available basics.
    pub fn none() -> Grants {
        Grants::default()
    }

    /// Whether `capability` is granted.
    pub fn allows(&self, capability: &Capability) -> bool {
        match capability {
            Capability::Kv => self.kv,
            Capability::Config => self.config,
            Capability::Http => !self.http.is_empty(),
            _ => true,
        }
    }

    /// Adds one grant written as on the command line: `kv`, `config`,
    /// `http:api.example.com`, `http:*.example.com:8443`, `http:10.0.0.0/8`,
    /// `http:*` (any public host), `env:NAME`.
    pub fn add(&mut self, grant: &str) -> Result<()> {
        let bad = |why: &str| Error::Config(format!("grant {grant:?}: {why}"));
        match grant.split_once(':') {
            None if grant == "kv" => self.kv = true,
            None if grant == "config" => self.config = true,
            None if grant == "http" => {
                return Err(bad(
                    "name the hosts, e.g. http:api.example.com (or http:* for any public host)",
                ));
            }
            Some(("http", rule)) => self.http.push(rule.parse().map_err(|e: String| bad(&e))?),
            Some(("env", name)) => {
                let portable = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !portable {
                    return Err(bad(
                        "expected env:NAME, a name of ASCII letters, digits and _ not starting with a digit",
                    ));
                }
                if is_reserved_env(name) {
                    return Err(bad(
                        "Warden's own settings and secrets (WARDEN_*, database and registry credentials) are never granted",
                    ));
                }
                self.env.insert(name.to_owned());
            }
            _ => return Err(bad("expected kv, config, http:HOST[:PORT] or env:NAME")),
        }
        Ok(())
    }

    /// Parses a list of grants as written on the command line.
    pub fn parse<'a>(grants: impl IntoIterator<Item = &'a str>) -> Result<Grants> {
        let mut parsed = Grants::default();
        for grant in grants {
            parsed.add(grant)?;
        }
        Ok(parsed)
    }
}

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
        } else if let Ok(net) = host.parse::<IpNet>() {
            HostPattern::Network(net)
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            HostPattern::Network(IpNet::from(ip))
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

/// Environment variables no grant reaches: Warden's own settings (all
/// `WARDEN_*`, among them the database URL, registry password and tokens)
/// and the standard names of database and cloud credentials a server's
/// environment may hold.
pub fn is_reserved_env(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with("WARDEN_")
        || upper.starts_with("PG")
        || upper.starts_with("AWS_")
        || matches!(
            upper.as_str(),
            "DATABASE_URL" | "REGISTRY_PASSWORD" | "GOOGLE_APPLICATION_CREDENTIALS"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_classified_by_interface_ignoring_versions() {
        let requested = Requested::classify([
            "warden:plugin/kv@0.1.0",
            "wasi:http/outgoing-handler@0.2.0",
            "wasi:http/types@0.2.0",
            "wasi:cli/environment@0.2.3",
            "wasi:filesystem/preopens@0.2.3",
            "wasi:sockets/tcp@0.2.3",
            "wasi:io/streams@0.2.3",
            "acme:evil/backdoor@1.0.0",
        ]);
        assert!(requested.contains(&Capability::Kv));
        assert!(requested.contains(&Capability::Http));
        assert!(requested.contains(&Capability::Environment));
        assert!(requested.contains(&Capability::Filesystem));
        assert!(requested.contains(&Capability::Sockets));
        assert_eq!(requested.unsupported, vec!["acme:evil/backdoor@1.0.0"]);
        let http = requested
            .capabilities
            .iter()
            .find(|(c, _)| *c == Capability::Http)
            .unwrap();
        assert_eq!(http.1.len(), 2);
    }

    #[test]
    fn missing_grants_are_all_named() {
        let requested = Requested::classify([
            "warden:plugin/kv@0.1.0",
            "warden:plugin/config@0.1.0",
            "wasi:http/types@0.2.0",
        ]);
        let error = requested.check(&Grants::none()).unwrap_err();
        assert!(matches!(&error, Error::MissingCapabilities(m)
            if *m == vec![Capability::Config, Capability::Kv, Capability::Http]));
        assert_eq!(
            error.to_string(),
            "capabilities not granted: config, kv, http"
        );
        let grants = Grants::parse(["kv", "config", "http:example.com"]).unwrap();
        requested.check(&grants).unwrap();
    }

    #[test]
    fn grants_parse_and_reject_nonsense() {
        let grants = Grants::parse([
            "kv",
            "env:HOME",
            "http:api.example.com:8443",
            "http:10.0.0.0/8",
        ])
        .unwrap();
        assert!(grants.kv && !grants.config);
        assert!(grants.env.contains("HOME"));
        assert_eq!(grants.http.len(), 2);
        for bad in [
            "http",
            "http:",
            "http:https://x.com",
            "files",
            "env:",
            "http:bad_host",
            "http:x.com:99999",
            "env:WARDEN_DATABASE_URL",
            "env:WARDEN_REGISTRY_PASSWORD",
            "env:warden_token",
            "env:DATABASE_URL",
            "env:PGPASSWORD",
        ] {
            let error = Grants::parse([bad]).unwrap_err();
            assert!(error.to_string().contains(bad), "{bad}: {error}");
        }
        // An environment variable's name is a portable one: nothing that
        // could draw on the terminal of the admin reviewing it.
        for bad in [
            "env:X\u{1b}[1A\u{1b}[2K",
            "env:1ST",
            "env:A B",
            "env:A\u{202e}",
            "env:a-b",
        ] {
            assert!(Grants::parse([bad]).is_err(), "{bad:?}");
        }
        Grants::parse(["env:_PRIVATE_1", "env:lower_case"]).unwrap();
    }

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
