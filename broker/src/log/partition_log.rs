//! The partition log: an ordered map of segments with one active (last) segment, plus the
//! partition's checkpoints and leader-epoch cache, in `<data>/<topic>-<partition>/`.
//!
//! Concurrency: one `RwLock` guards the segment map and offsets. Appends, rolls,
//! truncations and retention take it for writing; reads take it for reading and do their
//! positional read under it (so a truncation can never cut bytes out from under a reader).
//! fsyncs run outside it, in [`GroupCommit`].
//!
//! Durability (`flush = always`): [`PartitionLog::append`] returns only once the batch is
//! fsynced; concurrent appenders share fsyncs. Under `flush = interval:<ms>` it returns as
//! soon as the batch is in the page cache, and [`PartitionLog::flush_if_due`] (called by
//! the log manager's background thread) fsyncs on the interval. A follower appends the
//! leader's batches verbatim with [`PartitionLog::append_as_follower`] (same policy; it
//! checks offsets and epochs instead of stamping them, and leaves the high watermark to
//! [`PartitionLog::set_high_watermark`]; `partition_log/follower.rs`).
//!
//! Offsets: `log_start_offset ≤ high_watermark ≤ log_end_offset`; the log end offset only
//! goes down through [`PartitionLog::truncate_to`]. Opening a log runs recovery
//! (`recovery.rs`); a log that recovery finds damaged can be opened *offline* instead
//! (`partition_log/offline.rs`): it refuses every read and write and changes nothing.
//!
//! Compaction (`partition_log/compaction.rs`, `log/cleaner.rs`): [`PartitionLog::clean`]
//! rewrites sealed segments below the high watermark without their obsolete records and
//! swaps each in under the write lock; offsets and batch spans never change.
//!
//! Deletion (truncation, retention, a deleted partition; `partition_log/deletion.rs`): a
//! segment's files are unlinked under the write lock, before the directory fsync; the
//! `.log`'s space is given back afterwards by the log's [`Reclaimer`], a chunk at a time,
//! once no slice of its map is alive (`reclaim.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use strata_proto::record::{
    set_base_offset, set_partition_leader_epoch, BatchHeader, CheckedBatch, RecordError,
    BATCH_HEADER_BYTES,
};
use strata_proto::types::{LeaderEpoch, Offset};

use super::checkpoint::PartitionCheckpoint;
use super::clock::Clock;
use super::config::{FlushPolicy, LogConfig};
use super::durable;
use super::error::{LogError, LogResult};
use super::group_commit::GroupCommit;
use super::leader_epoch_cache::LeaderEpochCache;
use super::open_segments::{OpenSegments, STANDALONE_CAPACITY};
use super::producer_snapshot;
use super::reclaim::Reclaimer;
use super::recovery::{self, PreviousShutdown, RecoveryReport};
use super::segment::{FirstBatch, Segment};

pub(crate) mod compaction;
mod deletion;
mod durability;
mod follower;
mod offline;
mod role;
mod start_offset;

pub use durability::{Durability, SyncClaim};

pub use deletion::RetentionOutcome;
pub use role::ReplicaRole;

/// What an append assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: Offset,
    pub last_offset: Offset,
    pub log_end_offset: Offset,
    pub max_timestamp_ms: i64,
}

/// Whole batches read from the log, exactly as stored.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Zero or more complete batches; empty when the reader is at the end.
    pub batches: Bytes,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
}

/// The mutable state behind the lock.
#[derive(Debug)]
pub(crate) struct LogState {
    pub segments: BTreeMap<Offset, Segment>,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
    pub high_watermark: Offset,
    pub epochs: LeaderEpochCache,
    pub closed: bool,
}

impl LogState {
    pub(crate) fn active(&self) -> LogResult<&Segment> {
        self.segments.values().next_back().ok_or_else(no_segment)
    }

    fn active_mut(&mut self) -> LogResult<&mut Segment> {
        self.segments
            .values_mut()
            .next_back()
            .ok_or_else(no_segment)
    }
}

