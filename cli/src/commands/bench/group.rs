//! `consume --group G --members N`: N consumers in this process, each a member of group G
//! with its own client (connection and heartbeat task), subscribed to the topic. The
//! group's coordinator spreads the partitions over them and moves partitions between them
//! as they join; they commit automatically (`CommitMode::Auto`).
//!
//! Where each partition starts is where the group has committed, or its log start where
//! nothing is ([`start_offsets`]); where it stops is its end offset when the run started,
//! as for `assign`. Because a partition can move from one member to another during the
//! run, the members share one [`GroupLedger`]: per partition, the next offset not yet
//! counted, so a record is counted once however often it is yielded (a second yield is
//! counted as *redelivered*), and the run ends when every partition reached its stop.
//!
//! The *rebalance time* is the time from the start of the run until the members' rebalance
//! events first show every partition of the topic owned by exactly one member and the
//! members' shares differing by at most one partition (the uniform assignor's target).
//! Members read from the moment they own partitions, as they would in production, so
//! records read during the rebalance count in the figures; consumer-perf-test's `fetch`
//! columns leave the rebalance time out.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::FutureExt as _;
use strata_client::{Client, CommitMode, Consumer, Offset, RebalanceEvent, RebalanceEvents};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_stream::StreamExt as _;

use super::consumer::{self, ConsumerOutcome, ConsumerPlan, RecordClock, STOP_CHECK_RECORDS};
use super::stats::Recorder;
use crate::commands::{client_error, Context};
use crate::exit::CliError;
use crate::output::status;

/// How often the members commit what they processed (the client's default).
pub const AUTO_COMMIT_INTERVAL: Duration = Duration::from_secs(5);

/// One partition the group reads: where it starts and where it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupRange {
    pub partition: i32,
    /// The group's committed offset, or the log start where nothing is committed.
    pub start: i64,
    /// The end offset when the run started.
    pub stop: i64,
}

impl GroupRange {
    pub fn records(&self) -> u64 {
        u64::try_from(self.stop.saturating_sub(self.start)).unwrap_or(0)
    }
}

/// Where the group starts on each partition: its committed offset (never below the log
/// start, where retention may have moved it), or the log start; `log` is
/// `(partition, log start, log end)`.
pub async fn start_offsets(
    context: &Context,
    group: &str,
    topic: &str,
    log: &[(i32, i64, i64)],
) -> Result<Vec<GroupRange>, CliError> {
    let partitions: Vec<(String, i32)> = log
        .iter()
        .map(|&(partition, _, _)| (topic.to_owned(), partition))
        .collect();
    let committed = match context
        .client
        .admin()
        .committed_offsets(group, Some(&partitions))
        .await
    {
        Ok(committed) => committed,
        Err(error) if error.code_name() == "GROUP_ID_NOT_FOUND" => Vec::new(),
        Err(error) => {
            return Err(client_error(error)
                .context(format!("reading the committed offsets of group {group:?}")))
        }
    };
    Ok(log
        .iter()
        .map(|&(partition, log_start, stop)| {
            let committed = committed
                .iter()
                .find(|offset| offset.topic == topic && offset.partition == partition)
                .and_then(|offset| offset.offset);
            GroupRange {
                partition,
                start: committed.map_or(log_start, |offset| offset.max(log_start)),
                stop,
            }
        })
        .collect())
}

/// What the members share: which records were counted, and who owns what.
#[derive(Debug)]
pub struct GroupLedger {
    /// Indexed by partition number; `None` for partitions without records to read.
    partitions: Vec<Option<PartitionLedger>>,
    open: AtomicUsize,
    /// Set by [`GroupLedger::end`]: the `--records` budget is used up.
    ended: AtomicBool,
    finished: watch::Sender<bool>,
    redelivered: AtomicU64,
    /// Partitions of the topic (all of them are assigned, with records or not).
    subscribed: usize,
    owners: Mutex<Vec<BTreeSet<i32>>>,
    start: Instant,
    settled_after: OnceLock<Duration>,
}

