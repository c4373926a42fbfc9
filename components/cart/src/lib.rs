//! The cart service: each user's cart, priced from the catalogue's current names and prices
//! (API.md, "Carts"). It imports `shop:products/catalogue` and exports `shop:cart/carts`
//! (wit/cart.wit), which checkout uses to read a cart and to clear what it ordered.

/// The service's name: its database is named by the `cart_database` variable.
pub const SERVICE: &str = "cart";

mod catalogue;
mod domain;
mod handlers;
mod storage;

use shop_guest::auth;
use shop_guest::error::ApiError;
use shop_guest::request::ApiRequest;
use shop_guest::response;
use shop_guest::routing::{self, CREATE, RETRIEVE, UPDATE};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest) -> Response {
    response::finish(ApiRequest::read(request).and_then(|request| route(&request)))
}

/// The paths of the cart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CartPath {
    Cart,
    AddItem,
    RemoveItem,
    UpdateQuantity,
}

impl CartPath {
    fn from_segments(segments: &[&str]) -> Option<Self> {
        match segments {
            ["api", "carts"] => Some(Self::Cart),
            ["api", "carts", "add_item"] => Some(Self::AddItem),
            ["api", "carts", "remove_item"] => Some(Self::RemoveItem),
            ["api", "carts", "update_quantity"] => Some(Self::UpdateQuantity),
            _ => None,
        }
    }

    /// The name `OPTIONS` shows, as DRF names a viewset's views.
    fn name(self) -> &'static str {
        match self {
            Self::Cart => "Cart List",
            Self::AddItem => "Add item",
            Self::RemoveItem => "Remove item",
            Self::UpdateQuantity => "Update quantity",
        }
    }

    fn allow(self) -> &'static [&'static str] {
        match self {
            Self::Cart => RETRIEVE,
            Self::AddItem | Self::RemoveItem => CREATE,
            Self::UpdateQuantity => UPDATE,
        }
    }
}

/// The route table: path first (404), then the caller (401: as in DRF, every method of a cart
/// path needs a signed-in user), then method (405), then the handler.
fn route(request: &ApiRequest) -> Result<Response, ApiError> {
    let segments = routing::segments(request.path()).ok_or_else(ApiError::not_found)?;
    let path = CartPath::from_segments(&segments).ok_or_else(ApiError::not_found)?;
    let user = auth::require_user(request)?;
    match (path, request.method()) {
        (CartPath::Cart, "GET" | "HEAD") => handlers::show(user),
        (CartPath::AddItem, "POST") => handlers::add_item(request, user),
        (CartPath::RemoveItem, "POST") => handlers::remove_item(request, user),
        (CartPath::UpdateQuantity, "PUT") => handlers::update_quantity(request, user),
        (path, "OPTIONS") => routing::options(path.name(), path.allow()),
        (path, method) => Err(routing::method_not_allowed(method, path.allow())),
    }
}

/// The cart's world: the catalogue it imports, the carts it exports.
mod bindings {
    #![allow(missing_docs, clippy::all)]
    spin_sdk::wit_bindgen::generate!({
        path: ["../../wit/products.wit", "../../wit/cart.wit"],
        world: "shop:cart/cart",
        // The catalogue belongs to another package (products.wit): generate its bindings too.
        generate_all,
        runtime_path: "::spin_sdk::wit_bindgen::rt",
    });
}

/// The `shop:cart/carts` export, for checkout.
mod carts {
    use crate::bindings;
    use crate::bindings::exports::shop::cart::carts::{CartLine, Guest};
    use crate::handlers;

    struct Carts;

    impl Guest for Carts {
        fn get_cart(user_id: i64) -> Result<Vec<CartLine>, String> {
            Ok(handlers::get_cart(user_id)?
                .into_iter()
                .map(|(product_id, quantity)| CartLine {
                    product_id,
                    quantity,
                })
                .collect())
        }

        fn clear_ordered(user_id: i64, ordered: Vec<CartLine>) -> Result<(), String> {
            let ordered: Vec<(i64, i64)> = ordered
                .iter()
                .map(|line| (line.product_id, line.quantity))
                .collect();
            handlers::clear_ordered(user_id, &ordered)
        }
    }

    bindings::export!(Carts with_types_in bindings);
}
