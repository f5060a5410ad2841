//! The leader-epoch cache survives the loss of its file. A log with several segments and
//! several epochs is closed cleanly or not, with or without its partition checkpoint
//! (the recovery point), its `leader-epoch.checkpoint` deleted or damaged, and reopened:
//! every epoch and every `end_offset_for_epoch` answer must be what it was, and the file
//! must be written back. A missing file is not an empty cache while the log holds
//! batches: each batch header carries its epoch, and recovery reads them all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;

use strata_proto::types::{LeaderEpoch, Offset};

use super::checkpoint::PartitionCheckpoint;
use super::leader_epoch_cache::LeaderEpochCache;
use super::segment::segment_file_name;
use super::test_support::{open, read_all, small_config, tagged_batch};
use super::{LogConfig, LogError, ManualClock, PartitionLog, PreviousShutdown};

const NOW_MS: i64 = 1_700_000_000_000;
/// Epochs 0, 1 and 2 wrote; 3 never did (its answer is "undefined").
const EPOCHS_ASKED: [i32; 4] = [0, 1, 2, 3];

/// How the writer stopped, and what is left of its partition checkpoint.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// `close()` and the clean-shutdown marker; checkpoint at the log end.
    Clean,
    /// The marker, but the partition checkpoint is gone.
    CleanWithoutCheckpoint,
    /// A crash after a checkpoint at the log end: only the last segment is scanned.
    CrashAfterCheckpoint,
    /// A crash, and the partition checkpoint is gone: everything is scanned.
    CrashWithoutCheckpoint,
}

impl Ending {
    const ALL: [Ending; 4] = [
        Ending::Clean,
        Ending::CleanWithoutCheckpoint,
        Ending::CrashAfterCheckpoint,
        Ending::CrashWithoutCheckpoint,
    ];

    fn previous(self) -> PreviousShutdown {
        match self {
            Ending::Clean | Ending::CleanWithoutCheckpoint => PreviousShutdown::Clean,
            Ending::CrashAfterCheckpoint | Ending::CrashWithoutCheckpoint => {
                PreviousShutdown::Crashed
            }
        }
    }

    fn keeps_checkpoint(self) -> bool {
        matches!(self, Ending::Clean | Ending::CrashAfterCheckpoint)
    }
}

/// What happens to `leader-epoch.checkpoint` while the log is down.
#[derive(Debug, Clone, Copy)]
enum EpochFile {
    Deleted,
    Damaged,
}

/// What the log answered about its epochs before it stopped.
#[derive(Debug, PartialEq, Eq)]
struct EpochAnswers {
    entries: Vec<(LeaderEpoch, Offset)>,
    end_offsets: Vec<Option<(LeaderEpoch, Offset)>>,
}

fn answers(log: &PartitionLog) -> EpochAnswers {
    EpochAnswers {
        entries: log.leader_epochs(),
        end_offsets: EPOCHS_ASKED
            .iter()
            .map(|epoch| log.end_offset_for_epoch(LeaderEpoch(*epoch)))
            .collect(),
    }
}

/// Epochs 0, 1, 2, twelve batches each: each epoch spans segment rolls, and two of the
/// epoch changes fall inside a segment.
fn write_three_epochs(log: &PartitionLog) {
    for epoch in 0..3 {
        for i in 0..12 {
            let batch = tagged_batch(&format!("e{epoch}-{i}"), 3, NOW_MS);
            log.append(&batch, LeaderEpoch(epoch)).unwrap();
        }
    }
}

fn stop(log: PartitionLog, dir: &Path, ending: Ending) {
    match ending.previous() {
        PreviousShutdown::Clean => log.close().unwrap(),
        PreviousShutdown::Crashed => log.checkpoint().unwrap(),
    }
    drop(log);
    if !ending.keeps_checkpoint() {
        fs::remove_file(dir.join(PartitionCheckpoint::FILE_NAME)).unwrap();
    }
}

fn lose_epoch_file(dir: &Path, epoch_file: EpochFile) {
    let path = dir.join(LeaderEpochCache::FILE_NAME);
    match epoch_file {
        EpochFile::Deleted => fs::remove_file(&path).unwrap(),
        EpochFile::Damaged => fs::write(&path, b"version 1\nentries 1\n0 0\ncrc 0\n").unwrap(),
    }
}

