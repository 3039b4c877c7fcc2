//! Slow and greedy clients: a connection that never finishes its headers is
//! closed, a body that never arrives (or trickles past its deadline) gets
//! 408, a body is read only once its caller is authorized, one client may
//! be sending only its share of bodies, and connections past the limit
//! wait to be accepted instead of piling up.

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
    let mut stream = start_body(address, "/v1/orgs", &admin, "{\"na").await;
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

/// `GET /healthz`, answered within `within`.
async fn healthz(
    address: std::net::SocketAddr,
    within: Duration,
) -> reqwest::Result<reqwest::StatusCode> {
    let client = reqwest::Client::builder().timeout(within).build()?;
    let answer = client
        .get(format!("http://{address}/healthz"))
        .send()
        .await?;
    Ok(answer.status())
}

/// A new token of acme named `name` with `role`, created with `admin`.
async fn token(address: std::net::SocketAddr, admin: &str, name: &str, role: &str) -> String {
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("http://{address}/v1/orgs/acme/tokens"))
        .bearer_auth(admin)
        .json(&serde_json::json!({ "name": name, "role": role }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["secret"].as_str().unwrap().to_owned()
}

/// Sends the head of a POST with a 1,000-byte body and `first` of it.
async fn start_body(
    address: std::net::SocketAddr,
    path: &str,
    token: &str,
    first: &str,
) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{first}"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_keeps_trickling_meets_its_deadline() {
    // A byte every 200 ms never pauses for the 1 s body timeout; the
    // deadline still ends it.
    let limits = ConnectionLimits {
        body_timeout: Duration::from_secs(1),
        body_deadline: Duration::from_millis(1500),
        ..ConnectionLimits::default()
    };
    let (address, _dir, admin) = server(limits).await;
    let mut stream = start_body(address, "/v1/orgs", &admin, "{\"name\": \"").await;
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    while started.elapsed() < Duration::from_secs(8) {
        if stream.write_all(b"a").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buffer[..n]);
                break;
            }
            Err(_) => {}
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "{answer:?} after {:?}",
        started.elapsed()
    );
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_without_the_right_is_refused_before_its_body_is_read() {
    let limits = ConnectionLimits {
        body_timeout: Duration::from_secs(30),
        ..ConnectionLimits::default()
    };
    let (address, _dir, admin) = server(limits).await;
    let viewer = &token(address, &admin, "viewer", "viewer").await;
    // Half a body that would take 30 s to time out: the role decides first.
    for path in [
        "/v1/orgs/acme/tokens",
        "/v1/plugins/acme/hello/invoke/greet",
        "/v1/orgs",
    ] {
        let mut stream = start_body(address, path, viewer, "{\"na").await;
        let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(3)).await;
        assert!(answer.starts_with("HTTP/1.1 403"), "{path}: {answer:?}");
    }
    // And no token at all: 401 at once.
    let mut stream = start_body(address, "/v1/orgs/acme/tokens", "not-a-token", "{").await;
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_hold_every_connection_with_slow_bodies() {
    // 8 connections: one token may be sending 2 bodies at once.
    let limits = ConnectionLimits {
        max_connections: 8,
        body_timeout: Duration::from_secs(30),
        body_deadline: Duration::from_secs(30),
        ..ConnectionLimits::default()
    };
    assert_eq!(limits.bodies_per_client(), 2);
    let (address, _dir, admin) = server(limits).await;
    let mut slow = Vec::with_capacity(8);
    for _ in 0..8 {
        slow.push(start_body(address, "/v1/orgs", &admin, "{\"name\": \"").await);
    }
    // Which two are held depends on the order the server read them in.
    let mut held = Vec::new();
    for mut stream in slow {
        let (answer, closed) = read_until_closed(&mut stream, Duration::from_millis(700)).await;
        if answer.is_empty() && !closed {
            held.push(stream);
        } else {
            assert!(answer.starts_with("HTTP/1.1 429"), "{answer:?}");
            assert!(answer.contains("too_many_bodies"), "{answer}");
            assert!(closed, "a refused body's connection is closed");
        }
    }
    assert_eq!(held.len(), 2, "the token holds exactly its share");
    // Everyone else is still served.
    assert_eq!(healthz(address, Duration::from_secs(3)).await.unwrap(), 200);
    // Once a held body arrives, the token may send another.
    let body = format!("{:<width$}", "x\"}", width = 1000 - "{\"name\": \"".len());
    let mut first = held.remove(0);
    first.write_all(body.as_bytes()).await.unwrap();
    let (answer, _) = read_until_closed(&mut first, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer:?}");
    let mut again = start_body(address, "/v1/orgs", &admin, "{").await;
    let (answer, closed) = read_until_closed(&mut again, Duration::from_millis(700)).await;
    assert!(answer.is_empty() && !closed, "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_answers_is_let_go() {
    // One connection in all: a client pipelining requests without reading
    // the answers would hold it forever.
    let limits = ConnectionLimits {
        max_connections: 1,
        write_timeout: Duration::from_millis(800),
        ..ConnectionLimits::default()
    };
    let (address, _dir, _) = server(limits).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut greedy = socket.connect(address).await.unwrap();
    let request = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200);
    // Written while the server still reads; what it cannot write back stays.
    let _ = tokio::time::timeout(Duration::from_secs(3), greedy.write_all(&request)).await;
    let health = healthz(address, Duration::from_secs(5))
        .await
        .expect("the slot was freed once the answers stalled");
    assert_eq!(health, 200);
    drop(greedy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_cannot_hold_every_connection_with_many_tokens() {
    // 12 connections: one token, and one organization whatever its tokens,
    // may be sending 3 bodies at once.
    let limits = ConnectionLimits {
        max_connections: 12,
        body_timeout: Duration::from_secs(30),
        body_deadline: Duration::from_secs(30),
        ..ConnectionLimits::default()
    };
    let (address, _dir, admin) = server(limits).await;
    // The org's admin mints more admin tokens: 3 x 3 slow bodies would
    // take 9 of the 12 connections.
    let mut tokens = vec![admin.clone()];
    for name in ["more-0", "more-1"] {
        tokens.push(token(address, &admin, name, "admin").await);
    }
    let mut slow = Vec::new();
    for token in &tokens {
        for _ in 0..3 {
            slow.push(start_body(address, "/v1/orgs/acme/tokens", token, "{\"name\": \"").await);
        }
    }
    let mut held = 0;
    for mut stream in slow {
        let (answer, closed) = read_until_closed(&mut stream, Duration::from_millis(500)).await;
        if answer.is_empty() && !closed {
            held += 1;
        } else {
            assert!(answer.starts_with("HTTP/1.1 429"), "{answer:?}");
            assert!(answer.contains("organization"), "{answer}");
        }
    }
    assert_eq!(held, 3, "the org holds exactly its share");
}
