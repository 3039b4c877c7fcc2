//! Review and decisions: `warden release list|show`, `warden approve`,
//! `warden reject`, `warden yank`.

use crate::exit::{self, Failure};
use crate::remote::{Remote, RemoteArgs, format_time, parse_release, print_json};
use base64::Engine as _;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value as Json, json};
use std::path::PathBuf;
use warden_host::{
    APPROVAL_PAYLOAD_TYPE, ApprovalStatement, Envelope, Limits, PrivateKey, ReleaseStatement,
    capability_list, parse_capabilities,
};
use warden_registry::oci::Digest;

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
    #[arg(long)]
    status: Option<String>,
    /// Organization (default: the token's).
    #[arg(long)]
    org: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ShowArgs {
    /// org/name@version
    release: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn release(command: ReleaseCommand, remote: &RemoteArgs) -> Result<u8, Failure> {
    let remote = Remote::new(remote)?;
    match command {
        ReleaseCommand::List(args) => list(&remote, args).await,
        ReleaseCommand::Show(args) => show(&remote, args).await,
    }
}

async fn list(remote: &Remote, args: ListArgs) -> Result<u8, Failure> {
    let org = match args.org {
        Some(org) => org,
        None => remote.my_org().await?,
    };
    let status = if args.pending {
        Some("pending".to_owned())
    } else {
        args.status
    };
    let query: Vec<(&str, String)> = status.iter().map(|s| ("status", s.clone())).collect();
    let items = remote
        .all_pages(&format!("/v1/orgs/{org}/releases"), &query)
        .await?;
    if args.json {
        print_json(&items);
        return Ok(exit::OK);
    }
    if items.is_empty() {
        println!(
            "no releases{}",
            status.map(|s| format!(" ({s})")).unwrap_or_default()
        );
        return Ok(exit::OK);
    }
    for item in &items {
        println!(
            "{:<40} {:<9} {}  {}",
            format!(
                "{}@{}",
                item["name"].as_str().unwrap_or("?"),
                item["version"].as_str().unwrap_or("?")
            ),
            item["status"].as_str().unwrap_or("?"),
            format_time(item["created_at"].as_i64().unwrap_or(0)),
            item["component_digest"].as_str().unwrap_or(""),
        );
    }
    Ok(exit::OK)
}

async fn fetch(remote: &Remote, release: &str) -> Result<(String, Json), Failure> {
    let (org, name, version) = parse_release(release)?;
    let path = format!("/v1/plugins/{org}/{name}/releases/{version}");
    Ok((path.clone(), remote.get(&path).await?))
}

async fn show(remote: &Remote, args: ShowArgs) -> Result<u8, Failure> {
    let (_, release) = fetch(remote, &args.release).await?;
    if args.json {
        print_json(&release);
        return Ok(exit::OK);
    }
    let s = |v: &Json| v.as_str().unwrap_or("").to_owned();
    let list = |v: &Json| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    println!(
        "{}@{}  [{}]",
        s(&release["name"]),
        s(&release["version"]),
        s(&release["status"])
    );
    if !s(&release["description"]).is_empty() {
        println!("  {}", s(&release["description"]));
    }
    println!();
    let signer = &release["signer"];
    println!(
        "signer      {} ({}){}",
        s(&signer["key_id"]),
        signer["owner"].as_str().unwrap_or("unregistered"),
        if signer["revoked"].as_bool() == Some(true) {
            "  REVOKED"
        } else {
            ""
        }
    );
    println!(
        "published   {} by {}",
        format_time(release["created_at"].as_i64().unwrap_or(0)),
        s(&release["published_by"])
    );
    println!("component   {}", s(&release["component_digest"]));
    println!(
        "size        {}",
        warden_host::format_bytes(release["component_size"].as_u64().unwrap_or(0))
    );
    println!("manifest    {}", s(&release["manifest_digest"]));
    println!();
    println!("functions");
    for function in release["functions"].as_array().into_iter().flatten() {
        println!("  {}: {}", s(&function["name"]), s(&function["signature"]));
        if let Some(reason) = function["not_invocable"].as_str() {
            println!("    (not invocable over JSON: {reason})");
        }
    }
    println!();
    let requested = list(&release["requested_capabilities"]);
    println!(
        "capabilities requested: {}",
        if requested.is_empty() {
            "none".into()
        } else {
            requested
        }
    );
    let diff = &release["diff"];
    match diff["against"].as_str() {
        Some(version) => println!(
            "  against {version} (last approved): added [{}], removed [{}]",
            list(&diff["added"]),
            list(&diff["removed"])
        ),
        None => println!("  no approved version before: everything is new"),
    }
    let deps = release["dependencies"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if !deps.is_empty() {
        println!("dependencies");
        for (name, requirement) in deps {
            println!("  {name} {}", requirement.as_str().unwrap_or(""));
        }
    }
    println!();
    let approvals = release["approvals"].as_array().cloned().unwrap_or_default();
    println!(
        "approvals   {} of {} required",
        approvals.len(),
        release["approvals_required"]
    );
    for approval in &approvals {
        println!(
            "  {} ({}) at {}",
            s(&approval["key_id"]),
            s(&approval["owner"]),
            format_time(approval["created_at"].as_i64().unwrap_or(0))
        );
    }
    if let Some(granted) = release["granted_capabilities"].as_array() {
        let granted: Vec<&str> = granted.iter().filter_map(|g| g.as_str()).collect();
        println!(
            "granted     {}",
            if granted.is_empty() {
                "no capabilities".into()
            } else {
                granted.join(", ")
            }
        );
    }
    if let Some(reason) = release["reason"].as_str() {
        println!("reason      {reason}");
    }
    Ok(exit::OK)
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
    /// Print the release as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn approve(args: ApproveArgs, remote: &RemoteArgs) -> Result<u8, Failure> {
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
    if args.json {
        print_json(&result);
    } else {
        let approvals = result["approvals"].as_array().map_or(0, Vec::len);
        println!(
            "approved {} with key {} ({approvals} of {} approvals): {}",
            approval.release,
            key.public_key().key_id(),
            result["approvals_required"],
            result["status"].as_str().unwrap_or("?"),
        );
        println!(
            "  granted: {}",
            if approval.capabilities.is_empty() {
                "no capabilities".to_owned()
            } else {
                approval.capabilities.join(", ")
            }
        );
    }
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
) -> Result<(Json, ApprovalStatement), Failure> {
    let (path, release) = fetch(remote, release_ref).await?;
    let bad = |e: String| {
        Failure::new(
            exit::HOST_FAILURE,
            format!("the server sent a bad envelope: {e}"),
        )
    };
    // What is signed is what was reviewed: the statement's bytes must hash to
    // the digest the server reports.
    let envelope: Envelope =
        serde_json::from_value(release["envelope"].clone()).map_err(|e| bad(e.to_string()))?;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(&envelope.payload)
        .map_err(|e| bad(e.to_string()))?;
    let digest = Digest::of(&payload).to_string();
    if Some(digest.as_str()) != release["statement_digest"].as_str() {
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
    let result: Json = remote
        .send(
            Method::POST,
            &format!("{path}/approve"),
            &json!({ "envelope": signed }),
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
    /// Print the release as JSON.
    #[arg(long)]
    json: bool,
}

/// `warden reject` (`action` = "reject") and `warden yank` ("yank").
pub async fn decide(args: DecideArgs, action: &str, remote: &RemoteArgs) -> Result<u8, Failure> {
    let remote = Remote::new(remote)?;
    let (org, name, version) = parse_release(&args.release)?;
    let result: Json = remote
        .send(
            Method::POST,
            &format!("/v1/plugins/{org}/{name}/releases/{version}/{action}"),
            &json!({ "reason": args.reason }),
        )
        .await?;
    if args.json {
        print_json(&result);
    } else {
        println!(
            "{}: {}",
            args.release,
            result["status"].as_str().unwrap_or("?")
        );
    }
    Ok(exit::OK)
}