fn no_segment() -> LogError {
    LogError::Stopped {
        path: PathBuf::new(),
        reason: "the log has no active segment".into(),
    }
}

/// What the partition logs of one data directory share: the clock, the cache of open
/// sealed segments (`open_segments.rs`) and the reclaimer of deleted segments' space.
#[derive(Debug, Clone)]
pub struct LogResources {
    pub clock: Arc<dyn Clock>,
    pub open_segments: OpenSegments,
    pub reclaimer: Reclaimer,
}

impl LogResources {
    /// For a log opened on its own: a small cache of its own, space freed at once.
    pub fn standalone(clock: Arc<dyn Clock>) -> LogResources {
        LogResources {
            clock,
            open_segments: OpenSegments::new(STANDALONE_CAPACITY),
            reclaimer: Reclaimer::immediate(),
        }
    }
}

/// One partition replica's log. See the module docs.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: RwLock<LogConfig>,
    clock: Arc<dyn Clock>,
    state: RwLock<LogState>,
    commit: GroupCommit,
    last_flush_ms: AtomicI64,
    /// How far writeback has been started in the active segment (`flush = interval`).
    writeback: Mutex<WritebackMark>,
    recovery: RecoveryReport,
    /// Where deleted segments' space is given back (`reclaim.rs`).
    reclaimer: Reclaimer,
    /// Where sealed segments' open files are kept (`open_segments.rs`).
    open_segments: OpenSegments,
    /// Why the log is offline (damaged at open; `partition_log/offline.rs`), if it is.
    offline: Option<String>,
    /// Who may append: a [`ReplicaRole`] (`partition_log/role.rs`).
    role: AtomicU8,
}

/// Writeback was started for the bytes before `position` of the segment at `base_offset`.
#[derive(Debug, Clone, Copy, Default)]
struct WritebackMark {
    base_offset: Offset,
    position: u64,
}

/// Under `flush = interval`, writeback of the active segment is started once this many
/// bytes have been appended since the last start (RocksDB's `bytes_per_sync`).
pub const WRITEBACK_START_BYTES: u64 = 256 * 1024;

impl PartitionLog {
    /// Opens (or creates) the log in `dir`, recovering it as `previous` requires, with
    /// resources of its own ([`LogResources::standalone`]).
    pub fn open(
        dir: &Path,
        config: LogConfig,
        clock: Arc<dyn Clock>,
        previous: PreviousShutdown,
    ) -> LogResult<PartitionLog> {
        PartitionLog::open_with(dir, config, previous, &LogResources::standalone(clock))
    }

    /// Opens (or creates) the log in `dir`, recovering it as `previous` requires, sharing
    /// `resources` with the other logs of its data directory.
    pub fn open_with(
        dir: &Path,
        config: LogConfig,
        previous: PreviousShutdown,
        resources: &LogResources,
    ) -> LogResult<PartitionLog> {
        let clock = Arc::clone(&resources.clock);
        let (state, report) = recovery::recover(
            dir,
            &config,
            clock.now_ms(),
            previous,
            &resources.open_segments,
        )?;
        let durable_offset = state.log_end_offset;
        let log = PartitionLog {
            dir: dir.to_path_buf(),
            last_flush_ms: AtomicI64::new(clock.now_ms()),
            config: RwLock::new(config),
            clock,
            state: RwLock::new(state),
            commit: GroupCommit::new(durable_offset),
            writeback: Mutex::new(WritebackMark::default()),
            recovery: report,
            reclaimer: resources.reclaimer.clone(),
            open_segments: resources.open_segments.clone(),
            offline: None,
            role: AtomicU8::new(ReplicaRole::Unassigned.to_u8()),
        };
        log.checkpoint()?;
        // Recovery may have cut a torn tail below a snapshot taken before the crash.
        let log_end_offset = log.log_end_offset();
        producer_snapshot::prune_snapshots(dir, log_end_offset, producer_snapshot::SNAPSHOTS_KEPT)?;
        Ok(log)
    }

