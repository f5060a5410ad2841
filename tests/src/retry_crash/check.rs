//! The checker of a retry crash run ([`check`]): no record lost, and every duplicate
//! where the hand-off contract (`docs/RETRY.md`, "No loss: the hand-off") allows one.
//!
//! A *record* here is one [`Instance`]: a record of the source topic (attempt 0) or of a
//! retry topic (attempt `strata.attempt`). The checks, and what each catches:
//!
//! - **Forwards are well formed**: every record of a retry topic or the dead-letter topic
//!   carries its id, the attempt count that matches its topic (`retry.<a-1>` for attempt
//!   `a`, the DLT for the last), the origin of its id in the source topic, the group, the
//!   error kind, type and message, and (retry topics only) a due time.
//! - **Redeliveries lie after the last commit of a dead worker**: a record handled again
//!   by worker `k` was last handled by an earlier worker `j` whose commits, and those of
//!   every worker until `k` started, stayed at or below its offset (the committed offset
//!   `k` started from). Within one worker, a record is handled again only after its
//!   partition was released (revoked or lost) in between.
//! - **A commit never runs ahead**: every offset below a committed offset was handled by
//!   a worker that ran before that commit was read, and committed offsets never go back.
//! - **The hand-off precedes the commit**: each record whose handling failed (and every
//!   record is committed in the end) has its forward in the next topic; a forward exists
//!   only for a failed handling, at most one per handling. A library that commits a
//!   failed record before its forward is acknowledged, or drops the forward, loses the
//!   record at a kill and fails here.
//! - **Every id ends processed or dead-lettered**: ids of [`Class::Ok`] and
//!   [`Class::FailOnce`] are processed at least once, ids of [`Class::AlwaysFail`] are in
//!   the dead-letter topic after [`MAX_ATTEMPTS`] attempts; the handler saw every record
//!   with the attempt count its topic says.
//!
//! Duplicates are counted, not forbidden: records handled again after a kill
//! ([`Outcome::redeliveries`]), ids processed more than once, extra forwards per topic.

use std::collections::{BTreeMap, BTreeSet};

use super::{fails, Class, Event, Forwarded, Instance, Partition, Run, ALWAYS_MESSAGE};
use super::{MAX_ATTEMPTS, ONCE_MESSAGE};

/// What a run amounted to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ids: usize,
    /// Ids processed successfully (at least once).
    pub processed: usize,
    /// Ids in the dead-letter topic.
    pub dead_lettered: usize,
    /// Handler calls.
    pub handlings: usize,
    /// Handler calls for a record handled before.
    pub redeliveries: usize,
    /// Of those, by the same worker after its partition was released.
    pub redeliveries_after_release: usize,
    /// Workers whose death left records handled after their last commit that the next
    /// worker handled again.
    pub kills_redelivering: usize,
    /// Successful handler calls beyond the first, per id, summed.
    pub processed_again: usize,
    /// Per retry topic and the DLT: records beyond the first for one (id, attempt).
    pub duplicate_forwards: BTreeMap<String, usize>,
}

/// The last handling of a record so far.
#[derive(Debug, Clone, Copy)]
struct Last {
    worker: usize,
    /// How many times the worker had released the partition at that handling.
    releases: usize,
}

/// Checks a run; returns its counts, or every violation found.
pub fn check(run: &Run) -> Result<Outcome, Vec<String>> {
    let mut problems = Vec::new();
    let mut outcome = Outcome {
        ids: run.sources.len(),
        ..Outcome::default()
    };
    let expected = expected_records(run, &mut problems);
    let first_worker = walk(run, &expected, &mut outcome, &mut problems);
    check_commits(run, &first_worker, &mut problems);
    check_handoffs(run, &expected, &first_worker, &mut outcome, &mut problems);
    check_ids(run, &mut outcome, &mut problems);
    if problems.is_empty() {
        Ok(outcome)
    } else {
        Err(problems)
    }
}

