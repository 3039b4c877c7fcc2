//! The JSON mapping of every WIT type, both ways, against a real component; the
//! published JSON Schemas accept exactly what the mapping accepts.

mod common;

use common::{compiled, failure, plugin, value};
use serde_json::{Value, json};
use warden_host::{Error, Limits, Output, Plugin};

const TYPES: &str = warden_test_programs::TYPES;

fn types() -> Plugin {
    plugin(TYPES, &[], Limits::default())
}

fn schema(function: &str) -> Value {
    compiled(TYPES)
        .functions()
        .find(|f| f.name == function)
        .unwrap_or_else(|| panic!("no {function}"))
        .schema
        .clone()
        .expect("invocable functions have a schema")
}

fn validates(schema: &Value, instance: &Value) -> bool {
    jsonschema::validator_for(schema)
        .expect("the schema itself is valid")
        .is_valid(instance)
}

/// Echoes `input` through `function` and expects `output`; checks both against
/// the function's schema.
async fn echo(plugin: &Plugin, function: &str, input: Value, output: Value) {
    let schema = schema(function);
    assert!(
        validates(&schema["params"], &json!({"value": input})),
        "{function}: schema rejects {input}"
    );
    let got = value(plugin, function, json!({"value": input})).await;
    assert_eq!(got, output, "{function}({input})");
    assert!(
        validates(&schema["result"], &got),
        "{function}: result schema rejects {got}"
    );
}

#[tokio::test]
async fn every_type_round_trips() {
    let plugin = types();
    let same = [
        ("echo.echo-bool", vec![json!(true), json!(false)]),
        ("echo.echo-s8", vec![json!(-128), json!(127)]),
        ("echo.echo-u8", vec![json!(0), json!(255)]),
        ("echo.echo-s16", vec![json!(-32768), json!(32767)]),
        ("echo.echo-u16", vec![json!(65535)]),
        ("echo.echo-s32", vec![json!(i32::MIN), json!(i32::MAX)]),
        ("echo.echo-u32", vec![json!(u32::MAX)]),
        ("echo.echo-s64", vec![json!(i64::MIN), json!(i64::MAX)]),
        ("echo.echo-u64", vec![json!(u64::MAX)]),
        (
            "echo.echo-f32",
            vec![
                json!(1.5),
                json!(0.1),
                json!(-3.25e10),
                json!("NaN"),
                json!("Infinity"),
                json!("-Infinity"),
            ],
        ),
        (
            "echo.echo-f64",
            vec![
                json!(0.1),
                json!(1e300),
                json!(-2.5),
                json!("NaN"),
                json!("-Infinity"),
            ],
        ),
        ("echo.echo-char", vec![json!("a"), json!("é"), json!("🦀")]),
        (
            "echo.echo-string",
            vec![json!(""), json!("héllo \"world\"\n")],
        ),
        ("echo.echo-list", vec![json!([]), json!([1, -2, 3])]),
        ("echo.echo-record", vec![json!({"x": 1, "y": -2})]),
        ("echo.echo-tuple", vec![json!([7, "seven", true])]),
        (
            "echo.echo-variant",
            vec![
                json!({"circle": 2.5}),
                json!({"rectangle": {"x": 1, "y": 2}}),
                json!("empty"),
            ],
        ),
        ("echo.echo-enum", vec![json!("red"), json!("blue")]),
        ("echo.echo-option", vec![json!(null), json!(5)]),
        (
            "echo.echo-nested-option",
            vec![json!(null), json!({"some": null}), json!({"some": "x"})],
        ),
        (
            "echo.echo-flags",
            vec![
                json!([]),
                json!(["read", "execute"]),
                json!(["read", "write", "execute"]),
            ],
        ),
    ];
    for (function, values) in same {
        for input in values {
            echo(&plugin, function, input.clone(), input).await;
        }
    }
}

