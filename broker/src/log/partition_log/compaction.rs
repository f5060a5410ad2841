//! A cleaning pass over one partition log (the algorithm is in `log/cleaner.rs`): which
//! segments are cleanable, the offset map of the dirty part, each segment rewritten and
//! swapped in under the write lock, and the cleaner's checkpoint.

use std::collections::{BTreeMap, BTreeSet};

use strata_proto::record::{visit_keys, BatchHeader, DecodeLimits, DECOMPRESSED_BYTES_MAX_DEFAULT};
use strata_proto::types::Offset;

use super::super::cleaner::rewrite::{rewrite_segment, CleanPlan, RewriteCounts};
use super::super::cleaner::state::{CleanedSegment, CleanerState};
use super::super::cleaner::{swap, CleanOutcome, CleanTrigger, CleanerSettings, OffsetMap};
use super::super::config::LogConfig;
use super::super::error::{LogError, LogResult};
use super::super::segment::Segment;
use super::PartitionLog;

/// How many bytes one read of the dirty part takes while its keys are mapped.
const MAP_READ_CHUNK_BYTES: usize = 1 << 20;

/// A sealed segment below the first uncleanable offset, as it was when the pass looked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cleanable {
    base_offset: Offset,
    next_offset: Offset,
    size_bytes: u64,
}

impl PartitionLog {
    /// One cleaning pass (see `log/cleaner.rs`); nothing when the log is not compacted,
    /// is offline, or (for [`CleanTrigger::WhenDue`]) is not dirty enough and holds no due
    /// tombstones. Blocking, and as long as reading the cleanable part: run it on a
    /// background thread.
    pub fn clean(
        &self,
        settings: &CleanerSettings,
        trigger: CleanTrigger,
    ) -> LogResult<CleanOutcome> {
        let config = self.config();
        if self.is_offline() || !config.cleanup_policy.compacts() {
            return Ok(CleanOutcome::default());
        }
        self.check_running()?;
        let now_ms = self.clock.now_ms();
        let (segments, log_start_offset) = self.cleanable_segments();
        let mut state = CleanerState::load(&self.dir)?;
        state.segments.retain(|base, _| segments.contains_key(base));
        let Some(cleanable_end) = segments.values().next_back().map(|last| last.next_offset) else {
            return Ok(CleanOutcome::default());
        };
        let first_dirty = state
            .first_dirty_offset
            .clamp(log_start_offset, cleanable_end);
        let due_bases: BTreeSet<Offset> = segments
            .keys()
            .copied()
            .filter(|base| tombstones_due(&state, *base, &config, now_ms))
            .collect();
        let due = |base: &Offset| due_bases.contains(base);
        if trigger == CleanTrigger::WhenDue
            && due_bases.is_empty()
            && !dirty_enough(&segments, first_dirty, &config)
        {
            return Ok(CleanOutcome::default());
        }
        let limits = DecodeLimits {
            batch_bytes_max: config.batch_bytes_max,
            decompressed_bytes_max: DECOMPRESSED_BYTES_MAX_DEFAULT,
        };
        let mut map = OffsetMap::new(settings.dedupe_buffer_bytes);
        let mapped_end = self.map_keys(&mut map, first_dirty, cleanable_end, &limits)?;
        let mut outcome = CleanOutcome {
            first_dirty_offset: first_dirty,
            map_filled: mapped_end < cleanable_end,
            ..CleanOutcome::default()
        };
        let chosen: Vec<Cleanable> = segments
            .values()
            .filter(|segment| segment.base_offset < mapped_end || due(&segment.base_offset))
            .copied()
            .collect();
        let mut completed = true;
        for segment in chosen {
            let plan = CleanPlan {
                map: &map,
                drop_tombstones: due(&segment.base_offset),
                limits,
            };
            let Some(counts) = self.clean_segment(&config, segment, &plan)? else {
                completed = false;
                break;
            };
            outcome.segments_cleaned += 1;
            outcome.bytes_before += segment.size_bytes;
            outcome.bytes_after += counts.size_bytes;
            outcome.records_removed += counts.records_removed;
            outcome.tombstones_removed += counts.tombstones_removed;
            let cleaned_at_ms = state
                .segments
                .get(&segment.base_offset)
                .map_or(now_ms, |cleaned| cleaned.cleaned_at_ms);
            state.segments.insert(
                segment.base_offset,
                CleanedSegment {
                    cleaned_at_ms,
                    tombstones: counts.tombstones_kept,
                },
            );
        }
        if completed {
            state.first_dirty_offset = mapped_end;
            outcome.first_dirty_offset = mapped_end;
        }
        state.store(&self.dir)?;
        if outcome.segments_cleaned > 0 {
            tracing::info!(
                dir = %self.dir.display(),
                segments = outcome.segments_cleaned,
                bytes_before = outcome.bytes_before,
                bytes_after = outcome.bytes_after,
                records_removed = outcome.records_removed,
                tombstones_removed = outcome.tombstones_removed,
                first_dirty_offset = %outcome.first_dirty_offset,
                "cleaned partition log"
            );
        }
        Ok(outcome)
    }

