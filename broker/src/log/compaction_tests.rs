//! Log compaction (`log/cleaner.rs`): the partition log against a model of every record
//! ever appended, over random appends (keys, tombstones, codecs), rolls, high-watermark
//! moves, cleaning passes with small and large offset maps, and reopens; a crash at each
//! step of the swap; tombstones removed `delete_retention_ms` after their segment was
//! first cleaned; followers copying a cleaned leader.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use strata_proto::record::{
    decode_batch, BatchBuilder, BatchHeader, BatchSettings, Compression, DecodeLimits, Record,
};
use strata_proto::types::{LeaderEpoch, Offset};

use super::cleaner::offset_map::ENTRY_OVERHEAD_BYTES;
use super::cleaner::{swap, CleanTrigger, CleanerSettings};
use super::partition_log::compaction::crash_tests::set_swap_steps;
use super::test_support::{open, read_bytes_from};
use super::{CleanupPolicy, LogConfig, ManualClock, PartitionLog, PreviousShutdown};

const NOW_MS: i64 = 1_700_000_000_000;
const EPOCH: LeaderEpoch = LeaderEpoch(1);

/// One record as the model and the log hold it: (key, value; `None` = tombstone).
type Entry = (Vec<u8>, Option<Vec<u8>>);

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 700,
        index_interval_bytes: 100,
        index_bytes_max: 1024,
        retention_ms: None,
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: u64::MAX / 2,
        ..LogConfig::default()
    }
}

fn keyed_batch(entries: &[Entry], compression: Compression) -> Vec<u8> {
    let mut builder = BatchBuilder::new(BatchSettings {
        compression,
        ..BatchSettings::default()
    });
    for (key, value) in entries {
        builder
            .append(&Record {
                timestamp_ms: NOW_MS,
                key: Some(key.clone().into()),
                value: value.clone().map(Into::into),
                headers: Vec::new(),
            })
            .unwrap();
    }
    builder.build().unwrap().to_vec()
}

/// Every record from the log start to the end, with offsets, after checking that batches
/// follow each other exactly and offsets strictly increase.
fn read_records(log: &PartitionLog) -> Vec<(Offset, Entry)> {
    let bytes = read_bytes_from(log, log.log_start_offset());
    let mut out: Vec<(Offset, Entry)> = Vec::new();
    let mut rest = &bytes[..];
    let mut expected_base = log.log_start_offset();
    while !rest.is_empty() {
        let header = BatchHeader::parse(rest).unwrap();
        assert_eq!(
            header.base_offset, expected_base,
            "batches follow each other"
        );
        let (one, tail) = rest.split_at(header.total_bytes());
        for record in decode_batch(one, &DecodeLimits::default()).unwrap().records {
            if let Some((last, _)) = out.last() {
                assert!(record.offset > *last, "offsets strictly increase");
            }
            let entry = (
                record.key.unwrap().to_vec(),
                record.value.map(|value| value.to_vec()),
            );
            out.push((record.offset, entry));
        }
        expected_base = header.next_offset();
        rest = tail;
    }
    assert_eq!(expected_base, log.log_end_offset());
    out
}

fn clean(log: &PartitionLog, dedupe_buffer_bytes: usize) -> super::cleaner::CleanOutcome {
    let settings = CleanerSettings {
        dedupe_buffer_bytes,
    };
    log.clean(&settings, CleanTrigger::Now).unwrap()
}

/// The end of what the cleaner may touch: the end of the last sealed segment wholly below
/// min(active segment base, HW).
fn cleanable_end(log: &PartitionLog) -> Offset {
    let first_uncleanable = log.active_segment_base_offset().min(log.high_watermark());
    let state = log.read_state_for_tests();
    state
        .segments
        .values()
        .map(|segment| segment.next_offset())
        .filter(|next| *next <= first_uncleanable)
        .max()
        .unwrap_or(state.log_start_offset)
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: Vec<(u8, bool)>,
        compression: Compression,
    },
    Roll,
    /// Raise the high watermark to this share (per mille) of the way to the log end.
    RaiseHighWatermark(u16),
    /// Clean until the dirty part is all mapped (several passes with a small map).
    Clean,
    CloseAndReopen,
    CrashAndReopen,
}

