//! The producing side: one generator thread and one collector task per producer.
//!
//! The generator is a plain OS thread (inside the runtime's context, so the producer can
//! start its tasks) that builds records from the prepared [`Payload`] and calls
//! [`Producer::enqueue`], never waiting for an acknowledgement. It hands each delivery
//! future, with the record's start time, to the collector in small batches over a bounded
//! channel. A thread rather than a task because `--rate` needs sleeps finer than tokio's
//! 1 ms timer: the thread sleeps with a 1 µs timer slack, so a record leaves within tens of
//! microseconds of its scheduled time, and that lateness is reported as the send delay.
//!
//! The collector (`collector`) records each delivery's latency when it completes. At most
//! `window` deliveries are outstanding per producer; the generator parks when the window is
//! full or the producer's buffer is, and the collector unparks it as deliveries complete.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strata_client::{DeliveryFuture, Producer, Record, SendError};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::collector::collect;
use super::stats::Recorder;
use super::workload::{BenchClock, FastRandom, KeySource, Pacer, Payload, TIMESTAMP_HEADER};
use crate::output::status;

/// Records sent flat out per read of the clock (see `SampledClock`).
const CLOCK_READ_EVERY: u32 = 16;
/// Deliveries handed to the collector in one message.
const HANDOFF_BATCH: usize = 512;
/// Batches waiting in the channel at most.
const HANDOFF_QUEUE: usize = 32;
/// How long the generator parks at most when it cannot send; the collector unparks it as
/// soon as enough deliveries completed, so this bounds only how late a stop or deadline is
/// noticed, and a wait on a full topic queue (which no completion signals).
const PARK_MAX: Duration = Duration::from_millis(2);
/// The window reopens when this share of it has completed (at least one record), so the
/// generator wakes once per few dozen deliveries rather than once per delivery.
const WINDOW_REOPEN_DIVISOR: u64 = 16;

/// What one producer sends, and until when.
#[derive(Debug, Clone)]
pub struct GeneratorPlan {
    pub topic: String,
    pub payload: Arc<Payload>,
    pub keys: Arc<KeySource>,
    /// `None` sends as fast as the window allows.
    pub pacer: Option<Pacer>,
    /// Records this producer sends at most.
    pub quota: u64,
    /// No record is sent at or after this moment.
    pub deadline: Instant,
    /// Outstanding deliveries at most.
    pub window: u64,
    /// Set for e2e: stamp each record with the `strata.bench.ts` header.
    pub clock: Option<BenchClock>,
    pub wire_bytes_per_record: u64,
    pub seed: u64,
}

/// What a producer's collector saw.
#[derive(Debug, Default)]
pub struct ProducerOutcome {
    /// Records acknowledged, per partition (index = partition).
    pub delivered: Vec<u64>,
    pub failed: u64,
    /// When the last delivery completed.
    pub finished_at: Option<Instant>,
}

/// A started producer: its generator thread and its collector task.
#[derive(Debug)]
pub struct RunningProducer {
    producer: Producer,
    generator: std::thread::JoinHandle<()>,
    collector: tokio::task::JoinHandle<ProducerOutcome>,
}

impl RunningProducer {
    /// Waits for the last delivery, then closes the producer.
    pub async fn finish(self) -> ProducerOutcome {
        let outcome = self.collector.await.unwrap_or_default();
        // The generator ended before the collector could (it holds the channel's sender).
        let _ = self.generator.join();
        if let Err(error) = self.producer.close().await {
            status!(
                "warning: closing a producer: {error} ({})",
                error.code_name()
            );
        }
        outcome
    }
}

/// How the generator and the collector coordinate the window.
#[derive(Debug)]
pub(super) struct Window {
    /// Deliveries completed (or failed at once) so far.
    completed: AtomicU64,
    /// The generator is parked until `completed` reaches this; `u64::MAX` when running.
    resume_at: AtomicU64,
}

impl Window {
    fn new() -> Window {
        Window {
            completed: AtomicU64::new(0),
            resume_at: AtomicU64::new(u64::MAX),
        }
    }