#[tokio::test]
async fn equivalent_inputs_are_normalised() {
    let plugin = types();
    // A payload-less case may be written as an object with null.
    echo(
        &plugin,
        "echo.echo-variant",
        json!({"empty": null}),
        json!("empty"),
    )
    .await;
    // Flags come back in declaration order, once each.
    echo(
        &plugin,
        "echo.echo-flags",
        json!(["execute", "read", "read"]),
        json!(["read", "execute"]),
    )
    .await;
    // 0.1 as f32 reads back as 0.1, not its binary expansion.
    echo(&plugin, "echo.echo-f32", json!(0.1), json!(0.1)).await;
}

#[tokio::test]
async fn a_record_with_every_type_round_trips_and_optional_fields_may_be_omitted() {
    let plugin = types();
    let everything = json!({
        "flag": true, "tiny": -8, "byte": 200, "short": -300, "ushort": 60000,
        "int": -70000, "uint": 4000000000u32, "long": -9000000000i64, "ulong": 18000000000000000000u64,
        "single": 2.5, "double": -0.125, "letter": "ß", "text": "all of it",
        "numbers": [1, 2, 3], "bytes": [0, 127, 255], "pair": ["two", 2],
        "maybe": "present", "nested-maybe": {"some": 9}, "outcome": {"err": "bad"},
        "bare-outcome": {"ok": null}, "shape": {"rectangle": {"x": -1, "y": 1}},
        "color": "green", "perms": ["write"], "points": [{"x": 0, "y": 0}, {"x": 5, "y": -5}],
    });
    echo(
        &plugin,
        "echo.echo-everything",
        everything.clone(),
        everything.clone(),
    )
    .await;

    let mut sparse = everything.clone();
    sparse.as_object_mut().unwrap().remove("maybe");
    sparse.as_object_mut().unwrap().remove("nested-maybe");
    let mut expected = everything;
    expected["maybe"] = json!(null);
    expected["nested-maybe"] = json!(null);
    echo(&plugin, "echo.echo-everything", sparse, expected).await;
}

#[tokio::test]
async fn arguments_by_position_by_name_and_bare() {
    let plugin = types();
    let by_name = value(
        &plugin,
        "echo.describe",
        json!({"name": "Ada", "age": 36, "tags": ["math", "code"]}),
    )
    .await;
    let by_position = value(
        &plugin,
        "echo.describe",
        json!(["Ada", 36, ["math", "code"]]),
    )
    .await;
    assert_eq!(by_name, json!("Ada (36) [math, code]"));
    assert_eq!(by_name, by_position);
    // A one-parameter function also takes its bare value, or a one-element list.
    assert_eq!(
        value(&plugin, "echo.echo-string", json!("bare")).await,
        json!("bare")
    );
    assert_eq!(
        value(&plugin, "echo.echo-string", json!(["listed"])).await,
        json!("listed")
    );
    assert_eq!(
        value(&plugin, "echo.echo-list", json!([4, 5])).await,
        json!([4, 5])
    );
    assert_eq!(
        value(&plugin, "echo.echo-list", json!([[4, 5]])).await,
        json!([4, 5])
    );
    assert_eq!(
        value(&plugin, "echo.echo-list", json!([9])).await,
        json!([9])
    );
    assert_eq!(
        value(&plugin, "echo.echo-record", json!({"x": 1, "y": 2})).await,
        json!({"x": 1, "y": 2})
    );
    // No parameters: nothing, null, [] or {}.
    for args in [json!(null), json!([]), json!({})] {
        assert_eq!(value(&plugin, "echo.nothing", args).await, json!(null));
    }
    assert_eq!(value(&plugin, "add", json!([2, 40])).await, json!(42));
    assert_eq!(
        value(&plugin, "warden-tests:types/echo@0.1.0#echo-u8", json!([7])).await,
        json!(7)
    );
}

async fn bad(plugin: &Plugin, function: &str, args: Value) -> String {
    let failure = failure(plugin, function, args.clone()).await;
    assert!(
        matches!(failure.error, Error::BadArgument { .. }),
        "{function}({args}): {}",
        failure.error
    );
    assert!(
        failure.metering.is_none(),
        "bad arguments never reach the plugin"
    );
    failure.error.to_string()
}

