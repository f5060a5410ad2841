//! One segment of a partition log: `<base_offset:020>.log` plus its `.index` and
//! `.timeindex` (layouts in `docs/FORMAT.md`).
//!
//! The `.log` file is the concatenation of whole record batches exactly as validated and
//! stamped by the leader; nothing else is stored in it. Batches are written with one
//! positional (vectored) write at the end of the file. An offset index entry `(base_offset, position)`
//! is added before a batch once `index_interval_bytes` have been written since the last one,
//! so a lookup lands at most that many bytes before the batch it wants.
//!
//! Crash behaviour: the `.log` of the active segment may end in a torn batch after a crash;
//! the partition log's recovery scans it with [`Segment::scan_and_rebuild`], which also
//! rebuilds both indexes from the log (index contents are never trusted after a crash).
//! A sealed segment was fsynced when it was sealed, and its indexes were trimmed to their
//! used size; any damage found in it later is corruption, not a torn tail.
//!
//! Reads (`segment/read.rs`): a sealed segment is served from a read-only memory map of
//! its `.log` ([`Segment::read`] returns slices of it as `Bytes`, no copy); the active
//! segment with one positional read into a reused buffer. A slice may outlive the segment's lock and even
//! the file's deletion (the map keeps the inode), so a mapped file is never shrunk in
//! place: [`Segment::truncate_bytes`] on a segment that was ever mapped writes the kept
//! prefix to a new file and renames it over the old one. Appends only ever go past the
//! mapped length (a sealed segment takes appends only after a truncation unsealed it).
//! The trade: a disk read error under a map is a SIGBUS that stops the process, where
//! `pread` returns EIO to the one fetch. The indexes (here and in Kafka) take the same risk.
//!
//! Direct I/O (`LogConfig::direct_io`, `direct.rs`): the `.log` is opened a second time
//! with `O_DIRECT` for the appends and the bulk reads, nothing is mapped, and the file may
//! end in up to a block of zero padding while the segment is active; sealing and a clean
//! close cut it, and recovery recognises it ([`Segment::is_direct_padding`]).
//!
//! Open files (`segment/files.rs`): the active segment keeps its files open. A sealed
//! segment's files (one descriptor, up to three maps) are opened by the first read that
//! needs them and kept in the broker-wide [`OpenSegments`] cache, which closes the least
//! recently used; everything else a sealed segment knows (offsets, size, max timestamp)
//! is kept in memory, so a cold segment costs no descriptor and no map.
//!
//! Thread safety: a `Segment` has a single owner (the partition log's state lock). The
//! `.log` handle is shared (`Arc<File>`) only so group commit can fsync it outside that lock.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_proto::record::{check_stored_batch, BatchHeader};
use strata_proto::types::{LeaderEpoch, Offset};

use super::config::LogConfig;
use super::direct;
use super::durable;
use super::error::{LogError, LogResult};
use super::open_segments::OpenSegments;
use super::reclaim::{MapToken, Reclaimer};
use super::segment_map;

mod files;
mod read;
mod verify;

pub(crate) use files::SegmentFiles;
use files::{FileSlot, FileSpec, IndexMode};
pub use verify::epoch_step_back_blames_previous;

/// File name of a segment's file with the given extension (`log`, `index`, `timeindex`).
pub fn segment_file_name(base_offset: Offset, extension: &str) -> String {
    format!("{:020}.{extension}", base_offset.0)
}

/// The largest a segment's byte position may get: index positions are `u32`.
const SEGMENT_BYTES_LIMIT: u64 = u32::MAX as u64;

/// Where a scan of a segment stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanStop {
    /// Every byte of the file belongs to a valid batch.
    End,
    /// The batch starting at `position` is torn or damaged.
    Bad { position: u64, reason: String },
}

