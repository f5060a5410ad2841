//! Damage that recovery must not take for a shorter log. Each test damages real segment
//! files the way an outside hostile test did (a flipped bit, a cut file, a deleted
//! segment, a flipped index entry), reopens the data directory through the log manager
//! as the broker does, after a clean shutdown or a crash, and checks the promise that
//! matters: no acknowledged record is lost or served at a wrong offset, and no offset is
//! handed out twice. A damaged partition may refuse to serve (it goes offline); it may
//! never answer "out of range", an empty read, or someone else's record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_proto::record::{decode_batch, BatchHeader, DecodeLimits, BATCH_HEADER_BYTES};
use strata_proto::types::{LeaderEpoch, Offset, PartitionId, TopicName};

use super::segment::segment_file_name;
use super::test_support::{small_config, tagged_batch};
use super::{LogConfig, LogError, LogManager, ManualClock, PartitionLog, TopicPartition};

const NOW_MS: i64 = 1_700_000_000_000;
const RECORDS_PER_BATCH: usize = 5;

fn partition() -> TopicPartition {
    TopicPartition::new(TopicName::new("t").unwrap(), PartitionId(0))
}

fn partition_dir(data: &Path) -> PathBuf {
    data.join(partition().dir_name())
}

fn segment_path(data: &Path, base: Offset, extension: &str) -> PathBuf {
    partition_dir(data).join(segment_file_name(base, extension))
}

/// How the writing process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// `LogManager::close`: checkpoints at the log end and the clean-shutdown marker.
    Clean,
    /// Killed after a periodic checkpoint (recovery point = the log end).
    CrashAfterCheckpoint,
    /// Killed before any checkpoint but the one written at open (recovery point 0).
    CrashBeforeCheckpoint,
}

/// What the writer was told: every acknowledged record, and the log end it saw.
struct Written {
    acked: BTreeMap<Offset, Vec<u8>>,
    end: Offset,
}

fn manager(data: &Path, config: &LogConfig, clock: &ManualClock) -> LogManager {
    LogManager::open(data, config.clone(), Arc::new(clock.clone())).unwrap()
}

/// Appends `batches` batches of five records (values `b<i>-<j>`) to a new partition and
/// ends as `ending` says.
fn write(
    data: &Path,
    config: &LogConfig,
    clock: &ManualClock,
    batches: usize,
    ending: Ending,
) -> Written {
    let manager = manager(data, config, clock);
    let log = manager.get_or_create(&partition(), None).unwrap();
    let mut acked = BTreeMap::new();
    for i in 0..batches {
        let tag = format!("b{i}");
        let info = log
            .append(
                &tagged_batch(&tag, RECORDS_PER_BATCH, NOW_MS),
                LeaderEpoch(0),
            )
            .unwrap();
        for j in 0..RECORDS_PER_BATCH {
            acked.insert(
                info.base_offset.plus(j as i64),
                format!("{tag}-{j}").into_bytes(),
            );
        }
    }
    let end = log.log_end_offset();
    match ending {
        Ending::Clean => manager.close().unwrap(),
        Ending::CrashAfterCheckpoint => log.checkpoint().unwrap(),
        Ending::CrashBeforeCheckpoint => {}
    }
    Written { acked, end }
}

/// Every batch of a `.log` file with its position (stops at anything that is not a
/// whole batch, such as direct I/O's zero padding).
fn batches_in(path: &Path) -> Vec<(u64, BatchHeader)> {
    let bytes = fs::read(path).unwrap();
    let mut batches = Vec::new();
    let mut position = 0usize;
    while let Some(rest) = bytes.get(position..) {
        let Ok(header) = BatchHeader::parse(rest) else {
            break;
        };
        if header.batch_length <= 0 || header.total_bytes() > rest.len() {
            break;
        }
        batches.push((position as u64, header));
        position += header.total_bytes();
    }
    batches
}

/// The segment base offsets of the partition, ascending.
fn segment_bases(data: &Path) -> Vec<Offset> {
    let mut bases: Vec<Offset> = fs::read_dir(partition_dir(data))
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let stem = name.strip_suffix(".log")?;
            Some(Offset(stem.parse().ok()?))
        })
        .collect();
    bases.sort();
    bases
}

