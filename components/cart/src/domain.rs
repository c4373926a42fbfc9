//! The cart's types: request bodies that can only hold valid values, and the cart as the API
//! shows it, priced from the catalogue.

use shop_guest::error::ApiError;
use shop_guest::json::{FieldValue, Fields};
use shop_guest::money::Money;
use shop_guest::time::Timestamp;

/// A user's cart, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cart {
    pub id: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One line of a cart, as stored: a product and how many units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartItem {
    pub id: i64,
    pub product_id: i64,
    pub quantity: i64,
}

/// A product as the catalogue shows it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub price: Money,
    pub stock: i64,
}

/// The most units of a product a cart may hold (as many as a product's stock can be).
pub const MAX_QUANTITY: i64 = 2_147_483_647;

/// Reads `product_id` (DRF `IntegerField()`): any integer; one no product has is a 404 later.
fn product_id(value: &FieldValue<'_>) -> Result<i64, Vec<String>> {
    value.integer(i64::MIN, i64::MAX)
}

/// The body of `POST /api/carts/add_item/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddItem {
    pub product_id: i64,
    /// At least 1 (default 1).
    pub quantity: i64,
}

impl AddItem {
    /// `product_id` required; `quantity` from 1 up, 1 when left out.
    pub fn read(mut fields: Fields<'_>) -> Result<Self, ApiError> {
        let product_id = fields.required("product_id", product_id);
        let quantity = fields.optional("quantity", |v| v.integer(1, MAX_QUANTITY));
        fields.finish()?;
        match product_id {
            Some(product_id) => Ok(Self {
                product_id,
                quantity: quantity.unwrap_or(1),
            }),
            None => Err(missing("product_id")),
        }
    }
}

/// The body of `POST /api/carts/remove_item/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveItem {
    pub product_id: i64,
}

impl RemoveItem {
    /// `product_id` required.
    pub fn read(mut fields: Fields<'_>) -> Result<Self, ApiError> {
        let product_id = fields.required("product_id", product_id);
        fields.finish()?;
        product_id
            .map(|product_id| Self { product_id })
            .ok_or_else(|| missing("product_id"))
    }
}

/// The body of `PUT /api/carts/update_quantity/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetQuantity {
    pub product_id: i64,
    /// 0 removes the line.
    pub quantity: i64,
}

impl SetQuantity {
    /// `product_id` and `quantity` (from 0 up) required.
    pub fn read(mut fields: Fields<'_>) -> Result<Self, ApiError> {
        let product_id = fields.required("product_id", product_id);
        let quantity = fields.required("quantity", |v| v.integer(0, MAX_QUANTITY));
        fields.finish()?;
        match (product_id, quantity) {
            (Some(product_id), Some(quantity)) => Ok(Self {
                product_id,
                quantity,
            }),
            (None, _) => Err(missing("product_id")),
            (_, None) => Err(missing("quantity")),
        }
    }
}

/// `Fields::finish` already reported a missing required field; this is never reached.
fn missing(field: &str) -> ApiError {
    ApiError::field(field, shop_guest::json::REQUIRED)
}

/// The 409 for a cart line above the product's stock, naming the product.
pub fn above_stock(product: &Product) -> ApiError {
    ApiError::Conflict(match product.stock {
        0 => format!("{} is out of stock.", product.name),
        1 => format!("Only 1 unit of {} in stock.", product.name),
        units => format!("Only {units} units of {} in stock.", product.name),
    })
}

/// The 400 for an add that would take a line past [`MAX_QUANTITY`] units: nothing changes.
pub fn too_many_units() -> ApiError {
    ApiError::field(
        "quantity",
        format!("Ensure the cart holds no more than {MAX_QUANTITY} units of a product."),
    )
}

/// A cart whose total (a line's subtotal, their sum or the item count) is beyond what 64-bit
/// cents can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotalTooLarge;

impl TotalTooLarge {
    /// The 400 for a change that would make the total too large, as an order's total too large
    /// is: the change is not made.
    pub fn refusal(self) -> ApiError {
        ApiError::BadRequest("The cart total is too large.".to_owned())
    }

