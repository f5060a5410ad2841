//! Giving a deleted segment's disk space back a little at a time.
//!
//! Why: freeing a gigabyte of blocks in one go, which is what the last close of an unlinked
//! 1 GiB segment does, can hold the filesystem up for hundreds of milliseconds on a disk
//! that discards freed blocks (ext4 mounted with `discard`, thin-provisioned and virtual
//! disks). Every write and fsync of every partition waits behind it. docs/bench/history.md item 24
//! measured an end-to-end p99 of 178–246 ms while a 2 GB file was removed at once, against
//! 11–16 ms when the same file was cut 64 MiB at a time with pauses, and 1.5–2 ms with no
//! deletion at all. Kafka defers the work as well (`file.delete.delay.ms`).
//!
//! How: [`super::segment::Segment::delete`] unlinks the `.log` at once, so the name is gone
//! before the caller fsyncs the directory and recovery never sees it. It hands its open
//! handle to the reclaimer. A background thread (`strata-log-reclaim`) then
//!
//! 1. waits until no slice of the segment's read-only map is alive: cutting a file under a
//!    live map is a SIGBUS in the reader, which is why the map's owner carries a token
//!    ([`MapToken`]) whose last drop the reclaimer waits for;
//! 2. cuts the file from its end, [`ReclaimPace::chunk_bytes`] at a time, pausing
//!    [`ReclaimPace::pause`] between cuts;
//! 3. closes the handle, which frees what is left.
//!
//! Crash behaviour: nothing of Strata's is left to clean up. An unlinked file that was
//! still open is an orphan inode, and the filesystem frees it when it is next mounted
//! (ext4's orphan list, XFS's unlinked lists).
//!
//! Descriptors: every file waiting here holds one. The queue is bounded
//! ([`FILES_PENDING_MAX`]); a file deleted while it is full is closed at once instead (its
//! blocks are freed when its last map goes), and a sealed segment whose files were closed
//! is opened for the reclaimer only when it is larger than one cut ([`Reclaimer::takes`]):
//! a smaller one frees no more at once than a cut would.
//!
//! Shutdown: stopping the thread drops the files not yet reclaimed, and their blocks are
//! freed then, all at once. A reclaimer made with [`Reclaimer::immediate`] (tests,
//! benches, tools) never defers anything.

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// Held by every read-only map of a segment's `.log` (inside the map's owner), and by the
/// segment. When the segment is deleted, the reclaimer keeps only a [`Weak`] to it and
/// cuts the file once every map of it is gone.
pub type MapToken = Arc<()>;

/// How fast a reclaimer gives space back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReclaimPace {
    /// How much one cut frees.
    pub chunk_bytes: u64,
    /// The pause after each cut that leaves something to cut.
    pub pause: Duration,
}

impl Default for ReclaimPace {
    /// 64 MiB every 50 ms: at most 1.28 GB/s, which frees a 1 GiB segment in under a
    /// second and kept the end-to-end p99 near its floor in item 24's measurements.
    fn default() -> ReclaimPace {
        ReclaimPace {
            chunk_bytes: 64 << 20,
            pause: Duration::from_millis(50),
        }
    }
}

/// How often the thread looks again at files whose maps are still alive.
const MAP_RECHECK: Duration = Duration::from_millis(100);

/// The most files the reclaimer holds (each is an open descriptor); beyond it a deleted
/// file is closed at once.
pub const FILES_PENDING_MAX: usize = 256;

/// What is waiting to be given back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReclaimStats {
    /// Files handed over and not yet closed.
    pub files_pending: usize,
    /// Their bytes not yet cut.
    pub bytes_pending: u64,
    /// Cuts made so far.
    pub cuts: u64,
    /// How many times a file was passed over because a map of it was alive.
    pub map_waits: u64,
}

/// Where deleted segments go. Cheap to clone; every clone feeds the same thread.
#[derive(Debug, Clone)]
pub struct Reclaimer {
    shared: Option<Arc<Shared>>,
}

/// A deleted segment's `.log`: its name is already gone, the handle keeps its blocks.
#[derive(Debug)]
struct Doomed {
    file: Arc<File>,
    path: PathBuf,
    maps: Weak<()>,
    bytes_left: u64,
}

#[derive(Debug)]
struct Shared {
    pace: ReclaimPace,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Doomed>,
    stats: ReclaimStats,
    stopped: bool,
}

impl Reclaimer {
    /// A reclaimer that defers nothing: a deleted file's blocks are freed when its last
    /// handle and map are dropped, as after a plain `unlink`.
    pub fn immediate() -> Reclaimer {
        Reclaimer { shared: None }
    }

