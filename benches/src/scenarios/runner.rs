//! Runs one session under one flush mode: fresh brokers (one, or a cluster of three that
//! must first form, [`super::readiness`]), each step's `strata bench`, the brokers' CPU
//! time around each step, and the records the topic holds afterwards.
//!
//! On a cluster, a `produce` or `e2e` step's topic is created by the runner, which waits
//! until every replica is in the ISR before the quiet-host wait and the bench; the bench's
//! own `--create` then finds it.
//!
//! CPU per GiB: utime + stime of the broker processes (all of a cluster's), read right
//! before and right after the step, divided by the GiB of record values the step moved.
//! For `produce` and `e2e` that is the topic's record count afterwards (`strata offsets`,
//! so the warm-up counts, like the CPU it used) times the record size (so RF 3 counts
//! each value once, not per replica); for `consume`, the records the bench read.
//!
//! Failures stay in their row: brokers that do not start (or a cluster that does not
//! form) fail every step of the session, a broker that dies fails the steps after it, and
//! nothing stops the run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use super::bench::{self, BenchRun};
use super::broker::BrokerOptions;
use super::deployment::Deployment;
use super::interrupt;
use super::latency::LatencyFloors;
use super::limits::{DiskLimits, Limit};
use super::plan::{Flush, Mode, Session, Step, Timing, Topology};
use super::process::run_captured;
use super::readiness::{self, Cli};
use super::steal;

const GIB: f64 = (1u64 << 30) as f64;

/// A step starts after three seconds in a row without host steal, or after a minute.
const QUIET_WINDOW: Duration = Duration::from_secs(1);
const QUIET_WINDOWS: u32 = 3;
const QUIET_WAIT_MAX: Duration = Duration::from_secs(60);
/// Steal during a step above which its row carries a note.
pub const STEAL_NOTE_SECONDS: f64 = 0.05;

/// What every session needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub strata: PathBuf,
    pub broker: PathBuf,
    pub data_root: PathBuf,
    pub timing: Timing,
    /// The flags every broker of the run gets.
    pub broker_options: BrokerOptions,
}

/// The raw limits the rows are compared with: throughputs in MiB/s, latency floors in ms.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reference {
    pub iperf3_mib_per_sec: Option<f64>,
    pub dd_mib_per_sec: Option<f64>,
    pub page_cache_write_mib_per_sec: Option<f64>,
    pub disk_read_mib_per_sec: Option<f64>,
    /// Loopback round trip of 1000 B (sockperf), p99 ms.
    pub round_trip_p99_ms: Option<f64>,
    /// 4 KiB append + fdatasync (fio), p99 ms.
    pub fdatasync_p99_ms: Option<f64>,
}

impl Reference {
    pub fn new(iperf3: &Limit, disk: &DiskLimits, floors: &LatencyFloors) -> Reference {
        Reference {
            iperf3_mib_per_sec: iperf3.mib_per_sec,
            dd_mib_per_sec: disk.dd.mib_per_sec,
            page_cache_write_mib_per_sec: disk.page_cache_write.mib_per_sec,
            disk_read_mib_per_sec: disk.disk_read.mib_per_sec,
            round_trip_p99_ms: floors.round_trip.p99_ms(),
            fdatasync_p99_ms: floors.fdatasync.p99_ms(),
        }
    }
}

/// One step's result: one row of the table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub session: &'static str,
    pub flush: Flush,
    pub step: Step,
    /// Records in the topic after `produce`/`e2e`; the backlog before a `consume`.
    pub topic_records: Option<u64>,
    /// On a cluster: how long creating the topic and waiting for its full ISR took.
    pub in_sync_wait_seconds: Option<f64>,
    pub broker_cpu_seconds: Option<f64>,
    pub values_gib: Option<f64>,
    pub broker_cpu_seconds_per_gib: Option<f64>,
    /// MB/s ÷ iperf3 single-stream MiB/s (unlimited-rate produce and consume only).
    pub ratio_to_iperf3: Option<f64>,
    /// Produce MB/s ÷ median `dd` MiB/s.
    pub ratio_to_dd: Option<f64>,
    /// Produce MB/s ÷ median MiB/s of `dd` into the page cache (no sync).
    pub ratio_to_page_cache: Option<f64>,
    pub bench: BenchRun,
    /// Everything that went wrong in this step, the bench's own errors included.
    pub error: Option<String>,
    /// How long the step waited for a quiet host first, and whether it got one.
    pub settle_wait_seconds: Option<f64>,
    pub host_quiet_before: Option<bool>,
    /// CPU time the host stole from this VM during the step (`/proc/stat`).
    pub host_steal_seconds: Option<f64>,
}