/// The result of [`Segment::scan_and_rebuild`].
#[derive(Debug, Clone)]
pub struct SegmentScan {
    /// Bytes of whole, valid batches from the start of the file.
    pub valid_bytes: u64,
    /// Offset after the last valid batch.
    pub next_offset: Offset,
    /// The leader epoch of the last valid batch, if any.
    pub last_epoch: Option<LeaderEpoch>,
    /// Each epoch seen in the valid part, with the offset where it starts.
    pub epoch_starts: Vec<(LeaderEpoch, Offset)>,
    pub stop: ScanStop,
}

/// The batch a scan accepted last, for blaming a raised epoch on the right batch.
#[derive(Debug, Clone, Copy)]
struct PreviousBatch {
    position: u64,
    base_offset: Offset,
    /// The epoch of the batch before it, if the scan saw one.
    epoch_before: Option<LeaderEpoch>,
}

impl SegmentScan {
    /// Stops the scan where the leader epoch steps back to `epoch` at `position`: there,
    /// or at the previous batch when its epoch is the one out of line (see
    /// [`epoch_step_back_blames_previous`]), which then no longer counts as valid.
    fn stop_at_epoch_step_back(
        &mut self,
        previous: Option<PreviousBatch>,
        position: u64,
        epoch: LeaderEpoch,
    ) {
        let last = self.last_epoch.unwrap_or_default();
        let Some(previous) = previous
            .filter(|previous| epoch_step_back_blames_previous(previous.epoch_before, epoch))
        else {
            self.stop = ScanStop::Bad {
                position,
                reason: format!("leader epoch {epoch} after epoch {last}"),
            };
            return;
        };
        self.valid_bytes = previous.position;
        self.next_offset = previous.base_offset;
        self.last_epoch = previous.epoch_before;
        if self.epoch_starts.last() == Some(&(last, previous.base_offset)) {
            self.epoch_starts.pop();
        }
        self.stop = ScanStop::Bad {
            position: previous.position,
            reason: format!(
                "leader epoch {last} is above the epochs of the batches before ({}) and \
                 after ({epoch}) it",
                previous.epoch_before.unwrap_or_default()
            ),
        };
    }
}

/// Whether a read returns its first batch even when it is larger than `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstBatch {
    /// Always (Kafka's KIP-74: a large batch must not stall a reader).
    AlwaysWhole,
    /// Only within `max_bytes`: for the later partitions of a multi-partition fetch,
    /// so one request cannot make the broker read more than its limit per entry.
    OnlyIfItFits,
}

/// One segment. See the module docs.
#[derive(Debug)]
pub struct Segment {
    base_offset: Offset,
    log_path: PathBuf,
    size_bytes: u64,
    next_offset: Offset,
    max_timestamp_ms: i64,
    offset_of_max_timestamp: Offset,
    bytes_since_index_entry: u64,
    index_interval_bytes: u64,
    batch_bytes_max: usize,
    first_append_ms: Option<i64>,
    sealed: bool,
    /// Held by every map of the current `.log` file: when the segment is deleted, the
    /// reclaimer cuts the file only after the last one is gone (`reclaim.rs`). A file
    /// that replaces this one (a truncation of a mapped segment) gets a new token.
    maps: MapToken,
    /// The open files, or where to open them (`segment/files.rs`).
    files: FileSlot,
}

