//! Sizes and durations as given: a TOML integer, or text (a flag, a variable, a TOML
//! string) with an optional unit (`1MiB`, `30s`). 1024-based units are `KiB…TiB`,
//! 1000-based `KB…TB`; a plain number is bytes or milliseconds.

use serde::Deserialize;

/// A size or a duration as given: a TOML integer, or text (a flag, a variable, a TOML
/// string) that may carry a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Given {
    Integer(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for Given {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Given, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Given;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter
                    .write_str("an integer or a string with a unit, such as \"1MiB\" or \"30s\"")
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Given, E> {
                Ok(Given::Integer(value))
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Given, E> {
                i64::try_from(value)
                    .map(Given::Integer)
                    .map_err(|_| E::custom(format!("{value} is too large")))
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Given, E> {
                Ok(Given::Text(value.to_owned()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Units of sizes: with an `i`, powers of 1024; without, powers of 1000 (case is ignored).
pub(super) const SIZE_UNITS: [(&str, u64); 9] = [
    ("B", 1),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

/// Units of durations, in milliseconds (`m` is minutes).
pub(super) const DURATION_UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

pub(super) const SIZE_EXPECTED: &str =
    "expected bytes or a size with a unit, such as 1048576, 1MiB or 1MB (KiB, MiB, GiB, TiB \
     count in 1024s; KB, MB, GB, TB in 1000s)";

pub(super) const DURATION_EXPECTED: &str =
    "expected milliseconds or a duration with a unit, such as 30000, 500ms, 30s, 10m, 1h or 7d";

/// A whole number followed by one of `units` (or none: the number as is), e.g. `1MiB`,
/// `1 MiB`, `30s`.
pub(super) fn parse_with_units(
    text: &str,
    units: &[(&str, u64)],
    expected: &str,
) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let unit = unit.trim_start();
    let wrong = || format!("{expected}, not {text:?}");
    let number: u64 = number.parse().map_err(|_| wrong())?;
    let factor = if unit.is_empty() {
        1
    } else {
        units
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit))
            .map(|(_, factor)| *factor)
            .ok_or_else(wrong)?
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

impl Given {
    /// A count of bytes or milliseconds (`units`): a non-negative integer or text.
    pub(super) fn unsigned(&self, units: &[(&str, u64)], expected: &str) -> Result<u64, String> {
        match self {
            Given::Integer(value) => {
                u64::try_from(*value).map_err(|_| format!("{expected}, not {value}"))
            }
            Given::Text(text) => parse_with_units(text, units, expected),
        }
    }

    /// Like [`Given::unsigned`], but a negative integer (-1: unlimited) is kept as is,
    /// for the caller to check.
    pub(super) fn signed(&self, units: &[(&str, u64)], expected: &str) -> Result<i64, String> {
        let negative = match self {
            Given::Integer(value) => Some(*value).filter(|value| *value < 0),
            Given::Text(text) => text
                .trim()
                .starts_with('-')
                .then(|| {
                    text.trim()
                        .parse::<i64>()
                        .map_err(|_| format!("{expected}, not {text:?}"))
                })
                .transpose()?,
        };
        match negative {
            Some(value) => Ok(value),
            None => {
                let value = self.unsigned(units, expected)?;
                i64::try_from(value).map_err(|_| format!("{value} is too large"))
            }
        }
    }

    pub(super) fn bytes(&self) -> Result<u64, String> {
        self.unsigned(&SIZE_UNITS, SIZE_EXPECTED)
    }

    pub(super) fn bytes_or_unlimited(&self) -> Result<i64, String> {
        self.signed(
            &SIZE_UNITS,
            &format!("{SIZE_EXPECTED}, or -1 for unlimited"),
        )
    }

    pub(super) fn millis(&self) -> Result<u64, String> {
        self.unsigned(&DURATION_UNITS, DURATION_EXPECTED)
    }

    pub(super) fn millis_or_unlimited(&self) -> Result<i64, String> {
        self.signed(
            &DURATION_UNITS,
            &format!("{DURATION_EXPECTED}, or -1 for unlimited"),
        )
    }
}