impl Row {
    /// What the reader of a figure should know about the host during the step.
    pub fn host_note(&self) -> Option<String> {
        let mut notes = Vec::new();
        if self.host_quiet_before == Some(false) {
            notes.push(format!(
                "host still stealing CPU after {:.0} s of waiting",
                self.settle_wait_seconds.unwrap_or_default()
            ));
        }
        if let Some(stolen) = self
            .host_steal_seconds
            .filter(|stolen| *stolen > STEAL_NOTE_SECONDS)
        {
            notes.push(format!("host stole {stolen:.2} s of CPU during the step"));
        }
        (!notes.is_empty()).then(|| notes.join("; "))
    }
}

/// One life of a session's brokers: the rows of its steps and how they stopped.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionRecord {
    pub session: &'static str,
    pub flush: Flush,
    pub topology: Topology,
    /// Every broker's address, in node order; empty when they did not start.
    pub broker_addresses: Vec<SocketAddr>,
    /// On a cluster: how long electing a controller and registering every broker took.
    pub cluster_formed_seconds: Option<f64>,
    pub broker_exit: Option<String>,
    pub rows: Vec<Row>,
}

/// Runs `session` once with `flush`.
pub fn run_session(
    config: &RunConfig,
    session: &Session,
    flush: Flush,
    reference: Reference,
) -> SessionRecord {
    let label = format!("{}-{}", session.name, flush.name());
    let mut record = SessionRecord {
        session: session.name,
        flush,
        topology: session.topology,
        broker_addresses: Vec::new(),
        cluster_formed_seconds: None,
        broker_exit: None,
        rows: Vec::new(),
    };
    let fail_all = |record: &mut SessionRecord, message: String| {
        eprintln!("scenarios: {label}: {message}");
        record.rows = session
            .steps
            .iter()
            .map(|step| failed_row(session, flush, step, message.clone()))
            .collect();
    };
    let mut brokers = match Deployment::start(
        &config.broker,
        &config.data_root,
        &label,
        session.topology,
        flush,
        &config.broker_options,
    ) {
        Ok(brokers) => brokers,
        Err(error) => {
            fail_all(&mut record, format!("brokers did not start: {error:#}"));
            return record;
        }
    };
    record.broker_addresses = brokers.addresses();
    if session.topology == Topology::Cluster {
        let formed = readiness::wait_cluster_formed(
            cli(config, &brokers, &brokers.bootstrap()),
            usize::from(session.topology.brokers()),
        );
        match formed {
            Ok(took) => {
                eprintln!(
                    "scenarios: {label}: cluster of {} formed after {:.1} s",
                    session.topology.brokers(),
                    took.as_secs_f64()
                );
                record.cluster_formed_seconds = Some(took.as_secs_f64());
            }
            Err(error) => {
                fail_all(&mut record, format!("{error:#}"));
                record.broker_exit = Some(stop_brokers(brokers));
                return record;
            }
        }
    }
    for step in &session.steps {
        if interrupt::requested() {
            break;
        }
        eprintln!(
            "scenarios: {label}: {} {} …",
            step.mode.subcommand(),
            step.name
        );
        let row = match brokers.check_running() {
            Ok(()) => run_step(config, &brokers, session, flush, step, reference),
            Err(error) => failed_row(session, flush, step, format!("{error:#}")),
        };
        eprintln!("scenarios: {label}: {}", one_line_summary(&row));
        record.rows.push(row);
    }
    record.broker_exit = Some(stop_brokers(brokers));
    record
}

