//! What the orders service reads and writes over HTTP, as types: the responses it serializes
//! and the request bodies it accepts. Its `openapi` module describes them in the OpenAPI
//! document.

use std::fmt;

use serde::Serialize;
use shop_guest::money::Money;
use shop_guest::time::Timestamp;
use utoipa::ToSchema;

/// Where an order is in its life: `pending` → `processing` → `shipped` → `delivered`, one
/// step at a time; `cancelled` from `pending` or `processing` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Placed; its stock is reserved.
    Pending,
    /// Being prepared.
    Processing,
    /// On its way.
    Shipped,
    /// With the customer (final).
    Delivered,
    /// Called off; its stock goes back (final).
    Cancelled,
}

impl OrderStatus {
    /// Every status, in the order of the flow.
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::Pending,
        OrderStatus::Processing,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
    ];

    /// The name the API and the database use.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Processing => "processing",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// The status of a name (exact, lower case), if there is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An order as the API shows it; the order key and the release flag stay inside the service.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 12, "user_id": 3, "status": "pending", "total_amount": "25.00",
    "shipping_address": "1 Rabbit Hole",
    "items": [{"id": 30, "product_id": 7, "product_name": "Espresso cup", "quantity": 2,
               "price": "12.50"}],
    "created_at": "2026-11-25T13:00:00.000000Z", "updated_at": "2026-11-25T13:00:00.000000Z"
}))]
pub struct Order {
    #[schema(minimum = 1)]
    pub id: i64,
    /// The buyer.
    pub user_id: i64,
    pub status: OrderStatus,
    /// The sum of the lines, at their prices when ordered.
    pub total_amount: Money,
    pub shipping_address: String,
    pub items: Vec<OrderItem>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The key the order's stock reservation is held under in the products service.
    #[serde(skip)]
    pub order_key: String,
    /// Whether a cancelled order's stock went back (false while a release is owed).
    #[serde(skip)]
    pub stock_released: bool,
}

/// One line of an order, with the product's name and unit price when it was ordered.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderItem {
    pub id: i64,
    pub product_id: i64,
    pub product_name: String,
    #[schema(minimum = 1)]
    pub quantity: i64,
    /// The unit price when ordered.
    pub price: Money,
}

/// The body of `POST /api/orders/` (optional).
#[derive(ToSchema)]
#[schema(example = json!({"shipping_address": "1 Rabbit Hole"}))]
pub struct Checkout {
    /// Where to ship; blank or left out: the address of the buyer's profile (a 400 if that
    /// is blank too).
    #[schema(required = false, pattern = r"^[^\x00]*$")]
    pub shipping_address: String,
}

/// The body of `POST /api/orders/{id}/status/`.
#[derive(ToSchema)]
#[schema(example = json!({"status": "processing"}))]
pub struct StatusChange {
    /// The next status of the flow (any other change is a 409).
    pub status: OrderStatus,
}
