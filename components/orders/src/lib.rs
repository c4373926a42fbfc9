//! The orders service: checkout from the cart with the stock reserved in the products service,
//! the orders' history, and their status flow (API.md, "Orders"). It calls products'
//! `inventory`, cart's `carts` and accounts' `profiles` over WIT (wit/orders.wit).

/// The service's name: its database is named by the `orders_database` variable.
pub const SERVICE: &str = "orders";

mod checkout;
mod domain;
mod handlers;
mod services;
mod status;
mod storage;

use shop_guest::error::ApiError;
use shop_guest::request::ApiRequest;
use shop_guest::response;
use shop_guest::routing::{self, CREATE, LIST_CREATE, RETRIEVE};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest) -> Response {
    response::finish(ApiRequest::read(request).and_then(|request| route(&request)))
}

/// The route table: path first (404), then method (405), then the handler.
fn route(request: &ApiRequest) -> Result<Response, ApiError> {
    let segments = routing::segments(request.path()).ok_or_else(ApiError::not_found)?;
    match (segments.as_slice(), request.method()) {
        (["api", "orders"], "GET" | "HEAD") => handlers::list(request),
        (["api", "orders"], "POST") => handlers::create(request),
        (["api", "orders"], "OPTIONS") => routing::options("Order List", LIST_CREATE),
        (["api", "orders"], method) => Err(routing::method_not_allowed(method, LIST_CREATE)),

        (["api", "orders", id], "GET" | "HEAD") => handlers::retrieve(request, id),
        (["api", "orders", _], "OPTIONS") => routing::options("Order Instance", RETRIEVE),
        (["api", "orders", _], method) => Err(routing::method_not_allowed(method, RETRIEVE)),

        (["api", "orders", id, "cancel"], "POST") => handlers::cancel(request, id),
        (["api", "orders", _, "cancel"], "OPTIONS") => routing::options("Cancel", CREATE),
        (["api", "orders", _, "cancel"], method) => {
            Err(routing::method_not_allowed(method, CREATE))
        }

        (["api", "orders", id, "status"], "POST") => handlers::set_status(request, id),
        (["api", "orders", _, "status"], "OPTIONS") => routing::options("Update Status", CREATE),
        (["api", "orders", _, "status"], method) => {
            Err(routing::method_not_allowed(method, CREATE))
        }

        _ => Err(ApiError::not_found()),
    }
}
