//! The follower's append ([`PartitionLog::append_as_follower`]): batches fetched from a
//! leader are kept verbatim; a call that does not fit the log is refused whole; the
//! leader-epoch cache, segments, indexes, recovery and the high watermark behave as on
//! the leader.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::ops::Range;
use std::path::Path;

use strata_proto::record::{set_base_offset, set_partition_leader_epoch, BatchHeader};
use strata_proto::types::{LeaderEpoch, Offset};

use super::segment::segment_file_name;
use super::test_support::{open, read_all, read_bytes_from, small_config, tagged_batch};
use super::{FlushPolicy, LogConfig, LogError, ManualClock, PartitionLog, PreviousShutdown};

const NOW_MS: i64 = 1_700_000_000_000;

/// A leader log in `dir` with one batch of `count` records per `(count, epoch)`.
fn leader_log(dir: &Path, config: &LogConfig, batches: &[(usize, i32)]) -> PartitionLog {
    let clock = ManualClock::new(NOW_MS);
    let log = open(dir, config, &clock, PreviousShutdown::Crashed);
    for (i, (count, epoch)) in batches.iter().enumerate() {
        log.append(
            &tagged_batch(&format!("b{i}"), *count, NOW_MS),
            LeaderEpoch(*epoch),
        )
        .unwrap();
    }
    log
}

fn follower_log(dir: &Path, config: &LogConfig) -> PartitionLog {
    open(
        dir,
        config,
        &ManualClock::new(NOW_MS),
        PreviousShutdown::Crashed,
    )
}

/// The byte range of each batch in `bytes`.
fn batch_spans(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let total = BatchHeader::parse(&bytes[position..])
            .unwrap()
            .total_bytes();
        spans.push(position..position + total);
        position += total;
    }
    spans
}

/// The follower's state that a refused call must leave as it was.
fn snapshot(log: &PartitionLog) -> (Offset, u64, usize, Vec<(LeaderEpoch, Offset)>, Vec<u8>) {
    (
        log.log_end_offset(),
        log.size_bytes(),
        log.segment_count(),
        log.leader_epochs(),
        read_bytes_from(log, log.log_start_offset()),
    )
}

#[test]
fn fetched_batches_are_stored_verbatim_with_the_leaders_offsets_and_epochs() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let leader = leader_log(leader_dir.path(), &config, &[(3, 2), (1, 2), (2, 5)]);
    let bytes = read_bytes_from(&leader, Offset(0));
    let follower = follower_log(follower_dir.path(), &config);
    let info = follower.append_as_follower(&bytes).unwrap();
    assert_eq!(
        (info.base_offset, info.last_offset, info.log_end_offset),
        (Offset(0), Offset(5), Offset(6))
    );
    assert_eq!(info.max_timestamp_ms, NOW_MS);
    assert_eq!(read_bytes_from(&follower, Offset(0)), bytes);
    assert_eq!(read_all(&follower), read_all(&leader));
    assert_eq!(
        follower.leader_epochs(),
        vec![(LeaderEpoch(2), Offset(0)), (LeaderEpoch(5), Offset(4))]
    );
    assert_eq!(follower.leader_epochs(), leader.leader_epochs());
    assert_eq!(
        follower.durable_offset(),
        Offset(6),
        "flush=always: durable when the follower append returns"
    );
}

#[test]
fn a_first_batch_not_at_the_log_end_is_refused_and_nothing_is_written() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = small_config();
    let leader = leader_log(leader_dir.path(), &config, &[(2, 1), (3, 1), (1, 1)]);
    let bytes = read_bytes_from(&leader, Offset(0));
    let spans = batch_spans(&bytes);
    let follower = follower_log(follower_dir.path(), &config);
    // Skipping the first batch: the second starts at 2, the log ends at 0.
    let error = follower
        .append_as_follower(&bytes[spans[1].start..])
        .unwrap_err();
    assert!(
        matches!(
            error,
            LogError::OffsetMismatch {
                index: 0,
                expected: Offset(0),
                found: Offset(2)
            }
        ),
        "{error}"
    );
    assert_eq!(follower.log_end_offset(), Offset(0));
    assert_eq!(follower.size_bytes(), 0);
    assert!(follower.leader_epochs().is_empty());
    // Fetching the first batch twice is refused the same way.
    follower
        .append_as_follower(&bytes[spans[0].clone()])
        .unwrap();
    let before = snapshot(&follower);
    let error = follower.append_as_follower(&bytes).unwrap_err();
    assert!(
        matches!(
            error,
            LogError::OffsetMismatch {
                index: 0,
                expected: Offset(2),
                found: Offset(0)
            }
        ),
        "{error}"
    );
    assert_eq!(snapshot(&follower), before);
}

