//! Administration: `warden org`, `warden token`, `warden key`, `warden config`,
//! and the catalog (`warden catalog`).

use crate::exit::{self, Failure};
use crate::remote::read_public_key;
use crate::remote::{Remote, RemoteArgs, format_time, parse_plugin, print_json};
use crate::text::printable;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde::Serialize;
use warden_registry::types::{
    AddKey, CreateOrg, CreateToken, CreatedOrg, KeyKind, NewToken, PluginConfig, PluginDetail,
    PluginPage, PluginSummary, Role, SigningKey,
};

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Create an organization and its first admin token (operator admins only).
    Create {
        /// Its name.
        name: String,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once.
    Create {
        /// What it is for, e.g. portal.
        #[arg(long)]
        name: String,
        /// admin, publisher, invoker or viewer.
        #[arg(long)]
        role: String,
        /// Expiry, e.g. 30d, 12h, 3600s (default: never).
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List the org's tokens.
    List,
    /// Revoke a token by id.
    Revoke {
        /// Token id (tok_...).
        id: String,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Register a public key: `ed25519:...`, or a file holding it (or the private key).
    Add {
        /// The key or a file.
        key: String,
        /// publisher (signs releases) or admin (signs approvals).
        #[arg(long)]
        kind: String,
        /// Who holds it.
        #[arg(long)]
        owner: String,
    },
    /// List the org's keys.
    List,
    /// Revoke a key by id.
    Revoke {
        /// Key id.
        key_id: String,
    },
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Set configuration values of a plugin (others are kept).
    Set {
        /// org/name
        plugin: String,
        /// KEY=VALUE pairs.
        #[arg(required = true)]
        values: Vec<String>,
    },
    /// Remove configuration values of a plugin.
    Unset {
        /// org/name
        plugin: String,
        /// Keys.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Show a plugin's configuration values.
    Show {
        /// org/name
        plugin: String,
    },
}

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// List or search the org's plugins.
    List {
        /// Text to find in names and descriptions.
        #[arg(long, short)]
        search: Option<String>,
        /// Organization (default: the token's).
        #[arg(long)]
        org: Option<String>,
    },
    /// A plugin: versions, statuses, functions with schemas.
    Show {
        /// org/name
        plugin: String,
    },
}

/// How commands print: for people, or `--json` for scripts.
#[derive(Args, Clone, Copy, Debug)]
pub struct Format {
    /// Print JSON (the server's answer as it is) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Format {
    /// Prints `value` as JSON with `--json`, else as `human` says.
    pub fn show<T: Serialize>(self, value: &T, human: impl FnOnce(&T)) {
        if self.json {
            print_json(value);
        } else {
            human(value);
        }
    }
}

pub async fn org(command: OrgCommand, output: Format, remote: &RemoteArgs) -> Result<u8, Failure> {
    let remote = Remote::new(remote)?;
    let OrgCommand::Create { name } = command;
    let created: CreatedOrg = remote
        .send(Method::POST, "/v1/orgs", &CreateOrg { name })
        .await?;
    output.show(&created, |c| {
        outln!("created organization {}", c.name);
        outln!(
            "its first admin token (shown once): {}",
            c.admin_token.secret.as_deref().unwrap_or("?")
        );
    });
    Ok(exit::OK)
}

fn parse_seconds(text: &str) -> Result<i64, Failure> {
    let bad = || {
        Failure::new(
            exit::USAGE,
            format!("--expires-in {text:?}: expected e.g. 30d, 12h, 90m, 3600s"),
        )
    };
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: i64 = number.parse().map_err(|_| bad())?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(factor).ok_or_else(bad)
}

pub async fn token(
    command: TokenCommand,
    output: Format,
    remote: &RemoteArgs,
) -> Result<u8, Failure> {
    let remote = Remote::new(remote)?;
    let org = remote.my_org().await?;
    match command {
        TokenCommand::Create {
            name,
            role,
            expires_in,
        } => {
            let role: Role = role
                .parse()
                .map_err(|e: String| Failure::new(exit::USAGE, format!("--role: {e}")))?;
            let expires_in_seconds = expires_in.as_deref().map(parse_seconds).transpose()?;
            let token: NewToken = remote
                .send(
                    Method::POST,
                    &format!("/v1/orgs/{org}/tokens"),
                    &CreateToken {
                        name,
                        role,
                        expires_in_seconds,
                    },
                )
                .await?;
            output.show(&token, |t| {
                eprintln!(
                    "created {} token {} ({}); the secret is shown once:",
                    t.role,
                    printable(&t.id),
                    printable(&t.name)
                );
                outln!("{}", t.secret.as_deref().unwrap_or("?"));
            });
        }
        TokenCommand::List => {
            let tokens: Vec<NewToken> = remote.get(&format!("/v1/orgs/{org}/tokens")).await?;
            output.show(&tokens, |tokens| {
                for t in tokens {
                    let state = if t.revoked_at.is_some() {
                        "revoked".to_owned()
                    } else if let Some(at) = t.expires_at {
                        format!("expires {}", format_time(at))
                    } else {
                        "active".to_owned()
                    };
                    outln!(
                        "{:<22} {:<10} {:<20} {state}",
                        printable(&t.id),
                        t.role,
                        printable(&t.name)
                    );
                }
            });
        }
        TokenCommand::Revoke { id } => {
            remote
                .call_empty(remote.request(Method::DELETE, &format!("/v1/orgs/{org}/tokens/{id}")))
                .await?;
            outln!("revoked token {id}");
        }
    }
    Ok(exit::OK)
}

pub async fn key(command: KeyCommand, output: Format, remote: &RemoteArgs) -> Result<u8, Failure> {
    let remote = Remote::new(remote)?;
    let org = remote.my_org().await?;
    match command {
        KeyCommand::Add { key, kind, owner } => {
            let kind = match kind.as_str() {
                "publisher" => KeyKind::Publisher,
                "admin" => KeyKind::Admin,
                other => {
                    return Err(Failure::new(
                        exit::USAGE,
                        format!("--kind {other:?}: expected publisher or admin"),
                    ));
                }
            };
            let public = read_public_key(&key)?;
            let added: SigningKey = remote
                .send(
                    Method::POST,
                    &format!("/v1/orgs/{org}/keys"),
                    &AddKey {
                        public_key: public.to_string(),
                        kind,
                        owner,
                    },
                )
                .await?;
            output.show(&added, |k| {
                outln!(
                    "registered {} key {} for {}",
                    k.kind.as_str(),
                    printable(&k.key_id),
                    printable(&k.owner)
                );
            });
        }
        KeyCommand::List => {
            let keys: Vec<SigningKey> = remote.get(&format!("/v1/orgs/{org}/keys")).await?;
            output.show(&keys, |keys| {
                for k in keys {
                    outln!(
                        "{}  {:<9} {:<20} {}",
                        printable(&k.key_id),
                        k.kind.as_str(),
                        printable(&k.owner),
                        if k.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        }
                    );
                }
            });
        }
        KeyCommand::Revoke { key_id } => {
            remote
                .call_empty(remote.request(
                    Method::POST,
                    &format!("/v1/orgs/{org}/keys/{key_id}/revoke"),
                ))
                .await?;
            outln!("revoked key {key_id}");
        }
    }
    Ok(exit::OK)
}

pub async fn config(
    command: ConfigCommand,
    output: Format,
    remote: &RemoteArgs,
) -> Result<u8, Failure> {
    let remote = Remote::new(remote)?;
    let plugin = match &command {
        ConfigCommand::Set { plugin, .. }
        | ConfigCommand::Unset { plugin, .. }
        | ConfigCommand::Show { plugin } => plugin.clone(),
    };
    let (org, name) = parse_plugin(&plugin)?;
    let path = format!("/v1/plugins/{org}/{name}/config");
    let mut config: PluginConfig = remote.get(&path).await?;
    let result = match command {
        ConfigCommand::Show { .. } => config,
        ConfigCommand::Set { values: pairs, .. } => {
            for pair in pairs {
                let (key, value) = pair.split_once('=').ok_or_else(|| {
                    Failure::new(exit::USAGE, format!("{pair:?}: expected KEY=VALUE"))
                })?;
                config.values.insert(key.to_owned(), value.to_owned());
            }
            remote.send(Method::PUT, &path, &config).await?
        }
        ConfigCommand::Unset { keys, .. } => {
            for key in keys {
                config.values.remove(&key);
            }
            remote.send(Method::PUT, &path, &config).await?
        }
    };
    output.show(&result, |r: &PluginConfig| {
        for (key, value) in &r.values {
            outln!("{}={}", printable(key), printable(value));
        }
    });
    Ok(exit::OK)
}

pub async fn catalog(
    command: CatalogCommand,
    output: Format,
    remote: &RemoteArgs,
) -> Result<u8, Failure> {
    let remote = Remote::new(remote)?;
    match command {
        CatalogCommand::List { search, org } => {
            let org = match org {
                Some(org) => org,
                None => remote.my_org().await?,
            };
            let query: Vec<(&str, String)> = search.iter().map(|q| ("q", q.clone())).collect();
            let items: Vec<PluginSummary> = remote
                .all_pages::<PluginPage>(&format!("/v1/orgs/{org}/plugins"), &query)
                .await?;
            output.show(&items, |items| {
                for p in items {
                    outln!(
                        "{:<32} {:<12} {}",
                        printable(&p.name),
                        printable(p.latest_approved.as_deref().unwrap_or("(none approved)")),
                        printable(&p.description)
                    );
                }
            });
        }
        CatalogCommand::Show { plugin } => {
            let (org, name) = parse_plugin(&plugin)?;
            let detail: PluginDetail = remote.get(&format!("/v1/plugins/{org}/{name}")).await?;
            output.show(&detail, |d| {
                outln!("{}  {}", printable(&d.name), printable(&d.description));
                outln!("versions");
                for v in &d.versions {
                    outln!("  {:<12} {}", printable(&v.version), v.status.as_str());
                }
                if let Some(of) = &d.functions_of {
                    outln!("functions of {of}");
                    for f in &d.functions {
                        outln!("  {}: {}", printable(&f.name), printable(&f.signature));
                    }
                }
            });
        }
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_parse_with_units() {
        assert_eq!(parse_seconds("30d").unwrap(), 30 * 86_400);
        assert_eq!(parse_seconds("90m").unwrap(), 5400);
        assert_eq!(parse_seconds("15").unwrap(), 15);
        assert!(parse_seconds("soon").is_err());
        assert!(parse_seconds("3w").is_err());
    }
}
