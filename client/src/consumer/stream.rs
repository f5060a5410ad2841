//! [`Consumer`]: the `Stream` the application polls, and the controls that change what
//! it yields next (`seek`, `pause`, `resume`).
//!
//! The consumer keeps its own copy of each partition's generation, pause flag and
//! position (a [`Slot`]), so yielding a record takes no lock. A chunk whose generation
//! is older than the partition's is dropped; a chunk of a paused partition is set aside
//! until `resume`. A group consumer's slots come and go with its assignment
//! (`group/member.rs` applies the coordinator task's controls at each poll).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use tokio_stream::Stream;

use super::builder::ConsumerBuilder;
use super::group::{self, MemberView};
use super::offsets::resolve_all;
use super::retry::RetryState;
use super::{fetcher, Chunk, ChunkContent, ConsumerShared, PREFETCH_CHUNKS};
use crate::error::{Error, ErrorCode};
use crate::record::{ConsumedRecord, Offset};

/// The channel of fetched chunks of a group consumer, whose partition count is not known
/// up front (each partition still has at most `PREFETCH_CHUNKS` chunks in flight).
const GROUP_CHUNK_CHANNEL: usize = 1024;

/// Reads its assigned partitions as a `Stream<Item = Result<ConsumedRecord, Error>>`.
///
/// Records of one partition come in offset order; partitions interleave. An error item
/// (e.g. `OFFSET_OUT_OF_RANGE`, or a fetched batch failing its CRC) stops that partition
/// until [`Consumer::seek`]; the other partitions go on. After a bad batch,
/// [`Consumer::position`] is the offset where it starts, so seeking there reads it again
/// (`CORRUPT_MESSAGE` is retriable: the bytes may have been damaged in transit).
/// Dropping the consumer stops its background fetches.
///
/// With `.group(..)`, the group decides the assignment, which changes while the consumer
/// runs ([`Consumer::rebalance_events`]); offsets are committed by the commit mode
/// (`docs/CLIENT.md`, "Consumer groups").
///
/// Records are decoded one per poll from the fetched batches; their payloads share the
/// fetched buffer (see [`ConsumedRecord`]).
#[derive(Debug)]
pub struct Consumer {
    pub(super) shared: Arc<ConsumerShared>,
    chunks: mpsc::Receiver<Chunk>,
    /// The chunk being yielded from.
    pub(super) current: Option<Chunk>,
    /// Chunks of paused partitions, kept for `resume`.
    pub(super) stashed: VecDeque<Chunk>,
    /// The consumer's side of each of the shared state's slots, by the same index.
    pub(super) slots: Vec<Slot>,
    /// The last record yielded; once the application asks for the next one, it counts as
    /// processed (`CommitMode::Auto`).
    pub(super) last_yielded: Option<Yielded>,
    /// Group membership, when built with `.group(..)`.
    pub(super) group: Option<MemberView>,
    /// Retry and dead-letter topics, when built with `.retry(..)`.
    pub(super) retry: Option<RetryState>,
}

/// The consumer's side of one partition it reads or has read.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) assigned: bool,
    pub(crate) generation: u64,
    pub(crate) paused: bool,
    /// The next offset to yield.
    pub(crate) position: i64,
    /// The leader epoch of the last record yielded, -1 before the first.
    pub(crate) leader_epoch: i32,
    /// The position after the records whose successor the application asked for, and
    /// the last one's leader epoch.
    pub(crate) processed: Option<(i64, i32)>,
    /// No commit goes past this offset while a failed record's hand-off is outstanding
    /// (`retry/handoff.rs`).
    pub(crate) commit_cap: Option<i64>,
}

impl Slot {
    pub(crate) fn new(topic: Arc<str>, partition: i32, position: i64) -> Slot {
        Slot {
            topic,
            partition,
            assigned: true,
            generation: 0,
            paused: false,
            position,
            leader_epoch: -1,
            processed: None,
            commit_cap: None,
        }
    }
}

/// A record yielded: its slot, the slot's generation then, the offset after it and its
/// leader epoch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Yielded {
    index: usize,
    generation: u64,
    next_offset: i64,
    leader_epoch: i32,
}

