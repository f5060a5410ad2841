//! [`InFlightWindow`]: the batches of one partition that hold sequence numbers, oldest
//! first, and the sequence bookkeeping around them. No I/O: the partition task
//! ([`super::sender`]) decides, this keeps the invariants.
//!
//! Invariants:
//! - Entries are in sequence order; `next_sequence` follows the last one.
//! - Each entry is *sent* (`request_id` set) or *unsent* (waiting to be resent); every
//!   sent entry precedes every unsent one, so resends leave in the original order.
//! - Every sent entry went on one stream ([`InFlightWindow::sent_stream`]): a partition
//!   never has requests outstanding on two streams, which the broker would serve in
//!   parallel.
//! - A batch that may have been appended (it was ever sent) keeps its sequence numbers
//!   and its producer id until the broker answers it. When its delivery timeout passes
//!   first, its records fail with an unknown outcome and the batch stays as an *orphan*:
//!   it is still resent, so the broker either appends it once or answers it as a
//!   duplicate, and no later batch is ever numbered into a gap it might fill.
//! - Only batches that were certainly not appended leave a gap, which
//!   [`InFlightWindow::renumber_after`] closes by moving the later entries down.
//! - An entry answered while an older one waits is acknowledged in place and keeps its
//!   slot until every older entry is answered ([`InFlightWindow::acknowledge`]): from the
//!   oldest unanswered batch on, at most `max_in_flight` batches are ever appended, so
//!   the broker, which remembers a producer's last 5, still knows the oldest when it is
//!   resent.

use std::collections::VecDeque;

use bytes::Bytes;
use tokio::time::Instant;

use super::accumulator::SealedBatch;
use super::completion::BatchRecords;
use super::idempotence::{decrement_sequence, increment_sequence};
use super::stream::StreamId;
use crate::error::{Error, WriteOutcome};

/// A batch with a sequence number: outstanding, or waiting to be resent.
#[derive(Debug)]
pub(crate) struct InFlight {
    /// The encoded batch, as last stamped.
    pub(crate) bytes: Bytes,
    /// What the batch owes its callers; `None` once they were answered while the batch
    /// itself goes on (an orphan, see the module docs).
    records: Option<BatchRecords>,
    record_count: i32,
    /// The earliest delivery deadline of its records.
    deadline: Instant,
    pub(crate) base_sequence: i32,
    /// `Some` while a request for it is outstanding.
    pub(crate) request_id: Option<u64>,
    pub(crate) sent_at: Option<Instant>,
    /// The stream the outstanding request went on.
    pub(crate) stream: Option<StreamId>,
    /// Requests written for it so far (any one may have been appended).
    pub(crate) attempts: u32,
    /// The generation of the last stream it was sent on, and whether it was ever sent on
    /// two different streams (then a copy may still wait in the broker's queue of an
    /// abandoned one).
    last_generation: Option<u64>,
    pub(crate) sent_on_several_streams: bool,
    /// Answered as appended while an older entry was still unanswered: its callers have
    /// their offsets, and it keeps its slot (never resent) until every older entry is
    /// answered, see [`InFlightWindow::acknowledge`].
    acknowledged: bool,
}

impl InFlight {
    /// Whether any request for it was ever written (then it may have been appended).
    pub(crate) fn ever_sent(&self) -> bool {
        self.attempts > 0
    }

    pub(crate) fn record_count(&self) -> i32 {
        self.record_count
    }

    pub(crate) fn is_orphan(&self) -> bool {
        self.records.is_none()
    }

    /// Completes its records (if they still wait) with their offsets.
    pub(crate) fn succeed(mut self, partition: i32, base_offset: i64, log_append_time_ms: i64) {
        if let Some(records) = self.records.take() {
            records.succeed(partition, base_offset, log_append_time_ms);
        }
    }

    /// Fails its records (if they still wait) with `error`.
    pub(crate) fn fail(&mut self, error: &Error) {
        if let Some(records) = self.records.take() {
            records.fail(error);
        }
    }
}

/// The in-flight batches of one partition.
#[derive(Debug, Default)]
pub(crate) struct InFlightWindow {
    entries: VecDeque<InFlight>,
    next_sequence: i32,
}

impl InFlightWindow {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether every entry is an orphan: no caller waits for any of them.
    pub(crate) fn only_orphans(&self) -> bool {
        self.entries.iter().all(InFlight::is_orphan)
    }

