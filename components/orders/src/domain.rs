//! The orders' types and rules: statuses and the changes allowed between them, the keys a
//! checkout is known by, and the checks on what clients send. Only valid values can be built.

use shop_guest::error::ApiError;
use shop_guest::json::{FieldValue, Fields, JsonKind, TextRules, REQUIRED};
use shop_guest::money::Money;
use shop_guest::query::ListParams;
use shop_guest::request::Query;

pub use shop_api::orders::api::OrderStatus;

/// Whether an order may go from `from` to `to`: one step forward along
/// pending → processing → shipped → delivered, or to cancelled from pending or processing.
/// Anything else, staying in the same status included, is refused.
pub fn check_change(from: OrderStatus, to: OrderStatus) -> Result<(), StatusChangeError> {
    use OrderStatus::*;
    match (from, to) {
        (Pending, Processing)
        | (Processing, Shipped)
        | (Shipped, Delivered)
        | (Pending | Processing, Cancelled) => Ok(()),
        _ => Err(StatusChangeError { from, to }),
    }
}

/// A status change the flow does not allow (a 409).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct StatusChangeError {
    /// The order's status.
    pub from: OrderStatus,
    /// The status asked for.
    pub to: OrderStatus,
}

impl StatusChangeError {
    /// Why the change is refused, in the client's words.
    fn message(&self) -> String {
        let (from, to) = (self.from, self.to);
        if from == to {
            format!("The order is already {from}.")
        } else if to == OrderStatus::Cancelled {
            format!("The order is {from}: only pending or processing orders can be cancelled.")
        } else {
            format!("The order cannot go from {from} to {to}.")
        }
    }
}

impl From<StatusChangeError> for ApiError {
    fn from(error: StatusChangeError) -> Self {
        ApiError::Conflict(error.to_string())
    }
}

pub use shop_api::orders::api::{Order, OrderItem};

/// Whether `user` may see and cancel `order`: its owner or staff.
pub fn visible_to(order: &Order, user: shop_guest::User) -> bool {
    user.is_staff || order.user_id == user.id
}

/// Whether `order` is cancelled but its stock has not gone back yet.
pub fn owes_stock(order: &Order) -> bool {
    order.status == OrderStatus::Cancelled && !order.stock_released
}

/// A line reserved for a new order: what the products service held, at its price then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub product_id: i64,
    pub product_name: String,
    pub quantity: i64,
    pub price: Money,
}

/// The exact sum of price × quantity over the lines; `None` beyond what money can hold.
pub fn order_total(lines: &[OrderLine]) -> Option<Money> {
    let total = lines.iter().try_fold(Money::ZERO, |total, line| {
        line.price
            .checked_mul(line.quantity)
            .and_then(|subtotal| total.checked_add(subtotal))
    })?;
    (total.cents() <= Money::MAX_CENTS).then_some(total)
}

