//! JSON <-> WIT values. The mapping is written down in `docs/json.md`; in short:
//! numbers are JSON numbers (non-finite floats are the strings `"NaN"`,
//! `"Infinity"`, `"-Infinity"`), chars are one-character strings, lists and
//! tuples are arrays, records are objects, enums are strings, flags are arrays
//! of names, variants are `"case"` or `{"case": payload}`, options are `null` or
//! the value (`{"some": …}` when the payload is itself an option), results are
//! `{"ok": …}` or `{"err": …}`.

use crate::error::Error;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value as Json;
use wasmtime::component::Val;
use wasmtime::component::types::Type;

/// Converts the JSON arguments of a call: an array (by position), an object (by
/// parameter name), or for a function of one parameter also the bare value.
pub(crate) fn arguments(args: &Json, params: &[(String, Type)]) -> Result<Vec<Val>, Error> {
    match (args, params) {
        (Json::Null, []) => Ok(Vec::new()),
        (Json::Array(items), _) if items.len() == params.len() && !bare_single(args, params) => {
            items
                .iter()
                .zip(params)
                .map(|(item, (name, ty))| to_val(item, ty, &format!("args.{name}")))
                .collect()
        }
        (Json::Object(map), _) if !bare_single(args, params) => {
            if let Some(unknown) = map
                .keys()
                .find(|k| !params.iter().any(|(name, _)| name == *k))
            {
                return Err(bad(
                    "args",
                    format!(
                        "unknown parameter `{unknown}` (parameters: {})",
                        names(params.iter().map(|(n, _)| n.as_str()))
                    ),
                ));
            }
            params
                .iter()
                .map(|(name, ty)| {
                    let path = format!("args.{name}");
                    match (map.get(name), ty) {
                        (Some(value), _) => to_val(value, ty, &path),
                        (None, Type::Option(_)) => Ok(Val::Option(None)),
                        (None, _) => Err(bad(&path, "missing argument".into())),
                    }
                })
                .collect()
        }
        (_, [(name, ty)]) => Ok(vec![to_val(args, ty, &format!("args.{name}"))?]),
        (Json::Array(items), _) => Err(bad(
            "args",
            format!(
                "expected {} arguments ({}), got {}",
                params.len(),
                names(params.iter().map(|(n, _)| n.as_str())),
                items.len()
            ),
        )),
        _ => Err(bad(
            "args",
            format!(
                "expected an array or an object of arguments ({}), got {}",
                names(params.iter().map(|(n, _)| n.as_str())),
                kind(args)
            ),
        )),
    }
}

/// For a function of one parameter, whether `args` is the parameter's value
/// itself rather than an argument list or map: `[x]` is a one-element argument
/// list unless the parameter is a list or tuple and `x` is not an array, and
/// `{"name": x}` is an argument map only if `name` is the parameter.
fn bare_single(args: &Json, params: &[(String, Type)]) -> bool {
    let [(name, ty)] = params else {
        return false;
    };
    let sequence = matches!(
        ty,
        Type::List(_) | Type::Tuple(_) | Type::FixedLengthList(_) | Type::Flags(_)
    );
    match args {
        Json::Array(items) => items.len() != 1 || (sequence && !items[0].is_array()),
        Json::Object(map) => !(map.len() == 1 && map.contains_key(name)),
        _ => true,
    }
}

fn bad(path: &str, message: String) -> Error {
    Error::BadArgument {
        path: path.to_owned(),
        message,
    }
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

/// A short description of what a JSON value is, for error messages.
fn kind(value: &Json) -> String {
    match value {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) if s.chars().count() > 40 => "a string".into(),
        Json::String(s) => format!("{s:?}"),
        Json::Array(_) => "an array".into(),
        Json::Object(_) => "an object".into(),
    }
}

fn expected(path: &str, what: &str, value: &Json) -> Error {
    bad(path, format!("expected {what}, got {}", kind(value)))
}

fn integer<T: TryFrom<i128>>(value: &Json, name: &str, path: &str) -> Result<T, Error> {
    let whole = match value {
        Json::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        _ => None,
    };
    let whole = whole.ok_or_else(|| expected(path, name, value))?;
    T::try_from(whole).map_err(|_| bad(path, format!("expected {name}, got {whole}")))
}

