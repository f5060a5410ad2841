//! Fault-matrix row 12 (a consumer crashes between poll, commit and processing): the
//! event files that the `group_worker` binary writes and the offline checker that reads
//! them (`tests/tests/group_crash_redelivery.rs`).
//!
//! A worker is one member of a consumer group in `CommitMode::Manual`. It appends one line
//! per step to its own event file, each line written whole with one `write` before the
//! next step starts, so a worker that dies leaves every step it finished on disk:
//!
//! ```text
//! polled <partition> <offset>        the stream yielded the record
//! processed <partition> <offset>     the application handled it
//! committed <partition> <next>       `commit().await` returned Ok; <next> is the offset
//!                                    after the last record yielded from the partition
//! released <partition>               a rebalance event took the partition away (revoked or
//!                                    lost); it starts again at the committed offset if the
//!                                    worker gets it back
//! commit-failed <code>               `commit().await` returned an error (the worker exits)
//! idle                                a poll found nothing (the checker ignores it; the
//!                                    test stops the last worker once it is idle)
//! ```
//!
//! Workers run one after another, each killed at a point its seed chooses: between poll
//! and commit ([`CrashMode::BeforeCommit`]) or between commit and the end of processing
//! ([`CrashMode::BeforeProcessing`]). [`check`] then holds the history to the contract of
//! row 12, in Kafka's terms where a committed offset `C` is the next record to read:
//!
//! - every worker starts each partition exactly at the offset committed before it
//!   started (the last `committed` line of the workers before it, or 0), and polls it
//!   without gaps or repeats;
//! - a record processed again (a *redelivery*) lies in `[C, last polled]` of the workers
//!   that held the partition since `C` was committed: the records they polled after the
//!   last commit, Kafka's `(committed, last polled]`;
//! - a record never processed (a *loss*) was polled and committed by a worker that died
//!   before processing it: commit-before-process is at-most-once exactly there;
//! - nothing else is missing, and the group's final committed offset is the last one a
//!   worker saw acknowledged.
//!
//! What a broken group implementation does to these checks is said at [`check`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Where a worker may die.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Poll a batch, process it, commit: the crash comes after the poll and before the
    /// commit (at-least-once: the batch is redelivered).
    BeforeCommit,
    /// Poll a batch, commit, process it: the crash comes after the commit and before the
    /// batch is processed (at-most-once: the rest of the batch is lost).
    BeforeProcessing,
}

impl CrashMode {
    /// The worker's command-line name.
    pub fn as_arg(self) -> &'static str {
        match self {
            CrashMode::BeforeCommit => "before-commit",
            CrashMode::BeforeProcessing => "before-processing",
        }
    }

    pub fn parse(text: &str) -> Option<CrashMode> {
        match text {
            "before-commit" => Some(CrashMode::BeforeCommit),
            "before-processing" => Some(CrashMode::BeforeProcessing),
            _ => None,
        }
    }
}

/// One line of an event file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Polled { partition: i32, offset: i64 },
    Processed { partition: i32, offset: i64 },
    Committed { partition: i32, next: i64 },
    Released { partition: i32 },
    CommitFailed(String),
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Polled { partition, offset } => write!(f, "polled {partition} {offset}"),
            Event::Processed { partition, offset } => {
                write!(f, "processed {partition} {offset}")
            }
            Event::Committed { partition, next } => write!(f, "committed {partition} {next}"),
            Event::Released { partition } => write!(f, "released {partition}"),
            Event::CommitFailed(code) => write!(f, "commit-failed {code}"),
        }
    }
}

