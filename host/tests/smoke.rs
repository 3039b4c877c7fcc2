mod common;

use serde_json::json;
use warden_host::Limits;

#[tokio::test]
async fn hello_greets() {
    let plugin = common::plugin(warden_test_programs::HELLO, &[], Limits::default());
    assert_eq!(
        common::value(&plugin, "greet", json!("world")).await,
        json!("Hello, world!")
    );
}
