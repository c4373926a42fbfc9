//! The products' world (wit/products.wit): the sessions it imports (clients.rs), the catalogue
//! and inventory it exports (exports.rs).

#![allow(missing_docs, clippy::all)]

spin_sdk::wit_bindgen::generate!({
    path: ["../../wit/accounts.wit", "../../wit/products.wit"],
    world: "shop:products/products",
    // The sessions belong to another package (accounts.wit): generate their bindings too.
    generate_all,
    runtime_path: "::spin_sdk::wit_bindgen::rt",
});