#[tokio::test]
async fn a_wrong_argument_names_its_path_and_the_expected_type() {
    let plugin = types();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "echo.describe",
            json!({"name": "a", "age": -3, "tags": []}),
            "args.age: expected u8, got -3",
        ),
        (
            "echo.echo-u8",
            json!(300),
            "args.value: expected u8, got 300",
        ),
        (
            "echo.echo-u8",
            json!(1.5),
            "args.value: expected u8, got 1.5",
        ),
        (
            "echo.echo-u8",
            json!("3"),
            "args.value: expected u8, got \"3\"",
        ),
        (
            "echo.echo-bool",
            json!("true"),
            "args.value: expected bool, got \"true\"",
        ),
        (
            "echo.echo-char",
            json!("ab"),
            "args.value: expected char (a one-character string), got \"ab\"",
        ),
        (
            "echo.echo-f32",
            json!(1e300),
            "args.value: expected f32, got 1e+300 (out of range)",
        ),
        (
            "echo.echo-record",
            json!({"x": 1}),
            "args.value.y: missing field",
        ),
        (
            "echo.echo-record",
            json!({"value": {"x": 1, "y": 2, "z": 3}}),
            "args.value: unknown field `z` (fields: x, y)",
        ),
        (
            "echo.echo-variant",
            json!({"hexagon": 1}),
            "args.value: unknown case `hexagon` (cases: circle, rectangle, empty)",
        ),
        (
            "echo.echo-variant",
            json!("circle"),
            "args.value: case `circle` needs a payload: {\"circle\": …}",
        ),
        (
            "echo.echo-variant",
            json!({"empty": 3}),
            "args.value: case `empty` has no payload, got 3",
        ),
        (
            "echo.echo-enum",
            json!("purple"),
            "args.value: unknown case `purple` (cases: red, green, blue)",
        ),
        (
            "echo.echo-flags",
            json!(["read", "fly"]),
            "args.value[1]: unknown flag `fly` (flags: read, write, execute)",
        ),
        (
            "echo.echo-tuple",
            json!([[1, "x"]]),
            "args.value: expected a tuple of 3 items, got 2",
        ),
        (
            "echo.echo-nested-option",
            json!("x"),
            "args.value: expected null or {\"some\": …}, got \"x\"",
        ),
        (
            "echo.echo-result",
            json!({"maybe": 1}),
            "args.value: expected {\"ok\": …} or {\"err\": …}, got `maybe`",
        ),
        (
            "echo.echo-list",
            json!([1, "two"]),
            "args.value[1]: expected s32, got \"two\"",
        ),
        (
            "echo.describe",
            json!({"name": "a", "tags": []}),
            "args.age: missing argument",
        ),
        (
            "echo.describe",
            json!({"name": "a", "age": 1, "tags": [], "extra": 1}),
            "args: unknown parameter `extra` (parameters: name, age, tags)",
        ),
        (
            "echo.describe",
            json!(["a", 1]),
            "args: expected 3 arguments (name, age, tags), got 2",
        ),
        (
            "echo.describe",
            json!("a"),
            "args: expected an array or an object of arguments (name, age, tags), got \"a\"",
        ),
    ];
    for (function, args, message) in cases {
        assert_eq!(
            bad(&plugin, function, args.clone()).await,
            message,
            "{function}({args})"
        );
    }
    let deep = json!({"value": {
        "flag": true, "tiny": 0, "byte": 0, "short": 0, "ushort": 0, "int": 0, "uint": 0,
        "long": 0, "ulong": 0, "single": 0, "double": 0, "letter": "a", "text": "",
        "numbers": [], "bytes": [], "pair": ["", 0], "outcome": {"ok": 1}, "bare-outcome": {"ok": null},
        "shape": "empty", "color": "red", "perms": [], "points": [{"x": 0, "y": 0}, {"x": "far", "y": 0}],
    }});
    assert_eq!(
        bad(&plugin, "echo.echo-everything", deep).await,
        "args.value.points[1].x: expected s32, got \"far\""
    );
}

