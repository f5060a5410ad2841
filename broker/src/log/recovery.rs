//! Opening a partition directory: find the segments, load the checkpoints, and recover
//! after a crash, checking the files against what the log promised before it stopped.
//!
//! - After a clean shutdown (the log manager found its marker) nothing is scanned. Every
//!   segment gets the cheap check (`Segment::load_tail`, `Segment::check_time_index`): its
//!   first batch starts at its base offset, the batches after its last index entry follow
//!   each other to the end of the file, and its indexes agree with the batches.
//! - After a crash, every segment from the one holding the checkpointed recovery point to
//!   the end is scanned batch by batch (framing, CRC, expected base offset, leader epoch
//!   not decreasing) and its indexes are rebuilt; the segments before it get the cheap
//!   check. A bad batch in the *active* segment at or beyond the recovery point, with no
//!   intact batch after it, is a torn tail: the file is cut there, fsynced, and the cut is
//!   counted. A bad batch in a sealed segment, before the recovery point, or followed by an
//!   intact batch is corruption: opening fails with [`LogError::Corruption`] naming file
//!   and position, and nothing is truncated.
//! - A segment that fails the cheap check is rescanned; being durable, a bad batch in it is
//!   corruption. Each segment must end where the next begins
//!   ([`LogError::SegmentsDoNotMeet`]), and the recovered log must reach the checkpoint's
//!   recovery point and high watermark ([`LogError::EndBelowCheckpoint`]): a log shorter
//!   than promised lost data, it is not a shorter log. The log manager keeps a log that
//!   fails so offline (`partition_log/offline.rs`).
//! - A damaged checkpoint is rebuildable: it is ignored and everything is scanned (without
//!   a checkpoint there are no promises to check). A damaged index is rebuilt from its
//!   segment, never trusted.
//! - A damaged leader-epoch cache, or a missing one while the log holds batches, is
//!   rebuilt from every segment, not from the scanned ones alone: the segments recovery
//!   does not scan give their epochs from their batch headers
//!   (`Segment::epoch_starts`, no CRC), the scanned ones from the scan. Which segments
//!   are scanned does not change, so a clean shutdown still scans nothing. The rebuilt
//!   cache is stored.
//! - A cleaned segment that a crash left half swapped in (`<base>.*.cleaned` / `.swap`
//!   files, `cleaner/swap.rs`) is finished when its `.log.swap` was complete, else its
//!   files are deleted, before the segments are listed: the log holds the old segment or
//!   the cleaned one, never both.
//! - The recovered active segment is fsynced, so the whole recovered log is durable.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use strata_proto::types::{LeaderEpoch, Offset};

use super::checkpoint::PartitionCheckpoint;
use super::cleaner;
use super::config::LogConfig;
use super::error::{LogError, LogResult};
use super::leader_epoch_cache::LeaderEpochCache;
use super::open_segments::OpenSegments;
use super::partition_log::LogState;
use super::segment::{ScanStop, Segment, SegmentScan};

/// How the process that last wrote the directory ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviousShutdown {
    /// The clean-shutdown marker was present: skip the scan.
    Clean,
    /// No marker: scan from the recovery point.
    Crashed,
}

/// What recovery did, for logs and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    pub segments_scanned: usize,
    /// Bytes cut from a torn tail (`strata_log_recovery_truncated_bytes_total`).
    pub truncated_bytes: u64,
    /// Indexes or checkpoints that were damaged (or missing) and rebuilt.
    pub rebuilt_files: usize,
    /// Segments not scanned whose batch headers were read to rebuild the epoch cache.
    pub segments_read_for_epochs: usize,
    pub log_end_offset: Offset,
}

