//! Dates and times: Postgres counts days and microseconds from 2000-01-01 (UTC); the
//! calendar itself is `crate::civil`'s.

use crate::civil::{civil_from_days, days_from_civil};

/// Days from 1970-01-01 to 2000-01-01.
pub(crate) const PG_EPOCH_DAYS: i64 = 10_957;
pub(crate) const SECONDS_PER_DAY: i64 = 86_400;
const MICROS_PER_DAY: i64 = SECONDS_PER_DAY * 1_000_000;

/// Days from 1970-01-01 to a date, or why that date does not exist.
pub(crate) fn days_from_date((year, month, day): (i32, u8, u8)) -> Result<i64, String> {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    };
    if day == 0 || day > days_in_month {
        return Err(format!("invalid date {year:04}-{month:02}-{day:02}"));
    }
    Ok(days_from_civil(
        i64::from(year),
        u32::from(month),
        u32::from(day),
    ))
}

/// Microseconds from midnight to a time of day, or why it is no time of day.
pub(crate) fn micros_from_time(
    (hour, minute, second, nanos): (u8, u8, u8, u32),
) -> Result<i64, String> {
    if hour > 23 || minute > 59 || second > 59 || nanos > 999_999_999 {
        return Err(format!(
            "invalid time {hour:02}:{minute:02}:{second:02}.{nanos:09}"
        ));
    }
    let seconds = i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    // Postgres keeps microseconds: finer digits are dropped.
    Ok(seconds * 1_000_000 + i64::from(nanos / 1000))
}

/// Microseconds from Postgres' epoch to a date and time, or why it has none.
pub(crate) fn micros_from_datetime(
    (year, month, day, hour, minute, second, nanos): (i32, u8, u8, u8, u8, u8, u32),
) -> Result<i64, String> {
    let days = days_from_date((year, month, day))? - PG_EPOCH_DAYS;
    let time = micros_from_time((hour, minute, second, nanos))?;
    days.checked_mul(MICROS_PER_DAY)
        .and_then(|micros| micros.checked_add(time))
        .ok_or_else(|| format!("datetime in year {year} out of range"))
}

type Datetime = (i32, u8, u8, u8, u8, u8, u32);

/// The date and time `micros` after Postgres' epoch.
pub(crate) fn datetime_from_micros(micros: i64) -> Option<Datetime> {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let (year, month, day) = civil_from_days(days + PG_EPOCH_DAYS);
    let (hour, minute, second, nanos) = time_from_micros(micros.rem_euclid(MICROS_PER_DAY))?;
    Some((
        i32::try_from(year).ok()?,
        month as u8,
        day as u8,
        hour,
        minute,
        second,
        nanos,
    ))
}

/// The time of day `micros` after midnight, if that is within one day.
pub(crate) fn time_from_micros(micros: i64) -> Option<(u8, u8, u8, u32)> {
    if !(0..MICROS_PER_DAY).contains(&micros) {
        return None;
    }
    let seconds = micros / 1_000_000;
    Some((
        (seconds / 3600) as u8,
        (seconds / 60 % 60) as u8,
        (seconds % 60) as u8,
        (micros % 1_000_000) as u32 * 1000,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_convert() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 1, 1), PG_EPOCH_DAYS);
        for days in [-800_000, -1, 0, 59, 60, 10_957, 20_000, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        let micros = micros_from_datetime((2026, 11, 25, 13, 0, 0, 123_456_789)).unwrap();
        assert_eq!(
            datetime_from_micros(micros),
            Some((2026, 11, 25, 13, 0, 0, 123_456_000))
        );
        assert_eq!(
            datetime_from_micros(-1),
            Some((1999, 12, 31, 23, 59, 59, 999_999_000))
        );
        assert!(days_from_date((2025, 2, 29)).is_err());
        assert!(days_from_date((2024, 2, 29)).is_ok());
        assert!(micros_from_time((24, 0, 0, 0)).is_err());
    }
}