#[derive(Debug)]
struct PartitionLedger {
    /// The offset after the last record counted.
    next: AtomicI64,
    stop: i64,
    done: AtomicBool,
}

/// What to do with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Count it; `finished` when its partition has nothing more to read.
    Count { finished: bool },
    /// Counted before (by this member or another): not counted again.
    Redelivered,
    /// At or past its partition's stop, or of a partition with nothing to read.
    PastStop,
}

impl GroupLedger {
    pub fn new(
        ranges: &[GroupRange],
        subscribed: usize,
        members: usize,
        start: Instant,
    ) -> GroupLedger {
        let mut partitions: Vec<Option<PartitionLedger>> = Vec::new();
        let mut open = 0;
        for range in ranges.iter().filter(|range| range.records() > 0) {
            let Ok(index) = usize::try_from(range.partition) else {
                continue;
            };
            if partitions.len() <= index {
                partitions.resize_with(index + 1, || None);
            }
            partitions[index] = Some(PartitionLedger {
                next: AtomicI64::new(range.start),
                stop: range.stop,
                done: AtomicBool::new(false),
            });
            open += 1;
        }
        let (finished, _) = watch::channel(open == 0);
        GroupLedger {
            partitions,
            open: AtomicUsize::new(open),
            ended: AtomicBool::new(false),
            finished,
            redelivered: AtomicU64::new(0),
            subscribed,
            owners: Mutex::new(vec![BTreeSet::new(); members]),
            start,
            settled_after: OnceLock::new(),
        }
    }

    /// Judges the record at `offset` of `partition`, and records that it was counted.
    /// A partition has one owner at a time, so only its owner moves its `next`.
    pub fn accept(&self, partition: i32, offset: i64) -> Verdict {
        let Some(ledger) = usize::try_from(partition)
            .ok()
            .and_then(|index| self.partitions.get(index))
            .and_then(Option::as_ref)
        else {
            return Verdict::PastStop;
        };
        if offset >= ledger.stop {
            // Offsets may skip (a gap before the stop), so past the stop also finishes it.
            self.finish(ledger);
            return Verdict::PastStop;
        }
        if offset < ledger.next.load(Ordering::Acquire) {
            self.redelivered.fetch_add(1, Ordering::Relaxed);
            return Verdict::Redelivered;
        }
        ledger.next.store(offset + 1, Ordering::Release);
        let finished = offset + 1 >= ledger.stop;
        if finished {
            self.finish(ledger);
        }
        Verdict::Count { finished }
    }

    fn finish(&self, ledger: &PartitionLedger) {
        if !ledger.done.swap(true, Ordering::AcqRel)
            && self.open.fetch_sub(1, Ordering::AcqRel) == 1
        {
            let _ = self.finished.send(true);
        }
    }

    /// Every partition was read to its stop, or the run was ended.
    pub fn is_finished(&self) -> bool {
        self.open.load(Ordering::Acquire) == 0 || self.ended.load(Ordering::Acquire)
    }

    /// Ends the run for every member: one found the `--records` budget used up, and the
    /// others may be waiting for records that will not be counted.
    pub fn end(&self) {
        self.ended.store(true, Ordering::Release);
        let _ = self.finished.send(true);
    }

    pub fn finished(&self) -> watch::Receiver<bool> {
        self.finished.subscribe()
    }

    pub fn redelivered(&self) -> u64 {
        self.redelivered.load(Ordering::Relaxed)
    }

    /// Whether `partition` was read to its stop (or had nothing to read).
    pub fn is_done(&self, partition: i32) -> bool {
        usize::try_from(partition)
            .ok()
            .and_then(|index| self.partitions.get(index))
            .and_then(Option::as_ref)
            .is_none_or(|ledger| ledger.done.load(Ordering::Acquire))
    }