impl Consumer {
    /// Resolves the assignment and start offsets, then starts the fetch tasks; with a
    /// group, joins it first.
    pub(crate) async fn start(builder: ConsumerBuilder) -> Result<Consumer, Error> {
        if let Some(settings) = builder.group_settings() {
            return Consumer::start_group(builder, settings).await;
        }
        let client = builder.client.clone();
        let mut topics: Vec<String> = builder.topics.clone();
        topics.extend(builder.assigned.iter().map(|(topic, _)| topic.clone()));
        topics.sort();
        topics.dedup();
        client.refresh_metadata(&topics).await?;
        let mut partitions: Vec<(String, i32)> = Vec::new();
        for topic in &builder.topics {
            let numbers = client
                .metadata()
                .partitions(topic)
                .ok_or_else(|| unknown_topic(topic))?;
            partitions.extend(numbers.into_iter().map(|number| (topic.clone(), number)));
        }
        for (topic, partition) in &builder.assigned {
            let numbers = client
                .metadata()
                .partitions(topic)
                .ok_or_else(|| unknown_topic(topic))?;
            if !numbers.contains(partition) {
                return Err(Error::Broker {
                    code: ErrorCode::UnknownTopicOrPartition,
                    message: format!(
                        "partition {partition} does not exist: topic {topic} has {} partitions",
                        numbers.len()
                    ),
                    retriable: false,
                });
            }
            partitions.push((topic.clone(), *partition));
        }
        partitions.sort();
        partitions.dedup();
        let offsets = resolve_all(&client, &partitions, builder.config.start).await?;
        let count = partitions.len();
        let slots = partitions
            .iter()
            .zip(&offsets)
            .map(|((topic, partition), offset)| {
                Slot::new(Arc::from(topic.as_str()), *partition, *offset)
            })
            .collect();
        let shared = Arc::new(ConsumerShared::new(
            client,
            builder.config,
            &partitions,
            &offsets,
        ));
        let (sender, chunks) = mpsc::channel((count * PREFETCH_CHUNKS).clamp(4, 1024));
        fetcher::spawn(shared.clone(), sender);
        Ok(Consumer::new(shared, chunks, slots, None))
    }

    /// Joins the group; partitions come with the coordinator task's first `Assign`.
    async fn start_group(
        builder: ConsumerBuilder,
        settings: group::GroupSettings,
    ) -> Result<Consumer, Error> {
        let client = builder.client.clone();
        let member = group::join(client.clone(), settings).await?;
        let shared = Arc::new(ConsumerShared::new(client, builder.config, &[], &[]));
        let (sender, chunks) = mpsc::channel(GROUP_CHUNK_CHANNEL);
        fetcher::spawn(shared.clone(), sender);
        Ok(Consumer::new(shared, chunks, Vec::new(), Some(member)))
    }

    pub(super) fn new(
        shared: Arc<ConsumerShared>,
        chunks: mpsc::Receiver<Chunk>,
        slots: Vec<Slot>,
        group: Option<MemberView>,
    ) -> Consumer {
        Consumer {
            shared,
            chunks,
            current: None,
            stashed: VecDeque::new(),
            slots,
            last_yielded: None,
            group,
            retry: None,
        }
    }

