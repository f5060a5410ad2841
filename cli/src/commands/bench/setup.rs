//! Everything before the clock starts: the topic (described, or created with `--create`
//! and then awaited until every replica is in its ISR), one client per producer and per
//! consumer (separate connections, as Kafka's and OMB's parallel clients have), the
//! producers with their settings, the consumers positioned at their start offsets, and
//! the delivery window.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use strata_client::{Acks, Client, Compression, NewTopic, Producer, TopicDescription};
use tokio::sync::watch;
use tokio::time::Instant;

use super::args::{ProducerArgs, Rate, RunArgs, DEFAULT_PARTITIONS, DEFAULT_REPLICATION_FACTOR};
use super::consumer::{self, ConsumerOutcome, ConsumerPlan, PartitionRange, ReadyConsumer};
use super::params::{ProducerSettings, ReplicaCounts, ReplicaState, TopicFacts};
use super::producer::{self, GeneratorPlan, RunningProducer};
use super::stats::Side;
use super::workload::{
    batch_overhead_per_record, record_wire_bytes, BenchClock, KeySource, Pacer, Payload,
    TIMESTAMP_BYTES, TIMESTAMP_HEADER,
};
use super::Timing;
use crate::args::{AcksArg, CompressionArg, GlobalArgs};
use crate::commands::{client_error, Context};
use crate::exit::CliError;
use crate::output::status;

/// The client library's per-record bookkeeping in `buffer.memory` (`Record::memory_bytes`).
const RECORD_MEMORY_OVERHEAD_BYTES: usize = 64;
const HEADER_MEMORY_OVERHEAD_BYTES: usize = 16;
/// Share of `buffer.memory` the window may fill, leaving room for batches being encoded.
const WINDOW_BUFFER_SHARE: f64 = 0.75;
/// How long a bench waits for the replicas of a topic it created to join the ISR; the
/// followers of an idle new partition usually join within a second.
const IN_SYNC_WAIT_MAX: Duration = Duration::from_secs(30);
const IN_SYNC_POLL: Duration = Duration::from_millis(100);
/// A wait at least this long is reported on stderr.
const IN_SYNC_NOTE_AFTER: Duration = Duration::from_millis(500);

/// Describes the topic, creating it first when it is missing and `--create` was given.
pub async fn prepare_topic(context: &Context, run: &RunArgs) -> Result<TopicFacts, CliError> {
    let admin = context.client.admin();
    let topic = &run.topic;
    let describe_error = |error| client_error(error).context(format!("describing topic {topic}"));
    let description = match admin.describe_topic(topic).await {
        Ok(description) => {
            warn_if_shaped_otherwise(run, &description);
            description
        }
        Err(error) if error.code_name() == "UNKNOWN_TOPIC_OR_PARTITION" && run.create => {
            create_topic(context, run).await?;
            wait_in_sync(context, topic).await?
        }
        Err(error) if error.code_name() == "UNKNOWN_TOPIC_OR_PARTITION" => {
            return Err(describe_error(error).with_hint(format!(
                "add --create to create it (-p {DEFAULT_PARTITIONS} -r min({DEFAULT_REPLICATION_FACTOR}, brokers) unless given)"
            )))
        }
        Err(error) => return Err(describe_error(error)),
    };
    Ok(facts(&description))
}

/// A topic that exists is used as it is; say so when `-p` or `-r` asked for another shape.
fn warn_if_shaped_otherwise(run: &RunArgs, description: &TopicDescription) {
    let topic = &run.topic;
    let existing = facts(description);
    if let Some(wanted) = run.partitions {
        if usize::try_from(wanted).ok() != Some(existing.partitions.len()) {
            status!(
                "warning: topic {topic} exists with {} partitions; using it as it is (-p {wanted} ignored)",
                existing.partitions.len()
            );
        }
    }
    if let Some(wanted) = run.replicas {
        if usize::try_from(wanted).ok() != Some(existing.replication_factor) {
            status!(
                "warning: topic {topic} exists with replication factor {}; using it as it is (-r {wanted} ignored)",
                existing.replication_factor
            );
        }
    }
}

