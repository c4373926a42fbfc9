//! The products service: the shop's catalogue (API.md, "Products"). Besides HTTP it exports
//! `shop:products/catalogue` (current names, prices and stock, for the cart) and
//! `shop:products/inventory` (stock reservations, for checkout), as wit/products.wit defines.

/// The service's name: its database is named by the `products_database` variable.
pub const SERVICE: &str = "products";

mod domain;
mod handlers;
mod reservations;
mod storage;

use shop_guest::error::ApiError;
use shop_guest::request::ApiRequest;
use shop_guest::response;
use shop_guest::routing::{self, LIST_CREATE, RETRIEVE_UPDATE_DESTROY};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest) -> Response {
    #[allow(unused_mut)]
    let mut response =
        response::finish(ApiRequest::read(request).and_then(|request| route(&request)));
    #[cfg(feature = "variant-b")]
    response.set_header("x-shop-variant", "b");
    response
}

/// The route table: path first (404), then method (405), then the handler.
fn route(request: &ApiRequest) -> Result<Response, ApiError> {
    if request.path() == "/healthz" {
        // Under Spin nothing else answers the probes of deploy/: the shop host answers this
        // path itself (checking every database) and never routes it here.
        return handlers::health();
    }
    let segments = routing::segments(request.path()).ok_or_else(ApiError::not_found)?;
    match (segments.as_slice(), request.method()) {
        (["api", "products"], "GET" | "HEAD") => handlers::list(request),
        (["api", "products"], "POST") => handlers::create(request),
        (["api", "products"], "OPTIONS") => routing::options("Product List", LIST_CREATE),
        (["api", "products"], method) => Err(routing::method_not_allowed(method, LIST_CREATE)),

        (["api", "products", id], "GET" | "HEAD") => handlers::retrieve(id),
        (["api", "products", id], "PUT") => handlers::update(request, id, false),
        (["api", "products", id], "PATCH") => handlers::update(request, id, true),
        (["api", "products", id], "DELETE") => handlers::destroy(request, id),
        (["api", "products", _], "OPTIONS") => {
            routing::options("Product Instance", RETRIEVE_UPDATE_DESTROY)
        }
        (["api", "products", _], method) => {
            Err(routing::method_not_allowed(method, RETRIEVE_UPDATE_DESTROY))
        }

        _ => Err(ApiError::not_found()),
    }
}

/// The `shop:products/catalogue` and `shop:products/inventory` exports.
mod exports {
    mod bindings {
        #![allow(missing_docs, clippy::all)]
        spin_sdk::wit_bindgen::generate!({
            path: "../../wit/products.wit",
            world: "shop:products/products",
            runtime_path: "::spin_sdk::wit_bindgen::rt",
        });
    }

    use bindings::exports::shop::products::{catalogue, inventory};

    use crate::domain::{CatalogueEntry, ReserveError, ReservedLine, StockLine};
    use crate::handlers;

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

    fn product_info(entry: CatalogueEntry) -> catalogue::ProductInfo {
        catalogue::ProductInfo {
            id: entry.id,
            name: entry.name,
            price_cents: entry.price_cents,
            stock: entry.stock,
        }
    }

    fn reserved_line(line: ReservedLine) -> inventory::ReservedLine {
        inventory::ReservedLine {
            product_id: line.product_id,
            name: line.name,
            price_cents: line.price_cents,
            quantity: line.quantity,
        }
    }

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
}
