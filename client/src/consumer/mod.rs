//! [`Consumer`]: reads assigned partitions as an async `Stream` of [`ConsumedRecord`](crate::ConsumedRecord)s.
//!
//! - `builder`: settings, assignment or subscription, start offset, group and commit mode.
//! - `group`: group membership: a coordinator task (join, heartbeats, reconciliation,
//!   commits) and the consumer's side of it (rebalance events, marks, commits).
//! - `offsets`: `Offset` → number via `ListOffsets` (also used by `Admin`).
//! - `fetcher`: one long-poll fetch loop per leader broker, plus a supervisor that starts
//!   loops as leaders appear; a loop reads through a fetch session (`FetchStream`), whose
//!   broker reads the next answer while the client decodes this one; each fetched
//!   partition becomes a `Chunk` of whole, still undecoded batches pushed into a bounded
//!   channel.
//! - `batches`: `FetchedBatches`, a chunk's batches and the lazy decoder: CRC checked when
//!   a batch is first reached, one record decoded per poll, payloads sliced not copied.
//! - `due`: records not due yet (a producer's `deliver_at`, a retry record's due time)
//!   are held back; a fetch loop wakes when such a partition becomes due.
//! - `retry`: with `.retry(policy)`, the group's retry and dead-letter topics: creating
//!   them, `fail` and `run`, and holding back retry records until they are due.
//! - `stream`: the `Consumer` itself, which drains the channel; `seek`, `pause`,
//!   `resume`, `position`.
//!
//! Backpressure: at most `PREFETCH_CHUNKS` chunks per partition exist at a time, and the
//! channel is bounded, so memory stays near `partitions × 4 × max.partition.fetch.bytes`
//! (1 MiB by default, see `builder`) plus the answers a fetch session has granted and not
//! handed over yet (as many as fit in half the 8 MiB HTTP/2 stream window).
//!
//! `seek` bumps the partition's *generation*; chunks and fetches of an older generation
//! are dropped wherever they are met, so nothing from before a seek is ever yielded.

mod batches;
mod builder;
mod due;
mod fetcher;
pub(crate) mod group;
pub(crate) mod offsets;
pub(crate) mod retry;
mod stream;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

pub use builder::{CommitMode, ConsumerBuilder};
pub use group::{Marker, PendingCommit, RebalanceEvent, RebalanceEvents};
pub use stream::Consumer;

use crate::client::Client;
use crate::error::Error;
use batches::FetchedBatches;
use builder::ConsumerConfig;

/// Chunks (fetched but not yet yielded answers) allowed per partition. With 2 the stream
/// waited for the next answer between chunks: one partition of 1000-byte records in
/// ~1 MB batches read at 1265–1350 MB/s, against 1430–1650 with 4 and 1490–1690 with 8
/// (`strata bench consume`, 2 MiB fetches, 3 interleaved runs each, 2 shared vCPUs).
/// 4 takes most of the gain for half of 8's memory.
pub(crate) const PREFETCH_CHUNKS: usize = 4;

/// What the fetch loops and the stream share.
#[derive(Debug)]
pub(crate) struct ConsumerShared {
    pub(crate) client: Client,
    pub(crate) config: ConsumerConfig,
    /// One slot per partition this consumer has been assigned, by index. Slots are never
    /// removed, so an index stays valid: a group consumer marks a revoked partition's
    /// slot unassigned and reuses it if the partition comes back. Fixed for a consumer
    /// without a group.
    state: Mutex<Vec<FetchState>>,
    /// Signalled when fetchable work may have appeared (seek, resume, a chunk consumed).
    pub(crate) wake: Notify,
    pub(crate) shutdown: AtomicBool,
}

/// The fetch side of one assigned partition.
#[derive(Debug, Clone)]
pub(crate) struct FetchState {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    /// The consumer owns the partition now (a group may take it away).
    pub(crate) assigned: bool,
    /// The next offset to fetch.
    pub(crate) fetch_offset: i64,
    pub(crate) generation: u64,
    pub(crate) paused: bool,
    /// Stopped after an error the application must act on (out of range, corrupt data)
    /// until it seeks.
    pub(crate) blocked: bool,
    pub(crate) retry_at: Option<Instant>,
    pub(crate) attempts: u32,
    /// A fetch for it is outstanding.
    pub(crate) in_fetch: bool,
    /// Chunks pushed and not yet drained by the stream.
    pub(crate) buffered_chunks: usize,
}

