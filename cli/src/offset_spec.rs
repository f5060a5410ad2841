//! The `-o` grammar of `strata consume` (docs/CLI.md, "Offsets"): rpk's grammar, plus kcat's words.
//!
//! A spec is a start and a stop. The start says where each partition begins: the log start,
//! the log end, an absolute offset, the last N records (`-N`), N records after the log start
//! (`+N`) or the first record at or after a time (`@T`). The stop says when a partition is
//! done: never (follow the log), at an exclusive offset (`N:M`), at the end offset seen when
//! the command started (`:end`) or at a time (`@T1:T2`: records with timestamps before T2).
//!
//! kcat's spellings mean the same things: `beginning` and `earliest` are `start`, `latest` is
//! `end`, `s@T` is `@T` and `e@T` is `@:T`. kcat gives a start and a stop as two values
//! (`-o s@A -o e@B`), so each value is parsed into an [`OffsetPart`] whose sides are
//! optional, and the parts are combined into one [`OffsetSpec`]; two values that both name a
//! start (or both a stop) are refused. kcat's `stored` (the consumer group's committed
//! offset) is refused with its reason: with `-g` the committed offset is always where a
//! partition starts, and `-o` only says where to start when nothing is committed.
//!
//! Times are resolved to unix milliseconds while parsing, so `-15m` means fifteen minutes
//! before the command started, not before each partition is opened.

use std::fmt;

use crate::timestamp::parse_timestamp;

/// Where each partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    /// The first available record (`start`, and an empty left side of `:M`).
    Start,
    /// Only records produced from now on (`end`).
    End,
    /// An absolute offset, inclusive (`N`, `N:`).
    Offset(i64),
    /// The last N records of each partition (`-N`).
    Tail(u64),
    /// N records after the log start offset (`+N`).
    AfterStart(u64),
    /// The first record whose timestamp is at or after this unix-ms time (`@T`).
    Time(i64),
}

/// When a partition is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopPosition {
    /// Keep following the log until interrupted.
    Follow,
    /// Stop before this offset: M is exclusive (`N:M`, `:M`).
    Offset(i64),
    /// Stop at the end offset seen when the command started (`:end`, `-e`).
    End,
    /// Stop at the first record whose timestamp is at or after this unix-ms time (`@T1:T2`).
    Time(i64),
}

/// A parsed `-o` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetSpec {
    pub start: StartPosition,
    pub stop: StopPosition,
}

/// Why an `-o` value was refused; a usage error (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid offset {input:?}: {reason}")]
pub struct OffsetSpecError {
    pub input: String,
    pub reason: String,
}

impl Default for OffsetSpec {
    /// `start`, following: the CLI's default without a group.
    fn default() -> Self {
        OffsetSpec {
            start: StartPosition::Start,
            stop: StopPosition::Follow,
        }
    }
}

/// One `-o` value: a start, a stop, or both. A side left out takes its default when the
/// parts are combined (start from the log start, follow the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetPart {
    /// The value as typed, for error messages.
    pub input: String,
    pub start: Option<StartPosition>,
    pub stop: Option<StopPosition>,
}

/// What `-o` accepts, for error messages.
const FORMS: &str = "use start (beginning, earliest), end (latest), N, -N, +N, N:M, :end, \
     @T, @T1:T2, s@T or e@T";

impl OffsetPart {
    /// Parses one `-o` value; `now_ms` anchors relative times such as `@-15m`.
    pub fn parse(input: &str, now_ms: i64) -> Result<OffsetPart, OffsetSpecError> {
        let error = |reason: String| OffsetSpecError {
            input: input.to_owned(),
            reason,
        };
        let time = |text: &str| parse_timestamp(text, now_ms).map_err(|e| error(e.to_string()));
        let (start, stop) = if input.is_empty() {
            return Err(error(format!("empty; {FORMS}")));
        } else if input == "stored" {
            return Err(error(
                "stored (the consumer group's committed offset) is what -g always does; \
                 with -g, -o only says where to start when the group has committed nothing"
                    .to_owned(),
            ));
        } else if let Some(at) = input.strip_prefix("s@") {
            (Some(StartPosition::Time(time(at)?)), None)
        } else if let Some(at) = input.strip_prefix("e@") {
            (None, Some(StopPosition::Time(time(at)?)))
        } else if let Some(times) = input.strip_prefix('@') {
            parse_time_range(times, now_ms).ok_or_else(|| {
                error(
                    "after @ expected T, T:, T1:T2 or :T with T unix ms, 2024-01-01, \
                     RFC 3339 or -15m"
                        .to_owned(),
                )
            })?
        } else {
            parse_offset_range(input).map_err(error)?
        };
        match (start, stop) {
            (None, None) => {
                return Err(error(format!("names neither a start nor a stop; {FORMS}")))
            }
            (Some(start), Some(stop)) => OffsetSpec { start, stop }
                .check_not_empty()
                .map_err(error)?,
            _ => {}
        }
        Ok(OffsetPart {
            input: input.to_owned(),
            start,
            stop,
        })
    }
}

