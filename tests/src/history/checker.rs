//! [`check`]: a pure function from a recorded history to a [`Report`] of anomalies.
//!
//! What each finding means (values are unique, so a value names one send):
//!
//! - `lost`: a send was acknowledged, but its value is not in the final read.
//! - `duplicated`: one value at two positions (partition, offset), whether seen by the
//!   final read or by a consumer.
//! - `reordered`: for one producer and one partition, two acknowledged values whose
//!   positions in the final read are not in send order, or whose acknowledged offsets are
//!   not increasing in send order (idempotence with at most 5 requests in flight promises
//!   both).
//! - `failed_but_present`: a send failed as [`WriteOutcome::NotApplied`] ("certainly not
//!   written") yet its value was read.
//! - `inconsistent_offsets`: one position holding two values (across consumers and final
//!   reads); an acknowledged offset that holds another value in the final read, or none
//!   while the value is elsewhere (a value that is nowhere is `lost` only); a consumer
//!   read at a position the final read has nothing at. Gaps are fine.
//! - `unexpected`: a value was read that no producer sent.
//! - `uncommitted_read`: a consumer read a value that no final read holds: it was served
//!   before it was committed, and then went away (a read of a write that failed as "not
//!   applied" is `failed_but_present` as well). A read at a position where the final read
//!   has nothing is then reported here only, not also as an inconsistent offset.
//! - `hw_regressed`: an [`Event::HighWatermark`] answer below what the history had already
//!   shown of that partition before the question was asked: an earlier answer, an
//!   acknowledged offset + 1 (`acks=all` is answered once the high watermark passes the
//!   batch), or a polled offset + 1 (consumers read below the high watermark only). Only
//!   events recorded before the question count, so concurrent clients cannot make a false
//!   finding.
//!
//! Log order is checked for every value the final read holds, not only acknowledged ones:
//! a send whose fate was unknown may be in the log at most once, and in its producer's
//! order (`reordered`).
//! Counts are of values, except for `inconsistent_offsets`, which counts positions and
//! acknowledgements. Examples follow value order (producer, then sequence) or position
//! order, so a report is the same for the same history.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::{Entry, Event, TopicPartition, Value, WriteOutcome};

mod high_watermark;
mod reads;

use high_watermark::{check_hw_regressed, WatermarkEvidence};
use reads::{check_log_order, check_uncommitted_read};

/// How many examples each finding keeps.
pub const EXAMPLES_MAX: usize = 5;

/// One kind of anomaly: how many, and the first few, described.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finding {
    pub count: usize,
    pub examples: Vec<String>,
}

impl Finding {
    fn add(&mut self, describe: impl FnOnce() -> String) {
        self.count += 1;
        if self.examples.len() < EXAMPLES_MAX {
            self.examples.push(describe());
        }
    }
}

/// What the history holds, for the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub invoked: usize,
    pub acked: usize,
    pub failed_not_applied: usize,
    pub failed_unknown: usize,
    /// Invoked sends that never completed.
    pub pending: usize,
    pub polled: usize,
    pub final_records: usize,
}

/// The checker's verdict: valid when every finding is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub stats: Stats,
    pub lost: Finding,
    pub duplicated: Finding,
    pub reordered: Finding,
    pub failed_but_present: Finding,
    pub inconsistent_offsets: Finding,
    pub unexpected: Finding,
    pub uncommitted_read: Finding,
    pub hw_regressed: Finding,
}

