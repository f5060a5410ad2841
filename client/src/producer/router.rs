//! Routing records to partitions: [`TopicShared`] holds the batches of every partition of
//! one topic behind one lock, picks each record's partition (explicit, murmur2 of the key,
//! or sticky) and encodes it into that partition's open batch — on the caller's thread,
//! with no task hop.
//!
//! A topic whose metadata is not known yet (or a record naming a partition the metadata
//! does not have) takes the slow path: the record waits in the topic's queue, with a
//! future of its own, while one task refreshes metadata up to `max.block.ms` (and the
//! record's delivery deadline); then the queue is placed in order. While records wait,
//! later ones queue behind them, so a producer's order per partition holds. After a wait
//! gave up, records to a still-unknown topic fail after one more metadata look.
//!
//! A record with a due time (`Record::deliver_at`) is checked against the topic's delay
//! settings before it is encoded (`delay`); while those are not known, it takes the slow
//! path too, and the queue's task reads them along with the metadata.
//!
//! Also [`ProducerContext`], what every part of one producer shares.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use super::accumulator::{Accumulator, Incoming};
use super::builder::ProducerConfig;
use super::completion::{fail_unbatched, BatchCompletion, DeliveryFuture, FlushTracker, Linked};
use super::delay::{self, TopicDelay};
use super::idempotence::IdentitySource;
use super::sender;
use super::stream::ProduceStreams;
use super::SendError;
use crate::client::Client;
use crate::error::{Error, ErrorCode};
use crate::partitioner::{partition_for_key, StickyChoice};

/// What the parts of one producer share.
#[derive(Debug)]
pub(crate) struct ProducerContext {
    pub(crate) client: Client,
    pub(crate) config: ProducerConfig,
    pub(crate) tracker: Arc<FlushTracker>,
    pub(crate) memory: Arc<Semaphore>,
    pub(crate) streams: ProduceStreams,
    pub(crate) identity: IdentitySource,
    /// Set by `close` (or when the last handle goes): senders deliver what they hold,
    /// then end.
    pub(crate) closing: AtomicBool,
    /// Set once `fatal` holds an error (checked on every record without a lock).
    has_fatal: AtomicBool,
    /// The error that stopped the producer for good (fencing, sequence gaps).
    fatal: Mutex<Option<(ErrorCode, String)>>,
}

impl ProducerContext {
    pub(crate) fn new(client: Client, config: ProducerConfig) -> ProducerContext {
        ProducerContext {
            identity: IdentitySource::new(client.clone()),
            streams: ProduceStreams::new(client.clone(), config.request_timeout),
            memory: Arc::new(Semaphore::new(config.buffer_memory_bytes)),
            client,
            config,
            tracker: Arc::new(FlushTracker::default()),
            closing: AtomicBool::new(false),
            has_fatal: AtomicBool::new(false),
            fatal: Mutex::new(None),
        }
    }

    /// The fatal error, if the producer hit one; every later send fails with it.
    pub(crate) fn fatal_error(&self) -> Option<Error> {
        if !self.has_fatal.load(Ordering::Acquire) {
            return None;
        }
        let fatal = lock(&self.fatal);
        fatal.as_ref().map(|(code, message)| Error::Broker {
            code: *code,
            message: format!("producer stopped after a fatal error: {message}"),
            retriable: false,
        })
    }

    pub(crate) fn set_fatal(&self, error: &Error) {
        let mut fatal = lock(&self.fatal);
        if fatal.is_none() {
            let code = error.code().unwrap_or(ErrorCode::UnknownServerError);
            tracing::error!(%error, "producer stopped by a fatal error; rebuild it to go on");
            *fatal = Some((code, error.to_string()));
            self.has_fatal.store(true, Ordering::Release);
        }
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }
}

/// One topic of a producer: the accumulators of its partitions and the slow-path queue.
#[derive(Debug)]
pub(crate) struct TopicShared {
    pub(crate) name: Arc<str>,
    state: Mutex<TopicState>,
}

#[derive(Debug, Default)]
struct TopicState {
    /// Index = partition number; `None` until the first record goes there.
    partitions: Vec<Option<PartitionSlot>>,
    /// Records waiting for metadata, in enqueue order.
    waiting: VecDeque<Incoming>,
    waiter_running: bool,
    sticky: StickyChoice,
    /// The partition count read from metadata version `.0`.
    partition_count: Option<(u64, usize)>,
    /// Set once waiting for an unknown topic gave up; cleared when it appears.
    unknown_since: Option<Instant>,
    /// The topic's delay settings, once a record with a due time needed them.
    delay: Option<TopicDelay>,
}

#[derive(Debug)]
struct PartitionSlot {
    accumulator: Accumulator,
    /// Tells the partition's sender that a batch opened, sealed, or the producer closes.
    wake: Arc<Notify>,
}

