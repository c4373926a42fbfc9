//! The `shop:cart/carts` export, for checkout.

use crate::bindings;
use crate::bindings::exports::shop::cart::carts::{CartLine, Guest};
use crate::handlers;

/// The component's implementation of its exports.
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
