//! Unavailability figures, read from a history: per fault, the time from its mark to the
//! first acknowledgement recorded on every partition ([`unavailability`]); per row, the
//! runs summed up with the p99 and the maximum over every fault ([`RowResult`]), as a
//! Markdown table row.
//!
//! These are measurements for the report. No verdict depends on them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::ack_timeline::AckTimeline;
use crate::history::{Entry, Event, Recorder, TopicPartition, Value};
use crate::wait::wait_until;

use super::setup::WAIT;
use super::stage::Mark;
use super::{Row, RunResult};

/// Per partition, the first acknowledgement of a send invoked at or after `since`. Only
/// sends made after the mark count: the workload records a completion when its producer
/// gets to it, so an answer the dead leader gave just before the fault may be recorded
/// just after it.
pub fn first_fresh_acks(entries: &[Entry], since: Duration) -> BTreeMap<TopicPartition, Duration> {
    let mut invoked_after: BTreeSet<Value> = BTreeSet::new();
    let mut first: BTreeMap<TopicPartition, Duration> = BTreeMap::new();
    for entry in entries {
        match &entry.event {
            Event::SendInvoke { value, .. } if entry.at >= since => {
                invoked_after.insert(*value);
            }
            Event::SendOk {
                value, partition, ..
            } if invoked_after.contains(value) => {
                first.entry(partition.clone()).or_insert(entry.at);
            }
            _ => {}
        }
    }
    first
}

/// For each mark: how long until every partition of `topic` had an acknowledgement of a
/// send invoked after it ([`first_fresh_acks`]). A partition with none counts up to the
/// last entry of the history (settling makes that a failed run first).
pub fn unavailability(
    entries: &[Entry],
    marks: &[Mark],
    topic: &str,
    partitions: i32,
) -> Vec<(String, Duration)> {
    let end = entries.last().map_or(Duration::ZERO, |entry| entry.at);
    marks
        .iter()
        .map(|mark| {
            let first = first_fresh_acks(entries, mark.at);
            let worst = (0..partitions)
                .map(|partition| {
                    let partition = TopicPartition::new(topic, partition);
                    first
                        .get(&partition)
                        .copied()
                        .unwrap_or(end)
                        .saturating_sub(mark.at)
                })
                .max()
                .unwrap_or_default();
            (mark.what.clone(), worst)
        })
        .collect()
}

/// Waits until each of `partitions` has `count` acknowledgements.
pub async fn wait_for_acks(
    recorder: &Recorder,
    partitions: &[TopicPartition],
    count: usize,
) -> anyhow::Result<()> {
    let what = format!("{count} acknowledgements on every partition");
    wait_until(&what, WAIT, || {
        let timeline = AckTimeline::from_entries(&recorder.entries());
        let all = partitions.iter().all(|partition| {
            timeline.acks_between(
                std::slice::from_ref(partition),
                Duration::ZERO,
                Duration::MAX,
            ) >= count
        });
        async move { all }
    })
    .await
}

/// The runs of one row, summed up for the report.
#[derive(Debug, Clone)]
pub struct RowResult {
    pub row: Row,
    pub runs: usize,
    pub failed_runs: usize,
    /// Sends invoked and records polled.
    pub operations: usize,
    pub acked: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub reordered: usize,
    /// Consumer reads of values no final read holds, plus writes that failed as "not
    /// applied" yet were read.
    pub uncommitted_reads: usize,
    pub hw_regressions: usize,
    /// Inconsistent offsets and values nobody sent.
    pub other_anomalies: usize,
    /// One per fault, over every run.
    pub unavailability: Vec<Duration>,
}

impl RowResult {
    pub fn new(row: Row) -> RowResult {
        RowResult {
            row,
            runs: 0,
            failed_runs: 0,
            operations: 0,
            acked: 0,
            lost: 0,
            duplicated: 0,
            reordered: 0,
            uncommitted_reads: 0,
            hw_regressions: 0,
            other_anomalies: 0,
            unavailability: Vec::new(),
        }
    }

