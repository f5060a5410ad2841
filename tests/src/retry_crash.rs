//! Retry topics under crashes (issue 22's crash test): the record classes, the event
//! files that the `retry_worker` binary writes, and the offline checker ([`check`]) that
//! `tests/tests/retry_crash.rs` runs on them.
//!
//! Each record of the source topic has its id as its value. Whether the handler fails
//! it is a pure function of the id and of the attempts made before ([`fails`]), so a
//! restarted worker classifies it the same way:
//!
//! - `id % 100 < 30` fails on its first attempt only ([`Class::FailOnce`], 30 %);
//! - `id % 100` in `30..35` fails every attempt ([`Class::AlwaysFail`], 5 %): it must
//!   end in the dead-letter topic after [`MAX_ATTEMPTS`] attempts;
//! - the rest succeed at once ([`Class::Ok`]).
//!
//! A worker is one member of the group, running `Consumer::run` with the retry policy
//! [`policy`] and `CommitMode::Auto`, so its offsets are committed by the library while
//! hand-offs are in flight. It appends one line per step to its own event file, each
//! written whole with one `write` before the step returns, so a SIGKILLed worker leaves
//! every step it finished:
//!
//! ```text
//! handled ok <id> <topic> <partition> <offset> <attempts-before>
//!                         the handler processed the record (the side effect counted)
//! handled failed <id> <topic> <partition> <offset> <attempts-before>
//!                         the handler failed it; `fail` hands it off after this line
//! released <topic> <partition>
//!                         a rebalance revoked or lost the partition; if the worker
//!                         gets it back, it starts again at the committed offset
//! ```
//!
//! Lines it does not know (`start ...`, `assigned ...`) are informational.
//! The worker cannot see the library's commits; the test reads the group's committed
//! offsets after each worker is dead and expelled ([`Run::committed_after`]).

pub mod check;
#[cfg(test)]
mod check_tests;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use strata_client::RetryPolicy;

pub use check::{check, Outcome};

/// Attempts in all, the first included: a record that always fails is tried this often
/// and then dead-lettered.
pub const MAX_ATTEMPTS: u32 = 3;
/// Retry levels of [`policy`]: waits of 100 ms (`retry.0`) and 200 ms (`retry.1`).
pub const RETRY_LEVELS: u32 = 2;
/// The error message of a record that fails on its first attempt only.
pub const ONCE_MESSAGE: &str = "first attempt fails";
/// The error message of a record that always fails.
pub const ALWAYS_MESSAGE: &str = "always fails";

/// Short waits keep the test quick: 100 ms before the second attempt, 200 ms before the
/// third, then the dead-letter topic.
pub fn policy() -> RetryPolicy {
    RetryPolicy::default().max_attempts(MAX_ATTEMPTS).backoff(
        Duration::from_millis(100),
        2.0,
        Duration::from_millis(200),
    )
}

/// What the handler does with a record, by its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Ok,
    FailOnce,
    AlwaysFail,
}

impl Class {
    pub fn of(id: u64) -> Class {
        match id % 100 {
            0..30 => Class::FailOnce,
            30..35 => Class::AlwaysFail,
            _ => Class::Ok,
        }
    }
}

/// Whether the handler fails record `id` after `attempts_before` attempts.
pub fn fails(id: u64, attempts_before: u32) -> bool {
    match Class::of(id) {
        Class::Ok => false,
        Class::FailOnce => attempts_before == 0,
        Class::AlwaysFail => true,
    }
}

/// A record of a consumed topic: topic, partition, offset.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instance {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl fmt::Display for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.topic, self.partition, self.offset)
    }
}

/// A topic partition.
pub type Partition = (String, i32);

/// One line of an event file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Handled {
        ok: bool,
        id: u64,
        record: Instance,
        attempts_before: u32,
    },
    Released(Partition),
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Handled {
                ok,
                id,
                record,
                attempts_before,
            } => write!(
                f,
                "handled {} {id} {} {} {} {attempts_before}",
                if *ok { "ok" } else { "failed" },
                record.topic,
                record.partition,
                record.offset
            ),
            Event::Released((topic, partition)) => write!(f, "released {topic} {partition}"),
        }
    }
}

impl Event {
    /// Parses one line; `None` for an informational line.
    pub fn parse(line: &str) -> Option<Event> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["handled", outcome, id, topic, partition, offset, attempts] => Some(Event::Handled {
                ok: match *outcome {
                    "ok" => true,
                    "failed" => false,
                    _ => return None,
                },
                id: id.parse().ok()?,
                record: Instance {
                    topic: (*topic).to_owned(),
                    partition: partition.parse().ok()?,
                    offset: offset.parse().ok()?,
                },
                attempts_before: attempts.parse().ok()?,
            }),
            ["released", topic, partition] => Some(Event::Released((
                (*topic).to_owned(),
                partition.parse().ok()?,
            ))),
            _ => None,
        }
    }
}

/// The events of one worker's file. A last line without its newline (the process died
/// inside the `write`) is not counted: the step it names had not finished.
pub fn parse_events(text: &str) -> Vec<Event> {
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    complete.lines().filter_map(Event::parse).collect()
}

/// How many records a worker's event file says it handled.
pub fn handled_count(text: &str) -> usize {
    text.lines()
        .filter(|line| line.starts_with("handled "))
        .count()
}

/// A record read back from a retry topic or the dead-letter topic, with the headers the
/// checker looks at (`None` when missing or not UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// Where it is.
    pub at: Instance,
    /// Its value parsed as an id.
    pub id: Option<u64>,
    pub attempt: Option<u32>,
    pub original_topic: Option<String>,
    pub original_partition: Option<i32>,
    pub original_offset: Option<i64>,
    pub original_group: Option<String>,
    pub due_ms: Option<i64>,
    pub error_kind: Option<String>,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
}

/// Everything one run left behind.
#[derive(Debug, Clone)]
pub struct Run {
    pub group: String,
    /// Retry topics by level, then the dead-letter topic.
    pub retry_topics: Vec<String>,
    pub dlt: String,
    /// Where each id was produced in the source topic.
    pub sources: BTreeMap<u64, Instance>,
    /// The workers' events, in the order the workers ran (one at a time).
    pub workers: Vec<Vec<Event>>,
    /// The group's committed offsets once worker `i` was dead and expelled (for the last
    /// worker: once everything was committed), one map per worker.
    pub committed_after: Vec<BTreeMap<Partition, i64>>,
    /// The log end of every partition the group consumes (source and retry topics), read
    /// after the last worker.
    pub ends: BTreeMap<Partition, i64>,
    /// Every record of the retry topics and the dead-letter topic.
    pub forwarded: Vec<Forwarded>,
}