    /// Gives the space of segments deleted from now on back through `reclaimer`, a
    /// little at a time; a log opened without one frees it at once.
    pub fn with_reclaimer(mut self, reclaimer: Reclaimer) -> PartitionLog {
        self.reclaimer = reclaimer;
        self
    }

    fn read_state(&self) -> RwLockReadGuard<'_, LogState> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, LogState> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[cfg(test)]
    pub(crate) fn read_state_for_tests(&self) -> RwLockReadGuard<'_, LogState> {
        self.read_state()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The settings in force (a copy; they can change with [`PartitionLog::set_config`]).
    pub fn config(&self) -> LogConfig {
        self.config
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Changes the settings (a topic config change). They apply from the next append,
    /// roll or retention pass; nothing already on disk is rewritten.
    pub fn set_config(&self, config: LogConfig) {
        *self
            .config
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = config;
    }

    /// What recovery found when the log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    pub fn log_start_offset(&self) -> Offset {
        self.read_state().log_start_offset
    }

    pub fn log_end_offset(&self) -> Offset {
        self.read_state().log_end_offset
    }

    pub fn high_watermark(&self) -> Offset {
        self.read_state().high_watermark
    }

    /// Raises the high watermark to `high_watermark` (clamped to the log end offset);
    /// never lowers it. Check and update happen under one lock, so concurrent commits
    /// cannot move it backwards (only a truncation lowers it).
    pub fn advance_high_watermark(&self, high_watermark: Offset) {
        let mut state = self.write_state();
        let candidate = high_watermark.min(state.log_end_offset);
        if candidate > state.high_watermark {
            state.high_watermark = candidate;
        }
    }

    /// Sets the high watermark (replication decides it), clamped to the log end offset.
    pub fn set_high_watermark(&self, high_watermark: Offset) {
        let mut state = self.write_state();
        state.high_watermark = high_watermark
            .min(state.log_end_offset)
            .max(state.log_start_offset);
    }

    pub fn segment_count(&self) -> usize {
        self.read_state().segments.len()
    }

    /// The base offset of the active (last) segment: reads at or above it hit the file
    /// being written, whose recent pages the page cache holds.
    pub fn active_segment_base_offset(&self) -> Offset {
        self.read_state()
            .segments
            .keys()
            .next_back()
            .copied()
            .unwrap_or(Offset(0))
    }

    pub fn size_bytes(&self) -> u64 {
        self.read_state()
            .segments
            .values()
            .map(Segment::size_bytes)
            .sum()
    }

    /// The leader-epoch cache entries `(epoch, start offset)`.
    pub fn leader_epochs(&self) -> Vec<(LeaderEpoch, Offset)> {
        self.read_state().epochs.entries().to_vec()
    }