fn float(value: &Json, name: &str, path: &str) -> Result<f64, Error> {
    match value {
        Json::Number(n) => n.as_f64().ok_or_else(|| expected(path, name, value)),
        Json::String(s) if s == "NaN" => Ok(f64::NAN),
        Json::String(s) if s == "Infinity" => Ok(f64::INFINITY),
        Json::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => Err(expected(path, name, value)),
    }
}

/// Converts `value` to a WIT value of type `ty`; errors name `path`.
pub(crate) fn to_val(value: &Json, ty: &Type, path: &str) -> Result<Val, Error> {
    Ok(match ty {
        Type::Bool => Val::Bool(
            value
                .as_bool()
                .ok_or_else(|| expected(path, "bool", value))?,
        ),
        Type::S8 => Val::S8(integer(value, "s8", path)?),
        Type::U8 => Val::U8(integer(value, "u8", path)?),
        Type::S16 => Val::S16(integer(value, "s16", path)?),
        Type::U16 => Val::U16(integer(value, "u16", path)?),
        Type::S32 => Val::S32(integer(value, "s32", path)?),
        Type::U32 => Val::U32(integer(value, "u32", path)?),
        Type::S64 => Val::S64(integer(value, "s64", path)?),
        Type::U64 => Val::U64(integer(value, "u64", path)?),
        Type::Float32 => {
            let wide = float(value, "f32", path)?;
            let narrow = wide as f32;
            if wide.is_finite() && !narrow.is_finite() {
                return Err(bad(
                    path,
                    format!("expected f32, got {} (out of range)", kind(value)),
                ));
            }
            Val::Float32(narrow)
        }
        Type::Float64 => Val::Float64(float(value, "f64", path)?),
        Type::Char => {
            let text = value
                .as_str()
                .ok_or_else(|| expected(path, "char (a one-character string)", value))?;
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Val::Char(c),
                _ => return Err(expected(path, "char (a one-character string)", value)),
            }
        }
        Type::String => Val::String(
            value
                .as_str()
                .ok_or_else(|| expected(path, "string", value))?
                .to_owned(),
        ),
        Type::List(list) => {
            let items = value
                .as_array()
                .ok_or_else(|| expected(path, "array", value))?;
            let item_ty = list.ty();
            Val::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| to_val(item, &item_ty, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::FixedLengthList(list) => {
            let items = value
                .as_array()
                .ok_or_else(|| expected(path, "array", value))?;
            if items.len() != list.len() as usize {
                return Err(bad(
                    path,
                    format!("expected {} items, got {}", list.len(), items.len()),
                ));
            }
            let item_ty = list.ty();
            Val::FixedLengthList(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| to_val(item, &item_ty, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Map(map) => {
            let pairs = value
                .as_array()
                .ok_or_else(|| expected(path, "array of [key, value] pairs", value))?;
            let (key_ty, value_ty) = (map.key(), map.value());
            Val::Map(
                pairs
                    .iter()
                    .enumerate()
                    .map(|(i, pair)| match pair.as_array().map(Vec::as_slice) {
                        Some([k, v]) => Ok((
                            to_val(k, &key_ty, &format!("{path}[{i}][0]"))?,
                            to_val(v, &value_ty, &format!("{path}[{i}][1]"))?,
                        )),
                        _ => Err(expected(&format!("{path}[{i}]"), "[key, value]", pair)),
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Record(record) => {
            let map = value
                .as_object()
                .ok_or_else(|| expected(path, "object", value))?;
            let fields: Vec<_> = record.fields().collect();
            if let Some(unknown) = map
                .keys()
                .find(|k| !fields.iter().any(|f| f.name == k.as_str()))
            {
                return Err(bad(
                    path,
                    format!(
                        "unknown field `{unknown}` (fields: {})",
                        names(fields.iter().map(|f| f.name))
                    ),
                ));
            }
            Val::Record(
                fields
                    .iter()
                    .map(|field| {
                        let field_path = format!("{path}.{}", field.name);
                        let val = match (map.get(field.name), &field.ty) {
                            (Some(v), ty) => to_val(v, ty, &field_path)?,
                            (None, Type::Option(_)) => Val::Option(None),
                            (None, _) => return Err(bad(&field_path, "missing field".into())),
                        };
                        Ok((field.name.to_owned(), val))
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Tuple(tuple) => {
            let items = value
                .as_array()
                .ok_or_else(|| expected(path, "array", value))?;
            let types: Vec<Type> = tuple.types().collect();
            if items.len() != types.len() {
                return Err(bad(
                    path,
                    format!(
                        "expected a tuple of {} items, got {}",
                        types.len(),
                        items.len()
                    ),
                ));
            }
            Val::Tuple(
                items
                    .iter()
                    .zip(&types)
                    .enumerate()
                    .map(|(i, (item, ty))| to_val(item, ty, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Variant(variant) => {
            let cases: Vec<_> = variant.cases().collect();
            let case_names = || names(cases.iter().map(|c| c.name));
            let (name, payload) = tagged(value, path, "variant")?;
            let case = cases.iter().find(|c| c.name == name).ok_or_else(|| {
                bad(
                    path,
                    format!("unknown case `{name}` (cases: {})", case_names()),
                )
            })?;
            let payload = match (&case.ty, payload) {
                (Some(ty), Some(payload)) => {
                    Some(Box::new(to_val(payload, ty, &format!("{path}.{name}"))?))
                }
                (Some(_), None) => {
                    return Err(bad(
                        path,
                        format!("case `{name}` needs a payload: {{\"{name}\": …}}"),
                    ));
                }
                (None, None | Some(Json::Null)) => None,
                (None, Some(other)) => {
                    return Err(bad(
                        path,
                        format!("case `{name}` has no payload, got {}", kind(other)),
                    ));
                }
            };
            Val::Variant(name.to_owned(), payload)
        }
        Type::Enum(e) => {
            let name = value
                .as_str()
                .ok_or_else(|| expected(path, "string (an enum case)", value))?;
            if !e.names().any(|n| n == name) {
                return Err(bad(
                    path,
                    format!("unknown case `{name}` (cases: {})", names(e.names())),
                ));
            }
            Val::Enum(name.to_owned())
        }
        Type::Option(option) => {
            let inner = option.ty();
            match (value, &inner) {
                (Json::Null, _) => Val::Option(None),
                (_, Type::Option(_)) => {
                    let map = value
                        .as_object()
                        .filter(|m| m.len() == 1 && m.contains_key("some"))
                        .ok_or_else(|| expected(path, "null or {\"some\": …}", value))?;
                    Val::Option(Some(Box::new(to_val(
                        &map["some"],
                        &inner,
                        &format!("{path}.some"),
                    )?)))
                }
                _ => Val::Option(Some(Box::new(to_val(value, &inner, path)?))),
            }
        }
        Type::Result(result) => {
            let (name, payload) = tagged(value, path, "result")?;
            let (ty, ok) = match name {
                "ok" => (result.ok(), true),
                "err" => (result.err(), false),
                other => {
                    return Err(bad(
                        path,
                        format!("expected {{\"ok\": …}} or {{\"err\": …}}, got `{other}`"),
                    ));
                }
            };
            let payload = match (ty, payload) {
                (Some(ty), Some(payload)) => {
                    Some(Box::new(to_val(payload, &ty, &format!("{path}.{name}"))?))
                }
                (Some(_), None) => return Err(bad(path, format!("`{name}` needs a value"))),
                (None, None | Some(Json::Null)) => None,
                (None, Some(other)) => {
                    return Err(bad(
                        path,
                        format!("`{name}` has no value, got {}", kind(other)),
                    ));
                }
            };
            Val::Result(if ok { Ok(payload) } else { Err(payload) })
        }
        Type::Flags(flags) => {
            let items = value
                .as_array()
                .ok_or_else(|| expected(path, "array of flag names", value))?;
            let mut set = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let name = item.as_str().ok_or_else(|| {
                    expected(&format!("{path}[{i}]"), "string (a flag name)", item)
                })?;
                if !flags.names().any(|n| n == name) {
                    return Err(bad(
                        &format!("{path}[{i}]"),
                        format!("unknown flag `{name}` (flags: {})", names(flags.names())),
                    ));
                }
                if !set.iter().any(|s: &String| s == name) {
                    set.push(name.to_owned());
                }
            }
            // Keep declaration order, whatever order the caller used.
            let ordered = flags
                .names()
                .filter(|n| set.iter().any(|s| s == n))
                .map(str::to_owned)
                .collect();
            Val::Flags(ordered)
        }
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            return Err(bad(
                path,
                format!("{} cannot be passed as JSON", crate::exports::wit_type(ty)),
            ));
        }
    })
}

/// `"name"` or `{"name": payload}`.
fn tagged<'a>(
    value: &'a Json,
    path: &str,
    what: &str,
) -> Result<(&'a str, Option<&'a Json>), Error> {
    match value {
        Json::String(name) => Ok((name, None)),
        Json::Object(map) if map.len() == 1 => {
            let (name, payload) = map.iter().next().expect("one entry");
            Ok((name, Some(payload)))
        }
        _ => Err(expected(
            path,
            &format!("{what} (\"case\" or {{\"case\": payload}})"),
            value,
        )),
    }
}

/// A WIT value, serialized as its JSON. Serializing it directly lets the host
/// measure a result against its limit without building a JSON tree first.
pub(crate) struct AsJson<'a>(pub(crate) &'a Val);

impl Serialize for AsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Val::Bool(b) => serializer.serialize_bool(*b),
            Val::S8(n) => serializer.serialize_i8(*n),
            Val::U8(n) => serializer.serialize_u8(*n),
            Val::S16(n) => serializer.serialize_i16(*n),
            Val::U16(n) => serializer.serialize_u16(*n),
            Val::S32(n) => serializer.serialize_i32(*n),
            Val::U32(n) => serializer.serialize_u32(*n),
            Val::S64(n) => serializer.serialize_i64(*n),
            Val::U64(n) => serializer.serialize_u64(*n),
            // Through its shortest decimal form, so 0.1f32 reads 0.1, not 0.10000000149011612.
            Val::Float32(f) => {
                serialize_float(f.to_string().parse().unwrap_or(f64::from(*f)), serializer)
            }
            Val::Float64(f) => serialize_float(*f, serializer),
            Val::Char(c) => serializer.collect_str(c),
            Val::String(s) => serializer.serialize_str(s),
            Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => {
                serializer.collect_seq(items.iter().map(AsJson))
            }
            Val::Map(pairs) => {
                serializer.collect_seq(pairs.iter().map(|(k, v)| [AsJson(k), AsJson(v)]))
            }
            Val::Record(fields) => {
                serializer.collect_map(fields.iter().map(|(name, v)| (name, AsJson(v))))
            }
            Val::Variant(name, None) | Val::Enum(name) => serializer.serialize_str(name),
            Val::Variant(name, Some(payload)) => single(serializer, name, payload),
            Val::Option(None) => serializer.serialize_unit(),
            Val::Option(Some(inner)) => match inner.as_ref() {
                Val::Option(_) => single(serializer, "some", inner),
                other => AsJson(other).serialize(serializer),
            },
            Val::Result(Ok(payload)) => single_or_null(serializer, "ok", payload.as_deref()),
            Val::Result(Err(payload)) => single_or_null(serializer, "err", payload.as_deref()),
            Val::Flags(names) => serializer.collect_seq(names),
            Val::Resource(_) | Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_) => {
                serializer.serialize_unit()
            }
        }
    }
}

/// Non-finite floats are the strings `"NaN"`, `"Infinity"` and `"-Infinity"`.
fn serialize_float<S: Serializer>(value: f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_nan() {
        serializer.serialize_str("NaN")
    } else if value.is_infinite() {
        serializer.serialize_str(if value > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        serializer.serialize_f64(value)
    }
}

/// `{key: value}`.
fn single<S: Serializer>(serializer: S, key: &str, value: &Val) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(1))?;
    map.serialize_entry(key, &AsJson(value))?;
    map.end()
}

/// `{key: value}`, or `{key: null}` without a value.
fn single_or_null<S: Serializer>(
    serializer: S,
    key: &str,
    value: Option<&Val>,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(1))?;
    map.serialize_entry(key, &value.map(AsJson))?;
    map.end()
}

/// Converts a WIT value to JSON.
pub(crate) fn from_val(val: &Val) -> Json {
    serde_json::to_value(AsJson(val)).expect("a WIT value always has a JSON form")
}
