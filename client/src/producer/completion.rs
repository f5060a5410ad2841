//! How records learn their fate, one batch at a time.
//!
//! - [`BatchCompletion`]: the outcome of one batch (its base offset, or the error), set
//!   once and shared by the [`DeliveryFuture`] of every record in it. A record's future
//!   is that `Arc` plus its index: no channel, no allocation per record.
//! - [`BatchRecords`]: what a batch owes its callers until it completes: the records
//!   themselves (handed back in a `SendError` on failure), their share of
//!   `buffer.memory`, and their flush tickets.
//! - [`FlushTracker`]: lets `flush` wait for exactly the batches opened before it.
//!
//! Invariant: every batch completes exactly once. Dropping a [`BatchRecords`] that was not
//! completed (a task ending early) fails it with [`Error::Closed`], so no `send` hangs,
//! no memory leaks out of `buffer.memory` and no `flush` waits forever.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};

use tokio::sync::{watch, Notify, Semaphore};

use super::SendError;
use crate::error::Error;
use crate::record::{Delivery, Record};

/// The outcome of one batch, shared by the futures of its records.
#[derive(Debug, Default)]
pub(crate) struct BatchCompletion {
    outcome: OnceLock<Outcome>,
    /// Wakers of futures polled before the outcome was set.
    waiters: Mutex<Vec<Waker>>,
    /// The records' topic, set by the first record: a future takes it from here rather
    /// than holding a clone of its own, which would be two atomic operations per record
    /// on a count every record of the producer shares.
    topic: OnceLock<Arc<str>>,
}

#[derive(Debug)]
enum Outcome {
    /// Appended at `base_offset` (-1 with `acks=0`).
    Appended {
        partition: i32,
        base_offset: i64,
        log_append_time_ms: i64,
    },
    /// Refused or given up; each future takes its record back from `records`.
    Failed {
        error: Error,
        records: Mutex<Vec<Option<Record>>>,
    },
}

impl BatchCompletion {
    /// The completion of one record that waits on its own (for metadata).
    pub(crate) fn for_topic(topic: Arc<str>) -> BatchCompletion {
        let completion = BatchCompletion::default();
        let _ = completion.topic.set(topic);
        completion
    }

    fn topic(&self) -> Arc<str> {
        self.topic.get().cloned().unwrap_or_else(|| Arc::from(""))
    }

    fn set(&self, outcome: Outcome) {
        if self.outcome.set(outcome).is_err() {
            return; // already completed: the first outcome stands
        }
        let waiters = std::mem::take(&mut *lock(&self.waiters));
        for waker in waiters {
            waker.wake();
        }
    }
}

/// Resolves when the broker acknowledged (or finally refused) an enqueued record.
#[derive(Debug)]
#[must_use = "a DeliveryFuture does nothing unless awaited; dropping it does not cancel the send"]
pub struct DeliveryFuture {
    completion: Arc<BatchCompletion>,
    index: usize,
    /// The partition, when it was chosen at `enqueue`.
    partition: Option<i32>,
    timestamp_ms: i64,
    /// Where this future's waker sits in `waiters`, once registered.
    waiter_slot: Option<usize>,
}

impl DeliveryFuture {
    pub(crate) fn new(
        completion: Arc<BatchCompletion>,
        index: usize,
        partition: Option<i32>,
        timestamp_ms: i64,
    ) -> DeliveryFuture {
        DeliveryFuture {
            completion,
            index,
            partition,
            timestamp_ms,
            waiter_slot: None,
        }
    }

    /// The partition the record was placed in, known at `enqueue` unless the topic's
    /// metadata was still loading then. Records of one partition complete in order.
    pub fn partition(&self) -> Option<i32> {
        self.partition
    }

