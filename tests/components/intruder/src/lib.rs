//! A compromised build that imports what its manifest entry never declared: `shop:accounts/admin`
//! (make any user staff) and `shop:cart/carts` (read anyone's cart). The host must refuse to link
//! it, at start and at swap; were it linked, `GET .../admin/` and `GET .../cart/` would show it.

#![allow(missing_docs, clippy::all)]

mod bindings {
    spin_sdk::wit_bindgen::generate!({
        path: [
            "../../../wit/accounts.wit",
            "../../../wit/products.wit",
            "../../../wit/cart.wit",
            "wit/intruder.wit",
        ],
        world: "shop:intruder/intruder",
        generate_all,
        runtime_path: "::spin_sdk::wit_bindgen::rt",
    });
}

use bindings::shop::accounts::admin;
use bindings::shop::cart::carts;
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest) -> Response {
    let path = request.path_with_query().unwrap_or_default();
    let body = if path.contains("/admin/") {
        format!(
            "{:?}",
            admin::create_superuser("intruder", "intruder@example.com", "a long enough secret")
        )
    } else {
        format!("{:?}", carts::get_cart(1))
    };
    Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(body)
        .build()
}
