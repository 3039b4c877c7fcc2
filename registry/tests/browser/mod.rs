//! A small WebDriver client for the console's tests in a real browser:
//! Debian's `chromedriver` driving its headless `chromium` (nothing is
//! downloaded). The driver records every request the page makes (Chrome's
//! performance log), takes screenshots into `target/console-screenshots/`,
//! and runs axe-core (injected from the npm package) on a page.

use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The key WebDriver uses for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Enter, as WebDriver keys.
pub const ENTER: &str = "\u{E007}";

/// How long a wait for the page goes on before the test fails.
const PATIENCE: Duration = Duration::from_secs(15);

/// One Chromium, driven through one chromedriver.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    requested: std::sync::Mutex<Vec<String>>,
}

/// An element of the page.
pub struct Element {
    id: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> Browser {
        let port = free_port();
        // In a process group of its own, so that the browser it starts
        // ends with it even if the test fails half-way.
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; scripts/test installs it)");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let started = std::time::Instant::now();
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(answer) = ready
                && let Ok(status) = answer.json::<Value>().await
                && status["value"]["ready"] == true
            {
                break;
            }
            assert!(started.elapsed() < PATIENCE, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&json!({ "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1280,1000",
                             "--no-first-run", "--disable-background-networking",
                             "--disable-component-update", "--disable-sync"],
                },
                "goog:loggingPrefs": { "performance": "ALL" },
            }}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {created}"))
            .to_owned();
        Browser {
            driver,
            http,
            session: format!("{base}/session/{session}"),
            requested: Default::default(),
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.unwrap();
        let status = answer.status();
        let body: Value = answer.json().await.unwrap();
        assert!(status.is_success(), "WebDriver {path}: {status} {body}");
        body["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.command(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.command(reqwest::Method::GET, path, None).await
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    /// The address of the page.
    pub async fn url(&self) -> String {
        self.get("/url").await.as_str().unwrap().to_owned()
    }

    /// The first element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        self.wait_for(&format!("document.querySelector({css:?}) !== null"))
            .await;
        let found = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await;
        Element {
            id: found[ELEMENT].as_str().unwrap().to_owned(),
        }
    }

    /// Whether an element matches `css` now.
    pub async fn has(&self, css: &str) -> bool {
        self.execute(
            "return document.querySelector(arguments[0]) !== null",
            json!([css]),
        )
        .await
            == true
    }

    /// The input that the label with text `label` is for.
    pub async fn field(&self, label: &str) -> Element {
        let xpath = format!("//label[normalize-space()='{label}']");
        self.wait_for(&format!(
            "document.evaluate({xpath:?}, document, null, XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue !== null"
        ))
        .await;
        let label = self
            .post("/element", json!({ "using": "xpath", "value": xpath }))
            .await;
        let label = label[ELEMENT].as_str().unwrap();
        let id = self
            .get(&format!("/element/{label}/attribute/for"))
            .await
            .as_str()
            .unwrap()
            .to_owned();
        self.find(&format!("#{id}")).await
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        self.text_of(&element).await
    }

    /// The visible text of `element`.
    pub async fn text_of(&self, element: &Element) -> String {
        self.get(&format!("/element/{}/text", element.id))
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Types `keys` into `element` (WebDriver keys such as [`ENTER`] too).
    pub async fn type_into(&self, element: &Element, keys: &str) {
        self.post(
            &format!("/element/{}/value", element.id),
            json!({ "text": keys }),
        )
        .await;
    }

    /// Empties the input `element`.
    pub async fn clear(&self, element: &Element) {
        self.post(&format!("/element/{}/clear", element.id), json!({}))
            .await;
    }

    /// The button whose text is `text`.
    pub async fn button(&self, text: &str) -> Element {
        let xpath = format!("//button[normalize-space()='{text}']");
        self.wait_for(&format!(
            "document.evaluate({xpath:?}, document, null, XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue !== null"
        ))
        .await;
        let found = self
            .post("/element", json!({ "using": "xpath", "value": xpath }))
            .await;
        Element {
            id: found[ELEMENT].as_str().unwrap().to_owned(),
        }
    }

    /// Clicks `element`.
    pub async fn click(&self, element: &Element) {
        self.post(&format!("/element/{}/click", element.id), json!({}))
            .await;
    }

    /// Chooses `value` in the select `element`, as a user would (a change
    /// event follows).
    pub async fn choose(&self, element: &Element, value: &str) {
        self.post(
            "/execute/sync",
            json!({
                "script": "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('change', {bubbles: true}));",
                "args": [{ ELEMENT: element.id }, value],
            }),
        )
        .await;
    }

    /// Runs `script` (a function body) in the page with `args`.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
            .await
    }

    /// Waits until the JavaScript expression `condition` holds in the page.
    pub async fn wait_for(&self, condition: &str) {
        let started = std::time::Instant::now();
        let script = format!("return Boolean({condition});");
        loop {
            if self.execute(&script, json!([])).await == true {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "waited in vain on {} for: {condition}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the element matching `css` has a text containing `part`.
    pub async fn wait_for_text(&self, css: &str, part: &str) {
        self.wait_for(&format!(
            "(document.querySelector({css:?}) || {{}}).textContent?.includes({part:?})"
        ))
        .await;
    }

    /// Writes a screenshot of the page to `target/console-screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine;
        let png = self.get("/screenshot").await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// The serious and critical accessibility violations axe-core finds
    /// on the page: `rule: what (where)` each.
    pub async fn accessibility_violations(&self) -> Vec<String> {
        let axe = std::fs::read_to_string(warden_test_programs::AXE_CORE_JS).unwrap();
        self.execute(&axe, json!([])).await;
        let found = self
            .post(
                "/execute/async",
                json!({
                    "script": "const done = arguments[arguments.length - 1];\
                        axe.run(document, { resultTypes: ['violations'] })\
                          .then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')\
                            .map(v => v.id + ': ' + v.help + ' (' + v.nodes.map(n => n.target.join(' ')).join(', ') + ')')))\
                          .catch(e => done(['axe failed: ' + e]));",
                    "args": [],
                }),
            )
            .await;
        serde_json::from_value(found).unwrap()
    }

    /// Every address the browser has requested so far (documents,
    /// scripts, styles, images, event streams, fetches), as the driver
    /// recorded them.
    pub async fn requested(&self) -> Vec<String> {
        let entries = self.post("/se/log", json!({ "type": "performance" })).await;
        let mut requested = self.requested.lock().unwrap();
        for entry in entries.as_array().unwrap() {
            let Ok(message) = serde_json::from_str::<Value>(entry["message"].as_str().unwrap())
            else {
                continue;
            };
            if message["message"]["method"] == "Network.requestWillBeSent"
                && let Some(url) = message["message"]["params"]["request"]["url"].as_str()
            {
                requested.push(url.to_owned());
            }
        }
        requested.clone()
    }

    /// Ends the session (and its browser); the driver ends on drop.
    pub async fn quit(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.wait();
    }
}