fn op() -> impl Strategy<Value = Op> {
    let compression = prop_oneof![
        Just(Compression::None),
        Just(Compression::Lz4),
        Just(Compression::Zstd)
    ];
    prop_oneof![
        8 => (prop::collection::vec((0u8..6, prop::bool::weighted(0.15)), 1..6), compression)
            .prop_map(|(records, compression)| Op::Append { records, compression }),
        1 => Just(Op::Roll),
        2 => (0u16..=1000).prop_map(Op::RaiseHighWatermark),
        3 => Just(Op::Clean),
        1 => Just(Op::CloseAndReopen),
        1 => Just(Op::CrashAndReopen),
    ]
}

/// After a full clean: what the log must hold, given every record ever appended.
fn check_cleaned(
    log: &[(Offset, Entry)],
    history: &BTreeMap<Offset, Entry>,
    cleanable_end: Offset,
) {
    let mut newest: BTreeMap<&[u8], Offset> = BTreeMap::new();
    for (offset, (key, _)) in history {
        newest.insert(key, *offset);
    }
    let held: BTreeMap<Offset, &Entry> =
        log.iter().map(|(offset, entry)| (*offset, entry)).collect();
    for (offset, entry) in log {
        assert_eq!(
            history.get(offset),
            Some(entry),
            "record at {offset} is as written"
        );
    }
    for (key, offset) in &newest {
        assert_eq!(
            held.get(offset).map(|entry| &entry.0[..]),
            Some(*key),
            "the newest record of {key:?} (offset {offset}) stays"
        );
    }
    for (offset, (key, _)) in log.iter().filter(|(offset, _)| *offset < cleanable_end) {
        let newer_below = history
            .range(offset.plus(1)..cleanable_end)
            .any(|(_, (other, _))| other == key);
        assert!(
            !newer_below,
            "{offset} ({key:?}) was superseded below {cleanable_end} yet kept"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn compacted_log_matches_the_model(
        ops in prop::collection::vec(op(), 1..45),
        small_map in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(NOW_MS);
        let config = config();
        let dedupe_buffer_bytes = if small_map { 2 * (ENTRY_OVERHEAD_BYTES + 1) } else { 1 << 20 };
        let mut log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
        let mut history: BTreeMap<Offset, Entry> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Append { records, compression } => {
                    let entries: Vec<Entry> = records
                        .iter()
                        .map(|(key, tombstone)| {
                            let value = (!tombstone).then(|| format!("v{}", history.len()).into_bytes());
                            (vec![b'k', *key], value)
                        })
                        .collect();
                    let info = log.append(&keyed_batch(&entries, compression), EPOCH).unwrap();
                    for (index, entry) in entries.into_iter().enumerate() {
                        history.insert(info.base_offset.plus(index as i64), entry);
                    }
                }
                Op::Roll => log.roll().unwrap(),
                Op::RaiseHighWatermark(per_mille) => {
                    let (hw, end) = (log.high_watermark().0, log.log_end_offset().0);
                    log.advance_high_watermark(Offset(hw + (end - hw) * i64::from(per_mille) / 1000));
                }
                Op::Clean => {
                    let before = read_records(&log);
                    let cleanable_end = cleanable_end(&log);
                    for _ in 0..200 {
                        if !clean(&log, dedupe_buffer_bytes).map_filled {
                            break;
                        }
                    }
                    let after = read_records(&log);
                    prop_assert!(after.len() <= before.len());
                    check_cleaned(&after, &history, cleanable_end);
                    let untouched = |records: &[(Offset, Entry)]| -> Vec<(Offset, Entry)> {
                        records.iter().filter(|(offset, _)| *offset >= cleanable_end).cloned().collect()
                    };
                    prop_assert_eq!(untouched(&after), untouched(&before), "≥ {} is untouched", cleanable_end);
                    // Reads from any offset, a removed one too, start at the next record held.
                    for (offset, _) in history.iter().step_by(3) {
                        let read = log.read(*offset, 1 << 16, None).unwrap();
                        let first = read_first_record_at_or_after(&read.batches, *offset);
                        let expected = after.iter().find(|(held, _)| held >= offset).map(|(held, _)| *held);
                        prop_assert!(first == expected || first.is_none(), "read at {offset}: {first:?} vs {expected:?}");
                    }
                }
                Op::CloseAndReopen => {
                    log.close().unwrap();
                    drop(log);
                    log = open(dir.path(), &config, &clock, PreviousShutdown::Clean);
                }
                Op::CrashAndReopen => {
                    log.flush().unwrap();
                    drop(log);
                    log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
                }
            }
            let held = read_records(&log);
            for (offset, entry) in &held {
                prop_assert_eq!(history.get(offset), Some(entry));
            }
        }
        // Every key's newest value is there at its original offset, cleaned or not.
        let held: BTreeMap<Offset, Entry> = read_records(&log).into_iter().collect();
        let mut newest: BTreeMap<Vec<u8>, (Offset, Option<Vec<u8>>)> = BTreeMap::new();
        for (offset, (key, value)) in &history {
            newest.insert(key.clone(), (*offset, value.clone()));
        }
        for (key, (offset, value)) in newest {
            prop_assert_eq!(held.get(&offset), Some(&(key, value)));
        }
    }
}

