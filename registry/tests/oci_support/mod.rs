//! Shared by the embedded registry's tests (oci.rs, oci_faults.rs): a registry on
//! loopback with static tokens, and small protocol helpers.
#![allow(dead_code)]

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use warden_registry::oci::{
    Digest, MANIFEST_V1, OciAccess, OciState, OciStore, StaticTokens, TokenGrant, WASM_CONFIG_V0,
    WASM_LAYER, router,
};

pub struct Registry {
    pub address: SocketAddr,
    pub _dir: tempfile::TempDir,
}

pub async fn start(access: Arc<dyn OciAccess>) -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(OciStore::open(dir.path(), 64 << 20).await.unwrap());
    let app = router(OciState { store, access });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Registry { address, _dir: dir }
}

pub fn tokens() -> Arc<dyn OciAccess> {
    Arc::new(
        StaticTokens::new()
            .with(
                "acme-publisher",
                TokenGrant {
                    org: "acme".into(),
                    push: true,
                },
            )
            .with(
                "acme-reader",
                TokenGrant {
                    org: "acme".into(),
                    push: false,
                },
            )
            .with(
                "globex-publisher",
                TokenGrant {
                    org: "globex".into(),
                    push: true,
                },
            ),
    )
}

pub async fn error(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["errors"][0]["code"].as_str().unwrap().to_owned(),
    )
}

pub async fn put_blob(http: &reqwest::Client, base: &str, bytes: &'static [u8]) -> Digest {
    let digest = Digest::of(bytes);
    let response = http
        .post(format!("{base}/blobs/uploads/?digest={digest}"))
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    digest
}

pub fn manifest(
    config: &Digest,
    config_size: usize,
    layer: &Digest,
    layer_size: usize,
    subject: Option<(&Digest, usize)>,
) -> Value {
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_V1,
        "config": {"mediaType": WASM_CONFIG_V0, "digest": config.to_string(), "size": config_size},
        "layers": [{"mediaType": WASM_LAYER, "digest": layer.to_string(), "size": layer_size}],
    });
    if let Some((subject, size)) = subject {
        manifest["artifactType"] = json!("application/vnd.warden.signature.v1+json");
        manifest["subject"] =
            json!({"mediaType": MANIFEST_V1, "digest": subject.to_string(), "size": size});
    }
    manifest
}
