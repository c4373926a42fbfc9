//! Numeric: base-10000 digits in binary, decimal strings in WIT.

use std::fmt::Write as _;

const NUMERIC_POSITIVE: u16 = 0x0000;
const NUMERIC_NEGATIVE: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// Writes a decimal string (`-12.50`, `1e3`, `NaN`, `Infinity`) as a binary numeric.
pub(crate) fn encode_numeric(text: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let invalid = || format!("invalid decimal {text:?}");
    let trimmed = text.trim();
    let special = |sign: u16, out: &mut Vec<u8>| {
        for field in [0u16, 0, sign, 0] {
            out.extend_from_slice(&field.to_be_bytes());
        }
    };
    let (negative, unsigned) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    if unsigned.eq_ignore_ascii_case("nan") && trimmed.len() == 3 {
        special(NUMERIC_NAN, out);
        return Ok(());
    }
    if unsigned.eq_ignore_ascii_case("infinity") || unsigned.eq_ignore_ascii_case("inf") {
        special(if negative { NUMERIC_NINF } else { NUMERIC_PINF }, out);
        return Ok(());
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => {
            let exponent: i64 = unsigned[at + 1..].parse().map_err(|_| invalid())?;
            (&unsigned[..at], exponent)
        }
        None => (unsigned, 0),
    };
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if integer.len() + fraction.len() == 0 || !all_digits(integer) || !all_digits(fraction) {
        return Err(invalid());
    }
    if exponent.unsigned_abs() > 200_000 {
        return Err(format!("decimal {text:?} is out of range"));
    }
    // Decimal digits, and how many of them stand before the point.
    let digits: Vec<u8> = integer
        .bytes()
        .chain(fraction.bytes())
        .map(|b| b - b'0')
        .collect();
    let point = integer.len() as i64 + exponent;
    let scale = (digits.len() as i64 - point).max(0);
    if scale > 0x3FFF {
        return Err(format!(
            "decimal {text:?} has too many digits after the point"
        ));
    }
    // Group into base-10000 digits aligned on the point: the digit at position `i` weighs
    // 10^(point - 1 - i), which falls in group floor((point - 1 - i) / 4).
    let first = digits.iter().position(|d| *d != 0);
    let last = digits.iter().rposition(|d| *d != 0);
    let mut groups: Vec<i16> = Vec::new();
    let mut weight = 0i64;
    if let (Some(first), Some(last)) = (first, last) {
        let top = (point - 1 - first as i64).div_euclid(4);
        let bottom = (point - 1 - last as i64).div_euclid(4);
        weight = top;
        groups = vec![0; (top - bottom + 1) as usize];
        for (i, digit) in digits.iter().enumerate().take(last + 1).skip(first) {
            let power = point - 1 - i as i64;
            let group = (top - power.div_euclid(4)) as usize;
            groups[group] += i16::from(*digit) * 10i16.pow(power.rem_euclid(4) as u32);
        }
    }
    let ndigits = i16::try_from(groups.len()).map_err(|_| invalid())?;
    let weight = i16::try_from(weight).map_err(|_| format!("decimal {text:?} is out of range"))?;
    let sign = if negative && !groups.is_empty() {
        NUMERIC_NEGATIVE
    } else {
        NUMERIC_POSITIVE
    };
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(scale as u16).to_be_bytes());
    for group in groups {
        out.extend_from_slice(&group.to_be_bytes());
    }
    Ok(())
}

/// A binary numeric as a decimal string with its scale (`12.50`).
pub(crate) fn decode_numeric(bytes: &[u8]) -> Option<String> {
    let field = |i: usize| {
        Some(u16::from_be_bytes(
            bytes.get(i * 2..i * 2 + 2)?.try_into().ok()?,
        ))
    };
    let ndigits = usize::from(field(0)?);
    let weight = field(1)? as i16 as i64;
    let sign = field(2)?;
    let scale = usize::from(field(3)?);
    if bytes.len() != 8 + ndigits * 2 {
        return None;
    }
    match sign {
        NUMERIC_NAN => return Some("NaN".into()),
        NUMERIC_PINF => return Some("Infinity".into()),
        NUMERIC_NINF => return Some("-Infinity".into()),
        NUMERIC_POSITIVE | NUMERIC_NEGATIVE => {}
        _ => return None,
    }
    let digit = |group: i64| -> Option<u16> {
        if (0..ndigits as i64).contains(&group) {
            field(4 + group as usize)
        } else {
            Some(0)
        }
    };
    let mut text = String::with_capacity(ndigits * 4 + scale + 3);
    if sign == NUMERIC_NEGATIVE && ndigits > 0 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        for group in 0..=weight {
            let d = digit(group)?;
            if group == 0 {
                let _ = write!(text, "{d}");
            } else {
                let _ = write!(text, "{d:04}");
            }
        }
    }
    if scale > 0 {
        text.push('.');
        let start = text.len();
        let mut group = weight + 1;
        while text.len() - start < scale {
            let _ = write!(text, "{:04}", digit(group)?);
            group += 1;
        }
        text.truncate(start + scale);
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_text_round_trips() {
        let cases = [
            ("0", "0"),
            ("-0.00", "0.00"),
            ("1", "1"),
            ("-1.50", "-1.50"),
            ("12345.6789", "12345.6789"),
            ("0.0001", "0.0001"),
            ("0.00001234", "0.00001234"),
            ("100000000", "100000000"),
            ("9999.9999", "9999.9999"),
            ("10000", "10000"),
            ("1e3", "1000"),
            ("1.5e-3", "0.0015"),
            ("+7", "7"),
            (
                "123456789012345678901234567890.123456789",
                "123456789012345678901234567890.123456789",
            ),
            ("NaN", "NaN"),
            ("-Infinity", "-Infinity"),
        ];
        for (input, expected) in cases {
            let mut bytes = Vec::new();
            encode_numeric(input, &mut bytes).unwrap();
            assert_eq!(decode_numeric(&bytes).as_deref(), Some(expected), "{input}");
        }
        for bad in ["", "-", "1.2.3", "abc", "1e", "0x10", "1 2"] {
            assert!(encode_numeric(bad, &mut Vec::new()).is_err(), "{bad:?}");
        }
    }
}
