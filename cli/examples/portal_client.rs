//! A portal backend's view of Warden, in Rust: list the catalog, read a
//! function's JSON Schema, invoke it, and tell the kinds of failure apart.
//!
//! ```sh
//! cargo run --release -p warden -- demo &
//! WARDEN_URL=http://127.0.0.1:8080 WARDEN_TOKEN=$(cat warden-demo/portal-token) \
//!     cargo run -p warden --example portal_client
//! ```

use serde_json::{Value, json};

/// A failed call: the HTTP status and the API's `{code, message, details}`.
#[derive(Debug)]
struct WardenError {
    status: u16,
    code: String,
    message: String,
    details: Value,
}

struct Warden {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Warden {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WardenError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| WardenError {
            status: 0,
            code: "unreachable".into(),
            message: e.to_string(),
            details: Value::Null,
        })?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let error = &body["error"];
        Err(WardenError {
            status,
            code: error["code"].as_str().unwrap_or("unknown").to_owned(),
            message: error["message"].as_str().unwrap_or("").to_owned(),
            details: error["details"].clone(),
        })
    }

    /// Calls `function` of the newest approved release of `org/plugin`.
    async fn invoke(
        &self,
        org: &str,
        plugin: &str,
        function: &str,
        args: Value,
    ) -> Result<Value, WardenError> {
        let path = format!("/v1/plugins/{org}/{plugin}/invoke/{function}");
        self.call(reqwest::Method::POST, &path, Some(json!({ "args": args })))
            .await
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let warden = Warden {
        base: std::env::var("WARDEN_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into()),
        token: std::env::var("WARDEN_TOKEN").map_err(|_| "set WARDEN_TOKEN to an invoker token")?,
        http: reqwest::Client::new(),
    };
    let org = std::env::var("ORG").unwrap_or_else(|_| "acme".into());
    let failed = |e: WardenError| format!("{e:?}");

    let catalog = warden
        .call(
            reqwest::Method::GET,
            &format!("/v1/orgs/{org}/plugins?limit=100"),
            None,
        )
        .await
        .map_err(failed)?;
    for plugin in catalog["items"].as_array().into_iter().flatten() {
        println!(
            "{:<24} {:<8} {}",
            plugin["name"].as_str().unwrap_or(""),
            plugin["latest_approved"].as_str().unwrap_or("-"),
            plugin["description"].as_str().unwrap_or("")
        );
    }
    let detail = warden
        .call(
            reqwest::Method::GET,
            &format!("/v1/plugins/{org}/text-tools"),
            None,
        )
        .await
        .map_err(failed)?;
    let count = detail["functions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["name"] == "text.count");
    println!(
        "text.count takes {}",
        count
            .map(|f| f["schema"]["params"].to_string())
            .unwrap_or_default()
    );

    let ran = warden
        .invoke(
            &org,
            "text-tools",
            "text.count",
            json!({ "text": "the portal calls plugins" }),
        )
        .await
        .map_err(failed)?;
    println!(
        "result {} from {}@{}, fuel {}",
        ran["result"],
        ran["release"]["name"].as_str().unwrap_or(""),
        ran["release"]["version"].as_str().unwrap_or(""),
        ran["metering"]["fuel_used"]
    );

    match warden
        .invoke(&org, "text-tools", "text.slugify", json!(["!!!", {}]))
        .await
    {
        Err(e) if e.code == "plugin_error" => println!("the plugin said: {}", e.details["error"]),
        Err(e) if e.status == 400 => println!("bad arguments: {}", e.message),
        other => return Err(format!("unexpected: {other:?}").into()),
    }
    Ok(())
}