    /// The assigned partitions, sorted. A group consumer's assignment changes with
    /// rebalances; this is what it reads now.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        let mut assigned: Vec<(String, i32)> = self
            .slots
            .iter()
            .filter(|slot| slot.assigned)
            .map(|slot| (slot.topic.to_string(), slot.partition))
            .collect();
        assigned.sort();
        assigned
    }

    /// The offset of the next record this consumer yields for `topic/partition`.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        let index = self.index_of(topic, partition)?;
        self.slots.get(index).map(|slot| slot.position)
    }

    /// Moves `topic/partition` to `offset`: the next record yielded for it is the one at
    /// the resolved offset. Clears an error that stopped the partition.
    pub async fn seek(&mut self, topic: &str, partition: i32, offset: Offset) -> Result<(), Error> {
        let index = self.assigned_index(topic, partition)?;
        let target = [(topic.to_owned(), partition)];
        let resolved = resolve_all(&self.shared.client, &target, offset).await?;
        let Some(offset) = resolved.first().copied() else {
            return Err(Error::InvalidConfig("seek resolved no offset".to_owned()));
        };
        // A rebalance may have taken the partition while ListOffsets ran.
        let index = match self.index_of(topic, partition) {
            Some(now) if now == index => index,
            _ => return Err(not_assigned(topic, partition)),
        };
        let generation = {
            let mut state = self.shared.state();
            let Some(fetch) = state.get_mut(index) else {
                return Err(not_assigned(topic, partition));
            };
            fetch.generation += 1;
            fetch.fetch_offset = offset;
            fetch.blocked = false;
            fetch.retry_at = None;
            fetch.attempts = 0;
            fetch.generation
        };
        if let Some(slot) = self.slots.get_mut(index) {
            slot.generation = generation;
            slot.position = offset;
        }
        self.drop_buffered(index);
        self.shared.wake.notify_waiters();
        Ok(())
    }

    /// Stops yielding and fetching these partitions until [`Consumer::resume`].
    pub fn pause<T: AsRef<str>>(&mut self, partitions: &[(T, i32)]) {
        self.set_paused(partitions, true);
    }

    /// Undoes [`Consumer::pause`].
    pub fn resume<T: AsRef<str>>(&mut self, partitions: &[(T, i32)]) {
        self.set_paused(partitions, false);
        self.shared.wake.notify_waiters();
    }

    /// Stops the background fetches. A group consumer then commits by its commit mode
    /// (`Auto`: the position after every record yielded; `Marked`: the marks; `Manual`:
    /// nothing more) and leaves the group (a static member leaves for a restart, keeping
    /// its partitions until the session times out). Returns the commit's error, if any;
    /// the consumer leaves the group either way.
    pub async fn close(mut self) -> Result<(), Error> {
        self.stop();
        self.close_retry().await;
        self.close_group().await
    }

    fn stop(&self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.shared.wake.notify_waiters();
    }

    fn set_paused<T: AsRef<str>>(&mut self, partitions: &[(T, i32)], paused: bool) {
        let indexes: Vec<usize> = partitions
            .iter()
            .filter_map(|(topic, partition)| self.index_of(topic.as_ref(), *partition))
            .collect();
        let mut state = self.shared.state();
        for index in indexes {
            if let Some(slot) = self.slots.get_mut(index) {
                slot.paused = paused;
            }
            if let Some(fetch) = state.get_mut(index) {
                fetch.paused = paused;
            }
        }
    }

    /// The slot of an assigned partition.
    pub(super) fn index_of(&self, topic: &str, partition: i32) -> Option<usize> {
        self.slots
            .iter()
            .position(|slot| slot.assigned && &*slot.topic == topic && slot.partition == partition)
    }

    fn assigned_index(&self, topic: &str, partition: i32) -> Result<usize, Error> {
        self.index_of(topic, partition)
            .ok_or_else(|| not_assigned(topic, partition))
    }

    /// Drops the chunks of slot `index` held here (the one being drained, the stashed
    /// ones), freeing their prefetch slots.
    pub(super) fn drop_buffered(&mut self, index: usize) {
        if self
            .current
            .as_ref()
            .is_some_and(|chunk| chunk.index == index)
        {
            self.current = None;
            self.shared.release_chunk(index);
        }
        let (stale, kept): (VecDeque<Chunk>, VecDeque<Chunk>) = std::mem::take(&mut self.stashed)
            .into_iter()
            .partition(|chunk| chunk.index == index);
        self.stashed = kept;
        for _ in stale {
            self.shared.release_chunk(index);
        }
    }

    fn is_paused(&self, index: usize) -> bool {
        self.slots.get(index).is_some_and(|slot| slot.paused)
    }

    fn is_current(&self, chunk: &Chunk) -> bool {
        self.slots
            .get(chunk.index)
            .is_some_and(|slot| slot.assigned && slot.generation == chunk.generation)
    }

    /// The application asked for another record: the one yielded before is processed.
    fn note_processed(&mut self) {
        let Some(yielded) = self.last_yielded.take() else {
            return;
        };
        if let Some(slot) = self.slots.get_mut(yielded.index) {
            if slot.generation == yielded.generation {
                slot.processed = Some((yielded.next_offset, yielded.leader_epoch));
            }
        }
    }

    /// The next item from the chunk being drained, or `None` when it is used up, stale
    /// or paused (then it is released or stashed).
    fn next_from_current(&mut self) -> Option<Result<ConsumedRecord, Error>> {
        let chunk = self.current.take()?;
        let index = chunk.index;
        if !self.is_current(&chunk) {
            self.shared.release_chunk(index);
            return None;
        }
        if self.is_paused(index) {
            self.stashed.push_back(chunk);
            return None;
        }
        let mut chunk = chunk;
        match &mut chunk.content {
            ChunkContent::Batches(batches) => {
                let item = batches.next_record();
                let generation = chunk.generation;
                if batches.is_empty() {
                    self.shared.release_chunk(index);
                } else {
                    self.current = Some(chunk);
                }
                match item? {
                    Ok(record) => {
                        if let Some(until) = self.not_due(&record) {
                            // A retry record before its due time: read it again then.
                            self.defer(index, record.offset, until);
                            return None;
                        }
                        if let Some(slot) = self.slots.get_mut(index) {
                            slot.position = record.offset + 1;
                            slot.leader_epoch = record.leader_epoch;
                        }
                        self.last_yielded = Some(Yielded {
                            index,
                            generation,
                            next_offset: record.offset + 1,
                            leader_epoch: record.leader_epoch,
                        });
                        Some(Ok(record))
                    }
                    Err(error) => {
                        self.stop_partition(index);
                        Some(Err(error))
                    }
                }
            }
            ChunkContent::Error(_) => {
                self.shared.release_chunk(index);
                match chunk.content {
                    ChunkContent::Error(error) if self.resets_out_of_range(index, &error) => None,
                    ChunkContent::Error(error) => Some(Err(error)),
                    ChunkContent::Batches(_) => None,
                }
            }
        }
    }

    /// Stops partition `index` after a fetched batch failed its checks, as the fetcher does
    /// after an error answer: nothing more is fetched until `seek`. Its generation moves on,
    /// so chunks fetched past the bad batch are dropped wherever they are met.
    fn stop_partition(&mut self, index: usize) {
        let generation = {
            let mut state = self.shared.state();
            let Some(fetch) = state.get_mut(index) else {
                return;
            };
            fetch.generation += 1;
            fetch.blocked = true;
            fetch.generation
        };
        if let Some(slot) = self.slots.get_mut(index) {
            slot.generation = generation;
        }
    }
}

