//! `strata bench delay`: how late delayed records arrive (`docs/DELAYED_DELIVERY.md`).
//!
//! One producer sends `--rate` records a second for `--duration`, each with
//! `deliver_after(--delay)`, to a topic with `delivery_delay_enabled=true`; a consumer
//! in the same process (a member of a new group, or with `--assign` every partition by
//! hand) reads them. For each record, lateness = the consumer's wall clock when the
//! record is yielded − the due time in its `strata.deliver-at-ms` header (the producer's
//! wall clock; one process, so one clock). A record yielded before its due time counts
//! as *early* and fails the run, as does a record not received within `--drain` after
//! its due time. Prints the lateness percentiles (from every record; microseconds on the
//! consumer's side, the due time itself has millisecond resolution).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Args;
use strata_client::delayed_delivery::deliver_at_ms;
use strata_client::{Client, Consumer, NewTopic, Offset, OffsetSpec, Record};
use tokio::time::Instant;
use tokio_stream::StreamExt;

use super::super::{client_error, Context};
use crate::duration::parse_duration_arg;
use crate::exit::{CliError, ExitStatus};
use crate::output::{status, OutputFormat};

/// `bench delay`.
#[derive(Debug, Args)]
pub struct DelayBenchArgs {
    /// Topic to use (created with --create, with delivery.delay.enabled=true)
    #[arg(long, default_value = "strata-bench-delay")]
    pub topic: String,
    /// Create the topic when it does not exist
    #[arg(long)]
    pub create: bool,
    /// Partitions of a created topic
    #[arg(short = 'p', long, default_value_t = 6)]
    pub partitions: i32,
    /// Records per second
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// How long to send
    #[arg(long, default_value = "30s", value_parser = parse_duration_arg)]
    pub duration: Duration,
    /// The delay of every record (deliver_after)
    #[arg(long, default_value = "2s", value_parser = parse_duration_arg)]
    pub delay: Duration,
    /// Bytes of each record's value
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// How long after the last due time to wait for missing records
    #[arg(long, default_value = "10s", value_parser = parse_duration_arg)]
    pub drain: Duration,
    /// Read with every partition assigned by hand instead of as a group member
    #[arg(long)]
    pub assign: bool,
}

/// What the consumer saw.
#[derive(Debug, Default)]
struct Lateness {
    /// Microseconds after the due time, one per on-time record.
    late_us: Vec<u64>,
    early: u64,
}

pub async fn run(context: &mut Context, args: DelayBenchArgs) -> Result<ExitStatus, CliError> {
    let client = context.client.clone();
    prepare(&client, &args).await?;
    let starts = end_offsets(&client, &args.topic).await?;
    let mut consumer = consumer(&client, &args).await?;
    status!(
        "bench delay: topic {}, {} records/s for {:?}, deliver_after {:?}, {} B values, {}",
        args.topic,
        args.rate,
        args.duration,
        args.delay,
        args.record_size,
        if args.assign {
            "assigned consumer"
        } else {
            "group consumer"
        }
    );
    let sender = tokio::spawn(produce(
        client.clone(),
        args.topic.clone(),
        args.rate,
        args.duration,
        args.delay,
        args.record_size,
    ));
    let deadline = Instant::now() + args.duration + args.delay + args.drain;
    let mut lateness = Lateness::default();
    let mut received = 0u64;
    let mut expected: Option<u64> = None;
    let mut sender = Some(sender);
    while expected.is_none_or(|expected| received < expected) && Instant::now() < deadline {
        if sender.as_ref().is_some_and(|task| task.is_finished()) {
            if let Some(task) = sender.take() {
                let (acknowledged, failed) = task.await.map_err(|error| {
                    CliError::failure("BENCH", format!("producer task: {error}"))
                })?;
                if failed > 0 {
                    status!("{failed} sends failed");
                }
                expected = Some(acknowledged);
            }
        }
        let next = tokio::time::timeout(Duration::from_millis(100), consumer.next()).await;
        let Ok(Some(record)) = next else { continue };
        let record = record.map_err(client_error)?;
        let consumed_us = wall_us();
        let below_start = starts
            .get(usize::try_from(record.partition).unwrap_or(usize::MAX))
            .is_some_and(|start| record.offset < *start);
        let Some(due_ms) = deliver_at_ms(&record).filter(|_| !below_start) else {
            continue;
        };
        received += 1;
        let due_us = due_ms.saturating_mul(1000);
        match u64::try_from(consumed_us - due_us) {
            Ok(late_us) => lateness.late_us.push(late_us),
            Err(_) => lateness.early += 1,
        }
    }
    let expected = expected.unwrap_or(0);
    let _ = consumer.close().await;
    report(context, &args, &mut lateness, received, expected)
}

