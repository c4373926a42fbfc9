//! Timestamps: UTC, microsecond precision, RFC 3339 with `Z` in fixed width
//! (`2026-11-25T13:00:00.123456Z`), the text the SQLite migrations store and the API shows.

use std::fmt;
use std::time::SystemTime;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Serialize, Serializer};

/// The one text format of timestamps (fixed width, so text order is time order).
const FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// An instant in UTC, to the microsecond (what Postgres `TIMESTAMPTZ` keeps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The current time, cut to microseconds so that what is stored is what is shown.
    pub fn now() -> Self {
        Self::from_datetime(DateTime::<Utc>::from(SystemTime::now()))
    }

    /// A chrono instant, cut to microseconds.
    pub fn from_datetime(instant: DateTime<Utc>) -> Self {
        let micros = instant.timestamp_micros();
        Self(DateTime::from_timestamp_micros(micros).unwrap_or(instant))
    }

    /// The chrono instant.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// Parses RFC 3339 text (any offset, any fraction) into UTC.
    pub fn parse(text: &str) -> Option<Self> {
        if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
            return Some(Self::from_datetime(instant.with_timezone(&Utc)));
        }
        // Tolerate a missing offset (taken as UTC) and a space separator, as SQLite writes them.
        let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
            .ok()?;
        Some(Self::from_datetime(naive.and_utc()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format(FORMAT))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_microseconds_with_z() {
        let t = Timestamp::parse("2026-11-25T13:00:00Z").unwrap();
        assert_eq!(t.to_string(), "2026-11-25T13:00:00.000000Z");
        let t = Timestamp::parse("2026-11-25T14:00:00.123456789+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-11-25T13:00:00.123456Z");
        assert_eq!(Timestamp::parse(&t.to_string()), Some(t));
        assert_eq!(
            Timestamp::parse("2026-11-25 13:00:00").unwrap().to_string(),
            "2026-11-25T13:00:00.000000Z"
        );
        assert_eq!(Timestamp::parse("yesterday"), None);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2026-11-25T13:00:00.123456Z\""
        );
    }

    #[test]
    fn now_is_whole_microseconds() {
        let now = Timestamp::now();
        assert_eq!(now.as_datetime().timestamp_subsec_nanos() % 1000, 0);
        assert_eq!(Timestamp::parse(&now.to_string()), Some(now));
    }
}
