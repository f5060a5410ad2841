//! Retry and dead-letter topics under crashes (issue 22): the consuming process is
//! SIGKILLed 20 times at random points while 10,000 records flow, 30 % of them failing
//! once and 5 % always failing, and no record is lost.
//!
//! One broker (fast group timing: heartbeats every 100 ms, members expelled after 1.5 s
//! of silence) holds a 4-partition topic of 10,000 records whose values are their ids.
//! `retry_worker` processes run one at a time in one group with a retry policy of 3
//! attempts (waits of 100 and 200 ms) and auto-commit every 100 ms. The test kills each
//! of the first 20 with SIGKILL at a point its seed chooses (1..=400 handler calls after
//! the worker's first commit, then 0..=20 ms more, so the kill lands anywhere: in the
//! handler, in a hand-off, in a commit), waits until the group has expelled it and
//! reads the group's committed offsets: what the dead worker left committed. The 21st
//! worker runs until the group's committed offsets reach the end of the source topic
//! and of both retry topics. The test then reads the retry topics and the dead-letter
//! topic back, and `strata_tests::retry_crash::check` decides: every id processed or
//! dead-lettered, nothing lost, each duplicate after the last commit of a killed
//! worker; it prints the counts. If a worker finishes everything before its kill point,
//! it is the last one, and the test fails after the check for lack of kills.
//!
//! Seed: `STRATA_SEED` (default: from the clock, printed). It replays the kill points
//! (handler calls and delay), not the scheduling of the processes. Every wait is bounded
//! and waits for a condition; nothing depends on how long anything took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata_client::retry_topics::headers::{self, header_text};
use strata_client::{
    Client, ConsumedRecord, NewTopic, Offset, OffsetSpec, Record, RetryTopicNames,
};
use strata_tests::broker_process::BrokerProcess;
use strata_tests::retry_crash::{
    check, handled_count, parse_events, Forwarded, Instance, Partition, Run, RETRY_LEVELS,
};
use tokio_stream::StreamExt;

const TOPIC: &str = "jobs";
const GROUP: &str = "billing";
const PARTITIONS: i32 = 4;
const RECORDS: u64 = 10_000;
const KILLS: usize = 20;
const BROKER_ARGS: [&str; 4] = [
    "--group-heartbeat-interval-ms",
    "100",
    "--group-session-timeout-ms",
    "1500",
];
/// Handler calls a worker makes after the group's committed offsets first moved while it
/// ran (its first commit), before it is killed: every kill leaves something committed
/// and something after it, even where calls are much faster than commits (a library
/// that stopped waiting for its hand-offs). Each worker makes about 100 ms of calls
/// before its first commit plus at most 400; the run needs at least 14,000 calls
/// (10,000 + 3,000 second attempts + 1,000 more for the records that always fail), so
/// every kill falls while records flow.
const BUDGET: std::ops::RangeInclusive<usize> = 1..=400;
/// Then this many milliseconds more.
const KILL_DELAY_MS: std::ops::RangeInclusive<u64> = 0..=20;
/// The longest any one step may take before the test counts as hung.
const WAIT: Duration = Duration::from_secs(60);
/// The longest the last worker may take to finish everything.
const FINAL_WAIT: Duration = Duration::from_secs(180);
/// A worker whose calls stopped this long may have finished everything: the test looks.
const IDLE: Duration = Duration::from_millis(300);

