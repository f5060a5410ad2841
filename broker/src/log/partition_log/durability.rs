//! Group commit as the partition log offers it (`log/group_commit.rs` has the mechanism):
//! how far the log is durable, waiting for a target offset to become durable, on a
//! blocked thread ([`PartitionLog::wait_durable`]) or as a task that may be handed the
//! next fsync ([`PartitionLog::poll_durable`], [`SyncClaim`]). A wait for offsets that a
//! truncation cut ends with [`LogError::Truncated`].

use std::sync::Arc;

use strata_proto::types::Offset;

use super::PartitionLog;
use crate::log::error::{LogError, LogResult};
use crate::log::group_commit::{DurableWait, SyncTarget};

/// What [`PartitionLog::poll_durable`] found.
#[derive(Debug)]
pub enum Durability {
    /// The offsets are durable.
    Durable,
    /// No fsync was running; the caller owns the next one.
    SyncClaimed(SyncClaim),
}

/// The right (and duty) to run a partition's next group-commit fsync, from
/// [`PartitionLog::poll_durable`]. Dropped without [`SyncClaim::sync`], it is given back
/// and another waiter claims the fsync.
#[derive(Debug)]
pub struct SyncClaim {
    log: Arc<PartitionLog>,
    generation: u64,
    /// The offset the claimant waits for: every offset below it durable.
    target: Offset,
    synced: bool,
}

impl SyncClaim {
    /// Runs the fsync (blocking) and publishes what it made durable.
    /// [`LogError::Truncated`] when the log ended below the claimant's target: its bytes
    /// were cut, and will never be durable.
    pub fn sync(mut self) -> LogResult<()> {
        self.synced = true;
        let log = &self.log;
        let covered = log
            .commit
            .sync_claimed(self.generation, || log.sync_target())?;
        if covered < self.target {
            return Err(LogError::Truncated {
                path: log.dir.clone(),
                target: self.target,
                log_end_offset: covered,
            });
        }
        Ok(())
    }
}

impl Drop for SyncClaim {
    fn drop(&mut self) {
        if !self.synced {
            self.log.commit.release_claim();
        }
    }
}

impl PartitionLog {
    /// Every offset below this is fsynced.
    pub fn durable_offset(&self) -> Offset {
        self.commit.durable_offset()
    }

    /// How many truncations this log has had since it was opened.
    pub fn truncation_generation(&self) -> u64 {
        self.commit.generation()
    }

    /// Blocks until every offset below `target` is fsynced (group commit).
    pub fn wait_durable(&self, target: Offset) -> LogResult<()> {
        self.commit
            .wait_durable(target, &self.dir, || self.sync_target())
    }

    /// For a task waiting until every offset below `target` is fsynced, without a thread
    /// (group commit, `group_commit.rs`): ready once it is durable, or with a claim on the
    /// next fsync, which the caller runs on a blocking thread ([`SyncClaim::sync`]);
    /// pending while another fsync runs. Never blocks.
    pub fn poll_durable(
        self: &Arc<Self>,
        target: Offset,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<LogResult<Durability>> {
        self.commit
            .poll_durable(target, context)
            .map(|wait| match wait {
                DurableWait::Durable => Ok(Durability::Durable),
                DurableWait::Claimed { generation } => Ok(Durability::SyncClaimed(SyncClaim {
                    log: Arc::clone(self),
                    generation,
                    target,
                    synced: false,
                })),
                DurableWait::Failed(reason) => Err(LogError::Stopped {
                    path: self.dir.clone(),
                    reason,
                }),
            })
    }

    fn sync_target(&self) -> LogResult<SyncTarget> {
        let state = self.read_state();
        let active = state.active()?;
        Ok(SyncTarget {
            file: active.log_file()?,
            path: active.log_path().to_path_buf(),
            log_end_offset: state.log_end_offset,
        })
    }
}