fn xor_byte(path: &Path, position: u64, mask: u8) {
    let mut bytes = fs::read(path).unwrap();
    bytes[position as usize] ^= mask;
    fs::write(path, bytes).unwrap();
}

/// The promise: every acknowledged offset is either served with its own record at its own
/// offset, or refused with an error that is not "out of range"; and an append is either
/// refused or gets an offset at or beyond everything acknowledged before.
fn assert_no_acked_record_lost_or_misplaced(log: &PartitionLog, written: &Written) {
    for (offset, value) in &written.acked {
        match log.read(*offset, 1 << 20, None) {
            Err(error @ LogError::OffsetOutOfRange { .. }) => {
                panic!("acked offset {offset} is gone: {error}")
            }
            Err(_) => {}
            Ok(read) => {
                assert!(
                    !read.batches.is_empty(),
                    "acked offset {offset}: an empty read and no error"
                );
                let served = decode_checked(&read.batches, *offset);
                for (served_offset, served_value) in &served {
                    assert_eq!(
                        written.acked.get(served_offset),
                        Some(served_value),
                        "reading {offset}: a record served at offset {served_offset} that was \
                         not acked there"
                    );
                }
                assert_eq!(
                    served.get(offset),
                    Some(value),
                    "reading {offset}: the acked record is not served"
                );
            }
        }
    }
    if let Ok(info) = log.append(&tagged_batch("after", 1, NOW_MS), LeaderEpoch(0)) {
        assert!(
            info.base_offset >= written.end,
            "offset {} handed out again (the acked log ended at {})",
            info.base_offset,
            written.end
        );
    }
}

/// The records of a read, refusing damaged bytes.
fn decode_checked(mut bytes: &[u8], reading: Offset) -> BTreeMap<Offset, Vec<u8>> {
    let mut out = BTreeMap::new();
    while !bytes.is_empty() {
        let header = BatchHeader::parse(bytes).unwrap();
        let (one, rest) = bytes.split_at(header.total_bytes());
        let decoded = decode_batch(one, &DecodeLimits::default())
            .unwrap_or_else(|error| panic!("reading {reading}: damaged bytes served: {error}"));
        for record in decoded.records {
            let value = record.value.map(|v| v.to_vec()).unwrap_or_default();
            out.insert(record.offset, value);
        }
        bytes = rest;
    }
    out
}

/// The log is offline: reads and appends fail with the typed error, which says why.
fn assert_offline(log: &PartitionLog, written: &Written, why: &str) {
    assert!(log.is_offline());
    let first = *written.acked.keys().next().unwrap();
    match log.read(first, 1 << 20, None) {
        Err(LogError::Offline { reason, .. }) => assert!(reason.contains(why), "{reason}"),
        other => panic!("expected the offline error, got {other:?}"),
    }
    let append = log.append(&tagged_batch("after", 1, NOW_MS), LeaderEpoch(0));
    assert!(
        matches!(append, Err(LogError::Offline { .. })),
        "{append:?}"
    );
}

fn config_with_small_segments() -> LogConfig {
    // Four batches of five records per segment: offsets 95–99 are the last batch of the
    // segment starting at 80.
    LogConfig {
        segment_bytes: 500,
        ..small_config()
    }
}

/// Row 4: the low bit of `base_offset` flipped in the batch holding offsets 95–99, the
/// last batch of a sealed segment; clean restart.
#[test]
fn flipped_base_offset_in_the_last_batch_of_a_sealed_segment_is_never_served() {
    let data = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = config_with_small_segments();
    let written = write(data.path(), &config, &clock, 30, Ending::Clean);
    let sealed = segment_path(data.path(), Offset(80), "log");
    let batches = batches_in(&sealed);
    let (position, header) = *batches.last().unwrap();
    assert_eq!(
        header.base_offset,
        Offset(95),
        "the layout the test expects"
    );
    xor_byte(&sealed, position + 7, 0x01); // base offset 95 → 94

    let manager = manager(data.path(), &config, &clock);
    let log = manager.get(&partition()).unwrap();
    assert_no_acked_record_lost_or_misplaced(&log, &written);
    assert_offline(&log, &written, "base offset 94 where 95 was expected");
}

