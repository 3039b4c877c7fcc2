//! `warden invoke`: call a function of an approved plugin through the server,
//! as the portal does.

use crate::admin::Format;
use crate::exit::{self, Failure};
use crate::remote::{Remote, RemoteArgs, api_failure, parse_plugin, print_json};
use clap::Args;
use reqwest::Method;
use serde_json::Value as Json;
use warden_registry::types::{
    ErrorBody, ErrorCode, InvocationFailure, InvokeRequest, InvokeResponse,
};

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
}

/// Prints the result (with `--json`, the whole answer: result, release,
/// metering, logs); on failure, the plugin's own error, and an exit code that
/// says what kind of failure it was.
pub async fn invoke(args: InvokeArgs, output: Format, remote: &RemoteArgs) -> Result<u8, Failure> {
    let remote = Remote::new(remote)?;
    let (org, name) = parse_plugin(&args.plugin)?;
    let arguments: Json = serde_json::from_str(&args.args)
        .map_err(|e| Failure::new(exit::USAGE, format!("arguments are not JSON: {e}")))?;
    let response = remote
        .request(
            Method::POST,
            &format!("/v1/plugins/{org}/{name}/invoke/{}", args.function),
        )
        .json(&InvokeRequest {
            args: Some(arguments),
            version: args.requirement,
        })
        .send()
        .await
        .map_err(|e| remote.unreachable(e))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| remote.unreachable(e))?;
    if status.is_success() {
        let answer: InvokeResponse = serde_json::from_slice(&bytes).map_err(|e| {
            Failure::new(
                exit::HOST_FAILURE,
                format!("unexpected answer from the server: {e}"),
            )
        })?;
        output.show(&answer, |answer| print_json(&answer.result));
        return Ok(exit::OK);
    }
    let mut failure = api_failure(status, &bytes);
    let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(&bytes) else {
        return Err(failure);
    };
    if output.json {
        print_json(&ErrorBody {
            error: error.clone(),
        });
    } else if error.code == ErrorCode::PluginError
        && let Ok(InvocationFailure {
            error: Some(plugin_error),
            ..
        }) = serde_json::from_value(error.details.clone())
    {
        print_json(&plugin_error);
    }
    failure.code = match error.code {
        ErrorCode::PluginError => exit::PLUGIN_ERROR,
        ErrorCode::Trap => exit::TRAP,
        ErrorCode::TooManyConcurrent | ErrorCode::Capacity => exit::BUSY,
        code if code.is_limit() => exit::LIMIT_EXCEEDED,
        _ => failure.code,
    };
    Err(failure)
}
