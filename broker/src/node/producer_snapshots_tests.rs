//! Producer-state snapshots against a full replay of the log: taken at segment boundaries,
//! never used past a truncation, skipped when their anchor batch changed or their file is
//! damaged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use strata_proto::record::{BatchBuilder, BatchSettings, Record};
use strata_proto::types::LeaderEpoch;

use super::*;
use crate::log::producer_snapshot::snapshot_file_name;
use crate::log::{LogConfig, PreviousShutdown, SystemClock};

fn open(dir: &std::path::Path) -> PartitionLog {
    let config = LogConfig {
        segment_bytes: 2048,
        ..LogConfig::default()
    };
    PartitionLog::open(
        dir,
        config,
        Arc::new(SystemClock),
        PreviousShutdown::Crashed,
    )
    .unwrap()
}

fn batch(producer_id: i64, base_sequence: i32, value: &[u8]) -> Bytes {
    let mut builder = BatchBuilder::new(BatchSettings {
        producer_id,
        producer_epoch: 0,
        base_sequence,
        ..BatchSettings::default()
    });
    for _ in 0..2 {
        builder
            .append(&Record::from_value(0, Bytes::copy_from_slice(value)))
            .unwrap();
    }
    builder.build().unwrap()
}

/// Appends `count` batches, producers 1–3 in turn, continuing their sequences.
fn append(log: &PartitionLog, sequences: &mut [i32; 3], count: usize, value: &[u8]) {
    for i in 0..count {
        let producer = i % 3;
        log.append(
            &batch(producer as i64 + 1, sequences[producer], value),
            LeaderEpoch(0),
        )
        .unwrap();
        sequences[producer] += 2;
    }
}

/// The table a replay of the whole log gives, ignoring every snapshot.
fn full_replay(log: &PartitionLog) -> ProducerStateTable {
    let mut state = StateAt {
        offset: log.log_start_offset(),
        anchor: None,
        table: ProducerStateTable::default(),
    };
    replay(log, &mut state, None).unwrap();
    state.table
}

#[test]
fn a_snapshot_is_taken_at_the_active_segment_and_gives_the_full_replay_table() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let mut sequences = [0; 3];
    append(&log, &mut sequences, 60, b"value");
    assert!(log.segment_count() > 2, "the test needs sealed segments");
    assert!(take_if_due(&log).unwrap());
    assert!(!take_if_due(&log).unwrap(), "nothing new is due");
    assert_eq!(
        list_snapshots(dir.path()).unwrap(),
        [log.active_segment_base_offset()]
    );
    append(&log, &mut sequences, 7, b"value");
    assert_eq!(load(&log).unwrap(), full_replay(&log));
    assert_eq!(load(&log).unwrap().producer_count(), 3);
    drop(log);
    let reopened = open(dir.path());
    assert_eq!(load(&reopened).unwrap(), full_replay(&reopened));
}

#[test]
fn a_truncation_below_a_snapshot_deletes_it_and_rewritten_records_are_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let mut sequences = [0; 3];
    append(&log, &mut sequences, 60, b"value");
    assert!(take_if_due(&log).unwrap());
    let snapshot = log.active_segment_base_offset();
    log.truncate_to(snapshot.plus(-5)).unwrap();
    assert!(list_snapshots(dir.path())
        .unwrap()
        .iter()
        .all(|offset| *offset < snapshot));
    // Other producers' records replace the cut ones, past the old snapshot's offset.
    for i in 0..20 {
        log.append(&batch(40 + i, 0, b"other"), LeaderEpoch(1))
            .unwrap();
    }
    let loaded = load(&log).unwrap();
    assert_eq!(loaded, full_replay(&log));
    assert!(loaded.producer_count() > 3);
}

#[test]
fn a_snapshot_whose_anchor_batch_changed_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let mut sequences = [0; 3];
    append(&log, &mut sequences, 60, b"value");
    assert!(take_if_due(&log).unwrap());
    let offset = log.active_segment_base_offset();
    let good = read_snapshot(dir.path(), offset).unwrap().unwrap();
    // The same snapshot, but claiming a different last batch, with a made-up table.
    let mut forged = good[..13].to_vec();
    forged[12] ^= 0x01;
    let mut bogus = ProducerStateTable::default();
    bogus.record(
        &BatchHeader::parse(&batch(999, 0, b"x")).unwrap(),
        Offset(0),
    );
    bogus.encode_into(&mut forged);
    write_snapshot(dir.path(), offset, &forged).unwrap();
    let loaded = load(&log).unwrap();
    assert_eq!(loaded, full_replay(&log));
    assert_eq!(loaded.producer_count(), 3, "the forged table was not used");
}

#[test]
fn a_damaged_snapshot_falls_back_to_the_one_before_or_a_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let mut sequences = [0; 3];
    append(&log, &mut sequences, 40, b"value");
    assert!(take_if_due(&log).unwrap());
    append(&log, &mut sequences, 40, b"value");
    assert!(take_if_due(&log).unwrap());
    let snapshots = list_snapshots(dir.path()).unwrap();
    assert_eq!(snapshots.len(), SNAPSHOTS_KEPT);
    let newest = dir.path().join(snapshot_file_name(snapshots[1]));
    let mut bytes = std::fs::read(&newest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&newest, &bytes).unwrap();
    assert_eq!(load(&log).unwrap(), full_replay(&log));
    std::fs::write(dir.path().join(snapshot_file_name(snapshots[0])), b"junk").unwrap();
    assert_eq!(load(&log).unwrap(), full_replay(&log));
}
