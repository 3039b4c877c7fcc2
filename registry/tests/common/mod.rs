//! A real control plane on loopback, on SQLite or PostgreSQL, and a publisher
//! that speaks the same protocol as `warden publish`.
#![allow(dead_code)]

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use warden_host::{
    ComponentRef, Envelope, Limits, PrivateKey, RELEASE_PAYLOAD_TYPE, ReleaseStatement,
};
use warden_registry::oci::Digest;
use warden_registry::{
    ControlPlane, Credentials, Db, RegistryEndpoint, RepositoryName, ServerConfig, WasmArtifact,
    push_artifact,
};

/// Runs a test body once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(backend) = $crate::common::Backend::postgres().await {
                    super::$name(backend).await;
                }
            }
        }
    };
}

/// Which database a test runs on.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

/// The server admin URL PostgreSQL tests create their databases through.
pub fn postgres_admin_url() -> String {
    warden_test_programs::postgres::admin_url()
}

impl Backend {
    /// A fresh PostgreSQL database for one test, on WARDEN_TEST_POSTGRES_URL or
    /// on a throwaway server this test process starts. `None` only when
    /// WARDEN_TEST_POSTGRES=skip; otherwise an unreachable server fails the test.
    pub async fn postgres() -> Option<Backend> {
        if std::env::var("WARDEN_TEST_POSTGRES").as_deref() == Ok("skip") {
            eprintln!("WARDEN_TEST_POSTGRES=skip: not running the PostgreSQL variant");
            return None;
        }
        let admin = postgres_admin_url();
        sqlx::any::install_default_drivers();
        let mut connection = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is not reachable at {admin}: {e}. Unset WARDEN_TEST_POSTGRES_URL \
                     to have the tests start their own server, or set \
                     WARDEN_TEST_POSTGRES=skip to skip these tests"
                )
            });
        let name = format!("warden_test_{}", hex::encode(rand::random::<[u8; 6]>()));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut connection)
            .await
            .expect("CREATE DATABASE");
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
        Some(Backend::Postgres(format!("{base}/{name}")))
    }
}

pub struct Harness {
    /// Where artifacts are pushed: the server's own `/v2/`, or an external registry.
    pub push_base: String,
    /// Admin keys pinned in the server's runtime configuration (not yet
    /// registered in the database: `key()`-like registration is up to the test).
    pub pinned: Vec<PrivateKey>,
    pub url: String,
    pub admin: String,
    pub db: Db,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

pub async fn start(backend: Backend) -> Harness {
    start_with(backend, 1).await
}

pub async fn start_with(backend: Backend, approvals: u32) -> Harness {
    start_configured(backend, approvals, None).await
}

/// A server whose runtime (and publish checks) use `external` as the registry.
pub async fn start_configured(
    backend: Backend,
    approvals: u32,
    external: Option<RegistryEndpoint>,
) -> Harness {
    start_tweaked(backend, |config| {
        config.approvals_required = approvals;
        config.external_registry = external;
    })
    .await
}

/// A server with its configuration changed by `tweak`.
pub async fn start_tweaked(backend: Backend, tweak: impl FnOnce(&mut ServerConfig)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let pinned = vec![PrivateKey::generate(), PrivateKey::generate()];
    let mut config = ServerConfig::new(dir.path().join("data"));
    config.admin_keys = pinned.iter().map(PrivateKey::public_key).collect();
    tweak(&mut config);
    let external = config.external_registry.clone();
    if let Backend::Postgres(url) = &backend {
        config.database_url = Some(url.clone());
    }
    let plane = ControlPlane::open(&config).await.unwrap();
    let admin = plane
        .bootstrap_token
        .clone()
        .expect("first start bootstraps");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = plane.router();
    tokio::spawn(async move { warden_registry::serve(listener, router).await.unwrap() });
    let push_base = match &external {
        Some(source) => format!("http://{}", source.registry),
        None => url.clone(),
    };
    Harness {
        push_base,
        pinned,
        url,
        admin,
        db: plane.db().clone(),
        http: reqwest::Client::new(),
        dir,
    }
}

/// One HTTP answer: status and JSON body (Null if none or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    /// The `error.code` of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected answer: {}",
            self.body
        );
        self.body
    }

    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status.as_u16(), self.code()),
            (status, code),
            "unexpected answer: {}",
            self.body
        );
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
}