    /// Gives `batch` the next sequence numbers and appends it, unsent; returns its index.
    pub(crate) fn push(&mut self, batch: SealedBatch) -> usize {
        let record_count = batch.record_count();
        let base_sequence = self.next_sequence;
        self.next_sequence = increment_sequence(self.next_sequence, record_count);
        self.entries.push_back(InFlight {
            bytes: batch.bytes,
            records: Some(batch.records),
            record_count,
            deadline: batch.deadline,
            base_sequence,
            request_id: None,
            sent_at: None,
            stream: None,
            attempts: 0,
            last_generation: None,
            sent_on_several_streams: false,
            acknowledged: false,
        });
        self.entries.len() - 1
    }

    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut InFlight> {
        self.entries.get_mut(index)
    }

    pub(crate) fn remove(&mut self, index: usize) -> Option<InFlight> {
        self.entries.remove(index)
    }

    /// The oldest entry waiting to be (re)sent.
    pub(crate) fn first_unsent(&self) -> Option<usize> {
        self.entries
            .iter()
            .position(|entry| entry.request_id.is_none() && !entry.acknowledged)
    }

    /// The broker appended entry `index` at `base_offset`: its callers get their offsets.
    /// It leaves the window once every older entry has been answered too; until then it
    /// holds its slot. The broker remembers only a producer's last 5 batches (as many as
    /// `max_in_flight` may be), so letting later batches take the slot of an acknowledged
    /// one while an older one waits could push that older one out of the broker's memory:
    /// its resend would then be refused as `OUT_OF_ORDER_SEQUENCE` instead of answered
    /// as the duplicate it is. Answers can come out of order: the broker answers each
    /// request when its own commit is done.
    pub(crate) fn acknowledge(
        &mut self,
        index: usize,
        partition: i32,
        base_offset: i64,
        log_append_time_ms: i64,
    ) {
        let Some(entry) = self.entries.get_mut(index) else {
            return;
        };
        if let Some(records) = entry.records.take() {
            records.succeed(partition, base_offset, log_append_time_ms);
        }
        entry.acknowledged = true;
        entry.request_id = None;
        entry.sent_at = None;
        entry.stream = None;
        while self
            .entries
            .front()
            .is_some_and(|oldest| oldest.acknowledged)
        {
            self.entries.pop_front();
        }
    }

    /// The entry whose outstanding request has this id.
    pub(crate) fn position_of(&self, request_id: u64) -> Option<usize> {
        self.entries
            .iter()
            .position(|entry| entry.request_id == Some(request_id))
    }

    /// The stream every outstanding request of the partition went on.
    pub(crate) fn sent_stream(&self) -> Option<&StreamId> {
        let stream = self.entries.front().and_then(|head| head.stream.as_ref());
        debug_assert!(
            self.entries
                .iter()
                .filter_map(|entry| entry.stream.as_ref())
                .all(|other| Some(other) == stream),
            "a partition's requests are outstanding on two streams"
        );
        stream
    }

    pub(crate) fn mark_sent(&mut self, index: usize, request_id: u64, stream: StreamId) {
        if let Some(entry) = self.entries.get_mut(index) {
            if entry
                .last_generation
                .is_some_and(|generation| generation != stream.generation)
            {
                entry.sent_on_several_streams = true;
            }
            entry.last_generation = Some(stream.generation);
            entry.request_id = Some(request_id);
            entry.sent_at = Some(Instant::now());
            entry.stream = Some(stream);
            entry.attempts = entry.attempts.saturating_add(1);
        }
    }

    /// Makes every entry unsent (answers to the old requests will be ignored) and returns
    /// the streams those requests went on.
    pub(crate) fn mark_all_unsent(&mut self) -> Vec<StreamId> {
        let mut streams = Vec::new();
        for entry in &mut self.entries {
            if let Some(stream) = entry.stream.take() {
                if !streams.contains(&stream) {
                    streams.push(stream);
                }
            }
            entry.request_id = None;
            entry.sent_at = None;
        }
        streams
    }

    /// Whether the entries from `index` on may take new sequence numbers: none of them
    /// may still be appended under its old ones. Their requests on the current stream were
    /// refused for the gap (the broker serves a stream in order); a copy sent on an older
    /// stream could still arrive, so an entry sent on several streams rules it out.
    pub(crate) fn may_renumber_from(&self, index: usize) -> bool {
        self.entries
            .iter()
            .skip(index)
            .all(|entry| !entry.sent_on_several_streams && !entry.acknowledged)
    }

