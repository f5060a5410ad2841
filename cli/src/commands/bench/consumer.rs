//! The consuming side: one task per consumer, each with its own client (connection) and a
//! manual assignment of some of the topic's partitions (groups do not exist yet).
//!
//! `consume` reads each partition from its log start up to the end offset seen when the
//! run started, and stops there (or at the shared `--records` budget, or when told to).
//! `e2e` reads from the end offsets seen before the producers start, counts only records
//! carrying the `strata.bench.ts` header, and measures each one's end-to-end latency from
//! it; it runs until the coordinator says every delivered record arrived or the drain time
//! is over.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::FutureExt as _;
use strata_client::{Client, ConsumedRecord, Consumer, Offset};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_stream::StreamExt as _;

use super::stats::{Recorder, Sample};
use super::workload::{record_wire_bytes, BenchClock, TIMESTAMP_HEADER};
use crate::commands::client_error;
use crate::exit::CliError;
use crate::output::status;

/// Records handled between two looks at the stop signal while records keep coming.
pub(super) const STOP_CHECK_RECORDS: u32 = 256;

/// One partition of a consumer's assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionRange {
    pub partition: i32,
    /// `consume`: the end offset seen at start; records at or after it are not counted.
    pub stop_offset: Option<i64>,
}

/// What one consumer reads.
#[derive(Debug, Clone)]
pub struct ConsumerPlan {
    pub topic: String,
    pub partitions: Vec<PartitionRange>,
    /// Where every partition starts: `Earliest` for `consume`, `Latest` for `e2e`.
    pub start: Offset,
    /// `e2e`: read latency from the header; records without it are not counted.
    pub clock: Option<BenchClock>,
    /// `consume --records N`: records all consumers may count together.
    pub budget: Option<Arc<Budget>>,
}

/// A record count shared by all consumers, so `--records N` stops at exactly N.
#[derive(Debug)]
pub struct Budget {
    limit: u64,
    claimed: AtomicU64,
}

impl Budget {
    pub fn new(limit: u64) -> Budget {
        Budget {
            limit,
            claimed: AtomicU64::new(0),
        }
    }

    /// Takes one record from the budget; `false` once it is used up.
    fn claim(&self) -> bool {
        self.claimed.fetch_add(1, Ordering::Relaxed) < self.limit
    }
}

/// What a consumer saw.
#[derive(Debug, Default)]
pub struct ConsumerOutcome {
    /// Records counted per partition (index = partition).
    pub received: Vec<u64>,
    pub errors: u64,
    /// When the last counted record arrived.
    pub finished_at: Option<Instant>,
}

/// A consumer assigned and positioned at its start offsets, not yet reading.
#[derive(Debug)]
pub struct ReadyConsumer {
    consumer: Consumer,
    plan: ConsumerPlan,
}

/// Assigns the plan's partitions on `client` (its own connection) and resolves the start
/// offsets, so an `e2e` run knows where consumers start before producing begins.
pub async fn prepare(
    client: Client,
    settings: &[(String, String)],
    plan: ConsumerPlan,
) -> Result<ReadyConsumer, CliError> {
    let mut builder = client
        .consumer()
        .assign(
            plan.partitions
                .iter()
                .map(|range| (plan.topic.clone(), range.partition)),
        )
        .start(plan.start);
    for (key, value) in settings {
        builder = builder.set(key, value);
    }
    let consumer = builder.build().await.map_err(|error| {
        client_error(error).context(format!("starting a consumer on {}", plan.topic))
    })?;
    Ok(ReadyConsumer { consumer, plan })
}

