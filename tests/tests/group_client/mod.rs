//! What the group-consumer tests share: a broker with fast group timing, members that
//! read in their own task and log every record and rebalance event, a producer that writes
//! to every partition in turn, and bounded waits.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_client::consumer::{RebalanceEvent, RebalanceEvents};
use strata_client::{Client, CommitMode, Consumer, NewTopic, Offset, Record};
use strata_tests::broker_process::BrokerProcess;
use tokio_stream::StreamExt;

/// The longest any one wait may take before the test counts as hung.
pub const WAIT: Duration = Duration::from_secs(60);

/// Fast group timing: heartbeats every 200 ms, members expelled after 3 s of silence.
pub const BROKER_ARGS: [&str; 4] = [
    "--group-heartbeat-interval-ms",
    "200",
    "--group-session-timeout-ms",
    "3000",
];

pub type Partition = (String, i32);

/// A record a member was given.
#[derive(Debug, Clone)]
pub struct Seen {
    pub partition: i32,
    pub offset: i64,
    pub received: Instant,
}

/// What one member saw.
#[derive(Debug, Default)]
pub struct MemberLog {
    pub assignment: BTreeSet<Partition>,
    pub events: Vec<(Instant, RebalanceEvent)>,
    pub records: Vec<Seen>,
}

/// A consumer reading in its own task until told to stop.
pub struct Member {
    log: Arc<Mutex<MemberLog>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Consumer>,
}

impl Member {
    pub fn spawn(mut consumer: Consumer) -> Member {
        let log = Arc::new(Mutex::new(MemberLog::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let events = consumer.rebalance_events().expect("a group consumer");
        let task = tokio::spawn(read(log.clone(), stop.clone(), consumer, events));
        Member { log, stop, task }
    }

    pub fn assignment(&self) -> BTreeSet<Partition> {
        self.log.lock().unwrap().assignment.clone()
    }

    pub fn events(&self) -> Vec<(Instant, RebalanceEvent)> {
        self.log.lock().unwrap().events.clone()
    }

    pub fn records(&self) -> Vec<Seen> {
        self.log.lock().unwrap().records.clone()
    }

    /// Stops reading and hands the consumer back (still a member).
    pub async fn stop(self) -> Consumer {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

pub async fn read(
    log: Arc<Mutex<MemberLog>>,
    stop: Arc<AtomicBool>,
    mut consumer: Consumer,
    mut events: RebalanceEvents,
) -> Consumer {
    while !stop.load(Ordering::SeqCst) {
        tokio::select! {
            record = consumer.next() => {
                let record = record.expect("the stream ended").expect("a record");
                log.lock().unwrap().records.push(Seen {
                    partition: record.partition,
                    offset: record.offset,
                    received: Instant::now(),
                });
            }
            Some(event) = events.recv() => {
                let mut log = log.lock().unwrap();
                match &event {
                    RebalanceEvent::Assigned(partitions) => {
                        log.assignment.extend(partitions.iter().cloned());
                    }
                    RebalanceEvent::Revoked(partitions) | RebalanceEvent::Lost(partitions) => {
                        for partition in partitions {
                            log.assignment.remove(partition);
                        }
                    }
                    _ => {}
                }
                log.events.push((Instant::now(), event));
            }
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    consumer
}

pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn connect(broker: &BrokerProcess) -> Client {
    Client::builder()
        .brokers([broker.address().to_string()])
        .request_timeout(Duration::from_secs(10))
        .build()
        .await
        .unwrap()
}

pub async fn create_topic(client: &Client, name: &str, partitions: i32) {
    client
        .admin()
        .create_topic(NewTopic::new(name).partitions(partitions))
        .await
        .unwrap();
}

pub async fn group_member(
    client: &Client,
    topic: &str,
    group: &str,
    commit: CommitMode,
) -> Consumer {
    tokio::time::timeout(
        WAIT,
        client
            .consumer()
            .topics([topic])
            .group(group)
            .start(Offset::Earliest)
            .commit(commit)
            .build(),
    )
    .await
    .expect("joining hung")
    .unwrap()
}

/// Produces to every partition in turn until stopped; returns how many records went to
/// each partition.
pub fn spawn_producer(
    client: &Client,
    topic: &'static str,
    partitions: i32,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<BTreeMap<i32, i64>> {
    let producer = client.producer().build().unwrap();
    tokio::spawn(async move {
        let mut sent: BTreeMap<i32, i64> = BTreeMap::new();
        let mut sequence = 0_i64;
        while !stop.load(Ordering::SeqCst) {
            let partition = i32::try_from(sequence % i64::from(partitions)).unwrap();
            producer
                .send(
                    Record::to(topic)
                        .partition(partition)
                        .value(sequence.to_string()),
                )
                .await
                .unwrap();
            *sent.entry(partition).or_default() += 1;
            sequence += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        producer.close().await.unwrap();
        sent
    })
}

pub fn auto_commit() -> CommitMode {
    CommitMode::Auto {
        interval: Duration::from_millis(300),
    }
}

/// Offsets a member got for `partition` in the order it got them.
pub fn offsets_of(records: &[Seen], partition: i32) -> Vec<i64> {
    records
        .iter()
        .filter(|seen| seen.partition == partition)
        .map(|seen| seen.offset)
        .collect()
}

pub fn assert_contiguous(offsets: &[i64], what: &str) {
    for pair in offsets.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "{what}: offsets jump or repeat: {offsets:?}"
        );
    }
}