    /// The 409 for a cart whose total already is (its prices rose since the units went in):
    /// a quantity has to go down first.
    pub fn conflict(self) -> ApiError {
        ApiError::Conflict(
            "The cart total is too large to show; lower a quantity or remove a line.".to_owned(),
        )
    }
}

/// The 404 for a product the catalogue does not have.
pub fn unknown_product(product_id: i64) -> ApiError {
    ApiError::NotFound(format!("No product has id {product_id}."))
}

/// The 404 for a product that is not in the cart.
pub fn not_in_cart(product_id: i64) -> ApiError {
    ApiError::NotFound(format!("Product {product_id} is not in the cart."))
}

pub use shop_api::cart::api::{CartView, ItemView};

/// Prices `items` (oldest first) with the catalogue's current names and prices; a line whose
/// product no longer exists is left out, of the lines and of the totals.
pub fn price_cart<'p>(
    cart: &Cart,
    items: &[CartItem],
    product: impl Fn(i64) -> Option<&'p Product>,
) -> Result<CartView, TotalTooLarge> {
    let too_large = || TotalTooLarge;
    let mut lines = Vec::with_capacity(items.len());
    let mut total = Money::ZERO;
    let mut item_count: i64 = 0;
    for item in items {
        let Some(product) = product(item.product_id) else {
            continue;
        };
        let subtotal = product
            .price
            .checked_mul(item.quantity)
            .ok_or_else(too_large)?;
        total = total.checked_add(subtotal).ok_or_else(too_large)?;
        item_count = item_count
            .checked_add(item.quantity)
            .ok_or_else(too_large)?;
        lines.push(ItemView {
            id: item.id,
            product_id: item.product_id,
            product_name: product.name.clone(),
            unit_price: product.price,
            quantity: item.quantity,
            subtotal,
        });
    }
    Ok(CartView {
        id: cart.id,
        items: lines,
        total,
        item_count,
        created_at: cart.created_at,
        updated_at: cart.updated_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use shop_guest::json::parse_object;

    fn fields(body: &str) -> Fields<'_> {
        Fields::new(parse_object(body.as_bytes()).unwrap())
    }

    fn errors(error: ApiError) -> serde_json::Value {
        assert_eq!(error.status(), 400);
        serde_json::from_slice(&error.body()).unwrap()
    }

    #[test]
    fn add_item_defaults_to_one_unit() {
        assert_eq!(
            AddItem::read(fields(r#"{"product_id": 7}"#)).unwrap(),
            AddItem {
                product_id: 7,
                quantity: 1
            }
        );
        assert_eq!(
            AddItem::read(fields(r#"{"product_id": 7.0, "quantity": 3}"#)).unwrap(),
            AddItem {
                product_id: 7,
                quantity: 3
            }
        );
        assert_eq!(
            errors(AddItem::read(fields(r#"{"quantity": 0}"#)).unwrap_err()),
            json!({
                "product_id": ["This field is required."],
                "quantity": ["Ensure this value is greater than or equal to 1."],
            })
        );
        assert_eq!(
            errors(AddItem::read(fields(r#"{"product_id": "x", "quantity": 1.5}"#)).unwrap_err()),
            json!({
                "product_id": ["A valid integer is required."],
                "quantity": ["A valid integer is required."],
            })
        );
        assert!(AddItem::read(fields(r#"{"product_id": 1, "quantity": 99999999999999}"#)).is_err());
    }

    #[test]
    fn set_quantity_needs_both_fields_and_allows_zero() {
        assert_eq!(
            SetQuantity::read(fields(r#"{"product_id": 2, "quantity": 0}"#)).unwrap(),
            SetQuantity {
                product_id: 2,
                quantity: 0
            }
        );
        assert_eq!(
            errors(SetQuantity::read(fields(r#"{"product_id": 2}"#)).unwrap_err()),
            json!({"quantity": ["This field is required."]})
        );
        assert_eq!(
            errors(SetQuantity::read(fields(r#"{"product_id": 2, "quantity": -1}"#)).unwrap_err()),
            json!({"quantity": ["Ensure this value is greater than or equal to 0."]})
        );
        assert_eq!(
            errors(RemoveItem::read(fields("{}")).unwrap_err()),
            json!({"product_id": ["This field is required."]})
        );
    }

    #[test]
    fn carts_are_priced_exactly_from_the_catalogue() {
        let at = Timestamp::parse("2026-11-25T13:00:00Z").unwrap();
        let cart = Cart {
            id: 4,
            created_at: at,
            updated_at: at,
        };
        let items = [
            CartItem {
                id: 10,
                product_id: 1,
                quantity: 3,
            },
            CartItem {
                id: 11,
                product_id: 2,
                quantity: 1,
            },
            CartItem {
                id: 12,
                product_id: 99,
                quantity: 5,
            },
        ];
        let catalogue = [
            Product {
                id: 1,
                name: "Mug".into(),
                price: Money::from_cents(1999),
                stock: 9,
            },
            Product {
                id: 2,
                name: "Pin".into(),
                price: Money::from_cents(10),
                stock: 9,
            },
        ];
        let view = price_cart(&cart, &items, |id| catalogue.iter().find(|p| p.id == id)).unwrap();
        assert_eq!(
            serde_json::to_value(&view).unwrap(),
            json!({
                "id": 4,
                "items": [
                    {"id": 10, "product_id": 1, "product_name": "Mug", "unit_price": "19.99",
                     "quantity": 3, "subtotal": "59.97"},
                    {"id": 11, "product_id": 2, "product_name": "Pin", "unit_price": "0.10",
                     "quantity": 1, "subtotal": "0.10"},
                ],
                "total": "60.07",
                "item_count": 4,
                "created_at": "2026-11-25T13:00:00.000000Z",
                "updated_at": "2026-11-25T13:00:00.000000Z",
            })
        );
        let empty = price_cart(&cart, &[], |_| None).unwrap();
        assert_eq!(empty.total.to_string(), "0.00");
        assert_eq!(empty.item_count, 0);
    }

    #[test]
    fn totals_past_64_bit_cents_are_refused_not_wrapped() {
        let at = Timestamp::parse("2026-11-25T13:00:00Z").unwrap();
        let cart = Cart {
            id: 4,
            created_at: at,
            updated_at: at,
        };
        let dear = Product {
            id: 1,
            name: "Yacht".into(),
            price: Money::from_cents(Money::MAX_CENTS),
            stock: MAX_QUANTITY,
        };
        let line = |id, quantity| CartItem {
            id,
            product_id: 1,
            quantity,
        };
        let price = |items: &[CartItem]| price_cart(&cart, items, |_| Some(&dear));
        // 922,337,203 units of the dearest product fit 64-bit cents; twice that does not.
        assert!(price(&[line(1, 922_337_203)]).is_ok());
        assert_eq!(price(&[line(1, MAX_QUANTITY)]), Err(TotalTooLarge));
        assert_eq!(
            price(&[line(1, 922_337_203), line(2, 922_337_203)]),
            Err(TotalTooLarge)
        );
        assert_eq!(TotalTooLarge.refusal().status(), 400);
        assert_eq!(TotalTooLarge.conflict().status(), 409);
        let units = serde_json::from_slice::<serde_json::Value>(&too_many_units().body()).unwrap();
        assert!(units["quantity"].is_array(), "{units}");
    }

    #[test]
    fn stock_conflicts_name_the_product() {
        let mut lamp = Product {
            id: 1,
            name: "Lamp".into(),
            price: Money::from_cents(100),
            stock: 3,
        };
        let error = above_stock(&lamp);
        assert_eq!(error.status(), 409);
        assert_eq!(error.detail().unwrap(), "Only 3 units of Lamp in stock.");
        lamp.stock = 0;
        assert_eq!(
            above_stock(&lamp).detail().unwrap(),
            "Lamp is out of stock."
        );
    }
}
