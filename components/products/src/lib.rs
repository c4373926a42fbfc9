//! The products service: the shop's catalogue (API.md, "Products").

/// The service's name: its database is named by the `products_database` variable.
pub const SERVICE: &str = "products";

mod domain;
mod handlers;
mod storage;

use shop_guest::error::ApiError;
use shop_guest::request::ApiRequest;
use shop_guest::response;
use shop_guest::routing::{self, LIST_CREATE, RETRIEVE_UPDATE_DESTROY};
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
