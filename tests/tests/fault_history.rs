//! History-based fault test: a one-node broker (`flush = always`, the default) with a
//! 3-partition topic, 3 idempotent producers (`acks=all`, at most 5 requests in flight,
//! request timeout 1 s, delivery timeout 2.5 s, 8 sends outstanding each; one at full
//! speed, two 0–10 ms apart) and 2 consumers reading every partition from the start with
//! `assign`, while a nemesis injects faults. Every send and poll is recorded; at the end the faults are
//! healed, the producers stop, the consumers catch up, every partition is read in full,
//! and the history checker (`strata_tests::history`) must find no lost, duplicated or
//! reordered acknowledged write, no write that failed as "not applied" yet is in the
//! log, and no inconsistent offset.
//!
//! One test per fault mode:
//!
//! - `pause`: SIGSTOP, then SIGCONT, alternately after 3–5 s and 1–3 s (around the
//!   2.5 s delivery timeout);
//! - `kill`: SIGKILL, then restart on the same data;
//! - `terminate`: SIGTERM, wait for the exit (40 s at most: a broker still running then
//!   is SIGKILLed and the run fails), then restart;
//! - `mixed`: any of the three at each step.
//!
//! Settings (environment): `STRATA_FAULT_SECONDS` (how long the faults run per run;
//! 15), `STRATA_FAULT_RUNS` (runs per test; 1), `STRATA_FAULT_SEED` (the first run's
//! seed, for the fault schedule and the producers' choices; random),
//! `STRATA_FAULT_HISTORY_DIR` (keep every run's history there; by default only a failing
//! run's history is written, to the temporary directory). Each run prints one summary
//! line; a failing run also prints its anomalies. The long version:
//!
//! ```text
//! STRATA_FAULT_RUNS=20 STRATA_FAULT_SECONDS=60 \
//!     cargo test -p strata-tests --test fault_history pause -- --nocapture
//! ```
//!
//! Only the history decides the verdict; the time limits (catch-up, final read, the
//! SIGTERM grace period) only bound the waits, and running out of one is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use strata_client::NewTopic;
use strata_tests::broker_process::BrokerProcess;
use strata_tests::history::{check, Recorder, Report};
use strata_tests::nemesis::{Fault, Nemesis, NemesisConfig};
use strata_tests::workload::{connect, final_read, Workload, WorkloadConfig};

const TOPIC: &str = "history";
const PARTITIONS: i32 = 3;
/// Bounds the consumers' catch-up and the final read.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// The tests of this file load the machine fully: they run one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn pause() {
    run_mode("pause", &[Fault::Pause]);
}

#[test]
fn kill() {
    run_mode("kill", &[Fault::Kill]);
}

#[test]
fn terminate() {
    run_mode("terminate", &[Fault::Terminate]);
}

#[test]
fn mixed() {
    run_mode("mixed", &[Fault::Pause, Fault::Kill, Fault::Terminate]);
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a whole number")),
        Err(_) => default,
    }
}

fn run_mode(mode: &str, faults: &[Fault]) {
    let _one_at_a_time = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let runs = env_number("STRATA_FAULT_RUNS", 1);
    let duration = Duration::from_secs(env_number("STRATA_FAULT_SECONDS", 15));
    let first_seed = env_number("STRATA_FAULT_SEED", rand::random::<u32>().into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut failed = Vec::new();
    for run in 1..=runs {
        let seed = first_seed + run - 1;
        let label = format!("fault_history {mode} run {run}/{runs} seed {seed}");
        match runtime.block_on(one_run(faults, seed, duration)) {
            Ok(outcome) => {
                println!("{label}: {}", outcome.summary());
                let keep = std::env::var_os("STRATA_FAULT_HISTORY_DIR");
                if outcome.passed() && keep.is_none() {
                    continue;
                }
                let directory = keep.map_or_else(std::env::temp_dir, Into::into);
                let path = directory.join(format!("strata-fault-history-{mode}-seed{seed}.txt"));
                let saved = match outcome.recorder.dump(&path) {
                    Ok(()) => format!("history: {}", path.display()),
                    Err(error) => format!("history not saved: {error:#}"),
                };
                if outcome.passed() {
                    println!("{saved}");
                } else {
                    let details = outcome.details();
                    println!("{details}\n{saved}");
                    failed.push(format!("{label}: {details}\n{saved}"));
                }
            }
            Err(error) => {
                println!("{label}: error: {error:#}");
                failed.push(format!("{label}: {error:#}"));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {runs} runs failed:\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}

/// What one run found.
struct RunOutcome {
    recorder: Recorder,
    report: Report,
    faults: usize,
    rebuilt_producers: usize,
    elapsed: Duration,
    /// Liveness and broker failures (not anomalies of the history).
    failures: Vec<String>,
}

impl RunOutcome {
    fn passed(&self) -> bool {
        self.report.is_valid() && self.failures.is_empty()
    }

    fn summary(&self) -> String {
        format!(
            "{} faults, {} producers rebuilt, {:.1} s; {}; {}",
            self.faults,
            self.rebuilt_producers,
            self.elapsed.as_secs_f64(),
            self.report.summary(),
            if self.passed() { "ok" } else { "FAILED" }
        )
    }

    fn details(&self) -> String {
        let mut text = self.report.to_string();
        for failure in &self.failures {
            text.push_str(&format!("\nfailure: {failure}"));
        }
        text
    }
}

async fn one_run(faults: &[Fault], seed: u64, duration: Duration) -> anyhow::Result<RunOutcome> {
    let started = Instant::now();
    let data = tempfile::tempdir()?;
    let broker = BrokerProcess::start(data.path(), &[])?;
    let config = WorkloadConfig {
        seed,
        ..WorkloadConfig::new(vec![broker.address().to_string()], TOPIC, PARTITIONS)
    };
    connect(&config, "setup")
        .await?
        .admin()
        .create_topic(NewTopic::new(TOPIC).partitions(PARTITIONS))
        .await?;

    let recorder = Recorder::new();
    let mut workload = Workload::start(config.clone(), recorder.clone()).await?;
    let nemesis = Nemesis::start(
        vec![broker],
        NemesisConfig::new(faults.to_vec(), seed),
        recorder.clone(),
    )?;
    tokio::time::sleep(duration).await;
    let healed = tokio::task::spawn_blocking(move || nemesis.stop()).await??;

    let mut failures = healed.failures;
    let tally = workload.stop_producers().await?;
    if tally.stuck > 0 {
        failures.push(format!(
            "{} sends never completed (see the history)",
            tally.stuck
        ));
    }
    if let Err(error) = workload.catch_up(DRAIN_LIMIT).await {
        failures.push(format!("{error:#}"));
    }
    final_read(&config, &recorder, "final-read", DRAIN_LIMIT).await?;
    let report = check(&recorder.entries());
    drop(healed.brokers); // killed by their Drop
    Ok(RunOutcome {
        recorder,
        report,
        faults: healed.faults,
        rebuilt_producers: tally.rebuilt,
        elapsed: started.elapsed(),
        failures,
    })
}
