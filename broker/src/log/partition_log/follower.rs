//! The follower's append: whole batches fetched from the leader, written verbatim.
//!
//! A follower's log must be a byte-for-byte prefix of its leader's, so nothing is stamped:
//! each batch keeps the base offset and partition leader epoch the leader gave it. What
//! the leader's [`PartitionLog::append`] decides (the next offset, the epoch), the follower
//! checks instead, for the whole call before anything is written:
//!
//! - every batch: framing within the log's `batch_bytes_max`, length field, CRC (the
//!   checks recovery makes; a fetched batch is never trusted because a leader sent it);
//! - the first batch starts at the log end offset, and each next batch right after the
//!   one before (`base = previous last offset + 1`). One exception, for compacted logs:
//!   the leader's cleaner replaces a run of batches it emptied with one record-less batch
//!   over their offsets (`log/cleaner.rs`), so a follower whose log ends inside that run
//!   is sent a first batch that starts below its log end. Such a batch — no records,
//!   starting below the log end offset and ending at or past it — is written trimmed to
//!   start exactly there (a record-less batch from the log end offset to its last offset,
//!   same epoch). Nothing else may start anywhere but at the log end offset;
//! - leader epochs never go down: not within the call, and not below the log's latest
//!   epoch. Recovery refuses an epoch that steps back, so this is what lets a follower's
//!   log be recovered the same way as a leader's.
//!
//! A refusal is a [`LogError`] naming the batch and what did not fit, and writes nothing.
//! Once the checks passed, the batches are written one `write` each (rolling segments
//! and indexing as `append` does), a new epoch enters the leader-epoch cache at its
//! batch's base offset, and under `flush = always` [`PartitionLog::append_as_follower`]
//! waits for the group-commit fsync. An I/O error part-way leaves the batches before
//! the failed one appended: whole, checked batches, so the log stays valid and the
//! fetcher resumes at its log end offset.
//!
//! The high watermark is not touched: a follower learns it from the leader's fetch
//! response and sets it with [`PartitionLog::set_high_watermark`].

use bytes::Bytes;
use strata_proto::record::{empty_batch, BatchHeader, CheckedBatch, RecordError};
use strata_proto::types::{LeaderEpoch, Offset};

use super::super::config::{FlushPolicy, LogConfig};
use super::super::error::{LogError, LogResult};
use super::{AppendInfo, LogState, PartitionLog};

impl PartitionLog {
    /// Appends whole batches fetched from the leader, laid end to end as a fetch returns
    /// them, verbatim (see the module docs for what is checked). Under `flush = always` it
    /// returns once they are fsynced. An empty `batches` is refused: the fetcher skips
    /// fetches that returned nothing.
    pub fn append_as_follower(&self, batches: &[u8]) -> LogResult<AppendInfo> {
        let info = self.append_as_follower_deferred(batches)?;
        if self.config().flush == FlushPolicy::Always {
            self.wait_durable(info.log_end_offset)?;
        }
        Ok(info)
    }

    /// Like [`PartitionLog::append_as_follower`] but returns as soon as the batches are
    /// written (in the page cache), whatever the flush policy; the caller waits with
    /// [`PartitionLog::wait_durable`] or [`PartitionLog::poll_durable`] before the
    /// offsets count as its own (before it reports them to the leader, under
    /// `flush = always`).
    pub fn append_as_follower_deferred(&self, batches: &[u8]) -> LogResult<AppendInfo> {
        self.check_running()?;
        let config = self.config();
        let trimmed = trimmed_empty_first_batch(batches, self.log_end_offset())?;
        let mut checked = split_fetched_batches(batches, config.batch_bytes_max)?;
        if let (Some(trimmed), Some(first)) = (&trimmed, checked.first_mut()) {
            *first = CheckedBatch::check(trimmed, config.batch_bytes_max).map_err(|source| {
                LogError::InvalidFetchedBatch {
                    index: 0,
                    position: 0,
                    source,
                }
            })?;
        }
        check_contiguous(&checked)?;
        let mut state = self.write_state();
        if state.closed {
            return Err(self.closed_error());
        }
        self.check_may_follow()?;
        check_follows_log(&state, &checked)?;
        let result = self.append_checked_locked(&mut state, &config, &checked);
        self.stop_on_fatal(result)
    }

