//! WIT function types of two components, compared structurally and rendered as WIT.
//!
//! A call forwarded between components (see `links/forward.rs`) carries dynamically typed values: a
//! provider whose function type differs from what its caller imports would link fine and only
//! trap at call time. So the host compares every linked function's parameter and result types
//! at load, and names the first difference.

use std::fmt::Write;

use wasmtime::component::types::{ComponentFunc, Type};

/// How deep a type is rendered before its inner parts are shown as `...`.
const MAX_RENDER_DEPTH: usize = 4;

/// Why function `export` (as the providing component has it) cannot serve `import` (as the
/// calling component imports it), or `None` when the two have the same type.
pub fn func_mismatch(import: &ComponentFunc, export: &ComponentFunc) -> Option<String> {
    if import.async_() != export.async_() {
        return Some(format!(
            "it is {} here, {} there",
            asyncness(import),
            asyncness(export)
        ));
    }
    let params: Vec<(&str, Type)> = import.params().collect();
    let their_params: Vec<(&str, Type)> = export.params().collect();
    if params.len() != their_params.len() {
        return Some(format!(
            "it takes {} parameter(s) here, {} there",
            params.len(),
            their_params.len()
        ));
    }
    for ((name, ours), (_, theirs)) in params.iter().zip(&their_params) {
        if let Some(why) = type_mismatch(ours, theirs) {
            return Some(format!("parameter `{name}`: {why}"));
        }
    }
    let results: Vec<Type> = import.results().collect();
    let their_results: Vec<Type> = export.results().collect();
    if results.len() != their_results.len() {
        return Some(format!(
            "it returns {} value(s) here, {} there",
            results.len(),
            their_results.len()
        ));
    }
    for (ours, theirs) in results.iter().zip(&their_results) {
        if let Some(why) = type_mismatch(ours, theirs) {
            return Some(format!("result: {why}"));
        }
    }
    None
}

fn asyncness(func: &ComponentFunc) -> &'static str {
    if func.async_() {
        "async"
    } else {
        "sync"
    }
}

/// Where types `ours` (the caller's) and `theirs` (the provider's) first differ, with both
/// sides in WIT, or `None` when they have the same structure. Resources, futures and streams
/// never match: a value of theirs belongs to one store and cannot be forwarded to another.
pub fn type_mismatch(ours: &Type, theirs: &Type) -> Option<String> {
    let mut path = Vec::new();
    let found = diff(ours, theirs, &mut path)?;
    let at = if path.is_empty() {
        String::new()
    } else {
        format!("in {}, ", path.join(" > "))
    };
    Some(format!("{at}{found}"))
}