impl ReadyConsumer {
    /// Starts reading on a task of its own.
    pub fn spawn(
        self,
        recorder: Recorder,
        stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<ConsumerOutcome> {
        tokio::spawn(run(self.consumer, self.plan, recorder, stop))
    }
}

async fn run(
    mut consumer: Consumer,
    plan: ConsumerPlan,
    mut recorder: Recorder,
    mut stop: watch::Receiver<bool>,
) -> ConsumerOutcome {
    let mut outcome = ConsumerOutcome::default();
    let mut open = Progress::new(&plan.partitions);
    let mut since_stop_check = 0_u32;
    let mut clock = RecordClock::new(plan.clock.is_some());
    while !open.is_finished() {
        let next = match consumer.next().now_or_never() {
            Some(next) => next,
            None => tokio::select! {
                biased;
                next = consumer.next() => next,
                _ = stop.wait_for(|stop| *stop) => break,
            },
        };
        let record = match next {
            Some(Ok(record)) => record,
            Some(Err(error)) => {
                outcome.errors += 1;
                recorder.error();
                status!(
                    "error: consuming {}: {error} ({})",
                    plan.topic,
                    error.code_name()
                );
                break;
            }
            None => break,
        };
        match open.accept(record.partition, record.offset) {
            Accept::Count { finished } => {
                let now = clock.now();
                if !count(&record, now, &plan, &mut recorder, &mut outcome) {
                    break; // the --records budget is used up
                }
                if finished {
                    consumer.pause(&[(plan.topic.as_str(), record.partition)]);
                }
            }
            Accept::PastStop => {
                consumer.pause(&[(plan.topic.as_str(), record.partition)]);
            }
        }
        since_stop_check += 1;
        if since_stop_check >= STOP_CHECK_RECORDS {
            since_stop_check = 0;
            if *stop.borrow() {
                break;
            }
        }
    }
    recorder.flush();
    outcome
}

/// Counts `record`; `false` when the shared budget is used up (the record is not counted).
pub(super) fn count(
    record: &ConsumedRecord,
    now: Instant,
    plan: &ConsumerPlan,
    recorder: &mut Recorder,
    outcome: &mut ConsumerOutcome,
) -> bool {
    let latency_micros = match &plan.clock {
        Some(clock) => {
            let header = record
                .headers
                .iter()
                .find(|(key, _)| key == TIMESTAMP_HEADER)
                .and_then(|(_, value)| value.as_deref());
            match header.and_then(|header| clock.latency_micros(header, now)) {
                Some(latency) => Some(latency),
                None => return true, // not this run's record
            }
        }
        None => None,
    };
    if let Some(budget) = &plan.budget {
        if !budget.claim() {
            return false;
        }
    }
    let value_bytes = record.value.as_ref().map_or(0, |value| value.len());
    let key_bytes = record.key.as_ref().map_or(0, |key| key.len());
    let headers = record
        .headers
        .iter()
        .map(|(key, value)| (key.len(), value.as_ref().map_or(0, |value| value.len())));
    recorder.success(
        now,
        Sample {
            value_bytes: value_bytes as u64,
            wire_bytes: record_wire_bytes(key_bytes, value_bytes, headers) as u64,
            latency_micros,
            send_delay_micros: None,
        },
    );
    if let Ok(index) = usize::try_from(record.partition) {
        if outcome.received.len() <= index {
            outcome.received.resize(index + 1, 0);
        }
        outcome.received[index] += 1;
    }
    outcome.finished_at = Some(now);
    true
}

/// Records counted with one reading of the clock when no latency is measured.
const CLOCK_EVERY: u32 = 64;

/// The time a record is counted at: read for each record when end-to-end latencies are
/// measured, otherwise once every [`CLOCK_EVERY`] records (reading the clock for each
/// was 3 % of the consumer's CPU at a million records a second). The time decides only
/// the warm-up boundary, the 5-second series and the finish time, which then lag by at
/// most 63 records.
pub(super) struct RecordClock {
    per_record: bool,
    now: Instant,
    uses: u32,
}

impl RecordClock {
    pub(super) fn new(per_record: bool) -> RecordClock {
        RecordClock {
            per_record,
            now: Instant::now(),
            uses: CLOCK_EVERY,
        }
    }

    pub(super) fn now(&mut self) -> Instant {
        if self.per_record || self.uses >= CLOCK_EVERY {
            self.now = Instant::now();
            self.uses = 0;
        }
        self.uses += 1;
        self.now
    }
}

/// Which partitions still have records to count before their stop offset.
#[derive(Debug)]
struct Progress {
    /// Indexed by partition number (partitions are numbered densely from 0).
    partitions: Vec<Option<PartitionProgress>>,
    open: usize,
    bounded: bool,
}

#[derive(Debug)]
struct PartitionProgress {
    /// `None` = no stop (e2e).
    stop_offset: Option<i64>,
    done: bool,
}

enum Accept {
    /// Count it; `finished` when it was the partition's last before the stop.
    Count { finished: bool },
    /// At or past the partition's stop offset, or not assigned: not counted.
    PastStop,
}

impl Progress {
    fn new(ranges: &[PartitionRange]) -> Progress {
        let mut partitions = Vec::new();
        for range in ranges {
            let Ok(index) = usize::try_from(range.partition) else {
                continue;
            };
            if partitions.len() <= index {
                partitions.resize_with(index + 1, || None);
            }
            partitions[index] = Some(PartitionProgress {
                stop_offset: range.stop_offset,
                done: false,
            });
        }
        Progress {
            partitions,
            open: ranges.len(),
            bounded: ranges.iter().all(|range| range.stop_offset.is_some()),
        }
    }