/// Row 4 in the middle of a segment: the flipped batch (85–89) is neither the first nor
/// the last of its segment, so only a read that walks over it can see it.
#[test]
fn flipped_base_offset_inside_a_sealed_segment_is_never_served() {
    let data = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = config_with_small_segments();
    let written = write(data.path(), &config, &clock, 30, Ending::Clean);
    let sealed = segment_path(data.path(), Offset(80), "log");
    let (position, header) = batches_in(&sealed)[1];
    assert_eq!(
        header.base_offset,
        Offset(85),
        "the layout the test expects"
    );
    xor_byte(&sealed, position + 7, 0x01); // base offset 85 → 84

    let manager = manager(data.path(), &config, &clock);
    let log = manager.get(&partition()).unwrap();
    assert_no_acked_record_lost_or_misplaced(&log, &written);
    // The cheap check at a clean start does not reach it; every read that does refuses.
    assert!(!log.is_offline());
    for offset in [85, 89] {
        let error = log.read(Offset(offset), 1 << 20, None).unwrap_err();
        assert!(
            matches!(&error, LogError::Corruption { position: at, .. } if *at == position),
            "{error}"
        );
    }
}

/// Row 5: the active segment cut to half its length, after a clean shutdown or a crash
/// that followed a checkpoint: the checkpoint's recovery point is past the cut.
fn active_segment_cut_to_half(ending: Ending) {
    let data = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let written = write(data.path(), &config, &clock, 6, ending);
    let active = segment_path(data.path(), Offset(0), "log");
    let batches = batches_in(&active);
    assert_eq!(batches.len(), 6);
    let (half, _) = batches[3];
    fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(half)
        .unwrap();

    let manager = manager(data.path(), &config, &clock);
    let log = manager.get(&partition()).unwrap();
    assert_no_acked_record_lost_or_misplaced(&log, &written);
    assert_offline(
        &log,
        &written,
        "ends at offset 15, below its checkpointed recovery point 30",
    );
}

#[test]
fn active_segment_cut_to_half_after_a_clean_shutdown_hands_out_no_offset_twice() {
    active_segment_cut_to_half(Ending::Clean);
}

#[test]
fn active_segment_cut_to_half_after_a_crash_hands_out_no_offset_twice() {
    active_segment_cut_to_half(Ending::CrashAfterCheckpoint);
}

/// Row 6: a sealed segment in the middle of the log deleted (its three files).
fn middle_segment_deleted(ending: Ending) {
    let data = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = config_with_small_segments();
    let written = write(data.path(), &config, &clock, 30, ending);
    let bases = segment_bases(data.path());
    assert!(bases.len() >= 4, "{bases:?}");
    let middle = bases[bases.len() / 2];
    for extension in ["log", "index", "timeindex"] {
        fs::remove_file(segment_path(data.path(), middle, extension)).unwrap();
    }

    let manager = manager(data.path(), &config, &clock);
    let log = manager.get(&partition()).unwrap();
    assert_no_acked_record_lost_or_misplaced(&log, &written);
    assert_offline(
        &log,
        &written,
        &format!(
            "but the next segment starts at {}",
            bases[bases.len() / 2 + 1]
        ),
    );
}

#[test]
fn deleted_middle_segment_after_a_clean_shutdown_is_not_a_silent_gap() {
    middle_segment_deleted(Ending::Clean);
}

#[test]
fn deleted_middle_segment_after_a_crash_is_not_a_silent_gap() {
    middle_segment_deleted(Ending::CrashAfterCheckpoint);
}

/// Row 7: one byte flipped in the first of six batches of the active segment; crash with
/// the recovery point still 0. The five intact batches behind the damage are no torn tail.
#[test]
fn damage_in_the_first_of_six_batches_after_a_crash_keeps_the_five_behind_it() {
    let data = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let written = write(
        data.path(),
        &config,
        &clock,
        6,
        Ending::CrashBeforeCheckpoint,
    );
    let active = segment_path(data.path(), Offset(0), "log");
    let batches_bytes: u64 = batches_in(&active)
        .iter()
        .map(|(_, header)| header.total_bytes() as u64)
        .sum();
    xor_byte(&active, BATCH_HEADER_BYTES as u64 + 10, 0x5a); // inside its records

    let manager = manager(data.path(), &config, &clock);
    let log = manager.get(&partition()).unwrap();
    assert!(
        fs::metadata(&active).unwrap().len() >= batches_bytes,
        "the intact batches behind the damage were cut"
    );
    assert_eq!(batches_in(&active).len(), 6);
    assert_no_acked_record_lost_or_misplaced(&log, &written);
    assert_offline(&log, &written, "an intact batch follows");
}

