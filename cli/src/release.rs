//! Review and decisions: `warden release list|show`, `warden approve`,
//! `warden reject`, `warden yank`.

use crate::admin::Format;
use crate::exit::{self, Failure};
use crate::remote::{Remote, RemoteArgs, format_time, parse_release};
use crate::text::printable;
use clap::{Args, Subcommand};
use reqwest::Method;
use std::path::PathBuf;
use warden_host::{
    APPROVAL_PAYLOAD_TYPE, ApprovalStatement, Digest, Limits, PrivateKey, ReleaseStatement,
    capability_list, parse_capabilities,
};
use warden_registry::types::{
    Approve, Reason, Release, ReleasePage, ReleaseSummary, Resolution, Status,
};

#[derive(Subcommand)]
pub enum ReleaseCommand {
    /// List releases of your organization (`--pending`: the review queue).
    List(ListArgs),
    /// Everything to review before approving: signer, digest, functions,
    /// capabilities and their diff against the last approved version.
    Show(ShowArgs),
}

#[derive(Args)]
pub struct ListArgs {
    /// Only releases waiting for approval.
    #[arg(long, conflicts_with = "status")]
    pending: bool,
    /// Only releases in this status (pending, approved, rejected, yanked).
    #[arg(long, value_parser = parse_status)]
    status: Option<Status>,
    /// Organization (default: the token's).
    #[arg(long)]
    org: Option<String>,
}

#[derive(Args)]
pub struct ShowArgs {
    /// org/name@version
    release: String,
}

fn parse_status(text: &str) -> Result<Status, String> {
    Status::parse(text)
        .map_err(|_| format!("{text:?} is not a status (pending, approved, rejected, yanked)"))
}

pub async fn release(
    command: ReleaseCommand,
    output: Format,
    remote: &RemoteArgs,
) -> Result<u8, Failure> {
    let remote = Remote::new(remote)?;
    match command {
        ReleaseCommand::List(args) => list(&remote, args, output).await,
        ReleaseCommand::Show(args) => show(&remote, args, output).await,
    }
}

async fn list(remote: &Remote, args: ListArgs, output: Format) -> Result<u8, Failure> {
    let org = match args.org {
        Some(org) => org,
        None => remote.my_org().await?,
    };
    let status = if args.pending {
        Some(Status::Pending)
    } else {
        args.status
    };
    let query: Vec<(&str, String)> = status
        .iter()
        .map(|s| ("status", s.as_str().to_owned()))
        .collect();
    let items: Vec<ReleaseSummary> = remote
        .all_pages::<ReleasePage>(&format!("/v1/orgs/{org}/releases"), &query)
        .await?;
    output.show(&items, |items| {
        if items.is_empty() {
            outln!(
                "no releases{}",
                status
                    .map(|s| format!(" ({})", s.as_str()))
                    .unwrap_or_default()
            );
        }
        for item in items {
            outln!(
                "{:<40} {:<9} {}  {}",
                format!("{}@{}", item.name, item.version),
                item.status.as_str(),
                format_time(item.created_at),
                item.component_digest,
            );
        }
    });
    Ok(exit::OK)
}

async fn fetch(remote: &Remote, release: &str) -> Result<(String, Release), Failure> {
    let (org, name, version) = parse_release(release)?;
    let path = format!("/v1/plugins/{org}/{name}/releases/{version}");
    Ok((path.clone(), remote.get(&path).await?))
}

async fn show(remote: &Remote, args: ShowArgs, output: Format) -> Result<u8, Failure> {
    let (_, release) = fetch(remote, &args.release).await?;
    let mut resolved_now = std::collections::BTreeMap::new();
    if !output.json {
        // One lookup each, for the first 64 (as many as a release may declare).
        for (name, requirement) in release.dependencies.iter().take(64) {
            resolved_now.insert(name.clone(), resolve_now(remote, name, requirement).await);
        }
    }
    output.show(&release, |release| print_review(release, &resolved_now));
    Ok(exit::OK)
}

/// What one dependency resolves to now, with its own dependencies (`warden
/// resolve` resolves the whole set together).
async fn resolve_now(remote: &Remote, name: &str, requirement: &str) -> String {
    let request = remote
        .request(Method::GET, &format!("/v1/plugins/{name}/resolve"))
        .query(&[("version", requirement)]);
    match remote.call::<Resolution>(request).await {
        Ok(resolution) => match resolution.releases.first() {
            Some(release) => format!("{} now", release.version),
            None => "nothing".into(),
        },
        Err(_) => "unresolvable now (see `warden resolve`)".into(),
    }
}

