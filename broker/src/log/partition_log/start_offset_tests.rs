//! A follower's log start following the leader's: segments wholly below it go, and a log
//! that ends below it starts again, empty, there; both survive a reopen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use strata_proto::record::{set_base_offset, set_partition_leader_epoch};
use strata_proto::types::{LeaderEpoch, Offset};

use super::super::super::test_support::{open, read_all, small_config, tagged_batch};
use super::super::super::{ManualClock, PreviousShutdown};
use super::PartitionLog;

const NOW_MS: i64 = 1_700_000_000_000;

fn log_with(dir: &std::path::Path, batches: usize) -> PartitionLog {
    let log = open(
        dir,
        &small_config(),
        &ManualClock::new(NOW_MS),
        PreviousShutdown::Crashed,
    );
    for i in 0..batches {
        log.append(&tagged_batch(&format!("b{i}"), 3, NOW_MS), LeaderEpoch(2))
            .unwrap();
    }
    log
}

fn reopen(dir: &std::path::Path) -> PartitionLog {
    open(
        dir,
        &small_config(),
        &ManualClock::new(NOW_MS),
        PreviousShutdown::Crashed,
    )
}

#[test]
fn the_log_start_rises_to_the_leaders_and_whole_segments_below_it_go() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with(dir.path(), 40);
    let segments = log.segment_count();
    assert!(segments > 3);
    log.set_high_watermark(log.log_end_offset());
    let second = log
        .read_state_for_tests()
        .segments
        .keys()
        .nth(2)
        .copied()
        .unwrap();
    let target = second.plus(1);
    assert_eq!(log.advance_log_start_offset(target).unwrap(), target);
    assert_eq!(log.log_start_offset(), target);
    assert_eq!(
        log.segment_count(),
        segments - 2,
        "the two segments below it went"
    );
    assert_eq!(
        read_all(&log).first().unwrap().0,
        second,
        "reads start at its batch"
    );
    // Never lowered, never past the high watermark.
    assert_eq!(log.advance_log_start_offset(Offset(0)).unwrap(), target);
    log.set_high_watermark(target.plus(5));
    assert_eq!(
        log.advance_log_start_offset(Offset(10_000)).unwrap(),
        target.plus(5)
    );
    drop(log);
    assert_eq!(reopen(dir.path()).log_start_offset(), target.plus(5));
}

#[test]
fn a_log_below_the_leaders_start_starts_again_empty_there_and_takes_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with(dir.path(), 20);
    log.set_high_watermark(log.log_end_offset());
    let start = log.log_end_offset().plus(500);
    log.truncate_fully_and_start_at(start).unwrap();
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(log.log_end_offset(), start);
    assert_eq!(log.high_watermark(), start);
    assert_eq!(log.segment_count(), 1);
    assert!(log.leader_epochs().is_empty());
    assert!(read_all(&log).is_empty());
    // The leader's next batch, at the leader's offsets.
    let mut next = tagged_batch("from-leader", 2, NOW_MS);
    set_base_offset(&mut next, start);
    set_partition_leader_epoch(&mut next, LeaderEpoch(3));
    log.append_as_follower(&next).unwrap();
    assert_eq!(log.log_end_offset(), start.plus(2));
    assert_eq!(log.leader_epochs(), [(LeaderEpoch(3), start)]);
    drop(log);
    let reopened = reopen(dir.path());
    assert_eq!(reopened.log_start_offset(), start);
    assert_eq!(reopened.log_end_offset(), start.plus(2));
    assert_eq!(read_all(&reopened).len(), 2);
}

#[test]
fn a_crash_after_the_old_segments_went_leaves_a_log_that_opens() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with(dir.path(), 20);
    log.set_high_watermark(log.log_end_offset());
    log.checkpoint().unwrap();
    let start = log.log_end_offset().plus(100);
    log.truncate_fully_and_start_at(start).unwrap();
    drop(log);
    // As if the crash came before the last checkpoint: the lowered one is back.
    let stale = super::PartitionCheckpoint {
        recovery_point: Offset(0),
        high_watermark: Offset(0),
        log_start_offset: Offset(0),
    };
    stale.store(dir.path()).unwrap();
    let reopened = reopen(dir.path());
    assert_eq!(reopened.log_start_offset(), start);
    assert_eq!(reopened.log_end_offset(), start);
}