    fn append_checked_locked(
        &self,
        state: &mut LogState,
        config: &LogConfig,
        checked: &[CheckedBatch<'_>],
    ) -> LogResult<AppendInfo> {
        let mut appended: Option<AppendInfo> = None;
        for batch in checked {
            let info = self.append_locked(state, config, &[batch.bytes()], batch.header())?;
            appended = Some(match appended {
                None => info,
                Some(first) => AppendInfo {
                    base_offset: first.base_offset,
                    max_timestamp_ms: first.max_timestamp_ms.max(info.max_timestamp_ms),
                    ..info
                },
            });
        }
        appended.ok_or_else(empty_fetch)
    }
}

fn empty_fetch() -> LogError {
    LogError::InvalidFetchedBatch {
        index: 0,
        position: 0,
        source: RecordError::Truncated {
            needed: strata_proto::record::BATCH_HEADER_BYTES,
            available: 0,
        },
    }
}

/// When the first fetched batch is a record-less batch of a compacted leader that starts
/// below `log_end_offset` and reaches it, the same batch starting at `log_end_offset`
/// (see the module docs). The whole batch is still checked (CRC included) as fetched.
fn trimmed_empty_first_batch(bytes: &[u8], log_end_offset: Offset) -> LogResult<Option<Bytes>> {
    let Ok(header) = BatchHeader::parse(bytes) else {
        return Ok(None);
    };
    let straddles = header.base_offset < log_end_offset && header.last_offset() >= log_end_offset;
    if header.record_count != 0 || !straddles {
        return Ok(None);
    }
    let trimmed = empty_batch(
        log_end_offset,
        header.last_offset(),
        header.partition_leader_epoch,
    )
    .map_err(|source| LogError::InvalidFetchedBatch {
        index: 0,
        position: 0,
        source,
    })?;
    Ok(Some(trimmed))
}

/// Cuts `bytes` into whole batches, each checked (framing, length, CRC) and with a
/// non-negative leader epoch. A trailing partial batch is refused, not dropped: the
/// leader's reads return whole batches only.
fn split_fetched_batches(bytes: &[u8], batch_bytes_max: usize) -> LogResult<Vec<CheckedBatch<'_>>> {
    if bytes.is_empty() {
        return Err(empty_fetch());
    }
    let mut checked = Vec::new();
    let mut position = 0_usize;
    while let Some(rest) = bytes.get(position..).filter(|rest| !rest.is_empty()) {
        let invalid = |source: RecordError| LogError::InvalidFetchedBatch {
            index: checked.len(),
            position,
            source,
        };
        let header = BatchHeader::parse(rest).map_err(invalid)?;
        header.check_framing(batch_bytes_max).map_err(invalid)?;
        let one = rest.get(..header.total_bytes()).ok_or_else(|| {
            invalid(RecordError::Truncated {
                needed: header.total_bytes(),
                available: rest.len(),
            })
        })?;
        let batch = CheckedBatch::check(one, batch_bytes_max).map_err(invalid)?;
        if batch.header().partition_leader_epoch.0 < 0 {
            return Err(invalid(RecordError::InvalidRecord {
                reason: format!(
                    "partition leader epoch {} is not a leader's",
                    batch.header().partition_leader_epoch
                ),
            }));
        }
        position += one.len();
        checked.push(batch);
    }
    Ok(checked)
}

/// Each batch starts right after the one before, at an epoch not below its epoch.
fn check_contiguous(checked: &[CheckedBatch<'_>]) -> LogResult<()> {
    for (index, pair) in checked.windows(2).enumerate() {
        let [previous, next] = pair else { continue };
        let (previous, next) = (previous.header(), next.header());
        check_batch_follows(
            index + 1,
            next,
            previous.next_offset(),
            Some(previous.partition_leader_epoch),
        )?;
    }
    Ok(())
}

/// The first batch starts at the log end offset, at an epoch not below the log's latest.
fn check_follows_log(state: &LogState, checked: &[CheckedBatch<'_>]) -> LogResult<()> {
    let Some(first) = checked.first() else {
        return Err(empty_fetch());
    };
    let latest = state.epochs.latest().map(|(epoch, _)| epoch);
    check_batch_follows(0, first.header(), state.log_end_offset, latest)
}

fn check_batch_follows(
    index: usize,
    header: &BatchHeader,
    expected: Offset,
    previous_epoch: Option<LeaderEpoch>,
) -> LogResult<()> {
    if header.base_offset != expected {
        return Err(LogError::OffsetMismatch {
            index,
            expected,
            found: header.base_offset,
        });
    }
    if let Some(previous) = previous_epoch {
        if header.partition_leader_epoch < previous {
            return Err(LogError::EpochRegression {
                index,
                epoch: header.partition_leader_epoch,
                previous,
            });
        }
    }
    Ok(())
}