#[test]
fn a_damaged_or_cut_batch_anywhere_in_the_call_refuses_the_whole_call() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = small_config();
    let leader = leader_log(leader_dir.path(), &config, &[(2, 1), (2, 1), (2, 1)]);
    let bytes = read_bytes_from(&leader, Offset(0));
    let spans = batch_spans(&bytes);
    let follower = follower_log(follower_dir.path(), &config);
    follower
        .append_as_follower(&bytes[spans[0].clone()])
        .unwrap();
    let rest = &bytes[spans[1].start..];
    let before = snapshot(&follower);

    // A flipped byte in the records of the middle batch of the call: its CRC fails.
    let mut damaged = rest.to_vec();
    let in_middle = spans[2].start - spans[1].start + spans[2].len() - 1;
    damaged[in_middle] ^= 0x40;
    let error = follower.append_as_follower(&damaged).unwrap_err();
    assert!(
        matches!(error, LogError::InvalidFetchedBatch { index: 1, .. }),
        "{error}"
    );
    assert_eq!(
        snapshot(&follower),
        before,
        "the good first batch was not written"
    );

    // The call ends inside its last batch.
    let error = follower
        .append_as_follower(&rest[..rest.len() - 1])
        .unwrap_err();
    assert!(
        matches!(error, LogError::InvalidFetchedBatch { index: 1, .. }),
        "{error}"
    );
    // A batch larger than the follower's limit.
    let tight = LogConfig {
        batch_bytes_max: spans[2].len() - 1,
        ..config.clone()
    };
    follower.set_config(tight);
    let error = follower.append_as_follower(rest).unwrap_err();
    assert!(
        matches!(error, LogError::InvalidFetchedBatch { index: 0, .. }),
        "{error}"
    );
    follower.set_config(config);
    // Nothing at all.
    assert!(matches!(
        follower.append_as_follower(&[]),
        Err(LogError::InvalidFetchedBatch { index: 0, .. })
    ));
    assert_eq!(snapshot(&follower), before);
    follower.append_as_follower(rest).unwrap();
    assert_eq!(read_bytes_from(&follower, Offset(0)), bytes);
}

#[test]
fn gaps_and_epoch_regressions_are_refused_whole() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = small_config();
    let leader = leader_log(leader_dir.path(), &config, &[(1, 3), (2, 3), (2, 4)]);
    let bytes = read_bytes_from(&leader, Offset(0));
    let spans = batch_spans(&bytes);
    let follower = follower_log(follower_dir.path(), &config);
    follower
        .append_as_follower(&bytes[spans[0].clone()])
        .unwrap();
    let before = snapshot(&follower);

    // The second batch of the call does not start where the first ends.
    let mut gap = bytes[spans[1].start..].to_vec();
    set_base_offset(&mut gap[spans[2].start - spans[1].start..], Offset(4));
    let error = follower.append_as_follower(&gap).unwrap_err();
    assert!(
        matches!(
            error,
            LogError::OffsetMismatch {
                index: 1,
                expected: Offset(3),
                found: Offset(4)
            }
        ),
        "{error}"
    );
    // Epochs going down inside the call (the base offset and epoch are outside the CRC).
    let mut down = bytes[spans[1].start..].to_vec();
    set_partition_leader_epoch(&mut down[spans[2].start - spans[1].start..], LeaderEpoch(2));
    let error = follower.append_as_follower(&down).unwrap_err();
    assert!(
        matches!(
            error,
            LogError::EpochRegression {
                index: 1,
                epoch: LeaderEpoch(2),
                previous: LeaderEpoch(3)
            }
        ),
        "{error}"
    );
    // An epoch below the log's latest.
    let mut below = bytes[spans[1].clone()].to_vec();
    set_partition_leader_epoch(&mut below, LeaderEpoch(1));
    let error = follower.append_as_follower(&below).unwrap_err();
    assert!(
        matches!(
            error,
            LogError::EpochRegression {
                index: 0,
                epoch: LeaderEpoch(1),
                previous: LeaderEpoch(3)
            }
        ),
        "{error}"
    );
    // No epoch at all.
    let mut none = bytes[spans[1].clone()].to_vec();
    set_partition_leader_epoch(&mut none, LeaderEpoch(-1));
    let error = follower.append_as_follower(&none).unwrap_err();
    assert!(
        matches!(error, LogError::InvalidFetchedBatch { index: 0, .. }),
        "{error}"
    );
    assert_eq!(snapshot(&follower), before);
    follower
        .append_as_follower(&bytes[spans[1].start..])
        .unwrap();
    assert_eq!(follower.leader_epochs(), leader.leader_epochs());
}

