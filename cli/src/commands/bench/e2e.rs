//! `bench e2e`: producers and consumers in one process, so publish latency (send → ack)
//! and end-to-end latency (send → receipt) share one monotonic clock.
//!
//! Order matters: the consumers are positioned at the end offsets *before* the first
//! record is sent, so they see every record of the run and nothing older. When every
//! producer's last delivery has completed, the consumers get `--drain` to catch up; then
//! each partition's received count is compared with its acknowledged count, and whatever
//! is short is *missing* (the run fails). Records of other writers (no `strata.bench.ts`
//! header) are ignored.

use std::time::Duration;

use strata_client::Offset;
use tokio::sync::watch;
use tokio::time::Instant;

use super::args::BenchSpec;
use super::consumer::{self, ConsumerPlan, PartitionRange};
use super::outcome::{Measured, SideResult};
use super::params::{SplitSettings, TopicFacts};
use super::progress::{self, Watched};
use super::report::Verb;
use super::setup::{self, ProducerLaunch};
use super::stats::Side;
use super::workload::BenchClock;
use super::{task_failed, Stopper, Timing};
use crate::commands::Context;
use crate::exit::CliError;
use crate::output::status;

/// How often the drain checks whether everything arrived.
const DRAIN_POLL: Duration = Duration::from_millis(5);

pub async fn run(
    context: &Context,
    spec: &BenchSpec,
    settings: &SplitSettings,
    topic: &TopicFacts,
    mut launch: ProducerLaunch,
    stopper: &Stopper,
) -> Result<Measured, CliError> {
    let clock = BenchClock::new(Instant::now());
    launch.clock = Some(clock);
    let template = ConsumerPlan {
        topic: spec.run.topic.clone(),
        partitions: Vec::new(),
        start: Offset::Latest,
        clock: Some(clock),
        budget: None,
    };
    let partitions: Vec<PartitionRange> = topic
        .partitions
        .iter()
        .map(|&partition| PartitionRange {
            partition,
            stop_offset: None,
        })
        .collect();
    let shares = consumer::split_partitions(&partitions, usize::from(spec.consumers));
    // Positioned at the end offsets now, before anything is produced.
    let ready =
        setup::prepare_consumers(&context.global, &settings.consumer, shares, &template).await?;
    let producers = setup::build_producers(&context.global, &launch).await?;
    let publish = Side::new()?;
    let end_to_end = Side::new()?;
    let timing = Timing::starting_now(spec);
    let (done, done_receiver) = watch::channel(false);
    let progress = progress::spawn(
        Watched {
            primary: publish.clone(),
            primary_verb: Verb::Sent,
            secondary: Some(end_to_end.clone()),
            start: timing.start,
            warmup_end: timing.warmup_end,
            goal: timing.goal(spec.run.records),
        },
        done_receiver,
    );
    let consumers =
        setup::start_consumers(ready, &end_to_end, timing.warmup_end, &stopper.reading());
    let running = setup::start_producers(
        &spec.run.topic,
        producers,
        &launch,
        &publish,
        timing,
        stopper.sending(),
    )?;
    let mut delivered: Vec<u64> = Vec::new();
    let (mut published_at, mut failed) = (None, 0);
    for producer in running {
        let outcome = producer.finish().await;
        add_counts(&mut delivered, &outcome.delivered);
        published_at = published_at.max(outcome.finished_at);
        failed += outcome.failed;
    }
    drain(&end_to_end, delivered.iter().sum(), spec.drain).await;
    stopper.stop_reading();
    let mut received: Vec<u64> = Vec::new();
    let (mut received_at, mut consume_errors) = (None, 0);
    for task in consumers {
        let outcome = task.await.map_err(task_failed)?;
        add_counts(&mut received, &outcome.received);
        received_at = received_at.max(outcome.finished_at);
        consume_errors += outcome.errors;
    }
    let _ = done.send(true);
    let progress = progress.await.map_err(task_failed)?;
    let missing = missing(&delivered, &received);
    if missing > 0 {
        status!(
            "error: {missing} acknowledged records were not received within {:?} after the last delivery",
            spec.drain
        );
    }
    let (publish_warmup, e2e_warmup) = match progress.at_warmup_end {
        Some((publish, e2e)) => (Some(publish), e2e),
        None => (None, None),
    };
    Ok(Measured {
        primary: SideResult::collect(
            &publish,
            publish_warmup,
            timing.warmup_end,
            published_at,
            true,
        ),
        secondary: Some(SideResult::collect(
            &end_to_end,
            e2e_warmup,
            timing.warmup_end,
            received_at,
            true,
        )),
        series: progress.series,
        errors: failed + consume_errors,
        missing: Some(missing),
        timing,
        group: None,
    })
}

/// Waits until `expected` records were received or `drain` passed.
async fn drain(end_to_end: &Side, expected: u64, drain: Duration) {
    let deadline = Instant::now() + drain;
    while end_to_end.totals().records < expected && Instant::now() < deadline {
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

fn add_counts(sum: &mut Vec<u64>, counts: &[u64]) {
    if sum.len() < counts.len() {
        sum.resize(counts.len(), 0);
    }
    for (total, count) in sum.iter_mut().zip(counts) {
        *total += count;
    }
}

/// Acknowledged records not received, per partition, summed; extra receipts on one
/// partition (duplicates after a retry) do not hide a loss on another.
fn missing(delivered: &[u64], received: &[u64]) -> u64 {
    delivered
        .iter()
        .enumerate()
        .map(|(partition, &acknowledged)| {
            acknowledged.saturating_sub(received.get(partition).copied().unwrap_or(0))
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_counts_each_partition_on_its_own() {
        assert_eq!(missing(&[10, 10], &[10, 10]), 0);
        assert_eq!(
            missing(&[10, 10], &[12, 7]),
            3,
            "duplicates do not hide a loss"
        );
        assert_eq!(missing(&[5, 5, 5], &[5]), 10);
        let mut sum = vec![1];
        add_counts(&mut sum, &[1, 2]);
        assert_eq!(sum, [2, 2]);
    }
}
