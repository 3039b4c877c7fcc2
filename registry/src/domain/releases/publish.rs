//! Publishing a release: everything the server checks before it registers
//! one, and the order of the writes (record and version tag together, the
//! signature referrer once the record exists).

use super::{
    ImportGroup, MAX_DESCRIPTION_CHARS, Release, ReleaseContext, ReleaseError, internal, reference,
    repository, show, stored,
};
use crate::audit::{Action, Change};
use crate::db::{is_duplicate, now_ms};
use crate::domain::dependencies::{self, DependencyError};
use crate::domain::keys::{KeyKind, SignedStatement, verify_signed};
use crate::domain::names::{check_name, is_plain_text, is_valid_name};
use crate::domain::status::Status;
use crate::domain::tokens::Caller;
use crate::oci::{Digest, OciError};
use serde_json::json;
use warden_host::{Envelope, Grants, RELEASE_PAYLOAD_TYPE, ReleaseStatement, Requested};

/// Registers a release of `org/name` whose artifact was pushed as
/// `manifest_digest`. Checks, in order: a publisher key of the org signed
/// the statement; it names this plugin and its signing key; version,
/// capabilities, description and dependencies are well-formed; the version
/// is new; the manifest is a Wasm artifact whose layer is the signed
/// component; the component compiles and imports nothing beyond what the
/// release requests.
pub async fn publish(
    cx: &ReleaseContext<'_>,
    caller: &Caller,
    org: &str,
    name: &str,
    envelope: &Envelope,
    manifest_digest: &str,
) -> Result<Release, ReleaseError> {
    check_name("plugin", name)?;
    let SignedStatement { verified, signers } = verify_signed(
        cx.db,
        org,
        KeyKind::Publisher,
        RELEASE_PAYLOAD_TYPE,
        envelope,
    )
    .await?;
    let statement: ReleaseStatement = serde_json::from_slice(&verified.payload)
        .map_err(|e| ReleaseError::InvalidStatement(format!("release statement: {e}")))?;
    let signer_ids: Vec<&str> = signers.iter().map(|s| s.key_id.as_str()).collect();
    check_statement(&statement, org, name, &signer_ids)?;
    let grants = statement
        .validate()
        .map_err(|e| ReleaseError::InvalidCapabilities(e.to_string()))?;
    let above = statement.limits.above(cx.limit_maxima);
    if !above.is_empty() {
        return Err(ReleaseError::LimitsAboveMaxima(above));
    }
    let version = statement.version.as_str();
    if stored(cx.db, org, name, version).await?.is_some() {
        return Err(ReleaseError::VersionExists(reference(org, name, version)));
    }

    let plugin = format!("{org}/{name}");
    {
        let mut conn = cx.db.pool().acquire().await?;
        refuse_cycle(&mut conn, org, &plugin, &statement).await?;
    }
    if statement.component.size > cx.max_component_bytes {
        return Err(ReleaseError::ComponentTooLarge {
            size: statement.component.size,
            max: cx.max_component_bytes,
        });
    }
    // A compile slot before the artifact is read: publishes waiting for one
    // hold no component bytes.
    let compile_turn = cx.compiles.turn(org).await?;
    // The artifact, as pushed.
    let repo = repository(org, name)?;
    let manifest_digest: Digest = manifest_digest
        .parse()
        .map_err(ReleaseError::InvalidDigest)?;
    let artifact = cx.artifacts.fetch(&repo, &manifest_digest).await?;
    let layer = &artifact.layer;
    if layer.digest != statement.component.digest || layer.size != statement.component.size {
        return Err(ReleaseError::DigestMismatch {
            signed: statement.component.digest.to_string(),
            signed_size: statement.component.size,
            found: layer.digest.to_string(),
            found_size: layer.size,
        });
    }
    let bytes = artifact.component;
    // The component itself: it must compile, and ask for nothing it did not declare.
    let engine = cx.engine.clone();
    // Checked, not kept: a pending release's compiled code stays out of the
    // cache until it is invoked once approved. The turn ends with the compile.
    let compiled = tokio::task::spawn_blocking(move || {
        let compiled = engine.compile_uncached(&bytes);
        drop(compile_turn);
        compiled
    })
    .await
    .map_err(internal)?
    .map_err(|e| ReleaseError::ComponentInvalid(e.to_string()))?;
    let requested = compiled.requested();
    check_imports(requested, &grants, !statement.dependencies.is_empty())?;
    if !requested.unsupported.is_empty() {
        let mut conn = cx.db.pool().acquire().await?;
        let unprovided = dependencies::unprovided_imports(
            &mut conn,
            org,
            &statement.dependencies,
            &requested.unsupported,
        )
        .await
        .map_err(dependency_failure)?;
        if !unprovided.is_empty() {
            return Err(ImportProblem::Unprovided {
                imports: unprovided,
                dependencies: statement
                    .dependencies
                    .iter()
                    .map(|(name, requirement)| format!("{name} {requirement}"))
                    .collect(),
            }
            .into());
        }
    }
    let functions: Vec<_> = compiled.functions().cloned().collect();
    let imports: Vec<ImportGroup> = requested
        .capabilities
        .iter()
        .map(|(capability, imports)| ImportGroup {
            capability: capability.to_string(),
            imports: imports.clone(),
        })
        .collect();

    let now = now_ms();
    let envelope_json = serde_json::to_string(envelope).map_err(internal)?;
    let mut change = Change::begin(cx.db, org).await?;
    // Again under the org's change lock: a release published since the first
    // check may close a cycle with this one.
    refuse_cycle(change.tx(), org, &plugin, &statement).await?;
    sqlx::query(
        "INSERT INTO plugins (org, name, description, config, created_at, updated_at)
         VALUES ($1, $2, $3, '{}', $4, $4)
         ON CONFLICT (org, name) DO UPDATE SET description = $3, updated_at = $4",
    )
    .bind(org)
    .bind(name)
    .bind(&statement.description)
    .bind(now)
    .execute(change.tx())
    .await?;
    let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO releases ({}) VALUES
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL, NULL, NULL, $15, NULL)",
        super::RELEASE_COLUMNS
    )))
    .bind(org)
    .bind(name)
    .bind(version)
    .bind(Status::Pending.as_str())
    .bind(&envelope_json)
    .bind(&verified.payload_digest)
    .bind(manifest_digest.to_string())
    .bind(statement.component.digest.to_string())
    .bind(statement.component.size as i64)
    .bind(&statement.publisher_key)
    .bind(&caller.token_id)
    .bind(serde_json::to_string(&statement.capabilities).map_err(internal)?)
    .bind(serde_json::to_string(&functions).map_err(internal)?)
    .bind(serde_json::to_string(&imports).map_err(internal)?)
    .bind(now)
    .execute(change.tx())
    .await;
    match inserted {
        Err(e) if is_duplicate(&e) => {
            return Err(ReleaseError::VersionExists(reference(org, name, version)));
        }
        other => other?,
    };
    // The version tag never moves once set. In the embedded store it is
    // written last before the commit (refusing a tag that names another
    // manifest) and removed again if the commit fails, so a refused or
    // failed publish leaves no tag. (In an external registry it is written
    // after the commit, below; releases are pinned by manifest digest
    // anyway.)
    // Held until the commit: a replica starting meanwhile waits for this
    // publish before it judges the tag (`reconcile_pending_tags`).
    cx.db
        .lock_in_transaction(change.tx(), &super::version_tag_lock(&repo, version))
        .await?;
    let tag = cx
        .artifacts
        .write_version_tag(&repo, version, &manifest_digest)
        .await
        .map_err(|e| match e {
            OciError::TagImmutable(_) => ReleaseError::TagConflict {
                repository: repo.clone(),
                version: version.to_owned(),
            },
            other => other.into(),
        })?;
    let committed = change
        .commit(
            &caller.actor(),
            Action::ReleasePublish,
            &statement.reference(),
            json!({
                "component": statement.component.digest,
                "manifest": manifest_digest.to_string(),
                "statement": verified.payload_digest,
                "publisher_key": statement.publisher_key,
                "capabilities": statement.capabilities,
            }),
        )
        .await;
    if let Err(error) = committed {
        tag.undo().await;
        return Err(error.into());
    }
    tag.keep().await;
    // An external registry's version tag: written now that this publish has
    // won, by it alone, and recorded in the row (written again in the
    // background if this fails).
    if let Err(e) = super::tags::tag_committed_release(
        cx.db,
        cx.artifacts,
        (org, name, version),
        &manifest_digest,
    )
    .await
    {
        tracing::error!(release = %statement.reference(), error = %e,
            "published, but writing its version tag in the external registry failed (written again in the background)");
    }
    // The signature referrer is the record's OCI copy, written once the
    // record exists; the row says when it was (repaired at the next pass
    // of `repair_referrers` if this fails or the process dies first).
    if let Err(e) = super::referrers::write_referrer(
        cx.db,
        cx.artifacts,
        super::referrers::Referrer::Release,
        (org, name, version),
        None,
        &manifest_digest,
        &envelope_json,
    )
    .await
    {
        tracing::error!(release = %statement.reference(), error = %e,
            "published, but writing its signature referrer failed (repaired in the background)");
    }
    tracing::info!(release = %statement.reference(), "published");
    show(cx, org, name, version).await
}