/// A client's `Idempotency-Key` header: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The most characters a key may have.
    pub const MAX_CHARS: usize = 255;

    /// Reads the header, if sent; any other value is a 400.
    pub fn from_header(value: Option<&str>) -> Result<Option<Self>, ApiError> {
        let Some(value) = value else {
            return Ok(None);
        };
        let valid = (1..=Self::MAX_CHARS).contains(&value.len())
            && value.bytes().all(|b| b.is_ascii_graphic());
        if valid {
            Ok(Some(Self(value.to_owned())))
        } else {
            Err(ApiError::BadRequest(format!(
                "The Idempotency-Key header must be 1 to {} visible ASCII characters.",
                Self::MAX_CHARS
            )))
        }
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The key an order's stock reservation is held under: derived from the user and the
/// client's idempotency key, so that a retry finds the reservation (and the order) it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderKey(String);

impl OrderKey {
    /// `u<user_id>:<key>`: a retry of the same checkout reserves under the same key.
    pub fn for_retry(user_id: i64, key: &IdempotencyKey) -> Self {
        Self(format!("u{user_id}:{}", key.as_str()))
    }

    /// A key of its own for a checkout sent without an idempotency key (`r<hex>`, which no
    /// `u...` key can equal).
    pub fn random() -> Result<Self, ApiError> {
        shop_guest::auth::random_hex(16).map(|hex| Self(format!("r{hex}")))
    }

    /// A key read back from the database.
    pub fn stored(key: String) -> Self {
        Self(key)
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How long a checkout may take before it counts as dead and what it holds is given back: the
/// `checkout_expiry_seconds` variable (default 60), which must outlast the runtime's request
/// deadline. Anything but a whole number of seconds from 1 to 86,400 gives the default.
pub fn checkout_expiry_seconds(variable: Option<&str>) -> i64 {
    const DEFAULT: i64 = 60;
    variable
        .and_then(|text| text.trim().parse::<i64>().ok())
        .filter(|seconds| (1..=86_400).contains(seconds))
        .unwrap_or(DEFAULT)
}

/// The body of `POST /api/orders/`: an optional shipping address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRequest {
    /// The address the client gave, if not blank.
    pub shipping_address: Option<String>,
}

/// The most characters a shipping address may have (API.md, "Orders"): as many as a profile's
/// address, so that one customer cannot store a mebibyte per order.
pub const SHIPPING_ADDRESS_MAX_CHARS: usize = 1000;

/// The 400 when neither the body nor the profile gives an address.
pub fn shipping_address_required() -> ApiError {
    ApiError::field("shipping_address", REQUIRED)
}

impl CheckoutRequest {
    /// Reads the body: `shipping_address` is optional text of at most 1,000 characters once
    /// trimmed; blank counts as not given.
    pub fn read(mut fields: Fields<'_>) -> Result<Self, ApiError> {
        let rules = TextRules {
            max_chars: Some(SHIPPING_ADDRESS_MAX_CHARS),
            ..TextRules::blank_allowed()
        };
        let shipping_address = fields.optional("shipping_address", |v| v.text(rules));
        fields.finish()?;
        Ok(Self {
            shipping_address: shipping_address.filter(|address| !address.is_empty()),
        })
    }
}

/// The profile's address as the default shipping address: a 400 naming `shipping_address` when
/// the profile has none (or a blank one), or one longer than an order may hold (a profile saved
/// before addresses were bounded).
pub fn default_address(profile_address: Option<String>) -> Result<String, ApiError> {
    let address = profile_address
        .map(|address| address.trim().to_owned())
        .filter(|address| !address.is_empty())
        .ok_or_else(shipping_address_required)?;
    if address.chars().count() > SHIPPING_ADDRESS_MAX_CHARS {
        return Err(ApiError::field(
            "shipping_address",
            format!(
                "The profile's address has more than {SHIPPING_ADDRESS_MAX_CHARS} characters: \
                 send a shipping_address."
            ),
        ));
    }
    Ok(address)
}

/// Reads `status` from a status-change body, as DRF's `ChoiceField` does.
pub fn read_status(mut fields: Fields<'_>) -> Result<OrderStatus, ApiError> {
    let status = fields.required("status", status_choice);
    fields.finish()?;
    status.ok_or_else(|| ApiError::field("status", REQUIRED))
}

/// One status from a JSON value; DRF compares `str(value)` with the choices.
fn status_choice(value: &FieldValue<'_>) -> Result<OrderStatus, Vec<String>> {
    let text = match value.kind() {
        JsonKind::String => value.as_str().unwrap_or_default(),
        _ => value
            .number_text()
            .unwrap_or_else(|| value.raw().to_owned()),
    };
    OrderStatus::parse(&text).ok_or_else(|| vec![format!("\"{text}\" is not a valid choice.")])
}

/// Which orders a list shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderFilter {
    /// Only this user's orders (everyone's for staff).
    pub user_id: Option<i64>,
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
}

/// The most characters of `?status=`: more than any status has, so that a 400 never echoes a
/// client's megabyte back.
pub const STATUS_FILTER_MAX_CHARS: usize = 20;

impl OrderFilter {
    /// The caller's own orders (all orders for staff), filtered by `?status=` (blank: no
    /// filter; unknown: 400, as django-filter answers it).
    pub fn for_caller(user: shop_guest::User, query: &Query) -> Result<Self, ApiError> {
        let mut params = ListParams::new(query);
        let status = params.read("status", STATUS_FILTER_MAX_CHARS, |text| {
            if text.is_empty() {
                return Ok(None);
            }
            OrderStatus::parse(text).map(Some).ok_or_else(|| {
                format!("Select a valid choice. {text} is not one of the available choices.")
            })
        });
        params.finish()?;
        Ok(Self {
            user_id: (!user.is_staff).then_some(user.id),
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn checkout_expiry_defaults_and_refuses_nonsense() {
        use super::checkout_expiry_seconds as expiry;
        assert_eq!(expiry(None), 60);
        assert_eq!(expiry(Some(" 3 ")), 3);
        for bad in ["0", "-5", "1.5", "", "abc", "86401"] {
            assert_eq!(expiry(Some(bad)), 60, "{bad:?}");
        }
    }

    use super::*;
    use shop_guest::json::parse_object;
    use shop_guest::User;
    use OrderStatus::*;

    #[test]
    fn statuses_round_trip_their_names() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert_eq!(OrderStatus::parse("Pending"), None);
        assert_eq!(OrderStatus::parse(""), None);
    }

    #[test]
    fn every_transition_is_decided() {
        let allowed = [
            (Pending, Processing),
            (Processing, Shipped),
            (Shipped, Delivered),
            (Pending, Cancelled),
            (Processing, Cancelled),
        ];
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                let result = check_change(from, to);
                if allowed.contains(&(from, to)) {
                    assert_eq!(result, Ok(()), "{from} -> {to}");
                } else {
                    assert_eq!(
                        result,
                        Err(StatusChangeError { from, to }),
                        "{from} -> {to}"
                    );
                }
            }
        }
    }

    #[test]
    fn refused_changes_are_conflicts_that_say_why() {
        let same = check_change(Shipped, Shipped).unwrap_err();
        assert_eq!(same.to_string(), "The order is already shipped.");
        let late_cancel = check_change(Shipped, Cancelled).unwrap_err();
        assert_eq!(
            late_cancel.to_string(),
            "The order is shipped: only pending or processing orders can be cancelled."
        );
        let skip = check_change(Pending, Shipped).unwrap_err();
        assert_eq!(
            skip.to_string(),
            "The order cannot go from pending to shipped."
        );
        let back = check_change(Delivered, Pending).unwrap_err();
        assert_eq!(
            back.to_string(),
            "The order cannot go from delivered to pending."
        );
        assert_eq!(ApiError::from(back).status(), 409);
    }

    fn line(quantity: i64, cents: i64) -> OrderLine {
        OrderLine {
            product_id: 1,
            product_name: "x".into(),
            quantity,
            price: Money::from_cents(cents),
        }
    }

    #[test]
    fn totals_are_exact() {
        let lines = [line(3, 1999), line(1, 1), line(7, 10)];
        assert_eq!(order_total(&lines).unwrap().to_string(), "60.68");
        assert_eq!(order_total(&[]).unwrap().to_string(), "0.00");
        assert_eq!(order_total(&[line(i64::MAX, 2)]), None);
        assert_eq!(order_total(&[line(2, Money::MAX_CENTS)]), None);
        assert_eq!(
            order_total(&[line(1, Money::MAX_CENTS)])
                .unwrap()
                .to_string(),
            "99999999.99"
        );
    }

    #[test]
    fn idempotency_keys_are_visible_ascii() {
        assert_eq!(IdempotencyKey::from_header(None).unwrap(), None);
        let key = IdempotencyKey::from_header(Some("abc-123_~!"))
            .unwrap()
            .unwrap();
        assert_eq!(key.as_str(), "abc-123_~!");
        let longest = "k".repeat(255);
        assert!(IdempotencyKey::from_header(Some(&longest)).is_ok());
        for bad in ["", "a b", "é", "tab\there", &"k".repeat(256)] {
            let error = IdempotencyKey::from_header(Some(bad)).unwrap_err();
            assert_eq!(error.status(), 400, "{bad:?}");
        }
    }

    #[test]
    fn order_keys_tell_retries_and_one_offs_apart() {
        let key = IdempotencyKey::from_header(Some("k1")).unwrap().unwrap();
        assert_eq!(OrderKey::for_retry(42, &key).as_str(), "u42:k1");
        assert_ne!(OrderKey::for_retry(43, &key), OrderKey::for_retry(42, &key));
    }

    fn checkout(body: &str) -> Result<CheckoutRequest, ApiError> {
        CheckoutRequest::read(Fields::new(parse_object(body.as_bytes()).unwrap()))
    }

    #[test]
    fn checkout_address_is_optional_and_blank_means_absent() {
        assert_eq!(checkout("{}").unwrap().shipping_address, None);
        assert_eq!(
            checkout(r#"{"shipping_address": "  "}"#)
                .unwrap()
                .shipping_address,
            None
        );
        assert_eq!(
            checkout(r#"{"shipping_address": " 1 Main St "}"#)
                .unwrap()
                .shipping_address
                .as_deref(),
            Some("1 Main St")
        );
        assert_eq!(
            checkout(r#"{"shipping_address": null}"#)
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            checkout(r#"{"shipping_address": []}"#)
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(default_address(Some(" here ".into())).unwrap(), "here");
        assert_eq!(default_address(Some(" ".into())).unwrap_err().status(), 400);
        assert_eq!(default_address(None).unwrap_err().status(), 400);
        assert_eq!(default_address(Some("a".repeat(1000))).unwrap().len(), 1000);
        let long = default_address(Some("a".repeat(1001))).unwrap_err();
        let long = serde_json::from_slice::<serde_json::Value>(&long.body()).unwrap();
        assert!(long["shipping_address"].is_array(), "{long}");
        let address =
            |chars: usize| format!(r#"{{"shipping_address": " {} "}}"#, "é".repeat(chars));
        assert_eq!(
            checkout(&address(1000))
                .unwrap()
                .shipping_address
                .unwrap()
                .chars()
                .count(),
            1000
        );
        let over = checkout(&address(1001)).unwrap_err();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&over.body()).unwrap(),
            serde_json::json!({"shipping_address": ["Ensure this field has no more than 1000 characters."]})
        );
        let required =
            serde_json::from_slice::<serde_json::Value>(&shipping_address_required().body())
                .unwrap();
        assert_eq!(
            required,
            serde_json::json!({"shipping_address": ["This field is required."]})
        );
    }

    fn status_body(body: &str) -> Result<OrderStatus, serde_json::Value> {
        read_status(Fields::new(parse_object(body.as_bytes()).unwrap()))
            .map_err(|error| serde_json::from_slice(&error.body()).unwrap())
    }

    #[test]
    fn status_bodies_are_choices() {
        assert_eq!(status_body(r#"{"status": "shipped"}"#), Ok(Shipped));
        assert_eq!(
            status_body(r#"{"status": "lost"}"#),
            Err(serde_json::json!({"status": ["\"lost\" is not a valid choice."]}))
        );
        assert_eq!(
            status_body(r#"{"status": 5}"#),
            Err(serde_json::json!({"status": ["\"5\" is not a valid choice."]}))
        );
        assert_eq!(
            status_body("{}"),
            Err(serde_json::json!({"status": ["This field is required."]}))
        );
    }

    #[test]
    fn list_filters_follow_the_caller() {
        let user = User {
            id: 7,
            is_staff: false,
        };
        let staff = User {
            id: 1,
            is_staff: true,
        };
        let filter = OrderFilter::for_caller(user, &Query::parse("status=shipped")).unwrap();
        assert_eq!(
            filter,
            OrderFilter {
                user_id: Some(7),
                status: Some(Shipped)
            }
        );
        let filter = OrderFilter::for_caller(staff, &Query::parse("status=")).unwrap();
        assert_eq!(filter, OrderFilter::default());
        let error = OrderFilter::for_caller(staff, &Query::parse("status=lost")).unwrap_err();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&error.body()).unwrap(),
            serde_json::json!({"status": ["Select a valid choice. lost is not one of the available choices."]})
        );
    }

    #[test]
    fn the_status_filter_is_bounded() {
        let staff = User {
            id: 1,
            is_staff: true,
        };
        let body = |query: &str| {
            let error = OrderFilter::for_caller(staff, &Query::parse(query)).unwrap_err();
            assert_eq!(error.status(), 400, "{query}");
            serde_json::from_slice::<serde_json::Value>(&error.body()).unwrap()
        };
        assert_eq!(
            body(&format!("status={}", "x".repeat(100_000))),
            serde_json::json!({"status": ["Ensure this field has no more than 20 characters."]})
        );
        // Given 50 times, the last one counts.
        let repeated = ["status=lost"; 50].join("&") + "&status=pending";
        let filter = OrderFilter::for_caller(staff, &Query::parse(&repeated)).unwrap();
        assert_eq!(filter.status, Some(Pending));
        assert_eq!(
            body(&(["status=pending"; 50].join("&") + "&status=lost")),
            serde_json::json!({"status": ["Select a valid choice. lost is not one of the available choices."]})
        );
    }
}
