//! Fault-matrix row 12: a consumer-group member dies after poll and before commit, or
//! after commit and before processing, with real consumer processes.
//!
//! One broker (fast group timing: heartbeats every 100 ms, members expelled after 1.5 s of
//! silence) holds a 4-partition topic of 2,000 records. Each run is a fresh group: the
//! `group_worker` binary (`CommitMode::Manual`) is started, one at a time, and each
//! worker aborts itself at a point its seed chooses; the next worker starts once the
//! previous one is dead, and takes over its partitions once the coordinator expels it.
//! The run ends when the workers' acknowledged commits reach every partition's log end
//! and the last worker's poll found nothing; that worker is then SIGKILLed. The workers'
//! event files are checked by `strata_tests::group_crash::check`:
//!
//! - crash before commit: every record processed at least once; each redelivery lies in
//!   `[committed, last polled]` of the partition's previous holder (Kafka's
//!   `(committed, last polled]`), and they are counted;
//! - crash before processing: a record never processed was committed and not processed
//!   by the worker that died (the at-most-once window of commit-before-process), and
//!   nothing outside such a window is missing;
//! - both: each worker starts every partition exactly at the committed offset, the
//!   group's final offsets are the last acknowledged commits;
//! - once the coordinator has expelled a dead worker's member, a commit sent with its
//!   member id and epoch (seen in DescribeGroups while it lived) is refused with
//!   `UNKNOWN_MEMBER_ID`, `FENCED_MEMBER_EPOCH` or `STALE_MEMBER_EPOCH`, and the committed
//!   offset is unchanged.
//!
//! Runs per mode: `STRATA_ROW12_RUNS` (default 3; the acceptance run is 20). Seeds:
//! `STRATA_ROW12_SEED` (default: from the clock, printed). Every wait is bounded and
//! waits for a condition; no outcome depends on how long anything took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::code;
use strata_client::{Client, NewTopic, Record};
use strata_proto::api::v1::group_api_client::GroupApiClient;
use strata_proto::api::v1::{
    ErrorCode, OffsetCommitPartition, OffsetCommitRequest, OffsetCommitTopic,
};
use strata_tests::broker_process::BrokerProcess;
use strata_tests::group_crash::{acknowledged, check, parse_events, CrashMode, Outcome, IDLE};

const TOPIC: &str = "jobs";
const PARTITIONS: i32 = 4;
const RECORDS: i64 = 2_000;
const SESSION_TIMEOUT_MS: &str = "1500";
const BROKER_ARGS: [&str; 4] = [
    "--group-heartbeat-interval-ms",
    "100",
    "--group-session-timeout-ms",
    SESSION_TIMEOUT_MS,
];
/// The longest one run may take before the test counts as hung.
const RUN_WAIT: Duration = Duration::from_secs(180);
/// The most workers one run may start (each polls at least one record before dying).
const WORKERS_MAX: usize = 200;

fn runs() -> usize {
    std::env::var("STRATA_ROW12_RUNS")
        .ok()
        .map(|text| text.parse().expect("STRATA_ROW12_RUNS is a number"))
        .unwrap_or(3)
}