#[tokio::test]
async fn schemas_reject_what_the_mapping_rejects() {
    let rejected = [
        ("echo.echo-u8", json!(256)),
        ("echo.echo-u8", json!(-1)),
        ("echo.echo-u8", json!(1.5)),
        ("echo.echo-char", json!("ab")),
        ("echo.echo-record", json!({"x": 1})),
        ("echo.echo-record", json!({"x": 1, "y": 2, "z": 3})),
        ("echo.echo-variant", json!("circle")),
        ("echo.echo-variant", json!({"hexagon": 1})),
        ("echo.echo-enum", json!("purple")),
        ("echo.echo-flags", json!(["fly"])),
        ("echo.echo-tuple", json!([1, "x"])),
        ("echo.echo-nested-option", json!("x")),
        ("echo.echo-result", json!({"ok": 1})),
        ("echo.echo-option", json!("five")),
    ];
    let plugin = types();
    for (function, input) in rejected {
        assert!(
            !validates(&schema(function)["params"], &json!({"value": input})),
            "{function}: schema accepts {input}"
        );
        bad(&plugin, function, json!({"value": input})).await;
    }
}

#[tokio::test]
async fn a_top_level_result_splits_into_value_and_plugin_error() {
    let plugin = types();
    let call = plugin
        .invoke("echo.fail", &json!(["not today"]))
        .await
        .unwrap();
    assert_eq!(call.output, Output::PluginError(json!("not today")));
    let fail = schema("echo.fail");
    assert!(validates(&fail["error"], &json!("not today")));
    assert!(validates(&fail["result"], &json!(3)));

    let schema = schema("echo.echo-result");
    let ok = plugin
        .invoke("echo.echo-result", &json!({"value": {"ok": "fine"}}))
        .await
        .unwrap();
    assert_eq!(ok.output, Output::Value(json!("fine")));
    assert!(validates(&schema["result"], &json!("fine")));
    let err = plugin
        .invoke("echo.echo-result", &json!({"value": {"err": 7}}))
        .await
        .unwrap();
    assert_eq!(err.output, Output::PluginError(json!(7)));
    assert!(validates(&schema["error"], &json!(7)));
    assert!(!validates(&schema["error"], &json!("seven")));
}

#[tokio::test]
async fn unknown_and_uninvocable_functions_are_clear_errors() {
    let plugin = types();
    let unknown = failure(&plugin, "echo.nope", json!([])).await;
    assert_eq!(unknown.error.code(), "unknown_function");
    assert!(
        unknown.error.to_string().contains("echo.echo-u8"),
        "{}",
        unknown.error
    );
    assert!(
        !unknown.error.to_string().contains("make-counter"),
        "{}",
        unknown.error
    );

    let opaque = failure(&plugin, "handles.make-counter", json!([1])).await;
    assert_eq!(opaque.error.code(), "not_invocable");
    assert!(
        opaque.error.to_string().contains("resource"),
        "{}",
        opaque.error
    );
}

#[test]
fn functions_are_listed_with_signatures_and_invocability() {
    let component = compiled(TYPES);
    let functions: Vec<_> = component.functions().collect();
    let find = |name: &str| {
        functions
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };

    let add = find("add");
    assert_eq!(add.interface, None);
    assert_eq!(add.signature, "func(a: s32, b: s32) -> s32");

    let record = find("echo.echo-record");
    assert_eq!(
        record.interface.as_deref(),
        Some("warden-tests:types/echo@0.1.0")
    );
    assert_eq!(
        record.signature,
        "func(value: record { x: s32, y: s32 }) -> record { x: s32, y: s32 }"
    );
    assert_eq!(
        find("echo.fail").result.as_deref(),
        Some("result<u32, string>")
    );
    assert_eq!(find("echo.nothing").signature, "func()");

    let make = find("handles.make-counter");
    assert_eq!(
        make.not_invocable.as_deref(),
        Some("the result contains a resource")
    );
    assert!(make.schema.is_none());
    let read = find("handles.read-counter");
    assert_eq!(
        read.not_invocable.as_deref(),
        Some("parameter `c` contains a borrowed resource")
    );
    // Resource methods and constructors are exported functions too; none can cross JSON.
    assert!(
        functions
            .iter()
            .filter(|f| f.name.starts_with("handles."))
            .all(|f| f.not_invocable.is_some())
    );
    assert!(
        functions
            .iter()
            .filter(|f| f.name.starts_with("echo."))
            .all(|f| f.not_invocable.is_none())
    );
}