fn seed() -> u64 {
    std::env::var("STRATA_SEED")
        .ok()
        .map(|text| text.parse().expect("STRATA_SEED is a number"))
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            u64::try_from(now.as_micros() % 1_000_000_007).unwrap()
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kills_lose_no_record_and_duplicate_only_after_the_last_commit() {
    let started = Instant::now();
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
    let sources = produce(&client).await;
    let names = RetryTopicNames::new(TOPIC, GROUP).unwrap();
    let retry_topics: Vec<String> = (0..RETRY_LEVELS).map(|level| names.retry(level)).collect();
    let consumed: Vec<Partition> = std::iter::once(TOPIC.to_owned())
        .chain(retry_topics.iter().cloned())
        .flat_map(|topic| (0..PARTITIONS).map(move |partition| (topic.clone(), partition)))
        .collect();

    let seed = seed();
    println!("retry crash: seed {seed} (STRATA_SEED={seed} replays the kill points)");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut event_files = Vec::new();
    let mut committed_after = Vec::new();
    let mut kills = 0;
    let mut ends = None;
    for index in 0..=KILLS {
        let kill_point = (index < KILLS).then(|| {
            let budget = rng.gen_range(BUDGET);
            (budget, Duration::from_millis(rng.gen_range(KILL_DELAY_MS)))
        });
        let before = committed(&client).await;
        let mut worker = Worker::spawn(&broker, dir.path(), index);
        let stop = worker
            .run_until(
                &client,
                &consumed,
                &before,
                kill_point.map(|(budget, _)| budget),
            )
            .await;
        match (stop, kill_point) {
            (Stop::KillPoint { first_commit }, Some((budget, delay))) => {
                tokio::time::sleep(delay).await;
                let handled = worker.kill();
                kills += 1;
                wait_expelled(&client, &worker).await;
                committed_after.push(committed(&client).await);
                println!(
                    "worker {index}: SIGKILLed after {handled} handler calls, its first \
                     commit after {first_commit} (budget {budget} calls, then {delay:?})"
                );
                event_files.push(worker.events.clone());
            }
            (Stop::KillPoint { .. }, None) => unreachable!("the last worker has no kill point"),
            (Stop::Finished(all), _) => {
                let handled = worker.kill();
                println!("worker {index}: finished everything in {handled} handler calls");
                event_files.push(worker.events.clone());
                committed_after.push(all.clone());
                ends = Some(all);
                break;
            }
        }
    }
    let ends = ends.expect("the last worker finishes");

    let dlt = names.dlt();
    let mut forwarded_topics = retry_topics.clone();
    forwarded_topics.push(dlt.clone());
    let forwarded = read_forwarded(&client, &forwarded_topics).await;
    let workers = event_files
        .iter()
        .map(|path| parse_events(&std::fs::read_to_string(path).unwrap()))
        .collect();
    let run = Run {
        group: GROUP.to_owned(),
        retry_topics,
        dlt,
        sources,
        workers,
        committed_after,
        ends,
        forwarded,
    };
    let outcome = match check(&run) {
        Ok(outcome) => outcome,
        Err(problems) => {
            let kept = keep_events(dir.path(), seed);
            let shown = problems.len().min(40);
            panic!(
                "seed {seed}: {} problems (event files kept in {}), the first {shown}:\n{}",
                problems.len(),
                kept.display(),
                problems[..shown].join("\n")
            )
        }
    };
    println!(
        "retry crash: seed {seed}, {kills} kills, {} ids: {} processed, {} dead-lettered, \
         0 lost; {} handler calls, {} redeliveries ({} after a lost partition) left by {} \
         of the kills, {} repeated processings of an id, duplicate forwards {:?}; {:?}",
        outcome.ids,
        outcome.processed,
        outcome.dead_lettered,
        outcome.handlings,
        outcome.redeliveries,
        outcome.redeliveries_after_release,
        outcome.kills_redelivering,
        outcome.processed_again,
        outcome.duplicate_forwards,
        started.elapsed()
    );
    assert_eq!(outcome.processed + outcome.dead_lettered, outcome.ids);
    assert_eq!(kills, KILLS, "the records ran out after {kills} kills");
}

/// Produces the ids `0..RECORDS` round-robin over the partitions, each id as its value;
/// returns where each landed.
async fn produce(client: &Client) -> BTreeMap<u64, Instance> {
    let producer = client.producer().build().unwrap();
    let mut deliveries = Vec::new();
    for id in 0..RECORDS {
        let partition = i32::try_from(id % u64::try_from(PARTITIONS).unwrap()).unwrap();
        let record = Record::to(TOPIC).partition(partition).value(id.to_string());
        deliveries.push((id, producer.enqueue(record).unwrap()));
    }
    producer.flush().await.unwrap();
    let mut sources = BTreeMap::new();
    for (id, delivery) in deliveries {
        let delivery = delivery.await.unwrap();
        let at = Instance {
            topic: TOPIC.to_owned(),
            partition: delivery.partition,
            offset: delivery.offset,
        };
        sources.insert(id, at);
    }
    producer.close().await.unwrap();
    sources
}

/// Why [`Worker::run_until`] returned.
enum Stop {
    /// The worker reached its kill point; `first_commit` is the handler calls it had made
    /// when its first commit was seen.
    KillPoint { first_commit: usize },
    /// Everything is committed; the ends of the consumed partitions.
    Finished(BTreeMap<Partition, i64>),
}

/// One `retry_worker` process.
struct Worker {
    child: Child,
    events: PathBuf,
    client_id: String,
}

impl Worker {
    fn spawn(broker: &BrokerProcess, dir: &Path, index: usize) -> Worker {
        let events = dir.join(format!("worker-{index}.events"));
        let stderr = std::fs::File::create(events.with_extension("stderr")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_retry_worker"))
            .args([
                &broker.address().to_string(),
                TOPIC,
                GROUP,
                events.to_str().unwrap(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start retry_worker");
        let client_id = format!("retry-worker-{}", child.id());
        Worker {
            child,
            events,
            client_id,
        }
    }

    /// The handler calls in the event file so far.
    fn handled(&self) -> usize {
        handled_count(&std::fs::read_to_string(&self.events).unwrap_or_default())
    }

    /// Fails the test if the worker exited by itself (it never should).
    fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            let stderr =
                std::fs::read_to_string(self.events.with_extension("stderr")).unwrap_or_default();
            panic!("{} exited by itself: {status}\n{stderr}", self.client_id);
        }
    }

    /// Waits until the worker made `budget` handler calls after the group's committed
    /// offsets first differ from `before` (its first commit), or until it finished
    /// everything (checked once its calls stopped for [`IDLE`]).
    async fn run_until(
        &mut self,
        client: &Client,
        consumed: &[Partition],
        before: &BTreeMap<Partition, i64>,
        budget: Option<usize>,
    ) -> Stop {
        let deadline = Instant::now() + if budget.is_some() { WAIT } else { FINAL_WAIT };
        let mut first_commit: Option<usize> = None;
        let mut last_change = (0, Instant::now());
        loop {
            let handled = self.handled();
            if let Some(budget) = budget {
                if first_commit.is_none() && committed(client).await != *before {
                    first_commit = Some(handled);
                }
                if let Some(first) = first_commit.filter(|first| handled >= first + budget) {
                    return Stop::KillPoint {
                        first_commit: first,
                    };
                }
            }
            if handled != last_change.0 {
                last_change = (handled, Instant::now());
            } else if last_change.1.elapsed() >= IDLE {
                if let Some(ends) = finished(client, consumed).await {
                    return Stop::Finished(ends);
                }
                last_change.1 = Instant::now();
            }
            self.assert_alive();
            assert!(
                Instant::now() < deadline,
                "{} made {handled} handler calls (first commit after {first_commit:?}, budget \
                 {budget:?}) and did not finish",
                self.client_id,
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// SIGKILL; the handler calls it made.
    fn kill(&mut self) -> usize {
        self.assert_alive();
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.handled()
    }
}

/// A worker never exits on its own: one left running by a failed test (an assertion
/// unwinds past its `kill`) would keep running, and spinning, long after the test.
impl Drop for Worker {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until the group no longer lists the dead worker's member: from then on nothing
/// it sent can change the committed offsets.
async fn wait_expelled(client: &Client, worker: &Worker) {
    let deadline = Instant::now() + WAIT;
    loop {
        let group = client.admin().describe_group(GROUP).await.unwrap();
        if !group
            .members
            .iter()
            .any(|member| member.client_id == worker.client_id)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} not expelled within {WAIT:?}",
            worker.client_id
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn committed(client: &Client) -> BTreeMap<Partition, i64> {
    let offsets = client
        .admin()
        .committed_offsets(GROUP, None)
        .await
        .expect("OffsetFetch");
    offsets
        .into_iter()
        .filter_map(|offset| Some(((offset.topic, offset.partition), offset.offset?)))
        .collect()
}

/// The ends of the consumed partitions when the group's committed offsets have reached
/// every one of them (read after the offsets, so the ends cannot have grown since):
/// every record handled, every hand-off acknowledged, nothing left to retry.
async fn finished(client: &Client, consumed: &[Partition]) -> Option<BTreeMap<Partition, i64>> {
    let committed = committed(client).await;
    let mut ends = BTreeMap::new();
    for (topic, partition) in consumed {
        let (end, _) = client
            .admin()
            .list_offsets(topic, *partition, OffsetSpec::Latest)
            .await
            .ok()?;
        ends.insert((topic.clone(), *partition), end);
    }
    ends.iter()
        .all(|(partition, end)| committed.get(partition).copied().unwrap_or(0) == *end)
        .then_some(ends)
}

/// Every record of `topics` up to their ends, read without a group.
async fn read_forwarded(client: &Client, topics: &[String]) -> Vec<Forwarded> {
    let mut expected = 0;
    for topic in topics {
        for partition in 0..PARTITIONS {
            let (end, _) = client
                .admin()
                .list_offsets(topic, partition, OffsetSpec::Latest)
                .await
                .unwrap();
            expected += end;
        }
    }
    let mut consumer = client
        .consumer()
        .topics(topics.iter().map(String::as_str))
        .start(Offset::Earliest)
        .build()
        .await
        .unwrap();
    let mut records = Vec::new();
    while i64::try_from(records.len()).unwrap() < expected {
        let record = tokio::time::timeout(WAIT, consumer.next())
            .await
            .expect("reading the retry topics hung")
            .unwrap()
            .unwrap();
        records.push(forwarded(&record));
    }
    records
}

fn forwarded(record: &ConsumedRecord) -> Forwarded {
    let number = |key| header_text(record, key).and_then(|text| text.parse::<i64>().ok());
    let text = |key| header_text(record, key).map(str::to_owned);
    let value = record.value.as_deref().unwrap_or_default();
    Forwarded {
        at: Instance {
            topic: record.topic.to_string(),
            partition: record.partition,
            offset: record.offset,
        },
        id: std::str::from_utf8(value)
            .ok()
            .and_then(|id| id.parse().ok()),
        attempt: number(headers::ATTEMPT).and_then(|attempt| u32::try_from(attempt).ok()),
        original_topic: text(headers::ORIGINAL_TOPIC),
        original_partition: number(headers::ORIGINAL_PARTITION)
            .and_then(|partition| i32::try_from(partition).ok()),
        original_offset: number(headers::ORIGINAL_OFFSET),
        original_group: text(headers::ORIGINAL_GROUP),
        due_ms: number(headers::RETRY_DUE_MS),
        error_kind: text(headers::ERROR_KIND),
        error_type: text(headers::ERROR_TYPE),
        error_message: text(headers::ERROR_MESSAGE),
    }
}

/// Copies a failing run's event files out of the temporary directory (dropped when the
/// test panics) to `strata-retry-crash-seed<seed>` in the system's temporary directory.
fn keep_events(dir: &Path, seed: u64) -> PathBuf {
    let kept = std::env::temp_dir().join(format!("strata-retry-crash-seed{seed}"));
    std::fs::create_dir_all(&kept).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), kept.join(entry.file_name())).unwrap();
        }
    }
    kept
}
