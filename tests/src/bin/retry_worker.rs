//! A group member with a retry policy that the test SIGKILLs at a random point, for the
//! crash test of retry topics (`tests/tests/retry_crash.rs`).
//!
//! ```text
//! retry_worker <broker> <topic> <group> <events-file>
//! ```
//!
//! It joins `group` on `topic` with `strata_tests::retry_crash::policy()` (3 attempts,
//! waits of 100 and 200 ms) and `CommitMode::Auto` every 100 ms, so the library commits
//! while hand-offs are in flight, and runs `Consumer::run` with a handler that fails
//! records by their id (`strata_tests::retry_crash::fails`). It never exits on its own.
//!
//! Each handler call appends one line to `events-file` with one `write` before it
//! returns (the format is in `strata_tests::retry_crash`); so does each partition a
//! rebalance takes away. Writing the `handled ok` line is the processing whose loss or
//! repetition the test counts.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context};
use strata_client::consumer::{RebalanceEvent, RebalanceEvents};
use strata_client::retry_topics::attempts_made;
use strata_client::{Client, CommitMode, ConsumedRecord, HandlerError, Offset};
use strata_tests::retry_crash::{
    fails, policy, Class, Event, Instance, ALWAYS_MESSAGE, ONCE_MESSAGE,
};

/// How often the library commits what was handled.
const COMMIT_INTERVAL: Duration = Duration::from_millis(100);

struct Log {
    file: File,
}

impl Log {
    /// Appends one line with one `write`: a process killed afterwards leaves it whole.
    /// A worker that cannot write its history is useless to the test: it aborts, which
    /// the test reports (it expects to kill the worker itself).
    fn line(&mut self, text: &str) {
        if let Err(error) = self.file.write_all(format!("{text}\n").as_bytes()) {
            eprintln!("write the event file: {error}");
            std::process::abort();
        }
    }

    /// Lines for the partitions rebalances took away since the last call.
    fn rebalances(&mut self, events: &mut RebalanceEvents) {
        while let Some(event) = events.try_recv() {
            match event {
                RebalanceEvent::Revoked(partitions) | RebalanceEvent::Lost(partitions) => {
                    for partition in partitions {
                        self.line(&Event::Released(partition).to_string());
                    }
                }
                RebalanceEvent::Assigned(partitions) => {
                    for (topic, partition) in partitions {
                        self.line(&format!("assigned {topic} {partition}"));
                    }
                }
                other => self.line(&format!("rebalance {other:?}")),
            }
        }
    }
}

/// The handler: logs the call, then succeeds or fails the record by its id.
fn handle(log: &mut Log, record: &ConsumedRecord) -> Result<(), HandlerError> {
    let value = record.value.as_deref().unwrap_or_default();
    let Some(id) = std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
    else {
        log.line(&format!(
            "unreadable {} {} {}",
            record.topic, record.partition, record.offset
        ));
        return Err(HandlerError::msg("the value is not an id"));
    };
    let attempts_before = attempts_made(record);
    let fail = fails(id, attempts_before);
    let event = Event::Handled {
        ok: !fail,
        id,
        record: Instance {
            topic: record.topic.to_string(),
            partition: record.partition,
            offset: record.offset,
        },
        attempts_before,
    };
    log.line(&event.to_string());
    match (fail, Class::of(id)) {
        (false, _) => Ok(()),
        (true, Class::FailOnce) => Err(HandlerError::msg(ONCE_MESSAGE)),
        (true, _) => Err(HandlerError::new(std::io::Error::other(ALWAYS_MESSAGE))),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [broker, topic, group, events] = args.as_slice() else {
        bail!("usage: retry_worker <broker> <topic> <group> <events-file>");
    };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(events)
        .with_context(|| format!("open {events}"))?;
    let mut log = Log { file };
    log.line(&format!("start pid {}", std::process::id()));

    let client = Client::builder()
        .brokers([broker.clone()])
        .client_id(format!("retry-worker-{}", std::process::id()))
        .request_timeout(Duration::from_secs(10))
        .build()
        .await?;
    let mut consumer = client
        .consumer()
        .topics([topic.as_str()])
        .group(group.as_str())
        .start(Offset::Earliest)
        .commit(CommitMode::Auto {
            interval: COMMIT_INTERVAL,
        })
        .max_wait(Duration::from_millis(100))
        .retry(policy())
        .build()
        .await?;
    let mut rebalances = consumer
        .rebalance_events()
        .context("a group consumer has rebalance events")?;
    consumer
        .run(|record| {
            // Events come before the records they concern: a partition lost during this
            // poll is released before any record polled after it.
            log.rebalances(&mut rebalances);
            std::future::ready(handle(&mut log, &record))
        })
        .await?;
    bail!("the consumer's stream ended")
}
