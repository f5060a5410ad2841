//! The time keeper of a run: every 5 s it closes an interval (rates from the exact counters,
//! latency from the interval histograms), prints Kafka's progress line on stderr and adds
//! the interval to the series; at the end of the warm-up it takes the counters the summary
//! subtracts. On a terminal an indicatif bar (records/s, MB/s, ETA) runs on stderr as well,
//! and the 5 s lines are printed above it.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::report::{interval_line, mib, Verb};
use super::stats::{Side, Totals};
use crate::output::status;

/// The series' interval and the progress line's period.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// How often the bar is redrawn.
const BAR_REFRESH: Duration = Duration::from_millis(200);

/// The per-interval figures, OMB style: one entry per complete 5 s interval, warm-up
/// included. Latency entries are `null` for an interval without samples.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Series {
    pub interval_s: u64,
    pub records_per_sec: Vec<f64>,
    pub mb_per_sec: Vec<f64>,
    pub publish_p99_ms: Vec<Option<f64>>,
    pub e2e_p99_ms: Vec<Option<f64>>,
    /// e2e only: the consumers' rate.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub consume_records_per_sec: Vec<f64>,
}

/// What the progress task watches.
#[derive(Debug, Clone)]
pub struct Watched {
    /// Produce: the publish side; consume: the consume side; e2e: publish.
    pub primary: Side,
    pub primary_verb: Verb,
    /// e2e: the end-to-end side.
    pub secondary: Option<Side>,
    pub start: Instant,
    pub warmup_end: Instant,
    /// The bar's length: records expected, or the run time.
    pub goal: Goal,
}

#[derive(Debug, Clone, Copy)]
pub enum Goal {
    Records(u64),
    Until(Instant),
}

/// The counters at the end of the warm-up: primary, and secondary for e2e.
pub type WarmupTotals = (Totals, Option<Totals>);

#[derive(Debug)]
pub struct ProgressOutcome {
    pub series: Series,
    /// `None` when the run ended during the warm-up.
    pub at_warmup_end: Option<WarmupTotals>,
}

/// Runs until `done` turns true.
pub fn spawn(
    watched: Watched,
    done: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<ProgressOutcome> {
    tokio::spawn(run(watched, done))
}

async fn run(watched: Watched, mut done: watch::Receiver<bool>) -> ProgressOutcome {
    let bar = std::io::stderr().is_terminal().then(|| new_bar(&watched));
    let mut series = Series {
        interval_s: INTERVAL.as_secs(),
        ..Series::default()
    };
    let mut ticks = tokio::time::interval_at(watched.start + INTERVAL, INTERVAL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut redraw = tokio::time::interval(BAR_REFRESH);
    let mut at_warmup_end = (watched.warmup_end <= watched.start).then(|| {
        (
            Totals::default(),
            watched.secondary.as_ref().map(|_| Totals::default()),
        )
    });
    let mut previous = Previous {
        at: watched.start,
        primary: Totals::default(),
        secondary: Totals::default(),
    };
    loop {
        let warmup_pending = at_warmup_end.is_none();
        tokio::select! {
            _ = done.wait_for(|done| *done) => break,
            now = ticks.tick() => {
                let lines = close_interval(&watched, &mut previous, now, &mut series);
                for line in lines {
                    match &bar {
                        Some(bar) => bar.println(line),
                        None => status!("{line}"),
                    }
                }
            }
            () = tokio::time::sleep_until(watched.warmup_end), if warmup_pending => {
                at_warmup_end = Some((
                    watched.primary.totals(),
                    watched.secondary.as_ref().map(Side::totals),
                ));
            }
            _ = redraw.tick(), if bar.is_some() => {
                if let Some(bar) = &bar {
                    update_bar(bar, &watched, &previous);
                }
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    ProgressOutcome {
        series,
        at_warmup_end,
    }
}

/// Where the last interval ended.
#[derive(Debug)]
struct Previous {
    at: Instant,
    primary: Totals,
    secondary: Totals,
}

/// Ends the interval at `now`: adds it to the series and returns the progress lines.
fn close_interval(
    watched: &Watched,
    previous: &mut Previous,
    now: Instant,
    series: &mut Series,
) -> Vec<String> {
    let elapsed = now
        .saturating_duration_since(previous.at)
        .as_secs_f64()
        .max(1e-9);
    let since_start = now.saturating_duration_since(watched.start).as_secs_f64();
    let mut lines = Vec::new();
    let totals = watched.primary.totals();
    let delta = totals.since(previous.primary);
    let latency = watched.primary.take_interval();
    let rate = delta.records as f64 / elapsed;
    series.records_per_sec.push(rate);
    series.mb_per_sec.push(mib(delta.value_bytes) / elapsed);
    if watched.primary_verb == Verb::Sent {
        series
            .publish_p99_ms
            .push(latency.map(|latency| latency.p99));
    }
    lines.push(interval_line(
        since_start,
        watched.primary_verb,
        delta,
        elapsed,
        latency.as_ref(),
    ));
    previous.primary = totals;
    if let Some(secondary) = &watched.secondary {
        let totals = secondary.totals();
        let delta = totals.since(previous.secondary);
        let latency = secondary.take_interval();
        series.e2e_p99_ms.push(latency.map(|latency| latency.p99));
        series
            .consume_records_per_sec
            .push(delta.records as f64 / elapsed);
        lines.push(interval_line(
            since_start,
            Verb::Received,
            delta,
            elapsed,
            latency.as_ref(),
        ));
        previous.secondary = totals;
    }
    previous.at = now;
    lines
}

fn new_bar(watched: &Watched) -> ProgressBar {
    let length = match watched.goal {
        Goal::Records(records) => records,
        Goal::Until(end) => millis(end.saturating_duration_since(watched.start)),
    };
    let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
    let template = "[{elapsed_precise}] {wide_bar} {percent:>3}% ETA {eta} {msg}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Moves the bar and shows the rates of the current interval so far.
fn update_bar(bar: &ProgressBar, watched: &Watched, previous: &Previous) {
    let now = Instant::now();
    let totals = watched.primary.totals();
    match watched.goal {
        Goal::Records(_) => bar.set_position(totals.records),
        Goal::Until(_) => bar.set_position(millis(now.saturating_duration_since(watched.start))),
    }
    let elapsed = now.saturating_duration_since(previous.at).as_secs_f64();
    if elapsed > 0.5 {
        let delta = totals.since(previous.primary);
        bar.set_message(format!(
            "{:.0} records/s, {:.2} MB/s",
            delta.records as f64 / elapsed,
            mib(delta.value_bytes) / elapsed
        ));
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
