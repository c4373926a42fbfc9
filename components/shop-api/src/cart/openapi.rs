//! The cart service's operations in the OpenAPI document, over its `api` types (the docs
//! component merges them with the other services').

use shop_guest::openapi::{BodyErrors, Conflict, NotFound, ServiceUnavailable, Unauthorized};
use utoipa::OpenApi;

use super::api::{AddItem, CartView, ItemView, RemoveItem, SetQuantity};

/// The cart service's part of the document.
#[derive(OpenApi)]
#[openapi(
    paths(cart, add_item, remove_item, update_quantity),
    components(schemas(CartView, ItemView, AddItem, RemoveItem, SetQuantity)),
    tags((name = "carts", description = "Each user's shopping cart, priced with the \
                                         catalogue's current names and prices."))
)]
pub struct CartsApi;

#[utoipa::path(
    get, path = "/api/carts/", tag = "carts", operation_id = "carts_retrieve",
    summary = "The user's cart (made empty on first use)",
    security(("jwtAuth" = [])),
    responses(
        (status = 200, description = "The cart.", body = CartView),
        (status = 401, response = Unauthorized),
        (status = 503, response = ServiceUnavailable),
    )
)]
#[allow(dead_code)]
fn cart() {}

#[utoipa::path(
    post, path = "/api/carts/add_item/", tag = "carts", operation_id = "carts_add_item",
    summary = "Add units of a product to the cart",
    request_body(content = AddItem, content_type = "application/json"),
    security(("jwtAuth" = [])),
    responses(
        (status = 200, description = "The cart as it is now.", body = CartView),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = ServiceUnavailable),
        BodyErrors,
    )
)]
#[allow(dead_code)]
fn add_item() {}

#[utoipa::path(
    post, path = "/api/carts/remove_item/", tag = "carts", operation_id = "carts_remove_item",
    summary = "Remove a product from the cart",
    request_body(content = RemoveItem, content_type = "application/json"),
    security(("jwtAuth" = [])),
    responses(
        (status = 200, description = "The cart as it is now.", body = CartView),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 503, response = ServiceUnavailable),
        BodyErrors,
    )
)]
#[allow(dead_code)]
fn remove_item() {}

#[utoipa::path(
    put, path = "/api/carts/update_quantity/", tag = "carts",
    operation_id = "carts_update_quantity",
    summary = "Set the quantity of a product in the cart (0 removes it)",
    request_body(content = SetQuantity, content_type = "application/json"),
    security(("jwtAuth" = [])),
    responses(
        (status = 200, description = "The cart as it is now.", body = CartView),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = ServiceUnavailable),
        BodyErrors,
    )
)]
#[allow(dead_code)]
fn update_quantity() {}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    #[test]
    fn the_description_follows_the_api_conventions() {
        let document = super::CartsApi::openapi();
        assert!(!document.paths.paths.is_empty());
        assert_eq!(
            shop_guest::openapi::convention_problems(&document),
            Vec::<String>::new()
        );
    }
}
