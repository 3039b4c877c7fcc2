//! The embedded OCI registry over real HTTP on loopback: standard clients push and
//! pull byte-identically; every spec error code is answered where it belongs.

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

mod oci_support;
use oci_support::{Registry, error, manifest, put_blob, start, tokens};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use warden_registry::oci::{Anonymous, Digest, MANIFEST_V1, OciStore, WASM_CONFIG_V0, WASM_LAYER};

fn client(monolithic: bool) -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        use_monolithic_push: monolithic,
        ..ClientConfig::default()
    })
}

fn wasm_config() -> Config {
    let config = json!({"created": "2026-11-25T00:00:00Z", "architecture": "wasm", "os": "wasip2", "layerDigests": []});
    Config::new(
        serde_json::to_vec(&config).unwrap(),
        WASM_CONFIG_V0.into(),
        None,
    )
}

async fn push_component(
    registry: &Registry,
    repo_tag: &str,
    bytes: &[u8],
    auth: &RegistryAuth,
    monolithic: bool,
) -> String {
    let reference: Reference = format!("{}/{repo_tag}", registry.address).parse().unwrap();
    let layer = ImageLayer::new(bytes.to_vec(), WASM_LAYER.into(), None);
    client(monolithic)
        .push(&reference, &[layer], wasm_config(), auth, None)
        .await
        .unwrap_or_else(|e| panic!("pushing {repo_tag}: {e}"))
        .manifest_url
}

#[tokio::test]
async fn oci_client_pushes_and_pulls_a_component_byte_identically() {
    let registry = start(tokens()).await;
    let hello = warden_test_programs::read(warden_test_programs::HELLO);
    let auth = RegistryAuth::Basic("ci".into(), "acme-publisher".into());
    for (tag, monolithic) in [("1.0.0", true), ("1.0.1", false)] {
        push_component(
            &registry,
            &format!("acme/hello:{tag}"),
            &hello,
            &auth,
            monolithic,
        )
        .await;
        let reference: Reference = format!("{}/acme/hello:{tag}", registry.address)
            .parse()
            .unwrap();
        let pulled = client(true)
            .pull(
                &reference,
                &RegistryAuth::Bearer("acme-reader".into()),
                vec![WASM_LAYER],
            )
            .await
            .unwrap();
        assert_eq!(pulled.layers.len(), 1);
        assert_eq!(
            pulled.layers[0].data.as_ref(),
            hello.as_slice(),
            "tag {tag}"
        );
        assert_eq!(pulled.config.media_type, WASM_CONFIG_V0);
    }
}

// skopeo runs as a blocking child process: the server needs another worker thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_copies_a_release_out_and_back_byte_identically() {
    let registry = start(tokens()).await;
    let hello = warden_test_programs::read(warden_test_programs::HELLO);
    let auth = RegistryAuth::Basic("ci".into(), "acme-publisher".into());
    push_component(&registry, "acme/hello:1.0.0", &hello, &auth, false).await;

    let layout = tempfile::tempdir().unwrap();
    let skopeo = |args: &[&str]| {
        let output = std::process::Command::new("skopeo")
            .args(args)
            .output()
            .expect("skopeo is installed (scripts/test installs it)");
        assert!(
            output.status.success(),
            "skopeo {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let source = format!("docker://{}/acme/hello:1.0.0", registry.address);
    let local = format!("oci:{}:1.0.0", layout.path().display());
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        "ci:acme-reader",
        &source,
        &local,
    ]);
    let blob = layout
        .path()
        .join("blobs/sha256")
        .join(Digest::of(&hello).hex());
    assert_eq!(
        std::fs::read(&blob).unwrap(),
        hello,
        "skopeo pulled the component byte-identically"
    );

    let target = format!("docker://{}/acme/hello-copy:1.0.0", registry.address);
    skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        "ci:acme-publisher",
        &local,
        &target,
    ]);
    let http = reqwest::Client::new();
    let manifest = |repo: &str| {
        http.get(format!(
            "http://{}/v2/{repo}/manifests/1.0.0",
            registry.address
        ))
        .bearer_auth("acme-reader")
        .header("Accept", MANIFEST_V1)
        .send()
    };
    let original = manifest("acme/hello").await.unwrap().bytes().await.unwrap();
    let copied = manifest("acme/hello-copy")
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(original, copied, "skopeo pushed the same manifest back");
}

