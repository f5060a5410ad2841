//! The checker on small hand-written runs: one source partition holding a record that
//! fails once (id 0), one that always fails (id 30) and one that succeeds (id 50).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use super::*;

const SOURCE: &str = "s";
const RETRY_0: &str = "s.g.retry.0";
const RETRY_1: &str = "s.g.retry.1";
const DLT: &str = "s.g.dlt";

fn at(topic: &str, offset: i64) -> Instance {
    Instance {
        topic: topic.to_owned(),
        partition: 0,
        offset,
    }
}

fn handled(ok: bool, id: u64, topic: &str, offset: i64, attempts_before: u32) -> Event {
    Event::Handled {
        ok,
        id,
        record: at(topic, offset),
        attempts_before,
    }
}

fn forwarded(topic: &str, offset: i64, id: u64, attempt: u32) -> Forwarded {
    let source = [0, 30, 50].iter().position(|known| *known == id).unwrap();
    Forwarded {
        at: at(topic, offset),
        id: Some(id),
        attempt: Some(attempt),
        original_topic: Some(SOURCE.to_owned()),
        original_partition: Some(0),
        original_offset: Some(i64::try_from(source).unwrap()),
        original_group: Some("g".to_owned()),
        due_ms: (topic != DLT).then_some(1),
        error_kind: Some(
            if topic == DLT {
                "exhausted"
            } else {
                "retryable"
            }
            .to_owned(),
        ),
        error_type: Some("std::io::Error".to_owned()),
        error_message: Some(
            if id == 0 {
                ONCE_MESSAGE
            } else {
                ALWAYS_MESSAGE
            }
            .to_owned(),
        ),
    }
}

fn offsets(source: i64, retry_0: i64, retry_1: i64) -> BTreeMap<Partition, i64> {
    [(SOURCE, source), (RETRY_0, retry_0), (RETRY_1, retry_1)]
        .into_iter()
        .map(|(topic, end)| ((topic.to_owned(), 0), end))
        .collect()
}

fn run(
    workers: Vec<Vec<Event>>,
    committed_after: Vec<BTreeMap<Partition, i64>>,
    forwarded: Vec<Forwarded>,
) -> Run {
    let ends = committed_after.last().cloned().unwrap();
    Run {
        group: "g".to_owned(),
        retry_topics: vec![RETRY_0.to_owned(), RETRY_1.to_owned()],
        dlt: DLT.to_owned(),
        sources: [(0, at(SOURCE, 0)), (30, at(SOURCE, 1)), (50, at(SOURCE, 2))]
            .into_iter()
            .collect(),
        workers,
        committed_after,
        ends,
        forwarded,
    }
}

/// One worker, no crash: every record handled once, forwarded once.
fn clean_run() -> Run {
    let worker = vec![
        handled(false, 0, SOURCE, 0, 0),
        handled(false, 30, SOURCE, 1, 0),
        handled(true, 50, SOURCE, 2, 0),
        handled(true, 0, RETRY_0, 0, 1),
        handled(false, 30, RETRY_0, 1, 1),
        handled(false, 30, RETRY_1, 0, 2),
    ];
    let forwards = vec![
        forwarded(RETRY_0, 0, 0, 1),
        forwarded(RETRY_0, 1, 30, 1),
        forwarded(RETRY_1, 0, 30, 2),
        forwarded(DLT, 0, 30, 3),
    ];
    run(vec![worker], vec![offsets(3, 2, 1)], forwards)
}

#[test]
fn lines_round_trip_and_a_torn_last_line_is_dropped() {
    let events = vec![
        handled(false, 30, RETRY_0, 7, 1),
        Event::Released((SOURCE.to_owned(), 2)),
    ];
    let text: String = events.iter().map(|event| format!("{event}\n")).collect();
    let torn = format!("start pid 1\n{text}handled ok 50 s 0");
    assert_eq!(parse_events(&torn), events);
    assert_eq!(handled_count(&torn), 2);
}

#[test]
fn the_classes_fail_as_documented() {
    assert!(fails(0, 0) && !fails(0, 1));
    assert!(fails(130, 0) && fails(134, 2));
    assert!(!fails(135, 0) && !fails(99, 0));
}

#[test]
fn a_clean_run_passes_without_duplicates() {
    let outcome = check(&clean_run()).unwrap();
    assert_eq!(outcome.processed, 2);
    assert_eq!(outcome.dead_lettered, 1);
    assert_eq!(outcome.handlings, 6);
    assert_eq!(outcome.redeliveries, 0);
    assert_eq!(outcome.duplicate_forwards.values().sum::<usize>(), 0);
}