    /// The sealed segments wholly below the first uncleanable offset (the smaller of the
    /// active segment's base and the high watermark), and the log start offset.
    fn cleanable_segments(&self) -> (BTreeMap<Offset, Cleanable>, Offset) {
        let state = self.read_state();
        let active_base = state
            .segments
            .keys()
            .next_back()
            .copied()
            .unwrap_or_default();
        let first_uncleanable = active_base.min(state.high_watermark);
        let segments = state
            .segments
            .values()
            .filter(|segment| segment.is_sealed() && segment.next_offset() <= first_uncleanable)
            .map(|segment| {
                let cleanable = Cleanable {
                    base_offset: segment.base_offset(),
                    next_offset: segment.next_offset(),
                    size_bytes: segment.size_bytes(),
                };
                (cleanable.base_offset, cleanable)
            })
            .collect();
        (segments, state.log_start_offset)
    }

    /// Puts the keys of the records from `from` to `to` into `map`, oldest first, until
    /// one does not fit. Returns the offset up to which every key is in the map.
    fn map_keys(
        &self,
        map: &mut OffsetMap,
        from: Offset,
        to: Offset,
        limits: &DecodeLimits,
    ) -> LogResult<Offset> {
        let mut offset = from;
        while offset < to {
            let read = self.read(offset, MAP_READ_CHUNK_BYTES, Some(to))?;
            if read.batches.is_empty() {
                break;
            }
            let mut position = 0;
            while let Some(rest) = read.batches.get(position..).filter(|rest| !rest.is_empty()) {
                let header = BatchHeader::parse(rest)?;
                let batch = rest.get(..header.total_bytes()).unwrap_or(rest);
                let mut unmapped: Option<Offset> = None;
                visit_keys(batch, limits, |record| {
                    if unmapped.is_some() || record.offset < from {
                        return;
                    }
                    if let Some(key) = record.key {
                        if !map.insert(key, record.offset) {
                            unmapped = Some(record.offset);
                        }
                    }
                })?;
                if let Some(stop) = unmapped {
                    return Ok(stop);
                }
                position += header.total_bytes();
                offset = header.next_offset();
            }
        }
        Ok(offset.min(to))
    }

    /// Rewrites `segment` and swaps the result in. `None` when the segment changed or went
    /// away meanwhile (the cleaned files are then removed).
    fn clean_segment(
        &self,
        config: &LogConfig,
        segment: Cleanable,
        plan: &CleanPlan<'_>,
    ) -> LogResult<Option<RewriteCounts>> {
        let rewritten =
            rewrite_segment(self, config, segment.base_offset, segment.next_offset, plan)?;
        let replaced = match rewritten {
            Some(counts) => self.replace_segment(config, segment)?.then_some(counts),
            None => None,
        };
        if replaced.is_none() {
            swap::recover(&self.dir)?;
        }
        Ok(replaced)
    }

