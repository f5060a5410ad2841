//! [`Workload`]: producers and consumers that record everything they do into a
//! [`Recorder`], for the history checker; and [`final_read`], the full read of every
//! partition that ends a run.
//!
//! Each producer is a task with its own [`Client`]: it sends unique [`Value`]s (its id and
//! a sequence number in send order) to partitions it picks at random, keeps
//! [`WorkloadConfig::sends_in_flight`] sends outstanding (awaiting the oldest when that
//! many are pending), and records the invoke and the completion of each. When its
//! producer refuses records (closed after a fatal error), it waits for the outstanding
//! sends and builds a new producer, as an application would.
//!
//! Each consumer is a task with its own client that reads every partition from the start
//! with a manual assignment (`assign`) and records each record it polls. At the end
//! [`Workload::catch_up`] waits until every consumer has read up to the end of every
//! partition.
//!
//! The clients are given the bootstrap addresses only: nothing here assumes one broker.
//! Every wait is bounded; a bound that runs out is an error (a liveness failure), never a
//! verdict on the history.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata_client::{
    Client, DeliveryFuture, Error, Offset, OffsetSpec, Producer, Record, SendError,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;

use crate::history::{Event, Recorder, TopicPartition, Value};

/// Ends the recorded error of a failed send that is not retriable (`Error::is_retriable`),
/// after its code: `… (PRODUCER_FENCED; fatal)`.
pub const FATAL_SEND_MARK: &str = "; fatal";

/// What the clients of a run do.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Bootstrap addresses (`host:port`).
    pub brokers: Vec<String>,
    pub topic: String,
    pub partitions: i32,
    /// The partitions producers send to, each picked at random; empty means every one of
    /// `0..partitions`. Consumers and the final read cover every partition either way.
    pub send_partitions: Vec<i32>,
    pub producers: u32,
    pub consumers: u32,
    /// Sends each producer keeps outstanding.
    pub sends_in_flight: usize,
    /// The producer's `max.in.flight.requests.per.connection`.
    pub max_in_flight_requests: usize,
    /// The producer's `request.timeout.ms`, and the client's (metadata, list offsets).
    pub request_timeout: Duration,
    pub delivery_timeout: Duration,
    /// Producer `i` waits a random time up to `send_gaps_max[i % len]` before each send
    /// (zero or empty: no wait). Full speed keeps many batches in flight; gaps make the
    /// sends outstanding when a fault hits differ in age, so the partitions' timeouts do
    /// not all fire at once. Each finds bugs the other misses.
    pub send_gaps_max: Vec<Duration>,
    /// Seeds the producers' partition choices and gaps.
    pub seed: u64,
}

impl WorkloadConfig {
    /// 3 producers with 8 sends in flight (the first at full speed, the others 0–10 ms
    /// apart) and at most 5 requests in flight per partition, `acks=all` and idempotence
    /// (the defaults), request timeout 1 s, delivery timeout 2.5 s; 2 consumers.
    pub fn new(brokers: Vec<String>, topic: &str, partitions: i32) -> WorkloadConfig {
        WorkloadConfig {
            brokers,
            topic: topic.to_owned(),
            partitions,
            send_partitions: Vec::new(),
            producers: 3,
            consumers: 2,
            sends_in_flight: 8,
            max_in_flight_requests: 5,
            request_timeout: Duration::from_millis(1_000),
            delivery_timeout: Duration::from_millis(2_500),
            send_gaps_max: vec![
                Duration::ZERO,
                Duration::from_millis(10),
                Duration::from_millis(10),
            ],
            seed: 0,
        }
    }

    /// A partition to send to, at random among [`WorkloadConfig::send_partitions`].
    fn pick_partition(&self, rng: &mut StdRng) -> i32 {
        if self.send_partitions.is_empty() {
            rng.gen_range(0..self.partitions)
        } else {
            self.send_partitions[rng.gen_range(0..self.send_partitions.len())]
        }
    }

    fn topic_partition(&self, partition: i32) -> TopicPartition {
        TopicPartition::new(self.topic.as_str(), partition)
    }

    /// How long a send may stay without a completion before the workload gives up on it:
    /// the delivery timeout bounds it, so this only catches a client that hangs.
    fn completion_guard(&self) -> Duration {
        self.delivery_timeout + Duration::from_secs(30)
    }
}

/// What the producers report beyond the history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProducerTally {
    /// Producers built anew after the old one refused records.
    pub rebuilt: usize,
    /// Sends that did not complete within the guard (a hung client).
    pub stuck: usize,
}

/// Running producers and consumers; see the module documentation.
#[derive(Debug)]
pub struct Workload {
    config: Arc<WorkloadConfig>,
    stop_producers: watch::Sender<bool>,
    stop_consumers: watch::Sender<bool>,
    producers: Vec<JoinHandle<anyhow::Result<ProducerTally>>>,
    consumers: Vec<RunningConsumer>,
}

