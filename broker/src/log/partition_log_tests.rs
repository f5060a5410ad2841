//! Behaviour of [`PartitionLog`]: append, read, roll, truncate, retention, reopen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use strata_proto::record::{check_stored_batch, BatchHeader, CheckedBatch};
use strata_proto::types::{LeaderEpoch, Offset};

use super::test_support::{decode_values, open, read_all, small_config, tagged_batch};
use super::{LogConfig, LogError, ManualClock, PreviousShutdown};

const NOW_MS: i64 = 1_700_000_000_000;

#[test]
fn append_assigns_dense_offsets_and_stamps_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let log = open(
        dir.path(),
        &small_config(),
        &clock,
        PreviousShutdown::Crashed,
    );
    let first = log
        .append(&tagged_batch("a", 3, NOW_MS), LeaderEpoch(0))
        .unwrap();
    let second = log
        .append(&tagged_batch("b", 2, NOW_MS), LeaderEpoch(1))
        .unwrap();
    assert_eq!(
        (first.base_offset, first.last_offset),
        (Offset(0), Offset(2))
    );
    assert_eq!(
        (second.base_offset, second.last_offset),
        (Offset(3), Offset(4))
    );
    assert_eq!(log.log_end_offset(), Offset(5));
    assert_eq!(
        log.durable_offset(),
        Offset(5),
        "flush=always: durable when append returns"
    );
    assert_eq!(
        log.leader_epochs(),
        vec![(LeaderEpoch(0), Offset(0)), (LeaderEpoch(1), Offset(3))]
    );
    let values: Vec<String> = read_all(&log)
        .into_iter()
        .map(|(_, v)| String::from_utf8(v).unwrap())
        .collect();
    assert_eq!(values, ["a-0", "a-1", "a-2", "b-0", "b-1"]);
}

#[test]
fn append_stores_a_stamped_copy_of_the_header_and_leaves_the_callers_bytes_alone() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let log = open(
        dir.path(),
        &small_config(),
        &clock,
        PreviousShutdown::Crashed,
    );
    log.append(&tagged_batch("a", 2, NOW_MS), LeaderEpoch(3))
        .unwrap();
    let batch = tagged_batch("b", 3, NOW_MS);
    let original = batch.clone();
    let checked = CheckedBatch::check(&batch, small_config().batch_bytes_max).unwrap();
    let info = log.append_deferred(checked, LeaderEpoch(4)).unwrap();
    assert_eq!(batch, original, "the caller's batch is not modified");
    assert_eq!(info.base_offset, Offset(2));
    let stored = log.read(Offset(2), 1 << 20, None).unwrap().batches;
    let header = BatchHeader::parse(&stored).unwrap();
    assert_eq!(header.base_offset, Offset(2));
    assert_eq!(header.partition_leader_epoch, LeaderEpoch(4));
    // Everything but the stamped fields is stored exactly as given, and the CRC holds.
    assert_eq!(stored.len(), original.len());
    assert_eq!(stored[16..], original[16..]);
    check_stored_batch(&stored, small_config().batch_bytes_max).unwrap();
}

#[test]
fn stale_epoch_and_bad_crc_append_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let log = open(
        dir.path(),
        &small_config(),
        &clock,
        PreviousShutdown::Crashed,
    );
    log.append(&tagged_batch("a", 1, NOW_MS), LeaderEpoch(5))
        .unwrap();
    let error = log
        .append(&tagged_batch("b", 1, NOW_MS), LeaderEpoch(4))
        .unwrap_err();
    assert!(
        matches!(error, LogError::StaleLeaderEpoch { .. }),
        "{error}"
    );
    let mut damaged = tagged_batch("c", 1, NOW_MS);
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    assert!(matches!(
        log.append(&damaged, LeaderEpoch(5)),
        Err(LogError::InvalidBatch(_))
    ));
    assert_eq!(log.log_end_offset(), Offset(1));
    assert_eq!(read_all(&log).len(), 1);
}

