//! The collector of one producer: a task that owns every outstanding delivery of its
//! producer (`FuturesUnordered`, so they are polled together and each is seen the moment
//! it completes, whichever partition answers first), records each one's latency from its
//! start time, counts acknowledgements per partition, and reopens the generator's window.

use std::sync::Arc;
use std::task::Poll;
use std::thread::Thread;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt as _};
use strata_client::{Delivery, DeliveryFuture};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::producer::{InFlight, ProducerOutcome, Window};
use super::stats::{Recorder, Sample};
use crate::output::status;

/// Individual errors printed before only counting them.
const ERRORS_PRINTED_MAX: u64 = 5;

/// The outcome of one delivery and the moments that measure it.
struct Tracked {
    delivery: DeliveryFuture,
    started: Instant,
    send_delay: Option<Duration>,
}

type TrackedOutput = (
    Result<Delivery, strata_client::Error>,
    Instant,
    Option<Duration>,
);

impl std::future::Future for Tracked {
    type Output = TrackedOutput;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> Poll<TrackedOutput> {
        std::pin::Pin::new(&mut self.delivery)
            .poll(context)
            .map(|result| {
                let result = result.map_err(|error| error.error);
                (result, self.started, self.send_delay)
            })
    }
}

pub(super) async fn collect(
    mut handoff: mpsc::Receiver<Vec<InFlight>>,
    mut recorder: Recorder,
    window: Arc<Window>,
    generator: Thread,
    value_bytes: u64,
    wire_bytes: u64,
) -> ProducerOutcome {
    let mut outcome = ProducerOutcome::default();
    let mut pending: FuturesUnordered<Tracked> = FuturesUnordered::new();
    let mut open = true;
    let mut immediate_failures = Vec::new();
    loop {
        tokio::select! {
            biased;
            Some((result, started, send_delay)) = pending.next(), if !pending.is_empty() => {
                let now = Instant::now();
                match result {
                    Ok(delivery) => {
                        count_partition(&mut outcome.delivered, delivery.partition);
                        recorder.success(now, Sample {
                            value_bytes,
                            wire_bytes,
                            latency_micros: Some(micros(now.saturating_duration_since(started))),
                            send_delay_micros: send_delay.map(micros),
                        });
                    }
                    Err(error) => fail(&mut recorder, &mut outcome, &error),
                }
                outcome.finished_at = Some(now);
                if window.complete_one() {
                    generator.unpark();
                }
            }
            batch = handoff.recv(), if open => match batch {
                Some(batch) => {
                    for in_flight in batch {
                        match in_flight.delivery {
                            Ok(delivery) => pending.push(Tracked {
                                delivery,
                                started: in_flight.started,
                                send_delay: in_flight.send_delay,
                            }),
                            Err(error) => immediate_failures.push(error),
                        }
                    }
                    for error in immediate_failures.drain(..) {
                        fail(&mut recorder, &mut outcome, &error);
                        if window.complete_one() {
                            generator.unpark();
                        }
                    }
                }
                None => open = false,
            },
            else => break,
        }
    }
    outcome
}

fn fail(recorder: &mut Recorder, outcome: &mut ProducerOutcome, error: &strata_client::Error) {
    recorder.error();
    outcome.failed += 1;
    if outcome.failed <= ERRORS_PRINTED_MAX {
        status!(
            "error: record not delivered: {error} ({})",
            error.code_name()
        );
    }
    if outcome.failed == ERRORS_PRINTED_MAX {
        status!("(further delivery errors are only counted)");
    }
}

fn count_partition(counts: &mut Vec<u64>, partition: i32) {
    let Ok(index) = usize::try_from(partition) else {
        return;
    };
    if counts.len() <= index {
        counts.resize(index + 1, 0);
    }
    counts[index] += 1;
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
