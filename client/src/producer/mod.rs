//! [`Producer`]: sends [`Record`]s and reports where each one landed.
//!
//! Flow of one record:
//!
//! 1. [`Producer::enqueue`] takes the record's share of `buffer.memory` (a semaphore) and
//!    hands it to the task of its topic (`router`).
//! 2. The topic task loads the topic's metadata and picks the partition
//!    ([`crate::partitioner`]: explicit, murmur2 of the key, or sticky), then passes the
//!    record to that partition's task.
//! 3. The partition task (`sender`) appends it to the open batch (`accumulator`),
//!    seals the batch when it is full, lingered long enough or a flush asks for it, stamps
//!    producer id and sequence numbers (`idempotence`) and sends it over the one
//!    bidirectional `Produce` stream of the leader's broker (`stream`), with up to
//!    `max_in_flight` requests outstanding.
//! 4. The answer completes every record of the batch (`pending`); retriable errors are
//!    retried, in order, until `delivery.timeout.ms`.
//!
//! Ordering: records of one producer to one partition pass through one topic task and one
//! partition task, both FIFO; on a retriable error the failed batch and every later
//! in-flight batch of the partition are resent in order with their sequence numbers, and
//! the broker answers duplicates with the original offsets.

mod accumulator;
mod builder;
mod idempotence;
mod in_flight;
mod pending;
mod router;
mod sender;
mod stream;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

pub use builder::{parse_compression, Acks, ProducerBuilder};

use crate::client::Client;
use crate::error::{Error, ErrorCode};
use crate::record::{now_ms, Delivery, Record};
use builder::ProducerConfig;
use pending::Pending;
use router::ProducerContext;

/// Records queued per topic task before `send` waits (memory is bounded separately).
const TOPIC_QUEUE_RECORDS: usize = 1024;

/// A failed `send`: the error and the record, so the caller can retry without cloning.
#[derive(Debug)]
pub struct SendError {
    pub error: Error,
    pub record: Record,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

impl From<SendError> for Error {
    fn from(error: SendError) -> Error {
        error.error
    }
}

/// Resolves when the broker acknowledged (or finally refused) an enqueued record.
#[derive(Debug)]
#[must_use = "a DeliveryFuture does nothing unless awaited; dropping it does not cancel the send"]
pub struct DeliveryFuture {
    receiver: oneshot::Receiver<Result<Delivery, SendError>>,
}

impl Future for DeliveryFuture {
    type Output = Result<Delivery, SendError>;

    // `SendError` hands the record back (client-api.md §1); that is what makes it large.
    #[allow(clippy::result_large_err)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.receiver).poll(cx).map(|result| {
            // The sender side always answers (see `Pending`'s Drop); a closed channel
            // means the producer's tasks are gone.
            result.unwrap_or_else(|_| {
                Err(SendError {
                    error: Error::Closed("producer"),
                    record: Record::to(""),
                })
            })
        })
    }
}

/// A handle to a running producer. Cheap to clone; clones share batches and connections.
///
/// Dropping the last handle lets queued records finish in the background (bounded by
/// `delivery.timeout.ms`) and logs a warning; call [`Producer::close`] to wait for them.
#[derive(Debug, Clone)]
pub struct Producer {
    shared: Arc<ProducerShared>,
}

#[derive(Debug)]
struct ProducerShared {
    context: Arc<ProducerContext>,
    /// The queue of each topic's task; cleared by `close`, which ends the tasks.
    topics: Mutex<HashMap<String, mpsc::Sender<Pending>>>,
    memory: Arc<Semaphore>,
    closed: AtomicBool,
}

