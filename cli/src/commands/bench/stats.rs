//! Measurement: counters and latency histograms of one measured [`Side`] (publish,
//! end-to-end, or consume), filled by any number of [`Recorder`]s.
//!
//! Counts (records, bytes, errors) are exact at any moment: each recorder owns atomic
//! counters (it is their only writer) that the progress task sums. Latencies go into HdrHistograms in microseconds
//! with 3 significant digits; each recorder fills a local histogram and
//! merges it into the side's every 50 ms, so recording a sample takes no lock. The side
//! keeps two: the *interval* histogram (every sample, warm-up included; taken and cleared by
//! the progress task every 5 s) and the *measured* one (samples after the warm-up only),
//! from which the summary's percentiles come. A recorder flushes right before its first
//! post-warm-up sample, so no warm-up sample reaches the measured histogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;

use crate::exit::CliError;

/// HdrHistogram precision: 3 significant digits.
pub const SIGNIFICANT_DIGITS: u8 = 3;
/// How often a recorder merges its local histogram into its side.
const FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// Counts since the start, summed over a side's recorders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub records: u64,
    /// Record value bytes (what Kafka's MB counts).
    pub value_bytes: u64,
    /// Estimated bytes on the wire: keys, headers and record framing included.
    pub wire_bytes: u64,
    pub errors: u64,
}