#[derive(Debug)]
struct RunningConsumer {
    process: String,
    /// The next offset to read, per partition.
    positions: Arc<Vec<AtomicI64>>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// A client with the workload's timeouts.
pub async fn connect(config: &WorkloadConfig, client_id: &str) -> anyhow::Result<Client> {
    Client::builder()
        .brokers(config.brokers.clone())
        .client_id(client_id)
        .request_timeout(config.request_timeout)
        .build()
        .await
        .with_context(|| format!("connect {client_id}"))
}

impl Workload {
    /// Starts the consumers (reading from the start) and the producers.
    pub async fn start(config: WorkloadConfig, recorder: Recorder) -> anyhow::Result<Workload> {
        let config = Arc::new(config);
        let (stop_producers, _) = watch::channel(false);
        let (stop_consumers, _) = watch::channel(false);
        let mut consumers = Vec::new();
        for id in 0..config.consumers {
            let process = format!("consumer-{id}");
            let positions: Arc<Vec<AtomicI64>> =
                Arc::new((0..config.partitions).map(|_| AtomicI64::new(0)).collect());
            let consumer = Consumer {
                client: connect(&config, &process).await?,
                config: config.clone(),
                process: process.clone(),
                recorder: recorder.clone(),
                positions: positions.clone(),
            };
            let task = tokio::spawn(consumer.run(stop_consumers.subscribe()));
            consumers.push(RunningConsumer {
                process,
                positions,
                task,
            });
        }
        let mut producers = Vec::new();
        for id in 0..config.producers {
            let process = format!("producer-{id}");
            let producer = ProducerLoop {
                client: connect(&config, &process).await?,
                config: config.clone(),
                id,
                process,
                recorder: recorder.clone(),
                tally: ProducerTally::default(),
            };
            producers.push(tokio::spawn(producer.run(stop_producers.subscribe())));
        }
        Ok(Workload {
            config,
            stop_producers,
            stop_consumers,
            producers,
            consumers,
        })
    }

    /// Stops sending, waits for every outstanding send to complete and closes the
    /// producers.
    pub async fn stop_producers(&mut self) -> anyhow::Result<ProducerTally> {
        self.stop_producers.send_replace(true);
        let mut total = ProducerTally::default();
        for task in self.producers.drain(..) {
            let tally = task.await.context("producer task panicked")??;
            total.rebuilt += tally.rebuilt;
            total.stuck += tally.stuck;
        }
        Ok(total)
    }

