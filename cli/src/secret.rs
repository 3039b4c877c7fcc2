//! `warden secret set|list|remove`: a plugin's secrets (admins). `set` reads
//! the value from standard input, never from the command line, where other
//! local users could read it (`ps`, shell history).

use crate::admin::Format;
use crate::exit::{self, Failure};
use crate::remote::{Remote, RemoteArgs, format_time, parse_plugin};
use crate::text::printable;
use clap::Subcommand;
use reqwest::Method;
use std::io::Read;
use warden_registry::types::{SecretInfo, SecretList};

#[derive(Subcommand)]
pub enum SecretCommand {
    /// Set a secret of a plugin from standard input (one trailing newline
    /// is dropped), e.g. `warden secret set acme/fetch API_TOKEN < token.txt`.
    Set {
        /// org/name
        plugin: String,
        /// The secret's name, as granted with `secret:NAME`.
        name: String,
    },
    /// List a plugin's secrets: names, when and by whom each was set (never values).
    List {
        /// org/name
        plugin: String,
    },
    /// Remove a secret of a plugin.
    Remove {
        /// org/name
        plugin: String,
        /// The secret's name.
        name: String,
    },
}

/// The value on standard input, without one trailing newline (`echo`, a
/// file written by an editor).
fn read_value() -> Result<String, Failure> {
    let mut value = String::new();
    std::io::stdin()
        .read_to_string(&mut value)
        .map_err(|e| Failure::invalid(format!("reading the secret from standard input: {e}")))?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    Ok(value)
}

/// Refuses a name no grant can name before it goes into a URL.
fn check_name(name: &str) -> Result<(), Failure> {
    if warden_host::valid_secret_name(name) {
        Ok(())
    } else {
        Err(Failure::new(
            exit::USAGE,
            format!(
                "{:?} is not a secret name: ASCII letters, digits and _, not starting with a digit",
                printable(name)
            ),
        ))
    }
}

pub async fn secret(
    command: SecretCommand,
    output: Format,
    remote: &RemoteArgs,
) -> Result<u8, Failure> {
    let remote = Remote::new(remote)?;
    if let SecretCommand::Set { name, .. } | SecretCommand::Remove { name, .. } = &command {
        check_name(name)?;
    }
    match command {
        SecretCommand::Set { plugin, name } => {
            let (org, plugin) = parse_plugin(&plugin)?;
            let value = read_value()?;
            let info: SecretInfo = remote
                .send(
                    Method::PUT,
                    &format!("/v1/plugins/{org}/{plugin}/secrets/{name}"),
                    &serde_json::json!({ "value": value }),
                )
                .await?;
            output.show(&info, |info| {
                outln!("set secret {} of {org}/{plugin}", printable(&info.name));
            });
        }
        SecretCommand::List { plugin } => {
            let (org, plugin) = parse_plugin(&plugin)?;
            let list: SecretList = remote
                .get(&format!("/v1/plugins/{org}/{plugin}/secrets"))
                .await?;
            output.show(&list, |list| {
                for secret in &list.secrets {
                    outln!(
                        "{:<32} set {} by {}",
                        printable(&secret.name),
                        format_time(secret.set_at),
                        printable(&secret.set_by)
                    );
                }
            });
        }
        SecretCommand::Remove { plugin, name } => {
            let (org, plugin) = parse_plugin(&plugin)?;
            remote
                .call_empty(remote.request(
                    Method::DELETE,
                    &format!("/v1/plugins/{org}/{plugin}/secrets/{name}"),
                ))
                .await?;
            outln!("removed secret {} of {org}/{plugin}", printable(&name));
        }
    }
    Ok(exit::OK)
}
