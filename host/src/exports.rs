//! Introspection of a component's exports: every function, top-level or inside an
//! exported interface, with its WIT signature, whether it can be invoked over JSON,
//! and its JSON Schema.

use crate::schema;
use serde::{Deserialize, Serialize};
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::{Component, ComponentExportIndex};

/// One exported function, as the catalog and `warden inspect` show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionInfo {
    /// The name callers use: `greet` for a top-level function, `text.count` for
    /// function `count` of exported interface `…/text@…`.
    pub name: String,
    /// The exported interface, if any, e.g. `acme:tools/text@1.0.0`.
    pub interface: Option<String>,
    /// The parameters, in order.
    pub params: Vec<ParamInfo>,
    /// The result type in WIT syntax, if the function returns something.
    pub result: Option<String>,
    /// The whole signature in WIT syntax.
    pub signature: String,
    /// Why the function cannot be invoked over JSON (resources, streams,
    /// futures), or `None` if it can.
    pub not_invocable: Option<String>,
    /// `{"params": <schema of the arguments object>, "result": <schema>}`
    /// (JSON Schema 2020-12); absent for functions that are not invocable.
    pub schema: Option<serde_json::Value>,
}

/// One parameter of a function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamInfo {
    /// Its name.
    pub name: String,
    /// Its type in WIT syntax.
    #[serde(rename = "type")]
    pub ty: String,
}

/// An exported function with what the host needs to call it.
#[derive(Clone)]
pub(crate) struct Export {
    pub(crate) info: FunctionInfo,
    /// Its own name: the function's, inside its interface if it has one.
    pub(crate) item: String,
    pub(crate) index: ComponentExportIndex,
    pub(crate) ty: ComponentFunc,
}

impl Export {
    pub(crate) fn param_types(&self) -> Vec<(String, Type)> {
        self.ty
            .params()
            .map(|(name, ty)| (name.to_owned(), ty))
            .collect()
    }

    pub(crate) fn result_type(&self) -> Option<Type> {
        self.ty.results().next()
    }

    /// What the read budget of a call is divided by: [`FLAGS_READ_DIVISOR`]
    /// when the result holds flags (see [`contains_flags`]), else 1.
    pub(crate) fn read_divisor(&self) -> u64 {
        if self.result_type().is_some_and(|t| contains_flags(&t)) {
            FLAGS_READ_DIVISOR
        } else {
            1
        }
    }
}

/// Lists every exported function of `component`.
/// Functions one component may export.
pub const MAX_EXPORTED_FUNCTIONS: usize = 1_000;

/// The exported functions of `component`, described; a component that
/// exports more than [`MAX_EXPORTED_FUNCTIONS`] is refused before any is.
pub(crate) fn exports(component: &Component) -> crate::Result<Vec<Export>> {
    let engine = component.engine();
    let ty = component.component_type();
    let mut found = Vec::new();
    for (name, item) in ty.exports(engine) {
        match item.ty {
            ComponentItem::ComponentFunc(func) => {
                if let Some(index) = component.get_export_index(None, name) {
                    found.push((None, name.to_owned(), func, index));
                }
            }
            ComponentItem::ComponentInstance(instance) => {
                let Some(instance_index) = component.get_export_index(None, name) else {
                    continue;
                };
                for (func_name, item) in instance.exports(engine) {
                    if let ComponentItem::ComponentFunc(func) = item.ty
                        && let Some(index) =
                            component.get_export_index(Some(&instance_index), func_name)
                    {
                        found.push((Some(name.to_owned()), func_name.to_owned(), func, index));
                    }
                }
            }
            _ => {}
        }
    }

    if found.len() > MAX_EXPORTED_FUNCTIONS {
        return Err(crate::Error::InvalidComponent(format!(
            "it exports {} functions; at most {MAX_EXPORTED_FUNCTIONS} are served",
            found.len()
        )));
    }

    // `text.count` unless two exported interfaces share the short name `text`,
    // in which case the full `pkg:ns/text@1.0.0#count` keeps them apart.
    let short = |interface: &str| -> String {
        let unversioned = interface.split('@').next().unwrap_or(interface);
        unversioned
            .rsplit_once('/')
            .map_or(unversioned, |(_, name)| name)
            .to_owned()
    };
    let mut interfaces: Vec<&String> = found.iter().filter_map(|(i, ..)| i.as_ref()).collect();
    interfaces.sort();
    interfaces.dedup();
    let ambiguous = |interface: &str| {
        interfaces
            .iter()
            .filter(|other| short(other) == short(interface))
            .count()
            > 1
    };

    Ok(found
        .iter()
        .map(|(interface, func_name, func, index)| {
            let name = match interface {
                None => func_name.clone(),
                Some(interface) if ambiguous(interface) => format!("{interface}#{func_name}"),
                Some(interface) => format!("{}.{func_name}", short(interface)),
            };
            Export {
                info: describe(name, interface.clone(), func),
                item: func_name.clone(),
                index: *index,
                ty: func.clone(),
            }
        })
        .collect())
}