    /// Waits (up to `limit`) until every consumer has read every partition up to its
    /// current end, then stops the consumers. Call after [`Workload::stop_producers`].
    pub async fn catch_up(&mut self, limit: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let client = connect(&self.config, "catch-up").await?;
        let ends = end_offsets(&client, &self.config, limit).await?;
        let mut behind = Vec::new();
        loop {
            behind.clear();
            let mut stopped = false;
            for consumer in &self.consumers {
                for (partition, end) in ends.iter().enumerate() {
                    let position = consumer
                        .positions
                        .get(partition)
                        .map_or(0, |position| position.load(Ordering::SeqCst));
                    if position < *end {
                        behind.push(format!(
                            "{} at {}/{partition}@{position} of {end}",
                            consumer.process, self.config.topic
                        ));
                    }
                }
                stopped |= consumer.task.is_finished(); // its error is reported below
            }
            if behind.is_empty() || stopped || started.elapsed() > limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stop_consumers.send_replace(true);
        let mut errors = Vec::new();
        for consumer in self.consumers.drain(..) {
            match consumer.task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => errors.push(format!("{}: {error:#}", consumer.process)),
                Err(error) => errors.push(format!("{}: {error}", consumer.process)),
            }
        }
        if !errors.is_empty() {
            bail!("consumers failed: {}", errors.join("; "));
        }
        if !behind.is_empty() {
            bail!(
                "consumers did not catch up within {limit:?}: {}",
                behind.join(", ")
            );
        }
        Ok(())
    }
}

impl Drop for Workload {
    /// A test that fails early leaves no clients running.
    fn drop(&mut self) {
        self.stop_producers.send_replace(true);
        self.stop_consumers.send_replace(true);
        for task in &self.producers {
            task.abort();
        }
        for consumer in &self.consumers {
            consumer.task.abort();
        }
    }
}

/// The end offset of every partition of the workload's topic, retried until `limit`
/// (the broker may have just restarted).
pub async fn end_offsets(
    client: &Client,
    config: &WorkloadConfig,
    limit: Duration,
) -> anyhow::Result<Vec<i64>> {
    let started = Instant::now();
    let admin = client.admin();
    let mut ends = Vec::new();
    for partition in 0..config.partitions {
        loop {
            match admin
                .list_offsets(&config.topic, partition, OffsetSpec::Latest)
                .await
            {
                Ok((end, _)) => {
                    ends.push(end);
                    break;
                }
                Err(_) if started.elapsed() < limit => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => {
                    return Err(error).context(format!("list offsets of partition {partition}"))
                }
            }
        }
    }
    Ok(ends)
}

/// Reads every partition from its start to its current end with a fresh consumer and
/// records each record as [`Event::FinalRead`] under `process`. Returns the number of
/// records read. Fails when the read does not reach the end within `limit`.
pub async fn final_read(
    config: &WorkloadConfig,
    recorder: &Recorder,
    process: &str,
    limit: Duration,
) -> anyhow::Result<usize> {
    let started = Instant::now();
    let client = connect(config, process).await?;
    let ends = end_offsets(&client, config, limit).await?;
    let assignment: Vec<(String, i32)> = (0..config.partitions)
        .map(|partition| (config.topic.clone(), partition))
        .collect();
    let mut consumer = client
        .consumer()
        .assign(assignment)
        .start(Offset::Earliest)
        .build()
        .await
        .context("build the final reader")?;
    let reached = |consumer: &strata_client::Consumer| {
        ends.iter().enumerate().all(|(partition, end)| {
            i32::try_from(partition).is_ok_and(|partition| {
                consumer
                    .position(&config.topic, partition)
                    .is_some_and(|position| position >= *end)
            })
        })
    };
    let mut count = 0;
    while !reached(&consumer) {
        let left = limit.saturating_sub(started.elapsed());
        let record = match tokio::time::timeout(left, consumer.next()).await {
            Err(_) => bail!("the final read did not reach the ends {ends:?} within {limit:?}"),
            Ok(None) => bail!("the final reader's stream ended"),
            Ok(Some(record)) => record.context("final read")?,
        };
        let value = parse_value(&record)?;
        recorder.record(
            process,
            Event::FinalRead {
                partition: config.topic_partition(record.partition),
                offset: record.offset,
                value,
            },
        );
        count += 1;
    }
    consumer.close().await?;
    Ok(count)
}

fn parse_value(record: &strata_client::ConsumedRecord) -> anyhow::Result<Value> {
    let bytes = record.value.as_deref().unwrap_or_default();
    Value::parse(bytes).with_context(|| {
        format!(
            "{}/{}@{} holds {:?}, not a value of this test",
            record.topic,
            record.partition,
            record.offset,
            String::from_utf8_lossy(bytes)
        )
    })
}

/// One producer task.
struct ProducerLoop {
    client: Client,
    config: Arc<WorkloadConfig>,
    id: u32,
    process: String,
    recorder: Recorder,
    tally: ProducerTally,
}

impl ProducerLoop {
    fn build(&self) -> anyhow::Result<Producer> {
        self.client
            .producer()
            .max_in_flight(self.config.max_in_flight_requests)
            .request_timeout(self.config.request_timeout)
            .delivery_timeout(self.config.delivery_timeout)
            .build()
            .context("build a producer")
    }

    async fn run(mut self, stop: watch::Receiver<bool>) -> anyhow::Result<ProducerTally> {
        let mut rng = StdRng::seed_from_u64(self.config.seed.wrapping_add(u64::from(self.id)));
        let topic: Arc<str> = Arc::from(self.config.topic.as_str());
        let gaps = &self.config.send_gaps_max;
        let gap_max = usize::try_from(self.id)
            .ok()
            .and_then(|id| gaps.get(id % gaps.len().max(1)))
            .copied()
            .unwrap_or_default();
        let mut producer = self.build()?;
        let mut pending = VecDeque::new();
        let mut sequence = 0u64;
        while !*stop.borrow() {
            if pending.len() >= self.config.sends_in_flight {
                self.complete_oldest(&mut pending).await;
                continue;
            }
            if !gap_max.is_zero() {
                tokio::time::sleep(rng.gen_range(Duration::ZERO..=gap_max)).await;
            }
            let value = Value::new(self.id, sequence);
            sequence += 1;
            let partition = self.config.pick_partition(&mut rng);
            let key = format!("k{}", value.sequence % 16);
            self.recorder.record(
                &self.process,
                Event::SendInvoke {
                    value,
                    key: Some(key.clone()),
                    partition: self.config.topic_partition(partition),
                },
            );
            let record = Record::to(&topic)
                .key(key)
                .value(value.encode())
                .partition(partition);
            match producer.enqueue(record) {
                Ok(delivery) => pending.push_back((value, delivery)),
                Err(refused) => {
                    self.failed(value, &refused.error);
                    if matches!(refused.error, Error::BufferFull { .. }) {
                        self.complete_oldest(&mut pending).await;
                        continue;
                    }
                    // Closed after a fatal error: an application builds a new producer.
                    // The old one's sends end first, so the two cannot race.
                    while !pending.is_empty() {
                        self.complete_oldest(&mut pending).await;
                    }
                    self.close(&producer).await;
                    producer = self.build()?;
                    self.tally.rebuilt += 1;
                }
            }
        }
        while !pending.is_empty() {
            self.complete_oldest(&mut pending).await;
        }
        self.close(&producer).await;
        Ok(self.tally)
    }