#[test]
fn a_kill_between_forward_and_commit_gives_counted_duplicates() {
    // Worker 0 forwards s/0 and s/1, processes s/2 and dies with only s/0 committed.
    let first = vec![
        handled(false, 0, SOURCE, 0, 0),
        handled(false, 30, SOURCE, 1, 0),
        handled(true, 50, SOURCE, 2, 0),
    ];
    let second = vec![
        handled(false, 30, SOURCE, 1, 0),
        handled(true, 50, SOURCE, 2, 0),
        handled(true, 0, RETRY_0, 0, 1),
        handled(false, 30, RETRY_0, 1, 1),
        handled(false, 30, RETRY_0, 2, 1),
        handled(false, 30, RETRY_1, 0, 2),
        handled(false, 30, RETRY_1, 1, 2),
    ];
    let forwards = vec![
        forwarded(RETRY_0, 0, 0, 1),
        forwarded(RETRY_0, 1, 30, 1),
        forwarded(RETRY_0, 2, 30, 1),
        forwarded(RETRY_1, 0, 30, 2),
        forwarded(RETRY_1, 1, 30, 2),
        forwarded(DLT, 0, 30, 3),
        forwarded(DLT, 1, 30, 3),
    ];
    let committed = vec![offsets(1, 0, 0), offsets(3, 3, 2)];
    let outcome = check(&run(vec![first, second], committed, forwards)).unwrap();
    assert_eq!(outcome.redeliveries, 2);
    assert_eq!(outcome.kills_redelivering, 1);
    assert_eq!(outcome.processed_again, 1);
    assert_eq!(outcome.duplicate_forwards.values().sum::<usize>(), 3);
}

#[test]
fn a_dropped_forward_is_a_loss() {
    // s/0 failed and was committed, but nothing reached retry.0 for it.
    let mut broken = clean_run();
    broken.workers[0].retain(|event| {
        !matches!(
            event,
            Event::Handled {
                id: 0,
                ok: true,
                ..
            }
        )
    });
    broken.workers[0] = broken.workers[0]
        .iter()
        .map(|event| match event {
            Event::Handled { record, .. } if record.topic == RETRY_0 => {
                handled(false, 30, RETRY_0, 0, 1)
            }
            other => other.clone(),
        })
        .collect();
    broken.forwarded = vec![
        forwarded(RETRY_0, 0, 30, 1),
        forwarded(RETRY_1, 0, 30, 2),
        forwarded(DLT, 0, 30, 3),
    ];
    broken.committed_after = vec![offsets(3, 1, 1)];
    broken.ends = offsets(3, 1, 1);
    let problems = check(&broken).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("s/0/0 failed and committed")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("id 0 (FailOnce) is neither")),
        "{problems:?}"
    );
}

#[test]
fn a_redelivery_below_the_committed_offset_is_found() {
    let mut broken = clean_run();
    broken
        .workers
        .insert(0, vec![handled(false, 0, SOURCE, 0, 0)]);
    broken.committed_after.insert(0, offsets(1, 0, 0));
    let problems = check(&broken).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("although the group had committed 1")),
        "{problems:?}"
    );
}

#[test]
fn a_commit_ahead_of_the_handler_is_found() {
    let mut broken = clean_run();
    broken
        .workers
        .insert(0, vec![handled(false, 0, SOURCE, 0, 0)]);
    broken.committed_after.insert(0, offsets(2, 0, 0));
    let problems = check(&broken).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("s/0/1 was committed by the end of worker 0 without")),
        "{problems:?}"
    );
}

#[test]
fn a_dead_letter_with_too_few_attempts_is_found() {
    let mut broken = clean_run();
    broken.forwarded[3].attempt = Some(2);
    let problems = check(&broken).unwrap_err();
    assert!(
        problems.iter().any(|p| p.contains("s.g.dlt/0/0 (id 30)")),
        "{problems:?}"
    );
}

#[test]
fn a_worker_handling_a_record_twice_without_a_release_is_found() {
    let mut broken = clean_run();
    broken.workers[0].push(handled(true, 50, SOURCE, 2, 0));
    let problems = check(&broken).unwrap_err();
    assert!(
        problems.iter().any(|p| p.contains("twice without losing")),
        "{problems:?}"
    );
    broken.workers[0].insert(6, Event::Released((SOURCE.to_owned(), 0)));
    let outcome = check(&broken).unwrap();
    assert_eq!(outcome.redeliveries_after_release, 1);
}