impl FetchState {
    fn new(topic: Arc<str>, partition: i32, fetch_offset: i64) -> FetchState {
        FetchState {
            topic,
            partition,
            assigned: true,
            fetch_offset,
            generation: 0,
            paused: false,
            blocked: false,
            retry_at: None,
            attempts: 0,
            in_fetch: false,
            buffered_chunks: 0,
        }
    }

    /// Whether a fetch loop may ask for this partition now.
    pub(crate) fn fetchable(&self, now: Instant) -> bool {
        self.assigned
            && !self.paused
            && !self.blocked
            && !self.in_fetch
            && self.buffered_chunks < PREFETCH_CHUNKS
            && self.retry_at.is_none_or(|retry_at| retry_at <= now)
    }

    /// Whether only a free prefetch slot is missing for it to be fetchable.
    pub(crate) fn awaits_prefetch_slot_only(&self, now: Instant) -> bool {
        self.assigned
            && !self.paused
            && !self.blocked
            && !self.in_fetch
            && self.buffered_chunks >= PREFETCH_CHUNKS
            && self.retry_at.is_none_or(|retry_at| retry_at <= now)
    }
}

/// The result of fetching one partition once: batches holding the records at or after the
/// fetch offset, or an error to surface.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub(crate) index: usize,
    pub(crate) generation: u64,
    pub(crate) content: ChunkContent,
}

#[derive(Debug)]
pub(crate) enum ChunkContent {
    Batches(FetchedBatches),
    Error(Error),
}

impl ConsumerShared {
    pub(crate) fn new(
        client: Client,
        config: ConsumerConfig,
        partitions: &[(String, i32)],
        start_offsets: &[i64],
    ) -> ConsumerShared {
        let state = partitions
            .iter()
            .zip(start_offsets)
            .map(|((topic, partition), offset)| {
                FetchState::new(Arc::from(topic.as_str()), *partition, *offset)
            })
            .collect();
        ConsumerShared {
            client,
            config,
            state: Mutex::new(state),
            wake: Notify::new(),
            shutdown: AtomicBool::new(false),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, Vec<FetchState>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The partitions assigned now, by slot index.
    pub(crate) fn assigned(&self) -> Vec<(usize, Arc<str>, i32)> {
        self.state()
            .iter()
            .enumerate()
            .filter(|(_, fetch)| fetch.assigned)
            .map(|(index, fetch)| (index, fetch.topic.clone(), fetch.partition))
            .collect()
    }

    /// Starts fetching `topic/partition` at `offset`: its old slot when it had one, a new
    /// slot otherwise. Returns the slot's index and generation (older chunks are dropped).
    pub(crate) fn assign(&self, topic: &str, partition: i32, offset: i64) -> (usize, u64) {
        let mut state = self.state();
        let existing = state
            .iter()
            .position(|fetch| &*fetch.topic == topic && fetch.partition == partition);
        let index = match existing {
            Some(index) => index,
            None => {
                state.push(FetchState::new(Arc::from(topic), partition, offset));
                state.len() - 1
            }
        };
        let Some(fetch) = state.get_mut(index) else {
            return (index, 0);
        };
        fetch.assigned = true;
        fetch.generation += 1;
        fetch.fetch_offset = offset;
        fetch.paused = false;
        fetch.blocked = false;
        fetch.retry_at = None;
        fetch.attempts = 0;
        let generation = fetch.generation;
        drop(state);
        self.wake.notify_waiters();
        (index, generation)
    }

    /// Stops fetching slot `index` (its partition was revoked or lost); chunks already
    /// fetched become stale. Returns the new generation.
    pub(crate) fn unassign(&self, index: usize) -> Option<u64> {
        let mut state = self.state();
        let fetch = state.get_mut(index)?;
        fetch.assigned = false;
        fetch.generation += 1;
        Some(fetch.generation)
    }

    /// The stream finished with a chunk of partition `index`: a prefetch slot is free.
    pub(crate) fn release_chunk(&self, index: usize) {
        if let Some(partition) = self.state().get_mut(index) {
            partition.buffered_chunks = partition.buffered_chunks.saturating_sub(1);
        }
        self.wake.notify_waiters();
    }
}
