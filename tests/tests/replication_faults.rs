//! The replication rows of the fault matrix (docs/RELIABILITY.md, "Fault matrix"), one
//! test per row, each against a fresh cluster of real brokers driven by
//! `strata_tests::fault_matrix`: an RF-3 topic of three partitions, idempotent `acks=all`
//! producers and `assign` consumers, a watcher of every partition's high watermark, the
//! row's faults, then the drain, every copy of every partition read back on every broker,
//! and the history checker. A row passes when the checker finds no lost, duplicated or
//! reordered write, no read of uncommitted data, no high-watermark regression and no
//! inconsistent offset, and the row's own promises hold.
//!
//! - row 1, `row_01_kill_the_leader`: the leader of a partition is SIGKILLed under load
//!   and restarted 5 s later; the next kill finds the new leader.
//! - row 2, `row_02_pause_the_leader`: the leader is frozen with SIGSTOP for 15 s while
//!   the others elect a new one, then woken up with SIGCONT; nothing it takes after
//!   waking may be acknowledged or seen.
//! - row 3, `row_03_leader_cut_off_from_the_brokers`: iptables cuts the leader off from
//!   the other two brokers (the clients still reach it) for 15 s, then heals.
//! - row 4, `row_04_isr_of_one_then_the_leader_dies`: both followers are frozen until the
//!   leader is alone in the ISR, then the leader is SIGKILLed and the followers woken:
//!   they must not lead (no unclean election), the partition stays offline until the
//!   leader is back; with `min_insync_replicas` 2 in force, writes are refused while the
//!   ISR is one. Five brokers, so that the controller quorum outlives two frozen ones.
//! - row 6, `row_06_kill_every_broker`: all three brokers are SIGKILLed and restarted
//!   (`flush = always`, the default).
//! - row 7, `row_07_torn_tail`: the leader is SIGKILLed, a few bytes are cut off the end
//!   of each of its active segments, and it is restarted.
//! - row 10, `row_10_follower_lags`: a follower is frozen past the ISR lag bound, must
//!   leave the ISR, and rejoins once woken; the high watermark never goes back.
//! - row 11, `row_11_rolling_restart`: each broker in turn gets SIGTERM, must stop
//!   cleanly within 30 s and is restarted; producers on the client's default timeouts
//!   must see no error that is not retriable.
//! - row 13, `row_13_produce_response_lost`: the clients' link to the leader is cut
//!   while sends are in flight, so appended batches lose their answers and are retried;
//!   every other time the leader is also killed, so the retries reach a new leader. Each
//!   retry must get its first offset back, and the log must hold one copy.
//! - row 17, `row_17_clients_cut_off_from_the_leader`: the clients cannot reach the
//!   leader for 8 s; sends that time out may be in the log at most once, in order.
//!
//! Rows 3, 13 and 17 need iptables (root) and say SKIPPED otherwise. The ISR lag bound
//! is set with `--replica-lag-time-max-ms` when the broker has that flag, and is the
//! broker's 10 s default otherwise (row 10 then pauses longer).
//!
//! Settings (environment, as for `fault_history.rs`): `STRATA_FAULT_SECONDS` (how long
//! each run injects faults; 15), `STRATA_FAULT_RUNS` (runs per row; 1),
//! `STRATA_FAULT_SEED` (the first run's seed; random), `STRATA_FAULT_HISTORY_DIR` (keep
//! every run's history there; otherwise only a failing run's, in the temporary
//! directory). With more than one run, or with `STRATA_FAULT_REPORT` set, each row
//! appends its line to a Markdown table in `$STRATA_FAULT_REPORT` (default
//! the workspace's target directory, file fault-matrix-report.md). `STRATA_FAULT_CHASE`
//! (any value) makes row 2 pause the leader's successor too, the moment it takes over
//! (a second zombie paused in its first moments as leader). A run whose settling runs
//! out keeps every broker's thread stacks next to its history (`<history>.node<N>.stacks`).
//! The long mode:
//!
//! ```text
//! STRATA_FAULT_RUNS=20 STRATA_FAULT_SECONDS=300 \
//!     cargo test -p strata-tests --test replication_faults -- --nocapture --test-threads 1
//! ```
//!
//! Only the history and the rows' own checks decide; the time limits only bound waits,
//! and running out of one fails the run. Unavailability is printed and reported, never
//! asserted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use strata_tests::fault_matrix::{run_row, Row, RowResult, RunConfig};
use strata_tests::firewall;