    /// Swaps the cleaned files of `segment` in (`cleaner/swap.rs`) and puts the new
    /// segment in the map, under the write lock; `false` when the segment is no longer the
    /// one that was cleaned.
    fn replace_segment(&self, config: &LogConfig, segment: Cleanable) -> LogResult<bool> {
        let mut state = self.write_state();
        if state.closed {
            return Err(self.closed_error());
        }
        let unchanged = state
            .segments
            .get(&segment.base_offset)
            .is_some_and(|current| {
                current.is_sealed()
                    && current.next_offset() == segment.next_offset
                    && current.size_bytes() == segment.size_bytes
            });
        let is_active = state.segments.keys().next_back() == Some(&segment.base_offset);
        if !unchanged || is_active {
            return Ok(false);
        }
        let result = commit_swap(&self.dir, segment.base_offset).and_then(|()| {
            let mut cleaned = Segment::open_sealed(
                &self.dir,
                segment.base_offset,
                segment.next_offset,
                config,
                &self.open_segments,
            )?;
            cleaned.load_tail(config)?;
            Ok(cleaned)
        });
        let cleaned = self.stop_on_fatal(result).map_err(|error| {
            // The files on disk are the cleaned segment's (or a crash's leftovers, which
            // the next open finishes); the old in-memory segment no longer matches them.
            self.commit
                .fail(format!("swapping in a cleaned segment failed: {error}"));
            error
        })?;
        if cleaned.next_offset() != segment.next_offset {
            let error = LogError::SegmentsDoNotMeet {
                path: cleaned.log_path().to_path_buf(),
                end_offset: cleaned.next_offset(),
                next_base_offset: segment.next_offset,
            };
            self.commit.fail(error.to_string());
            return Err(error);
        }
        if let Some(old) = state.segments.insert(segment.base_offset, cleaned) {
            old.retire_replaced();
        }
        Ok(true)
    }
}

/// Whether the segment at `base` was first cleaned `delete_retention_ms` ago or longer
/// and kept tombstones then.
fn tombstones_due(state: &CleanerState, base: Offset, config: &LogConfig, now_ms: i64) -> bool {
    state.segments.get(&base).is_some_and(|cleaned| {
        cleaned.tombstones > 0
            && now_ms.saturating_sub(cleaned.cleaned_at_ms)
                >= i64::try_from(config.delete_retention_ms).unwrap_or(i64::MAX)
    })
}

/// Whether the dirty share of the cleanable bytes reaches `min_cleanable_dirty_ratio`.
fn dirty_enough(
    segments: &BTreeMap<Offset, Cleanable>,
    first_dirty: Offset,
    config: &LogConfig,
) -> bool {
    let total_bytes: u64 = segments.values().map(|segment| segment.size_bytes).sum();
    let dirty_bytes: u64 = segments
        .values()
        .filter(|segment| segment.next_offset > first_dirty)
        .map(|segment| segment.size_bytes)
        .sum();
    dirty_bytes > 0
        && config
            .min_cleanable_dirty_ratio
            .is_reached(dirty_bytes, total_bytes)
}

/// [`swap::commit`]; in tests, only the steps [`crash_tests::set_swap_steps`] allows,
/// after which it fails as a crash would stop it.
fn commit_swap(dir: &std::path::Path, base_offset: Offset) -> LogResult<()> {
    #[cfg(test)]
    {
        let steps = crash_tests::swap_steps();
        if steps < swap::STEPS {
            swap::commit_steps(dir, base_offset, steps)?;
            return Err(LogError::Stopped {
                path: dir.to_path_buf(),
                reason: format!("simulated crash after {steps} swap steps"),
            });
        }
    }
    swap::commit(dir, base_offset)
}

#[cfg(test)]
pub(crate) mod crash_tests {
    use std::cell::Cell;

    thread_local! {
        static SWAP_STEPS: Cell<usize> = const { Cell::new(super::swap::STEPS) };
    }

    /// Makes this thread's next swaps stop after `steps` steps (`cleaner/swap.rs`).
    pub(crate) fn set_swap_steps(steps: usize) {
        SWAP_STEPS.with(|cell| cell.set(steps));
    }

    pub(super) fn swap_steps() -> usize {
        SWAP_STEPS.with(Cell::get)
    }
}