    // `SendError` hands the record back, so the caller can retry without a copy; that is
    // what makes it large.
    #[allow(clippy::result_large_err)]
    fn result(&self, outcome: &Outcome) -> Result<Delivery, SendError> {
        match outcome {
            Outcome::Appended {
                partition,
                base_offset,
                log_append_time_ms,
            } => {
                let offset = if *base_offset < 0 {
                    -1
                } else {
                    base_offset.saturating_add(self.index as i64)
                };
                let timestamp = if *log_append_time_ms >= 0 {
                    *log_append_time_ms
                } else {
                    self.timestamp_ms
                };
                Ok(Delivery::new(
                    self.completion.topic(),
                    *partition,
                    offset,
                    timestamp,
                ))
            }
            Outcome::Failed { error, records } => {
                let record = lock(records)
                    .get_mut(self.index)
                    .and_then(Option::take)
                    .unwrap_or_else(|| Record::to(self.completion.topic()));
                Err(SendError {
                    error: error.duplicate(),
                    record,
                })
            }
        }
    }
}

impl Future for DeliveryFuture {
    type Output = Result<Delivery, SendError>;

    #[allow(clippy::result_large_err)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(outcome) = self.completion.outcome.get() {
            return Poll::Ready(self.result(outcome));
        }
        let completion = self.completion.clone();
        let mut waiters = lock(&completion.waiters);
        // Checked again under the lock: `set` stores the outcome before it takes the
        // waiters, so either we see the outcome or `set` sees our waker.
        if let Some(outcome) = completion.outcome.get() {
            drop(waiters);
            return Poll::Ready(self.result(outcome));
        }
        match self.waiter_slot.and_then(|slot| waiters.get_mut(slot)) {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            Some(waker) => waker.clone_from(cx.waker()),
            None => {
                waiters.push(cx.waker().clone());
                let slot = waiters.len() - 1;
                drop(waiters);
                self.waiter_slot = Some(slot);
            }
        }
        Poll::Pending
    }
}

/// A batch's share of `buffer.memory`, given back when the batch completes.
#[derive(Debug)]
pub(crate) struct MemoryShare {
    semaphore: Arc<Semaphore>,
    permits: usize,
}

impl MemoryShare {
    pub(crate) fn empty(semaphore: Arc<Semaphore>) -> MemoryShare {
        MemoryShare {
            semaphore,
            permits: 0,
        }
    }

    /// Takes `permits` from the semaphore now, if it has them.
    pub(crate) fn try_take(semaphore: &Arc<Semaphore>, permits: u32) -> Option<MemoryShare> {
        let permit = semaphore.try_acquire_many(permits).ok()?;
        permit.forget();
        Some(MemoryShare {
            semaphore: semaphore.clone(),
            permits: permits as usize,
        })
    }

    /// Wraps permits already taken from `semaphore` (and forgotten).
    pub(crate) fn taken(semaphore: Arc<Semaphore>, permits: usize) -> MemoryShare {
        MemoryShare { semaphore, permits }
    }

    pub(crate) fn absorb(&mut self, mut other: MemoryShare) {
        self.permits = self
            .permits
            .saturating_add(std::mem::take(&mut other.permits));
    }
}

impl Drop for MemoryShare {
    fn drop(&mut self) {
        if self.permits > 0 {
            self.semaphore.add_permits(self.permits);
        }
    }
}

/// A record that waited for its topic's metadata before it got a batch: it has its own
/// completion (its future was handed out at `enqueue`), which its batch completes too.
#[derive(Debug)]
pub(crate) struct Linked {
    pub(crate) completion: Arc<BatchCompletion>,
    pub(crate) ticket: u64,
}

/// What a batch owes its callers until it completes.
#[derive(Debug)]
pub(crate) struct BatchRecords {
    completion: Arc<BatchCompletion>,
    records: Vec<KeptRecord>,
    /// Records that came with their own completion: (position in the batch, link).
    linked: Vec<(usize, Linked)>,
    memory: MemoryShare,
    /// Records pushed (`records` is emptied when the batch fails).
    count: usize,
    /// The batch's own flush ticket.
    ticket: u64,
    tracker: Arc<FlushTracker>,
    done: bool,
}

