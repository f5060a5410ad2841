//! The collector of one producer: a task that owns every outstanding delivery of its
//! producer, records each one's latency from its start time when it completes, counts
//! acknowledgements per partition, and reopens the generator's window.
//!
//! Deliveries wait in one FIFO queue per partition: records of one partition complete in
//! order, so only each queue's head needs polling, and everything ready behind it is taken
//! in the same pass — one wake-up per batch, not per record, and each delivery is seen in
//! the pass after it completed, whichever partition answers first. Deliveries whose
//! partition was not chosen at `enqueue` (the topic's metadata was loading) go to a
//! `FuturesUnordered`.

use std::collections::VecDeque;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::Thread;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, Stream as _};
use strata_client::{Delivery, DeliveryFuture};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::producer::{InFlight, ProducerOutcome, Window};
use super::stats::{Recorder, Sample};
use crate::output::status;

/// Individual errors printed before only counting them.
const ERRORS_PRINTED_MAX: u64 = 5;

/// One outstanding delivery and the moments that measure it.
struct Tracked {
    delivery: DeliveryFuture,
    started: Instant,
    send_delay: Option<Duration>,
}

/// A completed delivery and the moments that measure it.
type Done = (
    Result<Delivery, strata_client::Error>,
    Instant,
    Option<Duration>,
);

impl std::future::Future for Tracked {
    type Output = Done;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Done> {
        Pin::new(&mut self.delivery).poll(context).map(|result| {
            let result = result.map_err(|error| error.error);
            (result, self.started, self.send_delay)
        })
    }
}

/// The outstanding deliveries of one producer.
#[derive(Default)]
struct Outstanding {
    /// Index = partition.
    queues: Vec<VecDeque<Tracked>>,
    unplaced: FuturesUnordered<Tracked>,
    count: usize,
}

impl Outstanding {
    fn push(&mut self, tracked: Tracked) {
        self.count += 1;
        match tracked
            .delivery
            .partition()
            .and_then(|partition| usize::try_from(partition).ok())
        {
            Some(index) => {
                if self.queues.len() <= index {
                    self.queues.resize_with(index + 1, VecDeque::new);
                }
                self.queues[index].push_back(tracked);
            }
            None => self.unplaced.push(tracked),
        }
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every delivery that completed, or `Pending` (with the heads' wakers registered).
    fn poll_done(&mut self, context: &mut Context<'_>) -> Poll<Vec<Done>> {
        let mut done = Vec::new();
        for queue in &mut self.queues {
            while let Some(head) = queue.front_mut() {
                match Pin::new(head).poll(context) {
                    Poll::Ready(output) => {
                        queue.pop_front();
                        done.push(output);
                    }
                    Poll::Pending => break,
                }
            }
        }
        while let Poll::Ready(Some(output)) = Pin::new(&mut self.unplaced).poll_next(context) {
            done.push(output);
        }
        self.count -= done.len();
        if done.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(done)
        }
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
    let mut outstanding = Outstanding::default();
    let mut open = true;
    let mut immediate_failures = Vec::new();
    loop {
        tokio::select! {
            biased;
            done = std::future::poll_fn(|context| outstanding.poll_done(context)), if !outstanding.is_empty() => {
                let now = Instant::now();
                let count = done.len() as u64;
                for (result, started, send_delay) in done {
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
                }
                outcome.finished_at = Some(now);
                if window.complete_many(count) {
                    generator.unpark();
                }
            }
            batch = handoff.recv(), if open => match batch {
                Some(batch) => {
                    for in_flight in batch {
                        match in_flight.delivery {
                            Ok(delivery) => outstanding.push(Tracked {
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