impl Harness {
    pub async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let bytes = response.bytes().await.unwrap();
        Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// Creates organization `name` with the operator admin token and
    /// returns its first admin token.
    pub async fn create_org(&self, name: &str) -> String {
        let created = self
            .post(&self.admin, "/v1/orgs", json!({ "name": name }))
            .await
            .expect(201);
        created["admin_token"]["secret"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The text of `/metrics`, read with `token`.
    pub async fn metrics(&self, token: &str) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn get(&self, token: &str, path: &str) -> Answer {
        self.call(token, Method::GET, path, None).await
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> Answer {
        self.call(token, Method::POST, path, Some(body)).await
    }

    /// A new token of `role` in the admin's org.
    pub async fn token(&self, admin: &str, org: &str, role: &str) -> String {
        let created = self
            .post(
                admin,
                &format!("/v1/orgs/{org}/tokens"),
                json!({ "name": role, "role": role }),
            )
            .await
            .expect(201);
        created["secret"].as_str().unwrap().to_owned()
    }

    /// A new key registered in `org` as `kind` for `owner`.
    pub async fn key(&self, admin: &str, org: &str, kind: &str, owner: &str) -> PrivateKey {
        let key = PrivateKey::generate();
        self.post(
            admin,
            &format!("/v1/orgs/{org}/keys"),
            json!({ "public_key": key.public_key().to_string(), "kind": kind, "owner": owner }),
        )
        .await
        .expect(201);
        key
    }

    /// Registers pinned admin key `index` in `org` for `owner`.
    pub async fn pinned_key(&self, index: usize, org: &str, owner: &str) -> PrivateKey {
        let key = PrivateKey::from_pem(&self.pinned[index].to_pem()).unwrap();
        self.post(
            &self.admin,
            &format!("/v1/orgs/{org}/keys"),
            json!({ "public_key": key.public_key().to_string(), "kind": "admin", "owner": owner }),
        )
        .await
        .expect(201);
        key
    }

    /// Pushes one blob monolithically.
    pub async fn push_blob(&self, token: &str, repo: &str, bytes: &[u8]) -> String {
        let digest = Digest::of(bytes).to_string();
        let started = self
            .http
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.push_base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            started.status(),
            StatusCode::ACCEPTED,
            "{:?}",
            started.text().await
        );
        let location = started.headers()["location"].to_str().unwrap().to_owned();
        let separator = if location.contains('?') { '&' } else { '?' };
        let location = match location.find("/v2/") {
            Some(start) => format!("{}{}", self.push_base, &location[start..]),
            None => location,
        };
        let done = self
            .http
            .put(format!("{location}{separator}digest={digest}"))
            .bearer_auth(token)
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            done.status(),
            StatusCode::CREATED,
            "{:?}",
            done.text().await
        );
        digest
    }

    /// Pushes the Wasm artifact of `layer` (built and pushed as `warden
    /// publish` does); returns the manifest digest.
    pub async fn push_artifact(&self, token: &str, repo: &str, layer: &[u8]) -> String {
        let artifact = WasmArtifact::new(layer.to_vec(), &[], &[]);
        let endpoint =
            RegistryEndpoint::from_url(&self.push_base, Credentials::Bearer(token.to_owned()))
                .unwrap();
        let repository: RepositoryName = repo.parse().unwrap();
        push_artifact(&endpoint, &repository, &artifact, Arc::new(|_| {}))
            .await
            .unwrap()
            .to_string()
    }

    /// Pushes `component` and registers it as `repo@version`, signed by `key`.
    pub async fn publish(
        &self,
        token: &str,
        key: &PrivateKey,
        repo: &str,
        version: &str,
        component: &[u8],
        capabilities: &[&str],
    ) -> Answer {
        let statement = statement(key, repo, version, component, capabilities);
        let envelope = key.sign(RELEASE_PAYLOAD_TYPE, &statement).unwrap();
        self.publish_envelope(token, repo, component, &envelope)
            .await
    }

    pub async fn publish_envelope(
        &self,
        token: &str,
        repo: &str,
        component: &[u8],
        envelope: &Envelope,
    ) -> Answer {
        let manifest_digest = self.push_artifact(token, repo, component).await;
        self.post(
            token,
            &format!("/v1/plugins/{repo}/releases"),
            json!({ "envelope": envelope, "manifest_digest": manifest_digest }),
        )
        .await
    }

    /// Signs an approval of `release` (as shown by the API) granting `capabilities`.
    pub fn approval(&self, key: &PrivateKey, release: &Value, capabilities: &[&str]) -> Envelope {
        approval(key, release, capabilities, Limits::default())
    }

    /// The number of audit entries of `org` for changes made through the
    /// `/v1` API (artifact pushes to `/v2`, which the tests make before each
    /// publish, are recorded too but not counted here).
    pub async fn audit_len(&self, org: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM audit WHERE org = $1 AND action <> 'oci.manifest.put'",
        )
        .bind(org)
        .fetch_one(self.db.pool())
        .await
        .unwrap();
        n
    }
}

/// A release statement for `component`.
pub fn statement(
    key: &PrivateKey,
    repo: &str,
    version: &str,
    component: &[u8],
    capabilities: &[&str],
) -> ReleaseStatement {
    ReleaseStatement {
        name: repo.to_owned(),
        version: version.to_owned(),
        description: format!("{repo} for tests"),
        component: ComponentRef {
            digest: Digest::of(component),
            size: component.len() as u64,
        },
        capabilities: capabilities.iter().map(|s| s.to_string()).collect(),
        limits: Limits::default(),
        dependencies: BTreeMap::new(),
        publisher_key: key.public_key().key_id(),
    }
}

