//! The `shop:products/catalogue` and `shop:products/inventory` exports (wit/products.wit).

use crate::bindings;
use crate::bindings::exports::shop::products::{catalogue, inventory};

use crate::domain::{CatalogueEntry, ReserveError, ReservedLine, StockLine};
use crate::handlers;

/// The component's implementation of its exports.
struct Products;

impl catalogue::Guest for Products {
    fn get_products(ids: Vec<i64>) -> Result<Vec<catalogue::ProductInfo>, String> {
        let entries = handlers::get_products(&ids)?;
        Ok(entries.into_iter().map(product_info).collect())
    }
}

impl inventory::Guest for Products {
    fn reserve(
        order_key: String,
        lines: Vec<inventory::Line>,
    ) -> Result<Vec<inventory::ReservedLine>, inventory::ReserveError> {
        let lines = lines
            .into_iter()
            .map(|line| StockLine {
                product_id: line.product_id,
                quantity: line.quantity,
            })
            .collect();
        match handlers::reserve(order_key, lines) {
            Ok(reserved) => Ok(reserved.into_iter().map(reserved_line).collect()),
            Err(error) => Err(reserve_error(error)),
        }
    }

    fn release(order_key: String) -> Result<bool, String> {
        handlers::release(order_key)
    }
}

/// A catalogue entry as the WIT record.
fn product_info(entry: CatalogueEntry) -> catalogue::ProductInfo {
    catalogue::ProductInfo {
        id: entry.id,
        name: entry.name,
        price_cents: entry.price_cents,
        stock: entry.stock,
    }
}

/// A reserved line as the WIT record.
fn reserved_line(line: ReservedLine) -> inventory::ReservedLine {
    inventory::ReservedLine {
        product_id: line.product_id,
        name: line.name,
        price_cents: line.price_cents,
        quantity: line.quantity,
    }
}

/// Why a reservation was refused, as the WIT variant.
fn reserve_error(error: ReserveError) -> inventory::ReserveError {
    match error {
        ReserveError::UnknownProduct(id) => inventory::ReserveError::UnknownProduct(id),
        ReserveError::InsufficientStock(shortage) => {
            inventory::ReserveError::InsufficientStock(inventory::Shortage {
                product_id: shortage.product_id,
                name: shortage.name,
                requested: shortage.requested,
                available: shortage.available,
            })
        }
        ReserveError::Invalid(reason) => inventory::ReserveError::Invalid(reason),
        // Whatever the database said, nothing was reserved and the caller may retry.
        ReserveError::Storage(error) => inventory::ReserveError::Unavailable(error.to_string()),
    }
}

bindings::export!(Products with_types_in bindings);