/// Describes a topic the bench has just created until every partition has a leader and
/// all its replicas in the ISR, for at most [`IN_SYNC_WAIT_MAX`]. A new partition starts
/// with its leader alone in the ISR, and the followers join as they catch up: measuring
/// before that would time the ISR growing (and `acks=all` below `min.insync.replicas` is
/// refused). Past the bound the run goes on with a warning; `isr_min` in the parameters
/// shows what it ran with.
async fn wait_in_sync(context: &Context, topic: &str) -> Result<TopicDescription, CliError> {
    let admin = context.client.admin();
    let started = Instant::now();
    loop {
        let described = admin.describe_topic(topic).await;
        let gave_up = started.elapsed() >= IN_SYNC_WAIT_MAX;
        match described {
            Ok(description) => {
                let lagging = facts(&description).partitions_out_of_sync;
                if lagging == 0 {
                    if started.elapsed() >= IN_SYNC_NOTE_AFTER {
                        status!(
                            "topic {topic}: every replica in sync after {:.1} s",
                            started.elapsed().as_secs_f64()
                        );
                    }
                    return Ok(description);
                }
                if gave_up {
                    status!(
                        "warning: after {} s, {lagging} of {} partitions of {topic} still lack a leader or an in-sync replica; measuring anyway",
                        IN_SYNC_WAIT_MAX.as_secs(),
                        description.partitions.len()
                    );
                    return Ok(description);
                }
            }
            // The metadata of a topic created a moment ago may not have reached the
            // broker that answers yet.
            Err(error) if error.code_name() == "UNKNOWN_TOPIC_OR_PARTITION" && !gave_up => {}
            Err(error) => {
                return Err(client_error(error).context(format!("describing topic {topic}")))
            }
        }
        tokio::time::sleep(IN_SYNC_POLL).await;
    }
}

async fn create_topic(context: &Context, run: &RunArgs) -> Result<(), CliError> {
    let admin = context.client.admin();
    let replication_factor = match run.replicas {
        Some(replicas) => replicas,
        None => {
            let brokers = admin
                .cluster_info()
                .await
                .map_err(|error| client_error(error).context("reading cluster metadata"))?
                .brokers
                .len();
            DEFAULT_REPLICATION_FACTOR.min(i32::try_from(brokers.max(1)).unwrap_or(1))
        }
    };
    let topic = NewTopic::new(run.topic.clone())
        .partitions(run.partitions.unwrap_or(DEFAULT_PARTITIONS))
        .replication_factor(replication_factor);
    match admin.create_topic(topic).await {
        // Someone else created it meanwhile: use theirs.
        Err(error) if error.code_name() == "TOPIC_ALREADY_EXISTS" => Ok(()),
        result => result
            .map_err(|error| client_error(error).context(format!("creating topic {}", run.topic))),
    }
}

fn facts(description: &TopicDescription) -> TopicFacts {
    let replication = ReplicaCounts::of(description.partitions.iter().map(|p| ReplicaState {
        has_leader: p.leader >= 0,
        replicas: p.replicas.len(),
        in_sync: p.isr.len(),
    }));
    TopicFacts {
        partitions: description.partitions.iter().map(|p| p.partition).collect(),
        replication_factor: replication.replication_factor,
        in_sync_replicas_min: replication.in_sync_min,
        partitions_out_of_sync: replication.out_of_sync,
        flush: description
            .configs
            .iter()
            .find(|config| config.key == "flush")
            .map_or_else(|| "-".to_owned(), |config| config.value.clone()),
    }
}

/// A client of its own for one producer or consumer.
pub async fn connect(global: &GlobalArgs, client_id: String) -> Result<Client, CliError> {
    Client::builder()
        .brokers(global.brokers.iter().cloned())
        .client_id(client_id)
        .connect_timeout(global.timeout)
        .build()
        .await
        .map_err(|error| client_error(error).context("connecting a bench client"))
}

/// Deliveries a producer keeps outstanding: `--window`, or what fits in three quarters of
/// `buffer.memory` by the client's own accounting, so `enqueue` rarely finds it full.
pub fn window(args: &ProducerArgs, settings: &ProducerSettings, topic: &str, e2e: bool) -> u64 {
    if let Some(window) = args.window {
        return window;
    }
    let keys = KeySource::key_bytes_max(args.keys);
    let header = if e2e {
        HEADER_MEMORY_OVERHEAD_BYTES + TIMESTAMP_HEADER.len() + TIMESTAMP_BYTES
    } else {
        0
    };
    let record = RECORD_MEMORY_OVERHEAD_BYTES + topic.len() + keys + args.record_size + header;
    let fitting = settings.buffer_memory_bytes as f64 * WINDOW_BUFFER_SHARE / record as f64;
    (fitting as u64).max(1)
}

