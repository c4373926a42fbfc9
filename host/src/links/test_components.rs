//! Small components in WAT for the tests of links and of the runtime that forwards them.

use wasmtime::component::Component;
use wasmtime::Engine;

pub fn component(engine: &Engine, wat: &str) -> Component {
    Component::new(engine, wat::parse_str(wat).unwrap()).unwrap()
}

/// A component that exports `shop:p/i@0.1.0` with some of the functions
/// `get: func(id: s64) -> s64` and `put: func(id: s64)`, and `get` as `f` too.
pub fn exporter(engine: &Engine, funcs: &[&str]) -> Component {
    component(engine, &exporter_wat(funcs, "local.get 0"))
}

/// The text of [`exporter`], with `get`'s core body.
pub fn exporter_wat(funcs: &[&str], get_body: &str) -> String {
    let lifted = |name: &str| match name {
        "get" => r#"(func $get (param "id" s64) (result s64) (canon lift (core func $m "get")))"#,
        _ => r#"(func $put (param "id" s64) (canon lift (core func $m "put")))"#,
    };
    let defs: Vec<&str> = funcs.iter().map(|f| lifted(f)).collect();
    let exports: Vec<String> = funcs
        .iter()
        .map(|f| format!(r#"(export "{f}" (func ${f}))"#))
        .collect();
    format!(
        r#"(component
                 (core module $code
                   (func (export "get") (param i64) (result i64) {get_body})
                   (func (export "put") (param i64)))
                 (core instance $m (instantiate $code))
                 {}
                 (instance $i {})
                 (export "shop:p/i@0.1.0" (instance $i))
                 (export "f" (func $get)))"#,
        defs.join(" "),
        exports.join(" ")
    )
}

pub fn importer(engine: &Engine, name: &str, funcs: &str) -> Component {
    component(
        engine,
        &format!(r#"(component (import "{name}" (instance {funcs})))"#),
    )
}

pub const GET: &str = r#"(export "get" (func (param "id" s64) (result s64)))"#;
pub const PUT: &str = r#"(export "put" (func (param "id" s64)))"#;

/// A component whose `run: func(x: s64) -> s64` returns `get(x) + 1`, `get` imported from
/// `shop:p/i@0.1.0`.
pub const CALLER: &str = r#"(component
  (import "shop:p/i@0.1.0" (instance $p (export "get" (func (param "id" s64) (result s64)))))
  (core func $get (canon lower (func $p "get")))
  (core module $code
    (import "p" "get" (func $get (param i64) (result i64)))
    (func (export "run") (param i64) (result i64) local.get 0 call $get i64.const 1 i64.add))
  (core instance $m (instantiate $code (with "p" (instance (export "get" (func $get))))))
  (func $run (param "x" s64) (result s64) (canon lift (core func $m "run")))
  (export "run" (func $run)))"#;