impl Totals {
    /// What happened between `earlier` and `self`.
    pub fn since(self, earlier: Totals) -> Totals {
        Totals {
            records: self.records.saturating_sub(earlier.records),
            value_bytes: self.value_bytes.saturating_sub(earlier.value_bytes),
            wire_bytes: self.wire_bytes.saturating_sub(earlier.wire_bytes),
            errors: self.errors.saturating_sub(earlier.errors),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    records: AtomicU64,
    value_bytes: AtomicU64,
    wire_bytes: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    fn store(&self, totals: &Totals) {
        self.records.store(totals.records, Ordering::Relaxed);
        self.value_bytes
            .store(totals.value_bytes, Ordering::Relaxed);
        self.wire_bytes.store(totals.wire_bytes, Ordering::Relaxed);
        self.errors.store(totals.errors, Ordering::Relaxed);
    }

    fn load(&self) -> Totals {
        Totals {
            records: self.records.load(Ordering::Relaxed),
            value_bytes: self.value_bytes.load(Ordering::Relaxed),
            wire_bytes: self.wire_bytes.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

/// Latency percentiles in milliseconds, Kafka's and OMB's set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    #[serde(skip)]
    pub count: u64,
    pub avg: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// A histogram in microseconds with the exact sum and maximum beside it.
#[derive(Debug, Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
    sum_micros: u128,
    max_micros: u64,
}

impl Latencies {
    /// An empty, auto-resizing histogram of [`SIGNIFICANT_DIGITS`].
    pub fn new() -> Result<Latencies, CliError> {
        let histogram = Histogram::new(SIGNIFICANT_DIGITS).map_err(|error| {
            CliError::failure("INTERNAL", format!("creating a histogram: {error}"))
        })?;
        Ok(Latencies::from_histogram(histogram))
    }

    fn from_histogram(histogram: Histogram<u64>) -> Latencies {
        Latencies {
            histogram,
            sum_micros: 0,
            max_micros: 0,
        }
    }

    /// An empty histogram of the same shape.
    fn empty_like(&self) -> Latencies {
        Latencies::from_histogram(Histogram::new_from(&self.histogram))
    }

    pub fn record(&mut self, micros: u64) {
        // `record` grows the auto-resizing histogram; `saturating_record` would clamp to
        // its current range instead. Only a value beyond what it can ever track saturates.
        if self.histogram.record(micros).is_err() {
            self.histogram.saturating_record(micros);
        }
        self.sum_micros += u128::from(micros);
        self.max_micros = self.max_micros.max(micros);
    }

    fn add(&mut self, other: &Latencies) {
        if other.histogram.is_empty() {
            return;
        }
        // Both auto-resize, so adding cannot run out of range; saturate if it ever did.
        if self.histogram.add(&other.histogram).is_err() {
            for value in other.histogram.iter_recorded() {
                self.histogram
                    .saturating_record_n(value.value_iterated_to(), value.count_at_value());
            }
        }
        self.sum_micros += other.sum_micros;
        self.max_micros = self.max_micros.max(other.max_micros);
    }

    fn reset(&mut self) {
        self.histogram.reset();
        self.sum_micros = 0;
        self.max_micros = 0;
    }

    pub fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }

    /// Percentiles from the histogram; average and maximum exact. `None` when empty.
    pub fn summary(&self) -> Option<LatencySummary> {
        let count = self.histogram.len();
        if count == 0 {
            return None;
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Some(LatencySummary {
            count,
            avg: self.sum_micros as f64 / count as f64 / 1000.0,
            p50: ms(self.histogram.value_at_quantile(0.50)),
            p95: ms(self.histogram.value_at_quantile(0.95)),
            p99: ms(self.histogram.value_at_quantile(0.99)),
            p999: ms(self.histogram.value_at_quantile(0.999)),
            max: ms(self.max_micros),
        })
    }
}

#[derive(Debug)]
struct Book {
    interval: Latencies,
    measured: Latencies,
    send_delay: Latencies,
}

/// One measured side of a run. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Side {
    inner: Arc<SideInner>,
}

#[derive(Debug)]
struct SideInner {
    counters: Mutex<Vec<Arc<Counters>>>,
    book: Mutex<Book>,
}

impl Side {
    pub fn new() -> Result<Side, CliError> {
        let empty = Latencies::new()?;
        Ok(Side {
            inner: Arc::new(SideInner {
                counters: Mutex::new(Vec::new()),
                book: Mutex::new(Book {
                    interval: empty.empty_like(),
                    measured: empty.empty_like(),
                    send_delay: empty,
                }),
            }),
        })
    }

    /// A recorder for one task; samples completed before `warmup_end` are not measured.
    pub fn recorder(&self, warmup_end: Instant) -> Recorder {
        let counters = Arc::new(Counters::default());
        lock(&self.inner.counters).push(counters.clone());
        let local = lock(&self.inner.book).measured.empty_like();
        Recorder {
            side: self.inner.clone(),
            counters,
            totals: Totals::default(),
            local_delay: local.empty_like(),
            local,
            measuring: false,
            warmup_end,
            last_flush: Instant::now(),
        }
    }

    /// Counts since the start, exact.
    pub fn totals(&self) -> Totals {
        lock(&self.inner.counters)
            .iter()
            .map(|counters| counters.load())
            .fold(Totals::default(), |sum, part| Totals {
                records: sum.records + part.records,
                value_bytes: sum.value_bytes + part.value_bytes,
                wire_bytes: sum.wire_bytes + part.wire_bytes,
                errors: sum.errors + part.errors,
            })
    }

    /// The latencies merged since the last call, then forgets them.
    pub fn take_interval(&self) -> Option<LatencySummary> {
        let mut book = lock(&self.inner.book);
        let summary = book.interval.summary();
        book.interval.reset();
        summary
    }

    /// Latencies after the warm-up, and the send delays (with `--rate`).
    pub fn measured(&self) -> (Latencies, Latencies) {
        let book = lock(&self.inner.book);
        (book.measured.clone(), book.send_delay.clone())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Records the outcomes of one task into its [`Side`]. Flushes when dropped.
#[derive(Debug)]
pub struct Recorder {
    side: Arc<SideInner>,
    counters: Arc<Counters>,
    /// What `counters` holds; this recorder is their only writer.
    totals: Totals,
    local: Latencies,
    local_delay: Latencies,
    measuring: bool,
    warmup_end: Instant,
    last_flush: Instant,
}

/// One successful record, as a [`Recorder`] counts it.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub value_bytes: u64,
    pub wire_bytes: u64,
    pub latency_micros: Option<u64>,
    /// How late the send was against the `--rate` schedule.
    pub send_delay_micros: Option<u64>,
}

impl Recorder {
    /// Counts one record completed at `now`.
    pub fn success(&mut self, now: Instant, sample: Sample) {
        if !self.measuring && now >= self.warmup_end {
            self.flush();
            self.measuring = true;
        }
        // One writer per counter set: plain stores, no read-modify-write on the hot path.
        self.totals.records += 1;
        self.totals.value_bytes += sample.value_bytes;
        self.totals.wire_bytes += sample.wire_bytes;
        self.counters.store(&self.totals);
        if let Some(micros) = sample.latency_micros {
            self.local.record(micros);
        }
        if let (Some(micros), true) = (sample.send_delay_micros, self.measuring) {
            self.local_delay.record(micros);
        }
        if now.saturating_duration_since(self.last_flush) >= FLUSH_INTERVAL {
            self.flush();
            self.last_flush = now;
        }
    }

    /// Counts one failed record.
    pub fn error(&mut self) {
        self.totals.errors += 1;
        self.counters.store(&self.totals);
    }

    /// Merges the local histograms into the side.
    pub fn flush(&mut self) {
        if self.local.histogram.is_empty() && self.local_delay.histogram.is_empty() {
            return;
        }
        let mut book = lock(&self.side.book);
        book.interval.add(&self.local);
        if self.measuring {
            book.measured.add(&self.local);
            book.send_delay.add(&self.local_delay);
        }
        drop(book);
        self.local.reset();
        self.local_delay.reset();
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn sample(latency_micros: u64) -> Sample {
        Sample {
            value_bytes: 100,
            wire_bytes: 110,
            latency_micros: Some(latency_micros),
            send_delay_micros: Some(1),
        }
    }

    #[test]
    fn warm_up_samples_reach_the_interval_but_not_the_summary() {
        let side = Side::new().unwrap();
        let start = Instant::now();
        let warmup_end = start + Duration::from_secs(10);
        let mut recorder = side.recorder(warmup_end);
        recorder.success(start, sample(50_000));
        recorder.success(warmup_end, sample(1_000));
        recorder.success(warmup_end, sample(3_000));
        recorder.error();
        drop(recorder);
        let totals = side.totals();
        assert_eq!((totals.records, totals.errors), (3, 1));
        assert_eq!(totals.value_bytes, 300);
        let interval = side.take_interval().unwrap();
        assert_eq!(interval.count, 3);
        assert_eq!(interval.max, 50.0);
        assert!(side.take_interval().is_none(), "taking clears the interval");
        let (measured, delay) = side.measured();
        let measured = measured.summary().unwrap();
        assert_eq!(measured.count, 2);
        assert_eq!(measured.avg, 2.0);
        assert_eq!(measured.max, 3.0);
        assert_eq!(delay.summary().unwrap().count, 2);
    }

    #[test]
    fn percentiles_come_from_the_histogram_with_3_digits() {
        let mut latencies = Latencies::new().unwrap();
        for micros in 1..=10_000 {
            latencies.record(micros);
        }
        let summary = latencies.summary().unwrap();
        let close = |value: f64, expected: f64| (value - expected).abs() / expected < 0.001;
        assert!(close(summary.p50, 5.0), "{summary:?}");
        assert!(close(summary.p99, 9.9), "{summary:?}");
        assert!(close(summary.p999, 9.99), "{summary:?}");
        assert_eq!(summary.max, 10.0);
        assert!(close(summary.avg, 5.0005));
        assert!(Latencies::new().unwrap().summary().is_none());
    }

    #[test]
    fn totals_subtract() {
        let late = Totals {
            records: 10,
            value_bytes: 1000,
            wire_bytes: 1100,
            errors: 1,
        };
        let early = Totals {
            records: 4,
            value_bytes: 400,
            wire_bytes: 440,
            errors: 0,
        };
        assert_eq!(late.since(early).records, 6);
        assert_eq!(early.since(late), Totals::default());
    }
}
