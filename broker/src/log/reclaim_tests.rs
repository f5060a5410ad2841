//! Deleted segments and their reclaimer, through a [`super::PartitionLog`] and the
//! [`LogManager`]: a slice read from a sealed segment stays readable after retention or a
//! topic deletion removes the segment, and the file's space is given back once the slice
//! is gone (`reclaim.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use strata_proto::types::{LeaderEpoch, Offset, PartitionId, TopicName};

use super::reclaim::{ReclaimPace, Reclaimer};
use super::test_support::{decode_values, open, small_config, tagged_batch};
use super::{LogConfig, LogManager, ManualClock, PreviousShutdown, TopicPartition};

const NOW_MS: i64 = 1_700_000_000_000;
const LIVENESS: Duration = Duration::from_secs(60);

fn segment_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".log"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_slice_of_a_deleted_segment_stays_readable_until_it_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    // Buffered I/O: sealed segments are read through their map (direct I/O never maps).
    let config = LogConfig {
        retention_bytes: Some(1024),
        retention_ms: None,
        direct_io: false,
        ..small_config()
    };
    let (reclaimer, _thread) = Reclaimer::start(ReclaimPace {
        chunk_bytes: 256,
        pause: Duration::ZERO,
    });
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed)
        .with_reclaimer(reclaimer.clone());
    for i in 0..60 {
        log.append(&tagged_batch(&format!("b{i}"), 3, NOW_MS), LeaderEpoch(0))
            .unwrap();
    }
    log.set_high_watermark(log.log_end_offset());
    let slice = log.read(Offset(0), 1 << 20, None).unwrap().batches;
    let expected = decode_values(&slice);
    assert_eq!(expected.first().unwrap().0, Offset(0));
    let before = segment_files(dir.path());

    let outcome = log.apply_retention().unwrap();
    assert!(outcome.segments_deleted >= 2, "{outcome:?}");
    let after = segment_files(dir.path());
    assert_eq!(
        after.len(),
        before.len() - outcome.segments_deleted,
        "the names are gone at once"
    );
    assert!(!after.contains(&"00000000000000000000.log".to_string()));

    // Every other deleted segment is cut; the mapped one waits for its slice.
    let stats = reclaimer.wait_for(LIVENESS, |stats| {
        stats.files_pending == 1 && stats.map_waits >= 2
    });
    assert_eq!(stats.files_pending, 1, "{stats:?}");
    assert!(stats.map_waits >= 2, "{stats:?}");
    // Reading every byte of the slice would be a SIGBUS had its file been cut.
    assert_eq!(decode_values(&slice), expected);

    drop(slice);
    let stats = reclaimer.wait_for(LIVENESS, |stats| stats.files_pending == 0);
    assert_eq!(stats.files_pending, 0, "{stats:?}");
    assert_eq!(stats.bytes_pending, 0, "{stats:?}");
    assert!(log.read(log.log_start_offset(), 1 << 20, None).is_ok());
}

#[test]
fn a_truncation_hands_its_deleted_segments_to_the_reclaimer() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let (reclaimer, _thread) = Reclaimer::start(ReclaimPace {
        chunk_bytes: 256,
        pause: Duration::ZERO,
    });
    let log = open(
        dir.path(),
        &small_config(),
        &clock,
        PreviousShutdown::Crashed,
    )
    .with_reclaimer(reclaimer.clone());
    for i in 0..40 {
        log.append(&tagged_batch(&format!("t{i}"), 3, NOW_MS), LeaderEpoch(0))
            .unwrap();
    }
    let segments_before = segment_files(dir.path()).len();
    assert!(segments_before >= 3);
    assert_eq!(log.truncate_to(Offset(3)).unwrap(), Offset(3));
    assert_eq!(segment_files(dir.path()).len(), 1);
    let stats = reclaimer.wait_for(LIVENESS, |stats| stats.files_pending == 0 && stats.cuts > 0);
    assert_eq!(stats.files_pending, 0, "{stats:?}");
    assert!(stats.cuts > 0, "{stats:?}");
    let values: Vec<Offset> = decode_values(&log.read(Offset(0), 1 << 20, None).unwrap().batches)
        .into_iter()
        .map(|(offset, _)| offset)
        .collect();
    assert_eq!(values, [Offset(0), Offset(1), Offset(2)]);
}

#[test]
fn a_deleted_partition_gives_its_space_back_after_its_last_slice() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        direct_io: false,
        ..small_config()
    };
    let manager = LogManager::open(dir.path(), config, Arc::new(clock)).unwrap();
    let partition = TopicPartition::new(TopicName::new("gone").unwrap(), PartitionId(0));
    let log = manager.get_or_create(&partition, None).unwrap();
    for i in 0..40 {
        log.append(&tagged_batch(&format!("d{i}"), 3, NOW_MS), LeaderEpoch(0))
            .unwrap();
    }
    let slice = log.read(Offset(0), 1 << 20, None).unwrap().batches;
    let expected = decode_values(&slice);
    let segments = segment_files(log.dir()).len();
    assert!(segments >= 3);
    drop(log);

    manager.delete(&partition).unwrap();
    assert!(manager.get(&partition).is_none());
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("gone"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let reclaimer = manager.reclaimer();
    let stats = reclaimer.wait_for(LIVENESS, |stats| {
        stats.files_pending == 1 && stats.map_waits >= 2
    });
    assert_eq!(stats.files_pending, 1, "{stats:?}");
    assert_eq!(decode_values(&slice), expected);
    drop(slice);
    let stats = reclaimer.wait_for(LIVENESS, |stats| stats.files_pending == 0);
    assert_eq!(stats.files_pending, 0, "{stats:?}");
}
