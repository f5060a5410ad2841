//! The task of one topic: waits for the topic's metadata, picks each record's partition
//! and passes the record to that partition's task, starting it on first use.
//!
//! Also [`ProducerContext`], what every task of one producer shares.
//!
//! A topic the cluster does not know is waited for (it may still be propagating) up to
//! `max.block.ms` (and the record's delivery deadline); after that, records to it fail
//! at once while later metadata refreshes still say it is unknown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::builder::ProducerConfig;
use super::idempotence::IdentitySource;
use super::pending::{FlushTracker, Pending};
use super::sender;
use super::stream::ProduceStreams;
use crate::client::Client;
use crate::error::{Error, ErrorCode};
use crate::partitioner::{partition_for_key, StickyPartitioner};

/// Records queued per partition task.
const PARTITION_QUEUE_RECORDS: usize = 1024;

/// What the tasks of one producer share.
#[derive(Debug)]
pub(crate) struct ProducerContext {
    pub(crate) client: Client,
    pub(crate) config: ProducerConfig,
    pub(crate) tracker: Arc<FlushTracker>,
    pub(crate) streams: ProduceStreams,
    pub(crate) identity: IdentitySource,
    /// The error that stopped the producer for good (fencing, sequence gaps).
    fatal: Mutex<Option<(ErrorCode, String)>>,
}

impl ProducerContext {
    pub(crate) fn new(client: Client, config: ProducerConfig) -> ProducerContext {
        ProducerContext {
            identity: IdentitySource::new(client.clone()),
            streams: ProduceStreams::new(client.clone(), config.request_timeout),
            client,
            config,
            tracker: Arc::new(FlushTracker::default()),
            fatal: Mutex::new(None),
        }
    }

    /// The fatal error, if the producer hit one; every later send fails with it.
    pub(crate) fn fatal_error(&self) -> Option<Error> {
        let fatal = self
            .fatal
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        fatal.as_ref().map(|(code, message)| Error::Broker {
            code: *code,
            message: format!("producer stopped after a fatal error: {message}"),
            retriable: false,
        })
    }

    pub(crate) fn set_fatal(&self, error: &Error) {
        let mut fatal = self
            .fatal
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if fatal.is_none() {
            let code = error.code().unwrap_or(ErrorCode::UnknownServerError);
            tracing::error!(%error, "producer stopped by a fatal error; rebuild it to go on");
            *fatal = Some((code, error.to_string()));
        }
    }
}

/// Starts the task of `topic`.
pub(crate) fn spawn(
    context: Arc<ProducerContext>,
    topic: String,
    receiver: mpsc::Receiver<Pending>,
) {
    let router = TopicRouter {
        context,
        topic,
        partitions: HashMap::new(),
        sticky: StickyPartitioner::default(),
        unknown_since: None,
    };
    tokio::spawn(router.run(receiver));
}

struct TopicRouter {
    context: Arc<ProducerContext>,
    topic: String,
    partitions: HashMap<i32, mpsc::Sender<Pending>>,
    sticky: StickyPartitioner,
    /// Set once waiting for an unknown topic gave up; cleared when it appears.
    unknown_since: Option<Instant>,
}

impl TopicRouter {
    async fn run(mut self, mut receiver: mpsc::Receiver<Pending>) {
        while let Some(pending) = receiver.recv().await {
            let partition = match self.partition_of(&pending).await {
                Ok(partition) => partition,
                Err(error) => {
                    pending.complete(Err(error));
                    continue;
                }
            };
            let queue = self.partition_queue(partition);
            if let Err(mpsc::error::SendError(pending)) = queue.send(pending).await {
                // The partition task ended (it only does when its queue closes): cannot
                // happen while we hold the sender, but never lose the record silently.
                pending.complete(Err(Error::Closed("producer")));
            }
        }
    }

    /// Explicit partition, murmur2 of the key, or sticky.
    async fn partition_of(&mut self, pending: &Pending) -> Result<i32, Error> {
        let count = self.partition_count(pending.deadline).await?;
        let Some(record) = pending.record() else {
            return Err(Error::Closed("producer"));
        };
        if let Some(partition) = record.partition {
            if partition >= 0 && (partition as usize) < count {
                return Ok(partition);
            }
            // Partitions may just have been added: look once more.
            let _ = self
                .context
                .client
                .refresh_metadata(std::slice::from_ref(&self.topic))
                .await;
            let count = self.metadata_count().unwrap_or(0);
            if partition >= 0 && (partition as usize) < count {
                return Ok(partition);
            }
            return Err(Error::Broker {
                code: ErrorCode::UnknownTopicOrPartition,
                message: format!(
                    "partition {partition} does not exist: topic {} has {count} partitions",
                    self.topic
                ),
                retriable: false,
            });
        }
        if let Some(key) = &record.key {
            return Ok(partition_for_key(key, count));
        }
        let available = self
            .context
            .client
            .metadata()
            .partitions_with_leader(&self.topic);
        Ok(self.sticky.partition(
            &self.topic,
            count,
            &available,
            record.memory_bytes(),
            self.context.config.batch_size_bytes,
        ))
    }

    fn metadata_count(&self) -> Option<usize> {
        self.context
            .client
            .metadata()
            .partition_count(&self.topic)
            .filter(|count| *count > 0)
    }

    /// The topic's partition count, refreshing metadata until it is known or the wait
    /// (`max.block.ms`, capped by the record's deadline) is over.
    async fn partition_count(&mut self, deadline: Instant) -> Result<usize, Error> {
        if let Some(count) = self.metadata_count() {
            return Ok(count);
        }
        let config = &self.context.config;
        let give_up = if self.unknown_since.is_some() {
            // Already waited once: one more look, no long wait.
            Instant::now()
        } else {
            deadline.min(Instant::now() + config.max_block)
        };
        let mut backoff = config.retry_backoff;
        let mut last_error = None;
        loop {
            match self
                .context
                .client
                .refresh_metadata(std::slice::from_ref(&self.topic))
                .await
            {
                Ok(_) => {
                    if let Some(count) = self.metadata_count() {
                        self.unknown_since = None;
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
        self.unknown_since.get_or_insert_with(Instant::now);
        Err(match last_error {
            Some(error) if !matches!(error, Error::Broker { .. }) => error,
            _ => Error::Broker {
                code: ErrorCode::UnknownTopicOrPartition,
                message: format!("topic {} does not exist", self.topic),
                retriable: false,
            },
        })
    }

    fn partition_queue(&mut self, partition: i32) -> mpsc::Sender<Pending> {
        if let Some(queue) = self.partitions.get(&partition) {
            return queue.clone();
        }
        let (queue, receiver) = mpsc::channel(PARTITION_QUEUE_RECORDS);
        sender::spawn(
            self.context.clone(),
            self.topic.clone(),
            partition,
            receiver,
        );
        self.partitions.insert(partition, queue.clone());
        queue
    }
}