impl Report {
    /// Each finding with its name.
    pub fn findings(&self) -> [(&'static str, &Finding); 8] {
        [
            ("lost", &self.lost),
            ("duplicated", &self.duplicated),
            ("reordered", &self.reordered),
            ("failed_but_present", &self.failed_but_present),
            ("inconsistent_offsets", &self.inconsistent_offsets),
            ("unexpected", &self.unexpected),
            ("uncommitted_read", &self.uncommitted_read),
            ("hw_regressed", &self.hw_regressed),
        ]
    }

    /// The number of anomalies of every kind.
    pub fn anomalies(&self) -> usize {
        self.findings()
            .iter()
            .map(|(_, finding)| finding.count)
            .sum()
    }

    pub fn is_valid(&self) -> bool {
        self.anomalies() == 0
    }

    /// One line: the counts of the history, then of each anomaly.
    pub fn summary(&self) -> String {
        let stats = &self.stats;
        let mut line = format!(
            "invoked {} acked {} failed unknown {} not-applied {} pending {} polled {} final {}; anomalies {}",
            stats.invoked,
            stats.acked,
            stats.failed_unknown,
            stats.failed_not_applied,
            stats.pending,
            stats.polled,
            stats.final_records,
            self.anomalies(),
        );
        for (name, finding) in self.findings() {
            line.push_str(&format!(" {name} {}", finding.count));
        }
        line
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.summary())?;
        for (name, finding) in self.findings() {
            if finding.count == 0 {
                continue;
            }
            write!(f, "\n{name}: {}", finding.count)?;
            for example in &finding.examples {
                write!(f, "\n  {example}")?;
            }
        }
        Ok(())
    }
}

/// A position in the log.
type Position = (TopicPartition, i64);

fn show(position: &Position) -> String {
    format!("{}@{}", position.0, position.1)
}

/// How a send ended, as far as the history says.
#[derive(Debug, Clone)]
enum Completion {
    Pending,
    Ok(Position),
    Failed(WriteOutcome, String),
}

/// What the history says, indexed for the checks.
#[derive(Debug, Default)]
struct Indexed {
    /// Every invoked send, by value; the first completion recorded wins.
    sends: BTreeMap<Value, Completion>,
    /// Where the final reads found each value.
    in_final: BTreeMap<Value, BTreeSet<Position>>,
    /// What the final reads found at each position.
    final_at: BTreeMap<Position, BTreeSet<Value>>,
    /// Where anyone (consumers, final reads) saw each value.
    seen: BTreeMap<Value, BTreeSet<Position>>,
    /// What anyone saw at each position, and who.
    seen_at: BTreeMap<Position, BTreeMap<Value, BTreeSet<String>>>,
    /// Consumer reads, in history order.
    polls: Vec<(Position, Value, String)>,
    /// What the history shows of each partition's high watermark: every
    /// [`Event::HighWatermark`] answer, acknowledgement and poll, in history order.
    watermarks: Vec<WatermarkEvidence>,
}

impl Indexed {
    fn new(entries: &[Entry], stats: &mut Stats) -> Indexed {
        let mut indexed = Indexed::default();
        for entry in entries {
            match &entry.event {
                Event::SendInvoke { value, .. } => {
                    stats.invoked += 1;
                    indexed.sends.entry(*value).or_insert(Completion::Pending);
                }
                Event::SendOk {
                    value,
                    partition,
                    offset,
                } => {
                    indexed.watermarks.push(WatermarkEvidence {
                        partition: partition.clone(),
                        at_least: offset + 1,
                        at: entry.at,
                        asked: None,
                        describe: format!("{value} acknowledged at {partition}@{offset}"),
                    });
                    indexed.complete(*value, Completion::Ok((partition.clone(), *offset)));
                }
                Event::SendFail {
                    value,
                    outcome,
                    error,
                } => indexed.complete(*value, Completion::Failed(*outcome, error.clone())),
                Event::Poll {
                    partition,
                    offset,
                    value,
                } => {
                    stats.polled += 1;
                    indexed.watermarks.push(WatermarkEvidence {
                        partition: partition.clone(),
                        at_least: offset + 1,
                        at: entry.at,
                        asked: None,
                        describe: format!("{} read {value} at {partition}@{offset}", entry.process),
                    });
                    let position = (partition.clone(), *offset);
                    indexed.saw(&position, *value, &entry.process);
                    indexed
                        .polls
                        .push((position, *value, entry.process.clone()));
                }
                Event::FinalRead {
                    partition,
                    offset,
                    value,
                } => {
                    stats.final_records += 1;
                    let position = (partition.clone(), *offset);
                    indexed.saw(&position, *value, &entry.process);
                    let positions = indexed.in_final.entry(*value).or_default();
                    positions.insert(position.clone());
                    indexed.final_at.entry(position).or_default().insert(*value);
                }
                Event::HighWatermark {
                    partition,
                    offset,
                    asked_at,
                } => indexed.watermarks.push(WatermarkEvidence {
                    partition: partition.clone(),
                    at_least: *offset,
                    at: entry.at,
                    asked: Some((*asked_at, entry.index)),
                    describe: format!(
                        "{} answered {partition} high watermark {offset}",
                        entry.process
                    ),
                }),
                Event::Nemesis { .. } | Event::ClientError { .. } => {}
            }
        }
        for completion in indexed.sends.values() {
            match completion {
                Completion::Pending => stats.pending += 1,
                Completion::Ok(_) => stats.acked += 1,
                Completion::Failed(WriteOutcome::NotApplied, _) => stats.failed_not_applied += 1,
                Completion::Failed(WriteOutcome::Unknown, _) => stats.failed_unknown += 1,
            }
        }
        indexed
    }

