//! `warden publish`: reads `warden.toml`, checks the component locally, signs
//! the release statement, pushes the artifact (CNCF Wasm OCI layout) with a
//! progress bar, and registers the release.

use crate::exit::{self, Failure};
use crate::remote::{Remote, RemoteArgs, print_json};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::{Method, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use warden_host::{
    ComponentRef, Engine, EngineConfig, Limits, PrivateKey, RELEASE_PAYLOAD_TYPE, ReleaseStatement,
    capability_list, parse_capabilities,
};
use warden_registry::artifact::WasmArtifact;
use warden_registry::oci::{Digest, MANIFEST_V1};

/// Upload chunk size.
const CHUNK: usize = 1 << 20;

#[derive(Args)]
pub struct PublishArgs {
    /// The plugin's manifest.
    #[arg(long, short, default_value = "warden.toml")]
    manifest: PathBuf,
    /// The publisher's private key (from `warden keygen`), registered by an admin.
    #[arg(long, env = "WARDEN_KEY")]
    key: PathBuf,
    /// Push the artifact to this external OCI registry (host:port) instead of
    /// the Warden server's own; the server must be configured with the same one.
    #[arg(long, env = "WARDEN_REGISTRY")]
    registry: Option<String>,
    /// User name for the external registry.
    #[arg(long, env = "WARDEN_REGISTRY_USERNAME", requires = "registry")]
    registry_username: Option<String>,
    /// Password for the external registry.
    #[arg(
        long,
        env = "WARDEN_REGISTRY_PASSWORD",
        hide_env_values = true,
        requires = "registry"
    )]
    registry_password: Option<String>,
    /// Plain HTTP to the external registry (loopback and tests only).
    #[arg(long, requires = "registry")]
    registry_insecure: bool,
    /// Print the registered release as JSON.
    #[arg(long)]
    json: bool,
}

/// `warden.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginManifest {
    /// `org/name`.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// One line for the catalog.
    #[serde(default)]
    pub description: String,
    /// The component file, relative to the manifest.
    pub component: PathBuf,
    /// Requested capabilities: `kv`, `config`, `http:HOST`, `env:NAME`.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Requested limits, e.g. `memory = "32MiB"`, `fuel = 100000000`.
    #[serde(default)]
    pub limits: BTreeMap<String, toml::Value>,
    /// Other plugins with semver requirements.
    #[serde(default)]
    pub dependencies: BTreeMap<String, String>,
}

impl PluginManifest {
    /// Reads and checks a manifest; `component` comes back resolved.
    pub fn load(path: &Path) -> Result<PluginManifest, Failure> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::invalid(format!("reading {}: {e}", path.display())))?;
        let mut manifest: PluginManifest = toml::from_str(&text)
            .map_err(|e| Failure::invalid(format!("{}: {e}", path.display())))?;
        let bad = |why: String| Failure::invalid(format!("{}: {why}", path.display()));
        if manifest.name.split('/').count() != 2 || manifest.name.split('/').any(str::is_empty) {
            return Err(bad(format!("name {:?} must be org/name", manifest.name)));
        }
        semver::Version::parse(&manifest.version)
            .map_err(|e| bad(format!("version {:?}: {e}", manifest.version)))?;
        parse_capabilities(&manifest.capabilities).map_err(|e| bad(e.to_string()))?;
        manifest.limits()?;
        for (dependency, requirement) in &manifest.dependencies {
            semver::VersionReq::parse(requirement)
                .map_err(|e| bad(format!("dependency {dependency} = {requirement:?}: {e}")))?;
        }
        if manifest.component.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            manifest.component = base.join(&manifest.component);
        }
        Ok(manifest)
    }

    /// The requested limits: defaults with the manifest's values applied.
    pub fn limits(&self) -> Result<Limits, Failure> {
        let mut limits = Limits::default();
        for (name, value) in &self.limits {
            let text = match value {
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::String(s) => s.clone(),
                other => {
                    return Err(Failure::invalid(format!(
                        "limit {name}: expected a number or a string like \"32MiB\", got {other}"
                    )));
                }
            };
            limits.set(name, &text).map_err(Failure::invalid)?;
        }
        Ok(limits)
    }
}

pub async fn publish(args: PublishArgs, remote: &RemoteArgs) -> Result<u8, Failure> {
    let manifest = PluginManifest::load(&args.manifest)?;
    let remote = Remote::new(remote)?;
    let key = crate::remote::read_private_key(&args.key)?;
    let external = match &args.registry {
        Some(address) => Some(Remote::registry(
            address,
            args.registry_insecure,
            args.registry_username
                .clone()
                .map(|user| (user, args.registry_password.clone().unwrap_or_default())),
        )?),
        None => None,
    };
    let release = publish_manifest(&remote, external.as_ref(), &manifest, &key).await?;
    if args.json {
        print_json(&release);
    } else {
        println!(
            "published {}@{} ({}, {} bytes), pending approval",
            manifest.name,
            manifest.version,
            release["component_digest"].as_str().unwrap_or("?"),
            release["component_size"]
        );
        println!(
            "  review:  warden release show {}@{}",
            manifest.name, manifest.version
        );
        println!(
            "  approve: warden approve {}@{} --key <admin key>",
            manifest.name, manifest.version
        );
    }
    Ok(exit::OK)
}

