//! `warden publish`: reads `warden.toml`, checks the component locally, signs
//! the release statement, pushes the artifact (CNCF Wasm OCI layout) with a
//! progress bar, and registers the release.

use crate::admin::Format;
use crate::exit::{self, Failure};
use crate::remote::{Remote, RemoteArgs};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use warden_host::{
    ComponentRef, Engine, EngineConfig, Limits, PrivateKey, RELEASE_PAYLOAD_TYPE, ReleaseStatement,
    capability_list, parse_capabilities,
};
use warden_registry::types::{Publish, Release};
use warden_registry::{
    Credentials, ImportProblem, PushFailure, PushProgress, RegistryEndpoint, RepositoryName,
    WasmArtifact, check_imports, push_artifact,
};

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

pub async fn publish(
    args: PublishArgs,
    output: Format,
    remote: &RemoteArgs,
) -> Result<u8, Failure> {
    let manifest = PluginManifest::load(&args.manifest)?;
    let remote = Remote::new(remote)?;
    let key = crate::remote::read_private_key(&args.key)?;
    let external = args.registry.as_ref().map(|address| RegistryEndpoint {
        registry: address.clone(),
        insecure: args.registry_insecure,
        credentials: match &args.registry_username {
            Some(username) => Credentials::Basic {
                username: username.clone(),
                password: args.registry_password.clone().unwrap_or_default(),
            },
            None => Credentials::Anonymous,
        },
    });
    let release = publish_manifest(&remote, external.as_ref(), &manifest, &key).await?;
    output.show(&release, |release| {
        outln!(
            "published {}@{} ({}, {} bytes), pending approval",
            manifest.name,
            manifest.version,
            release.component_digest,
            release.component_size
        );
        outln!(
            "  review:  warden release show {}@{}",
            manifest.name,
            manifest.version
        );
        outln!(
            "  approve: warden approve {}@{} --key <admin key>",
            manifest.name,
            manifest.version
        );
    });
    Ok(exit::OK)
}

/// Checks, signs, pushes (to `registry`, by default the Warden server's own
/// `/v2/`) and registers the release `manifest` describes; returns the
/// registered release.
pub async fn publish_manifest(
    remote: &Remote,
    registry: Option<&RegistryEndpoint>,
    manifest: &PluginManifest,
    key: &PrivateKey,
) -> Result<Release, Failure> {
    let bytes = std::fs::read(&manifest.component).map_err(|e| {
        Failure::invalid(format!(
            "reading component {}: {e} (build it first: cargo build --release --target wasm32-wasip2)",
            manifest.component.display()
        ))
    })?;

    // The server's own import check, before anything leaves this machine.
    let engine = Engine::new(EngineConfig {
        pooled_instances: None,
        ..EngineConfig::default()
    })?;
    let compiled = engine.compile(&bytes)?;
    let requested = compiled.requested();
    let grants = parse_capabilities(&manifest.capabilities)?;
    check_imports(requested, &grants, !manifest.dependencies.is_empty()).map_err(|problem| {
        let component = manifest.component.display();
        Failure::invalid(match problem {
            ImportProblem::Unsupported(_) => format!(
                "{component}: {problem} (an interface of another plugin is imported by declaring it under [dependencies] in warden.toml)"
            ),
            ImportProblem::Unprovided { .. } | ImportProblem::TooManyLinked(_) => {
                format!("{component}: {problem}")
            }
            ImportProblem::NotRequested(_) => {
                format!("{component}: {problem} (add them to `capabilities` in warden.toml)")
            }
        })
    })?;

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
            digest: artifact.component_digest(),
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

    let repository: RepositoryName = manifest
        .name
        .parse()
        .map_err(|e: String| Failure::invalid(format!("name {:?}: {e}", manifest.name)))?;
    // Pushed by digest: the server writes the version tag (in its own
    // registry or the external one) once it has registered the release, so
    // a publish that loses a race for the version moves no tag.
    let endpoint = match registry {
        Some(external) => external.clone(),
        None => remote.registry_endpoint()?,
    };
    let manifest_digest = push_artifact(&endpoint, &repository, &artifact, progress_bar())
        .await
        .map_err(|e| {
            let code = match e.failure() {
                PushFailure::Unavailable => exit::UNAVAILABLE,
                PushFailure::Denied => exit::DENIED,
                PushFailure::Refused => exit::INVALID_INPUT,
            };
            Failure::new(code, e.to_string())
        })?;

    let (org, name) = crate::remote::parse_plugin(&manifest.name)?;
    remote
        .send(
            Method::POST,
            &format!("/v1/plugins/{org}/{name}/releases"),
            &Publish {
                envelope,
                manifest_digest: manifest_digest.to_string(),
            },
        )
        .await
}

/// A progress bar on stderr for each blob a push sends (hidden when stderr
/// is not a terminal).
fn progress_bar() -> warden_registry::PushProgressSink {
    let bar: Mutex<Option<ProgressBar>> = Mutex::new(None);
    Arc::new(move |event: PushProgress| {
        let Ok(mut bar) = bar.lock() else { return };
        match event {
            PushProgress::Started { what, total } => {
                let progress = ProgressBar::with_draw_target(
                    Some(total),
                    indicatif::ProgressDrawTarget::stderr(),
                );
                progress.set_style(
                    ProgressStyle::with_template(
                        "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                progress.set_message(what);
                *bar = Some(progress);
            }
            PushProgress::Sent { sent, .. } => {
                if let Some(progress) = bar.as_ref() {
                    progress.set_position(sent);
                }
            }
            PushProgress::Done { .. } => {
                if let Some(progress) = bar.take() {
                    progress.finish_and_clear();
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn load(text: &str) -> Result<PluginManifest, Failure> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warden.toml");
        std::fs::write(&path, text).unwrap();
        PluginManifest::load(&path)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any text: a manifest or a one-line refusal naming the file,
        /// never a panic.
        #[test]
        fn any_warden_toml_loads_or_is_refused(text in "\\PC{0,300}") {
            if let Err(failure) = load(&text) {
                prop_assert!(failure.message.contains("warden.toml"), "{}", failure.message);
            }
        }

        /// Manifests of the documented shape load with what they say.
        #[test]
        fn well_formed_manifests_load(
            org in "[a-z]{1,8}",
            name in "[a-z]{1,8}",
            (major, minor, patch) in (0u32..20, 0u32..20, 0u32..20),
            memory in 1u64..512,
        ) {
            let text = format!(
                "name = \"{org}/{name}\"\nversion = \"{major}.{minor}.{patch}\"\ncomponent = \"p.wasm\"\ncapabilities = [\"kv\"]\n[limits]\nmemory = \"{memory}MiB\"\n"
            );
            let manifest = load(&text).unwrap();
            prop_assert_eq!(&manifest.name, &format!("{org}/{name}"));
            prop_assert_eq!(manifest.limits().unwrap().memory_bytes, memory << 20);
        }
    }
}
