//! Parameters: the guest's values, encoded for the parameter types Postgres described.

use crate::capabilities::postgres::bindings::spin::postgres::postgres::{
    self as wit, ParameterValue, RangeBoundKind,
};
use crate::capabilities::postgres::codec::datetime::{
    days_from_date, micros_from_datetime, micros_from_time, PG_EPOCH_DAYS, SECONDS_PER_DAY,
};
use crate::capabilities::postgres::codec::numeric::encode_numeric;
use crate::capabilities::postgres::codec::types::*;

use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgArguments, PgTypeInfo, PgTypeKind};
use sqlx::{Arguments as _, Either, Encode, Postgres, Statement as _, TypeInfo as _};

/// The guest's parameters, encoded for the parameter types Postgres described for `prepared`.
// The error is the interface's own `error`, which the guest receives as it is.
#[allow(clippy::result_large_err)]
pub(crate) fn bind(
    prepared: &sqlx::postgres::PgStatement,
    params: &[ParameterValue],
) -> Result<PgArguments, wit::Error> {
    let types = match prepared.parameters() {
        Some(Either::Left(types)) => types,
        _ => &[],
    };
    if types.len() != params.len() {
        return Err(wit::Error::BadParameter(format!(
            "the statement takes {} parameters, {} were given",
            types.len(),
            params.len()
        )));
    }
    let mut arguments = PgArguments::default();
    arguments.reserve(params.len(), params.len() * 8);
    for (index, (value, ty)) in params.iter().zip(types).enumerate() {
        arguments
            .add(Param { value, ty })
            .map_err(|e| wit::Error::BadParameter(format!("parameter ${}: {e}", index + 1)))?;
    }
    Ok(arguments)
}

/// One guest value, to be encoded as the type Postgres expects for its parameter.
struct Param<'a> {
    value: &'a ParameterValue,
    ty: &'a PgTypeInfo,
}

impl sqlx::Type<Postgres> for Param<'_> {
    fn type_info() -> PgTypeInfo {
        // Never used: `produces` names the described type of each parameter.
        PgTypeInfo::with_name("unknown")
    }
}

impl<'q> Encode<'q, Postgres> for Param<'_> {
    fn encode_by_ref(
        &self,
        buf: &mut PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, BoxDynError> {
        if let ParameterValue::DbNull = self.value {
            return Ok(sqlx::encode::IsNull::Yes);
        }
        let out: &mut Vec<u8> = buf;
        encode(self.value, self.ty, out)?;
        Ok(sqlx::encode::IsNull::No)
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        Some(self.ty.clone())
    }
}

fn is_text_type(ty: &PgTypeInfo) -> bool {
    matches!(oid(ty), TEXT | VARCHAR | BPCHAR | NAME | UNKNOWN)
        || matches!(ty.kind(), PgTypeKind::Enum(_))
        || ty.name().eq_ignore_ascii_case("citext")
}

