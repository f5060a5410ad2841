//! Repairing a damaged log from its valid prefix (`repair.rs`, `LogManager::repair`): a
//! byte flipped or a file cut at several places of several segments (sealed and active),
//! a segment deleted from the middle, and a log shorter than its checkpoint. After each
//! repair the log is online and holds exactly the batches before the damage (offsets,
//! values, leader epochs), nothing later is left in its directory, the damaged part is
//! kept aside, the checkpoint promises no more than the log holds, a reopen (clean or
//! after a crash) finds no damage, and appending the leader's batches from the new end as
//! a follower gives back the whole log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_proto::record::BatchHeader;
use strata_proto::types::{LeaderEpoch, Offset, PartitionId, TopicName};

use super::checkpoint::PartitionCheckpoint;
use super::manager::DAMAGED_INFIX;
use super::repair::cut_to_valid_prefix;
use super::segment::segment_file_name;
use super::test_support::{read_all, read_bytes_from, small_config, tagged_batch};
use super::{LogManager, ManualClock, PartitionLog, TopicPartition};

const NOW_MS: i64 = 1_700_000_000_000;
const BATCHES: usize = 80;

fn partition() -> TopicPartition {
    TopicPartition::new(TopicName::new("t").unwrap(), PartitionId(0))
}

fn manager(data: &Path) -> LogManager {
    let clock = ManualClock::new(NOW_MS);
    LogManager::open(data, small_config(), Arc::new(clock)).unwrap()
}

/// One batch as stored: its segment, byte position and offsets.
#[derive(Debug, Clone)]
struct StoredBatch {
    segment: Offset,
    position: u64,
    size: u64,
    base_offset: Offset,
    epoch: LeaderEpoch,
}

/// What the writer left: the log's bytes as a leader would send them, and every batch.
struct Original {
    bytes: Vec<u8>,
    batches: Vec<StoredBatch>,
    values: Vec<(Offset, Vec<u8>)>,
    end: Offset,
}

/// Writes `BATCHES` batches of 3 records at a leader epoch that goes up every 7 batches,
/// into small segments, and crashes (no clean close: recovery scans from offset 0, so
/// damage in any segment is found at the next open).
fn write_log(data: &Path) -> Original {
    let manager = manager(data);
    let log = manager.get_or_create(&partition(), None).unwrap();
    for i in 0..BATCHES {
        let epoch = LeaderEpoch(i32::try_from(i / 7).unwrap());
        log.append(&tagged_batch(&format!("b{i}"), 3, NOW_MS), epoch)
            .unwrap();
    }
    assert!(log.segment_count() >= 5, "several segments are sealed");
    let original = Original {
        bytes: read_bytes_from(&log, Offset(0)),
        batches: stored_batches(log.dir()),
        values: read_all(&log),
        end: log.log_end_offset(),
    };
    drop(log);
    drop(manager);
    original
}

/// Every batch of every segment in `dir`, in offset order.
fn stored_batches(dir: &Path) -> Vec<StoredBatch> {
    let mut bases: Vec<Offset> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log")?.parse().ok().map(Offset)
        })
        .collect();
    bases.sort();
    let mut batches = Vec::new();
    for segment in bases {
        let bytes = fs::read(dir.join(segment_file_name(segment, "log"))).unwrap();
        let mut position = 0;
        while let Some(rest) = bytes.get(position..).filter(|rest| !rest.is_empty()) {
            if rest.iter().all(|byte| *byte == 0) {
                break; // the zero padding direct I/O leaves after the last batch
            }
            let header = BatchHeader::parse(rest).unwrap();
            batches.push(StoredBatch {
                segment,
                position: position as u64,
                size: header.total_bytes() as u64,
                base_offset: header.base_offset,
                epoch: header.partition_leader_epoch,
            });
            position += header.total_bytes();
        }
    }
    batches
}

fn segment_path(data: &Path, segment: Offset) -> PathBuf {
    data.join(partition().dir_name())
        .join(segment_file_name(segment, "log"))
}

fn flip(path: &Path, position: u64) {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, position).unwrap();
    file.write_all_at(&[byte[0] ^ 0x5a], position).unwrap();
}

/// Where in a batch to damage it.
#[derive(Debug, Clone, Copy)]
enum Spot {
    /// A byte of its base offset (not covered by the CRC: caught by the offset check).
    BaseOffset,
    /// A byte in the middle of its records (the CRC).
    Records,
    /// Its last byte.
    LastByte,
    /// The file is cut in the middle of it.
    Cut,
}

