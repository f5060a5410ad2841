//! The cluster fault runner: one row of the fault matrix against a fresh cluster of real
//! brokers, checked by the history checker ([`run_row`] → [`RunResult`]).
//!
//! A run starts three voters on 127.0.0.2–4 (five for row 4, [`Row::nodes`]), creates an
//! RF-3 topic of [`PARTITIONS`] partitions and waits until every ISR is full. It then
//! starts the [`Workload`] (idempotent producers with `acks=all`, the defaults, and
//! `assign` consumers reading from the start, all bootstrapping from every broker) and a
//! [`hw_watch::HwWatch`] recording `ListOffsets(latest)` answers. The row's episode
//! ([`rows`]) is repeated until the fault time is used up; after each the faults are
//! healed and the run waits until every partition acknowledges again and every ISR is
//! full ([`stage::Stage::settle`]). Then the producers stop, the consumers catch up, every
//! partition is read in full through its leader, the copies of every partition must
//! become equal on every broker, the brokers get SIGTERM, and each copy is read from its
//! data directory with `dump-log` and recorded as a final read of its own
//! ([`replicas`]). The checker decides on the whole history.
//!
//! Unavailability is measured per fault from the history: from the row's mark (the fault,
//! or the heal where the row says so) to the first acknowledgement recorded on every
//! partition ([`unavailability`]). It is reported, never asserted.
//!
//! Every wait is bounded ([`setup::WAIT`]); running out of one fails the run.

pub mod hw_watch;
pub mod replicas;
pub mod rows;
pub mod setup;
pub mod stage;
pub mod thread_stacks;
pub mod unavailability;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::history::{check, Event, Recorder, Report};
use crate::workload::{connect, final_read, Workload, WorkloadConfig, FATAL_SEND_MARK};
use stage::Stage;
pub use unavailability::{unavailability, RowResult};

/// The topic every run writes.
pub const TOPIC: &str = "matrix";
/// Its partitions.
pub const PARTITIONS: i32 = 3;
/// Bounds the drain: the consumers' catch-up, the final read, equal copies.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// Acknowledgements on every partition before the first fault.
const WARM_UP_ACKS: usize = 20;

/// A row of the fault matrix (the numbers are the matrix's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    KillLeader,
    PauseLeader,
    IsolateLeader,
    IsrShrinkThenKill,
    KillAll,
    TornTail,
    FollowerLag,
    RollingRestart,
    LostResponse,
    ClientCut,
}

impl Row {
    pub fn number(self) -> u32 {
        match self {
            Row::KillLeader => 1,
            Row::PauseLeader => 2,
            Row::IsolateLeader => 3,
            Row::IsrShrinkThenKill => 4,
            Row::KillAll => 6,
            Row::TornTail => 7,
            Row::FollowerLag => 10,
            Row::RollingRestart => 11,
            Row::LostResponse => 13,
            Row::ClientCut => 17,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Row::KillLeader => "kill the leader",
            Row::PauseLeader => "pause the leader (zombie)",
            Row::IsolateLeader => "leader cut off from the brokers",
            Row::IsrShrinkThenKill => "ISR of one, then the leader dies",
            Row::KillAll => "kill every broker",
            Row::TornTail => "torn tail",
            Row::FollowerLag => "follower lags",
            Row::RollingRestart => "rolling restart",
            Row::LostResponse => "produce response lost",
            Row::ClientCut => "clients cut off from the leader",
        }
    }

    /// Whether the row cuts links (iptables, root only).
    pub fn needs_firewall(self) -> bool {
        matches!(
            self,
            Row::IsolateLeader | Row::LostResponse | Row::ClientCut
        )
    }

    /// Brokers of the run. Row 4 pauses both followers of a partition while the
    /// controller must still shrink its ISR: with three brokers, all voters, the quorum
    /// would go with them, so that row runs five.
    pub fn nodes(self) -> u8 {
        match self {
            Row::IsrShrinkThenKill => 5,
            _ => 3,
        }
    }

