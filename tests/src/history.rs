//! Histories of a fault test: what the clients did and saw, recorded as [`Event`]s, and
//! the offline [`check`] that decides whether the log kept its promises.
//!
//! Producers record each `send` twice: an [`Event::SendInvoke`] before the record is
//! handed to the client library, and its completion ([`Event::SendOk`] with the partition
//! and offset of the acknowledgement, or [`Event::SendFail`] with the
//! [`WriteOutcome`] the client reported). Consumers record every record they poll
//! ([`Event::Poll`]). At the end a full read of every partition from offset 0 is recorded
//! as [`Event::FinalRead`]. A watcher may record what `ListOffsets(latest)` answered over
//! time ([`Event::HighWatermark`]), so the checker can tell whether a partition's high
//! watermark ever went back. Faults are recorded as [`Event::Nemesis`], for the reader of a
//! failed run; the checker ignores them.
//!
//! Nothing here assumes one broker: events name partitions (`topic/partition`), not
//! brokers, and any number of final reads (one per replica, say) may be recorded; they
//! must agree with each other as they must agree with the consumers.
//!
//! Every value is unique and names its producer and its place in that producer's send
//! order ([`Value`]), which is what lets the checker find duplicates and reorderings
//! without trusting the broker's offsets.

mod checker;

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use checker::{check, Finding, Report, Stats, EXAMPLES_MAX};
pub use strata_client::WriteOutcome;

/// A record value of a fault test: producer `producer`'s `sequence`-th send (from 0, in
/// the order the sends were invoked). Encoded as `p<producer>-s<sequence>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Value {
    pub producer: u32,
    pub sequence: u64,
}

impl Value {
    pub fn new(producer: u32, sequence: u64) -> Value {
        Value { producer, sequence }
    }

    /// The bytes written to the log.
    pub fn encode(self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// The value `encode` wrote, or `None` for bytes this test did not write.
    pub fn parse(bytes: &[u8]) -> Option<Value> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (producer, sequence) = text.strip_prefix('p')?.split_once("-s")?;
        Some(Value {
            producer: producer.parse().ok()?,
            sequence: sequence.parse().ok()?,
        })
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}-s{}", self.producer, self.sequence)
    }
}

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// Something a client or the nemesis did or saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A producer is about to hand `value` to the client library, for `partition`.
    SendInvoke {
        value: Value,
        key: Option<String>,
        partition: TopicPartition,
    },
    /// The send of `value` was acknowledged at `partition`/`offset`.
    SendOk {
        value: Value,
        partition: TopicPartition,
        offset: i64,
    },
    /// The send of `value` failed; `outcome` is what the client said about whether the
    /// broker may have appended it.
    SendFail {
        value: Value,
        outcome: WriteOutcome,
        error: String,
    },
    /// A consumer polled `value` at `partition`/`offset`.
    Poll {
        partition: TopicPartition,
        offset: i64,
        value: Value,
    },
    /// The final read found `value` at `partition`/`offset`.
    FinalRead {
        partition: TopicPartition,
        offset: i64,
        value: Value,
    },
    /// `ListOffsets(latest)` for `partition`, asked at `asked_at` (the recorder's clock,
    /// [`Recorder::elapsed`]), answered `offset`: the high watermark of whichever broker
    /// led it then. Recorded once the answer is in.
    HighWatermark {
        partition: TopicPartition,
        offset: i64,
        asked_at: Duration,
    },
    /// A fault started or ended (for the reader; not checked).
    Nemesis { description: String },
    /// A client saw an error that is not a send's completion (a failed poll, say): for the
    /// reader; not checked.
    ClientError { message: String },
}

/// One recorded event: its place in the history, when it happened (since the recorder was
/// created) and who recorded it (`producer-0`, `consumer-1`, `nemesis`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub index: usize,
    pub at: Duration,
    pub process: String,
    pub event: Event,
}

/// A shared, append-only history. Cheap to clone; every clone appends to the same list,
/// in the order the `record` calls take its lock.
#[derive(Debug, Clone)]
pub struct Recorder {
    started: Instant,
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            started: Instant::now(),
            entries: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The time since the recorder was created: the clock of [`Entry::at`].
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn record(&self, process: &str, event: Event) {
        let at = self.started.elapsed();
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let index = entries.len();
        entries.push(Entry {
            index,
            at,
            process: process.to_owned(),
            event,
        });
    }

    /// A copy of everything recorded so far.
    pub fn entries(&self) -> Vec<Entry> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Writes the history to `path`, one event per line, for the reader of a failed run.
    pub fn dump(&self, path: &Path) -> anyhow::Result<()> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        for entry in self.entries() {
            writeln!(
                file,
                "{} {:.3}s {} {:?}",
                entry.index,
                entry.at.as_secs_f64(),
                entry.process,
                entry.event
            )?;
        }
        file.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn values_round_trip_and_foreign_bytes_are_refused() {
        let value = Value::new(3, 1_234_567);
        assert_eq!(value.encode(), b"p3-s1234567");
        assert_eq!(Value::parse(&value.encode()), Some(value));
        for foreign in [
            &b""[..],
            b"p3",
            b"p-s1",
            b"px-s1",
            b"p1-sx",
            b"q1-s1",
            b"\xff",
        ] {
            assert_eq!(Value::parse(foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn the_recorder_keeps_call_order_across_clones() {
        let recorder = Recorder::new();
        let clone = recorder.clone();
        recorder.record(
            "nemesis",
            Event::Nemesis {
                description: "pause".into(),
            },
        );
        clone.record(
            "consumer-0",
            Event::ClientError {
                message: "x".into(),
            },
        );
        let entries = recorder.entries();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].index, 0);
        assert_eq!(entries[1].process, "consumer-0");
        assert!(entries[0].at <= entries[1].at);
    }
}
