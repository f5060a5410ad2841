//! Durations as the CLI spells them everywhere (docs/CLI.md, "Durations and sizes"):
//! `250ms`, `30s`, `15m`, `1h30m`, `2d`.
//!
//! A duration is one or more `<digits><unit>` parts, units `ms`, `s`, `m`, `h`, `d`, added
//! together. A bare number is refused: `--timeout 10` could mean seconds or milliseconds, and
//! guessing wrong is worse than asking for the unit.

use std::time::Duration;

/// Why a string is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration is empty")]
    Empty,
    #[error("duration {input:?} has a number without a unit (use ms, s, m, h or d, e.g. 30s)")]
    MissingUnit { input: String },
    #[error("duration {input:?} has an unknown unit {unit:?} (use ms, s, m, h or d)")]
    UnknownUnit { input: String, unit: String },
    #[error("duration {input:?} is not of the form 250ms, 30s, 15m or 1h30m")]
    Malformed { input: String },
    #[error("duration {input:?} is too large")]
    Overflow { input: String },
}

/// Parses `250ms`, `15m`, `1h30m` and the like.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    if input.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total_ms: u64 = 0;
    let mut rest = input;
    while !rest.is_empty() {
        let digits_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_len == 0 {
            return Err(DurationError::Malformed {
                input: input.to_owned(),
            });
        }
        let (digits, after_digits) = rest.split_at(digits_len);
        let unit_len = after_digits
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after_digits.len());
        let (unit, after_unit) = after_digits.split_at(unit_len);
        let unit_ms: u64 = match unit {
            "" => {
                return Err(DurationError::MissingUnit {
                    input: input.to_owned(),
                })
            }
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => {
                return Err(DurationError::UnknownUnit {
                    input: input.to_owned(),
                    unit: other.to_owned(),
                })
            }
        };
        let overflow = || DurationError::Overflow {
            input: input.to_owned(),
        };
        let count: u64 = digits.parse().map_err(|_| overflow())?;
        let part_ms = count.checked_mul(unit_ms).ok_or_else(overflow)?;
        total_ms = total_ms.checked_add(part_ms).ok_or_else(overflow)?;
        rest = after_unit;
    }
    Ok(Duration::from_millis(total_ms))
}

/// clap `value_parser` adapter.
pub fn parse_duration_arg(input: &str) -> Result<Duration, String> {
    parse_duration(input).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ms(input: &str) -> u128 {
        parse_duration(input).unwrap().as_millis()
    }

    #[test]
    fn single_units() {
        assert_eq!(ms("250ms"), 250);
        assert_eq!(ms("30s"), 30_000);
        assert_eq!(ms("15m"), 900_000);
        assert_eq!(ms("1h"), 3_600_000);
        assert_eq!(ms("2d"), 172_800_000);
        assert_eq!(ms("0s"), 0);
    }

    #[test]
    fn compound_durations_add_up() {
        assert_eq!(ms("1h30m"), 5_400_000);
        assert_eq!(ms("1m30s500ms"), 90_500);
    }

    #[test]
    fn bare_numbers_and_unknown_units_are_refused() {
        assert!(matches!(
            parse_duration("10"),
            Err(DurationError::MissingUnit { .. })
        ));
        assert!(matches!(
            parse_duration("10x"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration("1h30"),
            Err(DurationError::MissingUnit { .. })
        ));
        assert!(matches!(
            parse_duration("h"),
            Err(DurationError::Malformed { .. })
        ));
        assert!(matches!(
            parse_duration("-5m"),
            Err(DurationError::Malformed { .. })
        ));
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        assert!(matches!(
            parse_duration("99999999999999999999d"),
            Err(DurationError::Overflow { .. })
        ));
        assert!(matches!(
            parse_duration("999999999999999999d"),
            Err(DurationError::Overflow { .. })
        ));
    }
}
