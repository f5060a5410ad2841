//! The task of one partition: closes its batches (linger, flush, close; records are
//! encoded into them by the enqueuing thread, see `router`) and keeps up to
//! `max_in_flight` of them outstanding on the leader's produce stream. It sleeps until a
//! batch opens or seals, an answer arrives, a flush starts or a timer is due.
//!
//! The batches that have sequence numbers live in an [`InFlightWindow`], oldest first,
//! each *sent* (a request is outstanding) or *unsent* (waiting for a retry); sent ones
//! precede unsent ones, so resends go out in the original order, and all sent ones are
//! on one stream. When that stream is replaced (a timeout of this partition or of
//! another one dropped it), the partition resends everything outstanding on the new one
//! before anything new: its requests never race on two streams.
//!
//! Errors (Kafka's rules for idempotent producers, KIP-98 and KIP-360):
//! - retriable (wrong leader, not enough replicas, timeouts, lost stream): every entry
//!   becomes unsent, the partition backs off (exponential, capped, ±20 % jitter), refreshes
//!   metadata when routing is in doubt, and resends all of them in order with their
//!   sequence numbers. Answers to the superseded requests are ignored by request id.
//! - final for one batch (too large, invalid record): its records fail; with idempotence
//!   the later batches, which the broker refused for the gap, are renumbered and resent.
//! - fatal (sequence gap, fenced producer, or a final error whose outcome is unknown):
//!   everything of the partition fails and the producer refuses new records
//!   ([`crate::Producer::is_fatal`]).
//! - delivery timeout: a batch past its deadline fails. One never sent certainly was not
//!   appended; one that was sent fails as "may have been written" and stays in the window
//!   with its sequence numbers, still resent, until the broker answers it (an orphan,
//!   see [`super::in_flight`]). So the producer never needs a new producer id or epoch to
//!   get past a timeout, and never resends a batch under a new one.

use std::sync::Arc;

use strata_proto::api::v1 as wire;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

use super::accumulator::Accumulator;
use super::builder::Acks;
use super::idempotence::{stamp, Identity};
use super::in_flight::InFlightWindow;
use super::router::{ProducerContext, TopicShared};
use super::stream::{Route, Sent, StreamEvent};
use crate::error::{Error, ErrorCode, WriteOutcome};
use crate::metadata::Leader;
use crate::retry::backoff;

/// Starts the task of `topic/partition`; `wake` tells it a batch opened or sealed.
pub(crate) fn spawn(
    context: Arc<ProducerContext>,
    topic: Arc<TopicShared>,
    partition: i32,
    wake: Arc<Notify>,
) {
    let (events, answers) = mpsc::unbounded_channel();
    let flush = context.tracker.subscribe();
    let sender = PartitionSender {
        topic_name: topic.name.to_string(),
        context,
        topic,
        partition,
        wake,
        in_flight: InFlightWindow::default(),
        identity: None,
        retry_at: None,
        attempts: 0,
        last_retriable: None,
        refresh_metadata: false,
        events,
    };
    tokio::spawn(sender.run(answers, flush));
}

/// Where a partition's outstanding requests are, before it sends another one.
enum Outstanding {
    /// On the live stream of this generation to the leader.
    On(u64),
    /// Nowhere: no request is outstanding.
    Nothing,
    /// On a broker that no longer leads: they were all made unsent.
    Moved,
}

struct PartitionSender {
    context: Arc<ProducerContext>,
    /// Holds this partition's accumulator.
    topic: Arc<TopicShared>,
    topic_name: String,
    partition: i32,
    wake: Arc<Notify>,
    in_flight: InFlightWindow,
    identity: Option<Identity>,
    retry_at: Option<Instant>,
    attempts: u32,
    /// The retriable error of the last failed attempt, for the delivery timeout's message.
    last_retriable: Option<String>,
    refresh_metadata: bool,
    events: Route,
}