/// The first difference, with `path` left pointing at it.
fn diff(ours: &Type, theirs: &Type, path: &mut Vec<String>) -> Option<String> {
    let differ = || {
        Some(format!(
            "`{}` here, `{}` there",
            render(ours),
            render(theirs)
        ))
    };
    if let Some(why) = unforwardable(ours).or_else(|| unforwardable(theirs)) {
        return Some(why.to_string());
    }
    match (ours, theirs) {
        (Type::List(a), Type::List(b)) => nested(path, "list element".into(), &a.ty(), &b.ty()),
        (Type::Option(a), Type::Option(b)) => nested(path, "option".into(), &a.ty(), &b.ty()),
        (Type::FixedLengthList(a), Type::FixedLengthList(b)) => {
            if a.len() != b.len() {
                return differ();
            }
            nested(path, "list element".into(), &a.ty(), &b.ty())
        }
        (Type::Map(a), Type::Map(b)) => nested(path, "map key".into(), &a.key(), &b.key())
            .or_else(|| nested(path, "map value".into(), &a.value(), &b.value())),
        (Type::Result(a), Type::Result(b)) => {
            optional(path, "result ok".into(), a.ok(), b.ok(), &differ)
                .or_else(|| optional(path, "result error".into(), a.err(), b.err(), &differ))
        }
        (Type::Tuple(a), Type::Tuple(b)) => {
            let (a, b): (Vec<Type>, Vec<Type>) = (a.types().collect(), b.types().collect());
            if a.len() != b.len() {
                return differ();
            }
            a.iter()
                .zip(&b)
                .enumerate()
                .find_map(|(i, (a, b))| nested(path, format!("tuple item {i}"), a, b))
        }
        (Type::Record(a), Type::Record(b)) => {
            let (a, b): (Vec<_>, Vec<_>) = (a.fields().collect(), b.fields().collect());
            let names = |fields: &[wasmtime::component::types::Field<'_>]| {
                fields
                    .iter()
                    .map(|f| f.name.to_string())
                    .collect::<Vec<_>>()
            };
            if names(&a) != names(&b) {
                return differ();
            }
            a.iter()
                .zip(&b)
                .find_map(|(a, b)| nested(path, format!("record field `{}`", a.name), &a.ty, &b.ty))
        }
        (Type::Variant(a), Type::Variant(b)) => {
            let (a, b): (Vec<_>, Vec<_>) = (a.cases().collect(), b.cases().collect());
            let names_a: Vec<&str> = a.iter().map(|c| c.name).collect();
            let names_b: Vec<&str> = b.iter().map(|c| c.name).collect();
            if names_a != names_b {
                return differ();
            }
            a.iter().zip(&b).find_map(|(a, b)| {
                optional(
                    path,
                    format!("variant case `{}`", a.name),
                    a.ty.clone(),
                    b.ty.clone(),
                    &differ,
                )
            })
        }
        (Type::Enum(a), Type::Enum(b)) => (!a.names().eq(b.names())).then(differ).flatten(),
        (Type::Flags(a), Type::Flags(b)) => (!a.names().eq(b.names())).then(differ).flatten(),
        (a, b) if is_primitive(a) && std::mem::discriminant(a) == std::mem::discriminant(b) => None,
        _ => differ(),
    }
}

/// Compares the inner types of a part named `step`, with `step` on the path while inside.
fn nested(path: &mut Vec<String>, step: String, ours: &Type, theirs: &Type) -> Option<String> {
    path.push(step);
    let found = diff(ours, theirs, path);
    if found.is_none() {
        path.pop();
    }
    found
}

/// Compares optional payloads: both absent match, one absent differs.
fn optional(
    path: &mut Vec<String>,
    step: String,
    ours: Option<Type>,
    theirs: Option<Type>,
    differ: &dyn Fn() -> Option<String>,
) -> Option<String> {
    match (ours, theirs) {
        (None, None) => None,
        (Some(a), Some(b)) => nested(path, step, &a, &b),
        _ => {
            path.push(step);
            differ()
        }
    }
}

/// Why values of `ty` cannot be forwarded from one store to another, if they cannot.
fn unforwardable(ty: &Type) -> Option<&'static str> {
    match ty {
        Type::Own(_) | Type::Borrow(_) => Some(
            "a resource cannot cross between components on this host: keep linked interfaces \
             to plain records and functions",
        ),
        Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            Some("futures, streams and error contexts cannot cross between components on this host")
        }
        _ => None,
    }
}

fn is_primitive(ty: &Type) -> bool {
    matches!(
        ty,
        Type::Bool
            | Type::S8
            | Type::U8
            | Type::S16
            | Type::U16
            | Type::S32
            | Type::U32
            | Type::S64
            | Type::U64
            | Type::Float32
            | Type::Float64
            | Type::Char
            | Type::String
    )
}

/// A type in WIT syntax, with named types spelled out structurally (WIT names of records and
/// variants are not part of a component's type).
pub fn render(ty: &Type) -> String {
    let mut out = String::new();
    render_into(&mut out, ty, 0);
    out
}

/// A function type in WIT syntax: `func(a: s64) -> result<_, string>`.
pub fn render_func(func: &ComponentFunc) -> String {
    let mut out = String::from(if func.async_() {
        "async func("
    } else {
        "func("
    });
    for (i, (name, ty)) in func.params().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{name}: ");
        render_into(&mut out, &ty, 0);
    }
    out.push(')');
    for ty in func.results() {
        out.push_str(" -> ");
        render_into(&mut out, &ty, 0);
    }
    out
}