    fn is_finished(&self) -> bool {
        self.bounded && self.open == 0
    }

    /// Whether the record at `offset` of `partition` counts.
    fn accept(&mut self, partition: i32, offset: i64) -> Accept {
        let progress = usize::try_from(partition)
            .ok()
            .and_then(|index| self.partitions.get_mut(index))
            .and_then(Option::as_mut);
        let Some(progress) = progress else {
            return Accept::PastStop;
        };
        let Some(stop_offset) = progress.stop_offset else {
            return Accept::Count { finished: false };
        };
        let past_stop = offset >= stop_offset;
        // Offsets may skip (a gap before the stop), so past the stop also finishes it.
        let finished = past_stop || offset + 1 >= stop_offset;
        if finished && !progress.done {
            progress.done = true;
            self.open = self.open.saturating_sub(1);
        }
        if past_stop {
            Accept::PastStop
        } else {
            Accept::Count { finished }
        }
    }
}

/// Splits `partitions` over `consumers` round-robin (0, n, 2n… to the first), dropping
/// consumers that get none.
pub fn split_partitions(
    partitions: &[PartitionRange],
    consumers: usize,
) -> Vec<Vec<PartitionRange>> {
    let mut split = vec![Vec::new(); consumers.max(1)];
    for (index, range) in partitions.iter().enumerate() {
        if let Some(share) = split.get_mut(index % consumers.max(1)) {
            share.push(*range);
        }
    }
    split.retain(|share| !share.is_empty());
    split
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn range(partition: i32, stop_offset: Option<i64>) -> PartitionRange {
        PartitionRange {
            partition,
            stop_offset,
        }
    }

    #[test]
    fn the_clock_is_read_for_each_record_only_when_latencies_are_measured() {
        let mut clock = RecordClock::new(false);
        let first = clock.now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        for _ in 1..CLOCK_EVERY {
            assert_eq!(clock.now(), first);
        }
        assert!(clock.now() > first, "read again after CLOCK_EVERY records");
        let mut clock = RecordClock::new(true);
        let first = clock.now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(clock.now() > first);
    }

    #[test]
    fn partitions_are_dealt_round_robin() {
        let partitions: Vec<_> = (0..5).map(|p| range(p, None)).collect();
        let split = split_partitions(&partitions, 2);
        let numbers: Vec<Vec<i32>> = split
            .iter()
            .map(|share| share.iter().map(|r| r.partition).collect())
            .collect();
        assert_eq!(numbers, [vec![0, 2, 4], vec![1, 3]]);
        assert_eq!(
            split_partitions(&partitions[..1], 3).len(),
            1,
            "idle consumers dropped"
        );
    }

    #[test]
    fn partitions_finish_at_their_stop_offset() {
        let mut progress = Progress::new(&[range(0, Some(2)), range(1, Some(5))]);
        assert!(matches!(
            progress.accept(0, 0),
            Accept::Count { finished: false }
        ));
        assert!(matches!(
            progress.accept(0, 1),
            Accept::Count { finished: true }
        ));
        assert!(matches!(progress.accept(0, 2), Accept::PastStop));
        assert!(!progress.is_finished());
        // A gap: offset 6 jumps past the stop at 5 and still finishes the partition.
        assert!(matches!(progress.accept(1, 6), Accept::PastStop));
        assert!(progress.is_finished());
        let unbounded = Progress::new(&[range(0, None)]);
        assert!(!unbounded.is_finished());
    }

    #[test]
    fn the_budget_stops_at_exactly_the_limit() {
        let budget = Budget::new(2);
        assert!(budget.claim() && budget.claim());
        assert!(!budget.claim());
    }
}