/// Every consumed record with the id and attempts-before the handler must see, after
/// checking each forwarded record's headers.
fn expected_records(run: &Run, problems: &mut Vec<String>) -> BTreeMap<Instance, (u64, u32)> {
    let mut expected: BTreeMap<Instance, (u64, u32)> = run
        .sources
        .iter()
        .map(|(id, at)| (at.clone(), (*id, 0)))
        .collect();
    for forwarded in &run.forwarded {
        if let Some((id, attempt)) = check_forwarded(run, forwarded, problems) {
            if run.retry_topics.contains(&forwarded.at.topic) {
                expected.insert(forwarded.at.clone(), (id, attempt));
            }
        }
    }
    for (partition, end) in &run.ends {
        for offset in 0..*end {
            let at = Instance {
                topic: partition.0.clone(),
                partition: partition.1,
                offset,
            };
            if !expected.contains_key(&at) {
                problems.push(format!(
                    "{at} holds no record this run produced or forwarded"
                ));
            }
        }
    }
    expected
}

/// The headers of one record of a retry topic or the DLT; its id and attempt when they
/// are readable.
fn check_forwarded(
    run: &Run,
    forwarded: &Forwarded,
    problems: &mut Vec<String>,
) -> Option<(u64, u32)> {
    let at = &forwarded.at;
    let (Some(id), Some(attempt)) = (forwarded.id, forwarded.attempt) else {
        problems.push(format!(
            "{at}: no id or no readable strata.attempt: {forwarded:?}"
        ));
        return None;
    };
    let mut wrong = Vec::new();
    let in_dlt = at.topic == run.dlt;
    let topic = if attempt >= MAX_ATTEMPTS {
        Some(&run.dlt)
    } else {
        attempt
            .checked_sub(1)
            .and_then(|level| run.retry_topics.get(level as usize))
    };
    if topic != Some(&at.topic) {
        wrong.push(format!("attempt {attempt} belongs in {topic:?}"));
    }
    let allowed = match Class::of(id) {
        Class::Ok => false,
        Class::FailOnce => attempt == 1,
        Class::AlwaysFail => true,
    };
    if !allowed {
        wrong.push(format!(
            "id {id} ({:?}) never fails attempt {attempt}",
            Class::of(id)
        ));
    }
    match run.sources.get(&id) {
        None => wrong.push(format!("id {id} was never produced")),
        Some(source) => {
            let origin = Instance {
                topic: forwarded.original_topic.clone().unwrap_or_default(),
                partition: forwarded.original_partition.unwrap_or(-1),
                offset: forwarded.original_offset.unwrap_or(-1),
            };
            if &origin != source {
                wrong.push(format!("origin headers say {origin}, produced at {source}"));
            }
            if at.partition != source.partition {
                wrong.push(format!("partition {} is not its source's", at.partition));
            }
        }
    }
    if forwarded.original_group.as_deref() != Some(run.group.as_str()) {
        wrong.push(format!("group {:?}", forwarded.original_group));
    }
    let kind = if in_dlt { "exhausted" } else { "retryable" };
    if forwarded.error_kind.as_deref() != Some(kind) {
        wrong.push(format!("error kind {:?}, not {kind}", forwarded.error_kind));
    }
    if forwarded.due_ms.is_some() == in_dlt {
        wrong.push(format!("due time {:?} in {}", forwarded.due_ms, at.topic));
    }
    let message = match Class::of(id) {
        Class::FailOnce => ONCE_MESSAGE,
        Class::Ok | Class::AlwaysFail => ALWAYS_MESSAGE,
    };
    if forwarded.error_message.as_deref() != Some(message)
        || forwarded.error_type.as_deref().is_none_or(str::is_empty)
    {
        wrong.push(format!(
            "error type {:?} message {:?}",
            forwarded.error_type, forwarded.error_message
        ));
    }
    if wrong.is_empty() {
        Some((id, attempt))
    } else {
        problems.push(format!("{at} (id {id}): {}", wrong.join("; ")));
        None
    }
}