impl Event {
    /// Parses one line; `None` for a line this module does not know (the worker also
    /// writes informational lines such as `start`).
    pub fn parse(line: &str) -> Option<Event> {
        let mut words = line.split_whitespace();
        let kind = words.next()?;
        if kind == "commit-failed" {
            return Some(Event::CommitFailed(words.collect::<Vec<_>>().join(" ")));
        }
        let partition: i32 = words.next()?.parse().ok()?;
        if kind == "released" {
            return Some(Event::Released { partition });
        }
        let number: i64 = words.next()?.parse().ok()?;
        match kind {
            "polled" => Some(Event::Polled {
                partition,
                offset: number,
            }),
            "processed" => Some(Event::Processed {
                partition,
                offset: number,
            }),
            "committed" => Some(Event::Committed {
                partition,
                next: number,
            }),
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

/// The line a worker writes when a poll found nothing.
pub const IDLE: &str = "idle";

/// The committed offset per partition that a history's `committed` lines acknowledged,
/// the last line winning (workers ran one after another).
pub fn acknowledged(workers: &[Vec<Event>]) -> BTreeMap<i32, i64> {
    let mut committed = BTreeMap::new();
    for event in workers.iter().flatten() {
        if let Event::Committed { partition, next } = event {
            committed.insert(*partition, *next);
        }
    }
    committed
}

/// What a run's history amounted to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Distinct records processed.
    pub processed: usize,
    /// Processings of a record already processed before.
    pub redeliveries: usize,
    /// Records never processed (commit-before-process windows only).
    pub lost: usize,
    /// Holdings (one worker, one partition, until a release or its death) that ended
    /// with records polled after the last commit.
    pub open_windows: usize,
}

/// Checks the workers' histories (in the order they ran, one at a time) against the
/// contract of row 12 for `mode`. `ends` is each partition's log end: every offset below
/// it was produced. `final_committed` is what OffsetFetch answered after the last worker
/// died. Returns the counts, or every violation found.
///
/// How a broken implementation fails here:
///
/// - A commit acknowledged before the coordinator applied it, or lost after: the next
///   worker starts below the last acknowledged commit (the start check), re-processes
///   records outside its predecessor's window (the redelivery check), and the final
///   OffsetFetch disagrees with the last acknowledged commit.
/// - A commit applied beyond what was yielded (or applied although refused): the next
///   worker starts past the acknowledged offset; in `BeforeCommit` records are then
///   missing, which that mode never allows.
/// - A partition handed to a new member before its dead owner was expelled, with both
///   reading: workers run one at a time, so the new one would poll from an offset other
///   than the committed one, or twice.
/// - Commit-before-process behaviour in `BeforeCommit` (or a client that commits on its
///   own in `Manual` mode): records go missing and the check names them.
pub fn check(
    mode: CrashMode,
    ends: &BTreeMap<i32, i64>,
    workers: &[Vec<Event>],
    final_committed: &BTreeMap<i32, i64>,
) -> Result<Outcome, Vec<String>> {
    let mut problems: Vec<String> = Vec::new();
    let mut outcome = Outcome::default();
    // The group's committed offset per partition as the workers saw it acknowledged.
    let mut committed: BTreeMap<i32, i64> = BTreeMap::new();
    // Per partition, the redelivery window of its last holding: polled after the last
    // acknowledged commit, as [from, to].
    let mut window: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    let mut processed_by: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    // Records polled, committed and not processed by the holding that had them.
    let mut lost_windows: BTreeSet<(i32, i64)> = BTreeSet::new();

    for (index, events) in workers.iter().enumerate() {
        let mut holdings: BTreeMap<i32, Holding> = BTreeMap::new();
        for event in events {
            match event {
                Event::Polled { partition, offset } => {
                    let holding = holdings.entry(*partition).or_default();
                    let expected = match holding.polled.last() {
                        Some(last) => last + 1,
                        None => committed.get(partition).copied().unwrap_or(0),
                    };
                    if *offset != expected {
                        problems.push(format!(
                            "worker {index} polled {partition}/{offset}, expected \
                             {partition}/{expected} (committed: {:?})",
                            committed.get(partition)
                        ));
                    }
                    let end = ends.get(partition).copied().unwrap_or(0);
                    if *offset >= end {
                        problems.push(format!(
                            "worker {index} polled {partition}/{offset} past the log end {end}"
                        ));
                    }
                    holding.polled.push(*offset);
                }
                Event::Processed { partition, offset } => {
                    let record = (*partition, *offset);
                    let holding = holdings.entry(*partition).or_default();
                    if !holding.polled.contains(offset) {
                        problems.push(format!(
                            "worker {index} processed {partition}/{offset} it had not polled"
                        ));
                    }
                    if !holding.processed.insert(*offset) {
                        problems.push(format!(
                            "worker {index} processed {partition}/{offset} twice in one poll"
                        ));
                    }
                    if let Some(first) = processed_by.get(&record) {
                        outcome.redeliveries += 1;
                        // A redelivery must come from the window of the partition's
                        // previous holding: polled after its last acknowledged commit.
                        let inside = window
                            .get(partition)
                            .is_some_and(|(from, to)| (*from..=*to).contains(offset));
                        if !inside {
                            problems.push(format!(
                                "worker {index} processed {partition}/{offset} again (first \
                                 by worker {first}) outside the previous holder's window \
                                 {:?}",
                                window.get(partition)
                            ));
                        }
                    } else {
                        processed_by.insert(record, index);
                    }
                }
                Event::Committed { partition, next } => {
                    let holding = holdings.entry(*partition).or_default();
                    let last_polled = holding.polled.last();
                    if last_polled.map(|last| last + 1) != Some(*next) {
                        problems.push(format!(
                            "worker {index} committed {partition}/{next} but its last polled \
                             record there is {last_polled:?}"
                        ));
                    }
                    committed.insert(*partition, *next);
                    holding.committed_to = Some(*next);
                }
                Event::Released { partition } => {
                    if let Some(holding) = holdings.remove(partition) {
                        holding.finish(
                            *partition,
                            &committed,
                            &mut window,
                            &mut lost_windows,
                            &mut outcome,
                        );
                    }
                }
                Event::CommitFailed(_) => {}
            }
        }
        for (partition, holding) in holdings {
            holding.finish(
                partition,
                &committed,
                &mut window,
                &mut lost_windows,
                &mut outcome,
            );
        }
    }

    for (partition, end) in ends {
        for offset in 0..*end {
            let record = (*partition, offset);
            if processed_by.contains_key(&record) {
                outcome.processed += 1;
                continue;
            }
            outcome.lost += 1;
            match mode {
                CrashMode::BeforeCommit => problems.push(format!(
                    "{partition}/{offset} was never processed (crash before commit must \
                     redeliver)"
                )),
                CrashMode::BeforeProcessing if !lost_windows.contains(&record) => {
                    problems.push(format!(
                        "{partition}/{offset} was never processed and lies outside every \
                         commit-before-process window"
                    ));
                }
                CrashMode::BeforeProcessing => {}
            }
        }
        if committed.get(partition) != Some(end) {
            problems.push(format!(
                "partition {partition}: the workers' last acknowledged commit is {:?}, the \
                 log end {end}",
                committed.get(partition)
            ));
        }
    }
    if &committed != final_committed {
        problems.push(format!(
            "the group's committed offsets {final_committed:?} differ from the last \
             acknowledged commits {committed:?}"
        ));
    }
    if problems.is_empty() {
        Ok(outcome)
    } else {
        Err(problems)
    }
}

/// One worker's hold on one partition: from its first poll to a release or its death.
#[derive(Debug, Default)]
struct Holding {
    polled: Vec<i64>,
    processed: BTreeSet<i64>,
    committed_to: Option<i64>,
}

impl Holding {
    /// Records the holding's redelivery window and commit-before-process losses.
    fn finish(
        self,
        partition: i32,
        committed: &BTreeMap<i32, i64>,
        window: &mut BTreeMap<i32, (i64, i64)>,
        lost_windows: &mut BTreeSet<(i32, i64)>,
        outcome: &mut Outcome,
    ) {
        let (Some(first), Some(last)) = (self.polled.first(), self.polled.last()) else {
            return;
        };
        let acknowledged = committed.get(&partition).copied().unwrap_or(0);
        if acknowledged <= *last {
            outcome.open_windows += 1;
        }
        // Holders that died without moving the commit share one window: a record the
        // first polled may be redelivered to the third.
        let from = acknowledged.max(*first);
        let to = match window.get(&partition) {
            Some((previous_from, previous_to)) if *previous_from == from => {
                (*previous_to).max(*last)
            }
            _ => *last,
        };
        window.insert(partition, (from, to));
        let committed_to = self.committed_to.unwrap_or(0);
        for offset in &self.polled {
            if *offset < committed_to && !self.processed.contains(offset) {
                lost_windows.insert((partition, *offset));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn polled(partition: i32, offsets: std::ops::Range<i64>) -> Vec<Event> {
        offsets
            .map(|offset| Event::Polled { partition, offset })
            .collect()
    }

    fn processed(partition: i32, offsets: std::ops::Range<i64>) -> Vec<Event> {
        offsets
            .map(|offset| Event::Processed { partition, offset })
            .collect()
    }

    fn committed(partition: i32, next: i64) -> Vec<Event> {
        vec![Event::Committed { partition, next }]
    }

    fn ends(end: i64) -> BTreeMap<i32, i64> {
        [(0, end)].into_iter().collect()
    }

    #[test]
    fn lines_round_trip_and_a_torn_last_line_is_dropped() {
        let events = [
            Event::Polled {
                partition: 1,
                offset: 7,
            },
            Event::Processed {
                partition: 1,
                offset: 7,
            },
            Event::Committed {
                partition: 1,
                next: 8,
            },
            Event::CommitFailed("UNKNOWN_MEMBER_ID".to_owned()),
        ];
        let text: String = events.iter().map(|event| format!("{event}\n")).collect();
        assert_eq!(parse_events(&format!("start w1\n{text}polled 1 8")), events);
    }

    #[test]
    fn a_crash_before_commit_redelivers_only_its_window() {
        let first = [polled(0, 0..10), processed(0, 0..10), committed(0, 10)]
            .concat()
            .into_iter()
            .chain([polled(0, 10..15), processed(0, 10..13)].concat())
            .collect::<Vec<_>>();
        let second = [polled(0, 10..20), processed(0, 10..20), committed(0, 20)].concat();
        let outcome = check(
            CrashMode::BeforeCommit,
            &ends(20),
            &[first, second],
            &ends(20),
        )
        .unwrap();
        assert_eq!(outcome.redeliveries, 3);
        assert_eq!(outcome.lost, 0);
        assert_eq!(outcome.processed, 20);
    }

    #[test]
    fn holders_that_die_without_committing_share_one_window() {
        // The first polls 10..15 and dies; the second polls only 10 and dies; the third
        // redelivers 10..15 (all polled after the commit at 10).
        let first = [
            polled(0, 0..10),
            processed(0, 0..10),
            committed(0, 10),
            polled(0, 10..15),
            processed(0, 10..15),
        ]
        .concat();
        let second = [polled(0, 10..11), processed(0, 10..11)].concat();
        let third = [polled(0, 10..20), processed(0, 10..20), committed(0, 20)].concat();
        let outcome = check(
            CrashMode::BeforeCommit,
            &ends(20),
            &[first, second, third],
            &ends(20),
        )
        .unwrap();
        assert_eq!(outcome.redeliveries, 6);
    }

    #[test]
    fn a_resume_below_the_acknowledged_commit_is_found() {
        // The coordinator acknowledged 10 but kept 5: the next worker re-reads 5..10.
        let first = [polled(0, 0..10), processed(0, 0..10), committed(0, 10)].concat();
        let second = [polled(0, 5..20), processed(0, 5..20), committed(0, 20)].concat();
        let problems = check(
            CrashMode::BeforeCommit,
            &ends(20),
            &[first, second],
            &ends(20),
        )
        .unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("expected 0/10")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("outside")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_loss_is_allowed_only_in_a_commit_before_process_window() {
        let first = [
            polled(0, 0..10),
            committed(0, 10),
            processed(0, 0..4), // dies here: 4..10 lost
        ]
        .concat();
        let second = [polled(0, 10..20), committed(0, 20), processed(0, 10..20)].concat();
        let workers = [first, second];
        let outcome = check(CrashMode::BeforeProcessing, &ends(20), &workers, &ends(20)).unwrap();
        assert_eq!(outcome.lost, 6);
        // The same history is a failure where every record must be processed.
        let problems = check(CrashMode::BeforeCommit, &ends(20), &workers, &ends(20)).unwrap_err();
        assert_eq!(problems.len(), 6, "{problems:?}");
    }

    #[test]
    fn a_skip_past_the_commit_is_found() {
        // The coordinator stored 15 where 10 was acknowledged: 10..15 never polled.
        let first = [polled(0, 0..10), committed(0, 10), processed(0, 0..10)].concat();
        let second = [polled(0, 15..20), committed(0, 20), processed(0, 15..20)].concat();
        let problems = check(
            CrashMode::BeforeProcessing,
            &ends(20),
            &[first, second],
            &ends(20),
        )
        .unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("expected 0/10")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("outside every")),
            "{problems:?}"
        );
    }

    #[test]
    fn the_final_offsets_must_match_the_last_acknowledged_commit() {
        let only = [polled(0, 0..20), processed(0, 0..20), committed(0, 20)].concat();
        let problems = check(CrashMode::BeforeCommit, &ends(20), &[only], &ends(12)).unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("differ")),
            "{problems:?}"
        );
    }
}
