//! Property tests of every parser of untrusted input in the host: the JSON
//! <-> WIT mapping against the echo functions of every WIT type, digests,
//! sizes and durations, limits, DSSE envelopes and canonical JSON. Each runs
//! a bounded number of generated cases.

mod common;

use proptest::prelude::*;
use serde_json::{Value as Json, json};
use std::sync::OnceLock;
use warden_host::{
    Digest, Envelope, Error, Invocation, Limits, Output, Plugin, canonical_json, parse_bytes,
    parse_duration,
};
use warden_test_programs::TYPES;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        any::<u64>().prop_map(Json::from),
        (-1e12f64..1e12).prop_map(Json::from),
        "[a-z~ü\u{1F600}\\\\\"]{0,8}".prop_map(Json::from),
        prop_oneof![Just("NaN"), Just("Infinity"), Just("circle"), Just("red")]
            .prop_map(Json::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::from),
            prop::collection::btree_map("[a-z-]{1,6}", inner, 0..4)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

const ECHOES: [&str; 23] = [
    "echo.echo-bool",
    "echo.echo-s8",
    "echo.echo-u8",
    "echo.echo-s16",
    "echo.echo-u16",
    "echo.echo-s32",
    "echo.echo-u32",
    "echo.echo-s64",
    "echo.echo-u64",
    "echo.echo-f32",
    "echo.echo-f64",
    "echo.echo-char",
    "echo.echo-string",
    "echo.echo-list",
    "echo.echo-record",
    "echo.echo-tuple",
    "echo.echo-variant",
    "echo.echo-enum",
    "echo.echo-option",
    "echo.echo-nested-option",
    "echo.echo-result",
    "echo.echo-flags",
    "echo.echo-everything",
];

fn types() -> &'static (tokio::runtime::Runtime, Plugin) {
    static TYPES_PLUGIN: OnceLock<(tokio::runtime::Runtime, Plugin)> = OnceLock::new();
    TYPES_PLUGIN.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let plugin = common::plugin(TYPES, &[], Limits::default());
        (runtime, plugin)
    })
}

/// The output of `function` on `args`: `Ok(value)`, or the error's code.
fn echo(function: &str, args: &Json) -> Result<Json, String> {
    let (runtime, plugin) = types();
    match runtime.block_on(plugin.invoke(function, args)) {
        Ok(Invocation {
            output: Output::Value(value),
            ..
        }) => Ok(value),
        Ok(Invocation {
            output: Output::PluginError(error),
            ..
        }) => Ok(json!({ "err": error })),
        Err(failure) => Err(failure.error.code().to_owned()),
    }
}

proptest! {
    #![proptest_config(config())]

    /// Whatever JSON arrives, every function either refuses it as a bad
    /// argument or accepts it; what comes back is the mapping's canonical
    /// form, which the function accepts again unchanged.
    #[test]
    fn any_json_is_refused_cleanly_or_round_trips(value in any_json(), which in 0..ECHOES.len()) {
        let function = ECHOES[which];
        match echo(function, &json!([value])) {
            Err(code) => prop_assert_eq!(code, "bad_argument", "{} on {}", function, value),
            Ok(out) if function == "echo.echo-result" => {
                prop_assert!(out.is_object() || out.is_string() || out.is_number(), "{}", out);
            }
            Ok(out) => {
                let again = echo(function, &json!([out.clone()]));
                prop_assert_eq!(again, Ok(out.clone()), "{} is not a fixed point of {}", out, function);
            }
        }
    }

    /// Well-typed values come back exactly.
    #[test]
    fn typed_values_come_back_exactly(
        text in "\\PC{0,40}",
        number in any::<i32>(),
        list in prop::collection::vec(any::<i32>(), 0..50),
        flag in any::<bool>(),
        small in any::<u8>(),
    ) {
        prop_assert_eq!(echo("echo.echo-string", &json!([text])), Ok(json!(text)));
        prop_assert_eq!(echo("echo.echo-s32", &json!([number])), Ok(json!(number)));
        prop_assert_eq!(echo("echo.echo-list", &json!([list])), Ok(json!(list)));
        prop_assert_eq!(
            echo("echo.echo-tuple", &json!([[small, text, flag]])),
            Ok(json!([small, text, flag]))
        );
    }

    #[test]
    fn digests_parse_strictly(text in "\\PC{0,80}", bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = text.parse::<Digest>();
        let digest = Digest::of(&bytes);
        prop_assert_eq!(digest.to_string().parse::<Digest>(), Ok(digest.clone()));
        prop_assert!(digest.to_string().to_uppercase().parse::<Digest>().is_err());
    }

    #[test]
    fn sizes_and_durations_parse_or_refuse(text in "\\PC{0,24}", n in 0u64..1_000_000, unit in prop_oneof![Just(""), Just("KiB"), Just("MiB"), Just("kb")]) {
        let _ = parse_bytes(&text);
        let _ = parse_duration(&text);
        let parsed = parse_bytes(&format!("{n}{unit}")).unwrap();
        let multiplier = match unit { "" => 1, "KiB" => 1024, "MiB" => 1 << 20, _ => 1000 };
        prop_assert_eq!(parsed, n * multiplier);
        prop_assert_eq!(parse_duration(&format!("{n}ms")).unwrap().as_millis(), u128::from(n));
    }

    #[test]
    fn limits_are_set_or_refused_by_name(name in "[a-z_]{1,16}", value in "\\PC{0,16}") {
        let mut limits = Limits::default();
        let before = limits.clone();
        if limits.set(&name, &value).is_err() {
            prop_assert_eq!(limits, before, "a refused limit changed nothing");
        }
    }

    #[test]
    fn envelopes_parse_strictly(bytes in prop::collection::vec(any::<u8>(), 0..512), value in any_json()) {
        let _ = Envelope::from_json(&bytes);
        let _ = Envelope::from_json(value.to_string().as_bytes());
    }

    /// Canonical JSON is stable: the canonical form of a canonical form is
    /// itself, whatever the key order and spacing it came with.
    #[test]
    fn canonical_json_is_a_fixed_point(value in any_json()) {
        if let Ok(canonical) = canonical_json(&value) {
            let reparsed: Json = serde_json::from_slice(&canonical).unwrap();
            prop_assert_eq!(canonical_json(&reparsed).unwrap(), canonical);
        }
    }
}

#[test]
fn a_bad_argument_names_its_path() {
    let error = echo("echo.echo-record", &json!([{ "x": 1, "y": "two" }])).unwrap_err();
    assert_eq!(error, "bad_argument");
    let (runtime, plugin) = types();
    let failure = runtime
        .block_on(plugin.invoke("echo.echo-record", &json!([{ "x": 1, "y": "two" }])))
        .unwrap_err();
    assert!(matches!(failure.error, Error::BadArgument { .. }));
    assert!(failure.error.to_string().contains("y"), "{}", failure.error);
}