fn listed(items: &[String], none: &str) -> String {
    if items.is_empty() {
        none.to_owned()
    } else {
        printable(&items.join(", ")).into_owned()
    }
}

/// The requested limits, each marked where it differs from the default
/// and from what the last approved version was granted.
fn print_limits(release: &Release) {
    outln!("limits requested");
    let previous = release.previous_limits.as_ref().map(|l| l.entries());
    let against = release.diff.against.as_deref().unwrap_or("");
    for (index, ((name, value), (_, default))) in release
        .requested_limits
        .entries()
        .into_iter()
        .zip(release.default_limits.entries())
        .enumerate()
    {
        let mut notes = Vec::new();
        if value != default {
            notes.push(format!("default {default}"));
        }
        if let Some(previous) = &previous
            && previous[index].1 != value
        {
            notes.push(format!("{against} had {}", previous[index].1));
        }
        let marker = if notes.is_empty() { ' ' } else { '*' };
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("  ({})", notes.join("; "))
        };
        outln!("  {marker} {name:<16} {value}{notes}");
    }
}

/// What an admin reads before approving.
fn print_review(release: &Release, resolved_now: &std::collections::BTreeMap<String, String>) {
    outln!(
        "{}@{}  [{}]",
        release.name,
        release.version,
        release.status.as_str()
    );
    if !release.description.is_empty() {
        outln!("  {}", printable(&release.description));
    }
    outln!();
    let signer = &release.signer;
    outln!(
        "signer      {} ({}){}",
        signer.key_id,
        printable(signer.owner.as_deref().unwrap_or("unregistered")),
        if signer.revoked { "  REVOKED" } else { "" }
    );
    outln!(
        "published   {} by {}",
        format_time(release.created_at),
        release.published_by
    );
    outln!("component   {}", release.component_digest);
    outln!(
        "size        {}{}",
        warden_host::format_bytes(u64::try_from(release.component_size).unwrap_or(0)),
        match release.changes.previous_size {
            Some(before) => format!(
                " ({} before)",
                warden_host::format_bytes(u64::try_from(before).unwrap_or(0))
            ),
            None => String::new(),
        }
    );
    outln!("manifest    {}", release.manifest_digest);
    outln!();
    outln!("functions");
    for function in &release.functions {
        outln!(
            "  {}: {}",
            printable(&function.name),
            printable(&function.signature)
        );
        if let Some(reason) = &function.not_invocable {
            outln!("    (not invocable over JSON: {})", printable(reason));
        }
    }
    let changes = &release.changes;
    if let Some(version) = &changes.against {
        let changed: Vec<String> = changes
            .functions_changed
            .iter()
            .map(|change| change.name.clone())
            .collect();
        outln!(
            "  against {version}: added [{}], removed [{}], changed [{}]",
            printable(&changes.functions_added.join(", ")),
            printable(&changes.functions_removed.join(", ")),
            printable(&changed.join(", "))
        );
        if changes.breaks_without_major_bump {
            outln!("  WARNING: a function was removed or changed without a major version bump");
        }
    }
    outln!();
    outln!(
        "capabilities requested: {}",
        listed(&release.requested_capabilities, "none")
    );
    let diff = &release.diff;
    match &diff.against {
        Some(version) => outln!(
            "  against {version} (last approved): added [{}], removed [{}]",
            printable(&diff.added.join(", ")),
            printable(&diff.removed.join(", "))
        ),
        None => outln!("  no approved version before: everything is new"),
    }
    print_limits(release);
    if !release.dependencies.is_empty() {
        outln!("dependencies");
        for (name, requirement) in &release.dependencies {
            let now = resolved_now.get(name).map(String::as_str).unwrap_or("");
            outln!(
                "  {} {} -> {}",
                printable(name),
                printable(requirement),
                printable(now)
            );
        }
    }
    if changes.against.is_some() {
        for (name, requirement) in &changes.dependencies_removed {
            outln!(
                "  no longer declared: {} {}",
                printable(name),
                printable(requirement)
            );
        }
        for moved in &changes.dependencies_moved {
            outln!(
                "  requirement changed: {} {} -> {}",
                printable(&moved.name),
                printable(&moved.from),
                printable(&moved.to)
            );
        }
    }
    outln!();
    outln!(
        "approvals   {} of {} required",
        release.approvals.len(),
        release.approvals_required
    );
    for approval in &release.approvals {
        outln!(
            "  {} ({}) at {}",
            approval.key_id,
            printable(&approval.owner),
            format_time(approval.created_at)
        );
    }
    if let Some(granted) = &release.granted_capabilities {
        outln!("granted     {}", listed(granted, "no capabilities"));
    }
    if let Some(reason) = &release.reason {
        outln!("reason      {}", printable(reason));
    }
}

