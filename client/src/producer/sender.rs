//! The task of one partition: closes its batches (linger, flush, close; records are
//! encoded into them by the enqueuing thread, see `router`) and keeps up to
//! `max_in_flight` of them outstanding on the leader's produce stream. It sleeps until a
//! batch opens or seals, an answer arrives, a flush starts or a timer is due.
//!
//! The batches that have sequence numbers live in an [`InFlightWindow`], oldest first,
//! each *sent* (a request is outstanding) or *unsent* (waiting for a retry); sent ones
//! precede unsent ones, so resends go out in the original order.
//!
//! Errors (client-api.md §4):
//! - retriable (wrong leader, not enough replicas, timeouts, lost stream): every entry
//!   becomes unsent, the partition backs off (exponential, capped, ±20 % jitter), refreshes
//!   metadata when routing is in doubt, and resends all of them in order with their
//!   sequence numbers. Answers to the superseded requests are ignored by request id.
//! - final for one batch (too large, invalid record): its records fail; with idempotence
//!   the later batches, which the broker refused for the gap, are renumbered and resent.
//! - fatal (sequence gap, fenced producer): everything of the partition fails and the
//!   producer refuses new records.
//! - delivery timeout: an unsent batch past its deadline fails; if it may have been
//!   appended, the partition's sequence state is uncertain and it takes a fresh producer id.

use std::sync::Arc;

use strata_proto::api::v1 as wire;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

use super::accumulator::Accumulator;
use super::builder::Acks;
use super::idempotence::{stamp, Identity};
use super::in_flight::{InFlight, InFlightWindow};
use super::router::{ProducerContext, TopicShared};
use super::stream::{Route, StreamEvent};
use crate::error::{Error, WriteOutcome};
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
        identity_reset: false,
        retry_at: None,
        attempts: 0,
        refresh_metadata: false,
        events,
    };
    tokio::spawn(sender.run(answers, flush));
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
    /// The sequence state is uncertain: take a fresh producer id before sending again.
    identity_reset: bool,
    retry_at: Option<Instant>,
    attempts: u32,
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
            self.accumulate(|accumulator| {
                if closing {
                    accumulator.seal();
                } else if ready {
                    accumulator.seal_if_lingered(now);
                }
            });
            self.pump().await;
            if self.context.is_closing()
                && self.in_flight.is_empty()
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
            self.in_flight.earliest_unsent_deadline(),
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
        let ready = self.ready_for_a_batch();
        self.accumulate(|accumulator| {
            if ready {
                accumulator.seal_if_lingered(now);
            }
            accumulator.expire(now, delivery_timeout);
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
            };
            self.on_retriable(&error);
        }
        self.expire_in_flight(now);
    }

    /// Fails unsent batches at the head whose delivery deadline passed.
    fn expire_in_flight(&mut self, now: Instant) {
        let idempotent = self.context.config.idempotence;
        while let Some(entry) = self.in_flight.pop_expired_head(now) {
            let outcome = if entry.ever_sent {
                WriteOutcome::Unknown
            } else {
                WriteOutcome::NotApplied
            };
            let count = entry.batch.record_count();
            entry.batch.fail(&Error::Timeout {
                operation: "delivery",
                after: self.context.config.delivery_timeout,
                outcome,
            });
            if idempotent {
                if outcome == WriteOutcome::Unknown {
                    self.identity_reset = true;
                } else {
                    self.in_flight.renumber_after(0, count);
                }
            }
        }
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
        while let Some(index) = self.in_flight.first_unsent() {
            if !self.send_entry(index, &leader).await {
                return;
            }
        }
        while self.in_flight.len() < self.context.config.max_in_flight {
            let Some(batch) = self.accumulate(Accumulator::pop_sealed).flatten() else {
                return;
            };
            let index = self.in_flight.push(batch);
            if !self.send_entry(index, &leader).await {
                return;
            }
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
        if !self.context.config.idempotence || (self.identity.is_some() && !self.identity_reset) {
            return true;
        }
        let context = self.context.clone();
        let fetched = if self.identity_reset {
            context.identity.fresh().await
        } else {
            context.identity.shared().await
        };
        match fetched {
            Ok(identity) => {
                if self.identity_reset {
                    tracing::info!(topic = %self.topic_name, partition = self.partition, producer_id = identity.producer_id, "partition starts over with a fresh producer id");
                }
                self.identity = Some(identity);
                self.identity_reset = false;
                self.in_flight.restart_sequences();
                true
            }
            Err(error) if error.is_retriable() => {
                tracing::debug!(%error, "init producer id failed; retrying");
                self.schedule_retry();
                false
            }
            Err(error) => {
                self.fail_everything(&error);
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
        let Some(entry) = self.in_flight.get_mut(index) else {
            return true;
        };
        let bytes = std::mem::take(&mut entry.batch.bytes);
        entry.batch.bytes = match stamp(bytes, identity, entry.base_sequence) {
            Ok(bytes) => bytes,
            Err(error) => {
                if let Some(entry) = self.in_flight.remove(index) {
                    entry.batch.fail(&Error::Record(error));
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
            records: entry.batch.bytes.clone(),
        };
        let route = (config.acks != Acks::None).then(|| self.events.clone());
        if let Err(error) = context.streams.send(&leader.address, request, route).await {
            self.on_retriable(&error);
            return false;
        }
        if config.acks == Acks::None {
            if let Some(entry) = self.in_flight.remove(index) {
                self.complete(entry, -1, -1);
            }
            return true;
        }
        self.in_flight.mark_sent(index, request_id, &leader.address);
        true
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
                    if let Some(entry) = self.in_flight.remove(index) {
                        self.attempts = 0;
                        self.complete(entry, response.base_offset, response.log_append_time_ms);
                    }
                }
                Some(error) => self.on_batch_error(index, error),
            },
        }
    }

    fn complete(&self, entry: InFlight, base_offset: i64, log_append_time_ms: i64) {
        entry
            .batch
            .records
            .succeed(self.partition, base_offset, log_append_time_ms);
    }

    fn on_batch_error(&mut self, index: usize, error: Error) {
        if error.is_retriable() {
            return self.on_retriable(&error);
        }
        if error.is_fatal_for_producer() {
            self.context.set_fatal(&error);
            return self.fail_everything(&error);
        }
        let Some(entry) = self.in_flight.remove(index) else {
            return;
        };
        let count = entry.batch.record_count();
        entry.batch.fail(&error);
        if !self.context.config.idempotence {
            return;
        }
        // The broker refused the later batches for the gap this one left: resend them.
        self.in_flight.mark_all_unsent();
        if error.outcome() == WriteOutcome::Unknown {
            self.identity_reset = true;
        } else {
            self.in_flight.renumber_after(index, count);
        }
    }

    /// A retriable failure: resend everything in flight, in order, after a back-off.
    fn on_retriable(&mut self, error: &Error) {
        tracing::debug!(%error, topic = %self.topic_name, partition = self.partition, "produce failed; will retry");
        if error.needs_metadata_refresh() {
            self.refresh_metadata = true;
        }
        let addresses = self.in_flight.mark_all_unsent();
        if matches!(error, Error::Timeout { .. } | Error::Transport(_)) {
            for address in addresses {
                self.context.streams.forget(&address);
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

    fn fail_everything(&mut self, error: &Error) {
        for entry in self.in_flight.drain() {
            entry.batch.fail(error);
        }
        self.accumulate(|accumulator| accumulator.fail_all(error));
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
