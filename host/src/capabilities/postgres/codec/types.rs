//! Postgres' built-in types as both directions of the codec see them: their OIDs, their
//! catalog names, and the flags byte of a range's binary format.

use sqlx::postgres::PgTypeInfo;
use sqlx::TypeInfo as _;

/// A type's name as Postgres' catalog spells it (`int8`, `char`, `my_enum`).
pub(crate) fn type_name(ty: &PgTypeInfo) -> String {
    // sqlx shows built-in types upper-cased (`INT8`, `"CHAR"`) and others as named.
    const FIRST_USER_OID: u32 = 16_384;
    let name = ty.name();
    match ty.oid() {
        Some(oid) if oid.0 < FIRST_USER_OID => name.trim_matches('"').to_ascii_lowercase(),
        _ => name.to_owned(),
    }
}

/// A type's OID, 0 when sqlx does not know it.
pub(crate) fn oid(ty: &PgTypeInfo) -> u32 {
    ty.oid().map_or(0, |oid| oid.0)
}

// Type OIDs from Postgres' pg_type catalog, stable for built-in types.
pub(crate) const BOOL: u32 = 16;
pub(crate) const BYTEA: u32 = 17;
pub(crate) const NAME: u32 = 19;
pub(crate) const INT8: u32 = 20;
pub(crate) const INT2: u32 = 21;
pub(crate) const INT4: u32 = 23;
pub(crate) const TEXT: u32 = 25;
pub(crate) const JSON: u32 = 114;
pub(crate) const FLOAT4: u32 = 700;
pub(crate) const FLOAT8: u32 = 701;
pub(crate) const UNKNOWN: u32 = 705;
pub(crate) const INT4_ARRAY: u32 = 1007;
pub(crate) const TEXT_ARRAY: u32 = 1009;
pub(crate) const BPCHAR_ARRAY: u32 = 1014;
pub(crate) const VARCHAR_ARRAY: u32 = 1015;
pub(crate) const INT8_ARRAY: u32 = 1016;
pub(crate) const BPCHAR: u32 = 1042;
pub(crate) const VARCHAR: u32 = 1043;
pub(crate) const DATE: u32 = 1082;
pub(crate) const TIME: u32 = 1083;
pub(crate) const TIMESTAMP: u32 = 1114;
pub(crate) const TIMESTAMPTZ: u32 = 1184;
pub(crate) const INTERVAL: u32 = 1186;
pub(crate) const NUMERIC_ARRAY: u32 = 1231;
pub(crate) const NUMERIC: u32 = 1700;
pub(crate) const UUID: u32 = 2950;
pub(crate) const JSONB: u32 = 3802;
pub(crate) const INT4RANGE: u32 = 3904;
pub(crate) const NUMRANGE: u32 = 3906;
pub(crate) const INT8RANGE: u32 = 3926;

// The flags byte that opens a range's binary format.
pub(crate) const RANGE_EMPTY: u8 = 0x01;
pub(crate) const RANGE_LOWER_INCLUSIVE: u8 = 0x02;
pub(crate) const RANGE_UPPER_INCLUSIVE: u8 = 0x04;
pub(crate) const RANGE_LOWER_INFINITE: u8 = 0x08;
pub(crate) const RANGE_UPPER_INFINITE: u8 = 0x10;