fn check_epochs_survive(config: &LogConfig, ending: Ending, epoch_file: EpochFile) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let log = open(dir.path(), config, &clock, PreviousShutdown::Crashed);
    write_three_epochs(&log);
    assert!(log.segment_count() >= 4, "{}", log.segment_count());
    let before = answers(&log);
    assert_eq!(before.entries.len(), 3);
    let records = read_all(&log);
    stop(log, dir.path(), ending);
    lose_epoch_file(dir.path(), epoch_file);

    let log = open(dir.path(), config, &clock, ending.previous());
    let context = format!("{ending:?}, epoch file {epoch_file:?}");
    assert_eq!(answers(&log), before, "{context}");
    assert_eq!(read_all(&log), records, "{context}");
    let report = log.recovery_report();
    assert!(report.rebuilt_files >= 1, "{context}");
    if ending.keeps_checkpoint() {
        // The scan is what the shutdown asks for; the other segments give headers only.
        let scanned = usize::from(ending.previous() == PreviousShutdown::Crashed);
        assert_eq!(report.segments_scanned, scanned, "{context}");
        assert_eq!(
            report.segments_read_for_epochs,
            report.segments - scanned,
            "{context}"
        );
    }
    // The rebuilt cache was written back: it loads, equal, without another rebuild.
    let stored = LeaderEpochCache::load(dir.path()).unwrap().unwrap();
    assert_eq!(stored.entries(), before.entries.as_slice(), "{context}");
    drop(log);
    let log = open(dir.path(), config, &clock, PreviousShutdown::Crashed);
    assert_eq!(answers(&log), before, "{context}, second reopen");
}

#[test]
fn a_deleted_epoch_file_after_a_clean_shutdown_is_rebuilt() {
    check_epochs_survive(&small_config(), Ending::Clean, EpochFile::Deleted);
}

#[test]
fn a_deleted_epoch_file_after_a_clean_shutdown_without_checkpoint_is_rebuilt() {
    let ending = Ending::CleanWithoutCheckpoint;
    check_epochs_survive(&small_config(), ending, EpochFile::Deleted);
}

#[test]
fn a_deleted_epoch_file_after_a_crash_is_rebuilt_from_before_the_recovery_point() {
    let ending = Ending::CrashAfterCheckpoint;
    check_epochs_survive(&small_config(), ending, EpochFile::Deleted);
}

#[test]
fn a_deleted_epoch_file_after_a_crash_without_checkpoint_is_rebuilt() {
    let ending = Ending::CrashWithoutCheckpoint;
    check_epochs_survive(&small_config(), ending, EpochFile::Deleted);
}

#[test]
fn a_damaged_epoch_file_is_rebuilt_from_every_segment() {
    for ending in Ending::ALL {
        check_epochs_survive(&small_config(), ending, EpochFile::Damaged);
    }
}

#[test]
fn a_clean_reopen_with_the_epoch_file_scans_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = small_config();
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    write_three_epochs(&log);
    let before = answers(&log);
    log.close().unwrap();
    drop(log);

    let log = open(dir.path(), &config, &clock, PreviousShutdown::Clean);
    assert_eq!(answers(&log), before);
    assert_eq!(log.recovery_report().segments_scanned, 0);
    assert_eq!(log.recovery_report().rebuilt_files, 0);
}

#[test]
fn a_new_partition_without_an_epoch_file_has_no_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = small_config();
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    log.close().unwrap();
    drop(log);
    fs::remove_file(dir.path().join(LeaderEpochCache::FILE_NAME)).unwrap();

    let log = open(dir.path(), &config, &clock, PreviousShutdown::Clean);
    assert!(log.leader_epochs().is_empty());
    assert_eq!(log.end_offset_for_epoch(LeaderEpoch(0)), None);
    assert_eq!(log.recovery_report().rebuilt_files, 0);
}

#[test]
fn an_epoch_going_down_in_a_segment_read_for_epochs_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW_MS);
    let config = small_config();
    let log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
    write_three_epochs(&log);
    log.close().unwrap();
    drop(log);
    lose_epoch_file(dir.path(), EpochFile::Deleted);
    // The CRC leaves the epoch out: raise the first batch's epoch above the second's.
    let first_segment = dir.path().join(segment_file_name(Offset(0), "log"));
    let mut bytes = fs::read(&first_segment).unwrap();
    bytes[12..16].copy_from_slice(&1_i32.to_be_bytes());
    fs::write(&first_segment, bytes).unwrap();

    let result = PartitionLog::open(
        dir.path(),
        config,
        std::sync::Arc::new(clock),
        PreviousShutdown::Clean,
    );
    assert!(
        matches!(result, Err(LogError::Corruption { ref path, .. }) if *path == first_segment),
        "{:?}",
        result.err()
    );
}
