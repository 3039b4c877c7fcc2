//! `warden`: the one binary of Warden.

/// `println!` for what the CLI prints on standard output, except that a
/// reader who went away (`warden release list | head -1`) ends the process
/// quietly, as Unix tools do, instead of a panic with a backtrace.
macro_rules! outln {
    () => {
        $crate::exit::print_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::exit::print_line(format_args!($($arg)*))
    };
}

mod admin;
mod audit;
mod demo;
mod exit;
mod inspect;
mod invoke;
mod keygen;
mod publish;
mod release;
mod remote;
mod resolve;
mod run;
mod secret;
mod serve;
mod text;
mod webhook;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Run untrusted WebAssembly plugins safely.
#[derive(Parser)]
#[command(name = "warden", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    remote: remote::RemoteArgs,
    #[command(flatten)]
    output: admin::Format,
}

#[derive(Subcommand)]
enum Command {
    /// Invoke one function of a local component file, sandboxed, and print its JSON result.
    Run(Box<run::RunArgs>),
    /// Show a component's functions (with types and JSON Schemas) and the capabilities it requests.
    Inspect(inspect::InspectArgs),
    /// Create an ed25519 key pair for signing releases (publishers) or approvals (admins).
    Keygen(keygen::KeygenArgs),
    /// Start a Warden with the example plugins built, published and approved, ready to invoke.
    Demo(demo::DemoArgs),
    /// Start the control plane and the embedded OCI registry.
    Serve(Box<serve::ServeArgs>),
    /// Check, sign, push and register a release described by warden.toml.
    Publish(publish::PublishArgs),
    /// Review releases.
    #[command(subcommand)]
    Release(release::ReleaseCommand),
    /// Approve a release: sign an approval granting capabilities and limits.
    Approve(release::ApproveArgs),
    /// Reject a pending release.
    Reject(release::DecideArgs),
    /// Yank a release: it never runs again.
    Yank(release::DecideArgs),
    /// Call a function of an approved plugin through the server (as the portal does).
    Invoke(invoke::InvokeArgs),
    /// Show the releases a plugin and its dependencies resolve to now, or why none do.
    Resolve(resolve::ResolveArgs),
    /// Browse the catalog.
    #[command(subcommand)]
    Catalog(admin::CatalogCommand),
    /// Plugin configuration values (admins).
    #[command(subcommand)]
    Config(admin::ConfigCommand),
    /// Plugin secrets (admins): set from standard input, listed by name, removed.
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Webhook endpoints of your organization (admins): events delivered,
    /// signed, to your receivers.
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// Signing keys of your organization.
    #[command(subcommand)]
    Key(admin::KeyCommand),
    /// API tokens of your organization.
    #[command(subcommand)]
    Token(admin::TokenCommand),
    /// Organizations.
    #[command(subcommand)]
    Org(admin::OrgCommand),
    /// The audit log; `warden audit verify` checks its hash chain.
    Audit(audit::AuditArgs),
}

/// mimalloc instead of glibc's allocator: the server's request path allocates
/// and frees small objects on several threads (BENCHMARKS.md measures it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
            Command::Run(args) => run::run(*args, cli.output).await,
            Command::Inspect(args) => inspect::inspect(args, cli.output),
            Command::Keygen(args) => keygen::keygen(args, cli.output),
            Command::Serve(args) => serve::serve(*args).await,
            Command::Demo(args) => demo::demo(args).await,
            Command::Publish(args) => publish::publish(args, cli.output, &cli.remote).await,
            Command::Release(command) => release::release(command, cli.output, &cli.remote).await,
            Command::Approve(args) => release::approve(args, cli.output, &cli.remote).await,
            Command::Reject(args) => release::decide(args, "reject", cli.output, &cli.remote).await,
            Command::Yank(args) => release::decide(args, "yank", cli.output, &cli.remote).await,
            Command::Invoke(args) => invoke::invoke(args, cli.output, &cli.remote).await,
            Command::Resolve(args) => resolve::resolve(args, cli.output, &cli.remote).await,
            Command::Catalog(command) => admin::catalog(command, cli.output, &cli.remote).await,
            Command::Config(command) => admin::config(command, cli.output, &cli.remote).await,
            Command::Secret(command) => secret::secret(command, cli.output, &cli.remote).await,
            Command::Webhook(command) => webhook::webhook(command, cli.output, &cli.remote).await,
            Command::Key(command) => admin::key(command, cli.output, &cli.remote).await,
            Command::Token(command) => admin::token(command, cli.output, &cli.remote).await,
            Command::Org(command) => admin::org(command, cli.output, &cli.remote).await,
            Command::Audit(args) => audit::audit(args, cli.output, &cli.remote).await,
        }
    });
    match outcome {
        Ok(code) => code.into(),
        Err(failure) => {
            eprintln!("error: {}", text::printable(&failure.message));
            failure.code.into()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