/// Base offsets of the `<base:020>.log` files in `dir`, ascending. Stray temp files from a
/// checkpoint interrupted by a crash are removed.
pub(super) fn list_segments(dir: &Path) -> LogResult<Vec<Offset>> {
    let mut bases = Vec::new();
    let entries = fs::read_dir(dir)
        .map_err(|source| LogError::io("list partition directory", dir, source))?;
    for entry in entries {
        let entry =
            entry.map_err(|source| LogError::io("list partition directory", dir, source))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            let path = entry.path();
            fs::remove_file(&path)
                .map_err(|source| LogError::io("remove stale temp file", &path, source))?;
            continue;
        }
        if let Some(stem) = name.strip_suffix(".log") {
            if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(base) = stem.parse::<i64>() {
                    bases.push(Offset(base));
                }
            }
        }
    }
    bases.sort();
    Ok(bases)
}

/// What recovery scans and how it classifies damage, decided from the shutdown marker and
/// the checkpoints.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Nothing is scanned (clean shutdown, checkpoints intact).
    clean: bool,
    /// Segments from this base on are scanned; the others get the cheap check.
    scan_from: Option<Offset>,
    /// The flushed point: damage below it is corruption, never a torn tail.
    recovery_point: Offset,
    /// The epoch cache is rebuilt: the segments not scanned give their epochs too.
    rebuild_epochs: bool,
}

impl Plan {
    fn new(
        segments: &BTreeMap<Offset, Segment>,
        checkpoint: Option<&PartitionCheckpoint>,
        previous: PreviousShutdown,
        rebuild_epochs: bool,
    ) -> Plan {
        let first_base = segments.keys().next().copied().unwrap_or_default();
        // The flushed point comes from the partition checkpoint alone; a lost epoch cache
        // must not turn damage in flushed data into a "torn tail".
        let recovery_point = checkpoint.map_or(first_base, |checkpoint| checkpoint.recovery_point);
        let clean = previous == PreviousShutdown::Clean && checkpoint.is_some();
        let scan_from = if clean {
            None
        } else {
            Some(
                segments
                    .range(..=recovery_point)
                    .next_back()
                    .map_or(first_base, |(base, _)| *base),
            )
        };
        Plan {
            clean,
            scan_from,
            recovery_point,
            rebuild_epochs,
        }
    }
}

/// Opens the log in `dir` (created if missing) and recovers it. See the module docs.
pub(crate) fn recover(
    dir: &Path,
    config: &LogConfig,
    now_ms: i64,
    previous: PreviousShutdown,
    open_segments: &OpenSegments,
) -> LogResult<(LogState, RecoveryReport)> {
    fs::create_dir_all(dir)
        .map_err(|source| LogError::io("create partition directory", dir, source))?;
    let mut report = RecoveryReport::default();
    // A cleaned segment half swapped in is finished (or dropped) before any is listed.
    cleaner::swap::recover(dir)?;
    let checkpoint = load_checkpoint(dir, &mut report)?;
    let loaded_epochs = load_epochs(dir, &mut report)?;
    let mut segments = list_and_open_segments(dir, checkpoint.as_ref(), config, open_segments)?;
    report.segments = segments.len();
    let (mut epochs, rebuild_epochs) =
        epochs_to_recover(dir, loaded_epochs, &segments, &mut report);
    let plan = Plan::new(&segments, checkpoint.as_ref(), previous, rebuild_epochs);
    recover_segments(&mut segments, config, &plan, &mut epochs, &mut report)?;
    if rebuild_epochs {
        tracing::info!(
            dir = %dir.display(),
            segments_scanned = report.segments_scanned,
            segments_read_for_epochs = report.segments_read_for_epochs,
            epochs = epochs.entries().len(),
            "rebuilt the leader-epoch cache from every segment"
        );
    }

    let active = segments
        .values_mut()
        .next_back()
        .ok_or_else(|| LogError::Stopped {
            path: dir.to_path_buf(),
            reason: "no segment after recovery".into(),
        })?;
    let log_end_offset = active.next_offset();
    check_promises(dir, checkpoint.as_ref(), log_end_offset)?;
    active.note_reopened(now_ms);
    if !plan.clean {
        active.sync()?;
    }
    if epochs.truncate_from_end(log_end_offset) || rebuild_epochs || report.segments_scanned > 0 {
        epochs.store()?;
    }
    let first_base = segments.keys().next().copied().unwrap_or_default();
    let log_start_offset = checkpoint
        .map_or(first_base, |checkpoint| checkpoint.log_start_offset)
        .max(first_base)
        .min(log_end_offset);
    let high_watermark = checkpoint
        .map_or(log_start_offset, |checkpoint| checkpoint.high_watermark)
        .clamp(log_start_offset, log_end_offset);
    report.log_end_offset = log_end_offset;
    super::metrics::recovery_truncated(report.truncated_bytes);
    if report.truncated_bytes > 0 || report.rebuilt_files > 0 {
        tracing::info!(dir = %dir.display(), ?report, "recovered partition log");
    }
    let state = LogState {
        segments,
        log_start_offset,
        log_end_offset,
        high_watermark,
        epochs,
        closed: false,
    };
    Ok((state, report))
}

