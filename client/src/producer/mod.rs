//! [`Producer`]: sends [`Record`]s and reports where each one landed.
//!
//! Flow of one record:
//!
//! 1. [`Producer::enqueue`] takes the record's share of `buffer.memory` (a semaphore,
//!    no waiting; `send` may wait up to `max.block.ms`).
//! 2. On the caller's thread, the topic (`router`) picks the partition
//!    ([`crate::partitioner`]: explicit, murmur2 of the key, or sticky) and encodes the
//!    record straight into that partition's open batch (`accumulator`). The future it
//!    returns is the batch's shared completion plus the record's index (`completion`):
//!    no channel, task hop or allocation per record. A topic whose metadata is not known
//!    yet queues its records, in order, until a task has loaded it.
//! 3. The partition's task (`sender`) seals the batch when it is full, lingered long
//!    enough or a flush asks for it, stamps producer id and sequence numbers
//!    (`idempotence`) and sends it over the one bidirectional `Produce` stream of the
//!    leader's broker (`stream`), with up to `max_in_flight` requests outstanding.
//! 4. The answer completes the batch, and with it every record's future; retriable
//!    errors are retried, in order, until `delivery.timeout.ms`.
//!
//! Ordering: records of one producer to one partition are encoded in call order under
//! the topic's lock and their batches leave FIFO from one partition task; on a retriable
//! error the failed batch and every later in-flight batch of the partition are resent in
//! order with their sequence numbers, and the broker answers duplicates with the
//! original offsets.

mod accumulator;
mod builder;
mod completion;
mod delay;
mod idempotence;
mod in_flight;
mod router;
mod sender;
mod stream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub use builder::{parse_compression, Acks, ProducerBuilder};
pub use completion::DeliveryFuture;

use crate::client::Client;
use crate::error::{Error, ErrorCode};
use crate::record::{now_ms, Delivery, Record};
use accumulator::Incoming;
use builder::ProducerConfig;
use completion::MemoryShare;
use router::{ProducerContext, TopicShared};

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
    /// Each topic's batches, created on first use.
    topics: Mutex<TopicMap>,
    closed: AtomicBool,
}

