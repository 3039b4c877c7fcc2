//! The embedded OCI registry under attack and faults, over real HTTP on
//! loopback: aborted chunks, damaged blobs, racing tags, a full disk, upload
//! sessions past their caps, what a crash left half written.

mod oci_support;

use oci_support::{error, manifest, put_blob, start, tokens};
use reqwest::StatusCode;
use std::net::SocketAddr;
use std::sync::Arc;
use warden_registry::oci::{
    Anonymous, Digest, MANIFEST_V1, OciState, OciStore, StaticTokens, TokenGrant, router,
};
use warden_test_programs::disk::SmallDisk;

/// A PATCH that announces more bytes than it sends, then hangs up.
async fn aborted_patch(address: SocketAddr, path: &str, token: &str, sent: &[u8]) {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(sent).await.unwrap();
    stream.flush().await.unwrap();
    stream.shutdown().await.unwrap();
    drop(stream);
    // Let the server see the end of the body.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
}

#[tokio::test]
async fn an_aborted_chunk_cannot_poison_a_shared_blob() {
    let registry = start(tokens()).await;
    let http = reqwest::Client::new();
    let acme = format!("http://{}/v2/acme/app", registry.address);
    // Every release's manifest references the empty config `{}`.
    let empty = Digest::of(b"{}");
    let pushed = http
        .post(format!("{acme}/blobs/uploads/?digest={empty}"))
        .bearer_auth("acme-publisher")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), StatusCode::CREATED);

    // Another org's publisher starts an upload and aborts a chunk half-way.
    let start = http
        .post(format!(
            "http://{}/v2/globex/x/blobs/uploads/",
            registry.address
        ))
        .bearer_auth("globex-publisher")
        .send()
        .await
        .unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    let id = location.rsplit('/').next().unwrap().to_owned();
    for _ in 0..3 {
        aborted_patch(
            registry.address,
            &location,
            "globex-publisher",
            b"JUNK JUNK JUNK JUNK JUNK JUNK J",
        )
        .await;
    }
    // The session is exactly as before: nothing received, nothing on disk.
    let url = format!("http://{}{location}", registry.address);
    let status = http
        .get(&url)
        .bearer_auth("globex-publisher")
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
    assert_eq!(status.headers()["range"], "0-0");
    let staged = registry._dir.path().join("uploads").join(&id);
    assert_eq!(std::fs::metadata(&staged).unwrap().len(), 0);

    // Finishing it with the digest and body of `{}` stores nothing else.
    let finished = http
        .put(format!("{url}?digest={empty}"))
        .bearer_auth("globex-publisher")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(finished.status(), StatusCode::CREATED);
    for base in [acme, format!("http://{}/v2/globex/x", registry.address)] {
        let token = if base.contains("acme") {
            "acme-publisher"
        } else {
            "globex-publisher"
        };
        let blob = http
            .get(format!("{base}/blobs/{empty}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(blob.bytes().await.unwrap().as_ref(), b"{}");
    }
}

#[tokio::test]
async fn a_blob_stored_damaged_is_replaced_by_verified_content_and_never_otherwise() {
    let registry = start(Arc::new(Anonymous)).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}/v2/acme/data", registry.address);
    let digest = put_blob(&http, &base, b"hello world").await;
    let path = registry._dir.path().join("blobs/sha256").join(digest.hex());
    let inode = |p: &std::path::Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).unwrap().ino()
    };
    // Pushed again intact: the stored file is kept as it is.
    let before = inode(&path);
    put_blob(&http, &base, b"hello world").await;
    assert_eq!(inode(&path), before);
    // What a full disk left under an older version: an empty file under a
    // real digest. The next push of that content repairs it.
    std::fs::write(&path, b"").unwrap();
    put_blob(&http, &base, b"hello world").await;
    assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
}

