//! [`Pending`]: one record on its way to the broker, holding everything needed to finish
//! it (the caller's channel, its share of `buffer.memory`, its flush ticket); and
//! [`FlushTracker`], which lets `flush` wait for exactly the records sent before it.
//!
//! Invariant: every `Pending` completes exactly once. Dropping one that was not
//! completed (a task ending early) completes it with [`Error::Closed`], so no `send` hangs
//! and no `flush` waits forever.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, watch, Notify, OwnedSemaphorePermit};
use tokio::time::Instant;

use crate::error::Error;
use crate::producer::SendError;
use crate::record::{Delivery, Record};

/// The result channel of one record.
pub(crate) type DeliverySender = oneshot::Sender<Result<Delivery, SendError>>;

/// A record accepted by `enqueue`, not yet completed.
#[derive(Debug)]
pub(crate) struct Pending {
    /// `Some` until completed; taken by [`Pending::complete`] or [`Pending::into_record`].
    record: Option<Record>,
    /// The create time stamped into the batch.
    pub(crate) timestamp_ms: i64,
    pub(crate) ticket: u64,
    /// When delivery gives up (`enqueue` time + `delivery.timeout.ms`).
    pub(crate) deadline: Instant,
    done: Option<DeliverySender>,
    tracker: Arc<FlushTracker>,
    /// This record's share of `buffer.memory`, released on completion.
    _permit: Option<OwnedSemaphorePermit>,
}

impl Pending {
    pub(crate) fn new(
        record: Record,
        timestamp_ms: i64,
        deadline: Instant,
        done: DeliverySender,
        tracker: Arc<FlushTracker>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Pending {
        let ticket = tracker.register();
        Pending {
            record: Some(record),
            timestamp_ms,
            ticket,
            deadline,
            done: Some(done),
            tracker,
            _permit: permit,
        }
    }

    /// The record; present until the pending record is completed.
    pub(crate) fn record(&self) -> Option<&Record> {
        self.record.as_ref()
    }

    pub(crate) fn topic(&self) -> &str {
        self.record
            .as_ref()
            .map_or("", |record| record.topic.as_str())
    }

    /// Finishes the record: the caller's future resolves with `result`.
    pub(crate) fn complete(mut self, result: Result<Delivery, Error>) {
        self.finish(result);
    }

    /// Takes the record back without delivering it (`enqueue` refused it after all).
    pub(crate) fn into_record(mut self) -> Record {
        self.done = None;
        self.tracker.complete(self.ticket);
        self.record.take().unwrap_or_else(|| Record::to(""))
    }

    fn finish(&mut self, result: Result<Delivery, Error>) {
        let Some(done) = self.done.take() else {
            return;
        };
        let result = result.map_err(|error| SendError {
            error,
            record: self.record.take().unwrap_or_else(|| Record::to("")),
        });
        // The caller may have dropped its future: nobody to tell, nothing to do.
        let _ = done.send(result);
        self.tracker.complete(self.ticket);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.done.is_some() {
            self.finish(Err(Error::Closed("producer")));
        }
    }
}

/// Tickets of the records not yet completed, and the flush requests the partition tasks
/// act on (a batch holding a ticket at or below the flush target is sent without lingering).
#[derive(Debug)]
pub(crate) struct FlushTracker {
    state: Mutex<TrackerState>,
    completed: Notify,
    target: watch::Sender<u64>,
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
        }
    }
}

impl FlushTracker {
    fn register(&self) -> u64 {
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.outstanding.insert(ticket);
        ticket
    }

    fn complete(&self, ticket: u64) {
        let lowest_changed = {
            let mut state = self.lock();
            let lowest = state.outstanding.first().copied();
            state.outstanding.remove(&ticket);
            lowest == Some(ticket)
        };
        if lowest_changed {
            self.completed.notify_waiters();
        }
    }

    /// Records not yet completed.
    pub(crate) fn outstanding(&self) -> usize {
        self.lock().outstanding.len()
    }

    /// The flush target partition tasks watch: seal batches holding tickets up to it.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.target.subscribe()
    }

    /// Waits until every record registered before this call has completed.
    pub(crate) async fn flush(&self) {
        let target = self.lock().next_ticket.saturating_sub(1);
        self.target
            .send_modify(|current| *current = (*current).max(target));
        loop {
            let notified = self.completed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let done = self
                .lock()
                .outstanding
                .first()
                .is_none_or(|lowest| *lowest > target);
            if done {
                return;
            }
            notified.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::time::Duration;

    fn pending(
        tracker: &Arc<FlushTracker>,
    ) -> (Pending, oneshot::Receiver<Result<Delivery, SendError>>) {
        let (done, receiver) = oneshot::channel();
        let pending = Pending::new(
            Record::to("t").value("v"),
            0,
            Instant::now() + Duration::from_secs(1),
            done,
            tracker.clone(),
            None,
        );
        (pending, receiver)
    }

    #[tokio::test(start_paused = true)]
    async fn flush_waits_for_earlier_records_only() {
        let tracker = Arc::new(FlushTracker::default());
        let (first, first_result) = pending(&tracker);
        let flush = {
            let tracker = tracker.clone();
            tokio::spawn(async move { tracker.flush().await })
        };
        tokio::task::yield_now().await;
        let (later, _later_result) = pending(&tracker);
        assert!(!flush.is_finished());
        assert_eq!(*tracker.subscribe().borrow(), first.ticket);
        first.complete(Ok(Delivery::new("t".into(), 0, 5, 0)));
        flush.await.unwrap();
        assert_eq!(first_result.await.unwrap().unwrap().offset, 5);
        assert_eq!(tracker.outstanding(), 1);
        drop(later);
        assert_eq!(tracker.outstanding(), 0);
    }

    #[tokio::test]
    async fn dropped_records_fail_with_closed_and_keep_the_record() {
        let tracker = Arc::new(FlushTracker::default());
        let (record, result) = pending(&tracker);
        drop(record);
        let error = result.await.unwrap().unwrap_err();
        assert!(matches!(error.error, Error::Closed(_)));
        assert_eq!(error.record.value.as_deref(), Some(&b"v"[..]));
        tracker.flush().await;
    }
}