/// The offset of the first record at or after `offset` in `batches` (the first batch may
/// start before it); `None` when the read returned no such record in its first batch.
fn read_first_record_at_or_after(batches: &[u8], offset: Offset) -> Option<Offset> {
    let mut rest = batches;
    while !rest.is_empty() {
        let header = BatchHeader::parse(rest).unwrap();
        let (one, tail) = rest.split_at(header.total_bytes());
        let decoded = decode_batch(one, &DecodeLimits::default()).unwrap();
        if let Some(record) = decoded
            .records
            .iter()
            .find(|record| record.offset >= offset)
        {
            return Some(record.offset);
        }
        rest = tail;
    }
    None
}

/// A log of several sealed segments, all committed, with updates of a few keys.
fn build_log(dir: &Path, config: &LogConfig, clock: &ManualClock) -> PartitionLog {
    let log = open(dir, config, clock, PreviousShutdown::Crashed);
    for round in 0..30 {
        let entries: Vec<Entry> = (0..3u8)
            .map(|key| {
                (
                    vec![b'k', key],
                    Some(format!("r{round}-{key}").into_bytes()),
                )
            })
            .collect();
        log.append(&keyed_batch(&entries, Compression::None), EPOCH)
            .unwrap();
    }
    log.roll().unwrap();
    log.advance_high_watermark(log.log_end_offset());
    assert!(log.segment_count() > 3);
    log
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn leftover_swap_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| entry.unwrap().file_name().into_string().ok())
        .filter(|name| name.ends_with(swap::CLEANED_SUFFIX) || name.ends_with(swap::SWAP_SUFFIX))
        .collect()
}

