//! JSON Schemas (2020-12) of function arguments and results, matching the JSON
//! mapping of `json.rs` exactly: whatever the mapping accepts, the schema
//! accepts, and the other way round.

use serde_json::{Value as Json, json};
use wasmtime::component::types::Type;

/// `{"params": <arguments object>, "result": <result>}` for one function; for a
/// function returning `result<T, E>`, `"result"` describes `T` and `"error"`
/// describes `E` (the plugin's own error), as the invocation returns them apart.
pub(crate) fn function<'a>(
    params: impl Iterator<Item = (&'a str, Type)>,
    result: Option<&Type>,
) -> Json {
    let mut properties = serde_json::Map::new();
    let mut required = Vec::new();
    for (name, ty) in params {
        if !matches!(ty, Type::Option(_)) {
            required.push(Json::String(name.to_owned()));
        }
        properties.insert(name.to_owned(), of(&ty));
    }
    let params = json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    });
    let payload = |ty: Option<Type>| ty.as_ref().map_or(json!({"type": "null"}), of);
    match result {
        Some(Type::Result(result)) => json!({
            "params": params,
            "result": payload(result.ok()),
            "error": payload(result.err()),
        }),
        other => json!({"params": params, "result": payload(other.cloned())}),
    }
}

fn integer(min: i128, max: i128) -> Json {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

fn tagged(name: &str, payload: Json) -> Json {
    json!({
        "type": "object",
        "properties": { name: payload },
        "required": [name],
        "additionalProperties": false,
    })
}

/// The schema of one WIT type.
pub(crate) fn of(ty: &Type) -> Json {
    match ty {
        Type::Bool => json!({"type": "boolean"}),
        Type::S8 => integer(i8::MIN.into(), i8::MAX.into()),
        Type::U8 => integer(0, u8::MAX.into()),
        Type::S16 => integer(i16::MIN.into(), i16::MAX.into()),
        Type::U16 => integer(0, u16::MAX.into()),
        Type::S32 => integer(i32::MIN.into(), i32::MAX.into()),
        Type::U32 => integer(0, u32::MAX.into()),
        Type::S64 => integer(i64::MIN.into(), i64::MAX.into()),
        Type::U64 => integer(0, u64::MAX.into()),
        Type::Float32 | Type::Float64 => json!({
            "anyOf": [{"type": "number"}, {"enum": ["NaN", "Infinity", "-Infinity"]}]
        }),
        Type::Char => json!({"type": "string", "minLength": 1, "maxLength": 1}),
        Type::String => json!({"type": "string"}),
        Type::List(list) => json!({"type": "array", "items": of(&list.ty())}),
        Type::FixedLengthList(list) => json!({
            "type": "array", "items": of(&list.ty()),
            "minItems": list.len(), "maxItems": list.len(),
        }),
        Type::Map(map) => json!({
            "type": "array",
            "items": {
                "type": "array",
                "prefixItems": [of(&map.key()), of(&map.value())],
                "items": false, "minItems": 2,
            },
        }),
        Type::Record(record) => {
            let mut properties = serde_json::Map::new();
            let mut required = Vec::new();
            for field in record.fields() {
                if !matches!(field.ty, Type::Option(_)) {
                    required.push(Json::String(field.name.to_owned()));
                }
                properties.insert(field.name.to_owned(), of(&field.ty));
            }
            json!({
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            })
        }
        Type::Tuple(tuple) => {
            let items: Vec<Json> = tuple.types().map(|t| of(&t)).collect();
            let n = items.len();
            json!({"type": "array", "prefixItems": items, "items": false, "minItems": n, "maxItems": n})
        }
        Type::Variant(variant) => Json::Object(
            [(
                "oneOf".to_owned(),
                Json::Array(
                    variant
                        .cases()
                        .flat_map(|case| match &case.ty {
                            Some(ty) => vec![tagged(case.name, of(ty))],
                            None => vec![
                                json!({"const": case.name}),
                                tagged(case.name, json!({"type": "null"})),
                            ],
                        })
                        .collect(),
                ),
            )]
            .into_iter()
            .collect(),
        ),
        Type::Enum(e) => json!({"type": "string", "enum": e.names().collect::<Vec<_>>()}),
        Type::Flags(flags) => json!({
            "type": "array",
            "items": {"type": "string", "enum": flags.names().collect::<Vec<_>>()},
        }),
        Type::Option(option) => {
            let inner = option.ty();
            let some = match &inner {
                Type::Option(_) => tagged("some", of(&inner)),
                _ => of(&inner),
            };
            json!({"anyOf": [{"type": "null"}, some]})
        }
        Type::Result(result) => {
            let payload = |ty: Option<Type>| ty.as_ref().map_or(json!({"type": "null"}), of);
            json!({"oneOf": [tagged("ok", payload(result.ok())), tagged("err", payload(result.err()))]})
        }
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            json!(false)
        }
    }
}
