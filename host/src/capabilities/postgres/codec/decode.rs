//! Results: binary column values as WIT values, read by the kind their column's type names.

use crate::capabilities::postgres::bindings::spin::postgres::postgres::{
    self as wit, DbDataType, DbValue, Interval, RangeBoundKind,
};
use crate::capabilities::postgres::codec::datetime::{
    datetime_from_micros, time_from_micros, PG_EPOCH_DAYS,
};
use crate::capabilities::postgres::codec::numeric::decode_numeric;
use crate::capabilities::postgres::codec::types::*;
use crate::capabilities::postgres::error::error;
use crate::civil::civil_from_days;

use std::fmt::Write as _;

use sqlx::postgres::{PgRow, PgTypeInfo, PgValueFormat, PgValueRef};
use sqlx::{Column as _, Row as _, ValueRef as _};

/// How a column's values are read, from its type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Kind {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Text,
    Bytea,
    Timestamp,
    Date,
    Time,
    Uuid,
    Json,
    Jsonb,
    Numeric,
    Interval,
    Int4Range,
    Int8Range,
    NumRange,
    Int4Array,
    Int8Array,
    NumericArray,
    TextArray,
    Other,
}

impl Kind {
    /// The kind of a column of type `ty`.
    pub(crate) fn of(ty: &PgTypeInfo) -> Self {
        match oid(ty) {
            BOOL => Kind::Bool,
            INT2 => Kind::Int2,
            INT4 => Kind::Int4,
            INT8 => Kind::Int8,
            FLOAT4 => Kind::Float4,
            FLOAT8 => Kind::Float8,
            TEXT | VARCHAR | BPCHAR | NAME => Kind::Text,
            BYTEA => Kind::Bytea,
            TIMESTAMP | TIMESTAMPTZ => Kind::Timestamp,
            DATE => Kind::Date,
            TIME => Kind::Time,
            UUID => Kind::Uuid,
            JSON => Kind::Json,
            JSONB => Kind::Jsonb,
            NUMERIC => Kind::Numeric,
            INTERVAL => Kind::Interval,
            INT4RANGE => Kind::Int4Range,
            INT8RANGE => Kind::Int8Range,
            NUMRANGE => Kind::NumRange,
            INT4_ARRAY => Kind::Int4Array,
            INT8_ARRAY => Kind::Int8Array,
            NUMERIC_ARRAY => Kind::NumericArray,
            TEXT_ARRAY | VARCHAR_ARRAY | BPCHAR_ARRAY => Kind::TextArray,
            _ => Kind::Other,
        }
    }

    /// The interface's data type of a column of this kind and type `ty`.
    pub(crate) fn data_type(self, ty: &PgTypeInfo) -> DbDataType {
        match self {
            Kind::Bool => DbDataType::Boolean,
            Kind::Int2 => DbDataType::Int16,
            Kind::Int4 => DbDataType::Int32,
            Kind::Int8 => DbDataType::Int64,
            Kind::Float4 => DbDataType::Floating32,
            Kind::Float8 => DbDataType::Floating64,
            Kind::Text => DbDataType::Str,
            Kind::Bytea => DbDataType::Binary,
            Kind::Timestamp => DbDataType::Datetime,
            Kind::Date => DbDataType::Date,
            Kind::Time => DbDataType::Time,
            Kind::Uuid => DbDataType::Uuid,
            Kind::Json | Kind::Jsonb => DbDataType::Jsonb,
            Kind::Numeric => DbDataType::Decimal,
            Kind::Interval => DbDataType::Interval,
            Kind::Int4Range => DbDataType::RangeInt32,
            Kind::Int8Range => DbDataType::RangeInt64,
            Kind::NumRange => DbDataType::RangeDecimal,
            Kind::Int4Array => DbDataType::ArrayInt32,
            Kind::Int8Array => DbDataType::ArrayInt64,
            Kind::NumericArray => DbDataType::ArrayDecimal,
            Kind::TextArray => DbDataType::ArrayStr,
            Kind::Other => DbDataType::Other(type_name(ty)),
        }
    }
}

/// One row's values, each read by its column's kind.
#[allow(clippy::result_large_err)]
pub(crate) fn row_values(row: &PgRow, kinds: &[Kind]) -> Result<Vec<DbValue>, wit::Error> {
    let mut values = Vec::with_capacity(kinds.len());
    for (index, kind) in kinds.iter().enumerate() {
        let raw = row.try_get_raw(index).map_err(error)?;
        values.push(value(raw, *kind).map_err(|e| {
            let name = row.columns().get(index).map_or("?", |c| c.name());
            wit::Error::ValueConversionFailed(format!("column {name}: {e}"))
        })?);
    }
    Ok(values)
}

fn value(raw: PgValueRef<'_>, kind: Kind) -> Result<DbValue, String> {
    if raw.is_null() {
        return Ok(DbValue::DbNull);
    }
    if raw.format() != PgValueFormat::Binary {
        return Err("value not in binary format".into());
    }
    let bytes = raw.as_bytes().map_err(|e| e.to_string())?;
    decode(bytes, kind).ok_or_else(|| format!("malformed {kind:?} value"))
}

fn be<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    bytes.try_into().ok()
}