    /// Producer timeouts: the workload's short ones, except row 11 (the client's
    /// defaults, as an application would run) and row 13 (a delivery timeout long
    /// enough for the retries of lost responses to succeed).
    fn timeouts(self) -> Option<(Duration, Duration)> {
        match self {
            Row::RollingRestart => Some((Duration::from_secs(30), Duration::from_secs(120))),
            Row::LostResponse => Some((Duration::from_secs(1), Duration::from_secs(15))),
            _ => None,
        }
    }
}

/// How to run a row.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Faults are injected until this much time has passed (at least one).
    pub fault_time: Duration,
    /// Seeds the producers' choices.
    pub seed: u64,
    /// Where to keep the history: always when set; else a failing run's history goes to
    /// the temporary directory.
    pub history_dir: Option<PathBuf>,
}

/// What one run found.
#[derive(Debug)]
pub struct RunResult {
    pub report: Report,
    /// Unavailability of each fault, with what the fault was.
    pub unavailability: Vec<(String, Duration)>,
    pub faults: usize,
    /// Broken promises of the row beyond the history, and liveness failures.
    pub failures: Vec<String>,
    /// Where the history was written, if it was (each node's log is kept next to it,
    /// as `<history>.node<N>.log`, and after a settle that ran out each node's thread
    /// stacks as `<history>.node<N>.stacks`, [`thread_stacks`]).
    pub history: Option<PathBuf>,
    pub elapsed: Duration,
}

impl RunResult {
    pub fn passed(&self) -> bool {
        self.report.is_valid() && self.failures.is_empty()
    }

    /// One line: faults, checker summary, unavailability, verdict.
    pub fn summary(&self) -> String {
        let worst = self
            .unavailability
            .iter()
            .map(|(_, duration)| *duration)
            .max()
            .unwrap_or_default();
        format!(
            "{} faults in {:.1} s; {}; unavailability max {:.2} s; {}",
            self.faults,
            self.elapsed.as_secs_f64(),
            self.report.summary(),
            worst.as_secs_f64(),
            if self.passed() { "ok" } else { "FAILED" }
        )
    }

    /// The anomalies, failures and where the history is.
    pub fn details(&self) -> String {
        let mut text = self.report.to_string();
        for failure in &self.failures {
            text.push_str(&format!("\nfailure: {failure}"));
        }
        for (what, duration) in &self.unavailability {
            text.push_str(&format!(
                "\nunavailable {:.2} s after {what}",
                duration.as_secs_f64()
            ));
        }
        if let Some(path) = &self.history {
            text.push_str(&format!("\nhistory: {}", path.display()));
        }
        text
    }
}

/// The `min_insync_replicas` the topic reports, 1 when it reports none (the broker
/// before that setting existed).
pub async fn min_insync_replicas(stage: &Stage<'_>) -> usize {
    let addresses: Vec<String> = stage
        .cluster
        .addresses()
        .iter()
        .map(ToString::to_string)
        .collect();
    let config = WorkloadConfig::new(addresses, stage.topic, stage.partitions);
    let Ok(client) = connect(&config, "describe").await else {
        return 1;
    };
    let described = tokio::time::timeout(
        Duration::from_secs(5),
        client.admin().describe_topic(stage.topic),
    )
    .await;
    described
        .ok()
        .and_then(Result::ok)
        .and_then(|topic| {
            topic
                .configs
                .iter()
                .find(|entry| entry.key == "min_insync_replicas")
                .and_then(|entry| entry.value.parse().ok())
        })
        .unwrap_or(1)
}

