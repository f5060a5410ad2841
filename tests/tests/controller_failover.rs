//! The controller quorum survives the loss of its leader (issue 19): the controller
//! leader of three real brokers is SIGKILLed ten times in a row under a producer.
//!
//! Each time a new leader (another broker) takes over and a topic can be created again,
//! every broker's metadata version only grows, and produce to the partitions of the live
//! brokers never fails; at the end every acknowledged record is read back exactly once at
//! its offset. The time from the kill to the first successful topic creation is printed
//! (p50, p99, max) but decides nothing.
//!
//! Before each kill every voter must hold the leader's whole log (lag 0 in the leader's
//! `DescribeCluster`, see [`healthy`]): a voter just restarted and still behind cannot win
//! the election, and its failed candidacy resets the up-to-date voter's election timer, so
//! killing the leader then measures 7–12 s instead of 3–4 s.
//!
//! Brokers are asked one by one over raw gRPC where it matters which broker answers (the
//! client's admin calls go to whichever broker it knows first). A voter catching up after
//! a long absence is `controller_catch_up.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use strata_client::{Acks, Client, NewTopic, Offset, OffsetSpec, Record};
use strata_tests::admin_retry::create_retrying;
use strata_tests::cluster::Cluster;
use strata_tests::cluster_views::{
    describe_at, healthy, leader_at, metadata_at, start_three_voters, topics_at, WAIT,
};
use strata_tests::wait::{wait_for, wait_until};
use tokio::sync::watch;
use tokio_stream::StreamExt;

fn block<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// The highest metadata version each broker has reported; a lower one later is a
/// violation, also across a restart of that broker.
#[derive(Debug, Default)]
struct VersionWatch {
    highest: BTreeMap<u8, i64>,
    samples: u64,
    violations: Vec<String>,
}

impl VersionWatch {
    fn observe(&mut self, node: u8, version: i64, when: &str) {
        self.samples += 1;
        let highest = self.highest.entry(node).or_insert(version);
        if version < *highest {
            self.violations.push(format!(
                "node {node} reported metadata version {version} {when}, after {highest}"
            ));
        }
        *highest = (*highest).max(version);
    }

    /// Asks each of `nodes`; brokers that do not answer (starting, or just killed) are
    /// skipped.
    async fn sample(&mut self, cluster: &Cluster, nodes: &[u8], when: &str) {
        for node in nodes {
            if let Ok(described) = describe_at(cluster, *node).await {
                self.observe(*node, described.metadata_version, when);
            }
        }
    }

    fn cluster_highest(&self) -> i64 {
        self.highest.values().copied().max().unwrap_or(-1)
    }
}

/// One acknowledged send of the background producer.
#[derive(Debug, Clone)]
struct Ack {
    partition: i32,
    offset: i64,
    value: String,
}

#[derive(Debug, Default)]
struct ProducerReport {
    acks: Vec<Ack>,
    failures: Vec<String>,
    slowest_send: Duration,
}

/// Which partitions the producer may send to, numbered so the test can wait until it
/// switched.
type Targets = (u64, Vec<i32>);