#[test]
fn a_multi_batch_call_rolls_segments_and_indexes_every_offset() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = small_config();
    let batches: Vec<(usize, i32)> = (0..40).map(|i| (1 + i % 4, i as i32 / 10)).collect();
    let leader = leader_log(leader_dir.path(), &config, &batches);
    let bytes = read_bytes_from(&leader, Offset(0));
    assert!(bytes.len() > 3 * config.segment_bytes as usize);
    let follower = follower_log(follower_dir.path(), &config);
    let info = follower.append_as_follower(&bytes).unwrap();
    assert_eq!(info.log_end_offset, leader.log_end_offset());
    assert!(
        follower.segment_count() >= 3,
        "{}",
        follower.segment_count()
    );
    // Every segment starts at a batch boundary and every offset reads back from it.
    let stored = follower.read_state_for_tests();
    for (base, segment) in &stored.segments {
        assert_eq!(*base, segment.base_offset());
    }
    drop(stored);
    let expected = read_all(&leader);
    for (offset, value) in &expected {
        let batches = follower.read(*offset, 1, None).unwrap().batches;
        let values = super::test_support::decode_values(&batches);
        assert!(
            values.contains(&(*offset, value.clone())),
            "offset {offset}"
        );
    }
    assert_eq!(read_bytes_from(&follower, Offset(0)), bytes);
    assert_eq!(follower.leader_epochs(), leader.leader_epochs());
    // Timestamps are indexed too.
    assert_eq!(
        follower.find_batch_by_timestamp(NOW_MS).unwrap(),
        Some(Offset(0))
    );
}

#[test]
fn end_offset_for_epoch_on_a_follower_log_follows_kip_101() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = small_config();
    // Epoch 2 at 0..3, epoch 4 at 3..5, epoch 7 at 5..6.
    let leader = leader_log(leader_dir.path(), &config, &[(3, 2), (2, 4), (1, 7)]);
    let follower = follower_log(follower_dir.path(), &config);
    assert_eq!(follower.end_offset_for_epoch(LeaderEpoch(0)), None);
    follower
        .append_as_follower(&read_bytes_from(&leader, Offset(0)))
        .unwrap();
    let end = |epoch| {
        follower
            .end_offset_for_epoch(LeaderEpoch(epoch))
            .map(|(epoch, offset)| (epoch.0, offset.0))
    };
    assert_eq!(end(7), Some((7, 6)), "the latest epoch ends at the log end");
    assert_eq!(end(4), Some((4, 5)), "where the next higher epoch starts");
    assert_eq!(end(2), Some((2, 3)));
    assert_eq!(
        end(5),
        Some((4, 5)),
        "unknown epoch: the known one below it"
    );
    assert_eq!(end(1), Some((1, 0)), "below the first epoch: its start");
    assert_eq!(end(8), None, "above the latest epoch: undefined");
    for epoch in 0..9 {
        assert_eq!(
            follower.end_offset_for_epoch(LeaderEpoch(epoch)),
            leader.end_offset_for_epoch(LeaderEpoch(epoch)),
            "epoch {epoch}"
        );
    }
}