async fn prepare(client: &Client, args: &DelayBenchArgs) -> Result<(), CliError> {
    let admin = client.admin();
    match admin.describe_topic(&args.topic).await {
        Ok(_) => Ok(()),
        Err(error) if error.code_name() == "UNKNOWN_TOPIC_OR_PARTITION" && args.create => {
            let topic = NewTopic::new(&args.topic)
                .partitions(args.partitions)
                .config("delivery_delay_enabled", "true");
            admin.create_topic(topic).await.map_err(client_error)?;
            Ok(())
        }
        Err(error) => Err(client_error(error)),
    }
}

async fn end_offsets(client: &Client, topic: &str) -> Result<Vec<i64>, CliError> {
    let description = client
        .admin()
        .describe_topic(topic)
        .await
        .map_err(client_error)?;
    let mut ends = Vec::new();
    for partition in &description.partitions {
        let (end, _) = client
            .admin()
            .list_offsets(topic, partition.partition, OffsetSpec::Latest)
            .await
            .map_err(client_error)?;
        ends.push(end);
    }
    Ok(ends)
}

async fn consumer(client: &Client, args: &DelayBenchArgs) -> Result<Consumer, CliError> {
    let builder = client.consumer().topics([args.topic.as_str()]);
    let builder = if args.assign {
        builder.start(Offset::Latest)
    } else {
        // A new group: it starts at the log start, and records below the end offsets
        // seen before sending are skipped.
        builder
            .group(format!("strata-bench-delay-{}", wall_us()))
            .start(Offset::Earliest)
    };
    builder.build().await.map_err(client_error)
}

/// Sends `rate` records a second for `duration` on a fixed schedule; returns how many
/// were acknowledged and how many failed.
async fn produce(
    client: Client,
    topic: String,
    rate: u32,
    duration: Duration,
    delay: Duration,
    record_size: usize,
) -> (u64, u64) {
    let Ok(producer) = client.producer().linger(Duration::ZERO).build() else {
        return (0, 1);
    };
    let value = Bytes::from(vec![b'x'; record_size]);
    let total = u64::from(rate).saturating_mul(duration.as_secs()).max(1);
    let interval = Duration::from_secs(1) / rate.max(1);
    let start = Instant::now();
    let mut pending = Vec::new();
    let mut failed = 0;
    for index in 0..total {
        tokio::time::sleep_until(start + interval * u32::try_from(index).unwrap_or(u32::MAX)).await;
        let record = Record::to(&topic)
            .key(index.to_string())
            .value(value.clone())
            .deliver_after(delay);
        match producer.enqueue(record) {
            Ok(future) => pending.push(future),
            Err(_) => failed += 1,
        }
    }
    let mut acknowledged = 0;
    for future in pending {
        match future.await {
            Ok(_) => acknowledged += 1,
            Err(_) => failed += 1,
        }
    }
    let _ = producer.close().await;
    (acknowledged, failed)
}

fn report(
    context: &mut Context,
    args: &DelayBenchArgs,
    lateness: &mut Lateness,
    received: u64,
    expected: u64,
) -> Result<ExitStatus, CliError> {
    lateness.late_us.sort_unstable();
    let percentile = |fraction: f64| -> f64 {
        let late = &lateness.late_us;
        let rank = ((late.len() as f64 * fraction).ceil() as usize).clamp(1, late.len().max(1)) - 1;
        late.get(rank).map_or(0.0, |us| *us as f64 / 1000.0)
    };
    let missing = expected.saturating_sub(received);
    let (p50, p99, p999, max) = (
        percentile(0.50),
        percentile(0.99),
        percentile(0.999),
        percentile(1.0),
    );
    let text = match context.format() {
        OutputFormat::Json => serde_json::json!({
            "topic": args.topic, "rate": args.rate, "duration_ms": args.duration.as_millis() as u64,
            "delay_ms": args.delay.as_millis() as u64, "received": received, "expected": expected,
            "early": lateness.early, "missing": missing,
            "lateness_ms": {"p50": p50, "p99": p99, "p999": p999, "max": max},
        })
        .to_string(),
        _ => format!(
            "{received} delayed records received of {expected} acknowledged, {} early, {missing} missing; \
             lateness (consumed - due): p50 {p50:.2} ms, p99 {p99:.2} ms, p99.9 {p999:.2} ms, max {max:.2} ms",
            lateness.early
        ),
    };
    context.print(&format!("{text}\n"))?;
    Ok(if lateness.early > 0 || missing > 0 || expected == 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// Microseconds since the Unix epoch, by the wall clock.
fn wall_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
        })
}