/// Row 8: two bits flipped in the time index of the oldest segment make its newest
/// timestamp look decades old. Retention must not delete the segment on that word.
#[test]
fn flipped_time_index_entry_does_not_make_retention_delete_the_segment() {
    let data = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        retention_ms: Some(7 * 24 * 3_600_000),
        // No index entries inside a segment: the seal entry is the time index's only one,
        // so the damaged file still passes the index sanity check.
        index_interval_bytes: 1 << 20,
        ..config_with_small_segments()
    };
    let written = write(data.path(), &config, &clock, 30, Ending::Clean);
    let time_index = segment_path(data.path(), Offset(0), "timeindex");
    assert_eq!(fs::metadata(&time_index).unwrap().len(), 12, "one entry");
    // Bits 40 and 0 of the big-endian timestamp: 2023 becomes 1988.
    xor_byte(&time_index, 2, 0x01);
    xor_byte(&time_index, 7, 0x01);

    let manager = manager(data.path(), &config, &clock);
    let log = manager.get(&partition()).unwrap();
    assert!(!log.is_offline());
    assert!(
        log.recovery_report().rebuilt_files >= 1,
        "the time index is rebuilt"
    );
    log.set_high_watermark(log.log_end_offset());
    clock.advance_ms(4_000);
    let outcome = log.apply_retention().unwrap();
    assert_eq!(outcome.segments_deleted, 0, "{outcome:?}");
    assert_no_acked_record_lost_or_misplaced(&log, &written);
}

/// A raised leader epoch (a bit flipped in a field the CRC does not cover) makes the
/// *next* batch look wrong. The report names the batch that was damaged, and the intact
/// batches after it are not cut as a torn tail.
#[test]
fn a_raised_leader_epoch_is_blamed_on_its_own_batch() {
    let data = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let written = write(
        data.path(),
        &config,
        &clock,
        6,
        Ending::CrashBeforeCheckpoint,
    );
    let active = segment_path(data.path(), Offset(0), "log");
    let (damaged, _) = batches_in(&active)[2];
    xor_byte(&active, damaged + 15, 0x01); // epoch 0 → 1

    let error = PartitionLog::open(
        &partition_dir(data.path()),
        config.clone(),
        Arc::new(clock.clone()),
        super::PreviousShutdown::Crashed,
    )
    .map(|_| ())
    .unwrap_err();
    assert!(
        matches!(error, LogError::Corruption { position, .. } if position == damaged),
        "{error}"
    );
    assert_eq!(batches_in(&active).len(), 6, "nothing was cut");
    let manager = manager(data.path(), &config, &clock);
    let log = manager.get(&partition()).unwrap();
    assert_no_acked_record_lost_or_misplaced(&log, &written);
    assert_offline(&log, &written, "leader epoch 1 is above the epochs");
}

