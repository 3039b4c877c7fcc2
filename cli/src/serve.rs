//! `warden serve`: the control plane and the embedded OCI registry.

use crate::exit::{self, Failure};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use warden_registry::{ControlPlane, ServerConfig, serve as serve_http};

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "WARDEN_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the SQLite database, the OCI store and the first admin token live.
    #[arg(long, env = "WARDEN_DATA_DIR", default_value = "./warden-data")]
    data_dir: PathBuf,
    /// Use PostgreSQL instead of the embedded SQLite file, e.g. postgres://user:pass@host/db.
    #[arg(long, env = "WARDEN_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Approvals from distinct admin keys a release needs before it may run.
    #[arg(long, env = "WARDEN_APPROVALS", default_value_t = 1)]
    approvals: u32,
    /// The organization created on first start.
    #[arg(long, default_value = "acme")]
    org: String,
}

pub async fn serve(args: ServeArgs) -> Result<u8, Failure> {
    let mut config = ServerConfig::new(&args.data_dir);
    config.database_url = args.database_url;
    config.approvals_required = args.approvals;
    config.bootstrap_org = args.org.clone();
    let plane = ControlPlane::open(&config)
        .await
        .map_err(|e| Failure::new(exit::UNAVAILABLE, format!("starting: {e}")))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            Failure::new(
                exit::UNAVAILABLE,
                format!("listening on {}: {e}", args.listen),
            )
        })?;
    let address = listener
        .local_addr()
        .map_err(|e| Failure::new(exit::HOST_FAILURE, e.to_string()))?;
    let url = format!("http://{address}");
    if plane.bootstrap_token.is_some() {
        println!(
            "First start: created organization {:?} and its first admin token.",
            args.org
        );
        println!(
            "The token is in {} (mode 0600). Use it with:",
            plane.admin_token_path.display()
        );
        println!();
        println!("  export WARDEN_URL={url}");
        println!(
            "  export WARDEN_TOKEN=$(cat {})",
            plane.admin_token_path.display()
        );
        println!();
    }
    println!(
        "warden listening on {url} (data in {})",
        args.data_dir.display()
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    serve_http(listener, plane.router())
        .await
        .map_err(|e| Failure::new(exit::HOST_FAILURE, format!("serving: {e}")))?;
    plane.state.db.close().await;
    Ok(exit::OK)
}