/// Runs `row` once; see the module documentation. An error is a run that could not be
/// carried out (a broker that does not start, a wait that ran out).
pub async fn run_row(row: Row, config: &RunConfig) -> anyhow::Result<RunResult> {
    let started = Instant::now();
    let (mut options, lag_ms) = setup::options();
    options.nodes = row.nodes();
    let mut cluster = setup::start(options).await?;
    setup::create_topic(&cluster, TOPIC, PARTITIONS).await?;
    let addresses: Vec<String> = cluster
        .addresses()
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut workload_config = WorkloadConfig {
        seed: config.seed,
        ..WorkloadConfig::new(addresses, TOPIC, PARTITIONS)
    };
    if let Some((request, delivery)) = row.timeouts() {
        workload_config.request_timeout = request;
        workload_config.delivery_timeout = delivery;
    }

    let recorder = Recorder::new();
    let mut workload = Workload::start(workload_config.clone(), recorder.clone()).await?;
    let watch = hw_watch::HwWatch::start(&workload_config, recorder.clone()).await?;
    let mut stage = Stage::new(
        &mut cluster,
        &recorder,
        TOPIC,
        PARTITIONS,
        Duration::from_millis(lag_ms),
    );
    stage.measure_from("the start of the clients".to_owned());
    unavailability::wait_for_acks(&recorder, &stage.topic_partitions(), WARM_UP_ACKS).await?;
    stage.marks.clear();

    let faults_started = Instant::now();
    // A fault or a settle that fails ends the faults but not the run: the clients are
    // stopped, the replicas read and the history checked and kept as for any failed run,
    // so what went wrong can be read in the history and the brokers' logs.
    let mut fault_failure = None;
    let mut stacks = Vec::new();
    loop {
        stage.faults += 1;
        let fault = stage.faults;
        if let Err(error) = rows::episode(row, &mut stage).await {
            fault_failure = Some(format!("fault {fault}: {error:#}"));
            break;
        }
        if let Err(error) = stage.settle().await {
            fault_failure = Some(format!("settling after fault {fault}: {error:#}"));
            // Before anything else touches the brokers: what a stuck one is doing.
            stacks = tokio::task::block_in_place(|| thread_stacks::take(stage.cluster));
            break;
        }
        if faults_started.elapsed() >= config.fault_time {
            break;
        }
        stage.hold(Duration::from_secs(2)).await;
    }
    let (marks, faults, mut failures) = (stage.marks.clone(), stage.faults, stage.failures.clone());
    drop(stage);
    failures.extend(fault_failure);

    let tally = workload.stop_producers().await?;
    watch.stop().await;
    if tally.stuck > 0 {
        failures.push(format!("{} sends never completed", tally.stuck));
    }
    if let Err(error) = workload.catch_up(DRAIN_LIMIT).await {
        failures.push(format!("{error:#}"));
    }
    // A final read that cannot finish fails the run, but the history and the brokers'
    // logs are still kept (a leader whose high watermark stayed below its epoch's start
    // once ended a run here with nothing to read).
    if let Err(error) = final_read(&workload_config, &recorder, "final-read", DRAIN_LIMIT).await {
        failures.push(format!("final read: {error:#}"));
    }
    if let Err(error) = replicas::wait_until_equal(&cluster, TOPIC, PARTITIONS, DRAIN_LIMIT).await {
        failures.push(format!("{error:#}"));
    }
    for node in cluster.nodes() {
        if let Err(error) = tokio::task::block_in_place(|| cluster.terminate(node)) {
            failures.push(format!("stopping node {node}: {error:#}"));
        }
    }
    failures.extend(replicas::read_stopped(
        &cluster, &recorder, TOPIC, PARTITIONS,
    )?);
    let fatal = recorder
        .entries()
        .iter()
        .filter(|entry| {
            matches!(&entry.event, Event::SendFail { error, .. } if error.contains(FATAL_SEND_MARK))
        })
        .count();
    if fatal > 0 {
        failures.push(format!(
            "{fatal} sends failed with errors that are not retriable"
        ));
    }

    let entries = recorder.entries();
    let report = check(&entries);
    let unavailability = unavailability(&entries, &marks, TOPIC, PARTITIONS);
    let mut result = RunResult {
        report,
        unavailability,
        faults,
        failures,
        history: None,
        elapsed: started.elapsed(),
    };
    if !result.passed() || config.history_dir.is_some() {
        let directory = config
            .history_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&directory)
            .with_context(|| format!("create {}", directory.display()))?;
        let path = directory.join(format!(
            "strata-fault-matrix-row{}-seed{}.txt",
            row.number(),
            config.seed
        ));
        recorder.dump(&path)?;
        for node in cluster.nodes() {
            let log = path.with_extension(format!("node{node}.log"));
            std::fs::copy(cluster.log_path(node), &log)
                .with_context(|| format!("keep node {node}'s log"))?;
        }
        thread_stacks::keep(&stacks, &path).context("keep the brokers' stacks")?;
        result.history = Some(path);
    }
    Ok(result)
}