/// Why a component's imports do not fit its release.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportProblem {
    /// Imports that no Warden host provides.
    #[error("the component imports interfaces no Warden host provides: {}", .0.join(", "))]
    Unsupported(Vec<String>),
    /// Imports that no release of a declared dependency (matching its
    /// requirement) exports.
    #[error("the component imports {}, which no release of its dependencies ({}) exports", .imports.join(", "), .dependencies.join(", "))]
    Unprovided {
        /// The imports.
        imports: Vec<String>,
        /// The declared dependencies, `org/name requirement`.
        dependencies: Vec<String>,
    },
    /// More imports than dependencies may provide to one component.
    #[error(
        "the component imports {0} interfaces no host provides; dependencies provide at most {max}",
        max = warden_host::MAX_LINKED_IMPORTS
    )]
    TooManyLinked(usize),
    /// Capabilities the component imports that the release does not request.
    #[error("the component imports capabilities the release does not request: {}", .0.join(", "))]
    NotRequested(Vec<String>),
}

/// A component imports no capability its release does not request, and
/// nothing that no host provides unless the release declares dependencies
/// (which must then export it: the server checks that against their
/// releases). The server checks this at publish; `warden publish` checks it
/// before anything leaves the machine.
pub fn check_imports(
    requested: &Requested,
    grants: &Grants,
    declares_dependencies: bool,
) -> Result<(), ImportProblem> {
    if !requested.unsupported.is_empty() && !declares_dependencies {
        return Err(ImportProblem::Unsupported(requested.unsupported.clone()));
    }
    if requested.unsupported.len() > warden_host::MAX_LINKED_IMPORTS {
        return Err(ImportProblem::TooManyLinked(requested.unsupported.len()));
    }
    let missing = requested.missing(grants);
    if !missing.is_empty() {
        return Err(ImportProblem::NotRequested(
            missing.iter().map(ToString::to_string).collect(),
        ));
    }
    Ok(())
}

