//! The storage layer's one error type. Variants carry the path, offset or position they are
//! about and keep their I/O source, so a log line names exactly what went wrong where.

use std::io;
use std::path::PathBuf;

use strata_proto::record::RecordError;
use strata_proto::types::{LeaderEpoch, Offset};

/// Everything `broker::log` can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An I/O call failed on `path` while doing `action` (e.g. "write", "open").
    #[error("{action} failed on {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An fsync (or a directory fsync) failed. Fatal: after a failed fsync the kernel may
    /// have dropped the dirty pages, so the log refuses every further write and the process
    /// must exit and recover (PostgreSQL's "fsyncgate").
    #[error("fsync failed on {path}; the log is stopped and the broker must restart")]
    FsyncFailed {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The log was stopped by an earlier fatal error and accepts no more writes.
    #[error("log {path} is stopped after a fatal error: {reason}")]
    Stopped { path: PathBuf, reason: String },
    /// A batch in data that was already durable (a sealed segment, or before the recovery
    /// point) is damaged. Never truncated away: the replica must re-fetch it.
    #[error("corrupt batch in {path} at byte {position}: {reason}")]
    Corruption {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// A segment does not end where the next one starts: the offsets in between are
    /// missing (a deleted or cut segment) or claimed twice.
    #[error(
        "{path} ends at offset {end_offset} but the next segment starts at {next_base_offset}"
    )]
    SegmentsDoNotMeet {
        path: PathBuf,
        end_offset: Offset,
        next_base_offset: Offset,
    },
    /// The recovered log ends below an offset its checkpoint promised: records that were
    /// fsynced (below the recovery point) or acknowledged (below the high watermark) are
    /// missing, whatever the files look like now.
    #[error(
        "the log in {dir} ends at offset {log_end_offset}, below its checkpointed {promise} \
         {promised_offset}: records that were written are missing"
    )]
    EndBelowCheckpoint {
        dir: PathBuf,
        log_end_offset: Offset,
        /// "recovery point" or "high watermark".
        promise: &'static str,
        promised_offset: Offset,
    },
    /// The partition's log was found damaged when it was opened (`reason`), and is kept
    /// offline: it refuses produce and fetch, and nothing in it is changed, until an
    /// operator repairs it (docs/ARCHITECTURE.md, "Damaged partitions").
    #[error("partition log {dir} is offline: {reason}")]
    Offline { dir: PathBuf, reason: String },
    /// The batch handed to append is not a valid batch.
    #[error("invalid batch")]
    InvalidBatch(#[from] RecordError),
    /// A leader append with an epoch older than one the log has already seen: the caller
    /// is a deposed leader and must be fenced.
    #[error("leader epoch {epoch} is older than the log's latest epoch {latest}")]
    StaleLeaderEpoch {
        epoch: LeaderEpoch,
        latest: LeaderEpoch,
    },
    /// A leader append to a log this broker now follows: the produce was in flight when
    /// leadership moved away.
    #[error("{dir} is now a follower's log; a leader's append is refused")]
    NotLeading { dir: PathBuf },
    /// A follower append to a log this broker now leads: the fetch was in flight when
    /// this broker became the leader.
    #[error("{dir} is now the leader's log; a follower's append is refused")]
    NotFollowing { dir: PathBuf },
    /// Batch `index` (from 0) of a follower append, at byte `position` of the fetched
    /// bytes, is not a whole valid batch (framing, length, CRC, or no leader epoch).
    /// Nothing of the call was appended.
    #[error("fetched batch {index} at byte {position} is invalid")]
    InvalidFetchedBatch {
        index: usize,
        position: usize,
        #[source]
        source: RecordError,
    },
    /// Batch `index` of a follower append does not start where the log (for the first
    /// batch: the log end offset) or the batch before it ends. Nothing was appended; the
    /// fetcher fetches again from the log end offset.
    #[error("fetched batch {index} starts at offset {found} where {expected} was expected")]
    OffsetMismatch {
        index: usize,
        expected: Offset,
        found: Offset,
    },
    /// Batch `index` of a follower append has a leader epoch below the epoch before it
    /// (the log's latest epoch, or the previous batch's). Nothing was appended: the
    /// follower must reconcile with the leader by epoch (KIP-101) before fetching again.
    #[error(
        "fetched batch {index} has leader epoch {epoch}, below the epoch {previous} before it"
    )]
    EpochRegression {
        index: usize,
        epoch: LeaderEpoch,
        previous: LeaderEpoch,
    },
    /// A wait for every offset below `target` to be durable found the log ending at
    /// `log_end_offset`, below it: a truncation (this replica became a follower) cut the
    /// bytes waited for, so they will never be durable here. Leadership moved while the
    /// request was in flight; the client asks the new leader.
    #[error(
        "offsets below {target} of {path} were truncated away before they were durable \
         (the log now ends at {log_end_offset})"
    )]
    Truncated {
        path: PathBuf,
        target: Offset,
        log_end_offset: Offset,
    },
    /// A read below the log start offset or beyond the log end offset.
    #[error("offset {offset} is outside the log [{log_start_offset}, {log_end_offset})")]
    OffsetOutOfRange {
        offset: Offset,
        log_start_offset: Offset,
        log_end_offset: Offset,
    },
    /// An index or checkpoint file that cannot be used; callers rebuild it from the log.
    #[error("{path} is unusable: {reason}")]
    BadAuxiliaryFile { path: PathBuf, reason: String },
}

impl LogError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        LogError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Whether the error says the data on disk is damaged or missing, as opposed to a
    /// failed system call: such a partition is kept offline rather than served.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            LogError::Corruption { .. }
                | LogError::SegmentsDoNotMeet { .. }
                | LogError::EndBelowCheckpoint { .. }
        )
    }

    /// Whether the error means the process must stop writing (fsync failure, stopped log).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            LogError::FsyncFailed { .. } | LogError::Stopped { .. }
        )
    }
}

/// Shorthand for results of this layer.
pub type LogResult<T> = Result<T, LogError>;
