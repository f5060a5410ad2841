//! # Log compaction (the log cleaner)
//!
//! For a partition whose `cleanup_policy` contains `compact`, the cleaner rewrites sealed
//! segments keeping only the newest record of each key (Kafka's `LogCleaner`). What a
//! reader of a compacted log can rely on:
//!
//! - Offsets never change. A record that stays keeps its offset; the log has gaps where
//!   records were removed. Batches keep their offset spans: a batch that loses records is
//!   rewritten with the same base offset and `last_offset_delta`, and a run of batches that
//!   loses all of them becomes one record-less batch over the same offsets
//!   (`cleaner/rewrite.rs`). So batches still follow each other offset by offset —
//!   recovery, the offset index, `find_batch`, follower appends and the replication
//!   contiguity checks are unchanged — and the gaps are inside batches, which every
//!   reader walks by offset delta (`strata_proto::record::retain`).
//! - Each key's newest record below the *first uncleanable offset* stays, and nothing at
//!   or above it is touched: that offset is the smaller of the active segment's base and
//!   the high watermark, so only sealed segments holding committed records are cleaned.
//! - A tombstone (null value) stays while it is its key's newest record, until
//!   `delete_retention_ms` after the segment holding it was first cleaned; then it goes
//!   too, so a consumer that reads from the start within that time sees the delete.
//! - Records without a key are refused at produce on a compacted topic
//!   (`RecordError::KeyRequired`); any already in the log (written before the policy
//!   changed) are removed by the cleaner, as Kafka's does.
//!
//! ## A pass (`partition_log/compaction.rs`, one partition at a time)
//!
//! 1. The *dirty* part runs from `first_dirty_offset` (`cleaner/state.rs`) to the first
//!    uncleanable offset. A pass starts when its share of the cleanable bytes reaches
//!    `min_cleanable_dirty_ratio`, or when a cleaned segment holds tombstones that are
//!    now due.
//! 2. The keys of the dirty part go into an [`OffsetMap`] (key → newest offset) until
//!    the map's budget (`CleanerSettings::dedupe_buffer_bytes`, Kafka's
//!    `log.cleaner.dedupe.buffer.size`) is used up; the part that did not fit waits for
//!    the next pass (several passes clean a log whose keys do not fit at once). Memory
//!    is the map plus one read chunk and one batch.
//! 3. Every cleanable segment from the log start to the end of what was mapped (and any
//!    segment with due tombstones) is rewritten, oldest first, into `<base>.*.cleaned`
//!    files, and swapped in under the log's write lock (`cleaner/swap.rs`, which says what
//!    a crash at each step leaves). A segment that changed meanwhile (retention deleted
//!    it, a truncation cut it) is skipped and the pass ends without advancing.
//! 4. `first_dirty_offset` moves to the end of what was mapped, and each rewritten
//!    segment's first cleaning time and kept tombstones are stored.
//!
//! Segments are rewritten one for one, never merged (Kafka groups small ones), so a
//! compacted log keeps its number of segments; each may become much smaller.
//!
//! ## Replicas
//!
//! Each replica cleans its own copy (as in Kafka), below its own high watermark. A
//! follower keeps fetching from its log end offset: since cleaning keeps every batch's
//! offset span, the leader's next batch always starts exactly there, cleaned or not, so
//! the follower's contiguity check needs no exception for gaps. Leader and follower
//! copies of a cleaned region may differ byte for byte (they were cleaned at different
//! times) but hold the same offsets, epochs and newest value per key.
//!
//! ## Idempotent producers
//!
//! A rewritten batch keeps its producer id, epoch and base sequence (and its span, so the
//! last sequence is unchanged). A batch removed whole loses them: the record-less batch
//! has no producer. Kafka keeps the last batch of each producer for this; Strata does not:
//! producer state is rebuilt from the snapshot taken at the active segment's base and
//! replays the active segment, which is never cleaned. Only when every snapshot is lost
//! does a replay cross cleaned segments, and then a producer whose batches were all
//! removed is forgotten (its next batch is checked as a new producer's).

pub mod offset_map;
pub mod rewrite;
pub mod state;
pub mod swap;

pub use offset_map::OffsetMap;
pub use state::{CleanedSegment, CleanerState};

use strata_proto::types::Offset;

/// Kafka's `log.cleaner.dedupe.buffer.size` default: 128 MiB.
pub const DEDUPE_BUFFER_BYTES_DEFAULT: usize = 128 << 20;

/// Settings of the cleaner shared by every log of a data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanerSettings {
    /// The offset map's budget for one pass (see the module docs).
    pub dedupe_buffer_bytes: usize,
}

impl Default for CleanerSettings {
    fn default() -> CleanerSettings {
        CleanerSettings {
            dedupe_buffer_bytes: DEDUPE_BUFFER_BYTES_DEFAULT,
        }
    }
}

/// When [`crate::log::PartitionLog::clean`] does a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanTrigger {
    /// Only when the dirty ratio is reached or tombstones are due (the background pass).
    WhenDue,
    /// Whenever there is anything cleanable (tests, tools).
    Now,
}

/// What one cleaning pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanOutcome {
    pub segments_cleaned: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
    pub tombstones_removed: u64,
    /// Where the next pass starts mapping keys.
    pub first_dirty_offset: Offset,
    /// The dirty part did not fit the offset map; the next pass continues it.
    pub map_filled: bool,
}