impl Segment {
    /// Creates the three files of a new, empty, active segment and fsyncs the directory.
    /// If that fails half-way, the files it made are removed again, so the next attempt
    /// at the same base offset starts afresh (a roll that ran out of descriptors once
    /// left a `.log` behind, and every later roll failed with "File exists").
    pub fn create(
        dir: &Path,
        base_offset: Offset,
        config: &LogConfig,
        cache: &OpenSegments,
    ) -> LogResult<Segment> {
        let spec = FileSpec::new(dir, base_offset, config);
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&spec.log_path)
            .map_err(|source| LogError::io("create segment", &spec.log_path, source))?;
        let created = remove_stale_indexes(&spec)
            .and_then(|()| SegmentFiles::open(&spec, log, IndexMode::Appendable))
            .and_then(|files| {
                durable::sync_file(&files.log, &spec.log_path)?;
                durable::sync_dir(dir)?;
                Ok(files)
            });
        match created {
            Ok(files) => Ok(Segment::new(
                FileSlot::pinned(spec, cache, files),
                0,
                config,
            )),
            Err(error) => {
                remove_files(&spec);
                Err(error)
            }
        }
    }

    /// Creates the files of a segment the log cleaner writes in place of the one at
    /// `base_offset`: `<base>.log.cleaned`, `.index.cleaned`, `.timeindex.cleaned`
    /// (`cleaner/swap.rs`), replacing any left by an earlier attempt. Buffered I/O, and a
    /// cache of its own: the segment is only appended to and sealed, then renamed into
    /// place and opened again as a segment of the log.
    pub(crate) fn create_cleaned(
        dir: &Path,
        base_offset: Offset,
        config: &LogConfig,
        suffix: &str,
    ) -> LogResult<Segment> {
        let config = LogConfig {
            direct_io: false,
            ..config.clone()
        };
        let spec = FileSpec::with_suffix(dir, base_offset, &config, suffix);
        remove_files_of(&spec)?;
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&spec.log_path)
            .map_err(|source| LogError::io("create cleaned segment", &spec.log_path, source))?;
        let files = SegmentFiles::open(&spec, log, IndexMode::Appendable)?;
        let cache = OpenSegments::new(1);
        Ok(Segment::new(
            FileSlot::pinned(spec, &cache, files),
            0,
            &config,
        ))
    }

    /// Closes the files of a segment whose files were replaced on disk (by the cleaner's
    /// swap): nothing is deleted, the names now belong to the new segment. The old
    /// `.log`'s space is freed by the kernel once the last map of it is gone.
    pub(crate) fn retire_replaced(mut self) {
        drop(self.files.take_log());
    }

    /// Opens an existing segment as the active one. Its `next_offset` is not known until
    /// the caller either scans it or checks its tail ([`Segment::load_tail`]).
    pub fn open(
        dir: &Path,
        base_offset: Offset,
        config: &LogConfig,
        cache: &OpenSegments,
    ) -> LogResult<Segment> {
        let spec = FileSpec::new(dir, base_offset, config);
        let files = SegmentFiles::open_existing(&spec, IndexMode::Appendable)?;
        let size_bytes = files
            .log
            .metadata()
            .map_err(|source| LogError::io("stat segment", &spec.log_path, source))?
            .len();
        Ok(Segment::new(
            FileSlot::pinned(spec, cache, files),
            size_bytes,
            config,
        ))
    }

    /// An existing sealed segment, without opening its files: they are opened (read only,
    /// indexes at their trimmed length) by the first read that needs them. Its end is the
    /// next segment's base, given by the caller; its max timestamp is known once it is
    /// checked ([`Segment::load_tail`]) or scanned.
    pub fn open_sealed(
        dir: &Path,
        base_offset: Offset,
        next_offset: Offset,
        config: &LogConfig,
        cache: &OpenSegments,
    ) -> LogResult<Segment> {
        let spec = FileSpec::new(dir, base_offset, config);
        let size_bytes = fs::metadata(&spec.log_path)
            .map_err(|source| LogError::io("stat segment", &spec.log_path, source))?
            .len();
        let mut segment = Segment::new(FileSlot::cold(spec, cache), size_bytes, config);
        segment.next_offset = next_offset;
        segment.sealed = true;
        Ok(segment)
    }

    fn new(files: FileSlot, size_bytes: u64, config: &LogConfig) -> Segment {
        let spec = files.spec();
        Segment {
            base_offset: spec.base_offset,
            log_path: spec.log_path.clone(),
            size_bytes,
            next_offset: spec.base_offset,
            max_timestamp_ms: -1,
            offset_of_max_timestamp: spec.base_offset,
            bytes_since_index_entry: 0,
            index_interval_bytes: config.index_interval_bytes,
            batch_bytes_max: config.batch_bytes_max,
            first_append_ms: None,
            sealed: false,
            maps: MapToken::default(),
            files,
        }
    }

    pub fn base_offset(&self) -> Offset {
        self.base_offset
    }

    pub fn next_offset(&self) -> Offset {
        self.next_offset
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Whether an index file had to be recreated when the files were opened: the caller
    /// must rebuild the indexes from the log ([`Segment::scan_and_rebuild`]).
    pub fn index_rebuild_needed(&self) -> LogResult<bool> {
        Ok(self.size_bytes > 0 && self.files.get()?.index_recreated)
    }

    pub fn is_sealed(&self) -> bool {
        self.sealed
    }

    pub fn max_timestamp_ms(&self) -> i64 {
        self.max_timestamp_ms
    }

    /// The `.log` handle, for an fsync outside the state lock (group commit).
    pub fn log_file(&self) -> LogResult<Arc<File>> {
        Ok(Arc::clone(&self.files.get()?.log))
    }

    /// After a reopen the first append time is unknown; age counts from the reopen.
    pub fn note_reopened(&mut self, now_ms: i64) {
        if self.size_bytes > 0 {
            self.first_append_ms = Some(now_ms);
        }
    }

    /// Whether appending `batch_bytes` with offsets up to `last_offset` must go to a new
    /// segment instead.
    pub fn needs_roll(
        &self,
        batch_bytes: u64,
        last_offset: Offset,
        config: &LogConfig,
        now_ms: i64,
    ) -> bool {
        if self.size_bytes == 0 {
            return false;
        }
        let segment_bytes = config.segment_bytes.min(SEGMENT_BYTES_LIMIT);
        let too_big = self.size_bytes + batch_bytes > segment_bytes;
        let too_old = match (config.segment_ms, self.first_append_ms) {
            (Some(segment_ms), Some(first_ms)) => {
                now_ms.saturating_sub(first_ms) >= segment_ms as i64
            }
            _ => false,
        };
        let relative_overflow = last_offset.0 - self.base_offset.0 > i64::from(u32::MAX);
        // Only the active segment holds its files; one that does not cannot take appends.
        let indexes_full = self
            .files
            .pinned_files()
            .is_none_or(|files| files.index.is_full() || files.time_index.is_full());
        too_big || too_old || relative_overflow || indexes_full
    }

    /// Writes one validated, stamped batch at the end of the file and indexes it. The
    /// batch is given in `parts` that are written back to back with one vectored write
    /// (the leader passes its stamped header and the rest of the batch as received).
    /// On a failed write the file is cut back to its previous size, so no partial batch
    /// is ever left behind by an error that the process survives.
    pub fn append(&mut self, parts: &[&[u8]], header: &BatchHeader, now_ms: i64) -> LogResult<()> {
        let position = self.size_bytes;
        let batch_bytes: usize = parts.iter().map(|part| part.len()).sum();
        debug_assert_eq!(batch_bytes, header.total_bytes());
        let files = self.files.get_mut()?;
        let written = match &mut files.direct {
            Some(direct) => direct.write(parts, position, &self.log_path),
            None => durable::write_all_vectored_at(&files.log, parts, position, &self.log_path),
        };
        if let Err(error) = written {
            if let Some(direct) = &mut files.direct {
                direct.forget_tail();
            }
            files
                .log
                .set_len(position)
                .map_err(|source| LogError::io("cut a failed append", &self.log_path, source))?;
            return Err(error);
        }
        self.index_batch(position, header)?;
        self.size_bytes += batch_bytes as u64;
        self.first_append_ms.get_or_insert(now_ms);
        Ok(())
    }

    /// Index bookkeeping for a batch written at `position` (append and rebuild share it).
    fn index_batch(&mut self, position: u64, header: &BatchHeader) -> LogResult<()> {
        if self.bytes_since_index_entry >= self.index_interval_bytes {
            let files = self.files.get_mut()?;
            files.index.append(header.base_offset, position as u32)?;
            if self.max_timestamp_ms >= 0 {
                files
                    .time_index
                    .append(self.max_timestamp_ms, self.offset_of_max_timestamp)?;
            }
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += header.total_bytes() as u64;
        if header.max_timestamp > self.max_timestamp_ms {
            self.max_timestamp_ms = header.max_timestamp;
            self.offset_of_max_timestamp = header.last_offset();
        }
        self.next_offset = header.next_offset();
        Ok(())
    }

    /// Scans the whole file from byte 0, checking every batch (framing, CRC, expected base
    /// offset, leader epoch not decreasing), and rebuilds both indexes from what it finds.
    /// Stops at the first bad batch without changing the file: the caller decides whether
    /// that is a torn tail to cut or corruption to report.
    pub fn scan_and_rebuild(
        &mut self,
        config: &LogConfig,
        previous_epoch: Option<LeaderEpoch>,
    ) -> LogResult<SegmentScan> {
        let files = self.files.get_mut()?;
        files.index.reset();
        files.time_index.reset();
        files.index_recreated = false;
        self.bytes_since_index_entry = 0;
        self.max_timestamp_ms = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.next_offset = self.base_offset;
        let mut scan = SegmentScan {
            valid_bytes: 0,
            next_offset: self.base_offset,
            last_epoch: previous_epoch,
            epoch_starts: Vec::new(),
            stop: ScanStop::End,
        };
        let mut previous: Option<PreviousBatch> = None;
        let mut buf = Vec::new();
        while scan.valid_bytes < self.size_bytes {
            let position = scan.valid_bytes;
            let header = match self.check_batch_at(position, scan.next_offset, config, &mut buf)? {
                Ok(header) => header,
                Err(reason) => {
                    scan.stop = ScanStop::Bad { position, reason };
                    break;
                }
            };
            let epoch = header.partition_leader_epoch;
            if scan.last_epoch.is_some_and(|last| epoch < last) {
                scan.stop_at_epoch_step_back(previous, position, epoch);
                break;
            }
            self.index_batch(position, &header)?;
            if scan.last_epoch.is_none_or(|last| epoch > last) {
                scan.epoch_starts.push((epoch, header.base_offset));
            }
            previous = Some(PreviousBatch {
                position,
                base_offset: header.base_offset,
                epoch_before: scan.last_epoch,
            });
            scan.last_epoch = Some(epoch);
            scan.next_offset = header.next_offset();
            scan.valid_bytes += header.total_bytes() as u64;
        }
        Ok(scan)
    }

    /// Checks the batch at `position` (framing, CRC, base offset; the caller checks the
    /// epoch); the inner `Err` is a description of the damage.
    fn check_batch_at(
        &self,
        position: u64,
        expected_offset: Offset,
        config: &LogConfig,
        buf: &mut Vec<u8>,
    ) -> LogResult<Result<BatchHeader, String>> {
        let remaining = self.size_bytes - position;
        let Some(header) = self.read_header_at(position)? else {
            return Ok(Err(format!(
                "torn batch header: only {remaining} bytes left"
            )));
        };
        if let Err(error) = header.check_framing(config.batch_bytes_max) {
            return Ok(Err(error.to_string()));
        }
        let total = header.total_bytes() as u64;
        if total > remaining {
            return Ok(Err(format!(
                "batch of {total} bytes but only {remaining} bytes left"
            )));
        }
        buf.resize(total as usize, 0);
        self.files
            .get()?
            .log
            .read_exact_at(buf, position)
            .map_err(|source| LogError::io("read batch", &self.log_path, source))?;
        if let Err(error) = check_stored_batch(buf, config.batch_bytes_max) {
            return Ok(Err(error.to_string()));
        }
        if header.base_offset != expected_offset {
            return Ok(Err(format!(
                "batch base offset {} where {} was expected",
                header.base_offset, expected_offset
            )));
        }
        Ok(Ok(header))
    }

    /// Whether the bytes from `position` to the end of the file are what a direct write
    /// leaves after the last batch: the file ends on a block boundary, and the bytes are
    /// fewer than a block and all zero. Recovery cuts those without calling them a torn
    /// tail. (A torn buffered write ends anywhere; the leading zero bytes of a batch's
    /// base offset alone do not look like padding unless they end exactly on a block.)
    pub fn is_direct_padding(&self, position: u64) -> LogResult<bool> {
        direct::ends_in_padding(&self.files.get()?.log, position, self.size_bytes)
            .map_err(|source| LogError::io("read the end of a segment", &self.log_path, source))
    }

    /// Checks that the indexes agree with the file (used on segments that are not scanned).
    pub fn check_indexes(&self) -> LogResult<()> {
        let files = self.files.get()?;
        files.index.sanity_check(self.size_bytes)?;
        files.time_index.sanity_check(self.next_offset)
    }

    /// Cuts the file to its first `valid_bytes` (a torn tail found by a scan, or a
    /// truncation), fsyncs it and its directory. A file that a live slice still maps is
    /// not cut in place but replaced (see the module docs).
    pub fn truncate_bytes(&mut self, valid_bytes: u64, next_offset: Offset) -> LogResult<()> {
        let files = self.files.get_mut()?;
        files.drop_map();
        // Every map holds a clone of the token: more than ours means a slice is alive.
        if Arc::strong_count(&self.maps) > 1 {
            files.log = Arc::new(segment_map::replace_with_prefix(
                &files.log,
                &self.log_path,
                valid_bytes,
            )?);
            self.maps = MapToken::default();
        } else {
            files
                .log
                .set_len(valid_bytes)
                .map_err(|source| LogError::io("truncate segment", &self.log_path, source))?;
        }
        if let Some(direct) = &mut files.direct {
            direct.forget_tail();
        }
        self.size_bytes = valid_bytes;
        self.next_offset = next_offset;
        files.index.truncate_to(next_offset);
        files.time_index.truncate_to(next_offset);
        let last_indexed = files
            .index
            .last_entry()
            .map_or(0, |(_, position)| u64::from(position));
        self.bytes_since_index_entry = valid_bytes.saturating_sub(last_indexed);
        durable::sync_file(&files.log, &self.log_path)?;
        durable::sync_dir(parent_dir(&self.log_path))
    }

    /// Removes every batch whose offsets reach `offset` or beyond (a batch holding `offset`
    /// goes whole). Returns the segment's new next offset.
    pub fn truncate_to(&mut self, offset: Offset) -> LogResult<Offset> {
        if let Some((position, header)) = self.find_batch(offset)? {
            self.truncate_bytes(position, header.base_offset)?;
            self.refresh_max_timestamp()?;
        }
        Ok(self.next_offset)
    }

    /// Makes the segment read-only: final time index entry, indexes trimmed, `.log`
    /// fsynced. Everything in a sealed segment is durable.
    /// Makes the segment read-only: final time index entry, indexes trimmed, `.log`
    /// fsynced. Everything in a sealed segment is durable. Its files go to the cache of
    /// open segments, which closes them once they are cold.
    pub fn seal(&mut self) -> LogResult<()> {
        let files = self.files.get_mut()?;
        if self.max_timestamp_ms >= 0 {
            files
                .time_index
                .append(self.max_timestamp_ms, self.offset_of_max_timestamp)?;
        }
        files.index.trim()?;
        files.time_index.trim()?;
        cut_direct_padding(files, self.size_bytes, &self.log_path)?;
        durable::sync_file(&files.log, &self.log_path)?;
        self.sealed = true;
        self.files.unpin();
        Ok(())
    }

    /// Prepares a sealed segment to take appends again (after a truncation made it the
    /// last one, or for a recovery scan): its files are opened and kept, and the trimmed
    /// indexes are extended and mapped for writing again.
    pub fn unseal(&mut self) -> LogResult<()> {
        let files = self.files.get_mut()?;
        files.index.unseal()?;
        files.time_index.unseal()?;
        self.sealed = false;
        Ok(())
    }

    /// Flushes the `.log` data to disk.
    pub fn sync(&self) -> LogResult<()> {
        durable::sync_file(&self.files.get()?.log, &self.log_path)
    }

    /// Trims the indexes at a clean close (the next open reads their length).
    pub fn close(&mut self) -> LogResult<()> {
        let files = self.files.get_mut()?;
        files.index.trim()?;
        files.time_index.trim()?;
        cut_direct_padding(files, self.size_bytes, &self.log_path)?;
        durable::sync_file(&files.log, &self.log_path)
    }

    /// Deletes the three files. The `.log` is unlinked here, but its space is given back
    /// by `reclaimer`, once no map of it is left (`reclaim.rs`); a cold segment's is
    /// opened for that only when the reclaimer wants it (see [`Reclaimer::takes`]). The
    /// caller fsyncs the directory.
    pub fn delete(mut self, reclaimer: &Reclaimer) -> LogResult<()> {
        let log = match self.files.take_log() {
            Some(log) => Some(log),
            None if reclaimer.takes(self.size_bytes) => {
                Some(Arc::new(File::open(&self.log_path).map_err(|source| {
                    LogError::io("open segment", &self.log_path, source)
                })?))
            }
            None => None,
        };
        let spec = self.files.spec();
        remove_if_present(&spec.index_path)?;
        remove_if_present(&spec.time_index_path)?;
        fs::remove_file(&self.log_path)
            .map_err(|source| LogError::io("delete segment", &self.log_path, source))?;
        // Only the maps' owners may still hold the token once the segment's own is dropped.
        let maps_alive = Arc::downgrade(&self.maps);
        let Segment {
            log_path,
            size_bytes,
            maps,
            ..
        } = self;
        drop(maps);
        if let Some(log) = log {
            reclaimer.reclaim(log, log_path, size_bytes, maps_alive);
        }
        Ok(())
    }
}

/// Cuts the zero padding that direct writes leave after the last batch (sealing and a
/// clean close leave the file exactly as long as its batches). The caller fsyncs.
fn cut_direct_padding(files: &mut SegmentFiles, size_bytes: u64, log_path: &Path) -> LogResult<()> {
    if let Some(direct) = &mut files.direct {
        direct.forget_tail();
        files
            .log
            .set_len(size_bytes)
            .map_err(|source| LogError::io("cut direct I/O padding", log_path, source))?;
    }
    Ok(())
}

/// Removes `path`; a missing file is fine.
fn remove_if_present(path: &Path) -> LogResult<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(LogError::io("delete", path, source)),
    }
}