/// What can be checked of a release statement alone: it is for `org/name`,
/// it names a key that signed it, its version can be an OCI tag, its
/// description fits, and each dependency is `org/name` with a semver
/// requirement.
fn check_statement(
    statement: &ReleaseStatement,
    org: &str,
    name: &str,
    signers: &[&str],
) -> Result<(), ReleaseError> {
    let path = format!("{org}/{name}");
    if statement.name != path {
        return Err(ReleaseError::NameMismatch {
            statement: statement.name.clone(),
            path,
        });
    }
    if !signers.contains(&statement.publisher_key.as_str()) {
        return Err(ReleaseError::PublisherKeyMismatch {
            named: statement.publisher_key.clone(),
            signed_by: signers.join(", "),
        });
    }
    check_version(&statement.version)?;
    if statement.description.chars().count() > MAX_DESCRIPTION_CHARS
        || !is_plain_text(&statement.description)
    {
        return Err(ReleaseError::InvalidDescription);
    }
    // Bounds what every later record of the release carries: its review,
    // the audit entry, its events and webhook payloads.
    if statement.capabilities.len() > MAX_CAPABILITIES {
        return Err(ReleaseError::InvalidCapabilities(format!(
            "a release requests at most {MAX_CAPABILITIES} capabilities, this one {}",
            statement.capabilities.len()
        )));
    }
    if statement.dependencies.len() > MAX_DEPENDENCIES {
        return Err(ReleaseError::InvalidDependency(format!(
            "a release declares at most {MAX_DEPENDENCIES} dependencies, this one {}",
            statement.dependencies.len()
        )));
    }
    for (dependency, requirement) in &statement.dependencies {
        let valid_name = dependency
            .split_once('/')
            .is_some_and(|(o, n)| is_valid_name(o) && is_valid_name(n));
        if !valid_name {
            return Err(ReleaseError::InvalidDependency(format!(
                "dependency {dependency:?} is not org/name"
            )));
        }
        semver::VersionReq::parse(requirement).map_err(|e| {
            ReleaseError::InvalidDependency(format!(
                "dependency {dependency}: {requirement:?} is not a semver requirement: {e}"
            ))
        })?;
    }
    Ok(())
}

/// Refuses `statement` if its dependencies lead back to `plugin`.
async fn refuse_cycle(
    conn: &mut sqlx::AnyConnection,
    org: &str,
    plugin: &str,
    statement: &ReleaseStatement,
) -> Result<(), ReleaseError> {
    let cycle = dependencies::find_cycle(conn, org, plugin, statement.dependencies.keys())
        .await
        .map_err(dependency_failure)?;
    match cycle {
        Some(cycle) => Err(ReleaseError::DependencyCycle(cycle)),
        None => Ok(()),
    }
}

/// What a failure of a dependency check is to a publish.
fn dependency_failure(error: DependencyError) -> ReleaseError {
    match error {
        DependencyError::Db(e) => ReleaseError::Db(e),
        DependencyError::Invalid(why) => ReleaseError::InvalidDependency(why),
        other => internal(other),
    }
}