fn stop_brokers(brokers: Deployment) -> String {
    match brokers.stop() {
        Ok(status) => status,
        Err(error) => format!("stop failed: {error:#}"),
    }
}

/// The `strata` CLI pointed at `brokers`.
fn cli<'a>(config: &'a RunConfig, brokers: &'a Deployment, bootstrap: &'a str) -> Cli<'a> {
    Cli {
        strata: &config.strata,
        bootstrap,
        scratch_dir: brokers.scratch_dir(),
    }
}

fn run_step(
    config: &RunConfig,
    brokers: &Deployment,
    session: &Session,
    flush: Flush,
    step: &Step,
    reference: Reference,
) -> Row {
    let bootstrap = brokers.bootstrap();
    let in_sync_wait = match (brokers.topology(), step.mode) {
        (Topology::Cluster, Mode::Produce | Mode::E2e) => {
            let cli = cli(config, brokers, &bootstrap);
            match readiness::create_topic_in_sync(
                cli,
                step.topic,
                step.partitions,
                step.replication_factor,
            ) {
                Ok(took) => Some(took.as_secs_f64()),
                Err(error) => return failed_row(session, flush, step, format!("{error:#}")),
            }
        }
        (Topology::Cluster, Mode::Consume) | (Topology::SingleBroker, _) => None,
    };
    let mut notes = Vec::new();
    let mut note =
        |context: &str, error: anyhow::Error| notes.push(format!("{context}: {error:#}"));
    let backlog = match step.mode {
        Mode::Consume => topic_records(config, brokers, step.topic)
            .map_err(|error| note("counting the backlog", error))
            .ok(),
        Mode::Produce | Mode::E2e => None,
    };
    let args = bench::arguments(step, config.timing, &bootstrap);
    let settled = steal::settle(QUIET_WINDOW, QUIET_WINDOWS, QUIET_WAIT_MAX);
    let steal_before = steal::stolen_seconds();
    let cpu_before = brokers.cpu_seconds();
    let run = bench::run(
        &config.strata,
        &args,
        step.mode,
        brokers.scratch_dir(),
        bench::deadline(step, config.timing),
    );
    let cpu_after = brokers.cpu_seconds();
    let host_steal_seconds = steal_before
        .zip(steal::stolen_seconds())
        .map(|(before, after)| after - before);
    let cpu_seconds = match (cpu_before, cpu_after) {
        (Ok(before), Ok(after)) => Some(after - before),
        (Err(error), _) | (_, Err(error)) => {
            note("reading the broker's CPU time", error);
            None
        }
    };
    let topic_records = match step.mode {
        Mode::Consume => backlog,
        Mode::Produce | Mode::E2e => topic_records(config, brokers, step.topic)
            .map_err(|error| note("counting the records produced", error))
            .ok(),
    };
    let moved_records = match step.mode {
        Mode::Consume => run
            .summary
            .records
            .or(topic_records.map(|count| count as f64)),
        Mode::Produce | Mode::E2e => topic_records.map(|count| count as f64),
    };
    let values_gib = moved_records
        .map(|records| records * f64::from(step.record_size_bytes) / GIB)
        .filter(|gib| *gib > 0.0);
    if let Some(error) = &run.error {
        notes.insert(0, error.clone());
    }
    let unlimited = step.rate.is_none();
    let mb_per_sec = run.summary.mb_per_sec;
    Row {
        session: session.name,
        flush,
        step: step.clone(),
        topic_records,
        in_sync_wait_seconds: in_sync_wait,
        broker_cpu_seconds: cpu_seconds,
        values_gib,
        broker_cpu_seconds_per_gib: cpu_seconds.zip(values_gib).map(|(cpu, gib)| cpu / gib),
        ratio_to_iperf3: ratio(
            mb_per_sec.filter(|_| unlimited),
            reference.iperf3_mib_per_sec,
        ),
        ratio_to_dd: ratio(
            mb_per_sec.filter(|_| unlimited && step.mode == Mode::Produce),
            reference.dd_mib_per_sec,
        ),
        ratio_to_page_cache: ratio(
            mb_per_sec.filter(|_| unlimited && step.mode == Mode::Produce),
            reference.page_cache_write_mib_per_sec,
        ),
        bench: run,
        error: (!notes.is_empty()).then(|| notes.join("; ")),
        settle_wait_seconds: Some(settled.waited.as_secs_f64()),
        host_quiet_before: Some(settled.quiet),
        host_steal_seconds,
    }
}