    /// Counts one completion; whether the parked generator should be woken.
    ///
    /// `SeqCst` here and in `park_until` (store `resume_at`, then load `completed`) makes
    /// sure at least one side sees the other's write, so no wake-up is missed.
    pub(super) fn complete_one(&self) -> bool {
        self.complete_many(1)
    }

    /// Counts `count` completions at once; whether the parked generator should be woken.
    pub(super) fn complete_many(&self, count: u64) -> bool {
        let completed = self.completed.fetch_add(count, Ordering::SeqCst) + count;
        completed >= self.resume_at.load(Ordering::SeqCst)
    }
}

/// Starts generating on a new thread and collecting on a new task.
pub fn start(
    producer: Producer,
    plan: GeneratorPlan,
    recorder: Recorder,
    stop: Arc<AtomicBool>,
) -> std::io::Result<RunningProducer> {
    let (handoff, deliveries) = mpsc::channel(HANDOFF_QUEUE);
    let window = Arc::new(Window::new());
    let runtime = tokio::runtime::Handle::current();
    let generator_window = window.clone();
    let value_bytes = plan.payload.value(0).len() as u64;
    let wire_bytes = plan.wire_bytes_per_record;
    let handle = producer.clone();
    let generator = std::thread::Builder::new()
        .name("bench-producer".to_owned())
        .spawn(move || {
            let _runtime = runtime.enter();
            precise_sleeps();
            Generator {
                producer,
                topic: Arc::from(plan.topic.as_str()),
                plan,
                handoff,
                window: generator_window,
                stop,
                batch: Vec::with_capacity(HANDOFF_BATCH),
                sent: 0,
                clock: SampledClock::new(),
            }
            .run();
        })?;
    let thread = generator.thread().clone();
    let collector = tokio::spawn(collect(
        deliveries,
        recorder,
        window,
        thread,
        value_bytes,
        wire_bytes,
    ));
    Ok(RunningProducer {
        producer: handle,
        generator,
        collector,
    })
}

/// A record on its way: its delivery and when its latency clock started.
#[derive(Debug)]
pub(super) struct InFlight {
    pub(super) delivery: Result<DeliveryFuture, strata_client::Error>,
    pub(super) started: Instant,
    pub(super) send_delay: Option<Duration>,
}

struct Generator {
    producer: Producer,
    /// Shared by every record: no allocation per record for the name.
    topic: Arc<str>,
    plan: GeneratorPlan,
    handoff: mpsc::Sender<Vec<InFlight>>,
    window: Arc<Window>,
    stop: Arc<AtomicBool>,
    batch: Vec<InFlight>,
    sent: u64,
    clock: SampledClock,
}

impl Generator {
    fn run(mut self) {
        let mut random = FastRandom::new(self.plan.seed);
        for index in 0..self.plan.quota {
            let intended = self.plan.pacer.map(|pacer| pacer.intended(index));
            if let Some(intended) = intended {
                if intended >= self.plan.deadline {
                    break;
                }
                if intended > Instant::now() {
                    self.hand_off();
                    sleep_until(intended);
                }
                self.clock.expire();
            }
            if self.wait_for_window() {
                self.clock.expire();
            }
            let now = self.clock.now();
            if now >= self.plan.deadline || self.stop.load(Ordering::Relaxed) {
                break;
            }
            let started = intended.unwrap_or(now);
            let record = self.record(index, started, random.next_u64());
            let Some(delivery) = self.enqueue(record) else {
                break; // stopped while waiting for buffer space
            };
            let failed = delivery.is_err();
            self.batch.push(InFlight {
                delivery,
                started,
                send_delay: intended.map(|intended| now.saturating_duration_since(intended)),
            });
            self.sent += 1;
            if self.batch.len() >= HANDOFF_BATCH {
                self.hand_off();
            }
            if failed {
                break; // enqueue fails only for good: closed, fatal error, record too large
            }
        }
        self.hand_off();
    }

