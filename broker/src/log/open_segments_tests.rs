//! What a partition log holds open: sealed segments keep no descriptor or map unless they
//! were used recently (`open_segments.rs`), cold ones are reopened on demand, and a roll
//! that fails half-way leaves nothing behind that the next roll would trip over.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use strata_proto::types::{LeaderEpoch, Offset};

use super::open_segments::STANDALONE_CAPACITY;
use super::reclaim::Reclaimer;
use super::test_support::{open, read_all, small_config};
use super::{
    FlushPolicy, LogConfig, LogResources, ManualClock, OpenSegments, PartitionLog, PreviousShutdown,
};

const NOW_MS: i64 = 1_700_000_000_000;

/// Descriptors of this process open on a file under `dir`.
fn descriptors_under(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

/// Memory maps of this process of a file under `dir`.
fn maps_under(dir: &Path) -> usize {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|line| line.contains(dir.as_str()))
        .count()
}

/// One batch of three ~400-byte records: with 1024-byte segments, one segment each.
fn big_batch(index: usize) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..3)
        .map(|record| format!("{index:05}-{record}-{}", "v".repeat(400)).into_bytes())
        .collect();
    super::test_support::batch(&values, NOW_MS)
}

#[test]
fn a_roll_that_fails_half_way_leaves_no_file_for_the_next_roll_to_trip_over() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let log = open(
        dir.path(),
        &small_config(),
        &clock,
        PreviousShutdown::Crashed,
    );
    log.append(&big_batch(0), LeaderEpoch(0)).unwrap();
    let next_base = log.log_end_offset();
    // The roll to `next_base` creates the `.log`, then cannot create the `.index` (as when
    // the process is out of descriptors).
    let obstacle = dir.path().join(format!("{:020}.index", next_base.0));
    std::fs::create_dir(&obstacle).unwrap();
    let error = log.append(&big_batch(1), LeaderEpoch(0)).unwrap_err();
    assert!(
        !format!("{error:?}").contains("AlreadyExists"),
        "the roll failed for its own reason: {error:?}"
    );
    std::fs::remove_dir(&obstacle).unwrap();
    // Once the cause is gone, the next append rolls and succeeds.
    let appended = log.append(&big_batch(1), LeaderEpoch(0)).unwrap();
    assert_eq!(appended.base_offset, next_base);
    log.append(&big_batch(2), LeaderEpoch(0)).unwrap();
    assert_eq!(read_all(&log).len(), 9);
}

/// Descriptors one open segment holds: its `.log`, and the `O_DIRECT` handle of it.
fn descriptors_per_segment(config: &LogConfig) -> usize {
    if config.direct_io {
        2
    } else {
        1
    }
}

fn interval_config() -> LogConfig {
    LogConfig {
        flush: FlushPolicy::Interval {
            interval_ms: 60_000,
        },
        ..small_config()
    }
}

fn resources(clock: &ManualClock, capacity: usize) -> LogResources {
    LogResources {
        clock: Arc::new(clock.clone()),
        open_segments: OpenSegments::new(capacity),
        reclaimer: Reclaimer::immediate(),
    }
}

fn open_with(dir: &Path, config: &LogConfig, resources: &LogResources) -> PartitionLog {
    PartitionLog::open_with(dir, config.clone(), PreviousShutdown::Crashed, resources).unwrap()
}

fn expected_values(batches: std::ops::Range<usize>) -> Vec<Vec<u8>> {
    batches
        .flat_map(|index| {
            (0..3)
                .map(move |record| format!("{index:05}-{record}-{}", "v".repeat(400)).into_bytes())
        })
        .collect()
}

fn values(log: &PartitionLog) -> Vec<Vec<u8>> {
    read_all(log).into_iter().map(|(_, value)| value).collect()
}

#[test]
fn many_sealed_segments_hold_a_bounded_number_of_descriptors_and_maps() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = interval_config();
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    for index in 0..120 {
        log.append(&big_batch(index), LeaderEpoch(0)).unwrap();
    }
    assert_eq!(log.segment_count(), 120);
    let descriptors = descriptors_under(dir.path());
    let maps = maps_under(dir.path());
    // Reading every record touches every sealed segment once.
    assert_eq!(values(&log), expected_values(0..120));
    let after_read = descriptors_under(dir.path());
    let maps_after_read = maps_under(dir.path());
    // The active segment, plus at most the cache's capacity of sealed ones.
    let bound = (STANDALONE_CAPACITY + 1) * descriptors_per_segment(&config);
    assert!(
        descriptors <= bound && after_read <= bound,
        "{descriptors} descriptors after the appends, {after_read} after reading them all \
         (at most {bound})"
    );
    // Three maps per open segment at most (two indexes and the `.log`).
    let map_bound = (STANDALONE_CAPACITY + 1) * 3;
    assert!(
        maps <= map_bound && maps_after_read <= map_bound,
        "{maps} maps after the appends, {maps_after_read} after reading them all"
    );
}

