//! The cart's world (wit/cart.wit): the catalogue and the sessions it imports (clients.rs), the
//! carts it exports (exports.rs).

#![allow(missing_docs, clippy::all)]

spin_sdk::wit_bindgen::generate!({
    path: ["../../wit/accounts.wit", "../../wit/products.wit", "../../wit/cart.wit"],
    world: "shop:cart/cart",
    // The catalogue and the sessions belong to other packages: generate their bindings too.
    generate_all,
    runtime_path: "::spin_sdk::wit_bindgen::rt",
});
