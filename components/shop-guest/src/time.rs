//! Timestamps: UTC, microsecond precision, RFC 3339 with `Z` in fixed width
//! (`2026-11-25T13:00:00.123456Z`), the text the SQLite migrations store and the API shows.

use std::fmt;
use std::time::SystemTime;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};
use serde::{Serialize, Serializer};

/// The length of the one text format, `2026-11-25T13:00:00.123456Z` (chrono's
/// `%Y-%m-%dT%H:%M:%S%.6fZ`), for years 0 to 9999.
const FIXED_LEN: usize = 27;

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
        // What the shop itself writes (every SQLite row) is read without chrono's parser.
        if let Some(instant) = Self::parse_fixed(text) {
            return Some(instant);
        }
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

impl Timestamp {
    /// Exactly `YYYY-MM-DDTHH:MM:SS.ffffffZ`; anything else (other offsets, fractions, a leap
    /// second, lower-case separators) is left to chrono.
    fn parse_fixed(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() != FIXED_LEN || [b[4], b[7], b[10], b[13], b[16], b[19], b[26]] != *b"--T::.Z" {
            return None;
        }
        let number = |range: std::ops::Range<usize>| {
            b[range].iter().try_fold(0u32, |n, d| {
                d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
            })
        };
        let year = i32::try_from(number(0..4)?).ok()?;
        let date = NaiveDate::from_ymd_opt(year, number(5..7)?, number(8..10)?)?;
        // Seconds past 59 are chrono's leap seconds: from_hms_micro_opt refuses them.
        let instant = date.and_hms_micro_opt(
            number(11..13)?,
            number(14..16)?,
            number(17..19)?,
            number(20..26)?,
        )?;
        Some(Self(instant.and_utc()))
    }