impl OffsetSpec {
    /// Parses a single `-o` value; `now_ms` anchors relative times such as `@-15m`.
    #[cfg(test)]
    pub fn parse(input: &str, now_ms: i64) -> Result<OffsetSpec, OffsetSpecError> {
        OffsetSpec::combine(&[OffsetPart::parse(input, now_ms)?])
    }

    /// Combines the `-o` values of one command line: at most one may name a start and at
    /// most one a stop (`-o s@A -o e@B`). No values at all is the default, `start`.
    pub fn combine(parts: &[OffsetPart]) -> Result<OffsetSpec, OffsetSpecError> {
        let input = parts
            .iter()
            .map(|part| part.input.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let error = |reason: String| OffsetSpecError {
            input: input.clone(),
            reason,
        };
        let only_one = |what: &str, given: Vec<&OffsetPart>| match given.as_slice() {
            [first, second, ..] => Err(error(format!(
                "{:?} and {:?} both give a {what}; give one start and one stop",
                first.input, second.input
            ))),
            _ => Ok(()),
        };
        only_one(
            "start",
            parts.iter().filter(|p| p.start.is_some()).collect(),
        )?;
        only_one("stop", parts.iter().filter(|p| p.stop.is_some()).collect())?;
        let spec = OffsetSpec {
            start: parts
                .iter()
                .find_map(|part| part.start)
                .unwrap_or(StartPosition::Start),
            stop: parts
                .iter()
                .find_map(|part| part.stop)
                .unwrap_or(StopPosition::Follow),
        };
        spec.check_not_empty().map_err(error)?;
        Ok(spec)
    }

    /// `-e`: stop at the end seen at start unless the spec already has a stop.
    pub fn exit_at_end(self) -> OffsetSpec {
        match self.stop {
            StopPosition::Follow => OffsetSpec {
                stop: StopPosition::End,
                ..self
            },
            _ => self,
        }
    }

    fn check_not_empty(&self) -> Result<(), String> {
        match (self.start, self.stop) {
            (StartPosition::Offset(from), StopPosition::Offset(until)) if until <= from => Err(
                format!("stop offset {until} must be greater than start offset {from} (the stop is exclusive)"),
            ),
            (StartPosition::Time(from), StopPosition::Time(until)) if until <= from => {
                Err("the end time must be after the start time".to_owned())
            }
            _ => Ok(()),
        }
    }
}

/// The sides of one value: `None` where the value leaves a side to its default.
type Sides = (Option<StartPosition>, Option<StopPosition>);

/// `A`, `A:` `A:B`, `:B` for the offset forms (which never contain a colon themselves).
fn parse_offset_range(input: &str) -> Result<Sides, String> {
    let Some((left, right)) = input.split_once(':') else {
        return Ok((Some(parse_start(input)?), None));
    };
    let start = match left {
        "" => None,
        _ => Some(parse_start(left)?),
    };
    let stop = match right {
        "" => None,
        "end" => Some(StopPosition::End),
        _ => Some(StopPosition::Offset(parse_offset(right).ok_or_else(
            || format!("stop {right:?} is not an offset or \"end\""),
        )?)),
    };
    Ok((start, stop))
}

fn parse_start(text: &str) -> Result<StartPosition, String> {
    let count = |digits: &str| parse_offset(digits).and_then(|n| u64::try_from(n).ok());
    let position = match text {
        "start" | "beginning" | "earliest" => Some(StartPosition::Start),
        "end" | "latest" => Some(StartPosition::End),
        _ => match (text.strip_prefix('-'), text.strip_prefix('+')) {
            (Some(n), _) => count(n).map(StartPosition::Tail),
            (_, Some(n)) => count(n).map(StartPosition::AfterStart),
            _ => parse_offset(text).map(StartPosition::Offset),
        },
    };
    position.ok_or_else(|| format!("{text:?} is not a start; {FORMS}"))
}

fn parse_offset(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The part after `@`. RFC 3339 times contain colons, so every colon is tried as the range
/// separator and the first split where both sides parse wins.
fn parse_time_range(times: &str, now_ms: i64) -> Option<Sides> {
    if let Ok(at) = parse_timestamp(times, now_ms) {
        return Some((Some(StartPosition::Time(at)), None));
    }
    times.match_indices(':').find_map(|(index, _)| {
        let (left, right) = (&times[..index], &times[index + 1..]);
        let start = match left {
            "" => None,
            _ => Some(StartPosition::Time(parse_timestamp(left, now_ms).ok()?)),
        };
        let stop = match right {
            "" => None,
            "end" => Some(StopPosition::End),
            _ => Some(StopPosition::Time(parse_timestamp(right, now_ms).ok()?)),
        };
        Some((start, stop))
    })
}

impl fmt::Display for StartPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartPosition::Start => f.write_str("start"),
            StartPosition::End => f.write_str("end"),
            StartPosition::Offset(offset) => write!(f, "offset {offset}"),
            StartPosition::Tail(count) => write!(f, "the last {count} records"),
            StartPosition::AfterStart(count) => write!(f, "{count} records after start"),
            StartPosition::Time(ms) => write!(f, "time {ms}"),
        }
    }
}

#[cfg(test)]
#[path = "offset_spec_tests.rs"]
mod tests;