    async fn complete_oldest(&mut self, pending: &mut VecDeque<(Value, DeliveryFuture)>) {
        let Some((value, delivery)) = pending.pop_front() else {
            return;
        };
        let guard = self.config.completion_guard();
        match tokio::time::timeout(guard, delivery).await {
            Ok(Ok(delivery)) => self.recorder.record(
                &self.process,
                Event::SendOk {
                    value,
                    partition: TopicPartition::new(delivery.topic.clone(), delivery.partition),
                    offset: delivery.offset,
                },
            ),
            Ok(Err(SendError { error, .. })) => self.failed(value, &error),
            Err(_) => {
                self.tally.stuck += 1;
                self.recorder.record(
                    &self.process,
                    Event::ClientError {
                        message: format!("the send of {value} did not complete within {guard:?}"),
                    },
                );
            }
        }
    }

    /// Records the failure as `<error> (<CODE>)`, or `<error> (<CODE>; fatal)` when the
    /// client says retrying cannot help ([`FATAL_SEND_MARK`]).
    fn failed(&self, value: Value, error: &Error) {
        let fatal = if error.is_retriable() {
            ""
        } else {
            FATAL_SEND_MARK
        };
        self.recorder.record(
            &self.process,
            Event::SendFail {
                value,
                outcome: error.outcome(),
                error: format!("{error} ({}{fatal})", error.code_name()),
            },
        );
    }

    /// Closes a producer whose sends have all completed; a failure (the fatal error it
    /// stopped on) is only recorded.
    async fn close(&self, producer: &Producer) {
        let guard = self.config.completion_guard();
        let message = match tokio::time::timeout(guard, producer.close()).await {
            Ok(Ok(())) => return,
            Ok(Err(error)) => format!("closing the producer: {error} ({})", error.code_name()),
            Err(_) => format!("closing the producer took over {guard:?}"),
        };
        self.recorder
            .record(&self.process, Event::ClientError { message });
    }
}

/// One consumer task.
struct Consumer {
    client: Client,
    config: Arc<WorkloadConfig>,
    process: String,
    recorder: Recorder,
    positions: Arc<Vec<AtomicI64>>,
}

impl Consumer {
    async fn run(self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let assignment: Vec<(String, i32)> = (0..self.config.partitions)
            .map(|partition| (self.config.topic.clone(), partition))
            .collect();
        let mut consumer = self
            .client
            .consumer()
            .assign(assignment)
            .start(Offset::Earliest)
            .max_wait(Duration::from_millis(200))
            .build()
            .await
            .with_context(|| format!("build {}", self.process))?;
        loop {
            let item = tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => break,
                item = consumer.next() => item,
            };
            match item {
                None => bail!("{}: the consumer stream ended", self.process),
                Some(Ok(record)) => {
                    let value = parse_value(&record)?;
                    self.recorder.record(
                        &self.process,
                        Event::Poll {
                            partition: self.config.topic_partition(record.partition),
                            offset: record.offset,
                            value,
                        },
                    );
                    let position = usize::try_from(record.partition)
                        .ok()
                        .and_then(|index| self.positions.get(index));
                    if let Some(position) = position {
                        position.store(record.offset + 1, Ordering::SeqCst);
                    }
                }
                Some(Err(error)) => self.recover(&mut consumer, &error).await,
            }
        }
        consumer.close().await?;
        Ok(())
    }

    /// An error item stops its partition until a seek: seek every partition to where it
    /// is, so reading goes on (the error stays in the history).
    async fn recover(&self, consumer: &mut strata_client::Consumer, error: &Error) {
        self.recorder.record(
            &self.process,
            Event::ClientError {
                message: format!("poll: {error} ({})", error.code_name()),
            },
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        for partition in 0..self.config.partitions {
            let Some(position) = consumer.position(&self.config.topic, partition) else {
                continue;
            };
            let topic = self.config.topic.clone();
            if let Err(error) = consumer.seek(&topic, partition, Offset::At(position)).await {
                self.recorder.record(
                    &self.process,
                    Event::ClientError {
                        message: format!("seek {topic}/{partition}@{position}: {error}"),
                    },
                );
            }
        }
    }
}
