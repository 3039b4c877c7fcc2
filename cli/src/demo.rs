//! `warden demo`: a running Warden with the example plugins built, signed,
//! published and approved, and a `curl` line to invoke one. Everything goes
//! through the same HTTP API and checks as `warden publish` and `warden approve`.

use crate::exit::{self, Failure};
use crate::publish::{PluginManifest, publish_manifest};
use crate::release::approve_release;
use crate::remote::{Remote, RemoteArgs};
use clap::Args;
use reqwest::Method;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use warden_host::PrivateKey;
use warden_registry::types::{
    AddKey, CreateToken, KeyKind, NewToken, Release, Role, SigningKey, Status,
};
use warden_registry::{ServerConfig, serve};

/// The examples the demo publishes, by crate directory; each after the
/// plugins it depends on.
const EXAMPLES: [&str; 5] = [
    "hello",
    "text-tools",
    "word-report",
    "counter",
    "http-fetch",
];

#[derive(Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the demo keeps its database, registry, keys and tokens (reused by later runs).
    #[arg(long, default_value = "./warden-demo")]
    data_dir: PathBuf,
    /// Do not run `cargo build` for the examples (they must be built already).
    #[arg(long)]
    no_build: bool,
    /// Take the example components from this directory instead of
    /// target/wasm32-wasip2/release (implies --no-build).
    #[arg(long)]
    components: Option<PathBuf>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A key in the data directory, created on first use.
fn demo_key(path: &Path) -> Result<PrivateKey, Failure> {
    if !path.exists() {
        PrivateKey::generate().write_new(path).map_err(|e| {
            Failure::new(
                exit::HOST_FAILURE,
                format!("writing {}: {e}", path.display()),
            )
        })?;
    }
    crate::remote::read_private_key(path)
}

fn build_examples(root: &Path) -> Result<(), Failure> {
    warden_guest_build::ensure_target(root)
        .map_err(|e| Failure::new(exit::HOST_FAILURE, e.to_string()))?;
    eprintln!(
        "building the example plugins for wasm32-wasip2 (cargo build --release; \
         the first build takes a minute or two) ..."
    );
    let packages: Vec<String> = EXAMPLES
        .iter()
        .map(|example| format!("warden-example-{example}"))
        .collect();
    let packages: Vec<&str> = packages.iter().map(String::as_str).collect();
    let status = warden_guest_build::cargo_build(root, &packages)
        .status()
        .map_err(|e| {
            Failure::new(
                exit::HOST_FAILURE,
                format!("running cargo: {e} (or build the examples yourself and pass --no-build)"),
            )
        })?;
    if !status.success() {
        return Err(Failure::new(
            exit::HOST_FAILURE,
            "building the examples failed (cargo's errors are above)",
        ));
    }
    Ok(())
}

/// The version of http-fetch the demo leaves pending, for review.
const PROPOSED_VERSION: &str = "0.2.0";

