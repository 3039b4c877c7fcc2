//! Administration: `warden org`, `warden token`, `warden key`, `warden config`,
//! and the catalog (`warden catalog`).

use crate::exit::{self, Failure};
use crate::remote::read_public_key;
use crate::remote::{Remote, RemoteArgs, format_time, parse_plugin, print_json};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value as Json, json};

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

/// Output options shared by the admin commands.
#[derive(Args)]
pub struct Output {
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

fn show(value: &Json, json: bool, human: impl FnOnce(&Json)) {
    if json {
        print_json(value);
    } else {
        human(value);
    }
}

pub async fn org(command: OrgCommand, output: &Output, remote: &RemoteArgs) -> Result<u8, Failure> {
    let remote = Remote::new(remote)?;
    let OrgCommand::Create { name } = command;
    let created: Json = remote
        .send(Method::POST, "/v1/orgs", &json!({ "name": name }))
        .await?;
    show(&created, output.json, |c| {
        println!("created organization {}", c["name"].as_str().unwrap_or("?"));
        println!(
            "its first admin token (shown once): {}",
            c["admin_token"]["secret"].as_str().unwrap_or("?")
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
    output: &Output,
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
            let expires = expires_in.as_deref().map(parse_seconds).transpose()?;
            let token: Json = remote
                .send(
                    Method::POST,
                    &format!("/v1/orgs/{org}/tokens"),
                    &json!({ "name": name, "role": role, "expires_in_seconds": expires }),
                )
                .await?;
            show(&token, output.json, |t| {
                eprintln!(
                    "created {} token {} ({}); the secret is shown once:",
                    t["role"].as_str().unwrap_or("?"),
                    t["id"].as_str().unwrap_or("?"),
                    t["name"].as_str().unwrap_or("")
                );
                println!("{}", t["secret"].as_str().unwrap_or("?"));
            });
        }
        TokenCommand::List => {
            let tokens: Json = remote.get(&format!("/v1/orgs/{org}/tokens")).await?;
            show(&tokens, output.json, |tokens| {
                for t in tokens.as_array().into_iter().flatten() {
                    let state = if t["revoked_at"].is_i64() {
                        "revoked".to_owned()
                    } else if let Some(at) = t["expires_at"].as_i64() {
                        format!("expires {}", format_time(at))
                    } else {
                        "active".to_owned()
                    };
                    println!(
                        "{:<22} {:<10} {:<20} {state}",
                        t["id"].as_str().unwrap_or("?"),
                        t["role"].as_str().unwrap_or("?"),
                        t["name"].as_str().unwrap_or("")
                    );
                }
            });
        }
        TokenCommand::Revoke { id } => {
            let _: Json = remote
                .call(remote.request(Method::DELETE, &format!("/v1/orgs/{org}/tokens/{id}")))
                .await?;
            println!("revoked token {id}");
        }
    }
    Ok(exit::OK)
}

pub async fn key(command: KeyCommand, output: &Output, remote: &RemoteArgs) -> Result<u8, Failure> {
    let remote = Remote::new(remote)?;
    let org = remote.my_org().await?;
    match command {
        KeyCommand::Add { key, kind, owner } => {
            let public = read_public_key(&key)?;
            let added: Json = remote
                .send(
                    Method::POST,
                    &format!("/v1/orgs/{org}/keys"),
                    &json!({ "public_key": public.to_string(), "kind": kind, "owner": owner }),
                )
                .await?;
            show(&added, output.json, |k| {
                println!(
                    "registered {} key {} for {}",
                    k["kind"].as_str().unwrap_or("?"),
                    k["key_id"].as_str().unwrap_or("?"),
                    k["owner"].as_str().unwrap_or("?")
                );
            });
        }
        KeyCommand::List => {
            let keys: Json = remote.get(&format!("/v1/orgs/{org}/keys")).await?;
            show(&keys, output.json, |keys| {
                for k in keys.as_array().into_iter().flatten() {
                    println!(
                        "{}  {:<9} {:<20} {}",
                        k["key_id"].as_str().unwrap_or("?"),
                        k["kind"].as_str().unwrap_or("?"),
                        k["owner"].as_str().unwrap_or(""),
                        if k["revoked_at"].is_i64() {
                            "revoked"
                        } else {
                            "active"
                        }
                    );
                }
            });
        }
        KeyCommand::Revoke { key_id } => {
            let _: Json = remote
                .call(remote.request(
                    Method::POST,
                    &format!("/v1/orgs/{org}/keys/{key_id}/revoke"),
                ))
                .await?;
            println!("revoked key {key_id}");
        }
    }
    Ok(exit::OK)
}

pub async fn config(
    command: ConfigCommand,
    output: &Output,
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
    let current: Json = remote.get(&path).await?;
    let mut values = current["values"].as_object().cloned().unwrap_or_default();
    let result = match command {
        ConfigCommand::Show { .. } => current,
        ConfigCommand::Set { values: pairs, .. } => {
            for pair in pairs {
                let (key, value) = pair.split_once('=').ok_or_else(|| {
                    Failure::new(exit::USAGE, format!("{pair:?}: expected KEY=VALUE"))
                })?;
                values.insert(key.to_owned(), Json::String(value.to_owned()));
            }
            remote
                .send(Method::PUT, &path, &json!({ "values": values }))
                .await?
        }
        ConfigCommand::Unset { keys, .. } => {
            for key in keys {
                values.remove(&key);
            }
            remote
                .send(Method::PUT, &path, &json!({ "values": values }))
                .await?
        }
    };
    show(&result, output.json, |r| {
        for (key, value) in r["values"].as_object().into_iter().flatten() {
            println!("{key}={}", value.as_str().unwrap_or(""));
        }
    });
    Ok(exit::OK)
}

pub async fn catalog(
    command: CatalogCommand,
    output: &Output,
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
            let items = remote
                .all_pages(&format!("/v1/orgs/{org}/plugins"), &query)
                .await?;
            show(&Json::Array(items), output.json, |items| {
                for p in items.as_array().into_iter().flatten() {
                    println!(
                        "{:<32} {:<12} {}",
                        p["name"].as_str().unwrap_or("?"),
                        p["latest_approved"].as_str().unwrap_or("(none approved)"),
                        p["description"].as_str().unwrap_or("")
                    );
                }
            });
        }
        CatalogCommand::Show { plugin } => {
            let (org, name) = parse_plugin(&plugin)?;
            let detail: Json = remote.get(&format!("/v1/plugins/{org}/{name}")).await?;
            show(&detail, output.json, |d| {
                println!(
                    "{}  {}",
                    d["name"].as_str().unwrap_or("?"),
                    d["description"].as_str().unwrap_or("")
                );
                println!("versions");
                for v in d["versions"].as_array().into_iter().flatten() {
                    println!(
                        "  {:<12} {}",
                        v["version"].as_str().unwrap_or("?"),
                        v["status"].as_str().unwrap_or("?")
                    );
                }
                if let Some(of) = d["functions_of"].as_str() {
                    println!("functions of {of}");
                    for f in d["functions"].as_array().into_iter().flatten() {
                        println!(
                            "  {}: {}",
                            f["name"].as_str().unwrap_or("?"),
                            f["signature"].as_str().unwrap_or("?")
                        );
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
