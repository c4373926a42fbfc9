//! What the built components import: only WASI 0.2, Spin's interfaces and the project's own,
//! so that any Spin runtime (and this host) can run them.

use crate::helpers::*;

fn allowed(import: &str) -> bool {
    let wasi_02 = import.starts_with("wasi:") && import.contains("@0.2.");
    let spin = import.starts_with("spin:") || import.starts_with("fermyon:spin/");
    let own = import.starts_with("shop:");
    wasi_02 || spin || own
}

/// The imports and exports of a built component.
fn world_of(name: &str) -> (Vec<String>, Vec<String>) {
    build_components();
    let path = repo_root().join(format!("target/wasm32-wasip2/release/{name}.wasm"));
    let engine = wasmtime::Engine::default();
    let component = wasmtime::component::Component::from_file(&engine, &path)
        .unwrap_or_else(|e| panic!("{name}.wasm is a component: {e}"));
    let ty = component.component_type();
    let imports = ty.imports(&engine).map(|(n, _)| n.to_string()).collect();
    let exports = ty.exports(&engine).map(|(n, _)| n.to_string()).collect();
    (imports, exports)
}

#[track_caller]
fn assert_portable(name: &str, exports_wanted: &[&str]) {
    let (imports, exports) = world_of(name);
    for spin in [
        "spin:sqlite/sqlite@3.0.0",
        "spin:postgres/postgres@4.0.0",
        "fermyon:spin/variables@2.0.0",
    ] {
        assert!(imports.iter().any(|i| i == spin), "{name}: {imports:?}");
    }
    let odd: Vec<&String> = imports.iter().filter(|i| !allowed(i)).collect();
    assert!(odd.is_empty(), "{name}: unexpected imports {odd:?}");
    for wanted in ["wasi:http/incoming-handler@0.2"]
        .iter()
        .chain(exports_wanted)
    {
        assert!(
            exports.iter().any(|e| e.starts_with(wanted)),
            "{name}: {exports:?}"
        );
    }
}

#[test]
fn products_imports_only_wasi_spin_and_shop_interfaces() {
    assert_portable("products", &[]);
}

#[test]
fn accounts_imports_only_wasi_spin_and_shop_interfaces() {
    assert_portable(
        "accounts",
        &[
            "shop:accounts/admin@0.1.0",
            "shop:accounts/profiles@0.1.0",
            "shop:accounts/sessions@0.1.0",
        ],
    );
}

#[test]
fn products_exports_catalogue_and_inventory() {
    assert_portable(
        "products",
        &[
            "shop:products/catalogue@0.1.0",
            "shop:products/inventory@0.1.0",
        ],
    );
}

#[test]
fn cart_orders_and_products_confirm_tokens_with_accounts() {
    for name in ["cart", "orders", "products"] {
        let (imports, _) = world_of(name);
        assert!(
            imports.iter().any(|i| i == "shop:accounts/sessions@0.1.0"),
            "{name}: {imports:?}"
        );
    }
}

#[test]
fn cart_imports_the_catalogue_and_exports_carts() {
    assert_portable("cart", &["shop:cart/carts@0.1.0"]);
    let (imports, _) = world_of("cart");
    assert!(
        imports.iter().any(|i| i == "shop:products/catalogue@0.1.0"),
        "{imports:?}"
    );
}

#[test]
fn orders_imports_inventory_carts_and_profiles() {
    assert_portable("orders", &[]);
    let (imports, _) = world_of("orders");
    for wanted in [
        "shop:products/inventory@0.1.0",
        "shop:cart/carts@0.1.0",
        "shop:accounts/profiles@0.1.0",
    ] {
        assert!(imports.iter().any(|i| i == wanted), "{imports:?}");
    }
}

#[test]
fn docs_needs_nothing_but_wasi_and_exports_only_its_handler() {
    // It compiles the services' descriptions, not their code: no database, no variables, no
    // link to another service, and none of the services' exports.
    assert_capability_free("docs");
}

#[test]
fn console_needs_nothing_but_wasi_and_exports_only_its_handler() {
    // The staff console serves its page; the page calls the API with the staff member's own
    // token. So it has no database, no variables and no link to a service.
    assert_capability_free("console");
}

/// A component that imports nothing but WASI 0.2 and exports only the HTTP handler.
#[track_caller]
fn assert_capability_free(name: &str) {
    let (imports, exports) = world_of(name);
    let odd: Vec<&String> = imports
        .iter()
        .filter(|i| !(i.starts_with("wasi:") && i.contains("@0.2.")))
        .collect();
    assert!(odd.is_empty(), "{name}: unexpected imports {odd:?}");
    assert_eq!(
        exports,
        ["wasi:http/incoming-handler@0.2.0"],
        "{name}: {exports:?}"
    );
}
