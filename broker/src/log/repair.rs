//! Cutting a damaged partition log back to its valid prefix, so that a follower can fetch
//! the rest from its leader again (the log manager's [`LogManager::repair`]; the node
//! decides when that is safe).
//!
//! Recovery refuses to cut damaged durable data ([`LogError::is_corruption`]): a bad batch
//! in a sealed segment, segments that do not meet, a log that ends below what its
//! checkpoint promised. Those records may be committed, and only the partition's leader
//! can give them back. [`cut_to_valid_prefix`] is the step after the leader was found:
//!
//! 1. every segment is scanned from the oldest, each batch checked as recovery checks it
//!    (framing, CRC, base offset following the one before, leader epoch not going back),
//!    and each segment must start where the one before ended. The first failure is the
//!    damage; the valid prefix ends at the last good batch before it;
//! 2. nothing is deleted: the damaged segment's `.log` is *copied*, and every later
//!    segment's files are *moved* (newest first), to the set-aside directory the caller
//!    names, and both directories are fsynced;
//! 3. `partition.checkpoint` is lowered so it promises nothing beyond the new end;
//! 4. the damaged segment is cut at its last good batch (fsynced; its indexes were rebuilt
//!    by the scan). The leader-epoch cache is truncated to the new end, like after any
//!    truncation, when the log is opened again.
//!
//! Crash behaviour: until step 4 the damaged segment is still in place, so a crash in
//! between leaves a log that the next start finds damaged again (and repairs again, into a
//! new set-aside directory); after step 4 the directory holds a valid log that its
//! checkpoint does not over-promise. At no point can a start serve the damaged bytes or
//! reuse an offset the leader gave to a different record: the follower's next reconcile
//! (`OffsetForLeaderEpoch`, KIP-101) starts from the prefix.

use std::fs;
use std::path::{Path, PathBuf};

use strata_proto::types::{LeaderEpoch, Offset};

use super::checkpoint::PartitionCheckpoint;
use super::config::LogConfig;
use super::durable;
use super::error::{LogError, LogResult};
use super::open_segments::{OpenSegments, STANDALONE_CAPACITY};
use super::recovery::list_segments;
use super::segment::{segment_file_name, ScanStop, Segment};

#[cfg(doc)]
use super::manager::LogManager;

/// The first damage a full scan found, and where the valid prefix before it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The segment file the damage is in.
    pub path: PathBuf,
    /// Its byte where the first bad batch starts (0 for a segment that does not start
    /// where the one before it ends).
    pub position: u64,
    pub reason: String,
    /// The offset after the last good batch: the log end once the damage is cut.
    pub valid_end_offset: Offset,
}

/// What [`cut_to_valid_prefix`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairReport {
    /// `None` when every batch was intact (only the checkpoint promised too much).
    pub damage: Option<Damage>,
    /// The log end offset after the repair.
    pub log_end_offset: Offset,
    /// Bytes of the log beyond the valid prefix (in the damaged segment and after it).
    pub bytes_cut: u64,
    /// Segment files moved or copied to the set-aside directory.
    pub files_set_aside: usize,
}

/// Where the scan stopped: the damaged segment (kept, cut at `valid_bytes`, `None` when
/// the damage is a segment that does not start where the one before ends) and the
/// segments after it (moved aside).
#[derive(Debug)]
struct Cut {
    damage: Damage,
    keep: Option<(Offset, u64)>,
    later: Vec<Offset>,
}

/// Cuts the log in `dir` to its valid prefix, keeping what it cuts in `aside` (created;
/// it must not hold segment files of the same names already). See the module docs.
pub fn cut_to_valid_prefix(
    dir: &Path,
    config: &LogConfig,
    aside: &Path,
) -> LogResult<RepairReport> {
    // A cache of its own: the repair's open files all close when it returns.
    let cache = OpenSegments::new(STANDALONE_CAPACITY);
    let bases = list_segments(dir)?;
    match scan_for_damage(dir, &bases, config, &cache)? {
        Scanned::Intact { log_end_offset } => {
            lower_checkpoint(dir, log_end_offset)?;
            Ok(RepairReport {
                damage: None,
                log_end_offset,
                bytes_cut: 0,
                files_set_aside: 0,
            })
        }
        Scanned::Damaged(cut, mut segment) => {
            let report = set_aside(dir, &cut, aside)?;
            lower_checkpoint(dir, report.log_end_offset)?;
            if let (Some(segment), Some((_, valid_bytes))) = (segment.as_mut(), cut.keep) {
                segment.truncate_bytes(valid_bytes, report.log_end_offset)?;
            }
            durable::sync_dir(dir)?;
            Ok(report)
        }
    }
}

/// What the full scan found.
enum Scanned {
    Intact {
        log_end_offset: Offset,
    },
    /// The cut, and the damaged segment (scanned, indexes rebuilt up to the damage) when
    /// the damage is inside one.
    Damaged(Box<Cut>, Option<Box<Segment>>),
}

