//! `warden audit`: the organization's audit log, and `warden audit verify`,
//! which re-checks the whole hash chain on this machine.

use crate::admin::Format;
use crate::exit::{self, Failure};
use crate::remote::{Remote, RemoteArgs, format_time, print_json};
use crate::text::printable;
use clap::{Args, Subcommand};
use reqwest::Method;
use warden_registry::types::{AuditEntry, AuditHead, AuditPage};
use warden_registry::verify_chain;

#[derive(Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: Option<AuditCommand>,
    /// Show only the last N entries.
    #[arg(long, default_value_t = 50)]
    last: usize,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain: detects edited and deleted entries.
    Verify,
}

/// The whole chain up to the head read first.
async fn whole_chain(remote: &Remote, org: &str) -> Result<(Vec<AuditEntry>, AuditHead), Failure> {
    let mut entries: Vec<AuditEntry> = Vec::new();
    let mut head: Option<AuditHead> = None;
    loop {
        let after = entries.last().map_or(0, |e| e.seq);
        let page: AuditPage = remote
            .call(
                remote
                    .request(Method::GET, &format!("/v1/orgs/{org}/audit"))
                    .query(&[("after", after.to_string()), ("limit", "1000".to_owned())]),
            )
            .await?;
        let head = head.get_or_insert(page.head);
        let done = page.entries.is_empty();
        entries.extend(page.entries.into_iter().filter(|e| e.seq <= head.seq));
        if done || entries.last().is_some_and(|e| e.seq >= head.seq) {
            break;
        }
    }
    let head = head.ok_or_else(|| Failure::new(exit::HOST_FAILURE, "no audit head"))?;
    Ok((entries, head))
}

pub async fn audit(args: AuditArgs, output: Format, remote: &RemoteArgs) -> Result<u8, Failure> {
    let remote = Remote::new(remote)?;
    let org = remote.my_org().await?;
    let (entries, head) = whole_chain(&remote, &org).await?;
    match args.command {
        Some(AuditCommand::Verify) => match verify_chain(&entries, &head) {
            Ok(count) => {
                outln!(
                    "audit chain of {org} verified: {count} entries, head {}",
                    head.hash
                );
                Ok(exit::OK)
            }
            Err(broken) => Err(Failure::new(
                exit::TAMPERED,
                format!("audit chain of {org} is BROKEN: {broken}"),
            )),
        },
        None => {
            let shown = &entries[entries.len().saturating_sub(args.last)..];
            if output.json {
                print_json(&shown);
            } else {
                for e in shown {
                    outln!(
                        "{:>6}  {}  {:<16} {:<28} {}  {}",
                        e.seq,
                        format_time(e.at),
                        printable(&e.action),
                        printable(&e.target),
                        printable(&e.actor),
                        printable(&e.details)
                    );
                }
            }
            Ok(exit::OK)
        }
    }
}