#[test]
fn reads_return_whole_batches_within_max_bytes_but_at_least_one() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    let batch_bytes = tagged_batch("x", 4, NOW_MS).len();
    for _ in 0..10 {
        log.append(&tagged_batch("x", 4, NOW_MS), LeaderEpoch(0))
            .unwrap();
    }
    let small = log.read(Offset(0), 1, None).unwrap();
    assert_eq!(
        small.batches.len(),
        batch_bytes,
        "one batch even when larger than max_bytes"
    );
    let three = log
        .read(Offset(0), batch_bytes * 3 + batch_bytes / 2, None)
        .unwrap();
    assert_eq!(three.batches.len(), batch_bytes * 3);
    // A read from the middle of a batch starts at that batch.
    let middle = decode_values(&log.read(Offset(6), 1, None).unwrap().batches);
    assert_eq!(middle.first().unwrap().0, Offset(4));
    // Nothing at or beyond the upper bound (the high watermark for consumers).
    let bounded = decode_values(
        &log.read(Offset(0), 1 << 20, Some(Offset(10)))
            .unwrap()
            .batches,
    );
    assert_eq!(bounded.last().unwrap().0, Offset(7));
    assert!(log
        .read(Offset(0), 1 << 20, Some(Offset(3)))
        .unwrap()
        .batches
        .is_empty());
    assert!(log.read(Offset(40), 100, None).unwrap().batches.is_empty());
    assert!(matches!(
        log.read(Offset(41), 100, None),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn rolls_by_size_and_by_age_and_reads_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        segment_ms: Some(60_000),
        ..small_config()
    };
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    for i in 0..20 {
        log.append(&tagged_batch(&format!("s{i}"), 10, NOW_MS), LeaderEpoch(0))
            .unwrap();
    }
    let by_size = log.segment_count();
    assert!(by_size > 3, "1 KiB segments must roll: {by_size}");
    clock.advance_ms(60_000);
    log.append(&tagged_batch("late", 1, NOW_MS), LeaderEpoch(0))
        .unwrap();
    assert_eq!(
        log.segment_count(),
        by_size + 1,
        "an old active segment rolls"
    );
    assert_eq!(read_all(&log).len(), 201);
    assert!(read_all(&log)
        .iter()
        .enumerate()
        .all(|(i, (offset, _))| offset.0 == i as i64));
}

#[test]
fn truncate_to_removes_whole_batches_and_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let log = open(
        dir.path(),
        &small_config(),
        &clock,
        PreviousShutdown::Crashed,
    );
    for i in 0..30 {
        log.append(
            &tagged_batch(&format!("t{i}"), 2, NOW_MS),
            LeaderEpoch(i / 10),
        )
        .unwrap();
    }
    let segments = log.segment_count();
    assert_eq!(
        log.truncate_to(Offset(25)).unwrap(),
        Offset(24),
        "offset 25 is inside batch 24..25"
    );
    assert!(log.segment_count() < segments);
    assert_eq!(
        log.leader_epochs(),
        vec![(LeaderEpoch(0), Offset(0)), (LeaderEpoch(1), Offset(20))]
    );
    log.append(&tagged_batch("after", 1, NOW_MS), LeaderEpoch(3))
        .unwrap();
    let all = read_all(&log);
    assert_eq!(all.len(), 25);
    assert_eq!(all.last().unwrap(), &(Offset(24), b"after-0".to_vec()));
    drop(log);
    let reopened = open(
        dir.path(),
        &small_config(),
        &clock,
        PreviousShutdown::Crashed,
    );
    assert_eq!(read_all(&reopened), all);
}

#[test]
fn retention_by_time_and_size_advances_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        retention_ms: Some(3_600_000),
        ..small_config()
    };
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    for i in 0..10 {
        log.append(&tagged_batch(&format!("old{i}"), 3, NOW_MS), LeaderEpoch(0))
            .unwrap();
    }
    log.roll().unwrap();
    for i in 0..3 {
        log.append(
            &tagged_batch(&format!("new{i}"), 3, NOW_MS + 7_200_000),
            LeaderEpoch(0),
        )
        .unwrap();
    }
    log.set_high_watermark(log.log_end_offset());
    assert_eq!(
        log.apply_retention().unwrap().segments_deleted,
        0,
        "nothing is old yet"
    );
    clock.advance_ms(3_600_001);
    let outcome = log.apply_retention().unwrap();
    assert!(outcome.segments_deleted > 0);
    assert_eq!(
        log.log_start_offset(),
        Offset(30),
        "every segment of old records is gone"
    );
    assert!(matches!(
        log.read(Offset(0), 100, None),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&log).len(), 9);

    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: Some(2048),
        retention_ms: None,
        ..small_config()
    };
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    for i in 0..40 {
        log.append(&tagged_batch(&format!("b{i}"), 3, NOW_MS), LeaderEpoch(0))
            .unwrap();
    }
    log.set_high_watermark(log.log_end_offset());
    log.apply_retention().unwrap();
    assert!(
        log.size_bytes() < 2048 + 1024,
        "size {} after retention",
        log.size_bytes()
    );
    assert!(log.log_start_offset() > Offset(0));
    drop(log);
    let reopened = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    assert!(
        reopened.log_start_offset() > Offset(0),
        "log start survives a restart"
    );
}

