//! The cart's world (wit/cart.wit): the catalogue it imports (clients.rs), the carts it exports
//! (exports.rs).

#![allow(missing_docs, clippy::all)]

spin_sdk::wit_bindgen::generate!({
    path: ["../../wit/products.wit", "../../wit/cart.wit"],
    world: "shop:cart/cart",
    // The catalogue belongs to another package (products.wit): generate its bindings too.
    generate_all,
    runtime_path: "::spin_sdk::wit_bindgen::rt",
});
