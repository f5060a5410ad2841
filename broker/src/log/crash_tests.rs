//! Crash behaviour of the storage engine: torn tails are cut to exactly the whole
//! batches, damaged indexes are rebuilt, damage in durable data is reported (never
//! truncated), and fsync/write failures stop or roll back the writer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use strata_proto::types::{LeaderEpoch, Offset};

use super::segment::segment_file_name;
use super::test_support::{open, read_all, small_config, tagged_batch};
use super::{LogConfig, LogError, ManualClock, PreviousShutdown};

const NOW_MS: i64 = 1_700_000_000_000;

fn copy_dir(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn flip_byte(path: &Path, position: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[position as usize] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

fn segment_path(dir: &Path, base: Offset) -> PathBuf {
    dir.join(segment_file_name(base, "log"))
}

#[test]
fn torn_tail_cut_at_every_byte_of_the_last_batch_keeps_exactly_the_whole_batches() {
    let source = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        segment_bytes: 4096,
        ..small_config()
    };
    let log = open(source.path(), &config, &clock, PreviousShutdown::Crashed);
    for i in 0..60 {
        log.append(&tagged_batch(&format!("w{i}"), 2, NOW_MS), LeaderEpoch(1))
            .unwrap();
    }
    let last_start_offset = log.log_end_offset();
    let active_base = *log
        .read_state_for_tests()
        .segments
        .keys()
        .next_back()
        .unwrap();
    let active = segment_path(source.path(), active_base);
    let last_start = fs::metadata(&active).unwrap().len();
    log.append(&tagged_batch("last", 3, NOW_MS), LeaderEpoch(1))
        .unwrap();
    let full = fs::metadata(&active).unwrap().len();
    let whole = read_all(&log);
    drop(log); // a crash: no close, no marker
    let expected: Vec<_> = whole
        .iter()
        .filter(|(offset, _)| *offset < last_start_offset)
        .cloned()
        .collect();
    for cut in last_start..full {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(source.path(), dir.path());
        fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(active.file_name().unwrap()))
            .unwrap()
            .set_len(cut)
            .unwrap();
        let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
        assert_eq!(
            log.recovery_report().truncated_bytes,
            cut - last_start,
            "cut at {cut}"
        );
        assert_eq!(log.log_end_offset(), last_start_offset, "cut at {cut}");
        assert_eq!(read_all(&log), expected, "cut at {cut}");
        // The log takes appends again at the right offset.
        let info = log
            .append(&tagged_batch("again", 1, NOW_MS), LeaderEpoch(1))
            .unwrap();
        assert_eq!(info.base_offset, last_start_offset);
    }
    // The untouched copy loses nothing.
    let log = open(source.path(), &config, &clock, PreviousShutdown::Crashed);
    assert_eq!(read_all(&log), whole);
}

#[test]
fn damaged_indexes_are_rebuilt_with_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = small_config();
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    for i in 0..40 {
        log.append(&tagged_batch(&format!("i{i}"), 2, NOW_MS), LeaderEpoch(0))
            .unwrap();
    }
    let before = read_all(&log);
    log.close().unwrap();
    drop(log);
    let index = dir.path().join(segment_file_name(Offset(0), "index"));
    assert!(
        fs::metadata(&index).unwrap().len() >= 16,
        "the sealed index has entries"
    );
    fs::write(&index, [0xffu8; 16]).unwrap();
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Clean);
    assert!(log.recovery_report().rebuilt_files >= 1);
    assert_eq!(read_all(&log), before);
    for offset in [0, 7, 33, 79] {
        let first =
            super::test_support::decode_values(&log.read(Offset(offset), 1, None).unwrap().batches);
        assert!(
            first.iter().any(|(o, _)| o.0 == offset),
            "lookup of {offset}"
        );
    }
}

#[test]
fn flipped_byte_in_a_sealed_segment_is_reported_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = small_config();
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    for i in 0..40 {
        log.append(&tagged_batch(&format!("s{i}"), 2, NOW_MS), LeaderEpoch(0))
            .unwrap();
    }
    assert!(log.segment_count() > 2);
    drop(log);
    let sealed = segment_path(dir.path(), Offset(0));
    let size = fs::metadata(&sealed).unwrap().len();
    let batch_bytes = tagged_batch("s0", 2, NOW_MS).len() as u64;
    flip_byte(&sealed, batch_bytes + 70); // inside the second batch's records
    let error = super::PartitionLog::open(
        dir.path(),
        config,
        std::sync::Arc::new(clock),
        PreviousShutdown::Crashed,
    )
    .unwrap_err();
    match error {
        LogError::Corruption {
            path,
            position,
            reason,
        } => {
            assert_eq!(path, sealed);
            assert_eq!(position, batch_bytes);
            assert!(reason.contains("CRC"), "{reason}");
        }
        other => panic!("expected corruption, got {other}"),
    }
    assert_eq!(
        fs::metadata(&sealed).unwrap().len(),
        size,
        "nothing truncated"
    );
}

#[test]
fn flipped_byte_before_the_recovery_point_of_the_active_segment_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    for i in 0..10 {
        log.append(&tagged_batch(&format!("r{i}"), 2, NOW_MS), LeaderEpoch(0))
            .unwrap();
    }
    log.checkpoint().unwrap(); // recovery point = 20
    log.append(&tagged_batch("tail", 2, NOW_MS), LeaderEpoch(0))
        .unwrap();
    drop(log);
    let active = segment_path(dir.path(), Offset(0));
    flip_byte(&active, 70);
    let error = super::PartitionLog::open(
        dir.path(),
        config,
        std::sync::Arc::new(clock),
        PreviousShutdown::Crashed,
    )
    .unwrap_err();
    assert!(
        matches!(error, LogError::Corruption { position: 0, .. }),
        "{error}"
    );
}

