//! Offline partition logs. When recovery finds a log damaged ([`LogError::is_corruption`]:
//! a bad batch in durable data, segments that do not meet, a log that ends below what its
//! checkpoint promised), serving it would hand out wrong records or re-use offsets, and
//! refusing to start would take every other partition down with it. So the log manager
//! keeps such a log *offline*:
//!
//! - produce, fetch and every other read or write fail with [`LogError::Offline`], which
//!   names the damage (a storage error for clients, never retriable);
//! - nothing in its directory is written: no checkpoint (it keeps what it promised), no
//!   cut, no retention. Flushes, checkpoints and close are no-ops, so the broker's
//!   background duties and its clean shutdown go on for the other partitions;
//! - its offsets are the checkpoint's, for what they are worth to a caller that asks.
//!
//! Every restart opens it afresh: once an operator has repaired the directory (see
//! docs/ARCHITECTURE.md, "Damaged partitions"), it comes back online. A follower replica
//! does not wait for that: the broker has [`LogManager::repair`] cut it back to its valid
//! prefix and fetches the rest from the leader, when that cannot lose a committed record
//! (`node/replica_repair.rs`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicU8;
use std::sync::{Arc, Mutex, RwLock};

use strata_proto::types::Offset;

use super::super::checkpoint::PartitionCheckpoint;
use super::super::config::LogConfig;
use super::super::error::{LogError, LogResult};
use super::super::group_commit::GroupCommit;
use super::super::leader_epoch_cache::LeaderEpochCache;
#[cfg(doc)]
use super::super::manager::LogManager;
use super::super::reclaim::Reclaimer;
use super::super::recovery::{PreviousShutdown, RecoveryReport};
use super::{LogResources, LogState, PartitionLog, ReplicaRole, WritebackMark};

impl PartitionLog {
    /// Opens the log in `dir` like [`PartitionLog::open`], except that a log recovery
    /// finds damaged is returned offline (see the module docs) instead of failing, with
    /// the damage logged as an error. Other errors (I/O) still fail.
    pub fn open_or_offline(
        dir: &Path,
        config: LogConfig,
        previous: PreviousShutdown,
        resources: &LogResources,
    ) -> LogResult<PartitionLog> {
        match PartitionLog::open_with(dir, config.clone(), previous, resources) {
            Err(error) if error.is_corruption() => {
                super::super::metrics::corruption_detected(&error);
                tracing::error!(
                    dir = %dir.display(), %error,
                    "the partition log is damaged; it stays offline (produce and fetch are \
                     refused, nothing in it is changed) until it is repaired: from its \
                     leader if it is a follower out of the ISR, else by an operator"
                );
                Ok(PartitionLog::offline(
                    dir,
                    config,
                    resources,
                    error.to_string(),
                ))
            }
            result => result,
        }
    }

    /// An offline log for `dir`, refusing everything with `reason`.
    fn offline(
        dir: &Path,
        config: LogConfig,
        resources: &LogResources,
        reason: String,
    ) -> PartitionLog {
        let clock = Arc::clone(&resources.clock);
        // A damaged checkpoint only makes the offsets shown less useful.
        let checkpoint = PartitionCheckpoint::load(dir).ok().flatten();
        let log_start_offset = checkpoint.map_or(Offset(0), |c| c.log_start_offset);
        let high_watermark = checkpoint.map_or(log_start_offset, |c| c.high_watermark);
        let log_end_offset =
            checkpoint.map_or(high_watermark, |c| c.recovery_point.max(high_watermark));
        let state = LogState {
            segments: BTreeMap::new(),
            log_start_offset,
            log_end_offset,
            high_watermark,
            epochs: LeaderEpochCache::empty(dir),
            closed: false,
        };
        PartitionLog {
            dir: dir.to_path_buf(),
            last_flush_ms: clock.now_ms().into(),
            config: RwLock::new(config),
            clock,
            state: RwLock::new(state),
            commit: GroupCommit::new(log_end_offset),
            writeback: Mutex::new(WritebackMark::default()),
            recovery: RecoveryReport::default(),
            reclaimer: Reclaimer::immediate(),
            open_segments: resources.open_segments.clone(),
            offline: Some(reason),
            role: AtomicU8::new(ReplicaRole::Unassigned.to_u8()),
        }
    }

    /// Whether the log is offline: damaged at open, refusing produce and fetch.
    pub fn is_offline(&self) -> bool {
        self.offline.is_some()
    }

    /// `Err(LogError::Offline)` when the log is offline: for callers that answer from the
    /// log's offsets without reading it (a fetch at the high watermark), so they refuse
    /// as a read would.
    pub fn check_online(&self) -> LogResult<()> {
        self.offline_error().map_or(Ok(()), Err)
    }

    /// The error every request to an offline log gets; `None` when it is online.
    pub(super) fn offline_error(&self) -> Option<LogError> {
        self.offline.as_ref().map(|reason| LogError::Offline {
            dir: self.dir.clone(),
            reason: reason.clone(),
        })
    }
}
