//! Rewriting one sealed segment without its obsolete records, into the `.cleaned` files
//! of `swap.rs`.
//!
//! The old segment is read like a consumer reads it (`PartitionLog::read`, whole
//! batches, a chunk at a time, the lock held only per chunk), so appends and fetches go
//! on meanwhile. Each batch becomes, in the new segment:
//! - itself, byte for byte, when every record is kept;
//! - itself rewritten without the dropped records (`strata_proto::record::retain`:
//!   same base offset, `last_offset_delta`, epoch and producer fields; each kept record's
//!   bytes unchanged; recompressed with its codec);
//! - nothing, when no record is kept: a run of such batches of one leader epoch becomes
//!   one record-less batch spanning their offsets (`empty_batch`), so each batch of the
//!   segment still starts where the one before ended and the segment still ends where the
//!   next begins. Recovery, the offset index, `find_batch`, follower appends and fetch
//!   sessions keep checking that offsets follow each other exactly.
//!
//! A record is dropped when the offset map holds a newer offset for its key, when it has
//! no key (Kafka's cleaner drops those too: a compacted log cannot hold them), or when it
//! is a tombstone and the segment's tombstones are due (`CleanPlan::drop_tombstones`).

use bytes::Bytes;
use strata_proto::record::header::attributes;
use strata_proto::record::{
    empty_batch, retain_records, BatchHeader, DecodeLimits, RecordKey, Retained,
};
use strata_proto::types::{LeaderEpoch, Offset};

use super::super::config::LogConfig;
use super::super::error::{LogError, LogResult};
use super::super::partition_log::PartitionLog;
use super::super::segment::Segment;
use super::offset_map::OffsetMap;
use super::swap::CLEANED_SUFFIX;

/// How many bytes of the old segment one read takes.
const READ_CHUNK_BYTES: usize = 1 << 20;

/// What decides which records of one segment stay.
#[derive(Debug)]
pub struct CleanPlan<'a> {
    pub map: &'a OffsetMap,
    /// The segment was cleaned `delete_retention_ms` ago or longer: its tombstones go
    /// (unless a newer record of the key would be uncovered — never: a tombstone is only
    /// kept while it is its key's newest record, and then nothing older is left).
    pub drop_tombstones: bool,
    pub limits: DecodeLimits,
}

/// A segment rewritten into its `.cleaned` files, sealed and fsynced.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RewriteCounts {
    pub size_bytes: u64,
    pub records_removed: u64,
    pub tombstones_removed: u64,
    pub tombstones_kept: u64,
}

/// The run of removed batches waiting to become one empty batch.
#[derive(Debug, Clone, Copy)]
struct RemovedRun {
    base_offset: Offset,
    last_offset: Offset,
    epoch: LeaderEpoch,
}

/// Rewrites the sealed segment `base_offset..next_offset` of `log` into
/// `<base>.*.cleaned` in `log.dir()`. `None` when the segment went away meanwhile
/// (retention or truncation got there first); the cleaned files are then removed.
pub fn rewrite_segment(
    log: &PartitionLog,
    config: &LogConfig,
    base_offset: Offset,
    next_offset: Offset,
    plan: &CleanPlan<'_>,
) -> LogResult<Option<RewriteCounts>> {
    let mut cleaned = Segment::create_cleaned(log.dir(), base_offset, config, CLEANED_SUFFIX)?;
    let mut writer = Writer {
        segment: &mut cleaned,
        counts: RewriteCounts::default(),
        removed: None,
        now_ms: 0,
    };
    let mut offset = base_offset;
    while offset < next_offset {
        let read = match log.read(offset, READ_CHUNK_BYTES, Some(next_offset)) {
            Ok(read) => read,
            Err(LogError::OffsetOutOfRange { .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        if read.batches.is_empty() {
            // Cut short by a truncation.
            return Ok(None);
        }
        let mut position = 0;
        while let Some(rest) = read.batches.get(position..).filter(|rest| !rest.is_empty()) {
            let header = BatchHeader::parse(rest)?;
            let batch = read
                .batches
                .slice(position..position + header.total_bytes());
            writer.add(batch, &header, plan)?;
            position += header.total_bytes();
            offset = header.next_offset();
        }
    }
    writer.flush_removed()?;
    let counts = writer.counts;
    cleaned.seal()?;
    Ok(Some(RewriteCounts {
        size_bytes: cleaned.size_bytes(),
        ..counts
    }))
}

struct Writer<'a> {
    segment: &'a mut Segment,
    counts: RewriteCounts,
    removed: Option<RemovedRun>,
    now_ms: i64,
}

impl Writer<'_> {
    fn add(&mut self, batch: Bytes, header: &BatchHeader, plan: &CleanPlan<'_>) -> LogResult<()> {
        if header.attributes & attributes::CONTROL != 0 {
            // Markers of transactions, which Strata does not write yet: kept as they are.
            return self.append(batch);
        }
        let mut removed = 0_u64;
        let mut tombstones_removed = 0_u64;
        let mut tombstones_kept = 0_u64;
        let retained = retain_records(&batch, &plan.limits, |record| {
            let keep = keeps(plan, record);
            match (keep, record.is_tombstone) {
                (true, true) => tombstones_kept += 1,
                (false, true) => tombstones_removed += 1,
                _ => {}
            }
            removed += u64::from(!keep);
            keep
        })?;
        self.counts.records_removed += removed;
        self.counts.tombstones_removed += tombstones_removed;
        self.counts.tombstones_kept += tombstones_kept;
        match retained {
            Retained::All => self.append(batch),
            Retained::Some(rewritten) => self.append(rewritten),
            Retained::None => {
                self.note_removed(header)?;
                Ok(())
            }
        }
    }

    /// Extends the run of removed batches with `header`'s, or starts a new one.
    fn note_removed(&mut self, header: &BatchHeader) -> LogResult<()> {
        let epoch = header.partition_leader_epoch;
        if let Some(run) = &mut self.removed {
            if run.epoch == epoch && run.last_offset.plus(1) == header.base_offset {
                run.last_offset = header.last_offset();
                return Ok(());
            }
        }
        self.flush_removed()?;
        self.removed = Some(RemovedRun {
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
            epoch,
        });
        Ok(())
    }

    fn flush_removed(&mut self) -> LogResult<()> {
        if let Some(run) = self.removed.take() {
            let empty = empty_batch(run.base_offset, run.last_offset, run.epoch)?;
            self.write(empty)?;
        }
        Ok(())
    }

    fn append(&mut self, batch: Bytes) -> LogResult<()> {
        self.flush_removed()?;
        self.write(batch)
    }

    fn write(&mut self, batch: Bytes) -> LogResult<()> {
        let header = BatchHeader::parse(&batch)?;
        self.segment.append(&[&batch], &header, self.now_ms)
    }
}

/// Whether `record` stays (module docs).
fn keeps(plan: &CleanPlan<'_>, record: RecordKey<'_>) -> bool {
    let Some(key) = record.key else {
        return false;
    };
    if plan
        .map
        .newest(key)
        .is_some_and(|newest| newest > record.offset)
    {
        return false;
    }
    !(record.is_tombstone && plan.drop_tombstones)
}