#[test]
fn retention_never_deletes_above_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        retention_ms: Some(1),
        ..small_config()
    };
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    for i in 0..10 {
        log.append(&tagged_batch(&format!("x{i}"), 3, NOW_MS), LeaderEpoch(0))
            .unwrap();
    }
    clock.advance_ms(10);
    assert_eq!(
        log.apply_retention().unwrap().segments_deleted,
        0,
        "HW is 0"
    );
}

#[test]
fn clean_close_and_reopen_keeps_everything_without_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let log = open(
        dir.path(),
        &small_config(),
        &clock,
        PreviousShutdown::Crashed,
    );
    for i in 0..25 {
        log.append(&tagged_batch(&format!("c{i}"), 2, NOW_MS), LeaderEpoch(2))
            .unwrap();
    }
    let before = read_all(&log);
    log.close().unwrap();
    assert!(log
        .append(&tagged_batch("late", 1, NOW_MS), LeaderEpoch(2))
        .is_err());
    drop(log);
    let reopened = open(dir.path(), &small_config(), &clock, PreviousShutdown::Clean);
    assert_eq!(reopened.recovery_report().segments_scanned, 0);
    assert_eq!(read_all(&reopened), before);
    reopened
        .append(&tagged_batch("more", 1, NOW_MS), LeaderEpoch(2))
        .unwrap();
    assert_eq!(reopened.log_end_offset(), Offset(51));
}

#[test]
fn concurrent_appenders_share_fsyncs_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    std::thread::scope(|scope| {
        for thread in 0..8 {
            let log = &log;
            scope.spawn(move || {
                for i in 0..25 {
                    let info = log
                        .append(
                            &tagged_batch(&format!("{thread}-{i}"), 1, NOW_MS),
                            LeaderEpoch(0),
                        )
                        .unwrap();
                    assert!(log.durable_offset() > info.last_offset);
                }
            });
        }
    });
    let all = read_all(&log);
    assert_eq!(all.len(), 200);
    let mut values: Vec<Vec<u8>> = all.into_iter().map(|(_, v)| v).collect();
    values.sort();
    values.dedup();
    assert_eq!(values.len(), 200, "every append present exactly once");
}

#[test]
fn interval_flush_happens_in_the_background_not_on_append() {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{FlushPolicy, LogManager, SystemClock, TopicPartition};
    use strata_proto::types::{PartitionId, TopicName};

    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush: FlushPolicy::Interval { interval_ms: 10 },
        ..small_config()
    };
    let manager = Arc::new(LogManager::open(dir.path(), config, Arc::new(SystemClock)).unwrap());
    let partition = TopicPartition::new(TopicName::new("t").unwrap(), PartitionId(0));
    let log = manager.get_or_create(&partition, None).unwrap();
    let tasks = manager.start_background_tasks(super::BackgroundSchedule {
        tick: Duration::from_millis(5),
        ..super::BackgroundSchedule::default()
    });
    log.append(&tagged_batch("x", 2, NOW_MS), LeaderEpoch(0))
        .unwrap();
    // Bounded wait for the background thread; the assertion is about what it did, and
    // a slow machine only makes the loop take longer.
    for _ in 0..2000 {
        if log.durable_offset() == Offset(2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        log.durable_offset(),
        Offset(2),
        "the background thread flushed"
    );
    drop(tasks);
    drop(log);
    Arc::try_unwrap(manager).unwrap().close().unwrap();
    assert!(dir
        .path()
        .join(super::manager::CLEAN_SHUTDOWN_FILE)
        .exists());
}