    /// Adds one run; a run that could not be carried out counts as a failed run only.
    pub fn add(&mut self, run: Option<&RunResult>) {
        self.runs += 1;
        let Some(run) = run else {
            self.failed_runs += 1;
            return;
        };
        if !run.passed() {
            self.failed_runs += 1;
        }
        let report = &run.report;
        self.operations += report.stats.invoked + report.stats.polled;
        self.acked += report.stats.acked;
        self.lost += report.lost.count;
        self.duplicated += report.duplicated.count;
        self.reordered += report.reordered.count;
        self.uncommitted_reads += report.uncommitted_read.count + report.failed_but_present.count;
        self.hw_regressions += report.hw_regressed.count;
        self.other_anomalies += report.inconsistent_offsets.count + report.unexpected.count;
        self.unavailability
            .extend(run.unavailability.iter().map(|(_, duration)| *duration));
    }

    /// The p99 (nearest rank) and the maximum unavailability over every fault.
    pub fn p99_and_max(&self) -> (Duration, Duration) {
        let mut sorted = self.unavailability.clone();
        sorted.sort_unstable();
        let Some(max) = sorted.last().copied() else {
            return (Duration::ZERO, Duration::ZERO);
        };
        let rank = (sorted.len() * 99).div_ceil(100).max(1);
        (sorted[rank - 1], max)
    }

    /// The header of the Markdown table [`RowResult::table_row`] fills.
    pub fn table_header() -> &'static str {
        "| row | scenario | runs (failed) | operations | acked writes | lost | duplicated | reordered | uncommitted reads | HW regressions | other anomalies | faults | unavailability p99 | max |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    }

    /// This row as a line of the Markdown table.
    pub fn table_row(&self) -> String {
        let (p99, max) = self.p99_and_max();
        format!(
            "| {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} s | {:.2} s |",
            self.row.number(),
            self.row.name(),
            self.runs,
            self.failed_runs,
            self.operations,
            self.acked,
            self.lost,
            self.duplicated,
            self.reordered,
            self.uncommitted_reads,
            self.hw_regressions,
            self.other_anomalies,
            self.unavailability.len(),
            p99.as_secs_f64(),
            max.as_secs_f64()
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn entry(at_ms: u64, event: Event) -> Entry {
        Entry {
            index: 0,
            at: Duration::from_millis(at_ms),
            process: "producer-0".to_owned(),
            event,
        }
    }

    fn invoke(at_ms: u64, sequence: u64, partition: i32) -> Entry {
        let event = Event::SendInvoke {
            value: Value::new(0, sequence),
            key: None,
            partition: TopicPartition::new("t", partition),
        };
        entry(at_ms, event)
    }

    fn ok(at_ms: u64, sequence: u64, partition: i32) -> Entry {
        let event = Event::SendOk {
            value: Value::new(0, sequence),
            partition: TopicPartition::new("t", partition),
            offset: 0,
        };
        entry(at_ms, event)
    }

    #[test]
    fn a_fault_lasts_until_every_partition_acknowledges() {
        let entries = vec![
            invoke(0, 0, 0),
            invoke(900, 9, 1),
            ok(100, 0, 0),
            invoke(1_100, 1, 1),
            invoke(1_150, 2, 0),
            // Sent before the fault, recorded after it: does not count.
            ok(1_180, 9, 1),
            ok(1_200, 1, 1),
            ok(2_500, 2, 0),
            invoke(2_560, 3, 1),
            ok(2_600, 3, 1),
        ];
        let marks = [
            Mark {
                at: Duration::from_millis(1_000),
                what: "kill".into(),
            },
            Mark {
                at: Duration::from_millis(2_550),
                what: "pause".into(),
            },
        ];
        let found = unavailability(&entries, &marks, "t", 2);
        assert_eq!(found[0], ("kill".to_owned(), Duration::from_millis(1_500)));
        // Partition 0 never acknowledges a later send: counted up to the end of the
        // history.
        assert_eq!(found[1].1, Duration::from_millis(50));
        // Without the fresh send on partition 1, the stale acknowledgement would not do.
        let stale_only: Vec<Entry> = entries[..8].to_vec();
        let found = unavailability(&stale_only, &marks[..1], "t", 2);
        assert_eq!(found[0].1, Duration::from_millis(1_500));
    }

    #[test]
    fn p99_is_the_nearest_rank() {
        let mut result = RowResult::new(Row::KillLeader);
        assert_eq!(result.p99_and_max(), (Duration::ZERO, Duration::ZERO));
        result.unavailability = (1..=200).map(Duration::from_millis).collect();
        let (p99, max) = result.p99_and_max();
        assert_eq!(p99, Duration::from_millis(198));
        assert_eq!(max, Duration::from_millis(200));
        assert!(result
            .table_row()
            .starts_with("| 1 | kill the leader | 0 (0) |"));
    }
}