/// Sends to the current target partitions in turn, one send at a time, until `stop`.
/// Publishes on `switched` the generation of the targets it uses once no send to the
/// previous ones is outstanding.
async fn produce_continuously(
    client: Client,
    topic: &'static str,
    mut targets: watch::Receiver<Targets>,
    switched: watch::Sender<u64>,
    stop: watch::Receiver<bool>,
    acked_count: Arc<AtomicU64>,
) -> anyhow::Result<ProducerReport> {
    let producer = client
        .producer()
        .acks(Acks::All)
        .idempotence(true)
        .request_timeout(Duration::from_secs(5))
        .delivery_timeout(Duration::from_secs(30))
        .build()?;
    let mut report = ProducerReport::default();
    let mut sequence = 0_u64;
    while !*stop.borrow() {
        let (generation, partitions) = targets.borrow_and_update().clone();
        switched.send_replace(generation);
        if partitions.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        for partition in partitions {
            let value = format!("p{partition}-{sequence}");
            sequence += 1;
            let started = Instant::now();
            let record = Record::to(topic).partition(partition).value(value.clone());
            match producer.send(record).await {
                Ok(delivery) => {
                    report.acks.push(Ack {
                        partition: delivery.partition,
                        offset: delivery.offset,
                        value,
                    });
                    acked_count.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => report
                    .failures
                    .push(format!("{value} to partition {partition}: {error}")),
            }
            report.slowest_send = report.slowest_send.max(started.elapsed());
        }
    }
    producer.close().await?;
    Ok(report)
}

/// Every record of `topic`'s partitions `0..partitions`, read from the start up to the
/// log end offsets: `(partition, offset) → value`.
async fn read_everything(
    client: &Client,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<BTreeMap<(i32, i64), String>> {
    let mut ends = Vec::new();
    for partition in 0..partitions {
        let (end, _) = client
            .admin()
            .list_offsets(topic, partition, OffsetSpec::Latest)
            .await
            .with_context(|| format!("log end of {topic}-{partition}"))?;
        ends.push(end);
    }
    let mut consumer = client
        .consumer()
        .assign((0..partitions).map(|partition| (topic.to_owned(), partition)))
        .start(Offset::Earliest)
        .build()
        .await?;
    let reached = |consumer: &strata_client::Consumer| {
        (0..partitions).zip(&ends).all(|(partition, end)| {
            consumer
                .position(topic, partition)
                .is_some_and(|position| position >= *end)
        })
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut records = BTreeMap::new();
    while !reached(&consumer) {
        let record = match tokio::time::timeout_at(deadline, consumer.next()).await {
            Err(_) => bail!("reading {topic} did not reach the ends {ends:?} within {WAIT:?}"),
            Ok(None) => bail!("the consumer's stream ended"),
            Ok(Some(record)) => record?,
        };
        let value = String::from_utf8_lossy(record.value.as_deref().unwrap_or_default());
        records.insert((record.partition, record.offset), value.into_owned());
    }
    consumer.close().await?;
    Ok(records)
}

/// The `p`-th percentile (nearest rank) of sorted `values`.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// Polls the `live` brokers (sampling their metadata versions) until one names a
/// controller leader other than `victim`; returns how long after `killed_at` that was.
async fn watch_for_new_leader(
    cluster: &Cluster,
    live: &[u8],
    victim: u8,
    killed_at: Instant,
    versions: &mut VersionWatch,
) -> anyhow::Result<Duration> {
    while killed_at.elapsed() < WAIT {
        for node in live {
            let Ok(described) = describe_at(cluster, *node).await else {
                continue;
            };
            versions.observe(*node, described.metadata_version, "while leaderless");
            let leader = described.controller_leader;
            if leader >= 1 && leader != i32::from(victim) {
                return Ok(killed_at.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("no live broker named a new controller leader within {WAIT:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_controller_leader_killed_ten_times() {
    const TOPIC: &str = "load";
    const PARTITIONS: i32 = 6;
    const ROUNDS: usize = 10;
    let test_started = Instant::now();
    let mut cluster = start_three_voters();
    let nodes = cluster.nodes();
    wait_for("the cluster forms", WAIT, || healthy(&cluster, None))
        .await
        .unwrap();
    let admin_client = cluster.bootstrap_client().await.unwrap();
    admin_client
        .admin()
        .create_topic(
            NewTopic::new(TOPIC)
                .partitions(PARTITIONS)
                .replication_factor(1),
        )
        .await
        .unwrap();
    let (_, _) = wait_for("every partition has its leader", WAIT, || {
        healthy(&cluster, Some(TOPIC))
    })
    .await
    .unwrap();
    let metadata = metadata_at(&cluster, 1).await.unwrap();
    let replica_of: BTreeMap<i32, i32> = metadata
        .topics
        .iter()
        .find(|topic| topic.name == TOPIC)
        .unwrap()
        .partitions
        .iter()
        .map(|partition| (partition.partition, partition.replicas[0]))
        .collect();
    assert_eq!(replica_of.len(), PARTITIONS as usize, "{metadata:?}");
    eprintln!("partition → broker: {replica_of:?}");

    let every_partition: Vec<i32> = replica_of.keys().copied().collect();
    let (targets_sender, targets) = watch::channel::<Targets>((0, every_partition));
    let (switched_sender, switched) = watch::channel(0_u64);
    let (stop_sender, stop) = watch::channel(false);
    let acked_count = Arc::new(AtomicU64::new(0));
    let producer = tokio::spawn(produce_continuously(
        cluster.bootstrap_client().await.unwrap(),
        TOPIC,
        targets,
        switched_sender,
        stop,
        Arc::clone(&acked_count),
    ));
    // Warmed up first: a new idempotent producer's id comes from the controller.
    wait_until("the producer is under way", WAIT, || {
        let acked = acked_count.load(Ordering::Relaxed);
        async move { acked >= 100 }
    })
    .await
    .unwrap();

    let mut versions = VersionWatch::default();
    let mut kill_to_create = Vec::new();
    let mut kill_to_elected = Vec::new();
    let mut new_leaders = Vec::new();
    let mut acks_while_leaderless = Vec::new();
    for round in 0..ROUNDS {
        let (victim, described) =
            wait_for("a healthy cluster", WAIT, || healthy(&cluster, Some(TOPIC)))
                .await
                .unwrap();
        let incarnation = described
            .brokers
            .iter()
            .find(|broker| broker.node_id == i32::from(victim))
            .unwrap()
            .incarnation;
        let targets: Vec<i32> = replica_of
            .iter()
            .filter(|(_, broker)| **broker != i32::from(victim))
            .map(|(partition, _)| *partition)
            .collect();
        let generation = round as u64 + 1;
        targets_sender.send_replace((generation, targets));
        wait_until("the producer leaves the victim's partitions", WAIT, || {
            let switched = *switched.borrow();
            async move { switched >= generation }
        })
        .await
        .unwrap();
        let live: Vec<u8> = nodes
            .iter()
            .copied()
            .filter(|node| *node != victim)
            .collect();
        let create_client = cluster
            .client_builder(&live)
            .request_timeout(Duration::from_secs(5))
            .build()
            .await
            .unwrap();
        versions.sample(&cluster, &nodes, "before the kill").await;
        let highest_before = versions.cluster_highest();
        let acks_before = acked_count.load(Ordering::Relaxed);

        block(|| cluster.kill(victim)).unwrap();
        let killed_at = Instant::now();
        let new_topic = format!("t-{round}");
        let create = create_retrying(&create_client, &new_topic, WAIT);
        let watch = watch_for_new_leader(&cluster, &live, victim, killed_at, &mut versions);
        let (attempts, elected_after) = tokio::join!(create, watch);
        let attempts = attempts.unwrap();
        let elected_after = elected_after.unwrap();
        kill_to_elected.push(elected_after);
        let elapsed = killed_at.elapsed();
        kill_to_create.push(elapsed);
        acks_while_leaderless.push(acked_count.load(Ordering::Relaxed) - acks_before);

        let new_leader = wait_for("the live brokers name the new leader", WAIT, || async {
            let mut seen = BTreeSet::new();
            for node in &live {
                seen.insert(leader_at(&cluster, *node).await?.0);
            }
            match seen.into_iter().collect::<Vec<_>>()[..] {
                [leader] => anyhow::Ok(leader),
                ref several => bail!("the live brokers disagree: {several:?}"),
            }
        })
        .await
        .unwrap();
        assert_ne!(
            new_leader, victim,
            "round {round}: the killed broker still leads"
        );
        new_leaders.push(new_leader);
        wait_until(
            "the new leader's metadata passes every version seen before the kill",
            WAIT,
            || async {
                describe_at(&cluster, new_leader)
                    .await
                    .is_ok_and(|described| described.metadata_version > highest_before)
            },
        )
        .await
        .unwrap();
        versions.sample(&cluster, &live, "after the create").await;
        eprintln!(
            "round {round}: killed controller leader {victim}; {new_leader} named after \
             {elected_after:?}; t-{round} created {elapsed:?} after the kill ({attempts} \
             attempts); {} acks meanwhile",
            acks_while_leaderless[round]
        );

        block(|| cluster.restart(victim)).unwrap();
        versions
            .sample(&cluster, &[victim], "right after its restart")
            .await;
        wait_until("the restarted broker is unfenced", WAIT, || async {
            let Ok((_, described)) = leader_at(&cluster, new_leader).await else {
                return false;
            };
            described.brokers.iter().any(|broker| {
                broker.node_id == i32::from(victim)
                    && !broker.fenced
                    && broker.incarnation > incarnation
            })
        })
        .await
        .unwrap();
        versions.sample(&cluster, &nodes, "after the restart").await;
    }

    stop_sender.send_replace(true);
    let report = tokio::time::timeout(WAIT, producer)
        .await
        .expect("the producer stops")
        .unwrap()
        .unwrap();
    let records = read_everything(&admin_client, TOPIC, PARTITIONS)
        .await
        .unwrap();
    let created: BTreeSet<String> = (0..ROUNDS).map(|round| format!("t-{round}")).collect();
    for node in &nodes {
        wait_until("every broker lists every topic created", WAIT, || async {
            topics_at(&cluster, *node)
                .await
                .is_ok_and(|topics| topics.is_superset(&created))
        })
        .await
        .unwrap();
    }

    let mut elected = kill_to_elected.clone();
    elected.sort();
    eprintln!(
        "controller failover, kill → a live broker names the new leader: p50 {:?}, max {:?}",
        percentile(&elected, 50),
        elected[elected.len() - 1]
    );
    let mut sorted = kill_to_create.clone();
    sorted.sort();
    eprintln!(
        "controller failover, kill → topic created, {ROUNDS} kills: p50 {:?}, p99 {:?}, max {:?} \
         (all: {kill_to_create:?})",
        percentile(&sorted, 50),
        percentile(&sorted, 99),
        sorted[sorted.len() - 1]
    );
    eprintln!(
        "producer: {} acks, {} failures, slowest send {:?}; acks between each kill and the \
         create: {acks_while_leaderless:?}; {} metadata versions sampled; test took {:?}",
        report.acks.len(),
        report.failures.len(),
        report.slowest_send,
        versions.samples,
        test_started.elapsed()
    );

    assert_eq!(new_leaders.len(), ROUNDS, "{new_leaders:?}");
    assert_eq!(kill_to_create.len(), ROUNDS);
    assert!(versions.violations.is_empty(), "{:#?}", versions.violations);
    assert!(
        report.failures.is_empty(),
        "sends to live brokers failed: {:#?}",
        report.failures
    );
    assert!(!report.acks.is_empty());
    let mut copies: BTreeMap<&str, usize> = BTreeMap::new();
    for value in records.values() {
        *copies.entry(value.as_str()).or_default() += 1;
    }
    for ack in &report.acks {
        assert_eq!(
            records.get(&(ack.partition, ack.offset)),
            Some(&ack.value),
            "acked {ack:?} is not at its offset"
        );
        assert_eq!(copies.get(ack.value.as_str()), Some(&1), "{ack:?}");
    }
    assert_eq!(
        records.len(),
        report.acks.len(),
        "every record read was acked (nothing failed, so nothing else was sent)"
    );
}