    fn complete(&mut self, value: Value, completion: Completion) {
        let send = self.sends.entry(value).or_insert(Completion::Pending);
        if matches!(send, Completion::Pending) {
            *send = completion;
        }
    }

    fn saw(&mut self, position: &Position, value: Value, process: &str) {
        self.seen.entry(value).or_default().insert(position.clone());
        self.seen_at
            .entry(position.clone())
            .or_default()
            .entry(value)
            .or_default()
            .insert(process.to_owned());
    }

    fn acked(&self) -> impl Iterator<Item = (Value, &Position)> + '_ {
        self.sends
            .iter()
            .filter_map(|(value, completion)| match completion {
                Completion::Ok(position) => Some((*value, position)),
                _ => None,
            })
    }
}

/// Checks a history; see the module documentation for what each finding means.
pub fn check(entries: &[Entry]) -> Report {
    let mut report = Report::default();
    let indexed = Indexed::new(entries, &mut report.stats);
    check_lost(&indexed, &mut report.lost);
    check_duplicated(&indexed, &mut report.duplicated);
    check_reordered(&indexed, &mut report.reordered);
    check_failed_but_present(&indexed, &mut report.failed_but_present);
    check_inconsistent_offsets(&indexed, &mut report.inconsistent_offsets);
    check_unexpected(&indexed, &mut report.unexpected);
    check_log_order(&indexed, &mut report.reordered);
    check_uncommitted_read(&indexed, &mut report.uncommitted_read);
    check_hw_regressed(&indexed, &mut report.hw_regressed);
    report
}

fn check_lost(indexed: &Indexed, finding: &mut Finding) {
    for (value, acked_at) in indexed.acked() {
        if !indexed.in_final.contains_key(&value) {
            finding.add(|| {
                format!(
                    "{value} acknowledged at {}, absent from the final read",
                    show(acked_at)
                )
            });
        }
    }
}

fn check_duplicated(indexed: &Indexed, finding: &mut Finding) {
    for (value, positions) in &indexed.seen {
        if positions.len() > 1 {
            let listed: Vec<String> = positions.iter().map(show).collect();
            let sent = match indexed.sends.get(value) {
                Some(Completion::Ok(position)) => format!("acknowledged at {}", show(position)),
                Some(Completion::Failed(outcome, _)) => format!("failed {outcome:?}"),
                Some(Completion::Pending) => "never completed".to_owned(),
                None => "never sent".to_owned(),
            };
            finding.add(|| format!("{value} ({sent}) at {}", listed.join(" and ")));
        }
    }
}