#[test]
fn logs_sharing_a_cache_keep_at_most_its_capacity_open_and_reopen_cold_segments() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let clock = ManualClock::new(NOW_MS);
    let config = interval_config();
    let shared = resources(&clock, 4);
    let logs: Vec<PartitionLog> = dirs
        .iter()
        .map(|dir| open_with(dir.path(), &config, &shared))
        .collect();
    for index in 0..30 {
        for log in &logs {
            log.append(&big_batch(index), LeaderEpoch(0)).unwrap();
        }
    }
    let per_segment = descriptors_per_segment(&config);
    let open_now = || -> usize { dirs.iter().map(|dir| descriptors_under(dir.path())).sum() };
    // Two active segments, and four sealed ones shared between the logs.
    assert!(open_now() <= (2 + 4) * per_segment, "{}", open_now());
    assert!(shared.open_segments.stats().open <= 4);
    let opened_before = shared.open_segments.stats().opened_total;
    for log in &logs {
        assert_eq!(values(log), expected_values(0..30));
    }
    let stats = shared.open_segments.stats();
    assert!(
        stats.opened_total >= opened_before + 2 * 25,
        "cold segments were opened again to be read: {stats:?}"
    );
    assert!(stats.open <= 4 && stats.evicted_total > 0, "{stats:?}");
    assert!(open_now() <= (2 + 4) * per_segment, "{}", open_now());
}

#[test]
fn retention_truncation_and_reopening_work_on_segments_whose_files_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        retention_bytes: Some(20 * 1024),
        retention_ms: None,
        ..interval_config()
    };
    let shared = resources(&clock, 2);
    let log = open_with(dir.path(), &config, &shared);
    for index in 0..60 {
        log.append(&big_batch(index), LeaderEpoch(0)).unwrap();
    }
    log.set_high_watermark(log.log_end_offset());
    // Retention deletes the oldest segments, whose files are closed.
    let outcome = log.apply_retention().unwrap();
    assert!(outcome.segments_deleted >= 30, "{outcome:?}");
    let first_kept = outcome.log_start_offset.0 as usize / 3;
    assert_eq!(values(&log), expected_values(first_kept..60));
    let log_files = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count();
    assert_eq!(log_files, log.segment_count());

    // A truncation into a cold sealed segment makes it the active one again.
    let cut = Offset(((first_kept + 5) * 3) as i64);
    assert_eq!(log.truncate_to(cut).unwrap(), cut);
    assert_eq!(values(&log), expected_values(first_kept..first_kept + 5));
    log.append(&big_batch(100), LeaderEpoch(0)).unwrap();
    let mut expected = expected_values(first_kept..first_kept + 5);
    expected.extend(expected_values(100..101));
    assert_eq!(values(&log), expected);

    // A clean close and a reopen check every segment through the cache.
    log.close().unwrap();
    drop(log);
    let log = PartitionLog::open_with(dir.path(), config.clone(), PreviousShutdown::Clean, &shared)
        .unwrap();
    assert_eq!(values(&log), expected);
    assert!(shared.open_segments.stats().open <= 2);
    // And so does a recovery scan after a crash.
    drop(log);
    let log = open_with(dir.path(), &config, &shared);
    assert_eq!(values(&log), expected);
    assert!(shared.open_segments.stats().open <= 2);
}

#[test]
fn a_deleted_log_removes_the_files_of_cold_segments_too() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let shared = resources(&clock, 1);
    let log = open_with(dir.path(), &interval_config(), &shared);
    for index in 0..10 {
        log.append(&big_batch(index), LeaderEpoch(0)).unwrap();
    }
    log.close().unwrap();
    log.delete_segments().unwrap();
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with("index") || name.ends_with(".log"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(shared.open_segments.stats().open, 0);
    assert_eq!(descriptors_under(dir.path()), 0);
}