/// Scans every segment in offset order (see the module docs, step 1).
fn scan_for_damage(
    dir: &Path,
    bases: &[Offset],
    config: &LogConfig,
    cache: &OpenSegments,
) -> LogResult<Scanned> {
    let mut last_epoch: Option<LeaderEpoch> = None;
    let mut expected_base: Option<Offset> = None;
    for (index, base) in bases.iter().enumerate() {
        let later = bases.get(index + 1..).unwrap_or_default().to_vec();
        let path = dir.join(segment_file_name(*base, "log"));
        if let Some(expected) = expected_base.filter(|expected| expected != base) {
            let damage = Damage {
                path,
                position: 0,
                reason: format!(
                    "the segment starts at offset {base}, but the log before it ends at {expected}"
                ),
                valid_end_offset: expected,
            };
            let later = bases.get(index..).unwrap_or_default().to_vec();
            let cut = Cut {
                damage,
                keep: None,
                later,
            };
            return Ok(Scanned::Damaged(Box::new(cut), None));
        }
        let mut segment = match later.first() {
            Some(next) => Segment::open_sealed(dir, *base, *next, config, cache)?,
            None => Segment::open(dir, *base, config, cache)?,
        };
        if segment.is_sealed() {
            segment.unseal()?;
        }
        let scan = segment.scan_and_rebuild(config, last_epoch)?;
        if let ScanStop::Bad { position, reason } = scan.stop {
            let padding = later.is_empty() && segment.is_direct_padding(scan.valid_bytes)?;
            if !padding {
                let damage = Damage {
                    path,
                    position,
                    reason,
                    valid_end_offset: scan.next_offset,
                };
                let cut = Cut {
                    damage,
                    keep: Some((*base, scan.valid_bytes)),
                    later,
                };
                return Ok(Scanned::Damaged(Box::new(cut), Some(Box::new(segment))));
            }
        }
        if !later.is_empty() {
            segment.seal()?;
        }
        last_epoch = scan.last_epoch;
        expected_base = Some(scan.next_offset);
    }
    Ok(Scanned::Intact {
        log_end_offset: expected_base.unwrap_or_default(),
    })
}

/// Step 2 of the module docs: copies the damaged segment's `.log` and moves every later
/// segment's files to `aside`, newest first, then fsyncs both directories.
fn set_aside(dir: &Path, cut: &Cut, aside: &Path) -> LogResult<RepairReport> {
    fs::create_dir_all(aside)
        .map_err(|source| LogError::io("create the set-aside directory", aside, source))?;
    if let Some(parent) = aside.parent() {
        durable::sync_dir(parent)?;
    }
    let mut report = RepairReport {
        damage: Some(cut.damage.clone()),
        log_end_offset: cut.damage.valid_end_offset,
        bytes_cut: 0,
        files_set_aside: 0,
    };
    if let Some((base, valid_bytes)) = cut.keep {
        let name = segment_file_name(base, "log");
        let copy = aside.join(&name);
        let copied = fs::copy(dir.join(&name), &copy)
            .map_err(|source| LogError::io("copy a damaged segment aside", &copy, source))?;
        let file = fs::File::open(&copy)
            .map_err(|source| LogError::io("open a copied segment", &copy, source))?;
        durable::sync_file(&file, &copy)?;
        report.bytes_cut += copied.saturating_sub(valid_bytes);
        report.files_set_aside += 1;
    }
    for base in cut.later.iter().rev() {
        for extension in ["index", "timeindex", "log"] {
            let name = segment_file_name(*base, extension);
            let from = dir.join(&name);
            let size = match fs::metadata(&from) {
                Ok(metadata) => metadata.len(),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(LogError::io("stat a segment file", &from, source)),
            };
            fs::rename(&from, aside.join(&name))
                .map_err(|source| LogError::io("move a segment aside", &from, source))?;
            if extension == "log" {
                report.bytes_cut += size;
            }
            report.files_set_aside += 1;
        }
    }
    durable::sync_dir(aside)?;
    durable::sync_dir(dir)?;
    Ok(report)
}

/// Step 3: the checkpoint promises nothing beyond `end` (recovery point, high
/// watermark, log start). A missing or damaged checkpoint is left alone: recovery then
/// scans everything and checks no promise.
fn lower_checkpoint(dir: &Path, end: Offset) -> LogResult<()> {
    let checkpoint = match PartitionCheckpoint::load(dir) {
        Ok(Some(checkpoint)) => checkpoint,
        Ok(None) | Err(LogError::BadAuxiliaryFile { .. }) => return Ok(()),
        Err(error) => return Err(error),
    };
    let lowered = PartitionCheckpoint {
        recovery_point: checkpoint.recovery_point.min(end),
        high_watermark: checkpoint.high_watermark.min(end),
        log_start_offset: checkpoint.log_start_offset.min(end),
    };
    if lowered != checkpoint {
        lowered.store(dir)?;
    }
    Ok(())
}
