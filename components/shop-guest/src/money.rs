//! Money: exact decimal amounts with two places, stored as integer cents.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Serialize, Serializer};

use crate::json::FieldValue;

/// DRF's message for input that is not a number.
pub const INVALID_NUMBER: &str = "A valid number is required.";

/// An amount of money: never negative, at most 99999999.99, exactly two decimal places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(Decimal);

impl Money {
    /// The largest amount (10 digits, 2 of them after the point), in cents.
    pub const MAX_CENTS: i64 = 9_999_999_999;
    /// Nothing.
    pub const ZERO: Money = Money(Decimal::from_parts(0, 0, 0, false, 2));

    /// The amount of `cents` minor units, as stored in the databases.
    pub fn from_cents(cents: i64) -> Self {
        Money(Decimal::new(cents, 2))
    }

    /// The amount in cents, for storage.
    pub fn cents(&self) -> i64 {
        let mut value = self.0;
        value.rescale(2);
        i64::try_from(value.mantissa()).unwrap_or(i64::MAX)
    }

    /// The amount as a decimal.
    pub fn amount(&self) -> Decimal {
        self.0
    }

    /// `self + other`, or `None` beyond what 64-bit cents hold.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.cents()
            .checked_add(other.cents())
            .map(Money::from_cents)
    }

    /// `self * quantity`, or `None` beyond what 64-bit cents hold.
    pub fn checked_mul(self, quantity: i64) -> Option<Money> {
        self.cents().checked_mul(quantity).map(Money::from_cents)
    }

    /// Parses client input as DRF's `DecimalField(max_digits=10, decimal_places=2, min_value=0)`
    /// does, with its messages.
    pub fn parse(text: &str) -> Result<Money, String> {
        const MAX_DIGITS: i64 = 10;
        const DECIMAL_PLACES: i64 = 2;
        let text = text.trim();
        if text.chars().count() > 1000 {
            return Err("String value too large.".to_owned());
        }
        let number = DecimalText::parse(text).ok_or_else(|| INVALID_NUMBER.to_owned())?;
        let precision = number.precision();
        if precision.total_digits > MAX_DIGITS {
            return Err(format!(
                "Ensure that there are no more than {MAX_DIGITS} digits in total."
            ));
        }
        if precision.decimal_places > DECIMAL_PLACES {
            return Err(format!(
                "Ensure that there are no more than {DECIMAL_PLACES} decimal places."
            ));
        }
        if precision.whole_digits > MAX_DIGITS - DECIMAL_PLACES {
            return Err(format!(
                "Ensure that there are no more than {} digits before the decimal point.",
                MAX_DIGITS - DECIMAL_PLACES
            ));
        }
        // At most 10 digits and 2 places: the value fits cents exactly.
        let cents = number.cents(Rounding::TowardZero);
        if cents < 0 {
            return Err("Ensure this value is greater than or equal to 0.".to_owned());
        }
        Ok(Money::from_cents(cents))
    }

    /// Reads a JSON field (a string or a number, read from its exact text).
    pub fn from_field(value: &FieldValue<'_>) -> Result<Money, Vec<String>> {
        let text = value
            .number_text()
            .ok_or_else(|| vec![INVALID_NUMBER.to_owned()])?;
        Money::parse(&text).map_err(|message| vec![message])
    }
}

/// The smallest number of cents at or above the decimal `text` (`None` if not a number);
/// for "price at least" filters. Saturates at the ends of `i64`.
pub fn cents_at_least(text: &str) -> Option<i64> {
    DecimalText::parse(text.trim()).map(|number| number.cents(Rounding::Up))
}

/// The largest number of cents at or below the decimal `text` (`None` if not a number);
/// for "price at most" filters. Saturates at the ends of `i64`.
pub fn cents_at_most(text: &str) -> Option<i64> {
    DecimalText::parse(text.trim()).map(|number| number.cents(Rounding::Down))
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}", self.0)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// How to round a value to whole cents.
#[derive(Debug, Clone, Copy)]
enum Rounding {
    /// Toward positive infinity.
    Up,
    /// Toward negative infinity.
    Down,
    /// Drop the extra places.
    TowardZero,
}