    fn record(&self, index: u64, started: Instant, random: u64) -> Record {
        let plan = &self.plan;
        let mut record = Record::to(&self.topic).value(plan.payload.value(index));
        if let Some(key) = plan.keys.key(index, random) {
            record = record.key(key);
        }
        if let Some(clock) = &plan.clock {
            record = record.header(TIMESTAMP_HEADER, clock.encode(started).to_vec());
        }
        record
    }

    /// Queues `record`, parking while the producer's buffer is full; `None` when a stop
    /// was requested meanwhile.
    fn enqueue(
        &mut self,
        mut record: Record,
    ) -> Option<Result<DeliveryFuture, strata_client::Error>> {
        loop {
            match self.producer.enqueue(record) {
                Ok(delivery) => return Some(Ok(delivery)),
                Err(SendError {
                    error,
                    record: back,
                }) if error.code_name() == "BUFFER_FULL" => {
                    record = back;
                    self.clock.expire();
                    self.hand_off();
                    if self.stop.load(Ordering::Relaxed) || Instant::now() >= self.plan.deadline {
                        return None;
                    }
                    let next = self.window.completed.load(Ordering::Acquire) + 1;
                    self.park_until(next);
                }
                Err(SendError { error, .. }) => return Some(Err(error)),
            }
        }
    }

    /// Waits while `window` deliveries are outstanding, until a sixteenth of them completed
    /// (or a stop); whether it waited.
    fn wait_for_window(&mut self) -> bool {
        let window = self.plan.window;
        if self.sent - self.window.completed.load(Ordering::Acquire) < window {
            return false;
        }
        self.hand_off();
        let target = self.sent - window + (window / WINDOW_REOPEN_DIVISOR).max(1);
        while self.window.completed.load(Ordering::Acquire) < target {
            if self.stop.load(Ordering::Relaxed) || Instant::now() >= self.plan.deadline {
                break; // the caller sees the stop or the deadline and ends
            }
            self.park_until(target);
        }
        true
    }

    /// Parks until `completed` reaches `target` (or briefly, to look at the stop flag).
    fn park_until(&self, target: u64) {
        self.window.resume_at.store(target, Ordering::SeqCst);
        if self.window.completed.load(Ordering::SeqCst) < target {
            std::thread::park_timeout(PARK_MAX);
        }
        self.window.resume_at.store(u64::MAX, Ordering::SeqCst);
    }

    /// Passes the batch to the collector; waits while the collector is behind.
    fn hand_off(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(HANDOFF_BATCH));
        // Fails only when the collector is gone, and then nothing is left to report to.
        let _ = self.handoff.blocking_send(batch);
    }
}

/// The generator's clock when it sends flat out: read once per [`CLOCK_READ_EVERY`]
/// records and after every wait. Enqueueing a record takes well under a microsecond, so a
/// record's start time is at most a few microseconds early; its latency can only come out
/// that much longer, never shorter. A paced record always reads the clock.
struct SampledClock {
    last: Instant,
    uses_left: u32,
}

impl SampledClock {
    fn new() -> SampledClock {
        SampledClock {
            last: Instant::now(),
            uses_left: 0,
        }
    }

    fn now(&mut self) -> Instant {
        if self.uses_left == 0 {
            self.last = Instant::now();
            self.uses_left = CLOCK_READ_EVERY;
        }
        self.uses_left -= 1;
        self.last
    }

    /// The next `now` reads the clock (time passed in a wait).
    fn expire(&mut self) {
        self.uses_left = 0;
    }
}

/// Sleeps until `deadline` on this (non-runtime) thread.
fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        std::thread::sleep(deadline - now);
    }
}

/// Asks the kernel to wake this thread within 1 µs of a sleep's end instead of the default
/// 50 µs slack, so paced sends leave on time.
#[cfg(target_os = "linux")]
fn precise_sleeps() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument by value and changes only the
    // calling thread's timer slack; no memory is passed to the kernel.
    let result = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_u64, 0_u64, 0_u64, 0_u64) };
    if result != 0 {
        tracing::debug!("could not lower the timer slack; paced sends may be up to 50 µs late");
    }
}

#[cfg(not(target_os = "linux"))]
fn precise_sleeps() {}
