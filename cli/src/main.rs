//! `warden`: the one binary of Warden.

mod exit;
mod inspect;
mod keygen;
mod kv_file;
mod run;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Run untrusted WebAssembly plugins safely.
#[derive(Parser)]
#[command(name = "warden", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Invoke one function of a local component file, sandboxed, and print its JSON result.
    Run(Box<run::RunArgs>),
    /// Show a component's functions (with types and JSON Schemas) and the capabilities it requests.
    Inspect(inspect::InspectArgs),
    /// Create an ed25519 key pair for signing releases (publishers) or approvals (admins).
    Keygen(keygen::KeygenArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WARDEN_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return exit::HOST_FAILURE.into();
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(*args).await,
            Command::Inspect(args) => inspect::inspect(args),
            Command::Keygen(args) => keygen::keygen(args),
        }
    });
    match outcome {
        Ok(code) => code.into(),
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            failure.code.into()
        }
    }
}
