//! `strata group seek --to`: where to move a group's committed offsets (docs/CLI.md,
//! "strata group seek"). rpk's words with Kafka's aliases: `start` (`earliest`,
//! `beginning`), `end` (`latest`), an offset `N`, or `@T` for the first offset with a
//! timestamp at or after T
//! (T as everywhere: unix ms, a date, RFC 3339, or relative such as `-1h`).

use std::fmt;

use crate::timestamp::parse_timestamp;

/// A parsed `--to` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTarget {
    /// The partition's log start offset.
    Start,
    /// The partition's high watermark: only records produced from now on.
    End,
    /// This offset in every partition (clamped to the log's bounds).
    Offset(i64),
    /// The first offset whose record has a timestamp at or after this one (unix ms); the
    /// end where there is none.
    Time(i64),
}

impl SeekTarget {
    /// Parses a `--to` value; `now_ms` anchors relative times.
    pub fn parse(input: &str, now_ms: i64) -> Result<SeekTarget, String> {
        let input = input.trim();
        match input {
            "start" | "earliest" | "beginning" | "oldest" => return Ok(SeekTarget::Start),
            "end" | "latest" | "newest" => return Ok(SeekTarget::End),
            _ => {}
        }
        if let Some(time) = input.strip_prefix('@') {
            return parse_timestamp(time, now_ms)
                .map(SeekTarget::Time)
                .map_err(|error| error.to_string());
        }
        if !input.is_empty() && input.bytes().all(|b| b.is_ascii_digit()) {
            return input
                .parse()
                .map(SeekTarget::Offset)
                .map_err(|_| format!("offset {input:?} is too large"));
        }
        Err(format!(
            "{input:?} is not start, end, an offset (N) or a time (@T: @2024-01-01, @-1h, @1700000000000)"
        ))
    }
}

impl fmt::Display for SeekTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeekTarget::Start => f.write_str("start"),
            SeekTarget::End => f.write_str("end"),
            SeekTarget::Offset(offset) => write!(f, "{offset}"),
            SeekTarget::Time(time) => write!(f, "@{time}"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn words_offsets_and_times() {
        let parse = |input| SeekTarget::parse(input, NOW);
        assert_eq!(parse("start"), Ok(SeekTarget::Start));
        assert_eq!(parse("earliest"), Ok(SeekTarget::Start));
        assert_eq!(parse("end"), Ok(SeekTarget::End));
        assert_eq!(parse("latest"), Ok(SeekTarget::End));
        assert_eq!(parse("42"), Ok(SeekTarget::Offset(42)));
        assert_eq!(parse("0"), Ok(SeekTarget::Offset(0)));
        assert_eq!(
            parse("@1700000000123"),
            Ok(SeekTarget::Time(1_700_000_000_123))
        );
        assert_eq!(parse("@-1h"), Ok(SeekTarget::Time(NOW - 3_600_000)));
        assert_eq!(
            parse("@2024-01-01"),
            Ok(SeekTarget::Time(1_704_067_200_000))
        );
    }

    #[test]
    fn anything_else_is_refused_with_the_accepted_forms() {
        for bad in [
            "",
            "-5",
            "+3",
            "@",
            "@yesterday",
            "1x",
            "99999999999999999999",
        ] {
            let error = SeekTarget::parse(bad, NOW).unwrap_err();
            assert!(!error.is_empty(), "{bad:?}");
        }
        assert!(SeekTarget::parse("soon", NOW)
            .unwrap_err()
            .contains("start, end"));
    }
}