/// The committed offset of `partition` when worker `worker` started (0 if none).
fn committed_before(run: &Run, worker: usize, partition: &Partition) -> i64 {
    worker
        .checked_sub(1)
        .and_then(|previous| run.committed_after.get(previous))
        .and_then(|committed| committed.get(partition))
        .copied()
        .unwrap_or(0)
}

/// Goes through the workers' events in order: each handling is of a known record, with
/// its attempt count and the outcome its class gives; each redelivery is explained.
/// Returns the first worker that handled each record.
fn walk(
    run: &Run,
    expected: &BTreeMap<Instance, (u64, u32)>,
    outcome: &mut Outcome,
    problems: &mut Vec<String>,
) -> BTreeMap<Instance, usize> {
    let mut last: BTreeMap<Instance, Last> = BTreeMap::new();
    let mut first_worker = BTreeMap::new();
    let mut redelivering: BTreeSet<usize> = BTreeSet::new();
    for (worker, events) in run.workers.iter().enumerate() {
        let mut releases: BTreeMap<Partition, usize> = BTreeMap::new();
        for event in events {
            let (ok, id, record, attempts_before) = match event {
                Event::Released(partition) => {
                    *releases.entry(partition.clone()).or_default() += 1;
                    continue;
                }
                Event::Handled {
                    ok,
                    id,
                    record,
                    attempts_before,
                } => (*ok, *id, record, *attempts_before),
            };
            outcome.handlings += 1;
            let partition = (record.topic.clone(), record.partition);
            let released = releases.get(&partition).copied().unwrap_or(0);
            if expected.get(record) != Some(&(id, attempts_before)) {
                problems.push(format!(
                    "worker {worker} handled {record} as id {id} after {attempts_before} \
                     attempts; it holds {:?}",
                    expected.get(record)
                ));
            }
            if ok == fails(id, attempts_before) {
                problems.push(format!(
                    "worker {worker}: {record} ok={ok} against its class"
                ));
            }
            if let Some(previous) = last.get(record) {
                outcome.redeliveries += 1;
                if previous.worker == worker {
                    outcome.redeliveries_after_release += 1;
                    if previous.releases == released {
                        problems.push(format!(
                            "worker {worker} handled {record} twice without losing {}/{} \
                             in between",
                            record.topic, record.partition
                        ));
                    }
                } else {
                    redelivering.insert(previous.worker);
                    let start = committed_before(run, worker, &partition);
                    if start > record.offset {
                        problems.push(format!(
                            "worker {worker} handled {record} again (last by worker {}), \
                             although the group had committed {start} before it started",
                            previous.worker
                        ));
                    }
                }
            }
            last.insert(
                record.clone(),
                Last {
                    worker,
                    releases: released,
                },
            );
            first_worker.entry(record.clone()).or_insert(worker);
        }
    }
    outcome.kills_redelivering = redelivering.len();
    first_worker
}

/// Committed offsets never go back, cover only records handled by then, and reach every
/// partition's end at the last worker.
fn check_commits(run: &Run, first_worker: &BTreeMap<Instance, usize>, problems: &mut Vec<String>) {
    for (worker, committed) in run.committed_after.iter().enumerate() {
        for (partition, offset) in committed {
            let before = committed_before(run, worker, partition);
            if *offset < before {
                problems.push(format!(
                    "{}/{}: committed {offset} after worker {worker}, {before} before it",
                    partition.0, partition.1
                ));
            }
            for below in before..*offset {
                let at = Instance {
                    topic: partition.0.clone(),
                    partition: partition.1,
                    offset: below,
                };
                if first_worker.get(&at).is_none_or(|first| *first > worker) {
                    problems.push(format!(
                        "{at} was committed by the end of worker {worker} without being \
                         handled: lost"
                    ));
                }
            }
        }
    }
    let last = run.committed_after.last().cloned().unwrap_or_default();
    for (partition, end) in &run.ends {
        if last.get(partition).copied().unwrap_or(0) != *end {
            problems.push(format!(
                "{}/{}: the group's final committed offset is {:?}, its end {end}",
                partition.0,
                partition.1,
                last.get(partition)
            ));
        }
    }
}