/// A crash after each step of the swap of the first segment (`cleaner/swap.rs`): reopened,
/// the log holds the old first segment (before the commit point) or the cleaned one
/// (after it), the other segments as they were, no leftovers, and no latest value lost.
#[test]
fn a_crash_at_each_swap_step_leaves_the_old_or_the_new_segment() {
    let clock = ManualClock::new(NOW_MS);
    let config = config();
    let original = tempfile::tempdir().unwrap();
    let (before, first_segment_end) = {
        let log = build_log(original.path(), &config, &clock);
        let end = log
            .read_state_for_tests()
            .segments
            .values()
            .next()
            .unwrap()
            .next_offset();
        let records = read_records(&log);
        log.close().unwrap();
        (records, end)
    };
    let cleaned = tempfile::tempdir().unwrap();
    copy_dir(original.path(), cleaned.path());
    let after = {
        let log = open(cleaned.path(), &config, &clock, PreviousShutdown::Clean);
        assert!(clean(&log, 1 << 20).segments_cleaned > 1);
        read_records(&log)
    };
    let first_cleaned: Vec<_> = after
        .iter()
        .filter(|(offset, _)| *offset < first_segment_end)
        .chain(
            before
                .iter()
                .filter(|(offset, _)| *offset >= first_segment_end),
        )
        .cloned()
        .collect();
    assert_ne!(
        first_cleaned, before,
        "cleaning the first segment removes records"
    );
    for steps in 0..swap::STEPS {
        for torn in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            copy_dir(original.path(), dir.path());
            {
                let log = open(dir.path(), &config, &clock, PreviousShutdown::Clean);
                set_swap_steps(steps);
                let crashed = log.clean(&CleanerSettings::default(), CleanTrigger::Now);
                set_swap_steps(swap::STEPS);
                assert!(crashed.is_err(), "steps {steps}");
                assert!(
                    log.append(
                        &keyed_batch(&[(b"x".to_vec(), None)], Compression::None),
                        EPOCH
                    )
                    .is_err(),
                    "a log whose swap failed is stopped"
                );
            }
            if torn {
                // A torn write of a file not yet fsynced: cut it short.
                let cleaned_log = dir
                    .path()
                    .join(format!("{:020}.log{}", 0, swap::CLEANED_SUFFIX));
                if let Ok(file) = std::fs::OpenOptions::new().write(true).open(&cleaned_log) {
                    let length = file.metadata().unwrap().len();
                    file.set_len(length / 2).unwrap();
                }
            }
            let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
            let reopened = read_records(&log);
            let expected = if steps < 3 { &before } else { &first_cleaned };
            assert_eq!(
                &reopened, expected,
                "crash after {steps} swap steps (torn: {torn})"
            );
            assert!(leftover_swap_files(dir.path()).is_empty(), "steps {steps}");
            // And cleaning again finishes the job.
            clean(&log, 1 << 20);
            assert_eq!(read_records(&log), after, "steps {steps}");
        }
    }
}

#[test]
fn tombstones_go_delete_retention_ms_after_their_segment_was_first_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        delete_retention_ms: 1_000,
        ..config()
    };
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    let entries: Vec<Entry> = vec![
        (b"gone".to_vec(), Some(b"v0".to_vec())),
        (b"kept".to_vec(), Some(b"v1".to_vec())),
        (b"gone".to_vec(), None),
    ];
    log.append(&keyed_batch(&entries, Compression::None), EPOCH)
        .unwrap();
    log.roll().unwrap();
    log.advance_high_watermark(log.log_end_offset());
    let settings = CleanerSettings::default();
    let first = log.clean(&settings, CleanTrigger::WhenDue).unwrap();
    assert_eq!(first.segments_cleaned, 1, "everything is dirty");
    let held = |log: &PartitionLog| -> Vec<(i64, Entry)> {
        read_records(log)
            .into_iter()
            .map(|(offset, entry)| (offset.0, entry))
            .collect()
    };
    let with_tombstone = vec![
        (1, (b"kept".to_vec(), Some(b"v1".to_vec()))),
        (2, (b"gone".to_vec(), None)),
    ];
    assert_eq!(
        held(&log),
        with_tombstone,
        "the older value goes, the tombstone stays"
    );
    clock.advance_ms(999);
    assert_eq!(
        log.clean(&settings, CleanTrigger::WhenDue)
            .unwrap()
            .segments_cleaned,
        0
    );
    log.clean(&settings, CleanTrigger::Now).unwrap();
    assert_eq!(held(&log), with_tombstone, "not yet due");
    // Reopened, the cleaning time is remembered.
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Clean);
    clock.advance_ms(1);
    let due = log.clean(&settings, CleanTrigger::WhenDue).unwrap();
    assert_eq!(
        (due.segments_cleaned, due.tombstones_removed),
        (1, 1),
        "due tombstones start a pass"
    );
    assert_eq!(
        held(&log),
        vec![(1, (b"kept".to_vec(), Some(b"v1".to_vec())))]
    );
    assert_eq!(log.log_end_offset(), Offset(3), "offsets never change");
    assert_eq!(
        log.clean(&settings, CleanTrigger::WhenDue)
            .unwrap()
            .segments_cleaned,
        0
    );
}