/// Failpoints are process-global; these tests filter them by their own directory.
#[test]
fn fsync_failure_stops_the_writer_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let log = open(
        dir.path(),
        &small_config(),
        &clock,
        PreviousShutdown::Crashed,
    );
    log.append(&tagged_batch("ok", 1, NOW_MS), LeaderEpoch(0))
        .unwrap();
    let filter = dir.path().display().to_string();
    fail::cfg("log::fsync", &format!("return({filter})")).unwrap();
    let error = log
        .append(&tagged_batch("doomed", 1, NOW_MS), LeaderEpoch(0))
        .unwrap_err();
    assert!(matches!(error, LogError::FsyncFailed { .. }), "{error}");
    assert!(error.is_fatal());
    fail::remove("log::fsync");
    let error = log
        .append(&tagged_batch("after", 1, NOW_MS), LeaderEpoch(0))
        .unwrap_err();
    assert!(
        matches!(error, LogError::Stopped { .. }),
        "never retried: {error}"
    );
    assert!(log.roll().is_err() && log.truncate_to(Offset(0)).is_err());
    assert_eq!(
        log.durable_offset(),
        Offset(1),
        "the failed fsync made nothing durable"
    );
}

#[test]
fn failed_write_leaves_no_partial_batch() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    let first = tagged_batch("ok", 2, NOW_MS);
    log.append(&first, LeaderEpoch(0)).unwrap();
    let active = segment_path(dir.path(), Offset(0));
    // The batch's length (with direct I/O the file is padded to a block until the cut).
    let size = first.len() as u64;
    let filter = dir.path().display().to_string();
    fail::cfg("log::write", &format!("return(partial:{filter})")).unwrap();
    let error = log
        .append(&tagged_batch("full-disk", 3, NOW_MS), LeaderEpoch(0))
        .unwrap_err();
    fail::remove("log::write");
    assert!(matches!(error, LogError::Io { .. }), "{error}");
    assert!(!error.is_fatal());
    assert_eq!(
        fs::metadata(&active).unwrap().len(),
        size,
        "the torn write was cut back"
    );
    assert_eq!(log.log_end_offset(), Offset(2));
    let info = log
        .append(&tagged_batch("next", 1, NOW_MS), LeaderEpoch(0))
        .unwrap();
    assert_eq!(info.base_offset, Offset(2));
    drop(log);
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    assert_eq!(log.recovery_report().truncated_bytes, 0);
    assert_eq!(read_all(&log).len(), 3);
}

#[test]
fn a_damaged_length_field_is_reported_by_reads_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    for i in 0..4 {
        log.append(&tagged_batch(&format!("l{i}"), 2, NOW_MS), LeaderEpoch(0))
            .unwrap();
    }
    let batch_bytes = tagged_batch("l0", 2, NOW_MS).len() as u64;
    // batch_length of the second batch becomes ~2 GiB.
    flip_byte(&segment_path(dir.path(), Offset(0)), batch_bytes + 8);
    // Reading offset 2 walks from the start of the segment (no index entry before it).
    let error = log.read(Offset(2), 1 << 20, None).unwrap_err();
    assert!(
        matches!(error, LogError::Corruption { position, .. } if position == batch_bytes),
        "{error}"
    );
    // The intact first batch is still served.
    assert_eq!(
        super::test_support::decode_values(&log.read(Offset(0), 1, None).unwrap().batches).len(),
        2
    );
}

#[test]
fn index_files_of_odd_length_or_missing_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        retention_ms: Some(1000),
        ..small_config()
    };
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    for i in 0..40 {
        log.append(&tagged_batch(&format!("o{i}"), 2, NOW_MS), LeaderEpoch(0))
            .unwrap();
    }
    let before = read_all(&log);
    let segments = log.segment_count();
    log.close().unwrap();
    drop(log);
    // An index whose length is not a whole number of entries, and a missing time index.
    let index = dir.path().join(segment_file_name(Offset(0), "index"));
    let mut bytes = fs::read(&index).unwrap();
    bytes.extend_from_slice(&[1, 2, 3]);
    fs::write(&index, bytes).unwrap();
    fs::remove_file(dir.path().join(segment_file_name(Offset(0), "timeindex"))).unwrap();

    let log = open(dir.path(), &config, &clock, PreviousShutdown::Clean);
    assert!(log.recovery_report().rebuilt_files >= 1);
    assert_eq!(read_all(&log), before);
    // The rebuilt time index still lets time retention delete the old segments.
    log.set_high_watermark(log.log_end_offset());
    clock.advance_ms(2000);
    assert_eq!(
        log.apply_retention().unwrap().segments_deleted,
        segments - 1
    );
}

#[test]
fn a_damaged_epoch_cache_does_not_turn_corruption_into_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    for i in 0..10 {
        log.append(&tagged_batch(&format!("e{i}"), 2, NOW_MS), LeaderEpoch(3))
            .unwrap();
    }
    log.checkpoint().unwrap(); // recovery point = 20
    drop(log);
    let epochs = dir
        .path()
        .join(super::leader_epoch_cache::LeaderEpochCache::FILE_NAME);
    flip_byte(&epochs, 3);
    let batch_bytes = tagged_batch("e0", 2, NOW_MS).len() as u64;
    flip_byte(&segment_path(dir.path(), Offset(0)), batch_bytes * 4 + 70);
    let error = super::PartitionLog::open(
        dir.path(),
        config,
        std::sync::Arc::new(clock),
        PreviousShutdown::Crashed,
    )
    .unwrap_err();
    assert!(
        matches!(error, LogError::Corruption { position, .. } if position == batch_bytes * 4),
        "{error}"
    );
}