/// Signs an approval of `release` (as shown by the API) granting `capabilities` and `limits`.
pub fn approval(
    key: &PrivateKey,
    release: &Value,
    capabilities: &[&str],
    limits: Limits,
) -> Envelope {
    let statement = warden_host::ApprovalStatement {
        release: format!(
            "{}@{}",
            release["name"].as_str().unwrap(),
            release["version"].as_str().unwrap()
        ),
        release_statement: release["statement_digest"].as_str().unwrap().to_owned(),
        capabilities: capabilities.iter().map(|s| s.to_string()).collect(),
        limits,
    };
    key.sign(warden_host::APPROVAL_PAYLOAD_TYPE, &statement)
        .unwrap()
}

/// A server with a publisher token, a publisher key (alice) and an admin key (bob).
pub struct Org {
    pub h: Harness,
    pub publisher: String,
    pub alice: PrivateKey,
    pub bob: PrivateKey,
}

impl Org {
    /// Publishes the guest `component` (a path) as `repo@version`, signed
    /// by `key`, requesting `capabilities` and declaring `dependencies`.
    pub async fn publish_declaring(
        &self,
        key: &PrivateKey,
        repo: &str,
        version: &str,
        component: &str,
        capabilities: &[&str],
        dependencies: &[(&str, &str)],
    ) -> Answer {
        let component = warden_test_programs::read(component);
        let mut statement = statement(key, repo, version, &component, capabilities);
        statement.dependencies = dependencies
            .iter()
            .map(|(name, requirement)| (name.to_string(), requirement.to_string()))
            .collect();
        let envelope = key.sign(RELEASE_PAYLOAD_TYPE, &statement).unwrap();
        self.h
            .publish_envelope(&self.publisher, repo, &component, &envelope)
            .await
    }

    /// Approves `release` (as the API shows it) with bob's key, granting
    /// `grants` and `limits`.
    pub async fn approve(&self, release: &Value, grants: &[&str], limits: Limits) {
        self.h
            .post(
                &self.h.admin,
                &format!(
                    "/v1/plugins/{}/releases/{}/approve",
                    release["name"].as_str().unwrap(),
                    release["version"].as_str().unwrap()
                ),
                approval_body(&self.bob, release, grants, limits),
            )
            .await
            .expect(200);
    }

    /// Yanks `repo@version`.
    pub async fn yank(&self, repo: &str, version: &str) {
        self.h
            .post(
                &self.h.admin,
                &format!("/v1/plugins/{repo}/releases/{version}/yank"),
                json!({ "reason": "broken" }),
            )
            .await
            .expect(200);
    }
}

/// `name@version` of each entry of a list of releases (a resolution's
/// `releases`, an invocation's `dependencies`).
pub fn name_versions(releases: &Value) -> Vec<String> {
    releases
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}@{}",
                r["name"].as_str().unwrap(),
                r["version"].as_str().unwrap()
            )
        })
        .collect()
}

pub async fn org(backend: Backend, approvals: u32) -> Org {
    org_on(start_with(backend, approvals).await).await
}

/// [`org`] on a server already started (e.g. with [`start_tweaked`]).
pub async fn org_on(h: Harness) -> Org {
    let publisher = h.token(&h.admin, "acme", "publisher").await;
    let alice = h.key(&h.admin, "acme", "publisher", "alice").await;
    let bob = h.pinned_key(0, "acme", "bob").await;
    Org {
        h,
        publisher,
        alice,
        bob,
    }
}

pub struct World {
    pub h: Harness,
    pub publisher: String,
    pub invoker: String,
    pub alice: PrivateKey,
    pub bob: PrivateKey,
}

pub async fn world(backend: Backend) -> World {
    let Org {
        h,
        publisher,
        alice,
        bob,
    } = org(backend, 1).await;
    let invoker = h.token(&h.admin, "acme", "invoker").await;
    World {
        h,
        publisher,
        invoker,
        alice,
        bob,
    }
}

/// The body of an approve request.
pub fn approval_body(
    key: &PrivateKey,
    release: &Value,
    capabilities: &[&str],
    limits: Limits,
) -> Value {
    json!({ "envelope": approval(key, release, capabilities, limits) })
}

impl World {
    /// Publishes and approves `component` as `acme/<name>@<version>`.
    pub async fn release(
        &self,
        name: &str,
        version: &str,
        component: &[u8],
        capabilities: &[&str],
        limits: Limits,
    ) -> Value {
        let repo = format!("acme/{name}");
        let release = self
            .h
            .publish(
                &self.publisher,
                &self.alice,
                &repo,
                version,
                component,
                capabilities,
            )
            .await
            .expect(201);
        self.h
            .post(
                &self.h.admin,
                &format!("/v1/plugins/{repo}/releases/{version}/approve"),
                approval_body(&self.bob, &release, capabilities, limits),
            )
            .await
            .expect(200)
    }

    pub async fn invoke(&self, token: &str, name: &str, function: &str, body: Value) -> Answer {
        self.h
            .post(
                token,
                &format!("/v1/plugins/acme/{name}/invoke/{function}"),
                body,
            )
            .await
    }
}

/// Every file under `dir`, recursively.
pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Signs `token` in and returns the session cookie (`name=value`).
pub async fn console_session(client: &reqwest::Client, base: &str, token: &str) -> String {
    let answer = client
        .post(format!("{base}/console/sign-in"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    answer.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}
