//! Slow and greedy clients: a connection that never finishes its headers is
//! closed, a body that never arrives gets 408, and connections past the
//! limit wait to be accepted instead of piling up.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warden_registry::{ConnectionLimits, ControlPlane, ServerConfig, serve_with};

async fn server(limits: ConnectionLimits) -> (std::net::SocketAddr, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let plane = ControlPlane::open(&ServerConfig::new(dir.path().join("data")))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let admin = plane.bootstrap_token.clone().unwrap();
    tokio::spawn(serve_with(listener, plane.router(), limits));
    (address, dir, admin)
}

/// Reads until the server closes the connection (or `within` passes);
/// returns what it sent and whether it closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&received).into(), true),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => return (String::from_utf8_lossy(&received).into(), false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_let_go() {
    let limits = ConnectionLimits {
        header_timeout: Duration::from_millis(500),
        ..ConnectionLimits::default()
    };
    let (address, _dir, _) = server(limits).await;
    let mut slow = TcpStream::connect(address).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(closed, "the connection is held open");
    // Within the time, a request is served as usual.
    let mut quick = TcpStream::connect(address).await.unwrap();
    quick
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_until_closed(&mut quick, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_nothing_gives_its_slot_back() {
    let limits = ConnectionLimits {
        header_timeout: Duration::from_millis(500),
        max_connections: 2,
        ..ConnectionLimits::default()
    };
    let (address, _dir, _) = server(limits).await;
    // Every slot taken by connections that send nothing, not even the first
    // bytes of a protocol preface.
    let mut silent_a = TcpStream::connect(address).await.unwrap();
    let mut silent_b = TcpStream::connect(address).await.unwrap();
    for silent in [&mut silent_a, &mut silent_b] {
        let (_, closed) = read_until_closed(silent, Duration::from_secs(5)).await;
        assert!(closed, "a silent connection is held open");
    }
    // The slots are free again.
    let mut quick = TcpStream::connect(address).await.unwrap();
    quick
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_until_closed(&mut quick, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_gets_408() {
    let limits = ConnectionLimits {
        body_timeout: Duration::from_millis(500),
        ..ConnectionLimits::default()
    };
    let (address, _dir, admin) = server(limits).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /v1/orgs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"na"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_wait_to_be_accepted() {
    let limits = ConnectionLimits {
        max_connections: 2,
        header_timeout: Duration::from_secs(30),
        ..ConnectionLimits::default()
    };
    let (address, _dir, _) = server(limits).await;
    let idle_a = TcpStream::connect(address).await.unwrap();
    let idle_b = TcpStream::connect(address).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let health = format!("http://{address}/healthz");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    assert!(
        client.get(&health).send().await.is_err(),
        "a third connection was served while two were open"
    );
    drop(idle_a);
    drop(idle_b);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = client.get(&health).send().await.unwrap();
    assert_eq!(answer.status(), 200);
}