fn ratio(value: Option<f64>, limit: Option<f64>) -> Option<f64> {
    value
        .zip(limit)
        .filter(|(_, limit)| *limit > 0.0)
        .map(|(value, limit)| value / limit)
}

fn failed_row(session: &Session, flush: Flush, step: &Step, error: String) -> Row {
    Row {
        session: session.name,
        flush,
        step: step.clone(),
        topic_records: None,
        in_sync_wait_seconds: None,
        broker_cpu_seconds: None,
        values_gib: None,
        broker_cpu_seconds_per_gib: None,
        ratio_to_iperf3: None,
        ratio_to_dd: None,
        ratio_to_page_cache: None,
        bench: BenchRun::failed(String::new(), error.clone()),
        error: Some(error),
        settle_wait_seconds: None,
        host_quiet_before: None,
        host_steal_seconds: None,
    }
}

/// The records a topic holds: the sum over its partitions of high watermark minus log
/// start offset, from `strata offsets TOPIC --format json`.
fn topic_records(config: &RunConfig, brokers: &Deployment, topic: &str) -> anyhow::Result<u64> {
    let mut command = Command::new(&config.strata);
    command.args([
        "-b",
        &brokers.bootstrap(),
        "--format",
        "json",
        "offsets",
        topic,
    ]);
    let finished = run_captured(
        command,
        "strata-offsets",
        brokers.scratch_dir(),
        Duration::from_secs(30),
    )?;
    if !finished.status.is_some_and(|status| status.success()) {
        anyhow::bail!("strata offsets failed: {}", finished.stderr.trim());
    }
    let document: Value =
        serde_json::from_str(finished.stdout.trim()).context("strata offsets printed no JSON")?;
    sum_of_ranges(&document).context("strata offsets printed an unexpected document")
}

/// Σ (end − start) over `[{"partition":…,"start":…,"end":…}, …]`.
fn sum_of_ranges(document: &Value) -> Option<u64> {
    document.as_array()?.iter().try_fold(0u64, |total, range| {
        let span = range["end"].as_i64()? - range["start"].as_i64()?;
        Some(total + u64::try_from(span).ok()?)
    })
}

fn one_line_summary(row: &Row) -> String {
    let figure = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    let summary = &row.bench.summary;
    let mut line = format!(
        "{} records/s, {} MB/s, publish p99 {} ms, e2e p99 {} ms, CPU {} s/GiB",
        figure(summary.records_per_sec),
        figure(summary.mb_per_sec),
        figure(summary.publish_ms.p99),
        figure(summary.e2e_ms.p99),
        figure(row.broker_cpu_seconds_per_gib),
    );
    if let Some(error) = &row.error {
        line.push_str(&format!(" — ERROR: {error}"));
    }
    if let Some(note) = row.host_note() {
        line.push_str(&format!(" — {note}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_document_is_summed() {
        let document = serde_json::json!([
            {"partition": 0, "start": 0, "end": 10},
            {"partition": 1, "start": 5, "end": 7}
        ]);
        assert_eq!(sum_of_ranges(&document), Some(12));
        assert_eq!(sum_of_ranges(&serde_json::json!({"x": 1})), None);
    }

    #[test]
    fn ratio_needs_both_figures() {
        assert_eq!(ratio(Some(50.0), Some(100.0)), Some(0.5));
        assert_eq!(ratio(None, Some(100.0)), None);
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
    }
}
