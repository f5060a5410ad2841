//! Opening a partition directory: find the segments, load the checkpoints, and recover
//! after a crash (reliability.md §3.2–3.3).
//!
//! - After a clean shutdown (the log manager found its marker) nothing is scanned: indexes
//!   were trimmed and fsynced at close, so their lengths are trusted after a sanity check,
//!   and the active segment's end is found by walking headers from its last index entry.
//! - After a crash, every segment from the one holding the checkpointed recovery point to
//!   the end is scanned batch by batch (framing, CRC, expected base offset, leader epoch
//!   not decreasing) and its indexes are rebuilt. A bad batch in the *active* segment at or
//!   beyond the recovery point is a torn tail: the file is cut there, fsynced, and the cut
//!   is counted. A bad batch in a sealed segment, or before the recovery point, is
//!   corruption: opening fails with [`LogError::Corruption`] naming file and position, and
//!   nothing is truncated.
//! - A damaged checkpoint or epoch cache is rebuildable: it is ignored and everything is
//!   scanned. A damaged index of an unscanned segment is rebuilt from that segment.
//! - The recovered active segment is fsynced, so the whole recovered log is durable.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use strata_proto::types::{LeaderEpoch, Offset};

use super::checkpoint::PartitionCheckpoint;
use super::config::LogConfig;
use super::error::{LogError, LogResult};
use super::leader_epoch_cache::LeaderEpochCache;
use super::partition_log::LogState;
use super::segment::{ScanStop, Segment};

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
    /// Indexes or checkpoints that were damaged and rebuilt.
    pub rebuilt_files: usize,
    pub log_end_offset: Offset,
}