    /// Member `member` applied `event`; the first time the assignment is even, the
    /// rebalance time is taken.
    pub fn apply(&self, member: usize, event: &RebalanceEvent, topic: &str) {
        let mut owners = self
            .owners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(owned) = owners.get_mut(member) else {
            return;
        };
        let ours = |list: &[(String, i32)]| -> Vec<i32> {
            list.iter()
                .filter(|(name, _)| name == topic)
                .map(|&(_, partition)| partition)
                .collect()
        };
        match event {
            RebalanceEvent::Assigned(list) => owned.extend(ours(list)),
            RebalanceEvent::Revoked(list) | RebalanceEvent::Lost(list) => {
                for partition in ours(list) {
                    owned.remove(&partition);
                }
            }
            _ => {}
        }
        if self.settled_after.get().is_none() && is_even(&owners, self.subscribed) {
            let _ = self.settled_after.set(self.start.elapsed());
        }
    }

    /// Time from the start of the run until the assignment was first even.
    pub fn settled_after(&self) -> Option<Duration> {
        self.settled_after.get().copied()
    }
}

/// Every one of `subscribed` partitions owned by exactly one member, and the members'
/// shares within one partition of each other.
fn is_even(owners: &[BTreeSet<i32>], subscribed: usize) -> bool {
    let total: usize = owners.iter().map(BTreeSet::len).sum();
    let distinct: BTreeSet<i32> = owners.iter().flatten().copied().collect();
    let most = owners.iter().map(BTreeSet::len).max().unwrap_or(0);
    let least = owners.iter().map(BTreeSet::len).min().unwrap_or(0);
    total == subscribed && distinct.len() == subscribed && most - least <= 1
}

/// One member, connected before the clock starts; it joins when started.
#[derive(Debug)]
pub struct Member {
    pub number: usize,
    pub client: Client,
}

/// What a member does: the group, the topic, `-X` settings and the shared state.
#[derive(Debug, Clone)]
pub struct MemberPlan {
    pub group: String,
    pub plan: ConsumerPlan,
    pub settings: Vec<(String, String)>,
    pub ledger: Arc<GroupLedger>,
}

/// Joins the group and reads until every partition reached its stop (or `stop`), then
/// closes the consumer, which commits its positions and leaves the group.
pub async fn run_member(
    member: Member,
    plan: MemberPlan,
    mut recorder: Recorder,
    mut stop: watch::Receiver<bool>,
) -> ConsumerOutcome {
    let mut outcome = ConsumerOutcome::default();
    let topic = plan.plan.topic.clone();
    let mut builder = member
        .client
        .consumer()
        .topics([topic.as_str()])
        .group(plan.group.as_str())
        .start(Offset::Earliest)
        .commit(CommitMode::Auto {
            interval: AUTO_COMMIT_INTERVAL,
        });
    for (key, value) in &plan.settings {
        builder = builder.set(key, value);
    }
    let mut consumer = match builder.build().await {
        Ok(consumer) => consumer,
        Err(error) => {
            outcome.errors += 1;
            recorder.error();
            status!(
                "error: member {} joining group {}: {error} ({})",
                member.number,
                plan.group,
                error.code_name()
            );
            return outcome;
        }
    };
    let Some(mut events) = consumer.rebalance_events() else {
        status!("error: member {} is not a group consumer", member.number);
        outcome.errors += 1;
        return outcome;
    };
    let assigned = consumer.assignment();
    if !assigned.is_empty() {
        plan.ledger
            .apply(member.number, &RebalanceEvent::Assigned(assigned), &topic);
    }
    read(
        &mut consumer,
        &mut events,
        &plan,
        member.number,
        &mut recorder,
        &mut stop,
        &mut outcome,
    )
    .await;
    recorder.flush();
    if let Err(error) = consumer.close().await {
        outcome.errors += 1;
        status!(
            "error: member {} committing and leaving group {}: {error} ({})",
            member.number,
            plan.group,
            error.code_name()
        );
    }
    outcome
}