#[tokio::test]
async fn concurrent_creates_of_one_tag_have_one_winner() {
    let registry = start(Arc::new(Anonymous)).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}/v2/acme/app", registry.address);
    let config = put_blob(&http, &base, b"{}").await;
    let mut manifests = Vec::new();
    for layer in [
        b"one".as_slice(),
        b"two",
        b"three",
        b"four",
        b"five",
        b"six",
    ] {
        let leaked: &'static [u8] = Box::leak(layer.to_vec().into_boxed_slice());
        let digest = put_blob(&http, &base, leaked).await;
        manifests.push(manifest(&config, 2, &digest, layer.len(), None).to_string());
    }
    let puts = manifests.iter().map(|body| {
        http.put(format!("{base}/manifests/1.0.0"))
            .header("content-type", MANIFEST_V1)
            .body(body.clone())
            .send()
    });
    let answers = futures_util::future::join_all(puts).await;
    let created = answers
        .iter()
        .filter(|a| a.as_ref().unwrap().status() == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "exactly one of the concurrent creates wins");
    let tag =
        std::fs::read_to_string(registry._dir.path().join("repos/acme+app/tags/1.0.0")).unwrap();
    let winner = manifests
        .iter()
        .zip(&answers)
        .find(|(_, a)| a.as_ref().unwrap().status() == StatusCode::CREATED)
        .map(|(m, _)| Digest::of(m.as_bytes()).to_string())
        .unwrap();
    assert_eq!(tag.trim(), winner);
}

