//! Group commit: many appenders, one fsync.
//!
//! Under `flush = always` an append may be reported only once its bytes are on disk. A
//! plain write+fsync per append serialises every producer behind the disk's flush latency.
//! Here the first appender that needs durability becomes the *syncer*: it notes the log end
//! offset, fsyncs the active segment outside every lock, and publishes that offset as
//! durable. Appenders that arrive while an fsync runs wait for it, and the next syncer's
//! fsync covers all of them at once.
//!
//! Invariants:
//! - `durable_offset` only covers bytes that were written before the fsync that published it
//!   started (the syncer reads the log end offset under the state lock, after those writes).
//! - Sealed segments are fsynced when sealed, so syncing the active segment is enough.
//! - A truncation lowers `durable_offset` and bumps `generation`; an fsync that started
//!   before the truncation publishes nothing, since the offsets it covered may now belong
//!   to different bytes.
//! - An fsync error is fatal: it is recorded, every waiter gets it, and it is never retried.

use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use strata_proto::types::Offset;

use super::durable;
use super::error::{LogError, LogResult};

/// What the syncer must fsync, captured under the log's state lock.
#[derive(Debug)]
pub struct SyncTarget {
    pub file: Arc<File>,
    pub path: PathBuf,
    /// Every offset below this is in `file` or in an already-sealed segment.
    pub log_end_offset: Offset,
}

#[derive(Debug)]
struct CommitState {
    durable_offset: Offset,
    syncing: bool,
    generation: u64,
    failure: Option<String>,
    fsyncs_total: u64,
}

/// Shared durability tracker of one partition log.
#[derive(Debug)]
pub struct GroupCommit {
    state: Mutex<CommitState>,
    synced: Condvar,
}

impl GroupCommit {
    pub fn new(durable_offset: Offset) -> GroupCommit {
        GroupCommit {
            state: Mutex::new(CommitState {
                durable_offset,
                syncing: false,
                generation: 0,
                failure: None,
                fsyncs_total: 0,
            }),
            synced: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CommitState> {
        // A panic while holding this lock leaves plain numbers behind; they stay usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn durable_offset(&self) -> Offset {
        self.lock().durable_offset
    }

    /// How many fsyncs group commit has issued (for tests and metrics).
    pub fn fsyncs_total(&self) -> u64 {
        self.lock().fsyncs_total
    }

    /// The fatal error that stopped the log, if any.
    pub fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }

    /// Blocks until every offset below `target` is durable. `capture` is called (without
    /// the commit lock held) by the thread that becomes the syncer.
    pub fn wait_durable(
        &self,
        target: Offset,
        path_for_errors: &std::path::Path,
        capture: impl Fn() -> LogResult<SyncTarget>,
    ) -> LogResult<()> {
        let mut state = self.lock();
        loop {
            if let Some(reason) = &state.failure {
                return Err(LogError::Stopped {
                    path: path_for_errors.to_path_buf(),
                    reason: reason.clone(),
                });
            }
            if state.durable_offset >= target {
                return Ok(());
            }
            if state.syncing {
                state = self
                    .synced
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            state.syncing = true;
            let generation = state.generation;
            drop(state);
            let sync_target = match capture() {
                Ok(sync_target) => sync_target,
                Err(error) => {
                    state = self.lock();
                    state.syncing = false;
                    self.synced.notify_all();
                    return Err(error);
                }
            };
            let result = durable::sync_file(&sync_target.file, &sync_target.path);
            state = self.lock();
            state.syncing = false;
            state.fsyncs_total += 1;
            match result {
                Ok(()) if state.generation == generation => {
                    state.durable_offset = state.durable_offset.max(sync_target.log_end_offset);
                }
                Ok(()) => {}
                Err(error) => {
                    tracing::error!(%error, path = %sync_target.path.display(), "fsync failed; stopping the log");
                    state.failure = Some(error.to_string());
                    self.synced.notify_all();
                    return Err(error);
                }
            }
            self.synced.notify_all();
        }
    }

    /// Records offsets made durable by other means (a segment seal, a full flush).
    pub fn mark_durable(&self, offset: Offset) {
        let mut state = self.lock();
        state.durable_offset = state.durable_offset.max(offset);
        self.synced.notify_all();
    }

    /// After a truncation to `log_end_offset`.
    pub fn truncated(&self, log_end_offset: Offset) {
        let mut state = self.lock();
        state.generation += 1;
        state.durable_offset = state.durable_offset.min(log_end_offset);
    }

    /// Stops the log after a fatal error found elsewhere (e.g. a failed directory fsync).
    pub fn fail(&self, reason: String) {
        let mut state = self.lock();
        state.failure.get_or_insert(reason);
        self.synced.notify_all();
    }
}
