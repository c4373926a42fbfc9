//! The other services orders calls, over their WIT interfaces (wit/): products' `inventory`,
//! cart's `carts`, accounts' `profiles` and `sessions`. Each call runs in that service, against
//! its own database; this module turns their answers into the orders' types and errors.

use shop_guest::error::ApiError;
use shop_guest::money::Money;

use crate::domain::{OrderKey, OrderLine};

mod bindings {
    #![allow(missing_docs, clippy::all)]
    spin_sdk::wit_bindgen::generate!({
        // Dependencies first: products' world imports accounts' sessions, cart's products'
        // catalogue.
        path: [
            "../../wit/accounts.wit",
            "../../wit/products.wit",
            "../../wit/cart.wit",
            "../../wit/orders.wit",
        ],
        world: "shop:orders/orders",
        // The imported interfaces live in other packages: generate their bindings here too.
        generate_all,
        runtime_path: "::spin_sdk::wit_bindgen::rt",
    });
}

use bindings::shop::accounts::{profiles, sessions};
use bindings::shop::cart::carts;
use bindings::shop::products::inventory;

pub use carts::CartLine;

/// The lines of the user's cart (empty when there is none).
pub fn cart_lines(user_id: i64) -> Result<Vec<CartLine>, ApiError> {
    carts::get_cart(user_id).map_err(|reason| ApiError::upstream("cart", &reason))
}

/// Removes the ordered lines from the user's cart; Err: the cart service's reason.
pub fn clear_ordered(user_id: i64, lines: &[OrderLine]) -> Result<(), String> {
    let ordered: Vec<CartLine> = lines
        .iter()
        .map(|line| CartLine {
            product_id: line.product_id,
            quantity: line.quantity,
        })
        .collect();
    carts::clear_ordered(user_id, &ordered)
}

/// The address on the user's profile (`None` for a user accounts does not know).
pub fn profile_address(user_id: i64) -> Result<Option<String>, ApiError> {
    profiles::shipping_address(user_id).map_err(|reason| ApiError::upstream("accounts", &reason))
}

shop_guest::accounts_sessions!(Accounts, sessions::current);

/// Takes the stock of every cart line under `key`, all or nothing, and answers the reserved
/// lines with their names and prices now. Short stock, or a product deleted since it went into
/// the cart, is a 409 naming it.
pub fn reserve(key: &OrderKey, cart: &[CartLine]) -> Result<Vec<OrderLine>, ApiError> {
    let lines: Vec<inventory::Line> = cart
        .iter()
        .map(|line| inventory::Line {
            product_id: line.product_id,
            quantity: line.quantity,
        })
        .collect();
    match inventory::reserve(key.as_str(), &lines) {
        Ok(reserved) => Ok(reserved
            .into_iter()
            .map(|line| OrderLine {
                product_id: line.product_id,
                product_name: line.name,
                quantity: line.quantity,
                price: Money::from_cents(line.price_cents),
            })
            .collect()),
        Err(inventory::ReserveError::InsufficientStock(short)) => Err(ApiError::Conflict(format!(
            "Insufficient stock for {}: requested {}, available {}.",
            short.name, short.requested, short.available
        ))),
        Err(inventory::ReserveError::UnknownProduct(id)) => Err(ApiError::Conflict(format!(
            "Product {id} is no longer available."
        ))),
        // The cart service hands out valid lines: anything else is a bug on one side.
        Err(inventory::ReserveError::Invalid(reason)) => Err(ApiError::Internal(format!(
            "products refused the cart's lines: {reason}"
        ))),
        Err(inventory::ReserveError::Unavailable(reason)) => {
            Err(ApiError::upstream("products", &reason))
        }
    }
}

/// Puts back the stock held under `key` (idempotent: true only the first time stock went
/// back); Err: the products service's reason.
pub fn release(key: &str) -> Result<bool, String> {
    inventory::release(key)
}
