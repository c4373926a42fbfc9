//! The orders service's operations in the OpenAPI document, over its `api` types (the docs
//! component merges them with the other services').

use shop_guest::openapi::{
    BadRequest, BodyErrors, Conflict, Forbidden, NotFound, PageQuery, ServiceUnavailable,
    Unauthorized,
};
use shop_guest::paging::Page;
use utoipa::OpenApi;

use super::api::{Checkout, Order, OrderItem, OrderStatus, StatusChange};
use crate::history::{Action, Changes, HistoryEntry, HistoryQuery};

/// The orders service's part of the document.
#[derive(OpenApi)]
#[openapi(
    paths(create, list, history, retrieve, cancel, set_status),
    components(schemas(
        Order, OrderItem, OrderStatus, Checkout, StatusChange, HistoryEntry, Action, Changes
    )),
    tags((name = "orders", description = "Orders placed from carts, and their status flow."))
)]
pub struct OrdersApi;

/// The list's filter.
#[allow(dead_code)] // only its parameters are read
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// Only orders in this status (blank: all).
    #[param(required = false, inline,
            schema_with = status_filter)]
    pub status: String,
}

/// A status, or blank for no filter.
fn status_filter() -> utoipa::openapi::schema::ObjectBuilder {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some([
            "",
            "pending",
            "processing",
            "shipped",
            "delivered",
            "cancelled",
        ]))
}

#[utoipa::path(
    post, path = "/api/orders/", tag = "orders", operation_id = "orders_create",
    summary = "Place an order from the cart",
    description = "Takes the stock of every line of the cart at once, or none (409 naming the \
                   product that is short); then the cart is emptied. An empty cart is a 400. A \
                   retry with the same `Idempotency-Key` returns the first order instead of \
                   making a second one. Without a key, one cart still makes at most one order: \
                   placements racing on the same cart make one, the others see the emptied \
                   cart (400); one still waiting after 5 s for another checkout of the user is \
                   a 409.",
    params(("Idempotency-Key" = Option<String>, Header, max_length = 255,
            pattern = r"^[!-~]{1,255}$",
            description = "Any key of 1 to 255 visible ASCII characters, new for each order \
                           (a UUID, say); retries of one order reuse it.")),
    request_body(content = Checkout, content_type = "application/json"),
    security(("jwtAuth" = [])),
    responses(
        (status = 201, description = "The order (the first one, for a retry).", body = Order),
        (status = 401, response = Unauthorized),
        (status = 409, response = Conflict),
        (status = 503, response = ServiceUnavailable),
        BodyErrors,
    )
)]
#[allow(dead_code)]
fn create() {}

#[utoipa::path(
    get, path = "/api/orders/", tag = "orders", operation_id = "orders_list",
    summary = "List orders, newest first",
    description = "The user's own orders; a staff user sees everyone's.",
    params(PageQuery, OrderQuery),
    security(("jwtAuth" = [])),
    responses(
        (status = 200, description = "A page of orders.", body = Page<Order>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    )
)]
#[allow(dead_code)]
fn list() {}

#[utoipa::path(
    get, path = "/api/orders/history/", tag = "orders", operation_id = "orders_history",
    summary = "The status changes staff made to orders (staff only)",
    description = "**Staff only.** Every status change and cancellation a staff user made \
                   (through `/status/` or `/cancel/`, their own orders included), newest first: \
                   action `status`, changes `{\"status\": [before, after]}`. A customer's \
                   cancellation of their own order is not a staff change and is not listed. \
                   Recorded in the transaction of the change: a refused change left no entry.",
    params(PageQuery, HistoryQuery),
    security(("jwtAuth" = [])),
    responses(
        (status = 200, description = "A page of history entries.", body = Page<HistoryEntry>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
#[allow(dead_code)]
fn history() {}

#[utoipa::path(
    get, path = "/api/orders/{id}/", tag = "orders", operation_id = "orders_retrieve",
    summary = "Get an order (its owner or staff)",
    description = "Another user's order is a 404.",
    params(("id" = i64, Path, minimum = 1, description = "The order's id.")),
    security(("jwtAuth" = [])),
    responses(
        (status = 200, description = "The order.", body = Order),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    )
)]
#[allow(dead_code)]
fn retrieve() {}

#[utoipa::path(
    post, path = "/api/orders/{id}/cancel/", tag = "orders", operation_id = "orders_cancel",
    summary = "Cancel an order (its owner or staff)",
    description = "Only a pending or processing order can be cancelled (else 409); its stock \
                   goes back exactly once.",
    params(("id" = i64, Path, minimum = 1, description = "The order's id.")),
    security(("jwtAuth" = [])),
    responses(
        (status = 200, description = "The cancelled order.", body = Order),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = ServiceUnavailable),
    )
)]
#[allow(dead_code)]
fn cancel() {}

#[utoipa::path(
    post, path = "/api/orders/{id}/status/", tag = "orders", operation_id = "orders_set_status",
    summary = "Move an order along its status flow (staff only)",
    description = "**Staff only.** One step at a time; `cancelled` from `pending` or \
                   `processing` puts the stock back. Any other change, including to the same \
                   status, is a 409.",
    params(("id" = i64, Path, minimum = 1, description = "The order's id.")),
    request_body(content = StatusChange, content_type = "application/json"),
    security(("jwtAuth" = [])),
    responses(
        (status = 200, description = "The order as it is now.", body = Order),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = ServiceUnavailable),
        BodyErrors,
    )
)]
#[allow(dead_code)]
fn set_status() {}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    #[test]
    fn the_description_follows_the_api_conventions() {
        let document = super::OrdersApi::openapi();
        assert!(!document.paths.paths.is_empty());
        assert_eq!(
            shop_guest::openapi::convention_problems(&document),
            Vec::<String>::new()
        );
    }
}