impl BatchRecords {
    #[cfg(test)]
    pub(crate) fn new(tracker: Arc<FlushTracker>, memory: MemoryShare) -> BatchRecords {
        BatchRecords::with_capacity(tracker, memory, 0)
    }

    /// A batch with room reserved for `records` records.
    pub(crate) fn with_capacity(
        tracker: Arc<FlushTracker>,
        memory: MemoryShare,
        records: usize,
    ) -> BatchRecords {
        let ticket = tracker.register();
        BatchRecords {
            completion: Arc::new(BatchCompletion::default()),
            records: Vec::with_capacity(records),
            linked: Vec::new(),
            memory,
            count: 0,
            ticket,
            tracker,
            done: false,
        }
    }

    /// Adds the next record; returns its index (offset delta) in the batch.
    pub(crate) fn push(
        &mut self,
        record: Record,
        memory: MemoryShare,
        link: Option<Linked>,
    ) -> usize {
        let index = self.records.len();
        let (topic, kept) = KeptRecord::split(record);
        if index == 0 {
            // A copy of the batch's own: the records' `Arc` is the caller's, cloned per
            // record on the caller's thread, and futures clone this one on theirs.
            let _ = self.completion.topic.set(Arc::from(&*topic));
        }
        // Dropped here, on the thread that cloned it, rather than when the batch completes.
        drop(topic);
        self.records.push(kept);
        self.count += 1;
        self.memory.absorb(memory);
        match link {
            // Counted when it started waiting for metadata.
            Some(link) => self.linked.push((index, link)),
            None => self.tracker.records_added(1),
        }
        index
    }

    pub(crate) fn completion(&self) -> &Arc<BatchCompletion> {
        &self.completion
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The lowest flush ticket the batch carries (linked records keep their older ones).
    pub(crate) fn min_ticket(&self) -> u64 {
        self.linked
            .iter()
            .map(|(_, link)| link.ticket)
            .fold(self.ticket, u64::min)
    }

    /// The batch was appended to `partition` at `base_offset` (-1 when the broker does
    /// not answer).
    pub(crate) fn succeed(mut self, partition: i32, base_offset: i64, log_append_time_ms: i64) {
        for (position, link) in &self.linked {
            let base = if base_offset < 0 {
                -1
            } else {
                base_offset.saturating_add(*position as i64)
            };
            link.completion.set(Outcome::Appended {
                partition,
                base_offset: base,
                log_append_time_ms,
            });
        }
        self.completion.set(Outcome::Appended {
            partition,
            base_offset,
            log_append_time_ms,
        });
        self.finish();
    }

    /// The batch failed for good: every record's future gets `error` and its record back.
    pub(crate) fn fail(mut self, error: &Error) {
        self.fail_in_place(error);
    }

    fn fail_in_place(&mut self, error: &Error) {
        let topic = self.completion.topic();
        let mut records: Vec<Option<Record>> = std::mem::take(&mut self.records)
            .into_iter()
            .map(|kept| Some(kept.into_record(topic.clone())))
            .collect();
        for (position, link) in &self.linked {
            let record = records.get_mut(*position).and_then(Option::take);
            link.completion.set(Outcome::Failed {
                error: error.duplicate(),
                records: Mutex::new(vec![record]),
            });
        }
        self.completion.set(Outcome::Failed {
            error: error.duplicate(),
            records: Mutex::new(records),
        });
        self.finish();
    }

    fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        self.tracker.records_completed(self.count);
        for (_, link) in &self.linked {
            self.tracker.complete(link.ticket);
        }
        self.tracker.complete(self.ticket);
        self.records.clear();
    }
}