impl PartitionSender {
    async fn run(
        mut self,
        mut answers: mpsc::UnboundedReceiver<StreamEvent>,
        mut flush: watch::Receiver<u64>,
    ) {
        let mut flush_open = true;
        let wake = self.wake.clone();
        loop {
            let now = Instant::now();
            let closing = self.context.is_closing();
            let ready = self.ready_for_a_batch();
            let full = self.pipeline_full();
            self.accumulate(|accumulator| {
                accumulator.set_pipeline_full(full);
                if closing {
                    accumulator.seal();
                } else if ready {
                    accumulator.seal_if_ready(now);
                }
            });
            self.pump().await;
            // What the enqueuing threads see until the next event: a pipeline just filled
            // by `pump` lets the open batch grow.
            let full = self.pipeline_full();
            self.accumulate(|accumulator| accumulator.set_pipeline_full(full));
            // Orphans are dropped at the end: no later batch of this producer follows them.
            if self.context.is_closing()
                && self.in_flight.only_orphans()
                && self.accumulate(|accumulator| accumulator.is_empty()) != Some(false)
            {
                return;
            }
            let due = self.next_wake();
            tokio::select! {
                biased;
                Some(event) = answers.recv() => self.on_event(event),
                () = wake.notified() => {}
                changed = flush.changed(), if flush_open => match changed {
                    Ok(()) => {
                        let target = *flush.borrow_and_update();
                        self.accumulate(|accumulator| accumulator.seal_for_flush(target));
                    }
                    Err(_) => flush_open = false,
                },
                () = sleep_until(due), if due.is_some() => self.on_timer(),
            }
        }
    }

    /// Runs `action` on this partition's accumulator (under the topic's lock).
    fn accumulate<T>(&self, action: impl FnOnce(&mut Accumulator) -> T) -> Option<T> {
        self.topic.with_accumulator(self.partition, action)
    }

    /// Whether a batch sealed now would leave at once: a free in-flight slot, no batch
    /// already waiting for one, no back-off. Only then does a lingered batch close; until
    /// then it keeps filling (Kafka's rule: with `linger.ms=0` a busy producer still
    /// forms batches instead of a queue of one-record requests).
    fn ready_for_a_batch(&self) -> bool {
        self.in_flight.len() < self.context.config.max_in_flight
            && self.in_flight.first_unsent().is_none()
            && self.retry_at.is_none()
            && self.accumulate(|accumulator| accumulator.has_sealed()) != Some(true)
    }

    /// Whether a batch sealed now could not leave: every in-flight slot is taken (or the
    /// partition waits to resend). Then the open batch keeps growing (adaptive batching,
    /// see [`super::accumulator`]).
    fn pipeline_full(&self) -> bool {
        self.in_flight.len() >= self.context.config.max_in_flight
            || self.in_flight.first_unsent().is_some()
            || self.retry_at.is_some()
    }