/// Index files left under the base offset of a segment whose `.log` is only now being
/// created belong to no segment (a crash between removing a segment's `.log` and its
/// indexes): they are removed, never taken for the new segment's.
fn remove_stale_indexes(spec: &FileSpec) -> LogResult<()> {
    remove_if_present(&spec.index_path)?;
    remove_if_present(&spec.time_index_path)
}

/// Removes the three files of `spec` where they exist.
fn remove_files_of(spec: &FileSpec) -> LogResult<()> {
    for path in [&spec.index_path, &spec.time_index_path, &spec.log_path] {
        remove_if_present(path)?;
    }
    Ok(())
}

/// Removes what [`Segment::create`] made before it failed; a failure here is logged, and
/// the next roll reports it (its `.log` would then exist).
fn remove_files(spec: &FileSpec) {
    for path in [&spec.index_path, &spec.time_index_path, &spec.log_path] {
        if let Err(error) = remove_if_present(path) {
            tracing::warn!(%error, "cannot remove a file of a segment that failed to be created");
        }
    }
}

/// Opens an index file; a missing or unusable one is replaced by an empty file. The flag
/// says whether that happened (the segment's indexes must then be rebuilt from the log).
fn open_or_recreate<T>(path: &Path, open: impl Fn() -> LogResult<T>) -> LogResult<(T, bool)> {
    let existed = path.exists();
    match open() {
        Ok(index) => Ok((index, !existed)),
        Err(LogError::BadAuxiliaryFile { reason, .. }) => {
            tracing::warn!(path = %path.display(), %reason, "unusable index file; rebuilding it");
            fs::remove_file(path)
                .map_err(|source| LogError::io("remove damaged index", path, source))?;
            Ok((open()?, true))
        }
        Err(error) => Err(error),
    }
}

fn parent_dir(path: &Path) -> &Path {
    path.parent().unwrap_or_else(|| Path::new("."))
}