/// A record held by its batch for the `SendError` of a failure, without its topic (the
/// batch's completion has it): the caller's topic `Arc` is then released on the caller's
/// thread, not counted down on another core when the batch completes.
#[derive(Debug)]
struct KeptRecord {
    partition: Option<i32>,
    key: Option<bytes::Bytes>,
    value: Option<bytes::Bytes>,
    headers: Vec<(String, Option<bytes::Bytes>)>,
    timestamp_ms: Option<i64>,
    deliver_at_ms: Option<i64>,
}

impl KeptRecord {
    fn split(record: Record) -> (Arc<str>, KeptRecord) {
        let Record {
            topic,
            partition,
            key,
            value,
            headers,
            timestamp_ms,
            deliver_at_ms,
        } = record;
        let kept = KeptRecord {
            partition,
            key,
            value,
            headers,
            timestamp_ms,
            deliver_at_ms,
        };
        (topic, kept)
    }

    fn into_record(self, topic: Arc<str>) -> Record {
        Record {
            topic,
            partition: self.partition,
            key: self.key,
            value: self.value,
            headers: self.headers,
            timestamp_ms: self.timestamp_ms,
            deliver_at_ms: self.deliver_at_ms,
        }
    }
}

impl Drop for BatchRecords {
    fn drop(&mut self) {
        if !self.done {
            self.fail_in_place(&Error::Closed("producer"));
        }
    }
}

/// Fails a record that never got a batch (its topic never became known, or the producer
/// closed while it waited): its own completion gets `error` and the record.
pub(crate) fn fail_unbatched(link: Linked, record: Record, tracker: &FlushTracker, error: Error) {
    link.completion.set(Outcome::Failed {
        error,
        records: Mutex::new(vec![Some(record)]),
    });
    tracker.records_completed(1);
    tracker.complete(link.ticket);
}

/// Tickets of the batches (and waiting records) not yet completed, the flush requests the
/// partition tasks act on, and the count of records not yet completed.
#[derive(Debug)]
pub(crate) struct FlushTracker {
    state: Mutex<TrackerState>,
    completed: Notify,
    target: watch::Sender<u64>,
    records: AtomicUsize,
}

#[derive(Debug, Default)]
struct TrackerState {
    next_ticket: u64,
    outstanding: BTreeSet<u64>,
}

impl Default for FlushTracker {
    fn default() -> FlushTracker {
        FlushTracker {
            state: Mutex::new(TrackerState {
                next_ticket: 1,
                outstanding: BTreeSet::new(),
            }),
            completed: Notify::new(),
            target: watch::Sender::new(0),
            records: AtomicUsize::new(0),
        }
    }
}

impl FlushTracker {
    pub(crate) fn register(&self) -> u64 {
        let mut state = lock(&self.state);
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.outstanding.insert(ticket);
        ticket
    }

    fn complete(&self, ticket: u64) {
        let lowest_changed = {
            let mut state = lock(&self.state);
            let lowest = state.outstanding.first().copied();
            state.outstanding.remove(&ticket);
            lowest == Some(ticket)
        };
        if lowest_changed {
            self.completed.notify_waiters();
        }
    }

    pub(crate) fn records_added(&self, count: usize) {
        self.records.fetch_add(count, Ordering::Relaxed);
    }

    fn records_completed(&self, count: usize) {
        self.records.fetch_sub(count, Ordering::Relaxed);
    }

    /// Records not yet completed.
    pub(crate) fn outstanding_records(&self) -> usize {
        self.records.load(Ordering::Relaxed)
    }

    /// The flush target partition tasks watch: seal batches holding tickets up to it.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.target.subscribe()
    }

    /// Waits until every ticket registered before this call has completed.
    pub(crate) async fn flush(&self) {
        let target = lock(&self.state).next_ticket.saturating_sub(1);
        self.target
            .send_modify(|current| *current = (*current).max(target));
        loop {
            let notified = self.completed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let done = lock(&self.state)
                .outstanding
                .first()
                .is_none_or(|lowest| *lowest > target);
            if done {
                return;
            }
            notified.await;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
#[path = "completion_tests.rs"]
mod tests;
