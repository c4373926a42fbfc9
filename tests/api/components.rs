//! What the built components import: only WASI 0.2, Spin's interfaces and the project's own,
//! so that any Spin runtime (and this host) can run them.

use crate::helpers::*;

fn allowed(import: &str) -> bool {
    let wasi_02 = import.starts_with("wasi:") && import.contains("@0.2.");
    let spin = import.starts_with("spin:") || import.starts_with("fermyon:spin/");
    let own = import.starts_with("shop:");
    wasi_02 || spin || own
}

#[test]
fn products_imports_only_wasi_spin_and_shop_interfaces() {
    build_components();
    let path = repo_root().join("target/wasm32-wasip2/release/products.wasm");
    let engine = wasmtime::Engine::default();
    let component = wasmtime::component::Component::from_file(&engine, &path)
        .expect("products.wasm is a component");
    let ty = component.component_type();
    let imports: Vec<String> = ty
        .imports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("spin:sqlite/sqlite@3.0.0")),
        "{imports:?}"
    );
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("spin:postgres/postgres@4.0.0")),
        "{imports:?}"
    );
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("fermyon:spin/variables@2.0.0")),
        "{imports:?}"
    );
    let odd: Vec<&String> = imports.iter().filter(|i| !allowed(i)).collect();
    assert!(odd.is_empty(), "unexpected imports {odd:?} in {imports:?}");
    let exports: Vec<String> = ty
        .exports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    assert!(
        exports
            .iter()
            .any(|e| e.starts_with("wasi:http/incoming-handler@0.2")),
        "{exports:?}"
    );
}