    /// An entry at `index` holding `count` records was removed without being appended:
    /// the entries from `index` on move down by `count`.
    pub(crate) fn renumber_after(&mut self, index: usize, count: i32) {
        for later in self.entries.iter_mut().skip(index) {
            later.base_sequence = decrement_sequence(later.base_sequence, count);
        }
        self.next_sequence = decrement_sequence(self.next_sequence, count);
    }

    /// When the oldest outstanding request was sent.
    pub(crate) fn oldest_sent_at(&self) -> Option<Instant> {
        self.entries.iter().filter_map(|entry| entry.sent_at).min()
    }

    /// The earliest delivery deadline of an entry whose callers still wait.
    pub(crate) fn earliest_deadline(&self) -> Option<Instant> {
        self.entries
            .iter()
            .filter(|entry| !entry.is_orphan())
            .map(|entry| entry.deadline)
            .min()
    }

    /// The first entry whose callers still wait past its delivery deadline.
    pub(crate) fn first_expired(&self, now: Instant) -> Option<usize> {
        self.entries
            .iter()
            .position(|entry| !entry.is_orphan() && entry.deadline <= now)
    }

    /// Answers the callers of every entry whose delivery deadline passed, with the error
    /// `timeout(outcome)`. An entry never sent was certainly not appended: it leaves, and
    /// the later ones (never sent either: sends go in order) take its sequence numbers.
    /// An entry that was sent becomes an orphan and keeps its place.
    pub(crate) fn expire(&mut self, now: Instant, timeout: impl Fn(WriteOutcome) -> Error) {
        let mut index = 0;
        while let Some(entry) = self.entries.get_mut(index) {
            if entry.is_orphan() || entry.deadline > now {
                index += 1;
                continue;
            }
            if entry.ever_sent() {
                entry.fail(&timeout(WriteOutcome::Unknown));
                index += 1;
                continue;
            }
            if let Some(mut entry) = self.entries.remove(index) {
                entry.fail(&timeout(WriteOutcome::NotApplied));
                debug_assert!(self.entries.iter().skip(index).all(|e| !e.ever_sent()));
                self.renumber_after(index, entry.record_count);
            }
        }
    }