fn base_seed() -> u64 {
    std::env::var("STRATA_ROW12_SEED")
        .ok()
        .map(|text| text.parse().expect("STRATA_ROW12_SEED is a number"))
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            u64::try_from(now.as_micros() % 1_000_000_007).unwrap()
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_poll_before_commit_redelivers_only_what_was_polled_after_the_commit() {
    row_12(CrashMode::BeforeCommit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_commit_before_processing_loses_only_what_was_committed_unprocessed() {
    row_12(CrashMode::BeforeProcessing).await;
}

async fn row_12(mode: CrashMode) {
    let dir = tempfile::tempdir().unwrap();
    let broker = tokio::task::block_in_place(|| {
        BrokerProcess::start(&dir.path().join("broker"), &BROKER_ARGS)
    })
    .expect("start strata-broker (built with `cargo build -p strata-broker`?)");
    let client = Client::builder()
        .brokers([broker.address().to_string()])
        .request_timeout(Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    client
        .admin()
        .create_topic(NewTopic::new(TOPIC).partitions(PARTITIONS))
        .await
        .unwrap();
    let ends = produce(&client).await;

    let seed = base_seed();
    let runs = runs();
    println!("row 12 {}: {runs} runs, seed {seed}", mode.as_arg());
    let mut total = Outcome::default();
    let mut workers_total = 0;
    let mut stale_refused = 0;
    for run in 0..runs {
        let run_dir = dir.path().join(format!("run-{run}"));
        std::fs::create_dir_all(&run_dir).unwrap();
        let group = format!("workers-{run}");
        let run_seed = seed.wrapping_add(1_000 * run as u64);
        let result = run_once(&broker, &client, mode, &group, run_seed, &run_dir, &ends).await;
        println!(
            "run {run} (seed {run_seed}): {} workers, {} records processed, {} redeliveries, \
             {} lost, {} holdings cut with records polled after the last commit; {} stale \
             commits refused",
            result.workers,
            result.outcome.processed,
            result.outcome.redeliveries,
            result.outcome.lost,
            result.outcome.open_windows,
            result.stale_refused,
        );
        workers_total += result.workers;
        stale_refused += result.stale_refused;
        total.processed += result.outcome.processed;
        total.redeliveries += result.outcome.redeliveries;
        total.lost += result.outcome.lost;
        total.open_windows += result.outcome.open_windows;
    }
    println!(
        "row 12 {}: {runs} runs, {workers_total} workers, {} redeliveries, {} lost, {} stale \
         commits refused",
        mode.as_arg(),
        total.redeliveries,
        total.lost,
        stale_refused
    );
    assert!(
        workers_total > runs,
        "every run had only one worker: nothing crashed mid-stream"
    );
    assert!(stale_refused >= 1, "no dead member's commit was tried");
    match mode {
        // A run can end without a redelivery (each worker died right after a commit), but
        // not every run of a mode that crashes between poll and commit.
        CrashMode::BeforeCommit => assert_eq!(total.lost, 0),
        CrashMode::BeforeProcessing => assert!(total.lost > 0, "no commit-before-process loss"),
    }
}

/// Produces `RECORDS` records round-robin over the partitions, values unique; returns
/// each partition's log end.
async fn produce(client: &Client) -> BTreeMap<i32, i64> {
    let producer = client.producer().build().unwrap();
    let mut deliveries = Vec::new();
    for index in 0..RECORDS {
        let partition = i32::try_from(index % i64::from(PARTITIONS)).unwrap();
        let record = Record::to(TOPIC)
            .partition(partition)
            .value(format!("job-{index}"));
        deliveries.push((partition, index, producer.enqueue(record).unwrap()));
    }
    producer.flush().await.unwrap();
    for (partition, index, delivery) in deliveries {
        let delivery = delivery.await.unwrap();
        assert_eq!(delivery.partition, partition);
        assert_eq!(
            delivery.offset,
            index / i64::from(PARTITIONS),
            "offsets in order"
        );
    }
    producer.close().await.unwrap();
    (0..PARTITIONS)
        .map(|partition| (partition, RECORDS / i64::from(PARTITIONS)))
        .collect()
}

struct RunResult {
    workers: usize,
    outcome: Outcome,
    stale_refused: usize,
}

/// A member seen in DescribeGroups: its id and the last epoch seen, and which worker.
#[derive(Debug, Clone)]
struct SeenMember {
    member_id: String,
    epoch: i32,
    worker: usize,
}

fn spawn_worker(
    broker: &BrokerProcess,
    mode: CrashMode,
    group: &str,
    events: &Path,
    seed: u64,
) -> Child {
    let stderr = std::fs::File::create(events.with_extension("stderr")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_group_worker"))
        .args([
            &broker.address().to_string(),
            TOPIC,
            group,
            mode.as_arg(),
            events.to_str().unwrap(),
            &seed.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start group_worker")
}

async fn committed(client: &Client, group: &str) -> BTreeMap<i32, i64> {
    let offsets = client
        .admin()
        .committed_offsets(group, None)
        .await
        .expect("OffsetFetch");
    offsets
        .into_iter()
        .filter(|offset| offset.topic == TOPIC)
        .filter_map(|offset| Some((offset.partition, offset.offset?)))
        .collect()
}

/// The acknowledged commits of the workers so far, once the last worker is idle (its
/// last line says a poll found nothing): `None` while it is busy.
fn finished(event_files: &[PathBuf]) -> Option<BTreeMap<i32, i64>> {
    let texts: Vec<String> = event_files
        .iter()
        .map(|path| std::fs::read_to_string(path).unwrap_or_default())
        .collect();
    let idle = texts.last()?.lines().last() == Some(IDLE);
    let workers: Vec<_> = texts.iter().map(|text| parse_events(text)).collect();
    idle.then(|| acknowledged(&workers))
}

async fn run_once(
    broker: &BrokerProcess,
    client: &Client,
    mode: CrashMode,
    group: &str,
    seed: u64,
    run_dir: &Path,
    ends: &BTreeMap<i32, i64>,
) -> RunResult {
    let deadline = Instant::now() + RUN_WAIT;
    let mut event_files: Vec<PathBuf> = Vec::new();
    let mut members: BTreeMap<String, SeenMember> = BTreeMap::new();
    let mut done = false;
    while !done {
        let index = event_files.len();
        assert!(index < WORKERS_MAX, "{WORKERS_MAX} workers did not finish");
        let events = run_dir.join(format!("worker-{index}.events"));
        let mut child = spawn_worker(
            broker,
            mode,
            group,
            &events,
            seed.wrapping_add(index as u64),
        );
        let client_id = format!("group-worker-{}", child.id());
        event_files.push(events.clone());
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let stderr =
                    std::fs::read_to_string(events.with_extension("stderr")).unwrap_or_default();
                assert_eq!(
                    status.signal(),
                    Some(libc::SIGABRT),
                    "worker {index} did not abort on purpose: {status}\n{stderr}"
                );
                break;
            }
            if let Ok(group) = client.admin().describe_group(group).await {
                for member in group.members {
                    if member.client_id == client_id {
                        members.insert(
                            member.member_id.clone(),
                            SeenMember {
                                member_id: member.member_id,
                                epoch: member.member_epoch,
                                worker: index,
                            },
                        );
                    }
                }
            }
            if finished(&event_files) == Some(ends.clone()) {
                // Everything is committed and processed: the last worker waits for more.
                child.kill().unwrap();
                child.wait().unwrap();
                done = true;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "run of group {group} did not finish within {RUN_WAIT:?} ({} workers)",
                index + 1
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let workers: Vec<_> = event_files
        .iter()
        .map(|path| parse_events(&std::fs::read_to_string(path).unwrap()))
        .collect();
    let final_committed = committed(client, group).await;
    let outcome = match check(mode, ends, &workers, &final_committed) {
        Ok(outcome) => outcome,
        Err(problems) => {
            let kept = keep_events(run_dir, mode, seed);
            panic!(
                "group {group}, seed {seed}: {} problems (event files kept in {}):\n{}",
                problems.len(),
                kept.display(),
                problems.join("\n")
            )
        }
    };

    // Every worker is dead now; once the coordinator has expelled its member, a commit
    // with its member id and last epoch must be refused.
    let mut stale_refused = 0;
    for member in members.values() {
        stale_commit_refused(broker, client, group, member, ends).await;
        stale_refused += 1;
    }
    RunResult {
        workers: event_files.len(),
        outcome,
        stale_refused,
    }
}

/// Copies a failing run's event files out of the temporary directory (dropped when the
/// test panics) to `strata-row12-<mode>-seed<seed>` in the system's temporary directory.
fn keep_events(run_dir: &Path, mode: CrashMode, seed: u64) -> PathBuf {
    let kept = std::env::temp_dir().join(format!("strata-row12-{}-seed{seed}", mode.as_arg()));
    std::fs::create_dir_all(&kept).unwrap();
    for entry in std::fs::read_dir(run_dir).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), kept.join(entry.file_name())).unwrap();
    }
    kept
}

/// Once the coordinator has expelled `member` (a dead worker's), a commit with its id and
/// last epoch, rewinding partition 0 to 0, is refused as from a dead or stale member, and
/// the committed offsets do not change.
async fn stale_commit_refused(
    broker: &BrokerProcess,
    client: &Client,
    group: &str,
    member: &SeenMember,
    ends: &BTreeMap<i32, i64>,
) {
    // Until the session lapses the dead member is still a member, and its commits are
    // (rightly) accepted.
    let deadline = Instant::now() + common::WAIT;
    loop {
        let description = client.admin().describe_group(group).await.unwrap();
        if description.member(&member.member_id).is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dead member {member:?} not expelled within {:?}",
            common::WAIT
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = committed(client, group).await;
    assert_eq!(&before, ends);
    // One broker: it is every group's coordinator.
    let mut groups = GroupApiClient::connect(broker.url()).await.unwrap();
    let request = OffsetCommitRequest {
        group_id: group.to_owned(),
        member_id: member.member_id.clone(),
        member_epoch: member.epoch,
        topics: vec![OffsetCommitTopic {
            topic: TOPIC.to_owned(),
            partitions: vec![OffsetCommitPartition {
                partition: 0,
                offset: 0,
                leader_epoch: -1,
                metadata: "from a dead member".to_owned(),
            }],
        }],
    };
    let response = tokio::time::timeout(common::WAIT, groups.offset_commit(request))
        .await
        .expect("OffsetCommit hung")
        .expect("OffsetCommit rpc")
        .into_inner();
    let mut codes = vec![code(&response.error)];
    for topic in &response.topics {
        for partition in &topic.partitions {
            codes.push(code(&partition.error));
        }
    }
    let refused = codes.iter().any(|code| {
        matches!(
            code,
            ErrorCode::UnknownMemberId | ErrorCode::FencedMemberEpoch | ErrorCode::StaleMemberEpoch
        )
    });
    assert!(
        refused,
        "a commit from worker {}'s dead member {member:?} was not refused: {response:?}",
        member.worker
    );
    assert_eq!(
        committed(client, group).await,
        before,
        "a refused commit changed the offsets"
    );
}
