//! The cart service: each user's cart, priced from the catalogue's current names and prices
//! (API.md, "Carts"). It imports `shop:products/catalogue` and exports `shop:cart/carts`
//! (wit/cart.wit), which checkout uses to read a cart and to clear what it ordered.

/// The service's name: its database is named by the `cart_database` variable.
pub const SERVICE: &str = "cart";

mod bindings;
mod clients;
mod domain;
mod exports;
mod handlers;
mod storage;

use shop_guest::auth;
use shop_guest::error::ApiError;
use shop_guest::request::ApiRequest;
use shop_guest::response;
use shop_guest::routing::{self, ApiPath, CREATE, RETRIEVE, UPDATE};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest) -> Response {
    response::finish(ApiRequest::read(request).and_then(|request| route(&request)))
}

/// The paths of the cart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CartPath {
    /// `/api/carts/`
    Cart,
    /// `/api/carts/add_item/`
    AddItem,
    /// `/api/carts/remove_item/`
    RemoveItem,
    /// `/api/carts/update_quantity/`
    UpdateQuantity,
}

impl ApiPath<'_> for CartPath {
    fn from_segments(segments: &[&str]) -> Option<Self> {
        match *segments {
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
/// path needs a signed-in user whose token accounts confirms), then method (405), then the
/// handler.
fn route(request: &ApiRequest) -> Result<Response, ApiError> {
    let path = CartPath::parse(request.path())?;
    let user = auth::require_user(request, &clients::Accounts)?;
    routing::answer(path, request.method(), |path, method| {
        Some(match (path, method) {
            (CartPath::Cart, "GET" | "HEAD") => handlers::show(user),
            (CartPath::AddItem, "POST") => handlers::add_item(request, user),
            (CartPath::RemoveItem, "POST") => handlers::remove_item(request, user),
            (CartPath::UpdateQuantity, "PUT") => handlers::update_quantity(request, user),
            _ => return None,
        })
    })
}