async fn read(
    consumer: &mut Consumer,
    events: &mut RebalanceEvents,
    plan: &MemberPlan,
    number: usize,
    recorder: &mut Recorder,
    stop: &mut watch::Receiver<bool>,
    outcome: &mut ConsumerOutcome,
) {
    let topic = plan.plan.topic.as_str();
    let ledger = &plan.ledger;
    let mut finished = ledger.finished();
    let mut clock = RecordClock::new(false);
    let mut since_check = 0_u32;
    let apply = |event: RebalanceEvent, consumer: &mut Consumer| {
        ledger.apply(number, &event, topic);
        // A partition read to its stop, given to this member, stays paused.
        if let RebalanceEvent::Assigned(list) = &event {
            let done: Vec<(&str, i32)> = list
                .iter()
                .filter(|(name, partition)| name == topic && ledger.is_done(*partition))
                .map(|&(_, partition)| (topic, partition))
                .collect();
            consumer.pause(&done);
        }
    };
    while !ledger.is_finished() {
        let next = match consumer.next().now_or_never() {
            Some(next) => next,
            None => tokio::select! {
                biased;
                next = consumer.next() => next,
                Some(event) = events.recv() => {
                    apply(event, consumer);
                    continue;
                }
                _ = stop.wait_for(|stop| *stop) => break,
                _ = finished.wait_for(|finished| *finished) => break,
            },
        };
        let record = match next {
            Some(Ok(record)) => record,
            Some(Err(error)) => {
                outcome.errors += 1;
                recorder.error();
                status!(
                    "error: member {number} consuming {topic}: {error} ({})",
                    error.code_name()
                );
                break;
            }
            None => break,
        };
        match ledger.accept(record.partition, record.offset) {
            Verdict::Count { finished } => {
                let now = clock.now();
                if !consumer::count(&record, now, &plan.plan, recorder, outcome) {
                    ledger.end(); // the --records budget is used up
                    break;
                }
                if finished {
                    consumer.pause(&[(topic, record.partition)]);
                }
            }
            Verdict::Redelivered => {}
            Verdict::PastStop => consumer.pause(&[(topic, record.partition)]),
        }
        since_check += 1;
        if since_check >= STOP_CHECK_RECORDS {
            since_check = 0;
            while let Some(event) = events.try_recv() {
                apply(event, consumer);
            }
            if *stop.borrow() {
                break;
            }
        }
    }
    while let Some(event) = events.try_recv() {
        apply(event, consumer);
    }
}

/// The group's committed offsets after the run, against where it started and stopped:
/// `(records committed, partitions committed up to their stop)`.
pub async fn committed_progress(
    context: &Context,
    group: &str,
    topic: &str,
    ranges: &[GroupRange],
) -> Result<(u64, usize), CliError> {
    let partitions: Vec<(String, i32)> = ranges
        .iter()
        .map(|range| (topic.to_owned(), range.partition))
        .collect();
    let committed = context
        .client
        .admin()
        .committed_offsets(group, Some(&partitions))
        .await
        .map_err(|error| {
            client_error(error).context(format!(
                "reading the committed offsets of group {group:?} after the run"
            ))
        })?;
    Ok(progress(ranges, |partition| {
        committed
            .iter()
            .find(|offset| offset.topic == topic && offset.partition == partition)
            .and_then(|offset| offset.offset)
    }))
}

