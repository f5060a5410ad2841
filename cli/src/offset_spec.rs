//! The `-o` grammar of `strata consume` (docs/CLI.md, "Offsets"): rpk's grammar, plus kcat's words.
//!
//! A spec is a start and a stop. The start says where each partition begins: the log start,
//! the log end, an absolute offset, the last N records (`-N`), N records after the log start
//! (`+N`) or the first record at or after a time (`@T`). The stop says when a partition is
//! done: never (follow the log), at an exclusive offset (`N:M`), at the end offset seen when
//! the command started (`:end`) or at a time (`@T1:T2`: records with timestamps before T2).
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

impl OffsetSpec {
    /// Parses an `-o` value; `now_ms` anchors relative times such as `@-15m`.
    pub fn parse(input: &str, now_ms: i64) -> Result<OffsetSpec, OffsetSpecError> {
        let error = |reason: &str| OffsetSpecError {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        if input.is_empty() {
            return Err(error("empty; use start, end, N, -N, +N, N:M or @T"));
        }
        let spec = match input.strip_prefix('@') {
            Some(times) => parse_time_range(times, now_ms).ok_or_else(|| {
                error("after @ expected T, T:, T1:T2 or :T with T unix ms, 2024-01-01, RFC 3339 or -15m")
            })?,
            None => parse_offset_range(input).map_err(|reason| error(&reason))?,
        };
        spec.check_not_empty().map_err(|reason| error(&reason))?;
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

/// `A`, `A:` `A:B`, `:B` for the offset forms (which never contain a colon themselves).
fn parse_offset_range(input: &str) -> Result<OffsetSpec, String> {
    let Some((left, right)) = input.split_once(':') else {
        return Ok(OffsetSpec {
            start: parse_start(input)?,
            stop: StopPosition::Follow,
        });
    };
    let start = if left.is_empty() {
        StartPosition::Start
    } else {
        parse_start(left)?
    };
    let stop = match right {
        "" => StopPosition::Follow,
        "end" => StopPosition::End,
        _ => StopPosition::Offset(
            parse_offset(right)
                .ok_or_else(|| format!("stop {right:?} is not an offset or \"end\""))?,
        ),
    };
    Ok(OffsetSpec { start, stop })
}

fn parse_start(text: &str) -> Result<StartPosition, String> {
    let count = |digits: &str| parse_offset(digits).and_then(|n| u64::try_from(n).ok());
    let position = match text {
        "start" => Some(StartPosition::Start),
        "end" => Some(StartPosition::End),
        _ => match (text.strip_prefix('-'), text.strip_prefix('+')) {
            (Some(n), _) => count(n).map(StartPosition::Tail),
            (_, Some(n)) => count(n).map(StartPosition::AfterStart),
            _ => parse_offset(text).map(StartPosition::Offset),
        },
    };
    position.ok_or_else(|| format!("{text:?} is not start, end, N, -N or +N"))
}

fn parse_offset(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The part after `@`. RFC 3339 times contain colons, so every colon is tried as the range
/// separator and the first split where both sides parse wins.
fn parse_time_range(times: &str, now_ms: i64) -> Option<OffsetSpec> {
    if let Ok(at) = parse_timestamp(times, now_ms) {
        return Some(OffsetSpec {
            start: StartPosition::Time(at),
            stop: StopPosition::Follow,
        });
    }
    times
        .match_indices(':')
        .find_map(|(index, _)| {
            let (left, right) = (&times[..index], &times[index + 1..]);
            let start = match left {
                "" => StartPosition::Start,
                _ => StartPosition::Time(parse_timestamp(left, now_ms).ok()?),
            };
            let stop = match right {
                "" => StopPosition::Follow,
                "end" => StopPosition::End,
                _ => StopPosition::Time(parse_timestamp(right, now_ms).ok()?),
            };
            Some(OffsetSpec { start, stop })
        })
        .filter(|spec| *spec != OffsetSpec::default())
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
