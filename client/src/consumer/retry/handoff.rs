//! [`Consumer::fail`]: hands a failed record to the group's retry or dead-letter topic,
//! or (`Ordering::BlockPartition`) retries it in place.
//!
//! The record counts as done only once the forward is acknowledged (`acks=all`):
//! - while the produce is outstanding, the partition's commits are capped at the record
//!   (`Slot::commit_cap`), so even a `fail` future dropped half-way commits nothing past
//!   it;
//! - when the produce fails (after the hand-off producer's own retries, for the policy's
//!   `handoff_timeout`, 30 s by default), the
//!   partition is *held*: moved back to the record and stopped, while a background task
//!   resends the forward with back-off until it is acknowledged. Then the partition goes
//!   on after the record (`release`). If the partition is revoked meanwhile, the resend
//!   stops and the record's new owner handles it again (the retry topic may then hold it
//!   twice; it is never lost).

use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::consumer::stream::not_assigned;
use crate::consumer::{Consumer, ConsumerShared};
use crate::error::Error;
use crate::producer::Producer;
use crate::record::{now_ms, ConsumedRecord, Record};
use crate::retry::backoff;
use crate::retry_topics::headers::{forward_record, Forward};
use crate::retry_topics::{attempts_made, Decision, FailureKind, HandlerError, Handoff, Ordering};

use super::metrics::{Destination, HandoffLabels};
use super::InPlace;

/// First and longest wait between background resends of a failed hand-off.
const RESEND_BACKOFF: Duration = Duration::from_millis(200);
const RESEND_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A hand-off the background task got acknowledged: the held slot may go on.
#[derive(Debug)]
pub(super) struct Resent {
    index: usize,
    generation: u64,
    record: ConsumedRecord,
}

impl Consumer {
    /// The handler failed `record` with `error`: hands it to the group's retry topic for
    /// its next attempt, or to its dead-letter topic when the error is not retryable or
    /// no attempt is left, and waits until every in-sync replica has it. Only then does
    /// the record count as processed (as if the handler had succeeded), so the group
    /// never commits a failed record that is not safe elsewhere.
    ///
    /// Call it before asking the stream for the partition's next record. With
    /// `Ordering::BlockPartition`, a record with attempts left is not forwarded: its
    /// partition moves back to it and reads it again after the back-off.
    ///
    /// An error means the hand-off was not acknowledged: the partition is held at the
    /// record (nothing after it is yielded, nothing at or after it committed) while the
    /// forward is resent in the background; it goes on by itself once that succeeds.
    /// Fails with `INVALID_CONFIG` when the record's partition is not assigned any more
    /// (its new owner handles it again) and `UNSUPPORTED` without a retry policy.
    pub async fn fail(
        &mut self,
        record: &ConsumedRecord,
        error: impl Into<HandlerError>,
    ) -> Result<Handoff, Error> {
        let error = error.into();
        let Some(retry) = self.retry.as_mut() else {
            return Err(Error::Unsupported(
                "fail() without a retry policy (build the consumer with .retry(..))".to_owned(),
            ));
        };
        let index = self
            .slots
            .iter()
            .position(|slot| {
                slot.assigned && slot.topic == record.topic && slot.partition == record.partition
            })
            .ok_or_else(|| not_assigned(&record.topic, record.partition))?;
        let now = now_ms();
        let from_retry_topic = retry.retry_topics.contains_key(&*record.topic);
        let source = match retry.retry_topics.get(&*record.topic) {
            Some(source) => source.clone(),
            None => record.topic.to_string(),
        };
        let Some(names) = retry.names.get(&source) else {
            return Err(Error::InvalidConfig(format!(
                "topic {} is not one this consumer retries",
                record.topic
            )));
        };
        let dlt = names.dlt();
        let mut first_failure_ms = now;
        let (attempt, decision) = match retry.policy.ordering {
            Ordering::BlockPartition => {
                let key = (record.topic.clone(), record.partition);
                let previous = retry
                    .in_place
                    .get(&key)
                    .filter(|in_place| in_place.offset == record.offset);
                let attempt = previous.map_or(1, |in_place| in_place.attempts + 1);
                first_failure_ms = previous.map_or(now, |in_place| in_place.first_failure_ms);
                let decision = retry.policy.decide(attempt, &error);
                match decision {
                    Decision::Retry { level, delay } => {
                        let in_place = InPlace {
                            offset: record.offset,
                            attempts: attempt,
                            first_failure_ms,
                        };
                        retry.in_place.insert(key, in_place);
                        let labels = HandoffLabels {
                            source: source.clone(),
                            group: retry.group.clone(),
                            destination: Destination::Retry { level },
                        };
                        self.defer(index, record.offset, Instant::now() + delay);
                        labels.acknowledged();
                        let due_ms = now.saturating_add(millis(delay));
                        return Ok(Handoff::RetryInPlace { attempt, due_ms });
                    }
                    Decision::DeadLetter(_) => {
                        retry.in_place.remove(&key);
                    }
                }
                (attempt, decision)
            }
            Ordering::None => {
                let attempt = if from_retry_topic {
                    attempts_made(record).saturating_add(1)
                } else {
                    1
                };
                (attempt, retry.policy.decide(attempt, &error))
            }
        };
        let destination = match decision {
            Decision::Retry { level, .. } => Destination::Retry { level },
            Decision::DeadLetter(kind) => Destination::DeadLetter(kind),
        };
        let labels = HandoffLabels {
            source: source.clone(),
            group: retry.group.clone(),
            destination,
        };
        let (target, due_ms, kind, handoff) = match decision {
            Decision::Retry { level, delay } => {
                let topic = names.retry(level);
                let due_ms = now.saturating_add(millis(delay));
                let handoff = Handoff::Retry {
                    topic: topic.clone(),
                    attempt,
                    due_ms,
                };
                (topic, Some(due_ms), FailureKind::Retryable, handoff)
            }
            Decision::DeadLetter(kind) => {
                let handoff = Handoff::DeadLetter {
                    topic: dlt.clone(),
                    attempt,
                    kind,
                };
                (dlt, None, kind, handoff)
            }
        };
        let forward = Forward {
            target: &target,
            group: &retry.group,
            attempt,
            due_ms,
            kind,
            from_retry_topic,
            first_failure_ms,
        };
        let out = forward_record(record, &forward, &error);
        self.hand_off(index, record, out, labels).await?;
        Ok(handoff)
    }