/// The most dependencies one release may declare.
pub const MAX_DEPENDENCIES: usize = 64;

/// The most capabilities one release may request.
pub const MAX_CAPABILITIES: usize = 256;

/// A semantic version without build metadata (which an OCI tag cannot hold).
fn check_version(version: &str) -> Result<semver::Version, ReleaseError> {
    let parsed = semver::Version::parse(version).map_err(|e| {
        ReleaseError::InvalidVersion(format!("{version:?} is not a semantic version: {e}"))
    })?;
    if !parsed.build.is_empty() {
        return Err(ReleaseError::InvalidVersion(format!(
            "{version:?}: build metadata (+...) cannot be an OCI tag"
        )));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn statement(name: &str, version: &str) -> ReleaseStatement {
        serde_json::from_value(json!({
            "name": name,
            "version": version,
            "description": "d",
            "component": { "digest": format!("sha256:{}", "0".repeat(64)), "size": 1 },
            "capabilities": [],
            "limits": {},
            "dependencies": {},
            "publisher_key": "k",
        }))
        .unwrap()
    }

    #[test]
    fn a_statement_is_for_the_plugin_it_is_published_as() {
        assert!(
            check_statement(&statement("acme/hello", "1.0.0"), "acme", "hello", &["k"]).is_ok()
        );
        assert!(matches!(
            check_statement(&statement("other/hello", "1.0.0"), "acme", "hello", &["k"]),
            Err(ReleaseError::NameMismatch { .. })
        ));
    }

    #[test]
    fn a_release_requests_at_most_256_capabilities() {
        let requesting = |n: usize| {
            let mut statement = statement("acme/hello", "1.0.0");
            statement.capabilities = (0..n).map(|i| format!("env:VAR_{i:03}")).collect();
            statement.capabilities.sort();
            check_statement(&statement, "acme", "hello", &["k"])
        };
        assert!(requesting(MAX_CAPABILITIES).is_ok());
        assert!(matches!(
            requesting(MAX_CAPABILITIES + 1),
            Err(ReleaseError::InvalidCapabilities(_))
        ));
    }

    #[test]
    fn the_statement_names_a_key_that_signed_it() {
        assert!(matches!(
            check_statement(
                &statement("acme/hello", "1.0.0"),
                "acme",
                "hello",
                &["other"]
            ),
            Err(ReleaseError::PublisherKeyMismatch { .. })
        ));
    }

    #[test]
    fn versions_must_be_usable_as_tags() {
        assert!(check_version("1.2.3-beta.1").is_ok());
        for bad in ["1.2", "v1.2.3", "1.2.3+build.5", ""] {
            assert!(
                matches!(check_version(bad), Err(ReleaseError::InvalidVersion(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn dependencies_provide_a_bounded_number_of_imports() {
        let names =
            |n: usize| -> Vec<String> { (0..n).map(|k| format!("acme:lib/i{k}@1.0.0")).collect() };
        let check = |n: usize, declared: bool| {
            let names = names(n);
            let requested = Requested::classify(names.iter().map(String::as_str));
            check_imports(&requested, &Grants::none(), declared)
        };
        assert!(matches!(
            check(1, false),
            Err(ImportProblem::Unsupported(_))
        ));
        assert_eq!(check(warden_host::MAX_LINKED_IMPORTS, true), Ok(()));
        assert_eq!(
            check(warden_host::MAX_LINKED_IMPORTS + 1, true),
            Err(ImportProblem::TooManyLinked(
                warden_host::MAX_LINKED_IMPORTS + 1
            ))
        );
    }

    #[test]
    fn descriptions_and_dependencies_are_checked() {
        let mut s = statement("acme/hello", "1.0.0");
        s.description = "x".repeat(MAX_DESCRIPTION_CHARS);
        assert!(check_statement(&s, "acme", "hello", &["k"]).is_ok());
        s.description.push('x');
        assert!(matches!(
            check_statement(&s, "acme", "hello", &["k"]),
            Err(ReleaseError::InvalidDescription)
        ));
        s.description = "Greets\n\u{1b}[8msigner: trusted".into();
        assert!(matches!(
            check_statement(&s, "acme", "hello", &["k"]),
            Err(ReleaseError::InvalidDescription)
        ));
        for (dependency, requirement) in
            [("nobody", "^1"), ("acme/Text", "^1"), ("acme/text", "one")]
        {
            let mut s = statement("acme/hello", "1.0.0");
            s.dependencies = BTreeMap::from([(dependency.to_owned(), requirement.to_owned())]);
            assert!(
                matches!(
                    check_statement(&s, "acme", "hello", &["k"]),
                    Err(ReleaseError::InvalidDependency(_))
                ),
                "{dependency} {requirement}"
            );
        }
    }
}