/// Parts (type nodes, counted as written out) that one function's
/// parameter and result types may have. Type definitions can share parts, so
/// a 300-byte component can describe a type of millions of parts (a tuple of
/// two of the same tuple, 20 times over); past this, the function is listed
/// as not invocable, and its signature and schema are not written out.
pub const MAX_TYPE_PARTS: u32 = 10_000;

/// A set flag is charged its name's length (one byte or more) by wasmtime's
/// read budget but costs a `String` and its bytes (32 or more): results with
/// flags are read with the budget divided by this.
pub const FLAGS_READ_DIVISOR: u64 = 32;

/// How deep types may nest (`option<option<...>>`, lists of records of
/// lists...) for a function to be invocable: every walk over a value or a type
/// (describing it, lifting it, writing it as JSON) recurses once per level.
pub const MAX_TYPE_DEPTH: u32 = 64;

/// Whether `ty`, written out, has at most `budget` parts left (spending them)
/// and nests at most [`MAX_TYPE_DEPTH`] deep below `depth`.
fn within_budget(ty: &Type, budget: &mut u32, depth: u32) -> bool {
    if *budget == 0 || depth > MAX_TYPE_DEPTH {
        return false;
    }
    *budget -= 1;
    let inner = |ty: &Type, budget: &mut u32| within_budget(ty, budget, depth + 1);
    match ty {
        Type::List(list) => inner(&list.ty(), budget),
        Type::FixedLengthList(list) => inner(&list.ty(), budget),
        Type::Map(map) => inner(&map.key(), budget) && inner(&map.value(), budget),
        Type::Option(option) => inner(&option.ty(), budget),
        Type::Result(result) => {
            result.ok().is_none_or(|t| inner(&t, budget))
                && result.err().is_none_or(|t| inner(&t, budget))
        }
        Type::Record(record) => record.fields().all(|f| inner(&f.ty, budget)),
        Type::Tuple(tuple) => tuple.types().all(|t| inner(&t, budget)),
        Type::Variant(variant) => variant
            .cases()
            .all(|c| c.ty.as_ref().is_none_or(|t| inner(t, budget))),
        _ => true,
    }
}

/// Whether `ty` has `flags` anywhere in it. wasmtime charges a lifted flags
/// value only the length of its set names, while each costs a `String`.
pub(crate) fn contains_flags(ty: &Type) -> bool {
    match ty {
        Type::Flags(_) => true,
        Type::List(list) => contains_flags(&list.ty()),
        Type::FixedLengthList(list) => contains_flags(&list.ty()),
        Type::Map(map) => contains_flags(&map.key()) || contains_flags(&map.value()),
        Type::Option(option) => contains_flags(&option.ty()),
        Type::Result(result) => {
            result.ok().is_some_and(|t| contains_flags(&t))
                || result.err().is_some_and(|t| contains_flags(&t))
        }
        Type::Record(record) => record.fields().any(|f| contains_flags(&f.ty)),
        Type::Tuple(tuple) => tuple.types().any(|t| contains_flags(&t)),
        Type::Variant(variant) => variant
            .cases()
            .any(|c| c.ty.as_ref().is_some_and(contains_flags)),
        _ => false,
    }
}

