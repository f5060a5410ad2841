//! [`OpenSegments`]: the sealed segments whose files are open, at most `capacity` of them
//! across every partition log that shares it (the log manager shares one per data
//! directory).
//!
//! Why: a segment's files are one descriptor (its `.log`; two with direct I/O) and up to
//! three memory maps (`.index`, `.timeindex`, the read-only map of the `.log`). Kept open
//! for every segment, as before, a partition with small segments or a broker with many
//! partitions ran out of descriptors (`RLIMIT_NOFILE`) and then failed every write and
//! could not even restart. Kafka keeps them open and asks operators for a large limit; a
//! bounded cache works under whatever limit the broker finds.
//!
//! What it holds: the active segment of each log keeps its files itself (it is written
//! all the time); a sealed segment's files live here, opened on the first read that needs
//! them. When more than `capacity` are open, the least recently used are closed. A read
//! that holds a segment's files keeps them alive until it returns, even if they are
//! evicted meanwhile, and slices of a map outlive the map's segment files as before
//! (`segment_map.rs`, `reclaim.rs`).
//!
//! Thread safety: one mutex around a map of entries. A hit takes it for a lookup and a
//! counter bump; files are opened and closed outside it. Two readers that miss on the
//! same segment at once may both open its files: the first to come back wins, and the
//! other's copy is dropped (sealed files are read-only, so the copies are equivalent).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::error::LogResult;
use super::segment::SegmentFiles;

/// The capacity of the cache a partition log opened on its own gets
/// ([`super::PartitionLog::open`]: tests, tools, benchmarks).
pub const STANDALONE_CAPACITY: usize = 32;

/// The capacity of the cache of a [`super::LogManager`] opened without one: the broker
/// sizes its own from its descriptor budget.
pub const DEFAULT_CAPACITY: usize = 1024;

/// Counts for tests, logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenSegmentStats {
    /// Sealed segments whose files are open now.
    pub open: usize,
    /// Files opened so far (misses).
    pub opened_total: u64,
    /// Files closed to make room so far.
    pub evicted_total: u64,
}

/// The open files of sealed segments, least recently used closed first. Cheap to clone;
/// every clone is the same cache. See the module docs.
#[derive(Debug, Clone)]
pub struct OpenSegments {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    capacity: usize,
    next_id: AtomicU64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Bumped on every use; an entry's `last_used` orders eviction.
    tick: u64,
    entries: HashMap<u64, Entry>,
    opened_total: u64,
    evicted_total: u64,
}

#[derive(Debug)]
struct Entry {
    files: Arc<SegmentFiles>,
    last_used: u64,
}

impl OpenSegments {
    /// A cache that keeps at most `capacity` (at least 1) sealed segments' files open.
    pub fn new(capacity: usize) -> OpenSegments {
        OpenSegments {
            shared: Arc::new(Shared {
                capacity: capacity.max(1),
                next_id: AtomicU64::new(0),
                state: Mutex::new(State::default()),
            }),
        }
    }

    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    pub fn stats(&self) -> OpenSegmentStats {
        let state = self.lock();
        OpenSegmentStats {
            open: state.entries.len(),
            opened_total: state.opened_total,
            evicted_total: state.evicted_total,
        }
    }

    /// A key for a new segment, unique in this cache.
    pub(crate) fn next_id(&self) -> u64 {
        self.shared.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The files of segment `id`: the open ones, or `open()`'s (then cached, which may
    /// close the least recently used others).
    pub(crate) fn get_or_open(
        &self,
        id: u64,
        open: impl FnOnce() -> LogResult<SegmentFiles>,
    ) -> LogResult<Arc<SegmentFiles>> {
        {
            let mut state = self.lock();
            state.tick += 1;
            let tick = state.tick;
            if let Some(entry) = state.entries.get_mut(&id) {
                entry.last_used = tick;
                return Ok(Arc::clone(&entry.files));
            }
        }
        let opened = Arc::new(open()?);
        let mut state = self.lock();
        state.tick += 1;
        let tick = state.tick;
        if let Some(entry) = state.entries.get_mut(&id) {
            // Another reader opened them meanwhile: share those, drop ours.
            entry.last_used = tick;
            return Ok(Arc::clone(&entry.files));
        }
        state.opened_total += 1;
        state.entries.insert(
            id,
            Entry {
                files: Arc::clone(&opened),
                last_used: tick,
            },
        );
        let evicted = self.evict_beyond_capacity(&mut state, id);
        drop(state);
        drop(evicted);
        Ok(opened)
    }

    /// Hands the files of a segment that was just sealed to the cache.
    pub(crate) fn insert(&self, id: u64, files: Arc<SegmentFiles>) {
        let mut state = self.lock();
        state.tick += 1;
        let last_used = state.tick;
        let replaced = state.entries.insert(id, Entry { files, last_used });
        let evicted = self.evict_beyond_capacity(&mut state, id);
        drop(state);
        drop((replaced, evicted));
    }

    /// Takes the files of segment `id` out of the cache (it is unsealed or deleted).
    pub(crate) fn remove(&self, id: u64) -> Option<Arc<SegmentFiles>> {
        let removed = self.lock().entries.remove(&id);
        removed.map(|entry| entry.files)
    }

    /// Removes the least recently used entries (never `keep`) until at most `capacity`
    /// are left; returns them, to be dropped (closed) after the lock is released.
    fn evict_beyond_capacity(&self, state: &mut State, keep: u64) -> Vec<Arc<SegmentFiles>> {
        let mut evicted = Vec::new();
        while state.entries.len() > self.shared.capacity {
            let coldest = state
                .entries
                .iter()
                .filter(|(id, _)| **id != keep)
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(id, _)| *id);
            let Some(entry) = coldest.and_then(|id| state.entries.remove(&id)) else {
                break;
            };
            state.evicted_total += 1;
            evicted.push(entry.files);
        }
        evicted
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