#[tokio::test]
async fn chunked_uploads_check_ranges_and_digests() {
    let registry = start(Arc::new(Anonymous)).await;
    let base = format!("http://{}/v2/acme/data", registry.address);
    let http = reqwest::Client::new();

    let start = http
        .post(format!("{base}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::ACCEPTED);
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    let url = format!("http://{}{location}", registry.address);
    let first = http
        .patch(&url)
        .header("Content-Range", "0-4")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    assert_eq!(first.headers()["range"], "0-4");
    // A chunk that does not continue where the upload ends.
    let gap = http
        .patch(&url)
        .header("Content-Range", "7-9")
        .body("xyz")
        .send()
        .await
        .unwrap();
    assert_eq!(gap.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let status = http.get(&url).send().await.unwrap();
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
    assert_eq!(status.headers()["range"], "0-4");
    let digest = Digest::of(b"hello world");
    let done = http
        .put(format!("{url}?digest={digest}"))
        .body(" world")
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::CREATED);
    assert_eq!(
        done.headers()["docker-content-digest"],
        digest.to_string().as_str()
    );
    let blob = http
        .get(format!("{base}/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(blob.bytes().await.unwrap().as_ref(), b"hello world");
    let head = http
        .head(format!("{base}/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["content-length"], "11");

    // A finished upload is gone.
    let again = http.patch(&url).body("more").send().await.unwrap();
    assert_eq!(
        error(again).await,
        (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN".into())
    );

    // Content that does not match its digest is refused and not stored.
    let wrong = Digest::of(b"something else");
    let refused = http
        .post(format!("{base}/blobs/uploads/?digest={wrong}"))
        .body("hello world, tampered")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error(refused).await,
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID".into())
    );
    let missing = http
        .get(format!("{base}/blobs/{wrong}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error(missing).await,
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN".into())
    );
    let tampered = Digest::of(b"hello world, tampered");
    let missing = http
        .head(format!("{base}/blobs/{tampered}"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn manifests_are_checked_and_tags_listed_in_pages() {
    let registry = start(Arc::new(Anonymous)).await;
    let base = format!("http://{}/v2/acme/tool", registry.address);
    let http = reqwest::Client::new();
    let put = |reference: String, content_type: &'static str, body: Vec<u8>| {
        http.put(format!("{base}/manifests/{reference}"))
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };

    let config = put_blob(&http, &base, b"{}").await;
    let layer = put_blob(&http, &base, b"\0asm component").await;
    let good = serde_json::to_vec(&manifest(&config, 2, &layer, 14, None)).unwrap();

    let unknown_layer =
        serde_json::to_vec(&manifest(&config, 2, &Digest::of(b"nope"), 4, None)).unwrap();
    let (status, code) = error(
        put("1.0.0".into(), MANIFEST_V1, unknown_layer)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN")
    );
    let wrong_size = serde_json::to_vec(&manifest(&config, 2, &layer, 999, None)).unwrap();
    assert_eq!(
        error(put("1.0.0".into(), MANIFEST_V1, wrong_size).await.unwrap())
            .await
            .1,
        "MANIFEST_INVALID"
    );
    assert_eq!(
        error(
            put("1.0.0".into(), MANIFEST_V1, b"{not json".to_vec())
                .await
                .unwrap()
        )
        .await
        .1,
        "MANIFEST_INVALID"
    );
    assert_eq!(
        error(
            put("1.0.0".into(), "text/plain", good.clone())
                .await
                .unwrap()
        )
        .await
        .1,
        "MANIFEST_INVALID"
    );
    let (status, code) = error(
        put("1.0.0".into(), MANIFEST_V1, vec![b' '; 5 << 20])
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID")
    );
    let (_, code) = error(
        put(Digest::of(b"other").to_string(), MANIFEST_V1, good.clone())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, "DIGEST_INVALID");
    let unknown = http
        .get(format!("{base}/manifests/9.9.9"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error(unknown).await,
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN".into())
    );

    for tag in ["1.0.0", "1.1.0", "2.0.0"] {
        let response = put(tag.into(), MANIFEST_V1, good.clone()).await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(
            response.headers()["docker-content-digest"],
            Digest::of(&good).to_string().as_str()
        );
    }
    let by_digest = http
        .get(format!("{base}/manifests/{}", Digest::of(&good)))
        .send()
        .await
        .unwrap();
    assert_eq!(by_digest.headers()["content-type"], MANIFEST_V1);
    assert_eq!(by_digest.bytes().await.unwrap().as_ref(), good.as_slice());

    let page = http
        .get(format!("{base}/tags/list?n=2"))
        .send()
        .await
        .unwrap();
    let link = page.headers()["link"].to_str().unwrap().to_owned();
    assert_eq!(
        link,
        "</v2/acme/tool/tags/list?n=2&last=1.1.0>; rel=\"next\""
    );
    let body: Value = page.json().await.unwrap();
    assert_eq!(
        body,
        json!({"name": "acme/tool", "tags": ["1.0.0", "1.1.0"]})
    );
    let rest: Value = http
        .get(format!("{base}/tags/list?n=2&last=1.1.0"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["tags"], json!(["2.0.0"]));

    let unknown_repo = http
        .get(format!(
            "http://{}/v2/acme/none/tags/list",
            registry.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error(unknown_repo).await,
        (StatusCode::NOT_FOUND, "NAME_UNKNOWN".into())
    );
    let bad_name = http
        .get(format!(
            "http://{}/v2/Acme/Tool/tags/list",
            registry.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error(bad_name).await,
        (StatusCode::BAD_REQUEST, "NAME_INVALID".into())
    );
    let bad_digest = http
        .get(format!("{base}/blobs/sha256:0123notHex"))
        .send()
        .await
        .unwrap();
    assert_eq!(error(bad_digest).await.1, "DIGEST_INVALID");
}

#[tokio::test]
async fn referrers_list_what_points_at_a_manifest() {
    let registry = start(Arc::new(Anonymous)).await;
    let base = format!("http://{}/v2/acme/tool", registry.address);
    let http = reqwest::Client::new();
    let config = put_blob(&http, &base, b"{}").await;
    let layer = put_blob(&http, &base, b"\0asm component").await;
    let release = serde_json::to_vec(&manifest(&config, 2, &layer, 14, None)).unwrap();
    let release_digest = Digest::of(&release);
    http.put(format!("{base}/manifests/1.0.0"))
        .header("Content-Type", MANIFEST_V1)
        .body(release.clone())
        .send()
        .await
        .unwrap();
    let signature_blob = put_blob(&http, &base, b"signature envelope").await;
    let signature = serde_json::to_vec(&manifest(
        &config,
        2,
        &signature_blob,
        18,
        Some((&release_digest, release.len())),
    ))
    .unwrap();
    let pushed = http
        .put(format!("{base}/manifests/{}", Digest::of(&signature)))
        .header("Content-Type", MANIFEST_V1)
        .body(signature.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), StatusCode::CREATED);
    assert_eq!(
        pushed.headers()["oci-subject"],
        release_digest.to_string().as_str()
    );

    let index: Value = http
        .get(format!("{base}/referrers/{release_digest}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(
        index["manifests"][0]["digest"],
        Digest::of(&signature).to_string()
    );
    assert_eq!(
        index["manifests"][0]["artifactType"],
        "application/vnd.warden.signature.v1+json"
    );
    let filtered = http
        .get(format!(
            "{base}/referrers/{release_digest}?artifactType=application/other"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(filtered.headers()["oci-filters-applied"], "artifactType");
    let filtered: Value = filtered.json().await.unwrap();
    assert_eq!(filtered["manifests"], json!([]));
}

#[tokio::test]
async fn blobs_belong_to_their_repository_until_mounted() {
    let registry = start(Arc::new(Anonymous)).await;
    let http = reqwest::Client::new();
    let one = format!("http://{}/v2/acme/one", registry.address);
    let two = format!("http://{}/v2/acme/two", registry.address);
    let digest = put_blob(&http, &one, b"shared bytes").await;
    let hidden = http
        .get(format!("{two}/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(error(hidden).await.1, "BLOB_UNKNOWN");
    let mounted = http
        .post(format!("{two}/blobs/uploads/?mount={digest}&from=acme/one"))
        .send()
        .await
        .unwrap();
    assert_eq!(mounted.status(), StatusCode::CREATED);
    let visible = http
        .get(format!("{two}/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(visible.bytes().await.unwrap().as_ref(), b"shared bytes");
    // Mounting what the source does not have starts a normal upload instead.
    let fallback = http
        .post(format!(
            "{two}/blobs/uploads/?mount={}&from=acme/one",
            Digest::of(b"absent")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(fallback.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn tokens_are_required_and_scoped_to_their_org() {
    let registry = start(tokens()).await;
    let http = reqwest::Client::new();
    let root = format!("http://{}/v2/", registry.address);

    let anonymous = http.get(&root).send().await.unwrap();
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Basic realm=\"warden\""
    );
    assert_eq!(
        error(anonymous).await,
        (StatusCode::UNAUTHORIZED, "UNAUTHORIZED".into())
    );
    let wrong = http.get(&root).bearer_auth("guess").send().await.unwrap();
    assert_eq!(error(wrong).await.1, "UNAUTHORIZED");
    let basic = http
        .get(&root)
        .basic_auth("anyone", Some("acme-reader"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::OK);

    let upload = |repo: &str, token: &str| {
        http.post(format!(
            "http://{}/v2/{repo}/blobs/uploads/",
            registry.address
        ))
        .bearer_auth(token)
        .send()
    };
    assert_eq!(
        upload("acme/tool", "acme-publisher")
            .await
            .unwrap()
            .status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        error(upload("acme/tool", "acme-reader").await.unwrap()).await,
        (StatusCode::FORBIDDEN, "DENIED".into())
    );
    assert_eq!(
        error(upload("acme/tool", "globex-publisher").await.unwrap())
            .await
            .1,
        "DENIED"
    );
    let other_org = http
        .get(format!(
            "http://{}/v2/globex/tool/tags/list",
            registry.address
        ))
        .bearer_auth("acme-reader")
        .send()
        .await
        .unwrap();
    assert_eq!(error(other_org).await.1, "DENIED");
}

/// Undoing a tag (a publish whose commit failed) removes the tag only while it
/// still names the manifest it was written for.
#[tokio::test]
async fn untag_removes_only_the_tag_it_wrote() {
    use warden_registry::oci::{Reference as OciReference, RepositoryName};
    let dir = tempfile::tempdir().unwrap();
    let store = OciStore::open(dir.path(), 64 << 20).await.unwrap();
    let repo: RepositoryName = "acme/hello".parse().unwrap();
    let mut digests = Vec::new();
    for layer in [&b"one"[..], &b"two"[..]] {
        let artifact = warden_registry::WasmArtifact::new(layer.to_vec(), &[], &[]);
        store.put_blob(&repo, &artifact.config).await.unwrap();
        store.put_blob(&repo, &artifact.component).await.unwrap();
        let digest = artifact.manifest_digest();
        store
            .put_manifest(
                &repo,
                &OciReference::Digest(digest.clone()),
                MANIFEST_V1,
                &artifact.manifest,
            )
            .await
            .unwrap();
        digests.push(digest);
    }
    let tagged = |tag: &'static str| {
        let store = &store;
        let repo = &repo;
        async move {
            store
                .get_manifest(repo, &OciReference::Tag(tag.into()))
                .await
                .unwrap()
                .map(|(_, _, digest)| digest)
        }
    };
    store.tag(&repo, "1.0.0", &digests[0]).await.unwrap();
    // Another manifest's undo leaves it alone.
    store.untag(&repo, "1.0.0", &digests[1]).await.unwrap();
    assert_eq!(tagged("1.0.0").await, Some(digests[0].clone()));
    // Its own undo removes it, and the version is free again.
    store.untag(&repo, "1.0.0", &digests[0]).await.unwrap();
    assert_eq!(tagged("1.0.0").await, None);
    store.untag(&repo, "1.0.0", &digests[0]).await.unwrap();
    store.tag(&repo, "1.0.0", &digests[1]).await.unwrap();
    assert_eq!(tagged("1.0.0").await, Some(digests[1].clone()));
}