    /// Removes every entry, oldest first.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = InFlight> + '_ {
        self.entries.drain(..)
    }

    #[cfg(test)]
    fn sequences(&self) -> Vec<i32> {
        self.entries
            .iter()
            .map(|entry| entry.base_sequence)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::Semaphore;

    use super::*;
    use crate::producer::completion::{DeliveryFuture, FlushTracker, MemoryShare};
    use crate::record::Record;

    /// A sealed batch of `records` records, and the future of its first record.
    fn batch(
        tracker: &Arc<FlushTracker>,
        records: usize,
        deadline: Instant,
    ) -> (SealedBatch, DeliveryFuture) {
        let memory = Arc::new(Semaphore::new(0));
        let mut batch_records =
            BatchRecords::new(tracker.clone(), MemoryShare::empty(memory.clone()));
        for _ in 0..records {
            batch_records.push(Record::to("t"), MemoryShare::empty(memory.clone()), None);
        }
        let future = DeliveryFuture::new(batch_records.completion().clone(), 0, Some(0), 0);
        let sealed = SealedBatch {
            bytes: Bytes::new(),
            records: batch_records,
            deadline,
        };
        (sealed, future)
    }

    fn stream(generation: u64) -> StreamId {
        StreamId {
            address: "a:1".to_owned(),
            generation,
        }
    }

    fn timeout(outcome: WriteOutcome) -> Error {
        Error::Timeout {
            operation: "delivery",
            after: Duration::from_secs(1),
            outcome,
            last_error: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn sequences_follow_record_counts_and_close_gaps() {
        let tracker = Arc::new(FlushTracker::default());
        let later = Instant::now() + Duration::from_secs(60);
        let mut window = InFlightWindow::default();
        for count in [3, 2, 4] {
            window.push(batch(&tracker, count, later).0);
        }
        assert_eq!(window.sequences(), [0, 3, 5]);
        // The middle batch is refused: the last one takes its sequence numbers.
        let removed = window.remove(1).unwrap();
        assert!(window.may_renumber_from(1));
        window.renumber_after(1, removed.record_count());
        assert_eq!(window.sequences(), [0, 3]);
        window.push(batch(&tracker, 1, later).0);
        assert_eq!(window.sequences(), [0, 3, 7]);
    }

    #[tokio::test(start_paused = true)]
    async fn resets_make_everything_unsent_and_old_ids_unknown() {
        let tracker = Arc::new(FlushTracker::default());
        let later = Instant::now() + Duration::from_secs(60);
        let mut window = InFlightWindow::default();
        window.push(batch(&tracker, 1, later).0);
        window.push(batch(&tracker, 1, later).0);
        window.mark_sent(0, 10, stream(1));
        window.mark_sent(1, 11, stream(1));
        assert_eq!(window.sent_stream(), Some(&stream(1)));
        assert_eq!(window.first_unsent(), None);
        assert_eq!(window.position_of(11), Some(1));
        assert_eq!(window.mark_all_unsent(), [stream(1)]);
        assert_eq!(window.sent_stream(), None);
        assert_eq!(window.position_of(11), None);
        assert_eq!(window.first_unsent(), Some(0));
        assert_eq!(window.oldest_sent_at(), None);
    }

    /// A batch that was sent and timed out keeps its sequence numbers (it may still be
    /// appended from the broker's queue); one never sent leaves, and the next takes its
    /// numbers. Each caller learns which case it is.
    #[tokio::test(start_paused = true)]
    async fn a_sent_batch_past_its_deadline_becomes_an_orphan_with_its_sequence() {
        let tracker = Arc::new(FlushTracker::default());
        let soon = Instant::now() + Duration::from_secs(1);
        let later = Instant::now() + Duration::from_secs(60);
        let mut window = InFlightWindow::default();
        let (sent, sent_future) = batch(&tracker, 2, soon);
        let (unsent, unsent_future) = batch(&tracker, 3, soon);
        let (last, _) = batch(&tracker, 1, later);
        window.push(sent);
        window.push(unsent);
        window.push(last);
        window.mark_sent(0, 1, stream(1));
        window.mark_all_unsent();
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(window.earliest_deadline(), Some(soon));
        window.expire(Instant::now(), timeout);

        assert_eq!(window.sequences(), [0, 2], "the orphan keeps 0..2");
        assert_eq!(window.len(), 2);
        assert!(window.get_mut(0).unwrap().is_orphan());
        assert!(!window.only_orphans());
        assert_eq!(window.earliest_deadline(), Some(later));
        let error = sent_future.await.unwrap_err().error;
        assert_eq!(error.outcome(), WriteOutcome::Unknown);
        assert!(
            error.to_string().contains("may have been written"),
            "{error}"
        );
        let error = unsent_future.await.unwrap_err().error;
        assert_eq!(error.outcome(), WriteOutcome::NotApplied);
        // A second pass changes nothing: the orphan stays until the broker answers it.
        window.expire(Instant::now(), timeout);
        assert_eq!(window.sequences(), [0, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_sent_on_two_streams_rules_out_renumbering() {
        let tracker = Arc::new(FlushTracker::default());
        let later = Instant::now() + Duration::from_secs(60);
        let mut window = InFlightWindow::default();
        window.push(batch(&tracker, 1, later).0);
        window.push(batch(&tracker, 1, later).0);
        window.mark_sent(0, 1, stream(1));
        window.mark_sent(1, 2, stream(1));
        assert!(window.may_renumber_from(0));
        window.mark_all_unsent();
        window.mark_sent(0, 3, stream(2));
        window.mark_sent(1, 4, stream(2));
        assert!(!window.may_renumber_from(1), "a copy may wait on stream 1");
        assert_eq!(window.get_mut(1).unwrap().attempts, 2);
    }

    /// An answer for a later batch while an older one waits: its caller learns its offset
    /// at once, but it keeps its slot, is never resent, and leaves with the older one.
    #[tokio::test(start_paused = true)]
    async fn an_acknowledged_batch_behind_an_unanswered_one_keeps_its_slot() {
        let tracker = Arc::new(FlushTracker::default());
        let later = Instant::now() + Duration::from_secs(60);
        let mut window = InFlightWindow::default();
        window.push(batch(&tracker, 1, later).0);
        let (second, second_future) = batch(&tracker, 1, later);
        window.push(second);
        window.mark_sent(0, 1, stream(1));
        window.mark_sent(1, 2, stream(1));

        window.acknowledge(1, 0, 7, -1);
        assert_eq!(second_future.await.unwrap().offset, 7);
        assert_eq!(window.len(), 2, "the slot is held while batch 0 waits");
        assert!(!window.may_renumber_from(0));
        window.mark_all_unsent();
        assert_eq!(window.first_unsent(), Some(0));
        window.mark_sent(0, 3, stream(2));
        assert_eq!(
            window.first_unsent(),
            None,
            "the acknowledged one is not resent"
        );

        window.acknowledge(0, 0, 6, -1);
        assert_eq!(window.len(), 0, "both leave once the oldest is answered");
    }
}
