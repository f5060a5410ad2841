//! [`InFlightWindow`]: the batches of one partition that hold sequence numbers, oldest
//! first, and the sequence bookkeeping around them. No I/O: the partition task
//! ([`super::sender`]) decides, this keeps the invariants.
//!
//! Invariants:
//! - Entries are in sequence order; `next_sequence` follows the last one.
//! - Each entry is *sent* (`request_id` set) or *unsent* (waiting to be resent); every
//!   sent entry precedes every unsent one, so resends leave in the original order.
//! - Removing an entry that was certainly not appended moves the later entries down by
//!   its record count ([`InFlightWindow::renumber_after`]); when the broker's state is
//!   uncertain, [`InFlightWindow::restart_sequences`] numbers everything from 0 again
//!   under a fresh producer id.

use std::collections::VecDeque;

use tokio::time::Instant;

use super::accumulator::SealedBatch;
use super::idempotence::{decrement_sequence, increment_sequence};

/// A batch with a sequence number: outstanding, or waiting to be resent.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub(crate) batch: SealedBatch,
    pub(crate) base_sequence: i32,
    /// `Some` while a request for it is outstanding.
    pub(crate) request_id: Option<u64>,
    pub(crate) sent_at: Option<Instant>,
    /// Where the outstanding request went.
    pub(crate) address: Option<String>,
    /// Whether any request for it was ever written (then it may have been appended).
    pub(crate) ever_sent: bool,
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

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Gives `batch` the next sequence numbers and appends it, unsent; returns its index.
    pub(crate) fn push(&mut self, batch: SealedBatch) -> usize {
        let base_sequence = self.next_sequence;
        self.next_sequence = increment_sequence(self.next_sequence, batch.record_count());
        self.entries.push_back(InFlight {
            batch,
            base_sequence,
            request_id: None,
            sent_at: None,
            address: None,
            ever_sent: false,
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
            .position(|entry| entry.request_id.is_none())
    }

    /// The entry whose outstanding request has this id.
    pub(crate) fn position_of(&self, request_id: u64) -> Option<usize> {
        self.entries
            .iter()
            .position(|entry| entry.request_id == Some(request_id))
    }

    pub(crate) fn mark_sent(&mut self, index: usize, request_id: u64, address: &str) {
        if let Some(entry) = self.entries.get_mut(index) {
            entry.request_id = Some(request_id);
            entry.sent_at = Some(Instant::now());
            entry.address = Some(address.to_owned());
            entry.ever_sent = true;
        }
    }

    /// Makes every entry unsent (answers to the old requests will be ignored) and returns
    /// the addresses those requests went to.
    pub(crate) fn mark_all_unsent(&mut self) -> Vec<String> {
        let mut addresses = Vec::new();
        for entry in &mut self.entries {
            if let Some(address) = entry.address.take() {
                if !addresses.contains(&address) {
                    addresses.push(address);
                }
            }
            entry.request_id = None;
            entry.sent_at = None;
        }
        addresses
    }

    /// An entry at `index` holding `count` records was removed without being appended:
    /// the entries from `index` on move down by `count`.
    pub(crate) fn renumber_after(&mut self, index: usize, count: i32) {
        for later in self.entries.iter_mut().skip(index) {
            later.base_sequence = decrement_sequence(later.base_sequence, count);
        }
        self.next_sequence = decrement_sequence(self.next_sequence, count);
    }

    /// Numbers every entry from 0 again (a fresh producer id starts a fresh sequence).
    pub(crate) fn restart_sequences(&mut self) {
        let mut sequence = 0;
        for entry in &mut self.entries {
            entry.base_sequence = sequence;
            sequence = increment_sequence(sequence, entry.batch.record_count());
        }
        self.next_sequence = sequence;
    }

    /// When the oldest outstanding request was sent.
    pub(crate) fn oldest_sent_at(&self) -> Option<Instant> {
        self.entries.iter().filter_map(|entry| entry.sent_at).min()
    }

    /// The delivery deadline of the head, if it is unsent: the one entry that
    /// [`InFlightWindow::pop_expired_head`] may expire (deadlines follow send order).
    pub(crate) fn earliest_unsent_deadline(&self) -> Option<Instant> {
        self.entries
            .front()
            .filter(|head| head.request_id.is_none())
            .and_then(|head| head.batch.deadline())
    }

    /// Removes the head if it is unsent and its delivery deadline passed.
    pub(crate) fn pop_expired_head(&mut self, now: Instant) -> Option<InFlight> {
        let head = self.entries.front()?;
        let expired = head.request_id.is_none()
            && head
                .batch
                .deadline()
                .is_some_and(|deadline| deadline <= now);
        if expired {
            self.entries.pop_front()
        } else {
            None
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

    use bytes::Bytes;
    use tokio::sync::Semaphore;

    use super::*;
    use crate::producer::completion::{BatchRecords, FlushTracker, MemoryShare};
    use crate::record::Record;

    fn batch(tracker: &Arc<FlushTracker>, records: usize, deadline: Instant) -> SealedBatch {
        let memory = Arc::new(Semaphore::new(0));
        let mut batch_records =
            BatchRecords::new(tracker.clone(), MemoryShare::empty(memory.clone()));
        for _ in 0..records {
            batch_records.push(Record::to("t"), MemoryShare::empty(memory.clone()), None);
        }
        SealedBatch {
            bytes: Bytes::new(),
            records: batch_records,
            deadline,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn sequences_follow_record_counts_and_close_gaps() {
        let tracker = Arc::new(FlushTracker::default());
        let later = Instant::now() + Duration::from_secs(60);
        let mut window = InFlightWindow::default();
        for count in [3, 2, 4] {
            window.push(batch(&tracker, count, later));
        }
        assert_eq!(window.sequences(), [0, 3, 5]);
        // The middle batch is refused: the last one takes its sequence numbers.
        let removed = window.remove(1).unwrap();
        window.renumber_after(1, removed.batch.record_count());
        assert_eq!(window.sequences(), [0, 3]);
        window.push(batch(&tracker, 1, later));
        assert_eq!(window.sequences(), [0, 3, 7]);
        window.restart_sequences();
        assert_eq!(window.sequences(), [0, 3, 7]);
        window.remove(0);
        window.restart_sequences();
        assert_eq!(window.sequences(), [0, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn resets_make_everything_unsent_and_old_ids_unknown() {
        let tracker = Arc::new(FlushTracker::default());
        let later = Instant::now() + Duration::from_secs(60);
        let mut window = InFlightWindow::default();
        window.push(batch(&tracker, 1, later));
        window.push(batch(&tracker, 1, later));
        window.mark_sent(0, 10, "a:1");
        window.mark_sent(1, 11, "a:1");
        assert_eq!(window.first_unsent(), None);
        assert_eq!(window.position_of(11), Some(1));
        assert_eq!(window.mark_all_unsent(), ["a:1"]);
        assert_eq!(window.position_of(11), None);
        assert_eq!(window.first_unsent(), Some(0));
        assert_eq!(window.oldest_sent_at(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn only_an_unsent_head_past_its_deadline_expires() {
        let tracker = Arc::new(FlushTracker::default());
        let soon = Instant::now() + Duration::from_secs(1);
        let mut window = InFlightWindow::default();
        window.push(batch(&tracker, 1, soon));
        window.mark_sent(0, 1, "a:1");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            window.pop_expired_head(Instant::now()).is_none(),
            "still outstanding"
        );
        window.mark_all_unsent();
        assert_eq!(window.earliest_unsent_deadline(), Some(soon));
        assert!(window.pop_expired_head(Instant::now()).unwrap().ever_sent);
        assert!(window.is_empty());
    }
}
