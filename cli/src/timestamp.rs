//! Points in time as the CLI accepts them (docs/CLI.md, "Times") and prints them (`%d{rfc3339}`).
//!
//! Accepted: unix milliseconds (`1700000000000`), a UTC date (`2024-01-01`), RFC 3339
//! (`2024-01-01T12:00:00Z`, `2024-01-01T12:00:00.250+02:00`) and a duration before now
//! (`-15m`, `-1h30m`). All results are unix milliseconds, the unit of record timestamps.
//! `now_ms` is a parameter so that relative times are testable without a clock.
//!
//! Calendar arithmetic is Howard Hinnant's `days_from_civil` / `civil_from_days`, exact for
//! the proleptic Gregorian calendar; no time-zone database is involved because every accepted
//! form is either UTC or carries its own offset.

use crate::duration::parse_duration;

/// Why a string is not a point in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time {input:?} is not unix milliseconds, a date (2024-01-01), RFC 3339 (2024-01-01T12:00:00Z) or a relative time (-15m)")]
pub struct TimestampError {
    pub input: String,
}

const MS_PER_DAY: i64 = 86_400_000;

/// Parses `T` into unix milliseconds.
pub fn parse_timestamp(input: &str, now_ms: i64) -> Result<i64, TimestampError> {
    let error = || TimestampError {
        input: input.to_owned(),
    };
    if let Some(relative) = input.strip_prefix('-') {
        let ago = parse_duration(relative).map_err(|_| error())?;
        let ago_ms = i64::try_from(ago.as_millis()).map_err(|_| error())?;
        return Ok(now_ms.saturating_sub(ago_ms));
    }
    if !input.is_empty() && input.bytes().all(|b| b.is_ascii_digit()) {
        return input.parse().map_err(|_| error());
    }
    parse_calendar(input).ok_or_else(error)
}

/// `YYYY-MM-DD`, optionally followed by `THH:MM:SS[.fff][Z|±HH:MM]`.
fn parse_calendar(input: &str) -> Option<i64> {
    let date = input.get(..10)?;
    let rest = &input[10..];
    let days = parse_date(date)?;
    if rest.is_empty() {
        return Some(days * MS_PER_DAY);
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let hour = number(rest.get(0..2)?, 0, 23)?;
    let minute = number(rest.get(3..5)?, 0, 59)?;
    let second = number(rest.get(6..8)?, 0, 60)?;
    if rest.get(2..3)? != ":" || rest.get(5..6)? != ":" {
        return None;
    }
    let mut rest = &rest[8..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits_len = fraction
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(fraction.len());
        if digits_len == 0 {
            return None;
        }
        // Keep milliseconds; finer digits cannot be stored in a record timestamp.
        let padded = format!("{:0<3}", &fraction[..digits_len.min(3)]);
        millis = padded.parse::<i64>().ok()?;
        rest = &fraction[digits_len..];
    }
    let offset_minutes = parse_zone(rest)?;
    let seconds = hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(days * MS_PER_DAY + seconds * 1000 + millis)
}

fn parse_date(date: &str) -> Option<i64> {
    if date.get(4..5)? != "-" || date.get(7..8)? != "-" {
        return None;
    }
    let year = number(date.get(0..4)?, 0, 9999)?;
    let month = number(date.get(5..7)?, 1, 12)?;
    let day = number(date.get(8..10)?, 1, days_in_month(year, month))?;
    Some(days_from_civil(year, month, day))
}

/// `Z` or `±HH:MM`, as minutes east of UTC.
fn parse_zone(zone: &str) -> Option<i64> {
    if zone == "Z" || zone == "z" {
        return Some(0);
    }
    let sign = match zone.get(0..1)? {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    if zone.len() != 6 || zone.get(3..4)? != ":" {
        return None;
    }
    let hours = number(zone.get(1..3)?, 0, 23)?;
    let minutes = number(zone.get(4..6)?, 0, 59)?;
    Some(sign * (hours * 60 + minutes))
}

fn number(digits: &str, min: i64, max: i64) -> Option<i64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: i64 = digits.parse().ok()?;
    (min..=max).contains(&value).then_some(value)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12; // March = 0
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day count since 1970-01-01, as (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Unix milliseconds as RFC 3339 in UTC with millisecond precision,
/// e.g. `2023-11-14T22:13:20.000Z`.
pub fn format_rfc3339(unix_ms: i64) -> String {
    let days = unix_ms.div_euclid(MS_PER_DAY);
    let ms_of_day = unix_ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let seconds = ms_of_day / 1000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        ms_of_day % 1000
    )
}

/// The current time in unix milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn parse(input: &str) -> i64 {
        parse_timestamp(input, NOW).unwrap()
    }

    #[test]
    fn unix_milliseconds_pass_through() {
        assert_eq!(parse("1700000000000"), 1_700_000_000_000);
        assert_eq!(parse("0"), 0);
    }

    #[test]
    fn dates_are_utc_midnight() {
        assert_eq!(parse("1970-01-01"), 0);
        assert_eq!(parse("2024-01-01"), 1_704_067_200_000);
        assert_eq!(parse("2024-02-29"), 1_709_164_800_000);
        assert!(parse_timestamp("2023-02-29", NOW).is_err());
        assert!(parse_timestamp("2024-13-01", NOW).is_err());
        assert!(parse_timestamp("2024-1-01", NOW).is_err());
    }

    #[test]
    fn rfc3339_with_zones_and_fractions() {
        assert_eq!(parse("2024-01-01T12:00:00Z"), 1_704_110_400_000);
        assert_eq!(parse("2024-01-01T12:00:00.25Z"), 1_704_110_400_250);
        assert_eq!(parse("2024-01-01T12:00:00.123456Z"), 1_704_110_400_123);
        assert_eq!(parse("2024-01-01T14:00:00+02:00"), 1_704_110_400_000);
        assert_eq!(parse("2024-01-01T07:30:00-04:30"), 1_704_110_400_000);
        assert!(parse_timestamp("2024-01-01T12:00:00", NOW).is_err());
        assert!(parse_timestamp("2024-01-01T25:00:00Z", NOW).is_err());
        assert!(parse_timestamp("2024-01-01T12:00:00.Z", NOW).is_err());
    }

    #[test]
    fn relative_times_count_back_from_now() {
        assert_eq!(parse("-15m"), NOW - 900_000);
        assert_eq!(parse("-1h30m"), NOW - 5_400_000);
        assert!(parse_timestamp("-15", NOW).is_err());
        assert!(parse_timestamp("yesterday", NOW).is_err());
        assert!(parse_timestamp("", NOW).is_err());
    }

    #[test]
    fn rfc3339_round_trips_through_formatting() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999Z");
        for ms in [0, 951_782_400_000, 1_704_110_400_250, 4_102_444_800_000] {
            assert_eq!(parse(&format_rfc3339(ms)), ms);
        }
    }
}
