//! The ceiling of the HTTP invoke path: a bare axum server on the same tokio
//! runtime settings as `warden serve`, answering
//! `POST /v1/plugins/{org}/{name}/invoke/{function}` with the JSON body an
//! invocation of the demo's `hello.greet` returns, after parsing the request
//! body as JSON like the real handler does. No token, no sandbox, no
//! database: what the machine and the HTTP stack can do at best.
//!
//! `ceiling [ADDR]` (default 127.0.0.1:18081); see `benches/load/compare.sh`.

use axum::Json;
use axum::extract::Path;
use axum::routing::post;
use serde_json::{Value, json};

async fn invoke(
    Path((org, name, _function)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let who = body
        .get("args")
        .and_then(Value::as_str)
        .unwrap_or("world")
        .to_owned();
    Json(json!({
        "result": format!("Hello, {who}!"),
        "release": {
            "name": format!("{org}/{name}"),
            "version": "1.0.0",
            "digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        },
        "metering": { "fuel_used": 1663, "duration_us": 20 },
        "logs": [],
    }))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".to_owned());
    let app = axum::Router::new().route("/v1/plugins/{org}/{name}/invoke/{function}", post(invoke));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("ceiling listening on http://{addr}");
    axum::serve(listener, app).await
}
