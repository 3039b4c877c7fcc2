//! The published contract is true: `/openapi.json` is valid OpenAPI
//! (openapi-spec-validator), and schemathesis, run against a live server
//! with a bounded number of generated requests per operation and all its
//! checks, finds no server error, no status the document does not list, no
//! response that does not match its schema, no wrong content type, and no
//! schema-valid request refused (the document declares the server's own
//! constraints: names, page sizes, text without control characters...).

mod common;

use common::{Backend, start};
use std::process::Command;
use warden_test_programs::{API_TOOLS_BIN, HELLO, read};

/// Generated requests per operation and phase.
const EXAMPLES_PER_OPERATION: &str = "25";

async fn run(command: Command) -> std::process::Output {
    let mut command = command;
    tokio::task::spawn_blocking(move || command.output().expect("running an API contract tool"))
        .await
        .unwrap()
}

async fn the_api_keeps_its_published_contract(backend: Backend) {
    let h = start(backend).await;
    // Something to find: a published release, so that operations on it
    // reach their logic when the generator hits its name.
    let publisher = h.token(&h.admin, "acme", "publisher").await;
    let alice = h.key(&h.admin, "acme", "publisher", "alice").await;
    h.publish(&publisher, &alice, "acme/hello", "1.0.0", &read(HELLO), &[])
        .await
        .expect(201);

    let document = h
        .http
        .get(format!("{}/openapi.json", h.url))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let spec = h.dir.path().join("openapi.json");
    std::fs::write(&spec, &document).unwrap();
    let bin = std::path::Path::new(API_TOOLS_BIN);
    let mut validate = Command::new(bin.join("openapi-spec-validator"));
    validate.arg(&spec);
    let validated = run(validate).await;
    assert!(
        validated.status.success(),
        "/openapi.json is not valid OpenAPI:\n{}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );

    // Every check (schemathesis runs all by default) on every operation,
    // but one: a schema-valid body is not
    // always acceptable where it carries signed or cryptographic material
    // no schema can describe (an ed25519 key is 32 bytes on the curve; an
    // envelope's payload is a signed statement about this very release),
    // so `positive_data_acceptance` is off for those three operations alone.
    let config = h.dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        r#"
[checks.positive_data_acceptance]
enabled = true

[checks.negative_data_rejection]
enabled = true

[[operations]]
include-path = "/v1/orgs/{org}/keys"
include-method = "POST"
checks.positive_data_acceptance.enabled = false

[[operations]]
include-path = "/v1/plugins/{org}/{name}/releases"
include-method = "POST"
checks.positive_data_acceptance.enabled = false

[[operations]]
include-path = "/v1/plugins/{org}/{name}/releases/{version}/approve"
include-method = "POST"
checks.positive_data_acceptance.enabled = false
"#,
    )
    .unwrap();
    let mut schemathesis = Command::new(bin.join("schemathesis"));
    schemathesis
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{}/openapi.json", h.url)])
        .args([
            "--max-examples",
            EXAMPLES_PER_OPERATION,
            "--seed",
            "20261130",
            "--request-timeout",
            "20",
            "--no-color",
        ])
        .args(["-H", &format!("Authorization: Bearer {}", h.admin)])
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(h.dir.path());
    let fuzzed = run(schemathesis).await;
    let report = String::from_utf8_lossy(&fuzzed.stdout);
    assert!(
        fuzzed.status.success(),
        "schemathesis found contract violations:\n{report}\n{}",
        String::from_utf8_lossy(&fuzzed.stderr)
    );
    // Every operation of the document was tested.
    let document = warden_registry::openapi();
    let operations: usize = document
        .paths
        .paths
        .values()
        .map(|item| {
            [&item.get, &item.put, &item.post, &item.delete, &item.patch]
                .iter()
                .filter(|operation| operation.is_some())
                .count()
        })
        .sum();
    assert!(
        report.contains(&format!("Tested: {operations}")),
        "{operations} operations: {report}"
    );
}
on_both_databases!(the_api_keeps_its_published_contract);
