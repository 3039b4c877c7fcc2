//! The Kubernetes manifests in `deploy/kubernetes/`: every file the
//! kustomization lists exists (and every manifest is listed), each
//! validates against the Kubernetes schemas of a pinned version
//! (kubernetes-validate, strict: unknown fields are errors), the policy
//! checker (checkov) passes, and the stop timings agree with each other.
//! Each checker is also shown to fail on a broken copy.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use warden_test_programs::DEPLOY_TOOLS_BIN;

/// The Kubernetes version the manifests are validated against.
const KUBERNETES: &str = "1.31.0";

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("deploy/kubernetes")
}

fn tool(name: &str) -> Command {
    Command::new(Path::new(DEPLOY_TOOLS_BIN).join(name))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `expression` evaluated by Python over `documents` (the YAML documents of
/// the listed files, as a list), printed as JSON.
fn query(files: &[PathBuf], expression: &str) -> serde_json::Value {
    let script = format!(
        "import json, sys, yaml\n\
         documents = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d]\n\
         print(json.dumps({expression}))"
    );
    let output = tool("python")
        .arg("-c")
        .arg(script)
        .args(files)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn listed() -> Vec<PathBuf> {
    let dir = manifests();
    let resources = query(
        &[dir.join("kustomization.yaml")],
        "documents[0]['resources']",
    );
    resources
        .as_array()
        .unwrap()
        .iter()
        .map(|name| dir.join(name.as_str().unwrap()))
        .collect()
}

fn validate(files: &[PathBuf]) -> Output {
    tool("kubernetes-validate")
        .args(["--kubernetes-version", KUBERNETES, "--strict"])
        .args(files)
        .output()
        .unwrap()
}

fn checkov(dir: &Path) -> Output {
    tool("checkov")
        .args([
            "--framework",
            "kubernetes",
            "--quiet",
            "--compact",
            "--skip-download",
        ])
        .arg("-d")
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn the_kubernetes_manifests_validate_and_pass_the_policy_checks() {
    let dir = manifests();
    let files = listed();
    for file in &files {
        assert!(file.exists(), "listed but missing: {}", file.display());
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.ends_with(".yaml")
            && name != "kustomization.yaml"
            && !name.ends_with(".example.yaml")
        {
            assert!(files.contains(&path), "{name} is not in the kustomization");
        }
    }
    let validated = validate(&files);
    assert!(validated.status.success(), "{}", text(&validated));
    let checked = checkov(&dir);
    assert!(checked.status.success(), "{}", text(&checked));
    assert!(
        text(&checked).contains("Failed checks: 0"),
        "{}",
        text(&checked)
    );

    // The stop timings: the pod's grace covers preStop plus the server's
    // own grace; three replicas; the probes are the server's.
    let deployment = query(
        &[dir.join("deployment.yaml")],
        "[documents[0]['spec']['replicas'], documents[0]['spec']['template']['spec']['terminationGracePeriodSeconds'], \
          documents[0]['spec']['template']['spec']['containers'][0]['lifecycle']['preStop']['sleep']['seconds'], \
          [e['value'] for e in documents[0]['spec']['template']['spec']['containers'][0]['env'] if e['name'] == 'WARDEN_SHUTDOWN_GRACE'][0], \
          documents[0]['spec']['template']['spec']['containers'][0]['readinessProbe']['httpGet']['path'], \
          documents[0]['spec']['template']['spec']['containers'][0]['livenessProbe']['httpGet']['path']]",
    );
    let grace: u64 = deployment[3]
        .as_str()
        .unwrap()
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert_eq!(deployment[0], 3);
    assert!(
        deployment[1].as_u64().unwrap() > deployment[2].as_u64().unwrap() + grace,
        "terminationGracePeriodSeconds must exceed preStop + --shutdown-grace: {deployment}"
    );
    assert_eq!(deployment[4], "/readyz");
    assert_eq!(deployment[5], "/healthz");
    // The API server refuses an ipBlock whose exceptions are not inside
    // its CIDR (the schema does not say so).
    let blocks_hold_their_exceptions = query(
        &[dir.join("networkpolicy.yaml")],
        "all(__import__('ipaddress').ip_network(e).subnet_of(__import__('ipaddress').ip_network(b['ipBlock']['cidr'])) \
          for d in documents for rule in d['spec'].get('egress', []) + d['spec'].get('ingress', []) \
          for b in rule.get('to', []) + rule.get('from', []) if 'ipBlock' in b for e in b['ipBlock'].get('except', []))",
    );
    assert_eq!(blocks_hold_their_exceptions, true);
}

#[test]
fn the_checkers_refuse_broken_manifests() {
    let dir = manifests();
    // Not a hidden directory (checkov passes over those).
    let broken = tempfile::Builder::new()
        .prefix("broken-")
        .tempdir()
        .unwrap();
    let deployment = std::fs::read_to_string(dir.join("deployment.yaml")).unwrap();
    // An unknown field: refused by the schema.
    let unknown = broken.path().join("unknown.yaml");
    std::fs::write(
        &unknown,
        deployment.replace(
            "  revisionHistoryLimit: 5",
            "  revisionHistoryLimit: 5\n  replica: 3",
        ),
    )
    .unwrap();
    assert!(!validate(std::slice::from_ref(&unknown)).status.success());
    std::fs::remove_file(&unknown).unwrap();
    // A writable root filesystem and a privileged escalation: refused by
    // the policy checker.
    std::fs::write(
        broken.path().join("deployment.yaml"),
        deployment
            .replace(
                "readOnlyRootFilesystem: true",
                "readOnlyRootFilesystem: false",
            )
            .replace(
                "allowPrivilegeEscalation: false",
                "allowPrivilegeEscalation: true",
            ),
    )
    .unwrap();
    let checked = checkov(broken.path());
    assert!(!checked.status.success(), "{}", text(&checked));
    assert!(text(&checked).contains("CKV_K8S_22"), "{}", text(&checked));
}