fn damage(data: &Path, batch: &StoredBatch, spot: Spot) {
    let path = segment_path(data, batch.segment);
    match spot {
        Spot::BaseOffset => flip(&path, batch.position + 7),
        Spot::Records => flip(&path, batch.position + batch.size / 2 + 30),
        Spot::LastByte => flip(&path, batch.position + batch.size - 1),
        Spot::Cut => {
            let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(batch.position + batch.size / 2).unwrap();
        }
    }
}

/// The epochs `(epoch, start)` of `batches` before `end`.
fn epochs_before(batches: &[StoredBatch], end: Offset) -> Vec<(LeaderEpoch, Offset)> {
    let mut epochs: Vec<(LeaderEpoch, Offset)> = Vec::new();
    for batch in batches.iter().filter(|batch| batch.base_offset < end) {
        if epochs.last().is_none_or(|(epoch, _)| *epoch < batch.epoch) {
            epochs.push((batch.epoch, batch.base_offset));
        }
    }
    epochs
}

/// Repairs the (offline) partition in `data` and checks everything the module docs
/// promise, for a valid prefix ending at `end`.
fn repair_and_check(data: &Path, original: &Original, end: Offset, what: &str) {
    let logs = manager(data);
    let offline = logs.get(&partition()).unwrap();
    assert!(offline.is_offline(), "{what}: the damage is found at open");
    drop(offline);
    let repaired = logs.repair(&partition()).unwrap().expect("repaired");
    let log = Arc::clone(&repaired.log);
    assert!(!log.is_offline(), "{what}");
    assert_eq!(
        log.log_end_offset(),
        end,
        "{what}: cut at the last good batch"
    );
    assert_eq!(repaired.report.log_end_offset, end, "{what}");
    let prefix: Vec<_> = original
        .values
        .iter()
        .filter(|(offset, _)| *offset < end)
        .cloned()
        .collect();
    assert_eq!(read_all(&log), prefix, "{what}: exactly the valid prefix");
    assert_eq!(
        log.leader_epochs(),
        epochs_before(&original.batches, end),
        "{what}: the epoch cache ends at the cut"
    );
    let checkpoint = PartitionCheckpoint::load(log.dir()).unwrap().unwrap();
    assert!(checkpoint.recovery_point <= end, "{what}: {checkpoint:?}");
    assert!(checkpoint.high_watermark <= end, "{what}: {checkpoint:?}");
    // Nothing beyond the cut is left in the directory; what was cut is kept aside.
    let left = stored_batches(log.dir());
    assert!(left.iter().all(|batch| batch.base_offset < end), "{what}");
    match (&repaired.report.damage, &repaired.aside) {
        (Some(_), Some(aside)) => {
            let name = aside.file_name().unwrap().to_str().unwrap();
            assert!(name.contains(DAMAGED_INFIX), "{what}: {name}");
            assert!(fs::read_dir(aside).unwrap().count() > 0, "{what}");
        }
        (None, None) => {}
        other => panic!("{what}: damage and set-aside part disagree: {other:?}"),
    }
    // A full scan finds no damage now.
    let again = cut_to_valid_prefix(log.dir(), &small_config(), &data.join("unused")).unwrap();
    assert_eq!(again.damage, None, "{what}");
    assert_eq!(again.log_end_offset, end, "{what}");
    // The leader's batches from the new end make it whole again, as a follower.
    let missing = leader_bytes_from(original, end);
    if !missing.is_empty() {
        log.append_as_follower(&missing).unwrap();
    }
    assert_eq!(log.log_end_offset(), original.end, "{what}");
    assert_eq!(read_all(&log), original.values, "{what}: whole again");
    assert_eq!(
        read_bytes_from(&log, Offset(0)),
        original.bytes,
        "{what}: byte for byte"
    );
    drop(log);
    drop(repaired);
    logs.close().unwrap();
    drop(logs);
    // Opened again (clean, then as after a crash): online, same contents.
    for crash in [false, true] {
        if crash {
            let _ = fs::remove_file(data.join(super::manager::CLEAN_SHUTDOWN_FILE));
        }
        let reopened = manager(data);
        let log = reopened.get(&partition()).unwrap();
        assert!(!log.is_offline(), "{what}: reopened (crash: {crash})");
        assert_eq!(read_all(&log), original.values, "{what}");
        drop(log);
        if !crash {
            reopened.close().unwrap();
        }
    }
}

