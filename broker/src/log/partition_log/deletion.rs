//! Deleting from a partition log: truncation (replication's divergence handling),
//! retention, and removing every segment of a deleted partition. Segments go whole, their
//! files are unlinked under the write lock before the directory fsync, and the `.log`'s
//! space is given back by the log's reclaimer (`reclaim.rs`).

use strata_proto::types::Offset;

use super::super::checkpoint::PartitionCheckpoint;
use super::super::cleaner::CleanerState;
use super::super::durable;
use super::super::error::{LogError, LogResult};
use super::super::producer_snapshot;
use super::super::segment::Segment;
use super::{LogState, PartitionLog};

/// What [`PartitionLog::apply_retention`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionOutcome {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: Offset,
}

impl PartitionLog {
    /// Removes every record at `offset` or beyond (a batch holding `offset` goes whole), for
    /// replication's divergence handling. Returns the new log end offset.
    pub fn truncate_to(&self, offset: Offset) -> LogResult<Offset> {
        self.check_running()?;
        let mut state = self.write_state();
        let result = self.truncate_locked(&mut state, offset);
        self.stop_on_fatal(result)
    }

    fn truncate_locked(&self, state: &mut LogState, offset: Offset) -> LogResult<Offset> {
        if offset >= state.log_end_offset {
            return Ok(state.log_end_offset);
        }
        let offset = offset.max(state.log_start_offset);
        self.lower_checkpoint_before_truncation(state, offset)?;
        // Segments that start at or after the cut go whole, newest first; the oldest stays
        // (its base is ≤ the log start ≤ `offset`) so there is always an active segment.
        let doomed: Vec<Offset> = state
            .segments
            .range(offset..)
            .rev()
            .map(|(base, _)| *base)
            .collect();
        for base in doomed {
            if state.segments.len() == 1 {
                break;
            }
            if let Some(segment) = state.segments.remove(&base) {
                segment.delete(&self.reclaimer)?;
            }
        }
        let active = state.active_mut()?;
        let new_end = if active.base_offset() >= offset {
            let base = active.base_offset();
            active.truncate_bytes(0, base)?;
            base
        } else {
            active.truncate_to(offset)?
        };
        if active.is_sealed() {
            active.unseal()?;
        }
        durable::sync_dir(&self.dir)?;
        state.log_end_offset = new_end;
        state.high_watermark = state.high_watermark.min(new_end);
        self.commit.truncated(new_end);
        if state.epochs.truncate_from_end(new_end) {
            state.epochs.store()?;
        }
        let active_base = state.active()?.base_offset();
        CleanerState::after_truncation(&self.dir, new_end, active_base)?;
        // Snapshots above the new end describe records that are gone, and would describe
        // the records that replace them wrongly.
        producer_snapshot::prune_snapshots(&self.dir, new_end, producer_snapshot::SNAPSHOTS_KEPT)?;
        Ok(new_end)
    }

    /// Writes the checkpoint with its recovery point and high watermark lowered to where
    /// a truncation at `offset` will end the log, before any file is cut: recovery takes
    /// a log that ends below its checkpoint for lost data, so the promise must come down
    /// first (a crash in between leaves a checkpoint below a longer log, which is fine).
    fn lower_checkpoint_before_truncation(
        &self,
        state: &LogState,
        offset: Offset,
    ) -> LogResult<()> {
        let new_end = end_after_truncation(state, offset)?;
        let checkpoint = PartitionCheckpoint {
            recovery_point: self.commit.durable_offset().min(new_end),
            high_watermark: state.high_watermark.min(new_end),
            log_start_offset: state.log_start_offset.min(new_end),
        };
        checkpoint.store(&self.dir)
    }

    /// Deletes sealed segments past `retention_ms` (by their newest timestamp) or beyond
    /// `retention_bytes`, oldest first, never the active segment and never data at or above
    /// the high watermark. Advances the log start offset. Only under a cleanup policy that
    /// contains `delete`: a compacted log keeps every key's newest record for good.
    pub fn apply_retention(&self) -> LogResult<RetentionOutcome> {
        let config = self.config();
        if self.is_offline() || !config.cleanup_policy.deletes() {
            return Ok(RetentionOutcome::default());
        }
        self.check_running()?;
        let now_ms = self.clock.now_ms();
        let mut state = self.write_state();
        let mut outcome = RetentionOutcome {
            log_start_offset: state.log_start_offset,
            ..RetentionOutcome::default()
        };
        let mut total_bytes: u64 = state.segments.values().map(Segment::size_bytes).sum();
        while state.segments.len() > 1 {
            let Some(oldest) = state.segments.values().next() else {
                break;
            };
            let expired = config.retention_ms.is_some_and(|retention_ms| {
                oldest.max_timestamp_ms() >= 0
                    && now_ms - oldest.max_timestamp_ms() > retention_ms as i64
            });
            let oversized = config.retention_bytes.is_some_and(|retention_bytes| {
                total_bytes - oldest.size_bytes() >= retention_bytes
            });
            if !(expired || oversized) || oldest.next_offset() > state.high_watermark {
                break;
            }
            let base = oldest.base_offset();
            let Some(segment) = state.segments.remove(&base) else {
                break;
            };
            total_bytes -= segment.size_bytes();
            outcome.bytes_deleted += segment.size_bytes();
            outcome.segments_deleted += 1;
            let next_start = segment.next_offset();
            let result = segment.delete(&self.reclaimer);
            self.stop_on_fatal(result)?;
            state.log_start_offset = next_start;
        }
        if outcome.segments_deleted > 0 {
            let result = durable::sync_dir(&self.dir);
            self.stop_on_fatal(result)?;
            let log_start_offset = state.log_start_offset;
            if state.epochs.truncate_from_start(log_start_offset) {
                let result = state.epochs.store();
                self.stop_on_fatal(result)?;
            }
            outcome.log_start_offset = log_start_offset;
            drop(state);
            self.checkpoint()?;
        }
        Ok(outcome)
    }

    /// Deletes every segment of a closed log whose partition is being removed (its topic
    /// was deleted). The files are unlinked now and their space given back by the
    /// reclaimer; the caller removes the directory and what is left in it.
    pub fn delete_segments(&self) -> LogResult<()> {
        let mut state = self.write_state();
        if !state.closed {
            return Err(LogError::Stopped {
                path: self.dir.clone(),
                reason: "a log must be closed before its segments are deleted".into(),
            });
        }
        let segments = std::mem::take(&mut state.segments);
        for segment in segments.into_values() {
            segment.delete(&self.reclaimer)?;
        }
        Ok(())
    }
}

/// Where [`PartitionLog::truncate_to`] at `offset` (≥ the log start, < the log end) will
/// end the log: at the start of the batch holding `offset` in the last segment that
/// starts below it, or at the oldest segment's base when every segment starts at or
/// above it.
fn end_after_truncation(state: &LogState, offset: Offset) -> LogResult<Offset> {
    let Some((_, segment)) = state.segments.range(..offset).next_back() else {
        return Ok(state.segments.keys().next().copied().unwrap_or(offset));
    };
    Ok(match segment.find_batch(offset)? {
        Some((_, header)) => header.base_offset,
        None => segment.next_offset(),
    })
}