    /// KIP-101: the end offset of `epoch` in this log, for follower truncation.
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
        let state = self.read_state();
        state.epochs.end_offset_for(epoch, state.log_end_offset)
    }

    /// How many fsyncs group commit has issued.
    pub fn fsyncs_total(&self) -> u64 {
        self.commit.fsyncs_total()
    }

    fn check_running(&self) -> LogResult<()> {
        if let Some(error) = self.offline_error() {
            return Err(error);
        }
        match self.commit.failure() {
            Some(reason) => Err(LogError::Stopped {
                path: self.dir.clone(),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// Records a fatal error so every later write is refused.
    fn stop_on_fatal<T>(&self, result: LogResult<T>) -> LogResult<T> {
        if let Err(error) = &result {
            if error.is_fatal() {
                self.commit.fail(error.to_string());
            }
        }
        result
    }

    /// Appends one batch as the leader: checks its framing and CRC, stamps the next offset
    /// and `epoch` into it, writes it, and (under `flush = always`) waits until it is
    /// fsynced. The batch's records should already have been validated by the caller
    /// (`strata_proto::record::validate_batch`). On any error nothing was appended.
    pub fn append(&self, batch: &[u8], epoch: LeaderEpoch) -> LogResult<AppendInfo> {
        let batch = CheckedBatch::check(batch, self.config().batch_bytes_max)?;
        let info = self.append_deferred(batch, epoch)?;
        if self.config().flush == FlushPolicy::Always {
            self.wait_durable(info.log_end_offset)?;
        }
        Ok(info)
    }

    /// Like [`PartitionLog::append`] but for a batch the caller already checked (its CRC
    /// is not computed again), and it returns as soon as the batch is written (in the
    /// page cache), whatever the flush policy. The caller decides when to wait for
    /// [`PartitionLog::wait_durable`]; this lets it release its own locks first, so
    /// concurrent appends can share the fsync.
    ///
    /// The caller's bytes are not modified: the stamped header is written from a copy,
    /// followed by the rest of the batch as given, in one vectored write.
    pub fn append_deferred(
        &self,
        batch: CheckedBatch<'_>,
        epoch: LeaderEpoch,
    ) -> LogResult<AppendInfo> {
        self.check_running()?;
        let config = self.config();
        let mut header = *batch.header();
        // The checker's size limit may be the request's; the log's own limit holds too.
        header.check_framing(config.batch_bytes_max)?;
        // A checked batch always holds its whole header; this cannot fail in practice.
        let (received_header, records) =
            batch
                .bytes()
                .split_at_checked(BATCH_HEADER_BYTES)
                .ok_or(RecordError::Truncated {
                    needed: BATCH_HEADER_BYTES,
                    available: batch.bytes().len(),
                })?;
        let mut stamped_header = [0u8; BATCH_HEADER_BYTES];
        stamped_header.copy_from_slice(received_header);
        let mut state = self.write_state();
        if state.closed {
            return Err(self.closed_error());
        }
        self.check_may_lead()?;
        if let Some((latest, _)) = state.epochs.latest() {
            if epoch < latest {
                return Err(LogError::StaleLeaderEpoch { epoch, latest });
            }
        }
        header.base_offset = state.log_end_offset;
        header.partition_leader_epoch = epoch;
        set_base_offset(&mut stamped_header, header.base_offset);
        set_partition_leader_epoch(&mut stamped_header, epoch);
        let parts = [&stamped_header[..], records];
        let result = self.append_locked(&mut state, &config, &parts, &header);
        self.stop_on_fatal(result)
    }

    fn closed_error(&self) -> LogError {
        LogError::Stopped {
            path: self.dir.clone(),
            reason: "the log is closed".into(),
        }
    }

    /// Whether appending a batch of `batch_bytes` now would first roll to a new segment
    /// (creating files and fsyncing the directory). A hint for callers that choose a thread
    /// for the append: the append itself decides again under the lock. It assumes the
    /// batch's offsets fit the active segment (a roll for a relative-offset overflow, after
    /// 4 billion offsets in one segment, is not foreseen).
    pub fn append_would_roll(&self, batch_bytes: u64) -> bool {
        let now_ms = self.clock.now_ms();
        let config = self.config();
        let state = self.read_state();
        match state.active() {
            Ok(active) => active.needs_roll(batch_bytes, state.log_end_offset, &config, now_ms),
            Err(_) => true,
        }
    }

    fn append_locked(
        &self,
        state: &mut LogState,
        config: &LogConfig,
        parts: &[&[u8]],
        header: &BatchHeader,
    ) -> LogResult<AppendInfo> {
        let now_ms = self.clock.now_ms();
        let batch_bytes = header.total_bytes() as u64;
        let needs_roll =
            state
                .active()?
                .needs_roll(batch_bytes, header.last_offset(), config, now_ms);
        if needs_roll {
            self.roll_locked(state, config)?;
        }
        state.active_mut()?.append(parts, header, now_ms)?;
        state.log_end_offset = header.next_offset();
        if state
            .epochs
            .assign(header.partition_leader_epoch, header.base_offset)
        {
            state.epochs.store()?;
        }
        Ok(AppendInfo {
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
            log_end_offset: state.log_end_offset,
            max_timestamp_ms: header.max_timestamp,
        })
    }

    /// Seals the active segment (fsynced) and starts a new one at the log end offset. If
    /// the new one cannot be created, the sealed one stays the last and the next append
    /// tries the roll again (sealing again changes nothing; `Segment::create` left no file
    /// behind).
    fn roll_locked(&self, state: &mut LogState, config: &LogConfig) -> LogResult<()> {
        let log_end_offset = state.log_end_offset;
        if state.active()?.size_bytes() == 0 {
            return Ok(());
        }
        state.active_mut()?.seal()?;
        self.commit.mark_durable(log_end_offset);
        let segment = Segment::create(&self.dir, log_end_offset, config, &self.open_segments)?;
        state.segments.insert(log_end_offset, segment);
        tracing::debug!(dir = %self.dir.display(), base_offset = %log_end_offset, "rolled segment");
        Ok(())
    }

    /// Forces a roll of the active segment (no-op when it is empty).
    pub fn roll(&self) -> LogResult<()> {
        self.check_running()?;
        let mut state = self.write_state();
        let config = self.config();
        let result = self.roll_locked(&mut state, &config);
        self.stop_on_fatal(result)
    }

    /// fsyncs everything appended so far, whatever the policy.
    pub fn flush(&self) -> LogResult<()> {
        if self.is_offline() {
            return Ok(());
        }
        let log_end_offset = self.log_end_offset();
        self.wait_durable(log_end_offset)?;
        self.last_flush_ms
            .store(self.clock.now_ms(), Ordering::Relaxed);
        Ok(())
    }

    /// Under `flush = interval:<ms>`, fsyncs when the interval has passed. Returns whether
    /// it flushed.
    pub fn flush_if_due(&self) -> LogResult<bool> {
        let FlushPolicy::Interval { interval_ms } = self.config().flush else {
            return Ok(false);
        };
        if self.is_offline() {
            return Ok(false);
        }
        let now_ms = self.clock.now_ms();
        if now_ms - self.last_flush_ms.load(Ordering::Relaxed) < interval_ms as i64 {
            return Ok(false);
        }
        if self.durable_offset() >= self.log_end_offset() {
            self.last_flush_ms.store(now_ms, Ordering::Relaxed);
            return Ok(false);
        }
        self.flush()?;
        Ok(true)
    }

    /// Under `flush = interval:<ms>`, starts writeback (without waiting) of the active
    /// segment's bytes appended since the last start, once there are at least
    /// [`WRITEBACK_START_BYTES`]. The disk then receives the interval's bytes a little at a
    /// time instead of all at once at the interval's fsync: a second's worth of dirty pages
    /// written back in one burst held producers and consumers up by tens of milliseconds on
    /// a 2-vCPU machine. Promises nothing about durability; a failure to start writeback is
    /// followed by a full flush, whose fsync reports any error the fatal way. Returns
    /// whether it started writeback.
    pub fn start_writeback_if_due(&self) -> LogResult<bool> {
        if !matches!(self.config().flush, FlushPolicy::Interval { .. }) || self.is_offline() {
            return Ok(false);
        }
        let (file, path, base_offset, size) = {
            let state = self.read_state();
            let active = state.active()?;
            (
                active.log_file()?,
                active.log_path().to_path_buf(),
                active.base_offset(),
                active.size_bytes(),
            )
        };
        let mut mark = self
            .writeback
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if mark.base_offset != base_offset || mark.position > size {
            // A new active segment, or this one was truncated.
            *mark = WritebackMark {
                base_offset,
                position: 0,
            };
        }
        if size - mark.position < WRITEBACK_START_BYTES {
            return Ok(false);
        }
        if let Err(error) =
            durable::start_writeback(&file, mark.position, size - mark.position, &path)
        {
            tracing::warn!(%error, "starting writeback failed; flushing instead");
            drop(mark);
            self.flush()?;
            return Ok(false);
        }
        mark.position = size;
        Ok(true)
    }

    /// Reads whole batches from the one holding `offset`, at most `max_bytes` (but at least
    /// one batch), stopping before any batch that reaches `upper_bound` (the high watermark
    /// for consumers; `None` = the log end offset).
    pub fn read(
        &self,
        offset: Offset,
        max_bytes: usize,
        upper_bound: Option<Offset>,
    ) -> LogResult<ReadResult> {
        self.read_with(offset, max_bytes, upper_bound, FirstBatch::AlwaysWhole)
    }

    /// Like [`PartitionLog::read`], but returns nothing rather than a first batch larger
    /// than `max_bytes`: for the partitions of a fetch after the first one with data.
    pub fn read_within(
        &self,
        offset: Offset,
        max_bytes: usize,
        upper_bound: Option<Offset>,
    ) -> LogResult<ReadResult> {
        self.read_with(offset, max_bytes, upper_bound, FirstBatch::OnlyIfItFits)
    }

    fn read_with(
        &self,
        offset: Offset,
        max_bytes: usize,
        upper_bound: Option<Offset>,
        first_batch: FirstBatch,
    ) -> LogResult<ReadResult> {
        if let Some(error) = self.offline_error() {
            return Err(error);
        }
        let state = self.read_state();
        let log_end_offset = state.log_end_offset;
        let result = |batches| ReadResult {
            batches,
            log_start_offset: state.log_start_offset,
            log_end_offset,
        };
        if offset < state.log_start_offset || offset > log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: state.log_start_offset,
                log_end_offset,
            });
        }
        let upper = upper_bound.map_or(log_end_offset, |bound| bound.min(log_end_offset));
        let floor = state
            .segments
            .range(..=offset)
            .next_back()
            .map_or(state.log_start_offset, |(base, _)| *base);
        for segment in state.segments.range(floor..).map(|(_, segment)| segment) {
            if segment.next_offset() <= offset {
                continue;
            }
            if let Some(batches) = segment.read(offset, max_bytes, upper, first_batch)? {
                return Ok(result(batches));
            }
            break;
        }
        Ok(result(Bytes::new()))
    }

    /// The base offset of the first batch (from the log start) whose newest timestamp is
    /// ≥ `timestamp_ms`, or `None` when every record is older. The caller decodes that
    /// batch to find the exact record (Kafka's ListOffsets by timestamp).
    pub fn find_batch_by_timestamp(&self, timestamp_ms: i64) -> LogResult<Option<Offset>> {
        if let Some(error) = self.offline_error() {
            return Err(error);
        }
        let state = self.read_state();
        for segment in state.segments.values() {
            if let Some(header) = segment.find_batch_by_timestamp(timestamp_ms)? {
                return Ok(Some(header.base_offset.max(state.log_start_offset)));
            }
        }
        Ok(None)
    }

    /// Writes the partition checkpoint: recovery point (the durable offset), high
    /// watermark and log start offset. An offline log writes nothing: its checkpoint
    /// keeps what it promised before the damage was found.
    pub fn checkpoint(&self) -> LogResult<()> {
        if self.is_offline() {
            return Ok(());
        }
        let checkpoint = {
            let state = self.read_state();
            PartitionCheckpoint {
                recovery_point: self.commit.durable_offset().min(state.log_end_offset),
                high_watermark: state.high_watermark,
                log_start_offset: state.log_start_offset,
            }
        };
        let result = checkpoint.store(&self.dir);
        self.stop_on_fatal(result)
    }

    /// Clean close: fsync, trim the active segment's indexes, checkpoint with the recovery
    /// point at the log end. Later writes are refused. The log manager writes the
    /// clean-shutdown marker after every log is closed.
    pub fn close(&self) -> LogResult<()> {
        if self.is_offline() {
            self.write_state().closed = true;
            return Ok(());
        }
        self.check_running()?;
        self.flush()?;
        let mut state = self.write_state();
        if state.closed {
            return Ok(());
        }
        let result = state.active_mut().and_then(Segment::close);
        self.stop_on_fatal(result)?;
        state.closed = true;
        let result = state.epochs.store();
        self.stop_on_fatal(result)?;
        drop(state);
        self.checkpoint()
    }
}
