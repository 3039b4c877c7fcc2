//! The example plugins do what their READMEs say.

mod common;

use common::{plugin, value};
use serde_json::json;
use warden_host::{Limits, Output};

#[tokio::test]
async fn counter_state_survives_between_invocations() {
    let counter = plugin(warden_test_programs::COUNTER, &["kv"], Limits::default());
    assert_eq!(value(&counter, "get", json!(["visits"])).await, json!(null));
    assert_eq!(
        value(&counter, "increment", json!(["visits", 2])).await,
        json!(2)
    );
    assert_eq!(
        value(&counter, "increment", json!({"name": "visits", "by": 40})).await,
        json!(42)
    );
    assert_eq!(
        value(&counter, "increment", json!(["other", -1])).await,
        json!(-1)
    );
    assert_eq!(
        value(&counter, "list-counters", json!([""])).await,
        json!([["other", -1], ["visits", 42]])
    );
    assert_eq!(
        value(&counter, "reset", json!(["visits"])).await,
        json!(true)
    );
    assert_eq!(value(&counter, "get", json!(["visits"])).await, json!(null));
    let overflow = counter
        .invoke("increment", &json!(["other", i64::MIN]))
        .await
        .unwrap();
    assert_eq!(
        overflow.output,
        Output::PluginError(json!("counter \"other\" would overflow"))
    );
}

#[tokio::test]
async fn text_tools_cover_records_variants_enums_flags_and_results() {
    let text = plugin(warden_test_programs::TEXT_TOOLS, &[], Limits::default());
    assert_eq!(
        value(
            &text,
            "text.convert-case",
            json!(["Hello big World", "snake"])
        )
        .await,
        json!("hello_big_world")
    );
    assert_eq!(
        value(&text, "text.count", json!({"text": "one two\nthree"})).await,
        json!({"words": 3, "lines": 2, "chars": 13, "bytes": 13, "longest-word": "three"})
    );
    assert_eq!(
        value(&text, "text.tokenize", json!(["Hi, 42!"])).await,
        json!([{"word": "Hi"}, {"punctuation": ","}, {"whitespace": 1}, {"number": 42.0}, {"punctuation": "!"}])
    );
    assert_eq!(
        value(
            &text,
            "text.slugify",
            json!(["Hello, World! Again", {"max-length": 11}])
        )
        .await,
        json!("hello-world")
    );
    assert_eq!(
        value(&text, "text.word-frequencies", json!(["b a b c b a", 2])).await,
        json!([["b", 3], ["a", 2]])
    );
    assert_eq!(
        value(
            &text,
            "text.find",
            json!(["Cat catalog cat", "cat", ["case-insensitive", "whole-word"]])
        )
        .await,
        json!([0, 12])
    );
    assert_eq!(
        value(&text, "text.find", json!(["Cat catalog cat", "cat", []])).await,
        json!([4, 12])
    );
}

#[tokio::test]
async fn hello_logs_its_greeting() {
    let hello = plugin(warden_test_programs::HELLO, &[], Limits::default());
    let call = hello.invoke("greet", &json!(["Ada"])).await.unwrap();
    assert_eq!(call.output, Output::Value(json!("Hello, Ada!")));
    assert_eq!(call.logs.len(), 1);
    assert_eq!(call.logs[0].message, "greeting Ada");
    assert!(call.metering.fuel_used > 0);
}