#[tokio::test]
async fn a_full_disk_is_reported_and_leaves_nothing_behind() {
    let Some(disk) = SmallDisk::mount("1m") else {
        return;
    };
    let root = disk.dir.path().join("oci");
    let store = Arc::new(OciStore::open(&root, 64 << 20).await.unwrap());
    let app = router(OciState {
        store: store.clone(),
        access: Arc::new(Anonymous),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();
    let base = format!("http://{address}/v2/acme/app");

    // Most of the disk taken by something else.
    let filler = disk.dir.path().join("filler");
    std::fs::write(&filler, vec![0u8; 800 << 10]).unwrap();
    let component: Vec<u8> = (0..400u32 << 10).map(|i| (i % 251) as u8).collect();
    let digest = Digest::of(&component);
    let refused = http
        .post(format!("{base}/blobs/uploads/?digest={digest}"))
        .body(component.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert!(store.is_full());
    // Nothing under the digest, no partial upload, no staging file.
    assert!(!root.join("blobs/sha256").join(digest.hex()).exists());
    for dir in ["uploads", "tmp"] {
        assert_eq!(
            std::fs::read_dir(root.join(dir)).unwrap().count(),
            0,
            "{dir} is not empty"
        );
    }
    let missing = http
        .head(format!("{base}/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // A chunked upload whose chunk found the disk full is closed at once:
    // it holds none of the client's sessions (16 such failures used to
    // leave the publisher refused for 15 minutes).
    let started = http
        .post(format!("{base}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let session = format!("http://{address}{location}");
    let chunk = http
        .patch(&session)
        .header("Content-Range", format!("0-{}", component.len() - 1))
        .body(component.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(chunk.status(), StatusCode::INSUFFICIENT_STORAGE);
    let gone = http.get(&session).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert_eq!(std::fs::read_dir(root.join("uploads")).unwrap().count(), 0);
    // Still full: a readiness check says so.
    assert!(!store.space_is_back().await);
    assert!(store.is_full());

    // Space returns: a readiness check sees it without any write of a
    // client's (behind a balancer that routes by /readyz, none may come) ...
    std::fs::remove_file(&filler).unwrap();
    assert!(store.space_is_back().await);
    assert!(!store.is_full());
    // ... and the same push succeeds, byte for byte.
    let stored = http
        .post(format!("{base}/blobs/uploads/?digest={digest}"))
        .body(component.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), StatusCode::CREATED);
    assert!(!store.is_full());
    let read = http
        .get(format!("{base}/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.bytes().await.unwrap().as_ref(), component.as_slice());
}

#[tokio::test]
async fn upload_sessions_are_capped_per_client_and_org_and_expire_when_idle() {
    use warden_registry::oci::{MAX_UPLOADS_PER_CLIENT, MAX_UPLOADS_PER_ORG};
    let dir = tempfile::tempdir().unwrap();
    let store = OciStore::open(dir.path(), 64 << 20)
        .await
        .unwrap()
        .with_upload_idle(std::time::Duration::from_millis(700));
    let mut access = StaticTokens::new().with(
        "globex-1",
        TokenGrant {
            org: "globex".into(),
            push: true,
        },
    );
    for n in 0..5 {
        access = access.with(
            &format!("acme-{n}"),
            TokenGrant {
                org: "acme".into(),
                push: true,
            },
        );
    }
    let app = router(OciState {
        store: Arc::new(store),
        access: Arc::new(access),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();
    let start = |token: String| {
        let http = http.clone();
        let org = token.split('-').next().unwrap().to_owned();
        async move {
            http.post(format!("http://{address}/v2/{org}/app/blobs/uploads/"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    // One client: its share, then 429.
    let mut open = Vec::new();
    for _ in 0..MAX_UPLOADS_PER_CLIENT {
        let started = start("acme-0".into()).await;
        assert_eq!(started.status(), StatusCode::ACCEPTED);
        open.push(started.headers()["location"].to_str().unwrap().to_owned());
    }
    assert_eq!(
        error(start("acme-0".into()).await).await,
        (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS".into())
    );
    // Other clients of the org, up to the org's cap.
    let mut client = 1;
    while open.len() < MAX_UPLOADS_PER_ORG {
        let started = start(format!("acme-{client}")).await;
        if started.status() == StatusCode::TOO_MANY_REQUESTS {
            client += 1;
            continue;
        }
        assert_eq!(started.status(), StatusCode::ACCEPTED);
        open.push(started.headers()["location"].to_str().unwrap().to_owned());
    }
    assert_eq!(
        error(start("acme-4".into()).await).await,
        (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS".into())
    );
    // Another org is not affected.
    assert_eq!(
        start("globex-1".into()).await.status(),
        StatusCode::ACCEPTED
    );
    // Cancelling one makes room for one.
    let cancelled = http
        .delete(format!("http://{address}{}", open[0]))
        .bearer_auth("acme-0")
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), StatusCode::NO_CONTENT);
    assert_eq!(start("acme-0".into()).await.status(), StatusCode::ACCEPTED);
    // Idle sessions are discarded, with their files.
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    assert_eq!(start("acme-0".into()).await.status(), StatusCode::ACCEPTED);
    let gone = http
        .get(format!("http://{address}{}", open[1]))
        .bearer_auth("acme-0")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let files = std::fs::read_dir(dir.path().join("uploads"))
        .unwrap()
        .count();
    assert!(files <= 2, "{files} upload files left");
}

#[tokio::test]
async fn what_a_crash_left_is_cleared_and_what_is_under_way_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = OciStore::open(dir.path(), 1 << 20)
        .await
        .unwrap()
        .with_upload_idle(std::time::Duration::from_secs(60));
    let repo: warden_registry::oci::RepositoryName = "acme/app".parse().unwrap();
    // An upload session a killed process left open.
    let id = store.start_upload(&repo, "client").await.unwrap();
    let sent = store
        .append(
            &repo,
            &id,
            Some(0),
            futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(
                b"half of it",
            ))]),
        )
        .await
        .unwrap();
    drop(store);
    // Staging files: one a crash left long ago, one a replica sharing the
    // store is writing now.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::write(dir.path().join("tmp/0123"), b"half").unwrap();
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("tmp/0123"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::fs::write(dir.path().join("tmp/4567"), b"being written").unwrap();
    let store = OciStore::open(dir.path(), 1 << 20)
        .await
        .unwrap()
        .with_upload_idle(std::time::Duration::from_secs(60));
    assert!(
        !dir.path().join("tmp/0123").exists(),
        "a crash's staging file"
    );
    assert!(dir.path().join("tmp/4567").exists(), "a write under way");
    // The session survived the restart and finishes whole.
    assert_eq!(store.upload_size(&repo, &id).await.unwrap(), sent);
    store
        .append(
            &repo,
            &id,
            Some(sent),
            futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(
                b", then the rest",
            ))]),
        )
        .await
        .unwrap();
    let whole = Digest::of(b"half of it, then the rest");
    store.finish_upload(&repo, &id, &whole).await.unwrap();
    assert_eq!(
        store.read_blob(&repo, &whole).await.unwrap(),
        b"half of it, then the rest"
    );
    // A session idle past its time, left by a crash, goes at the next start.
    let idle = store.start_upload(&repo, "client").await.unwrap();
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("uploads").join(&idle))
        .unwrap()
        .set_modified(old)
        .unwrap();
    store.start_upload(&repo, "client").await.unwrap();
    assert!(store.upload_size(&repo, &idle).await.is_err());
    assert!(!dir.path().join("uploads").join(&idle).exists());
    // An upload id is never a path to another file.
    for id in ["..", "../uploads.lock", &format!("{id}.session")] {
        assert!(store.upload_size(&repo, id).await.is_err());
    }
}