    /// The fixed-width text into `out`, as chrono's `%Y-%m-%dT%H:%M:%S%.6fZ` writes it; years
    /// outside 0..=9999 (which chrono writes with a sign) are not written.
    fn write_fixed(&self, out: &mut [u8; FIXED_LEN]) -> bool {
        let year = self.0.year();
        let Ok(year) = u32::try_from(year) else {
            return false;
        };
        if year > 9999 {
            return false;
        }
        out.copy_from_slice(b"0000-00-00T00:00:00.000000Z");
        let nanos = self.0.nanosecond();
        // chrono keeps a leap second as nanoseconds past 10^9 and shows it as second 60.
        let second = self.0.second() + nanos / 1_000_000_000;
        let micros = nanos % 1_000_000_000 / 1_000;
        let mut put = |end: usize, digits: usize, mut value: u32| {
            for slot in out[end - digits..end].iter_mut().rev() {
                *slot = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(4, 4, year);
        put(7, 2, self.0.month());
        put(10, 2, self.0.day());
        put(13, 2, self.0.hour());
        put(16, 2, self.0.minute());
        put(19, 2, second);
        put(26, 6, micros);
        true
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = [0u8; FIXED_LEN];
        if self.write_fixed(&mut text) {
            // ASCII digits and separators only.
            f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
        } else {
            // chrono's `%Y` beyond four digits: a sign, then at least four digits.
            let rest = &self.with_year(2000);
            write!(f, "{:+05}{}", self.0.year(), &rest[4..])
        }
    }
}

impl Timestamp {
    /// The fixed text of the same instant in another year (0..=9999), for the other years.
    fn with_year(&self, year: i32) -> String {
        let mut text = [0u8; FIXED_LEN];
        let moved = self
            .0
            .with_year(year)
            // 29 February of a leap year moved to 2000, also a leap year, always exists.
            .map(Self);
        match moved {
            Some(moved) if moved.write_fixed(&mut text) => {
                String::from_utf8_lossy(&text).into_owned()
            }
            _ => String::new(),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = [0u8; FIXED_LEN];
        if self.write_fixed(&mut text) {
            serializer.serialize_str(std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?)
        } else {
            serializer.collect_str(self)
        }
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

    /// How the shop read timestamps before the fixed-width reader: chrono's parsers only.
    fn chrono_parse(text: &str) -> Option<Timestamp> {
        if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
            return Some(Timestamp::from_datetime(instant.with_timezone(&Utc)));
        }
        let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
            .ok()?;
        Some(Timestamp::from_datetime(naive.and_utc()))
    }

    /// What the shop wrote with chrono's strftime before the fixed-width writer.
    fn chrono_text(instant: DateTime<Utc>) -> String {
        instant.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }

    #[test]
    fn the_fixed_writer_writes_what_chrono_wrote() {
        let mut instants = Vec::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Years -9999 to 20000 or so, to the microsecond, and some to the nanosecond.
            let micros = (seed % 1_000_000_000_000_000_000) as i64 - 315_000_000_000_000_000;
            instants.push(DateTime::from_timestamp_micros(micros).unwrap());
            let nanos = (seed >> 3) as u32 % 1_000_000_000;
            instants.push(DateTime::from_timestamp(micros / 1_000_000, nanos).unwrap());
        }
        for text in [
            "0000-01-01T00:00:00Z",
            "0000-12-31T23:59:59.999999Z",
            "9999-12-31T23:59:59.999999Z",
            "1969-12-31T23:59:59.999999Z",
            "1970-01-01T00:00:00Z",
            "2024-02-29T12:00:00.5Z",
            "2026-11-25T13:00:00.123456Z",
            "2016-12-31T23:59:60.250000Z",
        ] {
            instants.push(DateTime::parse_from_rfc3339(text).unwrap().to_utc());
        }
        // Leap seconds as chrono keeps them, and years past four digits either side.
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_999_999_999)
            .unwrap();
        instants.push(leap.and_utc());
        for year in [-262_000, -10_000, -1, 10_000, 99_999, 262_000] {
            instants.push(leap.with_year(year).unwrap().and_utc());
            let feb29 = NaiveDate::from_ymd_opt(2000, 2, 29)
                .unwrap()
                .and_hms_opt(1, 2, 3);
            if let Some(moved) = feb29.unwrap().with_year(year) {
                instants.push(moved.and_utc());
            }
        }
        for instant in instants {
            let expected = chrono_text(instant);
            let t = Timestamp(instant);
            assert_eq!(t.to_string(), expected, "{instant:?}");
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{expected}\""),
                "{instant:?}"
            );
            let cut = Timestamp::from_datetime(instant);
            let text = chrono_text(cut.0);
            assert_eq!(Timestamp::parse(&text), chrono_parse(&text), "{text}");
            if (0..=9999).contains(&cut.0.year()) {
                assert_eq!(Timestamp::parse(&text), Some(cut), "{text}");
            }
        }
    }

    #[test]
    fn the_fixed_reader_reads_what_chrono_read() {
        for text in [
            "2026-11-25T13:00:00.123456Z",
            "0000-01-01T00:00:00.000000Z",
            "9999-12-31T23:59:59.999999Z",
            "2024-02-29T23:59:59.000001Z",
            "2023-02-29T00:00:00.000000Z",
            "2026-13-01T00:00:00.000000Z",
            "2026-00-01T00:00:00.000000Z",
            "2026-11-31T00:00:00.000000Z",
            "2026-11-25T24:00:00.000000Z",
            "2026-11-25T13:60:00.000000Z",
            "2016-12-31T23:59:60.000000Z",
            "2026-11-25t13:00:00.123456z",
            "2026-11-25T13:00:00.12345aZ",
            "2026-11-25T13:00:00.123456+",
            "+026-11-25T13:00:00.123456Z",
            "2026-11-25 13:00:00.123456Z",
        ] {
            assert_eq!(
                Timestamp::parse_fixed(text).or_else(|| chrono_parse(text)),
                chrono_parse(text),
                "{text}"
            );
            assert_eq!(
                Timestamp::parse(text).is_some(),
                Timestamp::parse_fixed(text).is_some()
                    || chrono_parse(text).is_some()
                    || text.contains(' '),
                "{text}"
            );
        }
        assert!(Timestamp::parse_fixed("2026-11-25T13:00:00.123456Z").is_some());
        assert!(Timestamp::parse_fixed("2016-12-31T23:59:60.000000Z").is_none());
    }

    #[test]
    fn now_is_whole_microseconds() {
        let now = Timestamp::now();
        assert_eq!(now.as_datetime().timestamp_subsec_nanos() % 1000, 0);
        assert_eq!(Timestamp::parse(&now.to_string()), Some(now));
    }
}