#[test]
fn nothing_at_or_above_the_high_watermark_or_in_the_active_segment_is_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let log = build_log(dir.path(), &config(), &clock);
    let all = read_records(&log);
    // The log was committed up to its end; pretend only the first batch was.
    let dir2 = tempfile::tempdir().unwrap();
    let log2 = open(dir2.path(), &config(), &clock, PreviousShutdown::Crashed);
    for (_, entry) in &all {
        log2.append(
            &keyed_batch(std::slice::from_ref(entry), Compression::None),
            EPOCH,
        )
        .unwrap();
    }
    log2.advance_high_watermark(Offset(3));
    assert_eq!(
        clean(&log2, 1 << 20).segments_cleaned,
        0,
        "no sealed segment is committed"
    );
    assert_eq!(read_records(&log2).len(), all.len());
    // Uncommitted past the HW, and the active segment: untouched even when committed.
    log.advance_high_watermark(log.log_end_offset());
    let entries = vec![(b"k\x00".to_vec(), Some(b"newest".to_vec()))];
    log.append(&keyed_batch(&entries, Compression::None), EPOCH)
        .unwrap();
    clean(&log, 1 << 20);
    let held = read_records(&log);
    assert_eq!(held.last().unwrap().1, entries[0]);
    assert!(
        held.iter()
            .any(|(_, (key, value))| key == b"k\x00" && value.as_deref() == Some(&b"r29-0"[..])),
        "the value superseded only in the active segment stays"
    );
}

#[test]
fn followers_copy_a_cleaned_leader_before_and_after_it_was_cleaned() {
    let clock = ManualClock::new(NOW_MS);
    let config = config();
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = build_log(leader_dir.path(), &config, &clock);
    // One follower fetched half the log before the leader cleaned, one fetches it all after.
    let half = Offset(leader.log_end_offset().0 / 2);
    let early_dir = tempfile::tempdir().unwrap();
    let early = open(early_dir.path(), &config, &clock, PreviousShutdown::Crashed);
    let bytes = read_bytes_from(&leader, Offset(0));
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let header = BatchHeader::parse(rest).unwrap();
        if header.base_offset >= half {
            break;
        }
        early
            .append_as_follower(&rest[..header.total_bytes()])
            .unwrap();
        rest = &rest[header.total_bytes()..];
    }
    assert!(clean(&leader, 1 << 20).records_removed > 0);
    let fetched = read_bytes_from(&leader, early.log_end_offset());
    early.append_as_follower(&fetched).unwrap();
    let late_dir = tempfile::tempdir().unwrap();
    let late = open(late_dir.path(), &config, &clock, PreviousShutdown::Crashed);
    late.append_as_follower(&read_bytes_from(&leader, Offset(0)))
        .unwrap();
    assert_eq!(read_records(&late), read_records(&leader));
    assert_eq!(early.log_end_offset(), leader.log_end_offset());
    // Each replica cleans its own copy; they end with the same records.
    for follower in [&early, &late] {
        follower.set_high_watermark(follower.log_end_offset());
        follower.roll().unwrap();
        clean(follower, 1 << 20);
    }
    assert_eq!(read_records(&early), read_records(&leader));
    assert_eq!(read_records(&late), read_records(&leader));
}

#[test]
fn a_log_that_is_not_compacted_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = LogConfig {
        cleanup_policy: CleanupPolicy::Delete,
        ..config()
    };
    let log = build_log(dir.path(), &config, &clock);
    let before = read_records(&log);
    assert_eq!(clean(&log, 1 << 20).segments_cleaned, 0);
    assert_eq!(read_records(&log), before);
    assert!(!dir
        .path()
        .join(super::cleaner::CleanerState::FILE_NAME)
        .exists());
}
