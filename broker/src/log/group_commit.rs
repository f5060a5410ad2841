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
//! - A wait for offsets the log no longer holds ends with [`LogError::Truncated`]: when
//!   the fsync a waiter ran covered a log end below its target, a truncation cut the
//!   waiter's bytes, and no fsync can make them durable. (Before this rule such a waiter
//!   claimed fsync after fsync until the log grew past its target again, which a
//!   follower that is shutting down never does.)
//!
//! Async waiters: [`GroupCommit::poll_durable`] lets a task wait for the running fsync with
//! a `std::task::Waker` instead of a blocked thread (this module stays free of any async
//! runtime). A poll that finds no fsync running claims the next one, so of many tasks
//! woken by one fsync's end exactly one becomes the syncer and the rest wait again. The
//! claimant runs [`GroupCommit::sync_claimed`] on a thread that may block; a claim given
//! up without syncing must be [released](GroupCommit::release_claim). Every change a
//! waiter could wait for — an fsync ending, offsets marked durable, a failure — wakes the
//! wakers as well as the blocked threads.

use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

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

/// What [`GroupCommit::poll_durable`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurableWait {
    /// Every offset below the target is durable.
    Durable,
    /// No fsync was running: this caller now owns the next one (the claim's generation),
    /// and must run [`GroupCommit::sync_claimed`] or [`GroupCommit::release_claim`].
    Claimed { generation: u64 },
    /// The log stopped after a fatal error.
    Failed(String),
}

#[derive(Debug)]
struct CommitState {
    durable_offset: Offset,
    syncing: bool,
    generation: u64,
    failure: Option<String>,
    fsyncs_total: u64,
    /// Tasks waiting for the running fsync; woken (and cleared) on every change.
    wakers: Vec<Waker>,
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
                wakers: Vec::new(),
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