fn decode(bytes: &[u8], kind: Kind) -> Option<DbValue> {
    let unsupported = || DbValue::Unsupported(bytes.to_vec());
    Some(match kind {
        Kind::Bool => DbValue::Boolean(*be::<1>(bytes)?.first()? != 0),
        Kind::Int2 => DbValue::Int16(i16::from_be_bytes(be(bytes)?)),
        Kind::Int4 => DbValue::Int32(i32::from_be_bytes(be(bytes)?)),
        Kind::Int8 => DbValue::Int64(i64::from_be_bytes(be(bytes)?)),
        Kind::Float4 => DbValue::Floating32(f32::from_be_bytes(be(bytes)?)),
        Kind::Float8 => DbValue::Floating64(f64::from_be_bytes(be(bytes)?)),
        Kind::Text => DbValue::Str(std::str::from_utf8(bytes).ok()?.to_owned()),
        Kind::Bytea => DbValue::Binary(bytes.to_vec()),
        Kind::Timestamp => match i64::from_be_bytes(be(bytes)?) {
            // ±infinity have no date.
            i64::MAX | i64::MIN => unsupported(),
            micros => DbValue::Datetime(datetime_from_micros(micros)?),
        },
        Kind::Date => match i32::from_be_bytes(be(bytes)?) {
            i32::MAX | i32::MIN => unsupported(),
            days => {
                let (year, month, day) = civil_from_days(i64::from(days) + PG_EPOCH_DAYS);
                DbValue::Date((i32::try_from(year).ok()?, month as u8, day as u8))
            }
        },
        Kind::Time => DbValue::Time(time_from_micros(i64::from_be_bytes(be(bytes)?))?),
        Kind::Uuid => {
            let b: [u8; 16] = be(bytes)?;
            let mut text = String::with_capacity(36);
            for (i, byte) in b.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    text.push('-');
                }
                let _ = write!(text, "{byte:02x}");
            }
            DbValue::Uuid(text)
        }
        Kind::Json => DbValue::Jsonb(bytes.to_vec()),
        Kind::Jsonb => match bytes.split_first() {
            Some((1, json)) => DbValue::Jsonb(json.to_vec()),
            _ => unsupported(),
        },
        Kind::Numeric => DbValue::Decimal(decode_numeric(bytes)?),
        Kind::Interval => DbValue::Interval(Interval {
            micros: i64::from_be_bytes(be(bytes.get(..8)?)?),
            days: i32::from_be_bytes(be(bytes.get(8..12)?)?),
            months: i32::from_be_bytes(be(bytes.get(12..)?)?),
        }),
        Kind::Int4Range => {
            DbValue::RangeInt32(decode_range(bytes, |b| Some(i32::from_be_bytes(be(b)?)))?)
        }
        Kind::Int8Range => {
            DbValue::RangeInt64(decode_range(bytes, |b| Some(i64::from_be_bytes(be(b)?)))?)
        }
        Kind::NumRange => DbValue::RangeDecimal(decode_range(bytes, decode_numeric)?),
        Kind::Int4Array => DbValue::ArrayInt32(decode_array(bytes, INT4, |b| {
            Some(i32::from_be_bytes(be(b)?))
        })?),
        Kind::Int8Array => DbValue::ArrayInt64(decode_array(bytes, INT8, |b| {
            Some(i64::from_be_bytes(be(b)?))
        })?),
        Kind::NumericArray => DbValue::ArrayDecimal(decode_array(bytes, NUMERIC, decode_numeric)?),
        Kind::TextArray => DbValue::ArrayStr(decode_array(bytes, 0, |b| {
            Some(std::str::from_utf8(b).ok()?.to_owned())
        })?),
        Kind::Other => unsupported(),
    })
}

/// Splits a length-prefixed element off the front of `bytes`: `Some(None)` for NULL.
fn take_element<'b>(bytes: &mut &'b [u8]) -> Option<Option<&'b [u8]>> {
    let len = i32::from_be_bytes(be(bytes.get(..4)?)?);
    *bytes = &bytes[4..];
    if len < 0 {
        return Some(None);
    }
    let (element, rest) = bytes.split_at_checked(len as usize)?;
    *bytes = rest;
    Some(Some(element))
}

/// A one-dimensional array (or an empty one); `element` 0 accepts any element type.
fn decode_array<T>(
    mut bytes: &[u8],
    element: u32,
    read: impl Fn(&[u8]) -> Option<T>,
) -> Option<Vec<Option<T>>> {
    let dimensions = i32::from_be_bytes(be(bytes.get(..4)?)?);
    let element_oid = u32::from_be_bytes(be(bytes.get(8..12)?)?);
    if element != 0 && element_oid != element {
        return None;
    }
    if dimensions == 0 {
        return Some(Vec::new());
    }
    if dimensions != 1 {
        return None;
    }
    let len = usize::try_from(i32::from_be_bytes(be(bytes.get(12..16)?)?)).ok()?;
    bytes = bytes.get(20..)?;
    let mut items = Vec::with_capacity(len.min(bytes.len() / 4));
    for _ in 0..len {
        items.push(match take_element(&mut bytes)? {
            Some(element) => Some(read(element)?),
            None => None,
        });
    }
    Some(items)
}

type Bound<T> = Option<(T, RangeBoundKind)>;

fn decode_range<T>(
    bytes: &[u8],
    read: impl Fn(&[u8]) -> Option<T>,
) -> Option<(Bound<T>, Bound<T>)> {
    let (&flags, mut rest) = bytes.split_first()?;
    if flags & RANGE_EMPTY != 0 {
        return Some((None, None));
    }
    let mut bound = |infinite: u8, inclusive: u8| -> Option<Bound<T>> {
        if flags & infinite != 0 {
            return Some(None);
        }
        let value = read(take_element(&mut rest)??)?;
        let kind = if flags & inclusive != 0 {
            RangeBoundKind::Inclusive
        } else {
            RangeBoundKind::Exclusive
        };
        Some(Some((value, kind)))
    };
    let low = bound(RANGE_LOWER_INFINITE, RANGE_LOWER_INCLUSIVE)?;
    let high = bound(RANGE_UPPER_INFINITE, RANGE_UPPER_INCLUSIVE)?;
    Some((low, high))
}
