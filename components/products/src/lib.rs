//! The products service: the shop's catalogue (API.md, "Products"). Besides HTTP it exports
//! `shop:products/catalogue` (current names, prices and stock, for the cart) and
//! `shop:products/inventory` (stock reservations, for checkout), as wit/products.wit defines.

/// The service's name: its database is named by the `products_database` variable.
pub const SERVICE: &str = "products";

mod bindings;
mod clients;
mod domain;
mod exports;
mod handlers;
mod reservations;
mod storage;

use shop_guest::error::ApiError;
use shop_guest::request::ApiRequest;
use shop_guest::response;
use shop_guest::routing::{self, ApiPath, LIST_CREATE, RETRIEVE, RETRIEVE_UPDATE_DESTROY};
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

/// The paths of the catalogue; a product's id as sent (its handlers parse it, after the staff
/// check where there is one: a bad id is then a 401 or 403 before it is a 404).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProductPath<'a> {
    /// `/api/products/`
    List,
    /// `/api/products/history/`: matched before a product's path, whose id it would be.
    History,
    /// `/api/products/{id}/`
    Product(&'a str),
}

impl<'a> ApiPath<'a> for ProductPath<'a> {
    fn from_segments(segments: &[&'a str]) -> Option<Self> {
        match *segments {
            ["api", "products"] => Some(Self::List),
            ["api", "products", "history"] => Some(Self::History),
            ["api", "products", id] => Some(Self::Product(id)),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::List => "Product List",
            Self::History => "Product History",
            Self::Product(_) => "Product Instance",
        }
    }

    fn allow(self) -> &'static [&'static str] {
        match self {
            Self::List => LIST_CREATE,
            Self::History => RETRIEVE,
            Self::Product(_) => RETRIEVE_UPDATE_DESTROY,
        }
    }
}

/// The route table: path first (404), then method (405), then the handler.
fn route(request: &ApiRequest) -> Result<Response, ApiError> {
    // Under Spin nothing else answers the probes of deploy/: the shop host answers these
    // paths itself (checking every database for /healthz) and never routes them here.
    if request.path() == "/healthz" {
        return handlers::health();
    }
    if request.path() == "/livez" {
        return handlers::live();
    }
    routing::route(request, |path, method| {
        Some(match (path, method) {
            (ProductPath::List, "GET" | "HEAD") => handlers::list(request),
            (ProductPath::List, "POST") => handlers::create(request),
            (ProductPath::History, "GET" | "HEAD") => handlers::history(request),
            (ProductPath::Product(id), "GET" | "HEAD") => handlers::retrieve(id),
            (ProductPath::Product(id), "PUT") => handlers::update(request, id, false),
            (ProductPath::Product(id), "PATCH") => handlers::update(request, id, true),
            (ProductPath::Product(id), "DELETE") => handlers::destroy(request, id),
            _ => return None,
        })
    })
}