/// Each failed record has its forward; each forward comes from a failed handling.
fn check_handoffs(
    run: &Run,
    expected: &BTreeMap<Instance, (u64, u32)>,
    first_worker: &BTreeMap<Instance, usize>,
    outcome: &mut Outcome,
    problems: &mut Vec<String>,
) {
    // (id, attempt of the forward) → failed records, failed handler calls, forwards.
    let mut failed_records: BTreeMap<(u64, u32), Vec<&Instance>> = BTreeMap::new();
    for (record, (id, attempts_before)) in expected {
        if first_worker.contains_key(record) && fails(*id, *attempts_before) {
            failed_records
                .entry((*id, attempts_before + 1))
                .or_default()
                .push(record);
        }
    }
    let mut failed_calls: BTreeMap<(u64, u32), usize> = BTreeMap::new();
    for event in run.workers.iter().flatten() {
        if let Event::Handled {
            ok: false,
            id,
            attempts_before,
            ..
        } = event
        {
            *failed_calls.entry((*id, attempts_before + 1)).or_default() += 1;
        }
    }
    let mut forwards: BTreeMap<(u64, u32), Vec<&Forwarded>> = BTreeMap::new();
    for forwarded in &run.forwarded {
        if let (Some(id), Some(attempt)) = (forwarded.id, forwarded.attempt) {
            forwards.entry((id, attempt)).or_default().push(forwarded);
        }
    }
    for ((id, attempt), records) in &failed_records {
        let found = forwards.get(&(*id, *attempt)).map_or(0, Vec::len);
        if found < records.len() {
            let records: Vec<String> = records.iter().map(ToString::to_string).collect();
            problems.push(format!(
                "id {id}: {} failed and committed, {found} forward(s) with attempt \
                 {attempt}: lost",
                records.join(", ")
            ));
        }
    }
    for ((id, attempt), found) in &forwards {
        let calls = failed_calls.get(&(*id, *attempt)).copied().unwrap_or(0);
        if found.len() > calls {
            problems.push(format!(
                "id {id}: {} forwards with attempt {attempt} from {calls} failed handler calls",
                found.len()
            ));
        }
        if let Some(first) = found.first() {
            *outcome
                .duplicate_forwards
                .entry(first.at.topic.clone())
                .or_default() += found.len() - 1;
        }
    }
}

/// Every id processed (ok and fail-once) or dead-lettered (always-fail).
fn check_ids(run: &Run, outcome: &mut Outcome, problems: &mut Vec<String>) {
    let mut processed: BTreeMap<u64, usize> = BTreeMap::new();
    for event in run.workers.iter().flatten() {
        if let Event::Handled { ok: true, id, .. } = event {
            *processed.entry(*id).or_default() += 1;
        }
    }
    let dead: BTreeSet<u64> = run
        .forwarded
        .iter()
        .filter(|forwarded| forwarded.at.topic == run.dlt)
        .filter_map(|forwarded| forwarded.id)
        .collect();
    for id in run.sources.keys() {
        let times = processed.get(id).copied().unwrap_or(0);
        outcome.processed_again += times.saturating_sub(1);
        let done = match Class::of(*id) {
            Class::Ok | Class::FailOnce => times > 0,
            Class::AlwaysFail => dead.contains(id),
        };
        if times > 0 {
            outcome.processed += 1;
        }
        if dead.contains(id) {
            outcome.dead_lettered += 1;
        }
        if !done {
            problems.push(format!(
                "id {id} ({:?}) is neither processed nor in the dead-letter topic: lost",
                Class::of(*id)
            ));
        }
    }
}