/// Digit counts as DRF's `validate_precision` computes them from Python's `Decimal.as_tuple()`.
#[derive(Debug, PartialEq, Eq)]
struct Precision {
    total_digits: i64,
    whole_digits: i64,
    decimal_places: i64,
}

/// A decimal number as written: sign, significant digits (no leading zeros; "0" for zero)
/// and a power of ten. Parsed from text, never through a float.
#[derive(Debug, PartialEq, Eq)]
struct DecimalText {
    negative: bool,
    digits: String,
    exponent: i64,
}

impl DecimalText {
    /// `[+-]digits[.digits][e[+-]digits]`, as Python's `Decimal` reads it (no NaN, no infinity).
    fn parse(text: &str) -> Option<DecimalText> {
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent_text) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() && fraction.is_empty() || !all_digits(whole) || !all_digits(fraction) {
            return None;
        }
        let exponent = match exponent_text {
            None => 0,
            Some(text) => parse_exponent(text)?,
        };
        let fraction_len = i64::try_from(fraction.len()).unwrap_or(i64::MAX);
        let significant = format!("{whole}{fraction}");
        let digits = significant.trim_start_matches('0');
        Some(DecimalText {
            negative,
            digits: if digits.is_empty() {
                "0".to_owned()
            } else {
                digits.to_owned()
            },
            exponent: exponent.saturating_sub(fraction_len),
        })
    }

    fn precision(&self) -> Precision {
        let digits = i64::try_from(self.digits.len()).unwrap_or(i64::MAX);
        if self.exponent >= 0 {
            let total = digits.saturating_add(self.exponent);
            Precision {
                total_digits: total,
                whole_digits: total,
                decimal_places: 0,
            }
        } else if digits > self.exponent.saturating_neg() {
            let places = self.exponent.saturating_neg();
            Precision {
                total_digits: digits,
                whole_digits: digits - places,
                decimal_places: places,
            }
        } else {
            let places = self.exponent.saturating_neg();
            Precision {
                total_digits: places,
                whole_digits: 0,
                decimal_places: places,
            }
        }
    }

    /// The value times 100, rounded as asked, saturating at the ends of `i64`.
    fn cents(&self, rounding: Rounding) -> i64 {
        let saturated = if self.negative { i64::MIN } else { i64::MAX };
        let shift = self.exponent.saturating_add(2);
        let len = i64::try_from(self.digits.len()).unwrap_or(i64::MAX);
        let (whole, has_fraction) = if shift >= 0 {
            if self.digits == "0" {
                return 0;
            }
            if len.saturating_add(shift) > 18 {
                return saturated;
            }
            let mut whole: i64 = self.digits.parse().unwrap_or(i64::MAX);
            for _ in 0..shift {
                whole = whole.saturating_mul(10);
            }
            (whole, false)
        } else {
            // Digits are ASCII, so byte positions are character positions.
            let keep = usize::try_from(len.saturating_add(shift).max(0)).unwrap_or(0);
            let (kept, dropped) = self.digits.split_at(keep.min(self.digits.len()));
            if kept.len() > 18 {
                return saturated;
            }
            let whole: i64 = if kept.is_empty() {
                0
            } else {
                kept.parse().unwrap_or(i64::MAX)
            };
            (whole, dropped.bytes().any(|b| b != b'0'))
        };
        let signed = if self.negative { -whole } else { whole };
        match (rounding, has_fraction, self.negative) {
            (Rounding::Up, true, false) => signed.saturating_add(1),
            (Rounding::Down, true, true) => signed.saturating_sub(1),
            _ => signed,
        }
    }
}