    /// How many truncations this log has had: a batch written before a truncation may
    /// be gone even when offsets past it are durable again (they hold other bytes).
    pub fn generation(&self) -> u64 {
        self.lock().generation
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
            let covered = self.sync_claimed(generation, &capture)?;
            if covered < target {
                return Err(LogError::Truncated {
                    path: path_for_errors.to_path_buf(),
                    target,
                    log_end_offset: covered,
                });
            }
            state = self.lock();
        }
    }

    /// For a task that waits until every offset below `target` is durable: ready with
    /// the answer, or pending (with `context`'s waker registered) while an fsync runs.
    /// Never blocks. When no fsync is running it claims the next one for the caller.
    pub fn poll_durable(&self, target: Offset, context: &mut Context<'_>) -> Poll<DurableWait> {
        let mut state = self.lock();
        if let Some(reason) = &state.failure {
            return Poll::Ready(DurableWait::Failed(reason.clone()));
        }
        if state.durable_offset >= target {
            return Poll::Ready(DurableWait::Durable);
        }
        if !state.syncing {
            state.syncing = true;
            return Poll::Ready(DurableWait::Claimed {
                generation: state.generation,
            });
        }
        // The running fsync may not cover `target` (it noted the end before this batch
        // was written); when it ends, this task looks again and may claim the next one.
        if !state
            .wakers
            .iter()
            .any(|waker| waker.will_wake(context.waker()))
        {
            state.wakers.push(context.waker().clone());
        }
        Poll::Pending
    }

    /// The syncer's work, for the owner of the running fsync (from [`wait_durable`] or a
    /// [`DurableWait::Claimed`]): captures the target, fsyncs outside every lock and
    /// publishes the durable offset, unless a truncation came in between. Returns the
    /// log end offset the fsync covered. Blocks.
    ///
    /// [`wait_durable`]: GroupCommit::wait_durable
    pub fn sync_claimed(
        &self,
        generation: u64,
        capture: impl Fn() -> LogResult<SyncTarget>,
    ) -> LogResult<Offset> {
        let sync_target = match capture() {
            Ok(sync_target) => sync_target,
            Err(error) => {
                self.release_claim();
                return Err(error);
            }
        };
        let result = durable::sync_file(&sync_target.file, &sync_target.path);
        let mut state = self.lock();
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
                self.changed(state);
                return Err(error);
            }
        }
        self.changed(state);
        Ok(sync_target.log_end_offset)
    }

    /// Gives up a claimed fsync without running it; a waiter then claims it again.
    pub fn release_claim(&self) {
        let mut state = self.lock();
        state.syncing = false;
        self.changed(state);
    }

    /// Wakes every waiter after a change to `state`: blocked threads, and tasks (outside
    /// the lock).
    fn changed(&self, mut state: MutexGuard<'_, CommitState>) {
        let wakers = std::mem::take(&mut state.wakers);
        drop(state);
        self.synced.notify_all();
        for waker in wakers {
            waker.wake();
        }
    }

    /// Records offsets made durable by other means (a segment seal, a full flush).
    pub fn mark_durable(&self, offset: Offset) {
        let mut state = self.lock();
        state.durable_offset = state.durable_offset.max(offset);
        self.changed(state);
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
        self.changed(state);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<CountingWaker>, Waker) {
        let counter = Arc::new(CountingWaker::default());
        (Arc::clone(&counter), Waker::from(counter))
    }

    fn poll(commit: &GroupCommit, target: i64, waker: &Waker) -> Poll<DurableWait> {
        commit.poll_durable(Offset(target), &mut Context::from_waker(waker))
    }

    fn target(dir: &std::path::Path, log_end_offset: i64) -> LogResult<SyncTarget> {
        let path = dir.join("00000000000000000000.log");
        Ok(SyncTarget {
            file: Arc::new(File::create(&path).unwrap()),
            path,
            log_end_offset: Offset(log_end_offset),
        })
    }

    #[test]
    fn one_task_claims_the_fsync_the_others_wait_and_are_woken_by_it() {
        let dir = tempfile::tempdir().unwrap();
        let commit = GroupCommit::new(Offset(0));
        let (_, first) = waker();
        let (counter, second) = waker();
        let claim = poll(&commit, 5, &first);
        let Poll::Ready(DurableWait::Claimed { generation }) = claim else {
            panic!("no fsync was running: the first poll claims it, got {claim:?}");
        };
        let waiting = poll(&commit, 5, &second);
        assert_eq!(waiting, Poll::Pending, "an fsync is claimed: wait for it");
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);

        commit
            .sync_claimed(generation, || target(dir.path(), 5))
            .unwrap();
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            1,
            "woken by the fsync's end"
        );
        assert_eq!(poll(&commit, 5, &second), Poll::Ready(DurableWait::Durable));
        assert_eq!(commit.fsyncs_total(), 1);
    }

    #[test]
    fn a_claim_given_back_wakes_the_waiters_and_can_be_claimed_again() {
        let commit = GroupCommit::new(Offset(0));
        let (_, first) = waker();
        let (counter, second) = waker();
        assert!(matches!(
            poll(&commit, 1, &first),
            Poll::Ready(DurableWait::Claimed { .. })
        ));
        assert_eq!(poll(&commit, 1, &second), Poll::Pending);
        commit.release_claim();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert!(matches!(
            poll(&commit, 1, &second),
            Poll::Ready(DurableWait::Claimed { .. })
        ));
    }

    #[test]
    fn an_fsync_after_a_truncation_publishes_nothing_and_a_failure_reaches_every_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let commit = GroupCommit::new(Offset(0));
        let (_, first) = waker();
        let (counter, second) = waker();
        let Poll::Ready(DurableWait::Claimed { generation }) = poll(&commit, 3, &first) else {
            panic!("expected a claim");
        };
        commit.truncated(Offset(0));
        commit
            .sync_claimed(generation, || target(dir.path(), 3))
            .unwrap();
        assert_eq!(commit.durable_offset(), Offset(0), "offsets of cut bytes");

        assert!(matches!(
            poll(&commit, 3, &first),
            Poll::Ready(DurableWait::Claimed { .. })
        ));
        assert_eq!(poll(&commit, 3, &second), Poll::Pending);
        commit.fail("disk gone".to_owned());
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert_eq!(
            poll(&commit, 3, &second),
            Poll::Ready(DurableWait::Failed("disk gone".to_owned()))
        );
    }
}