/// What every producer of a run shares.
#[derive(Debug, Clone)]
pub struct ProducerLaunch {
    pub args: ProducerArgs,
    /// `-X` settings for producers.
    pub settings: Vec<(String, String)>,
    /// The settings in force, `-X` folded in.
    pub resolved: ProducerSettings,
    pub window: u64,
    /// Records over all producers; `u64::MAX` for a timed run.
    pub records: u64,
    pub clock: Option<BenchClock>,
}

/// Connects and builds every producer (before the clock starts), without sending.
pub async fn build_producers(
    global: &GlobalArgs,
    launch: &ProducerLaunch,
) -> Result<Vec<Producer>, CliError> {
    let mut producers = Vec::new();
    for number in 0..launch.args.producers {
        let client = connect(global, format!("strata-bench-producer-{number}")).await?;
        let mut builder = client
            .producer()
            .acks(match launch.args.acks {
                AcksArg::All => Acks::All,
                AcksArg::Leader => Acks::Leader,
                AcksArg::None => Acks::None,
            })
            .linger(launch.args.linger)
            .batch_size(launch.args.batch_size)
            .compression(match launch.args.compression {
                CompressionArg::None => Compression::None,
                CompressionArg::Lz4 => Compression::Lz4,
                CompressionArg::Zstd => Compression::Zstd,
            });
        for (key, value) in &launch.settings {
            builder = builder.set(key, value);
        }
        producers.push(builder.build().map_err(|error| {
            client_error(error)
                .context("configuring the producer")
                .with_hint("check the -X settings (Kafka producer names such as linger.ms)")
        })?);
    }
    Ok(producers)
}

/// Starts generating on every producer at `start`, until `deadline`.
pub fn start_producers(
    topic: &str,
    producers: Vec<Producer>,
    launch: &ProducerLaunch,
    side: &Side,
    timing: Timing,
    stop: &Arc<AtomicBool>,
) -> Result<Vec<RunningProducer>, CliError> {
    let Timing {
        start,
        warmup_end,
        deadline,
        ..
    } = timing;
    let args = &launch.args;
    let payload = Arc::new(Payload::new(args.record_size));
    let keys = Arc::new(KeySource::new(args.keys));
    let header_sizes = launch
        .clock
        .map(|_| (TIMESTAMP_HEADER.len(), TIMESTAMP_BYTES));
    let record_bytes = record_wire_bytes(
        KeySource::key_bytes_max(args.keys),
        args.record_size,
        header_sizes,
    );
    let wire_bytes_per_record =
        record_bytes as f64 + batch_overhead_per_record(record_bytes, launch.resolved.batch_size);
    let count = u64::from(args.producers.max(1));
    let mut running = Vec::new();
    for (number, producer) in (0_u64..).zip(producers) {
        let quota = match launch.records {
            u64::MAX => u64::MAX,
            records => records / count + u64::from(number < records % count),
        };
        let plan = GeneratorPlan {
            topic: topic.to_owned(),
            payload: payload.clone(),
            keys: keys.clone(),
            pacer: match args.rate {
                Rate::Unlimited => None,
                Rate::PerSecond(rate) => Some(Pacer::new(start, rate, number, count)),
            },
            quota,
            deadline,
            window: launch.window,
            clock: launch.clock,
            wire_bytes_per_record: wire_bytes_per_record.round() as u64,
            seed: rand::random(),
        };
        let started = producer::start(producer, plan, side.recorder(warmup_end), stop.clone())
            .map_err(|error| CliError::io("starting a producer thread", &error))?;
        running.push(started);
    }
    Ok(running)
}

/// Connects every consumer and positions it, each on its share of the partitions.
pub async fn prepare_consumers(
    global: &GlobalArgs,
    settings: &[(String, String)],
    shares: Vec<Vec<PartitionRange>>,
    template: &ConsumerPlan,
) -> Result<Vec<ReadyConsumer>, CliError> {
    let mut ready = Vec::new();
    for (number, partitions) in shares.into_iter().enumerate() {
        let client = connect(global, format!("strata-bench-consumer-{number}")).await?;
        let plan = ConsumerPlan {
            partitions,
            ..template.clone()
        };
        ready.push(consumer::prepare(client, settings, plan).await?);
    }
    Ok(ready)
}

/// Starts every prepared consumer reading.
pub fn start_consumers(
    ready: Vec<ReadyConsumer>,
    side: &Side,
    warmup_end: Instant,
    stop: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<ConsumerOutcome>> {
    ready
        .into_iter()
        .map(|consumer| consumer.spawn(side.recorder(warmup_end), stop.clone()))
        .collect()
}