fn describe(name: String, interface: Option<String>, func: &ComponentFunc) -> FunctionInfo {
    let mut budget = MAX_TYPE_PARTS;
    let fits = func
        .params()
        .all(|(_, ty)| within_budget(&ty, &mut budget, 0))
        && func.results().all(|ty| within_budget(&ty, &mut budget, 0));
    if !fits {
        let params: Vec<ParamInfo> = func
            .params()
            .map(|(name, _)| ParamInfo {
                name: name.to_owned(),
                ty: "…".to_owned(),
            })
            .collect();
        return FunctionInfo {
            signature: format!(
                "func({}) (types of more than {MAX_TYPE_PARTS} parts or nested more than {MAX_TYPE_DEPTH} deep, not written out)",
                params
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            name,
            interface,
            params,
            result: None,
            not_invocable: Some(format!(
                "its types have more than {MAX_TYPE_PARTS} parts or nest more than {MAX_TYPE_DEPTH} deep"
            )),
            schema: None,
        };
    }
    let params: Vec<ParamInfo> = func
        .params()
        .map(|(name, ty)| ParamInfo {
            name: name.to_owned(),
            ty: wit_type(&ty),
        })
        .collect();
    let result_ty = func.results().next();
    let result = result_ty.as_ref().map(wit_type);
    let signature = format!(
        "func({}){}",
        params
            .iter()
            .map(|p| format!("{}: {}", p.name, p.ty))
            .collect::<Vec<_>>()
            .join(", "),
        result
            .as_ref()
            .map(|r| format!(" -> {r}"))
            .unwrap_or_default()
    );
    let not_invocable = func
        .params()
        .find_map(|(name, ty)| {
            opaque_part(&ty).map(|why| format!("parameter `{name}` contains {why}"))
        })
        .or_else(|| {
            result_ty
                .as_ref()
                .and_then(opaque_part)
                .map(|why| format!("the result contains {why}"))
        });
    let schema = not_invocable
        .is_none()
        .then(|| schema::function(func.params(), result_ty.as_ref()));
    FunctionInfo {
        name,
        interface,
        params,
        result,
        signature,
        not_invocable,
        schema,
    }
}

/// The first part of `ty` that cannot cross JSON, described.
fn opaque_part(ty: &Type) -> Option<String> {
    match ty {
        Type::Own(_) => Some("a resource".into()),
        Type::Borrow(_) => Some("a borrowed resource".into()),
        Type::Future(_) => Some("a future".into()),
        Type::Stream(_) => Some("a stream".into()),
        Type::ErrorContext => Some("an error-context".into()),
        Type::List(list) => opaque_part(&list.ty()),
        Type::FixedLengthList(list) => opaque_part(&list.ty()),
        Type::Map(map) => opaque_part(&map.key()).or_else(|| opaque_part(&map.value())),
        Type::Option(option) => opaque_part(&option.ty()),
        Type::Result(result) => result
            .ok()
            .and_then(|t| opaque_part(&t))
            .or_else(|| result.err().and_then(|t| opaque_part(&t))),
        Type::Record(record) => record.fields().find_map(|f| opaque_part(&f.ty)),
        Type::Tuple(tuple) => tuple.types().find_map(|t| opaque_part(&t)),
        Type::Variant(variant) => variant
            .cases()
            .find_map(|c| c.ty.as_ref().and_then(opaque_part)),
        _ => None,
    }
}

/// `ty` in WIT syntax. Named types are anonymous once compiled, so records,
/// variants, enums and flags are written out structurally.
pub(crate) fn wit_type(ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(list) => format!("list<{}>", wit_type(&list.ty())),
        Type::FixedLengthList(list) => format!("list<{}, {}>", wit_type(&list.ty()), list.len()),
        Type::Map(map) => format!("map<{}, {}>", wit_type(&map.key()), wit_type(&map.value())),
        Type::Record(record) => format!(
            "record {{ {} }}",
            record
                .fields()
                .map(|f| format!("{}: {}", f.name, wit_type(&f.ty)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Type::Tuple(tuple) => format!(
            "tuple<{}>",
            tuple
                .types()
                .map(|t| wit_type(&t))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Type::Variant(variant) => format!(
            "variant {{ {} }}",
            variant
                .cases()
                .map(|c| match &c.ty {
                    Some(ty) => format!("{}({})", c.name, wit_type(ty)),
                    None => c.name.to_owned(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Type::Enum(e) => format!("enum {{ {} }}", e.names().collect::<Vec<_>>().join(", ")),
        Type::Flags(flags) => format!(
            "flags {{ {} }}",
            flags.names().collect::<Vec<_>>().join(", ")
        ),
        Type::Option(option) => format!("option<{}>", wit_type(&option.ty())),
        Type::Result(result) => match (result.ok(), result.err()) {
            (None, None) => "result".into(),
            (Some(ok), None) => format!("result<{}>", wit_type(&ok)),
            (None, Some(err)) => format!("result<_, {}>", wit_type(&err)),
            (Some(ok), Some(err)) => format!("result<{}, {}>", wit_type(&ok), wit_type(&err)),
        },
        Type::Own(_) => "resource".into(),
        Type::Borrow(_) => "borrow<resource>".into(),
        Type::Future(future) => match future.ty() {
            Some(ty) => format!("future<{}>", wit_type(&ty)),
            None => "future".into(),
        },
        Type::Stream(stream) => match stream.ty() {
            Some(ty) => format!("stream<{}>", wit_type(&ty)),
            None => "stream".into(),
        },
        Type::ErrorContext => "error-context".into(),
    }
}