/// An exponent's digits with an optional sign; absurd sizes are clamped, not wrapped.
fn parse_exponent(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits.bytes().fold(0i64, |acc, b| {
        acc.saturating_mul(10)
            .saturating_add(i64::from(b - b'0'))
            .min(1_000_000_000_000)
    });
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(text: &str) -> Result<String, String> {
        Money::parse(text).map(|m| m.to_string())
    }

    #[test]
    fn formats_with_exactly_two_places() {
        assert_eq!(Money::from_cents(1999).to_string(), "19.99");
        assert_eq!(Money::from_cents(500).to_string(), "5.00");
        assert_eq!(Money::from_cents(0).to_string(), "0.00");
        assert_eq!(Money::ZERO.to_string(), "0.00");
        assert_eq!(Money::from_cents(5).to_string(), "0.05");
        assert_eq!(
            serde_json::to_string(&Money::from_cents(1999)).unwrap(),
            "\"19.99\""
        );
    }

    #[test]
    fn parses_valid_amounts() {
        assert_eq!(money("19.99"), Ok("19.99".into()));
        assert_eq!(money("5"), Ok("5.00".into()));
        assert_eq!(money(" 5.5 "), Ok("5.50".into()));
        assert_eq!(money("0"), Ok("0.00".into()));
        assert_eq!(money("-0"), Ok("0.00".into()));
        assert_eq!(money(".5"), Ok("0.50".into()));
        assert_eq!(money("5."), Ok("5.00".into()));
        assert_eq!(money("0019.90"), Ok("19.90".into()));
        assert_eq!(money("1e3"), Ok("1000.00".into()));
        assert_eq!(money("1.5E+2"), Ok("150.00".into()));
        assert_eq!(money("99999999.99"), Ok("99999999.99".into()));
        assert_eq!(
            Money::parse("99999999.99").unwrap().cents(),
            Money::MAX_CENTS
        );
    }

    #[test]
    fn rejects_what_drf_rejects() {
        let places = "Ensure that there are no more than 2 decimal places.";
        let total = "Ensure that there are no more than 10 digits in total.";
        let whole = "Ensure that there are no more than 8 digits before the decimal point.";
        let negative = "Ensure this value is greater than or equal to 0.";
        assert_eq!(money("19.999"), Err(places.into()));
        assert_eq!(money("19.990"), Err(places.into()));
        assert_eq!(money("0.001"), Err(places.into()));
        assert_eq!(money("-1"), Err(negative.into()));
        assert_eq!(money("-0.01"), Err(negative.into()));
        assert_eq!(money("100000000.00"), Err(total.into()));
        assert_eq!(money("99999999.999"), Err(total.into()));
        assert_eq!(money("100000000"), Err(whole.into()));
        assert_eq!(money("1e400"), Err(total.into()));
        assert_eq!(money("1e-400"), Err(total.into()));
        assert_eq!(money("1e99999999999999999999999"), Err(total.into()));
        for invalid in [
            "", " ", "abc", "1,5", "1.2.3", "NaN", "inf", "Infinity", "--1", "1e", "e5", ".", "+",
            "1 000", "٣",
        ] {
            assert_eq!(money(invalid), Err(INVALID_NUMBER.into()), "{invalid:?}");
        }
        assert_eq!(
            money(&"1".repeat(1001)),
            Err("String value too large.".into())
        );
    }

    #[test]
    fn filter_bounds_round_outward() {
        assert_eq!(cents_at_least("10"), Some(1000));
        assert_eq!(cents_at_least("10.001"), Some(1001));
        assert_eq!(cents_at_most("10.001"), Some(1000));
        assert_eq!(cents_at_least("-0.001"), Some(0));
        assert_eq!(cents_at_most("-0.001"), Some(-1));
        assert_eq!(cents_at_least("0.5e-5"), Some(1));
        assert_eq!(cents_at_most("0.5e-5"), Some(0));
        assert_eq!(cents_at_least("1e30"), Some(i64::MAX));
        assert_eq!(cents_at_most("-1e30"), Some(i64::MIN));
        assert_eq!(cents_at_least("x"), None);
    }

    #[test]
    fn arithmetic_is_exact() {
        let price = Money::parse("0.10").unwrap();
        assert_eq!(price.checked_mul(3).unwrap().to_string(), "0.30");
        assert_eq!(
            price
                .checked_add(Money::from_cents(20))
                .unwrap()
                .to_string(),
            "0.30"
        );
        assert_eq!(Money::from_cents(i64::MAX).checked_add(price), None);
    }
}