impl Stream for Consumer {
    type Item = Result<ConsumedRecord, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        // Records decoded from a buffered chunk touch no Tokio resource, so without this a
        // task draining a chunk never yields: the connection task that would send the
        // next fetch waits behind thousands of records on the same worker.
        let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        this.note_processed();
        if let Some(error) = this.poll_group(cx) {
            coop.made_progress();
            return Poll::Ready(Some(Err(error)));
        }
        this.poll_retry(cx);
        loop {
            if let Some(item) = this.next_from_current() {
                coop.made_progress();
                return Poll::Ready(Some(item));
            }
            if this.current.is_some() {
                continue;
            }
            let resumable = this
                .stashed
                .iter()
                .position(|chunk| !this.is_paused(chunk.index));
            if let Some(chunk) = resumable.and_then(|position| this.stashed.remove(position)) {
                this.current = Some(chunk);
                continue;
            }
            match this.chunks.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => this.current = Some(chunk),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    this.note_waiting();
                    return Poll::Pending;
                }
            }
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.stop();
        self.abandon_group();
    }
}

fn unknown_topic(topic: &str) -> Error {
    Error::Broker {
        code: ErrorCode::UnknownTopicOrPartition,
        message: format!("topic {topic} does not exist"),
        retriable: false,
    }
}

pub(super) fn not_assigned(topic: &str, partition: i32) -> Error {
    Error::InvalidConfig(format!(
        "{topic}/{partition} is not assigned to this consumer"
    ))
}