#[test]
fn the_high_watermark_never_moves_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let log = open(
        dir.path(),
        &small_config(),
        &clock,
        PreviousShutdown::Crashed,
    );
    for i in 0..5 {
        log.append(&tagged_batch(&format!("h{i}"), 2, NOW_MS), LeaderEpoch(0))
            .unwrap();
    }
    log.advance_high_watermark(Offset(8));
    // A slower, earlier commit arriving late must not lower it.
    log.advance_high_watermark(Offset(4));
    assert_eq!(log.high_watermark(), Offset(8));
    log.advance_high_watermark(Offset(99));
    assert_eq!(log.high_watermark(), Offset(10), "clamped to the log end");
    log.truncate_to(Offset(6)).unwrap();
    assert_eq!(
        log.high_watermark(),
        Offset(6),
        "only a truncation lowers it"
    );
}

/// A batch of `count` values of `value_bytes` bytes each.
fn large_batch(count: usize, value_bytes: usize) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..count)
        .map(|i| vec![b'a' + (i % 26) as u8; value_bytes])
        .collect();
    super::test_support::batch(&values, NOW_MS)
}

#[test]
fn writeback_starts_every_quarter_mib_under_interval_and_promises_nothing() {
    use super::partition_log::WRITEBACK_START_BYTES;
    use super::FlushPolicy;

    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        flush: FlushPolicy::Interval {
            interval_ms: 60_000,
        },
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    let batch = large_batch(100, 1000); // ≈ 100 KiB
    assert!((batch.len() as u64) < WRITEBACK_START_BYTES);

    log.append(&batch, LeaderEpoch(0)).unwrap();
    assert!(
        !log.start_writeback_if_due().unwrap(),
        "less than the threshold"
    );
    log.append(&batch, LeaderEpoch(0)).unwrap();
    log.append(&batch, LeaderEpoch(0)).unwrap();
    assert!(log.start_writeback_if_due().unwrap(), "past the threshold");
    assert!(!log.start_writeback_if_due().unwrap(), "nothing new since");
    assert_eq!(
        log.durable_offset(),
        Offset(0),
        "starting writeback is not a flush: nothing became durable"
    );

    // Roll into a new segment: the mark follows the active segment.
    while log.active_segment_base_offset() == Offset(0) {
        log.append(&batch, LeaderEpoch(0)).unwrap();
    }
    let _ = log.start_writeback_if_due().unwrap();
    for _ in 0..3 {
        log.append(&batch, LeaderEpoch(0)).unwrap();
    }
    assert!(
        log.start_writeback_if_due().unwrap(),
        "the new segment's bytes"
    );

    // A truncation below the mark: it restarts from the segment's start.
    let end = log.log_end_offset();
    log.truncate_to(Offset(end.0 - 300)).unwrap();
    assert!(
        !log.start_writeback_if_due().unwrap(),
        "one batch left in the segment: below the threshold again"
    );
    log.append(&batch, LeaderEpoch(0)).unwrap();
    log.append(&batch, LeaderEpoch(0)).unwrap();
    assert!(
        log.start_writeback_if_due().unwrap(),
        "counted from the cut"
    );
    log.flush().unwrap();
    assert_eq!(log.durable_offset(), log.log_end_offset());
    let values = read_all(&log);
    assert_eq!(values.len() as i64, log.log_end_offset().0);
    assert!(values
        .iter()
        .enumerate()
        .all(|(i, (offset, _))| offset.0 == i as i64));
}

#[test]
fn writeback_is_not_started_under_flush_always() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    for _ in 0..4 {
        log.append(&large_batch(100, 1000), LeaderEpoch(0)).unwrap();
    }
    assert!(!log.start_writeback_if_due().unwrap());
}

#[test]
fn append_would_roll_foresees_the_roll_of_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        segment_bytes: 4096,
        segment_ms: Some(60_000),
        ..small_config()
    };
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    let batch = large_batch(1, 1000);
    let size = batch.len() as u64;
    assert!(
        !log.append_would_roll(size * 100),
        "an empty segment takes any batch"
    );
    log.append(&batch, LeaderEpoch(0)).unwrap();
    log.append(&batch, LeaderEpoch(0)).unwrap();
    assert!(!log.append_would_roll(size), "a third batch fits");
    assert!(log.append_would_roll(4096), "past segment_bytes");

    // What it foresaw is what the append does.
    log.append(&batch, LeaderEpoch(0)).unwrap();
    assert_eq!(log.active_segment_base_offset(), Offset(0));
    assert!(log.append_would_roll(size));
    log.append(&batch, LeaderEpoch(0)).unwrap();
    assert_eq!(log.active_segment_base_offset(), Offset(3));

    assert!(!log.append_would_roll(size));
    clock.advance_ms(60_000);
    assert!(log.append_would_roll(size), "past segment_ms");
}