impl TopicShared {
    pub(crate) fn new(name: Arc<str>) -> TopicShared {
        TopicShared {
            name,
            state: Mutex::new(TopicState::default()),
        }
    }

    /// Places `incoming` in its partition's open batch, or queues it until the topic's
    /// metadata is known.
    #[allow(clippy::result_large_err)] // SendError carries the record back, by design
    pub(crate) fn enqueue(
        self: &Arc<Self>,
        context: &Arc<ProducerContext>,
        incoming: Incoming,
    ) -> Result<DeliveryFuture, SendError> {
        let timestamp_ms = incoming.timestamp_ms;
        let mut state = lock(&self.state);
        let mut incoming = incoming;
        if state.waiting.is_empty()
            && !delay::needs_settings(state.delay.as_ref(), &incoming.record)
        {
            if incoming.record.deliver_at_ms.is_some() {
                if let Err(error) =
                    delay::admit(&self.name, state.delay.as_ref(), &mut incoming.record)
                {
                    return Err(SendError {
                        error,
                        record: incoming.record,
                    });
                }
            }
            if let Some(partition) = state.choose_partition(context, &self.name, &incoming) {
                let slot = state.slot(context, self, partition);
                return match slot.accumulator.append(incoming) {
                    Ok(placed) => {
                        if placed.wake {
                            slot.wake.notify_one();
                        }
                        Ok(DeliveryFuture::new(
                            placed.completion,
                            placed.index,
                            Some(partition),
                            timestamp_ms,
                        ))
                    }
                    Err((error, incoming)) => Err(SendError {
                        error,
                        record: incoming.record,
                    }),
                };
            }
        }
        // Slow path: the record gets a completion of its own and waits.
        let completion = Arc::new(BatchCompletion::for_topic(self.name.clone()));
        let link = Linked {
            completion: completion.clone(),
            ticket: context.tracker.register(),
        };
        context.tracker.records_added(1);
        incoming.link = Some(link);
        incoming.deadline = Some(Instant::now() + context.config.delivery_timeout);
        state.waiting.push_back(incoming);
        if !state.waiter_running {
            state.waiter_running = true;
            tokio::spawn(wait_for_metadata(context.clone(), self.clone()));
        }
        Ok(DeliveryFuture::new(completion, 0, None, timestamp_ms))
    }

    /// Runs `action` on the accumulator of `partition` (if it exists).
    pub(crate) fn with_accumulator<T>(
        &self,
        partition: i32,
        action: impl FnOnce(&mut Accumulator) -> T,
    ) -> Option<T> {
        let mut state = lock(&self.state);
        let slot = state
            .partitions
            .get_mut(usize::try_from(partition).ok()?)?
            .as_mut()?;
        Some(action(&mut slot.accumulator))
    }

    /// Wakes every partition sender (flush targets, closing).
    pub(crate) fn wake_all(&self) {
        let state = lock(&self.state);
        for slot in state.partitions.iter().flatten() {
            slot.wake.notify_one();
        }
    }
}

impl TopicState {
    /// The partition for `incoming`, or `None` when it must wait for metadata.
    fn choose_partition(
        &mut self,
        context: &ProducerContext,
        topic: &str,
        incoming: &Incoming,
    ) -> Option<i32> {
        let metadata = context.client.metadata();
        let version = metadata.version();
        let count = match self.partition_count {
            Some((seen, count)) if seen == version => count,
            _ => {
                let count = metadata.partition_count(topic).filter(|count| *count > 0)?;
                self.partition_count = Some((version, count));
                count
            }
        };
        let record = &incoming.record;
        if let Some(partition) = record.partition {
            return (partition >= 0 && (partition as usize) < count).then_some(partition);
        }
        if let Some(key) = &record.key {
            return Some(partition_for_key(key, count));
        }
        Some(self.sticky.partition(
            count,
            record.memory_bytes(),
            context.config.batch_size_bytes,
            || metadata.partitions_with_leader(topic),
        ))
    }

    /// The slot of `partition`, starting its sender on first use.
    fn slot(
        &mut self,
        context: &Arc<ProducerContext>,
        topic: &Arc<TopicShared>,
        partition: i32,
    ) -> &mut PartitionSlot {
        let index = usize::try_from(partition).unwrap_or(0);
        if self.partitions.len() <= index {
            self.partitions.resize_with(index + 1, || None);
        }
        let entry = &mut self.partitions[index];
        entry.get_or_insert_with(|| {
            let config = &context.config;
            let wake = Arc::new(Notify::new());
            sender::spawn(context.clone(), topic.clone(), partition, wake.clone());
            PartitionSlot {
                accumulator: Accumulator::new(
                    config.compression,
                    config.batch_size_bytes,
                    config.max_request_size_bytes,
                    config.linger,
                    config.delivery_timeout,
                    context.tracker.clone(),
                    context.memory.clone(),
                ),
                wake,
            }
        })
    }
}