/// Base offsets of the `<base:020>.log` files in `dir`, ascending. Stray temp files from a
/// checkpoint interrupted by a crash are removed.
fn list_segments(dir: &Path) -> LogResult<Vec<Offset>> {
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

/// Opens the log in `dir` (created if missing) and recovers it. See the module docs.
pub(crate) fn recover(
    dir: &Path,
    config: &LogConfig,
    now_ms: i64,
    previous: PreviousShutdown,
) -> LogResult<(LogState, RecoveryReport)> {
    fs::create_dir_all(dir)
        .map_err(|source| LogError::io("create partition directory", dir, source))?;
    let mut report = RecoveryReport::default();
    let checkpoint = match PartitionCheckpoint::load(dir) {
        Ok(checkpoint) => checkpoint,
        Err(LogError::BadAuxiliaryFile { path, reason }) => {
            tracing::warn!(path = %path.display(), %reason, "damaged checkpoint; scanning the whole log");
            report.rebuilt_files += 1;
            None
        }
        Err(error) => return Err(error),
    };
    let (mut epochs, epochs_trusted) = match LeaderEpochCache::load(dir) {
        Ok(epochs) => (epochs, true),
        Err(LogError::BadAuxiliaryFile { path, reason }) => {
            tracing::warn!(path = %path.display(), %reason, "damaged leader-epoch cache; rebuilding it from the log");
            report.rebuilt_files += 1;
            (LeaderEpochCache::empty(dir), false)
        }
        Err(error) => return Err(error),
    };

    let bases = list_segments(dir)?;
    let mut segments = BTreeMap::new();
    for pair in bases.windows(2) {
        if let [base, next] = pair {
            segments.insert(*base, Segment::open_sealed(dir, *base, *next, config)?);
        }
    }
    if let Some(last) = bases.last() {
        segments.insert(*last, Segment::open(dir, *last, config)?);
    } else {
        let base = checkpoint.map_or(Offset(0), |checkpoint| checkpoint.log_start_offset);
        segments.insert(base, Segment::create(dir, base, config)?);
    }
    let bases: Vec<Offset> = segments.keys().copied().collect();
    report.segments = segments.len();

    let first_base = bases.first().copied().unwrap_or_default();
    let clean = previous == PreviousShutdown::Clean && checkpoint.is_some() && epochs_trusted;
    let scan_from = if clean {
        None
    } else if !epochs_trusted {
        Some(first_base)
    } else {
        let recovery_point = checkpoint.map_or(first_base, |checkpoint| checkpoint.recovery_point);
        Some(
            segments
                .range(..=recovery_point)
                .next_back()
                .map_or(first_base, |(base, _)| *base),
        )
    };
    // The flushed point comes from the partition checkpoint alone; a damaged epoch cache
    // widens the scan but must not turn damage in flushed data into a "torn tail".
    let recovery_point = checkpoint.map_or(first_base, |checkpoint| checkpoint.recovery_point);

    if !epochs_trusted {
        epochs.clear();
    }
    let mut last_epoch = None;
    let last_base = bases.last().copied().unwrap_or_default();
    for base in &bases {
        let Some(segment) = segments.get_mut(base) else {
            continue;
        };
        let is_last = *base == last_base;
        let must_scan = scan_from.is_some_and(|from| *base >= from);
        if must_scan {
            report.segments_scanned += 1;
            last_epoch = scan_segment(
                segment,
                config,
                last_epoch,
                is_last,
                recovery_point,
                &mut epochs,
                &mut report,
            )?;
        } else if needs_rebuild(segment, is_last, config) {
            // Not scanned because it was fsynced (sealed, or closed cleanly): a bad batch
            // found while rebuilding its indexes is corruption, never a tail to cut.
            tracing::warn!(path = %segment.log_path().display(), "damaged index; rebuilding it from the segment");
            report.rebuilt_files += 1;
            last_epoch = scan_segment(
                segment,
                config,
                last_epoch,
                is_last,
                Offset(i64::MAX),
                &mut epochs,
                &mut report,
            )?;
        }
        if let Some(next_base) = bases.iter().find(|b| *b > base) {
            if segment.next_offset() != *next_base && must_scan {
                return Err(LogError::Corruption {
                    path: segment.log_path().to_path_buf(),
                    position: segment.size_bytes(),
                    reason: format!(
                        "segment ends at offset {} but the next segment starts at {}",
                        segment.next_offset(),
                        next_base
                    ),
                });
            }
        }
    }

    let active = segments
        .values_mut()
        .next_back()
        .ok_or_else(|| LogError::Stopped {
            path: dir.to_path_buf(),
            reason: "no segment after recovery".into(),
        })?;
    active.note_reopened(now_ms);
    if !clean {
        active.sync()?;
    }
    let log_end_offset = active.next_offset();
    if epochs.truncate_from_end(log_end_offset) || !epochs_trusted || report.segments_scanned > 0 {
        epochs.store()?;
    }
    let log_start_offset = checkpoint
        .map_or(first_base, |checkpoint| checkpoint.log_start_offset)
        .max(first_base)
        .min(log_end_offset);
    let high_watermark = checkpoint
        .map_or(log_start_offset, |checkpoint| checkpoint.high_watermark)
        .clamp(log_start_offset, log_end_offset);
    report.log_end_offset = log_end_offset;
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

/// Whether an unscanned segment's indexes must be rebuilt: recreated at open, failing
/// their sanity check, or (for the active segment) not leading to a clean end.
fn needs_rebuild(segment: &mut Segment, is_last: bool, config: &LogConfig) -> bool {
    if segment.index_rebuild_needed() {
        return true;
    }
    if is_last && segment.load_tail(config).is_err() {
        return true;
    }
    segment.check_indexes().is_err()
}

/// Scans one segment (see the module docs for torn tail vs corruption) and feeds the
/// epochs it finds to the cache. Returns the last epoch seen.
fn scan_segment(
    segment: &mut Segment,
    config: &LogConfig,
    previous_epoch: Option<LeaderEpoch>,
    is_last: bool,
    recovery_point: Offset,
    epochs: &mut LeaderEpochCache,
    report: &mut RecoveryReport,
) -> LogResult<Option<LeaderEpoch>> {
    // A sealed segment's indexes are read-only maps: reopen them for the rebuild, and
    // seal the segment again afterwards.
    let sealed = segment.is_sealed();
    if sealed {
        segment.unseal()?;
    }
    let scan = segment.scan_and_rebuild(config, previous_epoch)?;
    for (epoch, start_offset) in &scan.epoch_starts {
        epochs.assign(*epoch, *start_offset);
    }
    if let ScanStop::Bad { position, reason } = scan.stop {
        let cut_bytes = segment.size_bytes() - scan.valid_bytes;
        if segment.is_direct_padding(scan.valid_bytes)? {
            // Not damage: the zeros a direct write leaves after the last batch (a crash
            // came before the segment was sealed or closed). The data ends cleanly here.
            tracing::debug!(
                path = %segment.log_path().display(), position, cut_bytes,
                "cutting the zero padding of direct I/O after the last batch"
            );
        } else {
            if !is_last || scan.next_offset < recovery_point {
                return Err(LogError::Corruption {
                    path: segment.log_path().to_path_buf(),
                    position,
                    reason,
                });
            }
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