pub async fn demo(args: DemoArgs) -> Result<u8, Failure> {
    let root = workspace_root();
    if !args.no_build && args.components.is_none() {
        build_examples(&root)?;
    }
    std::fs::create_dir_all(&args.data_dir).map_err(|e| {
        Failure::new(
            exit::HOST_FAILURE,
            format!("{}: {e}", args.data_dir.display()),
        )
    })?;
    let publisher_key = demo_key(&args.data_dir.join("demo-publisher.key"))?;
    let admin_key = demo_key(&args.data_dir.join("demo-admin.key"))?;

    let mut config = ServerConfig::new(&args.data_dir);
    config.admin_keys = vec![admin_key.public_key()];
    let (plane, listener, address) = crate::serve::open_and_listen(&config, args.listen).await?;
    let url = format!("http://{address}");
    let server = tokio::spawn(serve(listener, plane.router()));

    let admin_token = match &plane.bootstrap_token {
        Some(token) => token.clone(),
        None => std::fs::read_to_string(&plane.admin_token_path)
            .map_err(|e| {
                Failure::new(
                    exit::HOST_FAILURE,
                    format!("{}: {e}", plane.admin_token_path.display()),
                )
            })?
            .trim()
            .to_owned(),
    };
    let remote = |token: &str| {
        Remote::new(&RemoteArgs {
            url: url.clone(),
            token: Some(token.to_owned()),
        })
    };
    let admin = remote(&admin_token)?;
    let org = admin.my_org().await?;
    for (key, kind, owner) in [
        (&publisher_key, KeyKind::Publisher, "demo publisher"),
        (&admin_key, KeyKind::Admin, "demo admin"),
    ] {
        let registered: Result<SigningKey, Failure> = admin
            .send(
                Method::POST,
                &format!("/v1/orgs/{org}/keys"),
                &AddKey {
                    public_key: key.public_key().to_string(),
                    kind,
                    owner: owner.to_owned(),
                },
            )
            .await;
        if let Err(failure) = registered
            && !failure.message.contains("[key_exists")
        {
            return Err(failure);
        }
    }
    // Tokens: the publisher's lives an hour and is made only when something
    // needs publishing; the portal's is kept in `portal-token` (0600) and
    // reused on every start while it works.
    let token = |role: Role, expires_in_seconds: Option<i64>| {
        let admin = &admin;
        let org = &org;
        async move {
            let created: NewToken = admin
                .send(
                    Method::POST,
                    &format!("/v1/orgs/{org}/tokens"),
                    &CreateToken {
                        name: format!("demo {role}"),
                        role,
                        expires_in_seconds,
                    },
                )
                .await?;
            created.secret.ok_or_else(|| {
                Failure::new(
                    exit::HOST_FAILURE,
                    "the server sent a token without its secret",
                )
            })
        }
    };
    let token_file = args.data_dir.join("portal-token");
    // A token a crash left staged is removed, whichever branch runs below.
    warden_host::remove_stale_staging(&token_file);
    let kept = std::fs::read_to_string(&token_file)
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty());
    let portal_token = match kept {
        Some(kept) if remote(&kept)?.my_org().await.is_ok() => kept,
        _ => {
            let created = token(Role::Invoker, None).await?;
            warden_host::write_private(&token_file, format!("{created}\n").as_bytes(), true)
                .map_err(|e| {
                    Failure::new(
                        exit::HOST_FAILURE,
                        format!("writing {}: {e}", token_file.display()),
                    )
                })?;
            created
        }
    };
    let mut publisher: Option<Remote> = None;

    for example in EXAMPLES {
        let mut manifest =
            PluginManifest::load(&root.join("examples").join(example).join("warden.toml"))?;
        if let (Some(dir), Some(file)) = (&args.components, manifest.component.file_name()) {
            manifest.component = dir.join(file);
        }
        if let Some((_, name)) = manifest.name.split_once('/') {
            manifest.name = format!("{org}/{name}");
        }
        // The examples depend on each other within the demo's org.
        manifest.dependencies = std::mem::take(&mut manifest.dependencies)
            .into_iter()
            .map(
                |(dependency, requirement)| match dependency.split_once('/') {
                    Some((_, name)) => (format!("{org}/{name}"), requirement),
                    None => (dependency, requirement),
                },
            )
            .collect();
        let reference = format!("{}@{}", manifest.name, manifest.version);
        let path = format!(
            "/v1/plugins/{}/releases/{}",
            manifest.name, manifest.version
        );
        let existing: Result<Release, Failure> = admin.get(&path).await;
        let status = match existing {
            Ok(release) => release.status,
            Err(_) => {
                if publisher.is_none() {
                    publisher = Some(remote(&token(Role::Publisher, Some(3600)).await?)?);
                }
                if let Some(publisher) = &publisher {
                    publish_manifest(publisher, None, &manifest, &publisher_key).await?;
                }
                Status::Pending
            }
        };
        if status == Status::Pending {
            approve_release(&admin, &reference, &admin_key, None, &[]).await?;
        }
        outln!("  {reference:<28} approved");
    }

    // One release left for an admin to review in the console: the next
    // version of http-fetch, asking for one more host and a longer timeout.
    let mut proposed = PluginManifest::load(&root.join("examples/http-fetch/warden.toml"))?;
    if let (Some(dir), Some(file)) = (&args.components, proposed.component.file_name()) {
        proposed.component = dir.join(file);
    }
    proposed.name = format!("{org}/http-fetch");
    proposed.version = PROPOSED_VERSION.to_owned();
    proposed
        .capabilities
        .push("http:api.example.org".to_owned());
    proposed.capabilities.sort();
    proposed
        .limits
        .insert("timeout".to_owned(), toml::Value::String("10s".to_owned()));
    let proposed_path = format!("/v1/plugins/{}/releases/{PROPOSED_VERSION}", proposed.name);
    let existing: Result<Release, Failure> = admin.get(&proposed_path).await;
    if existing.is_err() {
        if publisher.is_none() {
            publisher = Some(remote(&token(Role::Publisher, Some(3600)).await?)?);
        }
        if let Some(publisher) = &publisher {
            publish_manifest(publisher, None, &proposed, &publisher_key).await?;
        }
    }
    outln!(
        "  {:<28} waiting for review",
        format!("{}@{PROPOSED_VERSION}", proposed.name)
    );

    outln!();
    outln!("Warden is running at {url} with the example plugins approved.");
    outln!(
        "Invoke one as the portal does (an invoker token; also in {}):",
        token_file.display()
    );
    outln!();
    outln!(
        "  curl -s -X POST {url}/v1/plugins/{org}/hello/invoke/greet -H 'Authorization: Bearer {portal_token}' -H 'Content-Type: application/json' -d '{{\"args\": \"world\"}}'"
    );
    outln!();
    outln!(
        "A plugin that calls another (word-report uses text-tools, linked at run time; see \"dependencies\" in the answer):"
    );
    outln!();
    outln!(
        "  curl -s -X POST {url}/v1/plugins/{org}/word-report/invoke/summarize -H 'Authorization: Bearer {portal_token}' -H 'Content-Type: application/json' -d '{{\"args\": \"the quick brown fox\"}}'"
    );
    outln!();
    outln!(
        "The catalog: curl -s {url}/v1/orgs/{org}/plugins -H 'Authorization: Bearer {portal_token}'"
    );
    outln!(
        "The console: {url}/console (sign in with the portal token above to try plugins, or with the admin token to review)"
    );
    outln!(
        "  waiting for review: {url}/console/releases/{}/{PROPOSED_VERSION}",
        proposed.name
    );
    outln!(
        "Admin token: {} (ctrl-c stops the server)",
        plane.admin_token_path.display()
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    server
        .await
        .map_err(|e| Failure::new(exit::HOST_FAILURE, e.to_string()))?
        .map_err(|e| Failure::new(exit::HOST_FAILURE, format!("serving: {e}")))?;
    Ok(exit::OK)
}