/// The original log's batches from `end` on, laid end to end.
fn leader_bytes_from(original: &Original, end: Offset) -> Vec<u8> {
    let mut position = 0;
    let mut bytes = &original.bytes[..];
    while let Ok(header) = BatchHeader::parse(bytes) {
        if header.base_offset >= end {
            break;
        }
        position += header.total_bytes();
        bytes = &original.bytes[position..];
    }
    bytes.to_vec()
}

/// Damage in each of several batches (first of a sealed segment, middle, last of a
/// sealed segment, in the active segment) at each spot: the repair cuts right before the
/// damaged batch.
#[test]
fn damage_anywhere_is_cut_at_the_last_good_batch_before_it() {
    let probe = tempfile::tempdir().unwrap();
    let batches = write_log(probe.path()).batches;
    let segments: Vec<Offset> = {
        let mut segments: Vec<Offset> = batches.iter().map(|batch| batch.segment).collect();
        segments.dedup();
        segments
    };
    let second = segments[1];
    let middle = segments[segments.len() / 2];
    let active = *segments.last().unwrap();
    let in_segment = |segment: Offset| -> Vec<usize> {
        (0..batches.len())
            .filter(|index| batches[*index].segment == segment)
            .collect()
    };
    let targets = [
        (0, "the very first batch"),
        (in_segment(second)[0], "the first batch of a sealed segment"),
        (in_segment(middle)[1], "a batch inside a sealed segment"),
        (
            *in_segment(middle).last().unwrap(),
            "the last batch of a sealed segment",
        ),
        (
            in_segment(active)[0],
            "the first batch of the active segment",
        ),
    ];
    for (index, where_) in targets {
        for spot in [Spot::BaseOffset, Spot::Records, Spot::LastByte, Spot::Cut] {
            if matches!(spot, Spot::Cut) && batches[index].segment == active {
                continue; // a torn tail: recovery cuts it, nothing is offline
            }
            let data = tempfile::tempdir().unwrap();
            let original = write_log(data.path());
            let target = &original.batches[index];
            damage(data.path(), target, spot);
            let what = format!("{spot:?} in {where_} (offset {})", target.base_offset);
            repair_and_check(data.path(), &original, target.base_offset, &what);
        }
    }
}

/// A segment deleted from the middle: the log is cut where the gap begins, and the later
/// segments are moved aside.
#[test]
fn a_missing_middle_segment_cuts_the_log_where_the_gap_begins() {
    let data = tempfile::tempdir().unwrap();
    let original = write_log(data.path());
    let mut segments: Vec<Offset> = original.batches.iter().map(|batch| batch.segment).collect();
    segments.dedup();
    let gone = segments[2];
    let dir = data.path().join(partition().dir_name());
    for extension in ["log", "index", "timeindex"] {
        fs::remove_file(dir.join(segment_file_name(gone, extension))).unwrap();
    }
    repair_and_check(data.path(), &original, gone, "a deleted middle segment");
    let asides: Vec<PathBuf> = fs::read_dir(data.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_str().unwrap().contains(DAMAGED_INFIX))
        .collect();
    assert_eq!(asides.len(), 1);
    let moved = fs::read_dir(&asides[0]).unwrap().count();
    assert_eq!(
        moved,
        3 * (segments.len() - 3),
        "every later segment moved, three files each"
    );
}

/// Damage found by the scan in an online log does not exist for `repair`: it only repairs
/// offline logs, and leaves an online one alone.
#[test]
fn an_online_log_is_not_repaired() {
    let data = tempfile::tempdir().unwrap();
    let original = write_log(data.path());
    let manager = manager(data.path());
    assert!(manager.repair(&partition()).unwrap().is_none());
    let log: Arc<PartitionLog> = manager.get(&partition()).unwrap();
    assert_eq!(read_all(&log), original.values);
}

/// A log that ends below what its checkpoint promised (its last batches gone at a batch
/// boundary) holds no bad batch: the repair cuts nothing, lowers the checkpoint, and the
/// leader's batches fill the rest.
#[test]
fn a_log_shorter_than_its_checkpoint_is_repaired_without_a_cut() {
    let data = tempfile::tempdir().unwrap();
    let original = write_log(data.path());
    let manager = manager(data.path());
    manager.close().unwrap();
    drop(manager);
    let last = original.batches.last().unwrap().clone();
    let file = fs::OpenOptions::new()
        .write(true)
        .open(segment_path(data.path(), last.segment))
        .unwrap();
    file.set_len(last.position).unwrap();
    repair_and_check(
        data.path(),
        &original,
        last.base_offset,
        "a log shorter than its checkpoint",
    );
}