/// An offline partition changes nothing in its directory, not even at a clean shutdown,
/// so every restart finds the same damage; the other partitions are served as usual.
#[test]
fn an_offline_partition_changes_nothing_and_the_others_are_served() {
    let data = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = config_with_small_segments();
    let written = write(data.path(), &config, &clock, 30, Ending::Clean);
    let other = TopicPartition::new(TopicName::new("u").unwrap(), PartitionId(0));
    {
        let manager = manager(data.path(), &config, &clock);
        let log = manager.get_or_create(&other, None).unwrap();
        log.append(&tagged_batch("u", 3, NOW_MS), LeaderEpoch(0))
            .unwrap();
        manager.close().unwrap();
    }
    fs::remove_file(segment_path(data.path(), Offset(40), "log")).unwrap();
    let snapshot = |dir: &Path| -> BTreeMap<String, Vec<u8>> {
        fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let name = entry.file_name().into_string().unwrap();
                (name, fs::read(entry.path()).unwrap())
            })
            .filter(|(name, _)| !name.ends_with("index"))
            .collect()
    };
    let before = snapshot(&partition_dir(data.path()));
    for _ in 0..2 {
        let manager = manager(data.path(), &config, &clock);
        let log = manager.get(&partition()).unwrap();
        assert_offline(&log, &written, "next segment starts at 60");
        log.checkpoint().unwrap();
        assert_eq!(log.apply_retention().unwrap().segments_deleted, 0);
        let served = manager.get(&other).unwrap();
        assert!(
            served
                .read(Offset(0), 1 << 20, None)
                .unwrap()
                .log_end_offset
                >= Offset(3)
        );
        served
            .append(&tagged_batch("v", 1, NOW_MS), LeaderEpoch(0))
            .unwrap();
        manager.close().unwrap();
        assert_eq!(snapshot(&partition_dir(data.path())), before);
    }
}

/// What the operator does for now: move the damaged segment and every segment before it
/// out of the directory. The log then starts at the next segment's base, or, with nothing
/// left, at the end its checkpoint promised; no offset is handed out twice.
#[test]
fn moving_damaged_segments_away_brings_the_partition_back_without_reusing_offsets() {
    let data = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = config_with_small_segments();
    let written = write(data.path(), &config, &clock, 30, Ending::Clean);
    let aside = tempfile::tempdir().unwrap();
    let move_away = |base: Offset| {
        for extension in ["log", "index", "timeindex"] {
            let name = segment_file_name(base, extension);
            fs::rename(
                partition_dir(data.path()).join(&name),
                aside.path().join(&name),
            )
            .unwrap();
        }
    };
    // A gap at 40: offline until the segments before it are moved away too.
    move_away(Offset(40));
    assert!(manager(data.path(), &config, &clock)
        .get(&partition())
        .unwrap()
        .is_offline());
    move_away(Offset(0));
    move_away(Offset(20));
    {
        let manager = manager(data.path(), &config, &clock);
        let log = manager.get(&partition()).unwrap();
        assert!(!log.is_offline());
        assert_eq!(log.log_start_offset(), Offset(60));
        let kept = Written {
            acked: written
                .acked
                .range(Offset(60)..)
                .map(|(o, v)| (*o, v.clone()))
                .collect(),
            end: written.end,
        };
        assert_no_acked_record_lost_or_misplaced(&log, &kept);
        manager.close().unwrap();
    }
    // Every segment gone: the log starts again, empty, where it ended.
    for base in segment_bases(data.path()) {
        move_away(base);
    }
    let manager = manager(data.path(), &config, &clock);
    let log = manager.get(&partition()).unwrap();
    assert!(!log.is_offline());
    assert_eq!(log.log_start_offset(), log.log_end_offset());
    let info = log
        .append(&tagged_batch("again", 1, NOW_MS), LeaderEpoch(0))
        .unwrap();
    assert!(info.base_offset > written.end, "{info:?}");
}

/// A truncation (replication's) lowers the checkpoint's promise before it cuts, so a
/// crash right after it is not taken for lost data.
#[test]
fn a_truncation_followed_by_a_crash_is_not_taken_for_damage() {
    let data = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = config_with_small_segments();
    let written = write(
        data.path(),
        &config,
        &clock,
        30,
        Ending::CrashAfterCheckpoint,
    );
    {
        let manager = manager(data.path(), &config, &clock);
        let log = manager.get(&partition()).unwrap();
        log.set_high_watermark(log.log_end_offset());
        log.checkpoint().unwrap();
        assert_eq!(log.truncate_to(Offset(52)).unwrap(), Offset(50));
    }
    let manager = manager(data.path(), &config, &clock);
    let log = manager.get(&partition()).unwrap();
    assert!(!log.is_offline());
    assert_eq!(log.log_end_offset(), Offset(50));
    let kept = Written {
        acked: written
            .acked
            .range(..Offset(50))
            .map(|(o, v)| (*o, v.clone()))
            .collect(),
        end: Offset(50),
    };
    assert_no_acked_record_lost_or_misplaced(&log, &kept);
}