/// Writes `value` in the binary format of `ty`, or says why it cannot be one.
fn encode(value: &ParameterValue, ty: &PgTypeInfo, out: &mut Vec<u8>) -> Result<(), String> {
    let target = oid(ty);
    let mismatch = || {
        format!(
            "a {} value cannot be bound to a parameter of type {}",
            parameter_kind(value),
            type_name(ty)
        )
    };
    match value {
        ParameterValue::Boolean(v) if target == BOOL => out.push(u8::from(*v)),
        ParameterValue::Int8(v) => {
            encode_integer(i64::from(*v), target, out).ok_or_else(mismatch)?
        }
        ParameterValue::Int16(v) => {
            encode_integer(i64::from(*v), target, out).ok_or_else(mismatch)?
        }
        ParameterValue::Int32(v) => {
            encode_integer(i64::from(*v), target, out).ok_or_else(mismatch)?
        }
        ParameterValue::Int64(v) => encode_integer(*v, target, out).ok_or_else(mismatch)?,
        ParameterValue::Floating32(v) => match target {
            FLOAT4 => out.extend_from_slice(&v.to_be_bytes()),
            FLOAT8 => out.extend_from_slice(&f64::from(*v).to_be_bytes()),
            _ => return Err(mismatch()),
        },
        ParameterValue::Floating64(v) => match target {
            FLOAT8 => out.extend_from_slice(&v.to_be_bytes()),
            FLOAT4 if v.is_nan() || f64::from(*v as f32) == *v => {
                out.extend_from_slice(&(*v as f32).to_be_bytes())
            }
            FLOAT4 => return Err(format!("{v} does not fit a float4 exactly")),
            _ => return Err(mismatch()),
        },
        ParameterValue::Str(v) if is_text_type(ty) => out.extend_from_slice(v.as_bytes()),
        ParameterValue::Binary(v) if target == BYTEA => out.extend_from_slice(v),
        ParameterValue::Date(v) if target == DATE => {
            let days = days_from_date(*v)? - PG_EPOCH_DAYS;
            let days = i32::try_from(days).map_err(|_| "date out of range".to_string())?;
            out.extend_from_slice(&days.to_be_bytes());
        }
        ParameterValue::Time(v) if target == TIME => {
            out.extend_from_slice(&micros_from_time(*v)?.to_be_bytes())
        }
        ParameterValue::Datetime(v) if matches!(target, TIMESTAMP | TIMESTAMPTZ) => {
            out.extend_from_slice(&micros_from_datetime(*v)?.to_be_bytes())
        }
        ParameterValue::Timestamp(seconds) if matches!(target, TIMESTAMP | TIMESTAMPTZ) => {
            let micros = seconds
                .checked_sub(PG_EPOCH_DAYS * SECONDS_PER_DAY)
                .and_then(|s| s.checked_mul(1_000_000))
                .ok_or_else(|| format!("timestamp {seconds} out of range"))?;
            out.extend_from_slice(&micros.to_be_bytes());
        }
        ParameterValue::Uuid(v) if target == UUID => out.extend_from_slice(&parse_uuid(v)?),
        ParameterValue::Jsonb(v) if target == JSONB => {
            out.push(1); // jsonb's binary format version
            out.extend_from_slice(v);
        }
        ParameterValue::Jsonb(v) if target == JSON => out.extend_from_slice(v),
        ParameterValue::Decimal(v) if target == NUMERIC => encode_numeric(v, out)?,
        ParameterValue::Interval(v) if target == INTERVAL => {
            out.extend_from_slice(&v.micros.to_be_bytes());
            out.extend_from_slice(&v.days.to_be_bytes());
            out.extend_from_slice(&v.months.to_be_bytes());
        }
        ParameterValue::RangeInt32((low, high)) if target == INT4RANGE => {
            encode_range(low.as_ref(), high.as_ref(), out, |v: &i32, out| {
                out.extend_from_slice(&v.to_be_bytes());
                Ok(())
            })?
        }
        ParameterValue::RangeInt64((low, high)) if target == INT8RANGE => {
            encode_range(low.as_ref(), high.as_ref(), out, |v: &i64, out| {
                out.extend_from_slice(&v.to_be_bytes());
                Ok(())
            })?
        }
        ParameterValue::RangeDecimal((low, high)) if target == NUMRANGE => {
            encode_range(low.as_ref(), high.as_ref(), out, |v: &String, out| {
                encode_numeric(v, out)
            })?
        }
        ParameterValue::ArrayInt32(items) if matches!(target, INT4_ARRAY | INT8_ARRAY) => {
            let element = if target == INT4_ARRAY { INT4 } else { INT8 };
            encode_array(element, items, out, |v: &i32, out| {
                encode_integer(i64::from(*v), element, out).ok_or_else(|| "out of range".into())
            })?
        }
        ParameterValue::ArrayInt64(items) if matches!(target, INT4_ARRAY | INT8_ARRAY) => {
            let element = if target == INT4_ARRAY { INT4 } else { INT8 };
            encode_array(element, items, out, |v: &i64, out| {
                encode_integer(*v, element, out).ok_or_else(|| format!("{v} does not fit an int4"))
            })?
        }
        ParameterValue::ArrayDecimal(items) if target == NUMERIC_ARRAY => {
            encode_array(NUMERIC, items, out, |v: &String, out| {
                encode_numeric(v, out)
            })?
        }
        ParameterValue::ArrayStr(items)
            if matches!(target, TEXT_ARRAY | VARCHAR_ARRAY | BPCHAR_ARRAY) =>
        {
            let element = match target {
                TEXT_ARRAY => TEXT,
                VARCHAR_ARRAY => VARCHAR,
                _ => BPCHAR,
            };
            encode_array(element, items, out, |v: &String, out| {
                out.extend_from_slice(v.as_bytes());
                Ok(())
            })?
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

/// An integer as `target` (any integer, float or numeric type that holds it exactly).
fn encode_integer(v: i64, target: u32, out: &mut Vec<u8>) -> Option<()> {
    match target {
        INT2 => out.extend_from_slice(&i16::try_from(v).ok()?.to_be_bytes()),
        INT4 => out.extend_from_slice(&i32::try_from(v).ok()?.to_be_bytes()),
        INT8 => out.extend_from_slice(&v.to_be_bytes()),
        FLOAT4 if v.unsigned_abs() <= 1 << 24 => out.extend_from_slice(&(v as f32).to_be_bytes()),
        FLOAT8 if v.unsigned_abs() <= 1 << 53 => out.extend_from_slice(&(v as f64).to_be_bytes()),
        NUMERIC => encode_numeric(&v.to_string(), out).ok()?,
        _ => return None,
    }
    Some(())
}

fn parameter_kind(value: &ParameterValue) -> &'static str {
    match value {
        ParameterValue::Boolean(_) => "boolean",
        ParameterValue::Int8(_) => "int8",
        ParameterValue::Int16(_) => "int16",
        ParameterValue::Int32(_) => "int32",
        ParameterValue::Int64(_) => "int64",
        ParameterValue::Floating32(_) => "floating32",
        ParameterValue::Floating64(_) => "floating64",
        ParameterValue::Str(_) => "str",
        ParameterValue::Binary(_) => "binary",
        ParameterValue::Date(_) => "date",
        ParameterValue::Time(_) => "time",
        ParameterValue::Datetime(_) => "datetime",
        ParameterValue::Timestamp(_) => "timestamp",
        ParameterValue::Uuid(_) => "uuid",
        ParameterValue::Jsonb(_) => "jsonb",
        ParameterValue::Decimal(_) => "decimal",
        ParameterValue::RangeInt32(_) => "range-int32",
        ParameterValue::RangeInt64(_) => "range-int64",
        ParameterValue::RangeDecimal(_) => "range-decimal",
        ParameterValue::ArrayInt32(_) => "array-int32",
        ParameterValue::ArrayInt64(_) => "array-int64",
        ParameterValue::ArrayDecimal(_) => "array-decimal",
        ParameterValue::ArrayStr(_) => "array-str",
        ParameterValue::Interval(_) => "interval",
        ParameterValue::DbNull => "db-null",
    }
}

/// Appends a length-prefixed element written by `write`.
fn encode_element<T: ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
    write: &mut impl FnMut(&T, &mut Vec<u8>) -> Result<(), String>,
) -> Result<(), String> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    write(value, out)?;
    let len = i32::try_from(out.len() - at - 4).map_err(|_| "value too large".to_string())?;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

fn encode_array<T>(
    element: u32,
    items: &[Option<T>],
    out: &mut Vec<u8>,
    mut write: impl FnMut(&T, &mut Vec<u8>) -> Result<(), String>,
) -> Result<(), String> {
    let len = i32::try_from(items.len()).map_err(|_| "array too large".to_string())?;
    let dimensions: i32 = if items.is_empty() { 0 } else { 1 };
    out.extend_from_slice(&dimensions.to_be_bytes());
    out.extend_from_slice(&i32::from(items.iter().any(Option::is_none)).to_be_bytes());
    out.extend_from_slice(&element.to_be_bytes());
    if dimensions == 1 {
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes()); // lower bound
    }
    for item in items {
        match item {
            Some(value) => encode_element(value, out, &mut write)?,
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    Ok(())
}

fn encode_range<T>(
    low: Option<&(T, RangeBoundKind)>,
    high: Option<&(T, RangeBoundKind)>,
    out: &mut Vec<u8>,
    mut write: impl FnMut(&T, &mut Vec<u8>) -> Result<(), String>,
) -> Result<(), String> {
    let mut flags = 0;
    match low {
        None => flags |= RANGE_LOWER_INFINITE,
        Some((_, RangeBoundKind::Inclusive)) => flags |= RANGE_LOWER_INCLUSIVE,
        Some(_) => {}
    }
    match high {
        None => flags |= RANGE_UPPER_INFINITE,
        Some((_, RangeBoundKind::Inclusive)) => flags |= RANGE_UPPER_INCLUSIVE,
        Some(_) => {}
    }
    out.push(flags);
    for (bound, _) in [low, high].into_iter().flatten() {
        encode_element(bound, out, &mut write)?;
    }
    Ok(())
}

fn parse_uuid(text: &str) -> Result<[u8; 16], String> {
    let invalid = || format!("invalid UUID {text:?}");
    let mut bytes = [0u8; 16];
    let mut nibbles = 0;
    for c in text.chars().filter(|c| *c != '-') {
        let nibble = c.to_digit(16).ok_or_else(invalid)? as u8;
        if nibbles == 32 {
            return Err(invalid());
        }
        bytes[nibbles / 2] |= if nibbles % 2 == 0 {
            nibble << 4
        } else {
            nibble
        };
        nibbles += 1;
    }
    if nibbles != 32 {
        return Err(invalid());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_parse() {
        assert_eq!(
            parse_uuid("00112233-4455-6677-8899-AABBCCDDEEFF").unwrap()[15],
            0xff
        );
        assert!(parse_uuid("0011").is_err());
    }
}