    /// The earliest moment something is due: linger (when a batch could leave), retry,
    /// a request timeout or a delivery deadline.
    fn next_wake(&self) -> Option<Instant> {
        let request_timeout = self.context.config.request_timeout;
        let oldest_sent = self.in_flight.oldest_sent_at();
        let ready = self.ready_for_a_batch();
        let (linger, deadline) = self
            .accumulate(|accumulator| {
                (
                    accumulator.linger_deadline().filter(|_| ready),
                    accumulator.earliest_deadline(),
                )
            })
            .unwrap_or((None, None));
        [
            linger,
            self.retry_at,
            oldest_sent.map(|sent_at| sent_at + request_timeout),
            self.in_flight.earliest_deadline(),
            deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        let config = &self.context.config;
        let delivery_timeout = config.delivery_timeout;
        let last_error = self.last_retriable.clone();
        let ready = self.ready_for_a_batch();
        self.accumulate(|accumulator| {
            if ready {
                accumulator.seal_if_ready(now);
            }
            accumulator.expire(now, delivery_timeout, last_error.as_deref());
        });
        let timed_out = self
            .in_flight
            .oldest_sent_at()
            .is_some_and(|sent_at| sent_at + config.request_timeout <= now);
        if timed_out {
            let error = Error::Timeout {
                operation: "produce request",
                after: config.request_timeout,
                outcome: WriteOutcome::Unknown,
                last_error: None,
            };
            self.on_retriable(&error);
        }
        self.expire_in_flight(now);
    }

    /// Answers the callers of batches whose delivery deadline passed ([`InFlightWindow::expire`]).
    fn expire_in_flight(&mut self, now: Instant) {
        let after = self.context.config.delivery_timeout;
        if !self.context.config.idempotence {
            // Without sequence numbers nothing needs the batch's place: it leaves.
            while let Some(index) = self.in_flight.first_expired(now) {
                if let Some(mut entry) = self.in_flight.remove(index) {
                    let outcome = if entry.ever_sent() {
                        WriteOutcome::Unknown
                    } else {
                        WriteOutcome::NotApplied
                    };
                    entry.fail(&delivery_timeout(
                        after,
                        outcome,
                        self.last_retriable.clone(),
                    ));
                }
            }
            return;
        }
        let last_error = self.last_retriable.clone();
        self.in_flight.expire(now, |outcome| {
            delivery_timeout(after, outcome, last_error.clone())
        });
    }

    /// Sends what can be sent: unsent entries first (in order), then new batches while
    /// fewer than `max_in_flight` are outstanding.
    async fn pump(&mut self) {
        let now = Instant::now();
        if self.retry_at.is_some_and(|retry_at| retry_at > now) {
            return;
        }
        self.retry_at = None;
        let unsent = self.in_flight.first_unsent().is_some();
        let room = self.in_flight.len() < self.context.config.max_in_flight;
        let has_sealed =
            room && self.accumulate(|accumulator| accumulator.has_sealed()) == Some(true);
        if !(unsent || has_sealed) {
            return;
        }
        let Some(leader) = self.leader().await else {
            self.schedule_retry();
            return;
        };
        if !self.ensure_identity().await {
            return;
        }
        // Always the oldest unsent entry first: a send that finds its stream replaced makes
        // every entry unsent again, and they must leave before any newer batch.
        loop {
            if let Some(index) = self.in_flight.first_unsent() {
                if !self.send_entry(index, &leader).await {
                    return;
                }
                continue;
            }
            if self.in_flight.len() >= self.context.config.max_in_flight {
                return;
            }
            let Some(batch) = self.accumulate(Accumulator::pop_sealed).flatten() else {
                return;
            };
            self.in_flight.push(batch);
        }
    }

    /// The partition's leader, refreshing metadata first when routing is in doubt.
    async fn leader(&mut self) -> Option<Leader> {
        let client = self.context.client.clone();
        if self.refresh_metadata {
            self.refresh_metadata = false;
            if let Err(error) = client
                .refresh_metadata(std::slice::from_ref(&self.topic_name))
                .await
            {
                tracing::debug!(%error, topic = %self.topic_name, "metadata refresh failed");
            }
        }
        let leader = client.metadata().leader(&self.topic_name, self.partition);
        if leader.is_none() {
            self.refresh_metadata = true;
        }
        leader
    }

    /// Makes sure an idempotent partition has its producer id; `false` if it must wait.
    async fn ensure_identity(&mut self) -> bool {
        if !self.context.config.idempotence || self.identity.is_some() {
            return true;
        }
        let context = self.context.clone();
        match context.identity.shared().await {
            Ok(identity) => {
                self.identity = Some(identity);
                true
            }
            Err(error) if error.is_retriable() => {
                tracing::debug!(%error, "init producer id failed; retrying");
                self.schedule_retry();
                false
            }
            Err(error) => {
                self.fail_everything(&error, None);
                false
            }
        }
    }

    /// Writes the request of entry `index` to the leader's stream; `false` on failure
    /// (then every entry is unsent and a retry is scheduled).
    async fn send_entry(&mut self, index: usize, leader: &Leader) -> bool {
        let context = self.context.clone();
        let config = &context.config;
        let identity = if config.idempotence {
            self.identity
        } else {
            None
        };
        let only_on = match self.stream_of_outstanding(leader) {
            Outstanding::On(generation) => Some(generation),
            Outstanding::Nothing => None,
            // Every entry is unsent again, older ones than `index` too: the caller starts
            // over from the oldest, so no batch overtakes one sealed before it.
            Outstanding::Moved => return true,
        };
        let Some(entry) = self.in_flight.get_mut(index) else {
            return true;
        };
        let bytes = std::mem::take(&mut entry.bytes);
        entry.bytes = match stamp(bytes, identity, entry.base_sequence) {
            Ok(bytes) => bytes,
            Err(error) => {
                if let Some(mut entry) = self.in_flight.remove(index) {
                    entry.fail(&Error::Record(error));
                }
                return true;
            }
        };
        let request_id = context.streams.next_request_id();
        let request = wire::ProduceRequest {
            request_id,
            topic: self.topic_name.clone(),
            partition: self.partition,
            acks: config.acks.wire(),
            timeout_ms: u32::try_from(config.request_timeout.as_millis()).unwrap_or(u32::MAX),
            records: entry.bytes.clone(),
        };
        let route = (config.acks != Acks::None).then(|| self.events.clone());
        let stream = match context
            .streams
            .send(&leader.address, request, route, only_on)
            .await
        {
            Ok(Sent::On(stream)) => stream,
            Ok(Sent::StreamReplaced) => {
                // Resend everything outstanding on the new stream, oldest first.
                self.in_flight.mark_all_unsent();
                return true;
            }
            Err(error) => {
                self.on_retriable(&error);
                return false;
            }
        };
        if config.acks == Acks::None {
            if let Some(entry) = self.in_flight.remove(index) {
                entry.succeed(self.partition, -1, -1);
            }
            return true;
        }
        self.in_flight.mark_sent(index, request_id, stream);
        true
    }

    /// Where this partition's outstanding requests are: on one stream to `leader`, whose
    /// generation the next request must use too; nowhere; or on another broker (the
    /// leader moved), in which case everything outstanding is made unsent, to be resent
    /// to the new leader, oldest first.
    fn stream_of_outstanding(&mut self, leader: &Leader) -> Outstanding {
        let Some(stream) = self.in_flight.sent_stream() else {
            return Outstanding::Nothing;
        };
        if stream.address == leader.address {
            return Outstanding::On(stream.generation);
        }
        self.in_flight.mark_all_unsent();
        Outstanding::Moved
    }

    fn on_event(&mut self, event: StreamEvent) {
        let request_id = match &event {
            StreamEvent::Response(response) => response.request_id,
            StreamEvent::Lost { request_id, .. } => *request_id,
        };
        let Some(index) = self.in_flight.position_of(request_id) else {
            return; // an answer to a request superseded by a resend
        };
        match event {
            StreamEvent::Lost { error, .. } => self.on_batch_error(index, error),
            StreamEvent::Response(response) => match Error::from_wire(response.error.as_ref()) {
                None => {
                    self.attempts = 0;
                    self.last_retriable = None;
                    if self.context.config.idempotence {
                        self.in_flight.acknowledge(
                            index,
                            self.partition,
                            response.base_offset,
                            response.log_append_time_ms,
                        );
                    } else if let Some(entry) = self.in_flight.remove(index) {
                        entry.succeed(
                            self.partition,
                            response.base_offset,
                            response.log_append_time_ms,
                        );
                    }
                }
                Some(error) => self.on_batch_error(index, error),
            },
        }
    }

    fn on_batch_error(&mut self, index: usize, error: Error) {
        if error.is_retriable() || self.is_gap_behind_an_unanswered_batch(index, &error) {
            return self.on_retriable(&error);
        }
        let idempotent = self.context.config.idempotence;
        // With idempotence a batch that may have been appended must keep its sequence
        // numbers; a final answer that leaves its fate open ends the producer instead.
        if error.is_fatal_for_producer() || (idempotent && error.outcome() == WriteOutcome::Unknown)
        {
            self.context.set_fatal(&error);
            return self.fail_everything(&error, Some(index));
        }
        let Some(mut entry) = self.in_flight.remove(index) else {
            return;
        };
        let count = entry.record_count();
        entry.fail(&error);
        if !idempotent {
            return;
        }
        // The broker refused the later batches for the gap this one left: resend them
        // with the sequence numbers moved down, unless a copy of one may still arrive
        // from an older stream under its old numbers.
        self.in_flight.mark_all_unsent();
        if self.in_flight.may_renumber_from(index) {
            self.in_flight.renumber_after(index, count);
        } else {
            let error = Error::ProducerStopped {
                code: ErrorCode::OutOfOrderSequence,
                message: format!(
                    "a batch of {}/{} was refused while later ones may still be appended from an earlier stream; their sequence numbers cannot be reused",
                    self.topic_name, self.partition
                ),
                outcome: WriteOutcome::Unknown,
            };
            self.context.set_fatal(&error);
            self.fail_everything(&error, None);
        }
    }

    /// Whether `error` is an `OUT_OF_ORDER_SEQUENCE` for the entry at `index` while an
    /// older entry is still unanswered (with `index > 0` the oldest entry is: an answered
    /// one leaves, or waits behind an unanswered one, [`InFlightWindow::acknowledge`]).
    /// The broker refuses a batch for a gap when the batch before it was
    /// not appended (yet): refused with a retriable error whose answer is still on its
    /// way (the broker answers requests it refused from tasks of their own, in any
    /// order), or still being written. Resending both in order settles it, as Kafka's
    /// producer does; only a gap right after the last acknowledged batch is fatal.
    fn is_gap_behind_an_unanswered_batch(&self, index: usize, error: &Error) -> bool {
        self.context.config.idempotence
            && index > 0
            && error.code() == Some(ErrorCode::OutOfOrderSequence)
    }

    /// A retriable failure: resend everything in flight, in order, after a back-off.
    fn on_retriable(&mut self, error: &Error) {
        self.last_retriable = Some(format!("{} ({error})", error.code_name()));
        tracing::debug!(%error, topic = %self.topic_name, partition = self.partition, "produce failed; will retry");
        if error.needs_metadata_refresh() {
            self.refresh_metadata = true;
        }
        let streams = self.in_flight.mark_all_unsent();
        if matches!(error, Error::Timeout { .. } | Error::Transport(_)) {
            for stream in &streams {
                self.context.streams.forget(stream);
            }
        }
        self.schedule_retry();
    }

    fn schedule_retry(&mut self) {
        self.attempts = self.attempts.saturating_add(1);
        let config = &self.context.config;
        let delay = backoff(
            config.retry_backoff,
            config.retry_backoff_max,
            self.attempts,
        );
        self.retry_at = Some(Instant::now() + delay);
    }

    /// Fails everything of the partition after `error`. The batch at `culprit` (whose
    /// answer it was) gets `error` itself when that answer settles its fate; every other
    /// batch gets [`Error::ProducerStopped`] with what is known of it: never sent, it was
    /// not written; sent, it may have been.
    fn fail_everything(&mut self, error: &Error, culprit: Option<usize>) {
        let code = error.code().unwrap_or(ErrorCode::UnknownServerError);
        let stopped = |outcome| Error::ProducerStopped {
            code,
            message: error.to_string(),
            outcome,
        };
        for (index, mut entry) in self.in_flight.drain().enumerate() {
            let settled = Some(index) == culprit && entry.attempts <= 1;
            if settled {
                entry.fail(error);
            } else if entry.ever_sent() {
                entry.fail(&stopped(WriteOutcome::Unknown));
            } else {
                entry.fail(&stopped(WriteOutcome::NotApplied));
            }
        }
        let unsent = stopped(WriteOutcome::NotApplied);
        self.accumulate(|accumulator| accumulator.fail_all(&unsent));
    }
}

/// The error of a batch whose delivery timeout passed.
fn delivery_timeout(
    after: std::time::Duration,
    outcome: WriteOutcome,
    last_error: Option<String>,
) -> Error {
    Error::Timeout {
        operation: "delivery",
        after,
        outcome,
        last_error,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[path = "sender_tests.rs"]
mod tests;