impl Producer {
    pub(crate) fn start(client: Client, config: ProducerConfig) -> Producer {
        Producer {
            shared: Arc::new(ProducerShared {
                context: Arc::new(ProducerContext::new(client, config)),
                topics: Mutex::new(TopicMap::default()),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Sends one record and waits for the broker's acknowledgement. Waits up to
    /// `max.block.ms` for buffer space; the delivery itself is bounded by
    /// `delivery.timeout.ms`.
    pub async fn send(&self, record: Record) -> Result<Delivery, SendError> {
        let context = &self.shared.context;
        let size = record.memory_bytes();
        if let Err(error) = self.check_open(size) {
            return Err(SendError { error, record });
        }
        let permits = permits_for(size);
        let acquire = context.memory.acquire_many(permits);
        let memory = match tokio::time::timeout(context.config.max_block, acquire).await {
            Ok(Ok(permit)) => {
                permit.forget();
                MemoryShare::taken(context.memory.clone(), permits as usize)
            }
            Ok(Err(_)) => {
                return Err(SendError {
                    error: Error::Closed("producer"),
                    record,
                })
            }
            Err(_) => {
                return Err(SendError {
                    error: Error::BufferFull {
                        buffer_memory_bytes: context.config.buffer_memory_bytes,
                    },
                    record,
                })
            }
        };
        self.place(record, memory)?.await
    }

    /// Queues a record without waiting and returns a future of its delivery. Fails at once
    /// with [`Error::BufferFull`] when `buffer.memory` is used up.
    ///
    /// The record is encoded into its partition's open batch on the calling thread; the
    /// future resolves when that batch is acknowledged.
    #[allow(clippy::result_large_err)] // SendError carries the record back, by design
    pub fn enqueue(&self, record: Record) -> Result<DeliveryFuture, SendError> {
        let context = &self.shared.context;
        let size = record.memory_bytes();
        if let Err(error) = self.check_open(size) {
            return Err(SendError { error, record });
        }
        let Some(memory) = MemoryShare::try_take(&context.memory, permits_for(size)) else {
            return Err(SendError {
                error: Error::BufferFull {
                    buffer_memory_bytes: context.config.buffer_memory_bytes,
                },
                record,
            });
        };
        self.place(record, memory)
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
        self.shared.stop_senders();
        self.shared.context.streams.close_all().await;
        result
    }

    /// Whether the producer stopped after a fatal error (a sequence gap or a fenced
    /// producer id): every later send fails, and the application must build a new
    /// producer to go on. The records that were in flight then failed with
    /// [`Error::ProducerStopped`], whose outcome says whether each may have been written.
    pub fn is_fatal(&self) -> bool {
        self.shared.context.fatal_error().is_some()
    }

    /// Records enqueued and not yet completed.
    pub fn in_flight_records(&self) -> usize {
        self.shared.context.tracker.outstanding_records()
    }

    fn check_open(&self, size: usize) -> Result<(), Error> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(Error::Closed("producer"));
        }
        let context = &self.shared.context;
        if let Some(error) = context.fatal_error() {
            return Err(error);
        }
        let config = &context.config;
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

    /// Hands a record that holds its memory share to its topic.
    #[allow(clippy::result_large_err)] // SendError carries the record back, by design
    fn place(&self, record: Record, memory: MemoryShare) -> Result<DeliveryFuture, SendError> {
        let context = &self.shared.context;
        let timestamp_ms = record.timestamp_ms.unwrap_or_else(now_ms);
        let topic = self.shared.topic(&record.topic);
        topic.enqueue(
            context,
            Incoming {
                record,
                timestamp_ms,
                memory,
                deadline: None,
                link: None,
            },
        )
    }
}

/// The producer's topics, with the last one used at hand (most producers write to one).
#[derive(Debug, Default)]
struct TopicMap {
    by_name: HashMap<String, Arc<TopicShared>>,
    last: Option<Arc<TopicShared>>,
}

impl ProducerShared {
    /// The state of `topic`, created on first use.
    fn topic(&self, topic: &Arc<str>) -> Arc<TopicShared> {
        let mut topics = self
            .topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // The same `Arc` (a caller reusing one for every record) needs no byte compare.
        let same = |name: &Arc<str>| Arc::ptr_eq(name, topic) || name == topic;
        if let Some(last) = topics.last.as_ref().filter(|last| same(&last.name)) {
            return last.clone();
        }
        let shared = match topics.by_name.get(&**topic) {
            Some(shared) => shared.clone(),
            None => {
                let shared = Arc::new(TopicShared::new(topic.clone()));
                topics.by_name.insert(topic.to_string(), shared.clone());
                shared
            }
        };
        topics.last = Some(shared.clone());
        shared
    }

    /// Tells every partition sender to deliver what it holds and end.
    fn stop_senders(&self) {
        self.context.closing.store(true, Ordering::SeqCst);
        let topics: Vec<Arc<TopicShared>> = self
            .topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .by_name
            .values()
            .cloned()
            .collect();
        for topic in topics {
            topic.wake_all();
        }
    }
}

impl Drop for ProducerShared {
    fn drop(&mut self) {
        let outstanding = self.context.tracker.outstanding_records();
        if outstanding > 0 && !self.closed.load(Ordering::SeqCst) {
            tracing::warn!(
                outstanding,
                "producer dropped without close(): its records are still being delivered in the background"
            );
        }
        // The senders deliver what they hold, then end.
        self.stop_senders();
    }
}

/// Semaphore permits for a record of `size` bytes (`Semaphore` counts in u32).
fn permits_for(size: usize) -> u32 {
    u32::try_from(size).unwrap_or(u32::MAX)
}
