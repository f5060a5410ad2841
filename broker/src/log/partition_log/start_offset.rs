//! A follower's log start following its leader's: Kafka's `maybeIncrementLogStartOffset`
//! (segments wholly below the leader's log start go) and `truncateFullyAndStartAt` (a
//! follower whose log end is below the leader's log start can never fetch what it lacks,
//! since the leader's retention deleted it: it drops its log and starts an empty one there).
//!
//! Crash behaviour of [`PartitionLog::truncate_fully_and_start_at`]: the checkpoint is
//! lowered to the old log start first, then the segments are deleted newest first, then
//! the new empty segment is created and the checkpoint written at the new start. A crash at
//! any step leaves a prefix of the old log (recovery accepts it: nothing was promised past
//! the old start any more), no segment (recovery starts an empty log at the old start), or
//! the new segment alone (recovery takes the larger of its base and the checkpoint's log
//! start). The next fetch brings the follower to the new start again.

use strata_proto::types::Offset;

use super::super::checkpoint::PartitionCheckpoint;
use super::super::durable;
use super::super::error::LogResult;
use super::super::producer_snapshot;
use super::super::segment::Segment;
use super::{LogState, PartitionLog};

impl PartitionLog {
    /// Raises the log start offset to `offset` (never lowers it, never past the high
    /// watermark) and deletes the segments wholly below it. Returns the log start offset.
    pub fn advance_log_start_offset(&self, offset: Offset) -> LogResult<Offset> {
        self.check_running()?;
        let mut state = self.write_state();
        let target = offset.min(state.high_watermark);
        if target <= state.log_start_offset {
            return Ok(state.log_start_offset);
        }
        let result = self.delete_below(&mut state, target);
        let log_start_offset = self.stop_on_fatal(result)?;
        drop(state);
        self.checkpoint()?;
        Ok(log_start_offset)
    }

    fn delete_below(&self, state: &mut LogState, target: Offset) -> LogResult<Offset> {
        let mut deleted = false;
        while state.segments.len() > 1 {
            let Some(oldest) = state.segments.values().next() else {
                break;
            };
            if oldest.next_offset() > target {
                break;
            }
            let base = oldest.base_offset();
            if let Some(segment) = state.segments.remove(&base) {
                segment.delete(&self.reclaimer)?;
                deleted = true;
            }
        }
        if deleted {
            durable::sync_dir(&self.dir)?;
        }
        state.log_start_offset = target;
        if state.epochs.truncate_from_start(target) {
            state.epochs.store()?;
        }
        Ok(target)
    }

    /// Deletes every record and starts the log again, empty, at `offset` (which must be
    /// above the log end: a follower that fell behind the leader's log start).
    pub fn truncate_fully_and_start_at(&self, offset: Offset) -> LogResult<()> {
        self.check_running()?;
        let mut state = self.write_state();
        let result = self.start_again_locked(&mut state, offset);
        self.stop_on_fatal(result)
    }

    fn start_again_locked(&self, state: &mut LogState, offset: Offset) -> LogResult<()> {
        let old_start = state.log_start_offset;
        PartitionCheckpoint {
            recovery_point: old_start,
            high_watermark: old_start,
            log_start_offset: old_start,
        }
        .store(&self.dir)?;
        while let Some((base, _)) = state.segments.last_key_value() {
            let base = *base;
            if let Some(segment) = state.segments.remove(&base) {
                segment.delete(&self.reclaimer)?;
            }
        }
        durable::sync_dir(&self.dir)?;
        let config = self.config();
        let segment = Segment::create(&self.dir, offset, &config, &self.open_segments)?;
        state.segments.insert(offset, segment);
        durable::sync_dir(&self.dir)?;
        state.log_start_offset = offset;
        state.log_end_offset = offset;
        state.high_watermark = offset;
        self.commit.truncated(old_start);
        self.commit.mark_durable(offset);
        if state.epochs.truncate_from_end(old_start) {
            state.epochs.store()?;
        }
        producer_snapshot::prune_snapshots(&self.dir, old_start, 0)?;
        PartitionCheckpoint {
            recovery_point: offset,
            high_watermark: offset,
            log_start_offset: offset,
        }
        .store(&self.dir)?;
        tracing::info!(dir = %self.dir.display(), offset = offset.0,
            "the leader no longer holds this follower's log end: the log starts again, empty, at the leader's log start");
        Ok(())
    }
}

#[cfg(test)]
#[path = "start_offset_tests.rs"]
mod tests;
