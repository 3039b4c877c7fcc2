//! `warden resolve org/name[@REQ]`: which releases a plugin and its
//! dependencies resolve to now, or why no set of releases satisfies them.

use crate::admin::Format;
use crate::exit::{self, Failure};
use crate::remote::{Remote, RemoteArgs, api_failure, decode, print_json};
use crate::text::printable;
use clap::Args;
use reqwest::Method;
use warden_registry::types::{ErrorBody, ErrorCode, Resolution};

#[derive(Args, Debug)]
pub struct ResolveArgs {
    /// org/name, or org/name@REQ with a semver requirement (e.g. acme/app@^1.2)
    plugin: String,
}

pub async fn resolve(
    args: ResolveArgs,
    output: Format,
    remote: &RemoteArgs,
) -> Result<u8, Failure> {
    let remote = Remote::new(remote)?;
    let (plugin, requirement) = match args.plugin.split_once('@') {
        Some((plugin, requirement)) => (plugin, Some(requirement)),
        None => (args.plugin.as_str(), None),
    };
    if plugin.split('/').count() != 2 {
        return Err(Failure::new(
            exit::USAGE,
            format!("{:?} is not org/name[@REQ]", args.plugin),
        ));
    }
    let mut request = remote.request(Method::GET, &format!("/v1/plugins/{plugin}/resolve"));
    if let Some(requirement) = requirement {
        request = request.query(&[("version", requirement)]);
    }
    let response = request.send().await.map_err(|e| remote.unreachable(e))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| remote.unreachable(e))?;
    if !status.is_success() {
        // An unresolvable request: the explanation, one sentence per line.
        if let Ok(ErrorBody { error }) = serde_json::from_slice(&bytes)
            && error.code == ErrorCode::Unresolvable
            && let Some(lines) = error.details["explanation"].as_array()
        {
            if output.json {
                print_json(&error);
            } else {
                eprintln!("{} cannot be resolved:", printable(&args.plugin));
                for line in lines {
                    eprintln!("  {}", printable(line.as_str().unwrap_or_default()));
                }
            }
            return Ok(exit::INVALID_INPUT);
        }
        return Err(api_failure(status, &bytes));
    }
    let resolution: Resolution = decode(&bytes)?;
    output.show(&resolution, print_resolution);
    Ok(exit::OK)
}

fn print_resolution(resolution: &Resolution) {
    for release in &resolution.releases {
        outln!(
            "{} {}",
            printable(&release.name),
            printable(&release.version)
        );
        outln!("  manifest  {}", printable(&release.manifest_digest));
        outln!("  component {}", printable(&release.component_digest));
        if !release.dependencies.is_empty() {
            let uses: Vec<String> = release
                .dependencies
                .iter()
                .map(|(name, version)| format!("{} {}", printable(name), printable(version)))
                .collect();
            outln!("  uses      {}", uses.join(", "));
        }
    }
}