/// Checks, signs, pushes (to `registry`, by default the Warden server's own
/// `/v2/`) and registers the release `manifest` describes; returns the
/// registered release.
pub async fn publish_manifest(
    remote: &Remote,
    registry: Option<&Remote>,
    manifest: &PluginManifest,
    key: &PrivateKey,
) -> Result<Json, Failure> {
    let bytes = std::fs::read(&manifest.component).map_err(|e| {
        Failure::invalid(format!(
            "reading component {}: {e} (build it first: cargo build --release --target wasm32-wasip2)",
            manifest.component.display()
        ))
    })?;

    // The same checks the server makes, before anything leaves this machine.
    let engine = Engine::new(EngineConfig {
        pooled_instances: None,
        ..EngineConfig::default()
    })?;
    let compiled = engine.compile(&bytes)?;
    let requested = compiled.requested();
    if !requested.unsupported.is_empty() {
        return Err(Failure::invalid(format!(
            "{} imports interfaces no Warden host provides: {}",
            manifest.component.display(),
            requested.unsupported.join(", ")
        )));
    }
    let grants = parse_capabilities(&manifest.capabilities)?;
    let missing = requested.missing(&grants);
    if !missing.is_empty() {
        let missing: Vec<String> = missing.iter().map(ToString::to_string).collect();
        return Err(Failure::invalid(format!(
            "the component imports capabilities warden.toml does not request: {} (add them to `capabilities`)",
            missing.join(", ")
        )));
    }

    // The artifact: CNCF Wasm OCI layout.
    let exports: Vec<&str> = compiled.functions().map(|f| f.name.as_str()).collect();
    let imports: Vec<&str> = requested
        .capabilities
        .iter()
        .flat_map(|(_, i)| i)
        .map(String::as_str)
        .collect();
    let artifact = WasmArtifact::new(bytes, &exports, &imports);
    let statement = ReleaseStatement {
        name: manifest.name.clone(),
        version: manifest.version.clone(),
        description: manifest.description.clone(),
        component: ComponentRef {
            digest: artifact.component_digest().to_string(),
            size: artifact.component.len() as u64,
        },
        capabilities: capability_list(&grants),
        limits: manifest.limits()?,
        dependencies: manifest.dependencies.clone(),
        publisher_key: key.public_key().key_id(),
    };
    let envelope = key
        .sign(RELEASE_PAYLOAD_TYPE, &statement)
        .map_err(|e| Failure::new(exit::HOST_FAILURE, format!("signing: {e}")))?;

    let repo = &manifest.name;
    // The embedded registry sets the version tag itself once the release is
    // registered; an external registry gets it with the push.
    let external = registry.is_some();
    let registry = registry.unwrap_or(remote);
    push_blob(registry, repo, &artifact.config, "config").await?;
    push_blob(registry, repo, &artifact.component, "component").await?;
    let manifest_digest = artifact.manifest_digest().to_string();
    let reference = if external {
        &manifest.version
    } else {
        &manifest_digest
    };
    let response = registry
        .request(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
        .header(header::CONTENT_TYPE, MANIFEST_V1)
        .body(artifact.manifest.clone())
        .send()
        .await
        .map_err(|e| registry.unreachable(e))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        return Err(crate::remote::api_failure(status, &body));
    }

    let (org, name) = crate::remote::parse_plugin(repo)?;
    remote
        .send(
            Method::POST,
            &format!("/v1/plugins/{org}/{name}/releases"),
            &json!({ "envelope": envelope, "manifest_digest": manifest_digest }),
        )
        .await
}

/// Pushes one blob (skipping it if the registry has it), in chunks, with a
/// progress bar on a terminal. Returns its digest.
async fn push_blob(
    remote: &Remote,
    repo: &str,
    bytes: &[u8],
    what: &str,
) -> Result<String, Failure> {
    let digest = Digest::of(bytes).to_string();
    let head = remote
        .request(Method::HEAD, &format!("/v2/{repo}/blobs/{digest}"))
        .send()
        .await
        .map_err(|e| remote.unreachable(e))?;
    if head.status() == StatusCode::OK {
        return Ok(digest);
    }
    let progress = ProgressBar::with_draw_target(
        Some(bytes.len() as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    progress.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    progress.set_message(what.to_owned());
    let started = remote
        .request(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .map_err(|e| remote.unreachable(e))?;
    let mut location = upload_location(started).await?;
    let mut offset = 0usize;
    for chunk in bytes.chunks(CHUNK) {
        let end = offset + chunk.len() - 1;
        let response = remote
            .request(Method::PATCH, &location)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_RANGE, format!("{offset}-{end}"))
            .body(chunk.to_vec())
            .send()
            .await
            .map_err(|e| remote.unreachable(e))?;
        location = upload_location(response).await?;
        offset += chunk.len();
        progress.set_position(offset as u64);
    }
    let separator = if location.contains('?') { '&' } else { '?' };
    let response = remote
        .request(
            Method::PUT,
            &format!("{location}{separator}digest={digest}"),
        )
        .send()
        .await
        .map_err(|e| remote.unreachable(e))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        return Err(crate::remote::api_failure(status, &body));
    }
    progress.finish_and_clear();
    Ok(digest)
}

/// The upload URL path from a 202, or the registry's error.
async fn upload_location(response: reqwest::Response) -> Result<String, Failure> {
    let status = response.status();
    if status != StatusCode::ACCEPTED {
        let body = response.bytes().await.unwrap_or_default();
        return Err(crate::remote::api_failure(status, &body));
    }
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Failure::new(exit::HOST_FAILURE, "the registry sent no upload Location"))?;
    // Absolute or relative: keep the path and query, the base stays ours.
    Ok(match location.find("/v2/") {
        Some(start) => location[start..].to_owned(),
        None => location.to_owned(),
    })
}