    /// Starts the background thread. It runs until the returned guard is dropped.
    pub fn start(pace: ReclaimPace) -> (Reclaimer, ReclaimerThread) {
        let shared = Arc::new(Shared {
            pace,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let thread_shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("strata-log-reclaim".into())
            .spawn(move || thread_shared.run());
        let handle = match handle {
            Ok(handle) => Some(handle),
            Err(error) => {
                // Without the thread every file is freed at once, as `immediate` does.
                tracing::error!(%error, "cannot start the log reclaim thread");
                shared.lock().stopped = true;
                None
            }
        };
        let guard = ReclaimerThread {
            shared: Arc::clone(&shared),
            handle,
        };
        (
            Reclaimer {
                shared: Some(shared),
            },
            guard,
        )
    }

    /// Takes a deleted (already unlinked) segment's `.log`. `maps` is the segment's
    /// [`MapToken`], downgraded after the segment dropped its own strong reference.
    pub fn reclaim(&self, file: Arc<File>, path: PathBuf, size_bytes: u64, maps: Weak<()>) {
        let Some(shared) = &self.shared else { return };
        let mut state = shared.lock();
        if state.stopped || state.queue.len() >= FILES_PENDING_MAX {
            return;
        }
        state.stats.files_pending += 1;
        state.stats.bytes_pending += size_bytes;
        state.queue.push_back(Doomed {
            file,
            path,
            maps,
            bytes_left: size_bytes,
        });
        drop(state);
        shared.wake.notify_all();
    }

    /// Whether a deleted file of `size_bytes` whose segment holds no descriptor should be
    /// opened to be handed over: only when it is larger than one cut and the queue has
    /// room (an immediate reclaimer never takes one).
    pub fn takes(&self, size_bytes: u64) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        let state = shared.lock();
        !state.stopped
            && state.queue.len() < FILES_PENDING_MAX
            && size_bytes > shared.pace.chunk_bytes
    }

    /// What is still waiting (all zero for an immediate reclaimer).
    pub fn stats(&self) -> ReclaimStats {
        self.shared
            .as_ref()
            .map(|shared| shared.lock().stats)
            .unwrap_or_default()
    }

    /// Waits until `done` holds for the stats, or `timeout` passes; returns the last stats.
    /// Tests use it to wait for the thread; `timeout` is a liveness bound, never a
    /// measurement.
    pub fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&ReclaimStats) -> bool,
    ) -> ReclaimStats {
        let Some(shared) = &self.shared else {
            return ReclaimStats::default();
        };
        let state = shared.lock();
        let (state, _) = shared
            .wake
            .wait_timeout_while(state, timeout, |state| !done(&state.stats))
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.stats
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn run(&self) {
        while let Some(doomed) = self.next_ready() {
            self.cut(doomed);
        }
    }

    /// The first queued file with no live map, waiting for one; `None` once stopped.
    fn next_ready(&self) -> Option<Doomed> {
        let mut state = self.lock();
        loop {
            if state.stopped {
                return None;
            }
            let ready = state
                .queue
                .iter()
                .position(|doomed| doomed.maps.strong_count() == 0);
            if let Some(index) = ready {
                return state.queue.remove(index);
            }
            let waiting = !state.queue.is_empty();
            if waiting {
                state.stats.map_waits += 1;
                self.wake.notify_all();
                state = self
                    .wake
                    .wait_timeout(state, MAP_RECHECK)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
            } else {
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        }
    }

    /// Cuts `doomed` from its end a chunk at a time, then closes it. An error ends the
    /// cutting early; closing the handle frees the rest.
    fn cut(&self, mut doomed: Doomed) {
        while doomed.bytes_left > 0 {
            let cut_bytes = doomed.bytes_left.min(self.pace.chunk_bytes.max(1));
            let new_len = doomed.bytes_left - cut_bytes;
            if let Err(error) = doomed.file.set_len(new_len) {
                tracing::warn!(path = %doomed.path.display(), %error, "cannot cut a deleted segment; freeing it at once");
                break;
            }
            doomed.bytes_left = new_len;
            let mut state = self.lock();
            state.stats.bytes_pending = state.stats.bytes_pending.saturating_sub(cut_bytes);
            state.stats.cuts += 1;
            self.wake.notify_all();
            if new_len == 0 || self.pace.pause.is_zero() {
                continue;
            }
            let (state, _) = self
                .wake
                .wait_timeout_while(state, self.pace.pause, |state| !state.stopped)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if state.stopped {
                break;
            }
        }
        let bytes_left = doomed.bytes_left;
        drop(doomed);
        let mut state = self.lock();
        state.stats.files_pending = state.stats.files_pending.saturating_sub(1);
        state.stats.bytes_pending = state.stats.bytes_pending.saturating_sub(bytes_left);
        self.wake.notify_all();
    }
}

/// The reclaim thread; dropping it stops and joins the thread. Files not yet reclaimed
/// are closed then, and their blocks freed at once.
#[derive(Debug)]
pub struct ReclaimerThread {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for ReclaimerThread {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.stopped = true;
        let dropped = std::mem::take(&mut state.queue);
        state.stats.files_pending = 0;
        state.stats.bytes_pending = 0;
        drop(state);
        self.shared.wake.notify_all();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
        drop(dropped);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const LIVENESS: Duration = Duration::from_secs(60);

    /// A file `name` of `bytes` (sparse), unlinked, plus a second handle to watch its length.
    fn doomed_file(dir: &std::path::Path, name: &str, bytes: u64) -> (Arc<File>, File, PathBuf) {
        let path = dir.join(name);
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.set_len(bytes).unwrap();
        let watcher = file.try_clone().unwrap();
        std::fs::remove_file(&path).unwrap();
        (Arc::new(file), watcher, path)
    }

    fn fast_pace(chunk_bytes: u64) -> ReclaimPace {
        ReclaimPace {
            chunk_bytes,
            pause: Duration::ZERO,
        }
    }

    #[test]
    fn a_file_is_cut_chunk_by_chunk_then_closed() {
        let dir = tempfile::tempdir().unwrap();
        let (file, watcher, path) = doomed_file(dir.path(), "00000000000000000000.log", 10 << 20);
        let (reclaimer, _thread) = Reclaimer::start(fast_pace(1 << 20));
        reclaimer.reclaim(file, path, 10 << 20, Weak::new());
        let stats = reclaimer.wait_for(LIVENESS, |stats| stats.files_pending == 0);
        assert_eq!(stats.files_pending, 0);
        assert_eq!(stats.bytes_pending, 0);
        assert_eq!(stats.cuts, 10);
        assert_eq!(watcher.metadata().unwrap().len(), 0);
    }

    #[test]
    fn a_file_with_a_live_map_is_left_alone_until_the_map_goes() {
        let dir = tempfile::tempdir().unwrap();
        let (file, watcher, path) = doomed_file(dir.path(), "00000000000000000000.log", 4 << 20);
        let token: MapToken = Arc::new(());
        let (reclaimer, _thread) = Reclaimer::start(fast_pace(1 << 20));
        reclaimer.reclaim(file, path, 4 << 20, Arc::downgrade(&token));
        let stats = reclaimer.wait_for(LIVENESS, |stats| stats.map_waits >= 2);
        assert!(stats.map_waits >= 2, "{stats:?}");
        assert_eq!(stats.cuts, 0);
        assert_eq!(watcher.metadata().unwrap().len(), 4 << 20);
        drop(token);
        let stats = reclaimer.wait_for(LIVENESS, |stats| stats.files_pending == 0);
        assert_eq!(stats.files_pending, 0);
        assert_eq!(watcher.metadata().unwrap().len(), 0);
    }

    #[test]
    fn a_waiting_file_does_not_hold_up_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let (mapped, mapped_watcher, mapped_path) = doomed_file(dir.path(), "mapped.log", 2 << 20);
        let (free, free_watcher, free_path) = doomed_file(dir.path(), "free.log", 2 << 20);
        let token: MapToken = Arc::new(());
        let (reclaimer, _thread) = Reclaimer::start(fast_pace(1 << 20));
        reclaimer.reclaim(mapped, mapped_path, 2 << 20, Arc::downgrade(&token));
        reclaimer.reclaim(free, free_path, 2 << 20, Weak::new());
        let stats = reclaimer.wait_for(LIVENESS, |stats| stats.files_pending == 1);
        assert_eq!(stats.files_pending, 1);
        assert_eq!(free_watcher.metadata().unwrap().len(), 0);
        assert_eq!(mapped_watcher.metadata().unwrap().len(), 2 << 20);
    }

    #[test]
    fn stopping_closes_what_is_left_and_later_files_are_not_queued() {
        let dir = tempfile::tempdir().unwrap();
        let (file, _watcher, path) = doomed_file(dir.path(), "00000000000000000000.log", 1 << 20);
        let token: MapToken = Arc::new(());
        let (reclaimer, thread) = Reclaimer::start(fast_pace(1 << 20));
        reclaimer.reclaim(
            Arc::clone(&file),
            path.clone(),
            1 << 20,
            Arc::downgrade(&token),
        );
        drop(thread);
        // The queue gave its handle back: only the test's own clone is left.
        assert_eq!(Arc::strong_count(&file), 1);
        reclaimer.reclaim(Arc::clone(&file), path, 1 << 20, Weak::new());
        assert_eq!(Arc::strong_count(&file), 1);
        assert_eq!(reclaimer.stats().files_pending, 0);
    }

    #[test]
    fn an_immediate_reclaimer_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (file, _watcher, path) = doomed_file(dir.path(), "00000000000000000000.log", 1 << 20);
        let reclaimer = Reclaimer::immediate();
        reclaimer.reclaim(Arc::clone(&file), path, 1 << 20, Weak::new());
        assert_eq!(Arc::strong_count(&file), 1);
        assert_eq!(reclaimer.stats(), ReclaimStats::default());
    }
}
