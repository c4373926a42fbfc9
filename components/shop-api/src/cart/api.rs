//! What the cart service reads and writes over HTTP, as types: the responses it serializes
//! and the request bodies it accepts. Its `openapi` module describes them in the OpenAPI
//! document.

use serde::Serialize;
use shop_guest::money::Money;
use shop_guest::time::Timestamp;
use utoipa::ToSchema;

/// A cart as the API shows it, priced with the catalogue's current names and prices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 5,
    "items": [{"id": 9, "product_id": 7, "product_name": "Espresso cup", "unit_price": "12.50",
               "quantity": 2, "subtotal": "25.00"}],
    "total": "25.00", "item_count": 2,
    "created_at": "2026-11-25T13:00:00.000000Z", "updated_at": "2026-11-25T13:00:00.000000Z"
}))]
pub struct CartView {
    pub id: i64,
    pub items: Vec<ItemView>,
    pub total: Money,
    /// The number of units (the sum of the quantities).
    #[schema(minimum = 0)]
    pub item_count: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One line of a cart as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ItemView {
    pub id: i64,
    pub product_id: i64,
    pub product_name: String,
    pub unit_price: Money,
    #[schema(minimum = 1)]
    pub quantity: i64,
    pub subtotal: Money,
}

/// The body of `POST /api/carts/add_item/`.
#[derive(ToSchema)]
#[schema(example = json!({"product_id": 7, "quantity": 2}))]
pub struct AddItem {
    /// A product of the catalogue (another id is a 404).
    pub product_id: i64,
    /// Units to add (default 1); more in the cart than in stock is a 409.
    #[schema(required = false, minimum = 1, maximum = 2_147_483_647)]
    pub quantity: i64,
}

/// The body of `POST /api/carts/remove_item/`.
#[derive(ToSchema)]
#[schema(example = json!({"product_id": 7}))]
pub struct RemoveItem {
    /// A product in the cart (another is a 404).
    pub product_id: i64,
}

/// The body of `PUT /api/carts/update_quantity/`.
#[derive(ToSchema)]
#[schema(example = json!({"product_id": 7, "quantity": 3}))]
pub struct SetQuantity {
    /// A product in the cart (another is a 404).
    pub product_id: i64,
    /// The new quantity; 0 removes the line; more than in stock is a 409.
    #[schema(minimum = 0, maximum = 2_147_483_647)]
    pub quantity: i64,
}