fn progress(ranges: &[GroupRange], committed: impl Fn(i32) -> Option<i64>) -> (u64, usize) {
    let mut records = 0;
    let mut at_stop = 0;
    for range in ranges.iter().filter(|range| range.records() > 0) {
        let Some(offset) = committed(range.partition) else {
            continue;
        };
        let reached = offset.clamp(range.start, range.stop);
        records += u64::try_from(reached - range.start).unwrap_or(0);
        if offset >= range.stop {
            at_stop += 1;
        }
    }
    (records, at_stop)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn range(partition: i32, start: i64, stop: i64) -> GroupRange {
        GroupRange {
            partition,
            start,
            stop,
        }
    }

    fn assigned(partitions: &[i32]) -> RebalanceEvent {
        RebalanceEvent::Assigned(partitions.iter().map(|&p| ("t".to_owned(), p)).collect())
    }

    fn revoked(partitions: &[i32]) -> RebalanceEvent {
        RebalanceEvent::Revoked(partitions.iter().map(|&p| ("t".to_owned(), p)).collect())
    }

    #[test]
    fn each_record_counts_once_and_the_run_ends_at_every_stop() {
        let ledger = GroupLedger::new(
            &[range(0, 0, 2), range(1, 5, 6), range(2, 3, 3)],
            3,
            2,
            Instant::now(),
        );
        let mut finished = ledger.finished();
        assert!(!ledger.is_finished());
        assert_eq!(ledger.accept(0, 0), Verdict::Count { finished: false });
        // A new owner starting before what was counted: redelivered, not counted.
        assert_eq!(ledger.accept(0, 0), Verdict::Redelivered);
        assert_eq!(ledger.accept(0, 1), Verdict::Count { finished: true });
        assert_eq!(ledger.accept(0, 2), Verdict::PastStop);
        assert_eq!(ledger.redelivered(), 1);
        assert!(!ledger.is_finished());
        // Partition 2 had nothing to read; partition 1 skips past its stop (a gap).
        assert!(ledger.is_done(2));
        assert_eq!(ledger.accept(2, 3), Verdict::PastStop);
        assert_eq!(ledger.accept(1, 7), Verdict::PastStop);
        assert!(ledger.is_finished());
        assert!(*finished.borrow_and_update());
    }

    #[test]
    fn ending_the_run_finishes_it_for_every_member() {
        let ledger = GroupLedger::new(&[range(0, 0, 100)], 1, 2, Instant::now());
        let mut finished = ledger.finished();
        assert!(!ledger.is_finished());
        ledger.end();
        assert!(ledger.is_finished());
        assert!(*finished.borrow_and_update());
    }

    #[test]
    fn the_rebalance_ends_when_the_partitions_are_spread_evenly() {
        let ledger = GroupLedger::new(&[range(0, 0, 1)], 4, 2, Instant::now());
        ledger.apply(0, &assigned(&[0, 1, 2, 3]), "t");
        assert_eq!(ledger.settled_after(), None, "one member holds everything");
        ledger.apply(0, &revoked(&[2, 3]), "t");
        assert_eq!(ledger.settled_after(), None, "two partitions have no owner");
        // Another topic's partitions do not count.
        ledger.apply(
            1,
            &RebalanceEvent::Assigned(vec![("other".to_owned(), 2)]),
            "t",
        );
        assert_eq!(ledger.settled_after(), None);
        ledger.apply(1, &assigned(&[2, 3]), "t");
        assert!(ledger.settled_after().is_some());
    }

    #[test]
    fn more_members_than_partitions_settle_with_idle_members() {
        let owners = vec![BTreeSet::from([0]), BTreeSet::from([1]), BTreeSet::new()];
        assert!(is_even(&owners, 2));
        let doubled = vec![BTreeSet::from([0, 1]), BTreeSet::from([1])];
        assert!(!is_even(&doubled, 2), "a partition owned twice");
    }

    #[test]
    fn committed_progress_counts_from_where_the_group_started() {
        let ranges = [range(0, 10, 20), range(1, 0, 5), range(2, 0, 0)];
        let committed = |partition| match partition {
            0 => Some(20),
            1 => Some(3),
            _ => None,
        };
        assert_eq!(progress(&ranges, committed), (13, 1));
        assert_eq!(progress(&ranges, |_| None), (0, 0));
    }
}