/// The slow path's task: refreshes metadata until the topic is known or the wait is
/// over, then places (or fails) every waiting record, in order.
async fn wait_for_metadata(context: Arc<ProducerContext>, topic: Arc<TopicShared>) {
    let (deadline, waited_before) = {
        let state = lock(&topic.state);
        let deadline = state.waiting.front().and_then(|incoming| incoming.deadline);
        (deadline, state.unknown_since.is_some())
    };
    let result = partition_count(&context, &topic.name, deadline, waited_before).await;
    let delay_error = match &result {
        Ok(_) => load_delay_settings(&context, &topic).await.err(),
        Err(_) => None,
    };
    let mut state = lock(&topic.state);
    state.waiter_running = false;
    let waiting = std::mem::take(&mut state.waiting);
    let error = match result {
        Ok(_) => {
            state.unknown_since = None;
            None
        }
        Err(error) => {
            state.unknown_since.get_or_insert_with(Instant::now);
            Some(error)
        }
    };
    for mut incoming in waiting {
        let Some(link) = incoming.link.take() else {
            continue;
        };
        if let Some(error) = &error {
            fail_unbatched(link, incoming.record, &context.tracker, error.duplicate());
            continue;
        }
        if incoming.record.deliver_at_ms.is_some() {
            let admitted = match &delay_error {
                Some(error) => Err(error.duplicate()),
                None => delay::admit(&topic.name, state.delay.as_ref(), &mut incoming.record),
            };
            if let Err(error) = admitted {
                fail_unbatched(link, incoming.record, &context.tracker, error);
                continue;
            }
        }
        let Some(partition) = state.choose_partition(&context, &topic.name, &incoming) else {
            let count = context
                .client
                .metadata()
                .partition_count(&topic.name)
                .unwrap_or(0);
            let error = Error::Broker {
                code: ErrorCode::UnknownTopicOrPartition,
                message: format!(
                    "partition {} does not exist: topic {} has {count} partitions",
                    incoming.record.partition.unwrap_or(-1),
                    topic.name
                ),
                retriable: false,
            };
            fail_unbatched(link, incoming.record, &context.tracker, error);
            continue;
        };
        incoming.link = Some(link);
        let slot = state.slot(&context, &topic, partition);
        match slot.accumulator.append(incoming) {
            Ok(placed) => {
                if placed.wake {
                    slot.wake.notify_one();
                }
            }
            Err((error, mut incoming)) => {
                if let Some(link) = incoming.link.take() {
                    fail_unbatched(link, incoming.record, &context.tracker, error);
                }
            }
        }
    }
}

/// Reads the topic's delay settings while a waiting record with a due time needs them
/// (again, should one arrive while they are read).
async fn load_delay_settings(context: &ProducerContext, topic: &TopicShared) -> Result<(), Error> {
    loop {
        let needed = {
            let state = lock(&topic.state);
            state
                .waiting
                .iter()
                .any(|incoming| delay::needs_settings(state.delay.as_ref(), &incoming.record))
        };
        if !needed {
            return Ok(());
        }
        let settings = delay::load(context, &topic.name).await?;
        lock(&topic.state).delay = Some(TopicDelay::new(settings));
    }
}

/// The topic's partition count after at least one metadata refresh, refreshing until it
/// is known or the wait (`max.block.ms`, capped by the first record's deadline) is over.
/// After an earlier wait gave up, one look only.
async fn partition_count(
    context: &ProducerContext,
    topic: &str,
    deadline: Option<Instant>,
    waited_before: bool,
) -> Result<usize, Error> {
    let config = &context.config;
    let now = Instant::now();
    let give_up = if waited_before {
        now
    } else {
        let limit = now + config.max_block;
        deadline.map_or(limit, |deadline| deadline.min(limit))
    };
    let known = || {
        context
            .client
            .metadata()
            .partition_count(topic)
            .filter(|count| *count > 0)
    };
    let mut backoff = config.retry_backoff;
    let mut last_error = None;
    loop {
        match context.client.refresh_metadata(&[topic.to_owned()]).await {
            Ok(_) => {
                if let Some(count) = known() {
                    return Ok(count);
                }
            }
            Err(error) => last_error = Some(error),
        }
        if Instant::now() + backoff > give_up {
            break;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(config.retry_backoff_max);
    }
    if let Some(count) = known() {
        return Ok(count);
    }
    Err(match last_error {
        Some(error) if !matches!(error, Error::Broker { .. }) => error,
        _ => Error::Broker {
            code: ErrorCode::UnknownTopicOrPartition,
            message: format!("topic {topic} does not exist"),
            retriable: false,
        },
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
