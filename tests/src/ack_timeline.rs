//! [`AckTimeline`]: when each partition's sends completed, read back from a recorded
//! history, for the availability figures of the cluster fault tests: acknowledgements
//! inside a fault window, the first acknowledgement after a restart, the failed sends of
//! some partitions.
//!
//! It only reads what [`crate::history::Recorder`] holds. A [`Event::SendFail`] does not
//! name its partition, so the partition comes from the send's [`Event::SendInvoke`]
//! (values are unique). Times are the recorder's (since it was created); a fault's start
//! and end are its [`Event::Nemesis`] entries, found by [`AckTimeline::mark`].
//!
//! Nothing here decides a verdict by itself: the tests assert counts (acks > 0 during a
//! cut, no failed send on a partition) and only print durations.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::history::{Entry, Event, TopicPartition, Value, WriteOutcome};

/// One failed send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedSend {
    pub at: Duration,
    pub partition: TopicPartition,
    pub value: Value,
    pub outcome: WriteOutcome,
    /// The client's error, as recorded (`<message> (<CODE>)`).
    pub error: String,
}

/// The completions of a history, by partition; see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct AckTimeline {
    /// When each acknowledgement was recorded, in recording order, per partition.
    acks: BTreeMap<TopicPartition, Vec<Duration>>,
    failures: Vec<FailedSend>,
    /// Every [`Event::Nemesis`] entry: when, and its description.
    marks: Vec<(Duration, String)>,
}

impl AckTimeline {
    pub fn from_entries(entries: &[Entry]) -> AckTimeline {
        let mut timeline = AckTimeline::default();
        let mut invoked: HashMap<Value, &TopicPartition> = HashMap::new();
        for entry in entries {
            match &entry.event {
                Event::SendInvoke {
                    value, partition, ..
                } => {
                    invoked.insert(*value, partition);
                }
                Event::SendOk { partition, .. } => {
                    timeline
                        .acks
                        .entry(partition.clone())
                        .or_default()
                        .push(entry.at);
                }
                Event::SendFail {
                    value,
                    outcome,
                    error,
                } => timeline.failures.push(FailedSend {
                    at: entry.at,
                    // A failure without an invoke is the checker's business (it counts
                    // it); here it is put on a partition no test asks about.
                    partition: invoked
                        .get(value)
                        .map_or_else(|| TopicPartition::new("?", -1), |tp| (*tp).clone()),
                    value: *value,
                    outcome: *outcome,
                    error: error.clone(),
                }),
                Event::Nemesis { description } => {
                    timeline.marks.push((entry.at, description.clone()));
                }
                Event::Poll { .. }
                | Event::FinalRead { .. }
                | Event::HighWatermark { .. }
                | Event::ClientError { .. } => {}
            }
        }
        timeline
    }

    /// When the first [`Event::Nemesis`] entry whose description starts with `prefix` was
    /// recorded.
    pub fn mark(&self, prefix: &str) -> Option<Duration> {
        self.marks
            .iter()
            .find(|(_, description)| description.starts_with(prefix))
            .map(|(at, _)| *at)
    }

    /// Acknowledgements on `partitions` recorded in `[from, to)`.
    pub fn acks_between(
        &self,
        partitions: &[TopicPartition],
        from: Duration,
        to: Duration,
    ) -> usize {
        self.ack_times(partitions)
            .filter(|at| (from..to).contains(at))
            .count()
    }

    /// The first acknowledgement on `partition` recorded at or after `after`.
    pub fn first_ack_after(&self, partition: &TopicPartition, after: Duration) -> Option<Duration> {
        self.acks
            .get(partition)?
            .iter()
            .copied()
            .find(|at| *at >= after)
    }

    /// The longest time in `[from, to)` without an acknowledgement on any of
    /// `partitions`, counting from `from` and up to `to`.
    pub fn longest_silence(
        &self,
        partitions: &[TopicPartition],
        from: Duration,
        to: Duration,
    ) -> Duration {
        let mut times: Vec<Duration> = self
            .ack_times(partitions)
            .filter(|at| (from..to).contains(at))
            .collect();
        times.sort_unstable();
        let mut longest = Duration::ZERO;
        let mut previous = from;
        for at in times.into_iter().chain([to]) {
            longest = longest.max(at.saturating_sub(previous));
            previous = at;
        }
        longest
    }

    /// Every failed send, in recording order.
    pub fn failures(&self) -> &[FailedSend] {
        &self.failures
    }

    /// The failed sends to any of `partitions`, in recording order.
    pub fn failures_on(&self, partitions: &[TopicPartition]) -> Vec<&FailedSend> {
        self.failures
            .iter()
            .filter(|failure| partitions.contains(&failure.partition))
            .collect()
    }

    fn ack_times<'a>(
        &'a self,
        partitions: &'a [TopicPartition],
    ) -> impl Iterator<Item = Duration> + 'a {
        partitions
            .iter()
            .filter_map(|partition| self.acks.get(partition))
            .flatten()
            .copied()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn entry(at_ms: u64, event: Event) -> Entry {
        Entry {
            index: 0,
            at: Duration::from_millis(at_ms),
            process: "test".to_owned(),
            event,
        }
    }

    fn tp(partition: i32) -> TopicPartition {
        TopicPartition::new("t", partition)
    }

    fn invoke(at_ms: u64, sequence: u64, partition: i32) -> Entry {
        let event = Event::SendInvoke {
            value: Value::new(0, sequence),
            key: None,
            partition: tp(partition),
        };
        entry(at_ms, event)
    }

    fn ok(at_ms: u64, sequence: u64, partition: i32) -> Entry {
        let event = Event::SendOk {
            value: Value::new(0, sequence),
            partition: tp(partition),
            offset: 0,
        };
        entry(at_ms, event)
    }

    #[test]
    fn acks_failures_and_marks_are_placed_by_partition_and_time() {
        let entries = vec![
            invoke(0, 0, 0),
            invoke(0, 1, 1),
            invoke(0, 2, 1),
            ok(100, 0, 0),
            entry(
                150,
                Event::Nemesis {
                    description: "cut node 2".into(),
                },
            ),
            ok(200, 1, 1),
            entry(
                300,
                Event::SendFail {
                    value: Value::new(0, 2),
                    outcome: WriteOutcome::Unknown,
                    error: "timed out (TIMEOUT)".into(),
                },
            ),
            entry(
                900,
                Event::Nemesis {
                    description: "heal".into(),
                },
            ),
        ];
        let timeline = AckTimeline::from_entries(&entries);
        let cut = timeline.mark("cut").unwrap();
        let heal = timeline.mark("heal").unwrap();
        assert_eq!((cut.as_millis(), heal.as_millis()), (150, 900));
        assert_eq!(timeline.mark("kill"), None);
        assert_eq!(timeline.acks_between(&[tp(0), tp(1)], cut, heal), 1);
        assert_eq!(timeline.acks_between(&[tp(0)], Duration::ZERO, heal), 1);
        let after = timeline.first_ack_after(&tp(1), cut).unwrap();
        assert_eq!(after.as_millis(), 200);
        assert_eq!(timeline.first_ack_after(&tp(0), cut), None);
        assert_eq!(
            timeline.longest_silence(&[tp(0), tp(1)], cut, heal),
            Duration::from_millis(700)
        );
        assert!(timeline.failures_on(&[tp(0)]).is_empty());
        let failed = timeline.failures_on(&[tp(1)]);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].value, Value::new(0, 2));
        assert_eq!(timeline.failures().len(), 1);
    }
}