impl Producer {
    pub(crate) fn start(client: Client, config: ProducerConfig) -> Producer {
        let memory = Arc::new(Semaphore::new(config.buffer_memory_bytes));
        Producer {
            shared: Arc::new(ProducerShared {
                context: Arc::new(ProducerContext::new(client, config)),
                topics: Mutex::new(HashMap::new()),
                memory,
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Sends one record and waits for the broker's acknowledgement. Waits up to
    /// `max.block.ms` for buffer space; the delivery itself is bounded by
    /// `delivery.timeout.ms`.
    pub async fn send(&self, record: Record) -> Result<Delivery, SendError> {
        let config = &self.shared.context.config;
        let size = record.memory_bytes();
        if let Err(error) = self.check_open(size) {
            return Err(SendError { error, record });
        }
        let permits = permits_for(size);
        let acquire = self.shared.memory.clone().acquire_many_owned(permits);
        let permit = match tokio::time::timeout(config.max_block, acquire).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => {
                return Err(SendError {
                    error: Error::Closed("producer"),
                    record,
                })
            }
            Err(_) => {
                return Err(SendError {
                    error: Error::BufferFull {
                        buffer_memory_bytes: config.buffer_memory_bytes,
                    },
                    record,
                })
            }
        };
        let (pending, future) = self.pending(record, Some(permit));
        let queue = self.topic_queue(pending.topic());
        if let Err(mpsc::error::SendError(pending)) = queue.send(pending).await {
            return Err(SendError {
                error: Error::Closed("producer"),
                record: pending.into_record(),
            });
        }
        future.await
    }

    /// Queues a record without waiting and returns a future of its delivery. Fails at once
    /// with [`Error::BufferFull`] when `buffer.memory` is used up.
    #[allow(clippy::result_large_err)] // SendError carries the record back, by design
    pub fn enqueue(&self, record: Record) -> Result<DeliveryFuture, SendError> {
        let size = record.memory_bytes();
        if let Err(error) = self.check_open(size) {
            return Err(SendError { error, record });
        }
        let buffer_full = Error::BufferFull {
            buffer_memory_bytes: self.shared.context.config.buffer_memory_bytes,
        };
        let Ok(permit) = self
            .shared
            .memory
            .clone()
            .try_acquire_many_owned(permits_for(size))
        else {
            return Err(SendError {
                error: buffer_full,
                record,
            });
        };
        let (pending, future) = self.pending(record, Some(permit));
        let queue = self.topic_queue(pending.topic());
        match queue.try_send(pending) {
            Ok(()) => Ok(future),
            Err(mpsc::error::TrySendError::Full(pending)) => Err(SendError {
                error: buffer_full,
                record: pending.into_record(),
            }),
            Err(mpsc::error::TrySendError::Closed(pending)) => Err(SendError {
                error: Error::Closed("producer"),
                record: pending.into_record(),
            }),
        }
    }

    /// Sends every batch now and waits until all records sent before this call completed
    /// (successfully or not: each record's own future tells). Fails only when the
    /// producer hit a fatal error.
    pub async fn flush(&self) -> Result<(), Error> {
        self.shared.context.tracker.flush().await;
        match self.shared.context.fatal_error() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Refuses new records, delivers the queued ones (as `flush`), ends the produce
    /// streams and stops the producer's tasks. Every clone of this producer is closed.
    pub async fn close(&self) -> Result<(), Error> {
        self.shared.closed.store(true, Ordering::SeqCst);
        let result = self.flush().await;
        self.shared
            .topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
        self.shared.context.streams.close_all().await;
        result
    }

    /// Records enqueued and not yet completed.
    pub fn in_flight_records(&self) -> usize {
        self.shared.context.tracker.outstanding()
    }

    fn check_open(&self, size: usize) -> Result<(), Error> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed("producer"));
        }
        if let Some(error) = self.shared.context.fatal_error() {
            return Err(error);
        }
        let config = &self.shared.context.config;
        if size > config.buffer_memory_bytes || size > config.max_request_size_bytes {
            return Err(Error::broker(
                ErrorCode::MessageTooLarge,
                format!(
                    "record of about {size} bytes is larger than max.request.size ({}) or buffer.memory ({})",
                    config.max_request_size_bytes, config.buffer_memory_bytes
                ),
            ));
        }
        Ok(())
    }

    fn pending(
        &self,
        record: Record,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> (Pending, DeliveryFuture) {
        let (done, receiver) = oneshot::channel();
        let timestamp_ms = record.timestamp_ms.unwrap_or_else(now_ms);
        let deadline = Instant::now() + self.shared.context.config.delivery_timeout;
        let pending = Pending::new(
            record,
            timestamp_ms,
            deadline,
            done,
            self.shared.context.tracker.clone(),
            permit,
        );
        (pending, DeliveryFuture { receiver })
    }

    /// The queue of `topic`'s task, starting the task on first use.
    fn topic_queue(&self, topic: &str) -> mpsc::Sender<Pending> {
        let mut topics = self
            .shared
            .topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(queue) = topics.get(topic) {
            if !queue.is_closed() {
                return queue.clone();
            }
        }
        let (queue, receiver) = mpsc::channel(TOPIC_QUEUE_RECORDS);
        router::spawn(self.shared.context.clone(), topic.to_owned(), receiver);
        topics.insert(topic.to_owned(), queue.clone());
        queue
    }
}

impl Drop for ProducerShared {
    fn drop(&mut self) {
        let outstanding = self.context.tracker.outstanding();
        if outstanding > 0 && !self.closed.load(Ordering::SeqCst) {
            tracing::warn!(
                outstanding,
                "producer dropped without close(): its records are still being delivered in the background"
            );
        }
    }
}

/// Semaphore permits for a record of `size` bytes (`Semaphore` counts in u32).
fn permits_for(size: usize) -> u32 {
    u32::try_from(size).unwrap_or(u32::MAX)
}