/// Per producer and partition, in send order: log positions and ack offsets increase.
fn check_reordered(indexed: &Indexed, finding: &mut Finding) {
    // Values iterate in (producer, sequence) order, which is send order per producer.
    let mut last: BTreeMap<(u32, TopicPartition), LastAcked> = BTreeMap::new();
    for (value, acked_at) in indexed.acked() {
        let (partition, ack_offset) = acked_at;
        let logged = indexed
            .in_final
            .get(&value)
            .and_then(|positions| positions.iter().find(|(p, _)| p == partition))
            .map(|(_, offset)| *offset);
        let previous = last.entry((value.producer, partition.clone())).or_default();
        let mut problems = Vec::new();
        if let Some((earlier, earlier_offset)) = previous.ack {
            if *ack_offset <= earlier_offset {
                problems.push(format!(
                    "acknowledged at {partition}@{ack_offset}, not after {earlier} at @{earlier_offset}"
                ));
            }
        }
        if let (Some(offset), Some((earlier, earlier_offset))) = (logged, previous.log_max) {
            if offset < earlier_offset {
                problems.push(format!(
                    "logged at {partition}@{offset}, before {earlier} (sent earlier) at @{earlier_offset}"
                ));
            }
        }
        if !problems.is_empty() {
            finding.add(|| format!("{value} {}", problems.join("; ")));
        }
        previous.ack = Some((value, *ack_offset));
        if let Some(offset) = logged {
            if previous.log_max.is_none_or(|(_, max)| offset > max) {
                previous.log_max = Some((value, offset));
            }
        }
    }
}

/// One producer's latest acknowledged send on one partition, and the furthest log
/// position of its sends so far.
#[derive(Debug, Default)]
struct LastAcked {
    ack: Option<(Value, i64)>,
    log_max: Option<(Value, i64)>,
}

fn check_failed_but_present(indexed: &Indexed, finding: &mut Finding) {
    for (value, completion) in &indexed.sends {
        let Completion::Failed(WriteOutcome::NotApplied, error) = completion else {
            continue;
        };
        if let Some(positions) = indexed.seen.get(value) {
            let listed: Vec<String> = positions.iter().map(show).collect();
            finding.add(|| {
                format!(
                    "{value} failed as not applied ({error}) but is at {}",
                    listed.join(" and ")
                )
            });
        }
    }
}

fn check_inconsistent_offsets(indexed: &Indexed, finding: &mut Finding) {
    for (position, values) in &indexed.seen_at {
        if values.len() > 1 {
            let listed: Vec<String> = values
                .iter()
                .map(|(value, readers)| {
                    let readers: Vec<&str> = readers.iter().map(String::as_str).collect();
                    format!("{value} (read by {})", readers.join(", "))
                })
                .collect();
            finding.add(|| format!("{} holds {}", show(position), listed.join(" and ")));
        }
    }
    for (value, acked_at) in indexed.acked() {
        let held = indexed.final_at.get(acked_at);
        // A lost value whose offset holds nothing is reported as lost only.
        let lost_only = held.is_none() && !indexed.in_final.contains_key(&value);
        if !lost_only && !held.is_some_and(|values| values.contains(&value)) {
            finding.add(|| {
                format!(
                    "{value} acknowledged at {}, where the final read has {}",
                    show(acked_at),
                    describe_values(held)
                )
            });
        }
    }
    let mut reported = BTreeSet::new();
    for (position, value, process) in &indexed.polls {
        // A value no final read holds, read where the final read has nothing, is an
        // uncommitted read only.
        let uncommitted_only = !indexed.in_final.contains_key(value);
        if !indexed.final_at.contains_key(position)
            && !uncommitted_only
            && reported.insert(position.clone())
        {
            finding.add(|| {
                format!(
                    "{process} read {value} at {}, where the final read has nothing",
                    show(position)
                )
            });
        }
    }
}

fn describe_values(values: Option<&BTreeSet<Value>>) -> String {
    match values {
        None => "nothing".to_owned(),
        Some(values) => values
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(" and "),
    }
}

fn check_unexpected(indexed: &Indexed, finding: &mut Finding) {
    for (value, positions) in &indexed.seen {
        if !indexed.sends.contains_key(value) {
            let listed: Vec<String> = positions.iter().map(show).collect();
            finding.add(|| format!("{value} at {} was never sent", listed.join(" and ")));
        }
    }
}

#[cfg(test)]
#[path = "checker_tests.rs"]
mod tests;