#[test]
fn the_follower_append_leaves_the_high_watermark_to_the_leader() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = small_config();
    let leader = leader_log(leader_dir.path(), &config, &[(2, 1), (3, 1)]);
    let bytes = read_bytes_from(&leader, Offset(0));
    let spans = batch_spans(&bytes);
    let follower = follower_log(follower_dir.path(), &config);
    follower
        .append_as_follower(&bytes[spans[0].clone()])
        .unwrap();
    assert_eq!(
        follower.high_watermark(),
        Offset(0),
        "not computed from the LEO"
    );
    // The leader's HW can be ahead of what this follower has: clamped to its LEO.
    follower.set_high_watermark(Offset(5));
    assert_eq!(follower.high_watermark(), Offset(2));
    follower
        .append_as_follower(&bytes[spans[1].clone()])
        .unwrap();
    assert_eq!(
        follower.high_watermark(),
        Offset(2),
        "an append does not move it"
    );
    follower.set_high_watermark(Offset(5));
    assert_eq!(follower.high_watermark(), Offset(5));
}

#[test]
fn follower_appends_under_flush_interval_wait_for_no_fsync() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = small_config();
    let leader = leader_log(leader_dir.path(), &config, &[(2, 1), (3, 1)]);
    let interval = LogConfig {
        flush: FlushPolicy::Interval {
            interval_ms: 60_000,
        },
        segment_bytes: 1 << 20,
        ..config
    };
    let follower = follower_log(follower_dir.path(), &interval);
    let fsyncs = follower.fsyncs_total();
    follower
        .append_as_follower(&read_bytes_from(&leader, Offset(0)))
        .unwrap();
    assert_eq!(follower.fsyncs_total(), fsyncs);
    assert_eq!(follower.durable_offset(), Offset(0));
    follower.flush().unwrap();
    assert_eq!(follower.durable_offset(), Offset(5));
}

#[test]
fn a_torn_follower_append_is_cut_by_recovery_to_whole_batches_and_epochs() {
    let (leader_dir, source) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let leader = leader_log(
        leader_dir.path(),
        &config,
        &[(2, 1), (3, 1), (2, 4), (1, 6)],
    );
    let bytes = read_bytes_from(&leader, Offset(0));
    let spans = batch_spans(&bytes);
    let follower = follower_log(source.path(), &config);
    follower.append_as_follower(&bytes[..spans[1].end]).unwrap();
    // The last call (two batches, a new epoch each) never finished reaching the disk.
    follower
        .append_as_follower(&bytes[spans[2].start..])
        .unwrap();
    drop(follower);
    let log_file = segment_file_name(Offset(0), "log");
    for cut in spans[2].start..bytes.len() {
        let dir = tempfile::tempdir().unwrap();
        for entry in fs::read_dir(source.path()).unwrap() {
            let entry = entry.unwrap();
            fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
        fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(&log_file))
            .unwrap()
            .set_len(cut as u64)
            .unwrap();
        let recovered = follower_log(dir.path(), &config);
        let whole = spans.iter().filter(|span| span.end <= cut).count();
        let kept_bytes = spans[whole - 1].end;
        assert_eq!(
            recovered.recovery_report().truncated_bytes,
            (cut - kept_bytes) as u64,
            "cut at {cut}"
        );
        assert_eq!(read_bytes_from(&recovered, Offset(0)), bytes[..kept_bytes]);
        let end = recovered.log_end_offset();
        let expected_epochs: Vec<_> = leader
            .leader_epochs()
            .into_iter()
            .filter(|(_, start)| *start < end)
            .collect();
        assert_eq!(recovered.leader_epochs(), expected_epochs, "cut at {cut}");
        // Fetching again from the recovered end completes the copy.
        recovered.append_as_follower(&bytes[kept_bytes..]).unwrap();
        assert_eq!(read_bytes_from(&recovered, Offset(0)), bytes);
        assert_eq!(recovered.leader_epochs(), leader.leader_epochs());
    }
}
