//! The consumer's side of retry and dead-letter topics (`docs/RETRY.md`): a group
//! consumer built with [`ConsumerBuilder::retry`](crate::ConsumerBuilder::retry).
//!
//! - `topics`: the group's retry and dead-letter topics are checked (labels) and created
//!   when the consumer starts; the retry topics join the group's subscription.
//! - `handoff`: [`Consumer::fail`] forwards a failed record and waits for `acks=all`
//!   before the record counts as done; a hand-off that fails holds its partition at the
//!   record and is resent in the background until it is acknowledged.
//! - `run`: [`Consumer::run`], the handler loop on top of the stream and `fail`.
//! - `metrics`: the retry, dead-letter and failed hand-off counters (`metrics` facade).
//! - Due times: a record of a retry topic whose `strata.retry.due-ms` is in the future
//!   is not yielded; its partition goes back to that offset and is not fetched until the
//!   due time (`Consumer::defer`, using the fetch loop's own wake-up time, so nothing
//!   polls). Other partitions keep flowing. Records with a producer's due time
//!   (`strata.deliver-at-ms`) are held back the same way, by every consumer
//!   (`consumer/due.rs`).
//!
//! Invariant: a failed record's offset is committed only after its forward was
//! acknowledged by every in-sync replica. A crash in between leaves a duplicate in the
//! retry topic, never a loss.

mod handoff;
mod metrics;
mod run;
pub(crate) mod topics;

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::builder::ConsumerBuilder;
use super::Consumer;
use crate::error::Error;
use crate::producer::{Acks, Producer};
use crate::record::ConsumedRecord;
use crate::retry_topics::{headers, Ordering, RetryPolicy, RetryTopicNames};
use handoff::Resent;

/// The longest one request of a hand-off may take (at most half the policy's
/// `handoff_timeout`, which bounds the whole produce).
const HANDOFF_REQUEST_TIMEOUT_MAX: Duration = Duration::from_secs(10);

/// A consumer's retry state.
#[derive(Debug)]
pub(crate) struct RetryState {
    policy: RetryPolicy,
    group: String,
    producer: Producer,
    /// Source topic → its retry topic names.
    names: HashMap<String, RetryTopicNames>,
    /// Retry topic → its source topic.
    retry_topics: HashMap<String, String>,
    /// `BlockPartition`: the record each partition is retrying in place.
    in_place: HashMap<(Arc<str>, i32), InPlace>,
    resent_sender: mpsc::UnboundedSender<Resent>,
    resent: mpsc::UnboundedReceiver<Resent>,
}

/// A record retried in place, and the attempts it has had.
#[derive(Debug, Clone, Copy)]
struct InPlace {
    offset: i64,
    attempts: u32,
    first_failure_ms: i64,
}

/// Checks the policy, creates the group's retry and dead-letter topics, subscribes to
/// the retry topics too, and starts the consumer.
pub(crate) async fn start(
    mut builder: ConsumerBuilder,
    policy: RetryPolicy,
) -> Result<Consumer, Error> {
    policy.check()?;
    let Some(group) = builder.group.clone() else {
        return Err(Error::InvalidConfig(
            "a retry policy needs a group (.group(..)): retry topics belong to one".to_owned(),
        ));
    };
    if builder.topic_regex.is_some() {
        return Err(Error::InvalidConfig(
            "a retry policy needs its topics listed with .topics(..), not .topic_regex(..)"
                .to_owned(),
        ));
    }
    let levels = match policy.ordering {
        Ordering::None => u32::try_from(policy.level_delays().len()).unwrap_or(0),
        Ordering::BlockPartition => 0,
    };
    let mut sources = builder.topics.clone();
    sources.sort();
    sources.dedup();
    let mut names = HashMap::new();
    let mut retry_topics = HashMap::new();
    let mut needed = Vec::new();
    for source in &sources {
        let topic_names = RetryTopicNames::new(source, &group)?;
        for level in 0..levels {
            retry_topics.insert(topic_names.retry(level), source.clone());
        }
        needed.extend(topics::NeededTopic::all(&topic_names, levels));
        names.insert(source.clone(), topic_names);
    }
    topics::ensure(&builder.client.admin(), &needed).await?;
    builder.topics.extend(retry_topics.keys().cloned());
    let producer = builder
        .client
        .producer()
        .acks(Acks::All)
        .linger(Duration::ZERO)
        .request_timeout((policy.handoff_timeout / 2).min(HANDOFF_REQUEST_TIMEOUT_MAX))
        .delivery_timeout(policy.handoff_timeout)
        .build()?;
    let mut consumer = Consumer::start(builder).await?;
    let (resent_sender, resent) = mpsc::unbounded_channel();
    consumer.retry = Some(RetryState {
        policy,
        group,
        producer,
        names,
        retry_topics,
        in_place: HashMap::new(),
        resent_sender,
        resent,
    });
    Ok(consumer)
}

impl RetryState {
    /// The `strata.retry.due-ms` of `record` when it comes from one of the group's retry
    /// topics.
    pub(super) fn due_ms(&self, record: &ConsumedRecord) -> Option<i64> {
        if !self.retry_topics.contains_key(&*record.topic) {
            return None;
        }
        headers::due_ms(record)
    }
}

impl Consumer {
    /// Moves slot `index` back to `offset` and lets nothing be fetched for it before
    /// `until`; what was buffered after it is dropped.
    pub(super) fn defer(&mut self, index: usize, offset: i64, until: Instant) {
        let generation = {
            let mut state = self.shared.state();
            let Some(fetch) = state.get_mut(index) else {
                return;
            };
            fetch.generation += 1;
            fetch.fetch_offset = offset;
            fetch.retry_at = Some(until);
            fetch.attempts = 0;
            // A fetch outstanding for it (often the long poll right after the chunk
            // that held this record) is stale now; not counting it as being fetched
            // lets that fetch be given up at the due time (`due.rs`).
            fetch.in_fetch = false;
            fetch.generation
        };
        if let Some(slot) = self.slots.get_mut(index) {
            slot.generation = generation;
            slot.position = offset;
        }
        self.drop_buffered(index);
        self.shared.wake.notify_waiters();
    }

    /// Applies the hand-offs resent in the background since the last poll.
    pub(super) fn poll_retry(&mut self, cx: &mut Context<'_>) {
        loop {
            let Some(retry) = self.retry.as_mut() else {
                return;
            };
            match retry.resent.poll_recv(cx) {
                Poll::Ready(Some(resent)) => self.release(resent),
                Poll::Ready(None) | Poll::Pending => return,
            }
        }
    }

    /// Closes the hand-off producer (`close()`).
    pub(super) async fn close_retry(&mut self) {
        if let Some(retry) = self.retry.take() {
            if let Err(error) = retry.producer.close().await {
                tracing::warn!(%error, "closing the retry hand-off producer");
            }
        }
    }
}