#[derive(Args)]
pub struct ApproveArgs {
    /// org/name@version
    release: String,
    /// The admin's private key (its public half registered as an admin key).
    #[arg(long, env = "WARDEN_KEY")]
    key: PathBuf,
    /// Grant only these capabilities (repeat; default: all that were requested).
    #[arg(long = "grant", value_name = "CAPABILITY")]
    grants: Vec<String>,
    /// Grant no capabilities at all.
    #[arg(long, conflicts_with = "grants")]
    grant_none: bool,
    /// Override a requested limit, e.g. --limit memory=16MiB (repeat).
    #[arg(long = "limit", value_name = "NAME=VALUE")]
    limits: Vec<String>,
}

pub async fn approve(
    args: ApproveArgs,
    output: Format,
    remote: &RemoteArgs,
) -> Result<u8, Failure> {
    let remote = Remote::new(remote)?;
    let key = crate::remote::read_private_key(&args.key)?;
    let grants = if args.grant_none {
        Some(Vec::new())
    } else if args.grants.is_empty() {
        None
    } else {
        Some(args.grants.clone())
    };
    let (result, approval) =
        approve_release(&remote, &args.release, &key, grants, &args.limits).await?;
    output.show(&result, |result| {
        outln!(
            "approved {} with key {} ({} of {} approvals): {}",
            approval.release,
            key.public_key().key_id(),
            result.approvals.len(),
            result.approvals_required,
            result.status.as_str(),
        );
        outln!(
            "  granted: {}",
            listed(&approval.capabilities, "no capabilities")
        );
    });
    Ok(exit::OK)
}

/// Signs and submits an approval of `release_ref` (`org/name@version`)
/// granting `grants` (`None`: everything requested) and the requested limits
/// with `limit_overrides` (`name=value`) applied. Returns the release as the
/// server answers and the statement signed.
pub async fn approve_release(
    remote: &Remote,
    release_ref: &str,
    key: &PrivateKey,
    grants: Option<Vec<String>>,
    limit_overrides: &[String],
) -> Result<(Release, ApprovalStatement), Failure> {
    let (path, release) = fetch(remote, release_ref).await?;
    let bad = |e: String| {
        Failure::new(
            exit::HOST_FAILURE,
            format!("the server sent a bad envelope: {e}"),
        )
    };
    // What is signed is what was reviewed: the statement's bytes must hash to
    // the digest the server reports.
    let payload = release
        .envelope
        .unverified_payload()
        .map_err(|e| bad(e.to_string()))?;
    let digest = Digest::of(&payload).to_string();
    if digest != release.statement_digest {
        return Err(Failure::new(
            exit::TAMPERED,
            "the release statement does not match its digest; not approving",
        ));
    }
    let statement: ReleaseStatement =
        serde_json::from_slice(&payload).map_err(|e| bad(e.to_string()))?;
    let capabilities = match &grants {
        None => statement.capabilities.clone(),
        Some(grants) => capability_list(&parse_capabilities(grants)?),
    };
    let mut limits: Limits = statement.limits.clone();
    for entry in limit_overrides {
        limits
            .set_pair(entry)
            .map_err(|e| Failure::new(exit::USAGE, format!("--limit: {e}")))?;
    }
    let approval = ApprovalStatement {
        release: statement.reference(),
        release_statement: digest,
        capabilities,
        limits,
    };
    let signed = key
        .sign(APPROVAL_PAYLOAD_TYPE, &approval)
        .map_err(|e| Failure::new(exit::HOST_FAILURE, format!("signing: {e}")))?;
    let result: Release = remote
        .send(
            Method::POST,
            &format!("{path}/approve"),
            &Approve { envelope: signed },
        )
        .await?;
    Ok((result, approval))
}

#[derive(Args)]
pub struct DecideArgs {
    /// org/name@version
    release: String,
    /// Why (kept in the release and the audit log).
    #[arg(long)]
    reason: String,
}

/// `warden reject` (`action` = "reject") and `warden yank` ("yank").
pub async fn decide(
    args: DecideArgs,
    action: &str,
    output: Format,
    remote: &RemoteArgs,
) -> Result<u8, Failure> {
    let remote = Remote::new(remote)?;
    let (org, name, version) = parse_release(&args.release)?;
    let result: Release = remote
        .send(
            Method::POST,
            &format!("/v1/plugins/{org}/{name}/releases/{version}/{action}"),
            &Reason {
                reason: args.reason,
            },
        )
        .await?;
    output.show(&result, |result| {
        outln!("{}: {}", args.release, result.status.as_str());
    });
    Ok(exit::OK)
}