#[test]
fn a_slice_of_a_sealed_segment_outlives_a_truncation_into_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let log = open(
        dir.path(),
        &small_config(),
        &clock,
        PreviousShutdown::Crashed,
    );
    for i in 0..60 {
        log.append(&tagged_batch(&format!("m{i}"), 2, NOW_MS), LeaderEpoch(0))
            .unwrap();
    }
    assert!(log.segment_count() > 3);
    // Served from the sealed first segment's map.
    let held = log.read(Offset(0), 4096, None).unwrap().batches;
    let before = decode_values(&held);
    assert!(before.len() >= 4, "{} records", before.len());

    assert_eq!(log.truncate_to(Offset(3)).unwrap(), Offset(2));

    // Shrinking the mapped file in place would make this a SIGBUS; the file was replaced.
    assert_eq!(decode_values(&held), before);
    assert_eq!(
        read_all(&log),
        vec![(Offset(0), b"m0-0".to_vec()), (Offset(1), b"m0-1".to_vec())]
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let stored = std::fs::metadata(dir.path().join("00000000000000000000.log"))
        .unwrap()
        .len();
    assert_eq!(stored as usize, tagged_batch("m0", 2, NOW_MS).len());

    log.append(&tagged_batch("after", 1, NOW_MS), LeaderEpoch(1))
        .unwrap();
    let all = read_all(&log);
    assert_eq!(all.len(), 3);
    drop(log);
    let reopened = open(
        dir.path(),
        &small_config(),
        &clock,
        PreviousShutdown::Crashed,
    );
    assert_eq!(read_all(&reopened), all);
}

#[test]
fn direct_io_logs_read_back_survive_a_crash_and_close_without_padding() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        direct_io: true,
        ..small_config()
    };
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    let mut expected = Vec::new();
    for i in 0..30 {
        let tag = format!("d{i}");
        log.append(&tagged_batch(&tag, 1 + i % 3, NOW_MS), LeaderEpoch(0))
            .unwrap();
        expected.extend((0..1 + i % 3).map(|j| format!("{tag}-{j}")));
    }
    let values = |log: &super::PartitionLog| -> Vec<String> {
        read_all(log)
            .into_iter()
            .map(|(_, value)| String::from_utf8(value).unwrap())
            .collect()
    };
    assert_eq!(values(&log), expected);
    let segments = || {
        let mut logs: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
            .collect();
        logs.sort();
        logs
    };
    assert!(segments().len() > 2, "the test rolls segments");
    // Sealed segments hold exactly their batches, no padding.
    let segment_count = segments().len();
    for sealed in &segments()[..segment_count - 1] {
        assert_batches_fill(&std::fs::read(sealed).unwrap());
    }

    drop(log); // a crash: the padding, if any, is cut as padding, not as a torn tail
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    assert_eq!(log.recovery_report().truncated_bytes, 0);
    assert_eq!(values(&log), expected);
    log.append(&tagged_batch("after", 1, NOW_MS), LeaderEpoch(0))
        .unwrap();
    expected.push("after-0".to_owned());
    assert_eq!(values(&log), expected);

    log.close().unwrap();
    drop(log);
    // A clean close cuts the active segment's padding.
    assert_batches_fill(&std::fs::read(segments().pop().unwrap()).unwrap());
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Clean);
    assert_eq!(values(&log), expected);
}

/// The batches of a segment file, back to back, end exactly at the end of the file.
fn assert_batches_fill(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let header = BatchHeader::parse(bytes).unwrap();
        header
            .check_framing(LogConfig::default().batch_bytes_max)
            .expect("a whole batch, not padding");
        assert!(
            header.total_bytes() <= bytes.len(),
            "a batch runs past the end"
        );
        bytes = &bytes[header.total_bytes()..];
    }
}