/// The rows load the two cores fully: they run one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a whole number")),
        Err(_) => default,
    }
}

/// Where the report goes when it is written: `$STRATA_FAULT_REPORT`, or
/// fault-matrix-report.md in the target directory in long mode; `None` for a brief run.
fn report_path(runs: u64) -> Option<PathBuf> {
    match std::env::var_os("STRATA_FAULT_REPORT") {
        Some(path) => Some(path.into()),
        None if runs > 1 => {
            Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/fault-matrix-report.md"))
        }
        None => None,
    }
}

/// Appends `result` to the report, with the table header when the file is new.
fn append_report(path: &PathBuf, result: &RowResult, seconds: u64) {
    let new = !path.exists();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|error| panic!("open {}: {error}", path.display()));
    if new {
        writeln!(file, "{}", RowResult::table_header()).unwrap();
    }
    writeln!(
        file,
        "{} <!-- {seconds} s of faults per run -->",
        result.table_row()
    )
    .unwrap();
}

fn run(row: Row) {
    let _one_at_a_time = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let test = format!("replication_faults row {}", row.number());
    if row.needs_firewall() && !firewall::skip_unless_available(&test) {
        return;
    }
    let runs = env_number("STRATA_FAULT_RUNS", 1);
    let seconds = env_number("STRATA_FAULT_SECONDS", 15);
    let first_seed = env_number("STRATA_FAULT_SEED", rand::random::<u32>().into());
    let history_dir = std::env::var_os("STRATA_FAULT_HISTORY_DIR").map(PathBuf::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let mut result = RowResult::new(row);
    let mut failed = Vec::new();
    for run in 1..=runs {
        let seed = first_seed + run - 1;
        let label = format!("{test} ({}) run {run}/{runs} seed {seed}", row.name());
        let config = RunConfig {
            fault_time: Duration::from_secs(seconds),
            seed,
            history_dir: history_dir.clone(),
        };
        match runtime.block_on(run_row(row, &config)) {
            Ok(outcome) => {
                println!("{label}: {}", outcome.summary());
                if !outcome.passed() {
                    // At once, not only after the last run: a long run takes hours.
                    println!("{label}: {}", outcome.details());
                    failed.push(format!("{label}: {}", outcome.details()));
                }
                result.add(Some(&outcome));
            }
            Err(error) => {
                println!("{label}: error: {error:#}");
                failed.push(format!("{label}: {error:#}"));
                result.add(None);
            }
        }
    }
    println!("{}\n{}", RowResult::table_header(), result.table_row());
    if let Some(path) = report_path(runs) {
        append_report(&path, &result, seconds);
    }
    assert!(
        failed.is_empty(),
        "{} of {runs} runs failed:\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}

#[test]
fn row_01_kill_the_leader() {
    run(Row::KillLeader);
}

#[test]
fn row_02_pause_the_leader() {
    run(Row::PauseLeader);
}

#[test]
fn row_03_leader_cut_off_from_the_brokers() {
    run(Row::IsolateLeader);
}

#[test]
fn row_04_isr_of_one_then_the_leader_dies() {
    run(Row::IsrShrinkThenKill);
}

#[test]
fn row_06_kill_every_broker() {
    run(Row::KillAll);
}

#[test]
fn row_07_torn_tail() {
    run(Row::TornTail);
}

#[test]
fn row_10_follower_lags() {
    run(Row::FollowerLag);
}

#[test]
fn row_11_rolling_restart() {
    run(Row::RollingRestart);
}

#[test]
fn row_13_produce_response_lost() {
    run(Row::LostResponse);
}

#[test]
fn row_17_clients_cut_off_from_the_leader() {
    run(Row::ClientCut);
}