fn render_into(out: &mut String, ty: &Type, depth: usize) {
    if depth > MAX_RENDER_DEPTH {
        out.push_str("...");
        return;
    }
    let inner = |out: &mut String, ty: &Type| render_into(out, ty, depth + 1);
    match ty {
        Type::Bool => out.push_str("bool"),
        Type::S8 => out.push_str("s8"),
        Type::U8 => out.push_str("u8"),
        Type::S16 => out.push_str("s16"),
        Type::U16 => out.push_str("u16"),
        Type::S32 => out.push_str("s32"),
        Type::U32 => out.push_str("u32"),
        Type::S64 => out.push_str("s64"),
        Type::U64 => out.push_str("u64"),
        Type::Float32 => out.push_str("f32"),
        Type::Float64 => out.push_str("f64"),
        Type::Char => out.push_str("char"),
        Type::String => out.push_str("string"),
        Type::List(list) => {
            out.push_str("list<");
            inner(out, &list.ty());
            out.push('>');
        }
        Type::FixedLengthList(list) => {
            out.push_str("list<");
            inner(out, &list.ty());
            let _ = write!(out, ", {}>", list.len());
        }
        Type::Map(map) => {
            out.push_str("map<");
            inner(out, &map.key());
            out.push_str(", ");
            inner(out, &map.value());
            out.push('>');
        }
        Type::Option(option) => {
            out.push_str("option<");
            inner(out, &option.ty());
            out.push('>');
        }
        Type::Result(result) => {
            out.push_str("result<");
            match result.ok() {
                Some(ok) => inner(out, &ok),
                None => out.push('_'),
            }
            if let Some(err) = result.err() {
                out.push_str(", ");
                inner(out, &err);
            }
            out.push('>');
        }
        Type::Tuple(tuple) => {
            out.push_str("tuple<");
            for (i, ty) in tuple.types().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                inner(out, &ty);
            }
            out.push('>');
        }
        Type::Record(record) => {
            out.push_str("record { ");
            for (i, field) in record.fields().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{}: ", field.name);
                inner(out, &field.ty);
            }
            out.push_str(" }");
        }
        Type::Variant(variant) => {
            out.push_str("variant { ");
            for (i, case) in variant.cases().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(case.name);
                if let Some(ty) = &case.ty {
                    out.push('(');
                    inner(out, ty);
                    out.push(')');
                }
            }
            out.push_str(" }");
        }
        Type::Enum(names) => {
            let names: Vec<&str> = names.names().collect();
            let _ = write!(out, "enum {{ {} }}", names.join(", "));
        }
        Type::Flags(names) => {
            let names: Vec<&str> = names.names().collect();
            let _ = write!(out, "flags {{ {} }}", names.join(", "));
        }
        Type::Own(_) => out.push_str("own<resource>"),
        Type::Borrow(_) => out.push_str("borrow<resource>"),
        Type::Future(_) => out.push_str("future"),
        Type::Stream(_) => out.push_str("stream"),
        Type::ErrorContext => out.push_str("error-context"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::component::types::ComponentItem;
    use wasmtime::component::Component;
    use wasmtime::Engine;

    /// The function `f` of interface `shop:t/i@0.1.0` imported by a component with this
    /// instance type body.
    fn func(engine: &Engine, body: &str) -> ComponentFunc {
        let text = format!(r#"(component (import "shop:t/i@0.1.0" (instance {body})))"#);
        let component = Component::new(engine, wat::parse_str(&text).unwrap()).unwrap();
        let ty = component.component_type();
        let (_, item) = ty.imports(engine).next().unwrap();
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            panic!("an instance")
        };
        let found = instance
            .exports(engine)
            .find_map(|(name, item)| match item.ty {
                ComponentItem::ComponentFunc(f) if name == "f" => Some(f),
                _ => None,
            });
        found.unwrap()
    }

    const LINE: &str = r#"(type $line' (record (field "product-id" s64) (field "quantity" s64)))
                          (export "line" (type $line (eq $line')))"#;

    #[test]
    fn same_structure_in_two_components_matches() {
        let engine = Engine::default();
        let body = format!(
            r#"{LINE}
               (export "f" (func (param "ids" (list s64))
                                 (result (result (list $line) (error string)))))"#
        );
        let a = func(&engine, &body);
        let b = func(&engine, &body.replace("\"ids\"", "\"other-name\""));
        assert_eq!(func_mismatch(&a, &b), None);
        assert_eq!(
            render_func(&a),
            "func(ids: list<s64>) -> result<list<record { product-id: s64, quantity: s64 }>, string>"
        );
    }

    #[test]
    fn a_different_field_type_is_named_with_its_path() {
        let engine = Engine::default();
        let body = format!(
            r#"{LINE}
               (export "f" (func (result (result (list $line) (error string)))))"#
        );
        let a = func(&engine, &body);
        let b = func(
            &engine,
            &body.replace("(field \"quantity\" s64)", "(field \"quantity\" u32)"),
        );
        let why = func_mismatch(&a, &b).unwrap();
        assert_eq!(
            why,
            "result: in result ok > list element > record field `quantity`, `s64` here, `u32` there"
        );
    }

    #[test]
    fn renamed_field_parameter_count_and_variant_cases_differ() {
        let engine = Engine::default();
        let base = format!(r#"{LINE} (export "f" (func (param "l" $line)))"#);
        let a = func(&engine, &base);
        let renamed = func(&engine, &base.replace("\"quantity\"", "\"qty\""));
        assert!(func_mismatch(&a, &renamed)
            .unwrap()
            .starts_with("parameter `l`: `record { product-id: s64, quantity: s64 }` here"));
        let two = func(
            &engine,
            &format!(r#"{LINE} (export "f" (func (param "l" $line) (param "m" s64)))"#),
        );
        assert_eq!(
            func_mismatch(&a, &two).unwrap(),
            "it takes 1 parameter(s) here, 2 there"
        );

        let variant = |cases: &str| {
            func(
                &engine,
                &format!(
                    r#"(type $e' (variant {cases})) (export "e" (type $e (eq $e')))
                       (export "f" (func (result (result (error $e)))))"#
                ),
            )
        };
        let v1 = variant(r#"(case "unknown" s64) (case "invalid" string)"#);
        let v2 = variant(r#"(case "unknown" s64) (case "invalid")"#);
        let v3 = variant(r#"(case "unknown" s64) (case "invalid" string)"#);
        assert_eq!(func_mismatch(&v1, &v3), None);
        assert!(func_mismatch(&v1, &v2)
            .unwrap()
            .contains("variant case `invalid`"));
    }

    #[test]
    fn results_options_and_enums_compare_structurally() {
        let engine = Engine::default();
        let f = |result: &str| {
            func(
                &engine,
                &format!(r#"(export "f" (func (result {result})))"#),
            )
        };
        let ok_opt = f("(result (option string) (error string))");
        assert_eq!(
            func_mismatch(&ok_opt, &f("(result (option string) (error string))")),
            None
        );
        assert!(func_mismatch(&ok_opt, &f("(result (error string))")).is_some());
        assert!(func_mismatch(&ok_opt, &f("(result (option string))")).is_some());
        assert!(func_mismatch(&f("bool"), &f("u8")).is_some());

        let e = |names: &str| {
            func(
                &engine,
                &format!(
                    r#"(type $e' (enum {names})) (export "e" (type $e (eq $e')))
                       (export "f" (func (result $e)))"#
                ),
            )
        };
        assert_eq!(func_mismatch(&e(r#""a" "b""#), &e(r#""a" "b""#)), None);
        assert!(func_mismatch(&e(r#""a" "b""#), &e(r#""b" "a""#)).is_some());
    }

    #[test]
    fn resources_never_match() {
        let engine = Engine::default();
        let body = r#"(export "r" (type $r (sub resource)))
                      (export "f" (func (param "x" (borrow $r))))"#;
        let a = func(&engine, body);
        let b = func(&engine, body);
        assert!(func_mismatch(&a, &b).unwrap().contains("resource"));
    }
}
