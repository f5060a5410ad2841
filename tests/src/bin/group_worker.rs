//! A consumer-group member that dies on purpose, for fault-matrix row 12
//! (`tests/tests/group_crash_redelivery.rs`).
//!
//! ```text
//! group_worker <broker> <topic> <group> <before-commit|before-processing> <events-file> <seed>
//! ```
//!
//! It joins `group` on `topic` with `CommitMode::Manual` and loops: poll a batch (1 to 64
//! records, size chosen by the seed), then
//!
//! - `before-commit`: process the batch, then `commit().await`;
//! - `before-processing`: `commit().await`, then process the batch.
//!
//! Once it has polled a number of records the seed chooses (its budget), it calls
//! `std::process::abort()` inside the batch that crosses the budget: after processing a
//! seeded number of its records and before the commit (`before-commit`), or after the
//! commit and before the batch's last record is processed (`before-processing`). It never
//! exits on its own otherwise: a poll that finds nothing writes `idle`, and the test kills
//! the last worker once its commits reached every partition's end and it is idle.
//!
//! Every step is appended to `events-file` as one line written with one `write` before
//! the next step (the format is in `strata_tests::group_crash`). Processing a record is
//! writing its `processed` line: that is the side effect whose loss or repetition the
//! test counts.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata_client::consumer::RebalanceEvent;
use strata_client::{Client, CommitMode, ConsumedRecord, Consumer, Offset};
use strata_tests::group_crash::{CrashMode, Event, IDLE};
use tokio_stream::StreamExt;

/// How long the first record of a batch is waited for before the loop looks again.
const FIRST_RECORD_WAIT: Duration = Duration::from_millis(500);
/// How long each further record of a batch is waited for.
const NEXT_RECORD_WAIT: Duration = Duration::from_millis(20);
const BATCH_MAX: usize = 64;
/// The budget (records polled before the crash) is drawn from this range.
const BUDGET: std::ops::RangeInclusive<usize> = 1..=700;

struct Log {
    file: File,
}

impl Log {
    /// Appends one line with one `write`: a process killed afterwards leaves it whole.
    fn line(&mut self, text: &str) -> anyhow::Result<()> {
        self.file
            .write_all(format!("{text}\n").as_bytes())
            .context("write the event file")
    }

    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        self.line(&event.to_string())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [broker, topic, group, mode, events, seed] = args.as_slice() else {
        bail!(
            "usage: group_worker <broker> <topic> <group> <before-commit|before-processing> \
             <events-file> <seed>"
        );
    };
    let Some(mode) = CrashMode::parse(mode) else {
        bail!("unknown crash mode {mode:?}");
    };
    let seed: u64 = seed.parse().context("the seed is a number")?;
    let mut rng = StdRng::seed_from_u64(seed);
    let budget = rng.gen_range(BUDGET);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(events)
        .with_context(|| format!("open {events}"))?;
    let mut log = Log { file };
    log.line(&format!(
        "start pid {} seed {seed} budget {budget}",
        std::process::id()
    ))?;

    let client = Client::builder()
        .brokers([broker.clone()])
        .client_id(format!("group-worker-{}", std::process::id()))
        .request_timeout(Duration::from_secs(10))
        .build()
        .await?;
    let mut consumer = client
        .consumer()
        .topics([topic.as_str()])
        .group(group.as_str())
        .start(Offset::Earliest)
        .commit(CommitMode::Manual)
        .max_wait(Duration::from_millis(100))
        .build()
        .await?;
    let mut rebalances = consumer
        .rebalance_events()
        .context("a group consumer has rebalance events")?;

    let mut polled_total = 0_usize;
    loop {
        let wanted = rng.gen_range(1..=BATCH_MAX);
        let mut batch: Vec<ConsumedRecord> = Vec::with_capacity(wanted);
        while batch.len() < wanted {
            let wait = if batch.is_empty() {
                FIRST_RECORD_WAIT
            } else {
                NEXT_RECORD_WAIT
            };
            let next = tokio::time::timeout(wait, consumer.next()).await;
            // Events come before the records they concern: a partition revoked or lost
            // during this poll is released before any record polled after it.
            while let Some(event) = rebalances.try_recv() {
                if let RebalanceEvent::Revoked(partitions) | RebalanceEvent::Lost(partitions) =
                    event
                {
                    for (_, partition) in partitions {
                        log.event(&Event::Released { partition })?;
                    }
                }
            }
            match next {
                Err(_) => break,
                Ok(None) => bail!("the consumer's stream ended"),
                Ok(Some(Err(error))) => bail!("poll failed: {error}"),
                Ok(Some(Ok(record))) => {
                    log.event(&Event::Polled {
                        partition: record.partition,
                        offset: record.offset,
                    })?;
                    batch.push(record);
                }
            }
        }
        if batch.is_empty() {
            log.line(IDLE)?;
            continue;
        }
        polled_total += batch.len();
        let crash = polled_total >= budget;
        match mode {
            CrashMode::BeforeCommit => {
                let cut = if crash {
                    rng.gen_range(0..=batch.len())
                } else {
                    batch.len()
                };
                process(&mut log, &batch[..cut])?;
                if crash {
                    std::process::abort();
                }
                commit(&mut log, &mut consumer, topic, &batch).await?;
            }
            CrashMode::BeforeProcessing => {
                commit(&mut log, &mut consumer, topic, &batch).await?;
                let cut = if crash {
                    rng.gen_range(0..batch.len())
                } else {
                    batch.len()
                };
                process(&mut log, &batch[..cut])?;
                if crash {
                    std::process::abort();
                }
            }
        }
    }
}

fn process(log: &mut Log, records: &[ConsumedRecord]) -> anyhow::Result<()> {
    for record in records {
        log.event(&Event::Processed {
            partition: record.partition,
            offset: record.offset,
        })?;
    }
    Ok(())
}

/// `commit().await`, then one `committed` line per partition of `batch` the consumer still
/// holds: Manual mode commits the position after the last record yielded, for each
/// partition assigned.
async fn commit(
    log: &mut Log,
    consumer: &mut Consumer,
    topic: &str,
    batch: &[ConsumedRecord],
) -> anyhow::Result<()> {
    let assigned = consumer.assignment();
    if let Err(error) = consumer.commit().await {
        log.event(&Event::CommitFailed(error.code_name().to_owned()))?;
        bail!("commit failed: {error}");
    }
    let mut partitions: Vec<i32> = batch.iter().map(|record| record.partition).collect();
    partitions.sort_unstable();
    partitions.dedup();
    for partition in partitions {
        if !assigned.contains(&(topic.to_owned(), partition)) {
            continue;
        }
        let Some(next) = consumer.position(topic, partition) else {
            continue;
        };
        log.event(&Event::Committed { partition, next })?;
    }
    Ok(())
}