    /// Produces `out` for `record` of slot `index`; see the module docs.
    async fn hand_off(
        &mut self,
        index: usize,
        record: &ConsumedRecord,
        out: Record,
        labels: HandoffLabels,
    ) -> Result<(), Error> {
        let Some(producer) = self.retry.as_ref().map(|retry| retry.producer.clone()) else {
            return Err(Error::Closed("retry hand-off producer"));
        };
        self.set_commit_cap(index, Some(record.offset));
        let sent = producer.send(out).await;
        self.set_commit_cap(index, None);
        let failed = match sent {
            Ok(_) => {
                labels.acknowledged();
                return Ok(());
            }
            Err(failed) => failed,
        };
        labels.failed();
        tracing::warn!(
            topic = %record.topic,
            partition = record.partition,
            offset = record.offset,
            error = %failed.error,
            "retry hand-off failed; the partition is held while it is resent"
        );
        let generation = self.hold(index, record.offset);
        if let Some(retry) = self.retry.as_ref() {
            tokio::spawn(resend(
                producer,
                failed.record,
                Held {
                    labels,
                    shared: self.shared.clone(),
                    done: retry.resent_sender.clone(),
                    resent: Resent {
                        index,
                        generation,
                        record: record.clone(),
                    },
                },
            ));
        }
        Err(failed.error)
    }

    fn set_commit_cap(&mut self, index: usize, cap: Option<i64>) {
        if let Some(slot) = self.slots.get_mut(index) {
            slot.commit_cap = cap;
        }
    }

    /// Moves slot `index` back to `offset` and stops it until `release`; returns the
    /// generation that `release` must still find.
    fn hold(&mut self, index: usize, offset: i64) -> u64 {
        let generation = {
            let mut state = self.shared.state();
            let Some(fetch) = state.get_mut(index) else {
                return 0;
            };
            fetch.generation += 1;
            fetch.fetch_offset = offset;
            fetch.blocked = true;
            fetch.generation
        };
        if let Some(slot) = self.slots.get_mut(index) {
            slot.generation = generation;
            slot.position = offset;
        }
        self.drop_buffered(index);
        generation
    }

    /// A held hand-off was acknowledged: the record is done and the slot goes on after
    /// it, unless the slot moved on meanwhile (revoked, lost, sought).
    pub(super) fn release(&mut self, resent: Resent) {
        let Resent {
            index,
            generation,
            record,
        } = resent;
        let current = self
            .slots
            .get(index)
            .is_some_and(|slot| slot.assigned && slot.generation == generation);
        if !current {
            return;
        }
        let next = record.offset + 1;
        let generation = {
            let mut state = self.shared.state();
            let Some(fetch) = state.get_mut(index) else {
                return;
            };
            fetch.generation += 1;
            fetch.fetch_offset = next;
            fetch.blocked = false;
            fetch.retry_at = None;
            fetch.attempts = 0;
            fetch.generation
        };
        if let Some(slot) = self.slots.get_mut(index) {
            slot.generation = generation;
            slot.position = next;
            slot.processed = Some((next, record.leader_epoch));
        }
        self.mark(&record);
        self.shared.wake.notify_waiters();
    }
}

/// What a background resend needs to report back.
struct Held {
    labels: HandoffLabels,
    shared: Arc<ConsumerShared>,
    done: mpsc::UnboundedSender<Resent>,
    resent: Resent,
}

impl Held {
    /// The consumer closed, or the held slot moved on (revoked, lost, sought).
    fn is_stale(&self) -> bool {
        self.shared.shutdown.load(AtomicOrdering::SeqCst)
            || self
                .shared
                .state()
                .get(self.resent.index)
                .is_none_or(|fetch| !fetch.assigned || fetch.generation != self.resent.generation)
    }
}

/// Resends `out` until it is acknowledged or the hold is stale.
async fn resend(producer: Producer, out: Record, held: Held) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        tokio::time::sleep(backoff(RESEND_BACKOFF, RESEND_BACKOFF_MAX, attempt)).await;
        if held.is_stale() {
            return;
        }
        match producer.send(out.clone()).await {
            Ok(_) => {
                held.labels.acknowledged();
                let _ = held.done.send(held.resent);
                return;
            }
            Err(failed) => {
                held.labels.failed();
                tracing::warn!(
                    topic = %out.topic,
                    attempt,
                    error = %failed.error,
                    "retry hand-off resend failed"
                );
            }
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