/// The partition checkpoint, or `None` when it is missing or damaged (a damaged one is
/// counted as rebuilt: everything is scanned instead).
fn load_checkpoint(
    dir: &Path,
    report: &mut RecoveryReport,
) -> LogResult<Option<PartitionCheckpoint>> {
    match PartitionCheckpoint::load(dir) {
        Ok(checkpoint) => Ok(checkpoint),
        Err(LogError::BadAuxiliaryFile { path, reason }) => {
            tracing::warn!(path = %path.display(), %reason, "damaged checkpoint; scanning the whole log");
            report.rebuilt_files += 1;
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// What `leader-epoch.checkpoint` held.
enum LoadedEpochs {
    Valid(LeaderEpochCache),
    Missing,
    /// Damaged (warned about and counted in `rebuilt_files`).
    Damaged,
}

fn load_epochs(dir: &Path, report: &mut RecoveryReport) -> LogResult<LoadedEpochs> {
    match LeaderEpochCache::load(dir) {
        Ok(Some(epochs)) => Ok(LoadedEpochs::Valid(epochs)),
        Ok(None) => Ok(LoadedEpochs::Missing),
        Err(LogError::BadAuxiliaryFile { path, reason }) => {
            tracing::warn!(path = %path.display(), %reason, "damaged leader-epoch cache; rebuilding it from the log");
            report.rebuilt_files += 1;
            Ok(LoadedEpochs::Damaged)
        }
        Err(error) => Err(error),
    }
}

/// The cache recovery starts from, and whether it must be rebuilt from every segment: a
/// valid file is trusted (recovery adds the epochs of what it scans); a damaged one is
/// not; a missing one is an empty cache only for a log without batches (a new partition),
/// otherwise it was lost, and taking it for empty would lose every epoch before the
/// recovery point.
fn epochs_to_recover(
    dir: &Path,
    loaded: LoadedEpochs,
    segments: &BTreeMap<Offset, Segment>,
    report: &mut RecoveryReport,
) -> (LeaderEpochCache, bool) {
    match loaded {
        LoadedEpochs::Valid(epochs) => (epochs, false),
        LoadedEpochs::Damaged => (LeaderEpochCache::empty(dir), true),
        LoadedEpochs::Missing => {
            let holds_batches = segments.values().any(|segment| segment.size_bytes() > 0);
            if holds_batches {
                tracing::warn!(dir = %dir.display(), "leader-epoch cache missing; rebuilding it from the log");
                report.rebuilt_files += 1;
            }
            (LeaderEpochCache::empty(dir), holds_batches)
        }
    }
}

/// Opens every segment: all but the last sealed (their files are opened one at a time by
/// the checks below, and kept only while the cache has room), the last active. A
/// directory without any gets one empty segment, at the end its checkpoint promised (so no
/// offset below it is handed out again), or at 0 for a new partition.
fn list_and_open_segments(
    dir: &Path,
    checkpoint: Option<&PartitionCheckpoint>,
    config: &LogConfig,
    cache: &OpenSegments,
) -> LogResult<BTreeMap<Offset, Segment>> {
    let bases = list_segments(dir)?;
    let mut segments = BTreeMap::new();
    for pair in bases.windows(2) {
        if let [base, next] = pair {
            segments.insert(
                *base,
                Segment::open_sealed(dir, *base, *next, config, cache)?,
            );
        }
    }
    if let Some(last) = bases.last() {
        segments.insert(*last, Segment::open(dir, *last, config, cache)?);
    } else {
        let base = checkpoint.map_or(Offset(0), |checkpoint| {
            checkpoint
                .log_start_offset
                .max(checkpoint.recovery_point)
                .max(checkpoint.high_watermark)
        });
        if base > Offset(0) {
            tracing::warn!(
                dir = %dir.display(), %base,
                "no segment files; the log starts again, empty, where its checkpoint says it ended"
            );
        }
        segments.insert(base, Segment::create(dir, base, config, cache)?);
    }
    Ok(segments)
}

/// Scans or checks every segment in offset order (see the module docs), and checks that
/// each ends where the next one starts.
fn recover_segments(
    segments: &mut BTreeMap<Offset, Segment>,
    config: &LogConfig,
    plan: &Plan,
    epochs: &mut LeaderEpochCache,
    report: &mut RecoveryReport,
) -> LogResult<()> {
    let bases: Vec<Offset> = segments.keys().copied().collect();
    let mut last_epoch = None;
    for (index, base) in bases.iter().enumerate() {
        let Some(segment) = segments.get_mut(base) else {
            continue;
        };
        let next_base = bases.get(index + 1).copied();
        let mut scan = SegmentRecovery {
            config,
            previous_epoch: last_epoch,
            is_last: next_base.is_none(),
            recovery_point: plan.recovery_point,
        };
        if plan.scan_from.is_some_and(|from| *base >= from) {
            report.segments_scanned += 1;
            last_epoch = scan.run(segment, epochs, report)?;
        } else if let Err(error) = check_unscanned(segment, config) {
            // Not scanned because it was fsynced (sealed, or closed cleanly): a bad batch
            // found while rebuilding its indexes is corruption, never a tail to cut.
            tracing::warn!(path = %segment.log_path().display(), %error, "segment fails its check; rebuilding its indexes from a scan");
            report.rebuilt_files += 1;
            scan.recovery_point = Offset(i64::MAX);
            last_epoch = scan.run(segment, epochs, report)?;
        } else if plan.rebuild_epochs {
            // Segments are visited in offset order, so the cache's latest epoch is the one
            // of the batch before this segment.
            report.segments_read_for_epochs += 1;
            let previous = epochs.latest().map(|(epoch, _)| epoch);
            for (epoch, start_offset) in segment.epoch_starts(config, previous)? {
                epochs.assign(epoch, start_offset);
            }
        }
        if let Some(next_base) = next_base.filter(|next| segment.next_offset() != *next) {
            return Err(LogError::SegmentsDoNotMeet {
                path: segment.log_path().to_path_buf(),
                end_offset: segment.next_offset(),
                next_base_offset: next_base,
            });
        }
    }
    Ok(())
}

/// The recovered log must reach every offset its checkpoint promised: below the recovery
/// point everything was fsynced, below the high watermark everything was acknowledged. A
/// log that ends short of either lost records, whatever the files look like now.
fn check_promises(
    dir: &Path,
    checkpoint: Option<&PartitionCheckpoint>,
    log_end_offset: Offset,
) -> LogResult<()> {
    let Some(checkpoint) = checkpoint else {
        return Ok(());
    };
    let promises = [
        ("recovery point", checkpoint.recovery_point),
        ("high watermark", checkpoint.high_watermark),
    ];
    for (promise, promised_offset) in promises {
        if log_end_offset < promised_offset {
            return Err(LogError::EndBelowCheckpoint {
                dir: dir.to_path_buf(),
                log_end_offset,
                promise,
                promised_offset,
            });
        }
    }
    Ok(())
}

/// The checks of a segment that is not scanned: the cheap walk of its first and last
/// headers (`Segment::load_tail`), the index sanity checks, and its time index against its
/// batches. Any error means: rebuild it from a scan.
fn check_unscanned(segment: &mut Segment, config: &LogConfig) -> LogResult<()> {
    if segment.index_rebuild_needed()? {
        return Err(LogError::BadAuxiliaryFile {
            path: segment.log_path().to_path_buf(),
            reason: "an index file was missing or unusable and was recreated empty".into(),
        });
    }
    segment.load_tail(config)?;
    segment.check_indexes()?;
    segment.check_time_index()
}

/// One segment's scan (see the module docs for torn tail vs corruption).
struct SegmentRecovery<'a> {
    config: &'a LogConfig,
    /// The epoch of the batch before this segment, if it was scanned.
    previous_epoch: Option<LeaderEpoch>,
    /// The active segment: the only place a torn tail can be.
    is_last: bool,
    recovery_point: Offset,
}

impl SegmentRecovery<'_> {
    /// Scans the segment, feeds the epochs it finds to the cache and cuts a torn tail.
    /// Returns the last epoch seen.
    fn run(
        &self,
        segment: &mut Segment,
        epochs: &mut LeaderEpochCache,
        report: &mut RecoveryReport,
    ) -> LogResult<Option<LeaderEpoch>> {
        // A sealed segment's indexes are read-only maps: reopen them for the rebuild, and
        // seal the segment again afterwards.
        let sealed = segment.is_sealed();
        if sealed {
            segment.unseal()?;
        }
        let scan = segment.scan_and_rebuild(self.config, self.previous_epoch)?;
        for (epoch, start_offset) in &scan.epoch_starts {
            epochs.assign(*epoch, *start_offset);
        }
        if let ScanStop::Bad { position, reason } = &scan.stop {
            let cut_bytes = segment.size_bytes() - scan.valid_bytes;
            if segment.is_direct_padding(scan.valid_bytes)? {
                // Not damage: the zeros a direct write leaves after the last batch (a crash
                // came before the segment was sealed or closed). The data ends cleanly here.
                tracing::debug!(
                    path = %segment.log_path().display(), position, cut_bytes,
                    "cutting the zero padding of direct I/O after the last batch"
                );
            } else {
                self.check_torn_tail(segment, &scan, *position, reason)?;
                tracing::warn!(
                    path = %segment.log_path().display(), position, %reason, cut_bytes,
                    "cutting the torn tail of the active segment"
                );
                report.truncated_bytes += cut_bytes;
            }
            segment.truncate_bytes(scan.valid_bytes, scan.next_offset)?;
        }
        if sealed {
            segment.seal()?;
        }
        Ok(scan.last_epoch)
    }

    /// A bad batch is a torn tail only in the active segment, at or beyond the recovery
    /// point, with nothing intact after it. Anything else is corruption: reported, and
    /// nothing is cut.
    fn check_torn_tail(
        &self,
        segment: &Segment,
        scan: &SegmentScan,
        position: u64,
        reason: &str,
    ) -> LogResult<()> {
        let corruption = |reason: String| LogError::Corruption {
            path: segment.log_path().to_path_buf(),
            position,
            reason,
        };
        if !self.is_last || scan.next_offset < self.recovery_point {
            return Err(corruption(reason.to_owned()));
        }
        if let Some(intact) =
            segment.find_intact_batch_after(position, scan.next_offset, self.config)?
        {
            return Err(corruption(format!(
                "{reason}; an intact batch follows at byte {intact}, so this is damage in \
                 the middle of the log, not a torn write"
            )));
        }
        Ok(())
    }
}
