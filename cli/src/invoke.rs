//! `warden invoke`: call a function of an approved plugin through the server,
//! as the portal does.

use crate::exit::{self, Failure};
use crate::remote::{Remote, RemoteArgs, api_failure, parse_plugin, print_json};
use clap::Args;
use reqwest::Method;
use serde_json::{Value as Json, json};

#[derive(Args)]
pub struct InvokeArgs {
    /// org/name
    plugin: String,
    /// The function, e.g. greet or text.count.
    function: String,
    /// Arguments as JSON: an array by position, an object by name, or the bare
    /// value of a one-parameter function.
    #[arg(default_value = "[]")]
    args: String,
    /// Which release: a semver requirement such as ^1.2 (default: the newest approved).
    #[arg(long = "release", value_name = "SEMVER")]
    requirement: Option<String>,
    /// Print the whole answer (result, release, metering, logs) as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn invoke(args: InvokeArgs, remote: &RemoteArgs) -> Result<u8, Failure> {
    let remote = Remote::new(remote)?;
    let (org, name) = parse_plugin(&args.plugin)?;
    let arguments: Json = serde_json::from_str(&args.args)
        .map_err(|e| Failure::new(exit::USAGE, format!("arguments are not JSON: {e}")))?;
    let response = remote
        .request(
            Method::POST,
            &format!("/v1/plugins/{org}/{name}/invoke/{}", args.function),
        )
        .json(&json!({ "args": arguments, "version": args.requirement }))
        .send()
        .await
        .map_err(|e| remote.unreachable(e))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| remote.unreachable(e))?;
    let body: Json = serde_json::from_slice(&bytes).unwrap_or(Json::Null);
    if status.is_success() {
        if args.json {
            print_json(&body);
        } else {
            print_json(&body["result"]);
        }
        return Ok(exit::OK);
    }
    let code = body["error"]["code"].as_str().unwrap_or("");
    if args.json {
        print_json(&body);
    } else if code == "plugin_error" {
        print_json(&body["error"]["details"]["error"]);
    }
    let mut failure = api_failure(status, &bytes);
    failure.code = match code {
        "plugin_error" => exit::PLUGIN_ERROR,
        "trap" => exit::TRAP,
        "too_many_concurrent" | "capacity" => exit::BUSY,
        c if status.as_u16() == 422 && !c.is_empty() => exit::LIMIT_EXCEEDED,
        _ => failure.code,
    };
    Err(failure)
}
