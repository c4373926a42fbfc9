//! The orders service: checkout from the cart with the stock reserved in the products service,
//! the orders' history, and their status flow (API.md, "Orders"). It calls products'
//! `inventory`, cart's `carts` and accounts' `profiles` over WIT (wit/orders.wit).

/// The service's name: its database is named by the `orders_database` variable.
pub const SERVICE: &str = "orders";

mod checkout;
mod clients;
mod domain;
mod handlers;
mod status;
mod storage;

use shop_guest::error::ApiError;
use shop_guest::request::ApiRequest;
use shop_guest::response;
use shop_guest::routing::{self, ApiPath, CREATE, LIST_CREATE, RETRIEVE};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest) -> Response {
    response::finish(ApiRequest::read(request).and_then(|request| route(&request)))
}

/// The paths of the orders; an order's id as sent (its handler parses it after checking the
/// caller, so a bad id is a 401 before it is a 404).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OrderPath<'a> {
    /// `/api/orders/`
    List,
    /// `/api/orders/history/`: matched before an order's path, whose id it would be.
    History,
    /// `/api/orders/{id}/`
    Order(&'a str),
    /// `/api/orders/{id}/cancel/`
    Cancel(&'a str),
    /// `/api/orders/{id}/status/`
    Status(&'a str),
}

impl<'a> ApiPath<'a> for OrderPath<'a> {
    fn from_segments(segments: &[&'a str]) -> Option<Self> {
        match *segments {
            ["api", "orders"] => Some(Self::List),
            ["api", "orders", "history"] => Some(Self::History),
            ["api", "orders", id] => Some(Self::Order(id)),
            ["api", "orders", id, "cancel"] => Some(Self::Cancel(id)),
            ["api", "orders", id, "status"] => Some(Self::Status(id)),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::List => "Order List",
            Self::History => "Order History",
            Self::Order(_) => "Order Instance",
            Self::Cancel(_) => "Cancel",
            Self::Status(_) => "Update Status",
        }
    }

    fn allow(self) -> &'static [&'static str] {
        match self {
            Self::List => LIST_CREATE,
            Self::Order(_) | Self::History => RETRIEVE,
            Self::Cancel(_) | Self::Status(_) => CREATE,
        }
    }
}

/// The route table: path first (404), then method (405), then the handler.
fn route(request: &ApiRequest) -> Result<Response, ApiError> {
    routing::route(request, |path, method| {
        Some(match (path, method) {
            (OrderPath::List, "GET" | "HEAD") => handlers::list(request),
            (OrderPath::List, "POST") => handlers::create(request),
            (OrderPath::History, "GET" | "HEAD") => handlers::history(request),
            (OrderPath::Order(id), "GET" | "HEAD") => handlers::retrieve(request, id),
            (OrderPath::Cancel(id), "POST") => handlers::cancel(request, id),
            (OrderPath::Status(id), "POST") => handlers::set_status(request, id),
            _ => return None,
        })
    })
}
