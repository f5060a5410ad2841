//! The controller quorum survives the loss of its leader and of a voter (issue 19):
//!
//! - the controller leader is SIGKILLed ten times in a row under a producer: each time a
//!   new leader (another broker) takes over and a topic can be created again, every
//!   broker's metadata version only grows, and produce to the partitions of the live
//!   brokers never fails; at the end every acknowledged record is read back exactly once
//!   at its offset. The time from the kill to the first successful topic creation is
//!   printed (p50, p99, max) but decides nothing;
//! - a voter that was down while the others wrote more than a thousand Raft entries comes
//!   back through a snapshot install (the leader purged the log it would need), reaches
//!   the leader's metadata version, and keeps it across another SIGKILL;
//! - a data directory written by the one-node broker from before the quorum (its metadata
//!   log in the partition `__cluster_metadata-0`, built here with the broker's own log
//!   and metadata-log code) opens with its topic and records, moves its metadata into the
//!   quorum's first snapshot and sets the old log aside; started with three voters it is
//!   refused, untouched.
//!
//! Before each kill every voter must hold the leader's whole log (lag 0 in the leader's
//! `DescribeCluster`): a voter just restarted and still behind cannot win the election, and
//! its failed candidacy resets the up-to-date voter's election timer, so killing the leader
//! then measures 7–12 s instead of 3–4 s.
//!
//! Brokers are asked one by one over raw gRPC where it matters which broker answers (the
//! client's admin calls go to whichever broker it knows first).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use strata_broker::controller::quorum::state_machine::SNAPSHOT_FILE;
use strata_broker::controller::quorum::CONTROLLER_DIR;
use strata_broker::controller::{MetadataLog, MetadataRecord, METADATA_TOPIC};
use strata_broker::log::{LogConfig, LogManager, SystemClock, TopicPartition};
use strata_client::{
    Acks, Client, Error as ClientError, ErrorCode, NewTopic, Offset, OffsetSpec, Record,
};
use strata_proto::api::v1::client_api_client::ClientApiClient;
use strata_proto::api::v1::{
    DescribeClusterRequest, DescribeClusterResponse, DescribeTopicsRequest, MetadataRequest,
    MetadataResponse,
};
use strata_proto::record::{BatchBuilder, BatchSettings, Record as BatchRecord};
use strata_proto::types::{LeaderEpoch, Offset as LogOffset, PartitionId, TopicName};
use strata_tests::broker_process::{free_port, BrokerOptions, BrokerProcess};
use strata_tests::cluster::{Cluster, ClusterOptions};
use strata_tests::wait::{wait_for, wait_until};
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tonic::transport::Endpoint;

/// Bounds every wait; a cluster that needs longer is broken.
const WAIT: Duration = Duration::from_secs(60);
/// Bounds one gRPC call to one broker.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

fn block<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Heartbeats every 200 ms and a 2 s session, so a dead broker is fenced quickly.
fn short_heartbeats() -> ClusterOptions {
    ClusterOptions {
        extra_args: [
            "--broker-heartbeat-interval-ms",
            "200",
            "--broker-session-timeout-ms",
            "2000",
        ]
        .map(str::to_owned)
        .to_vec(),
        ..ClusterOptions::new(3)
    }
}

async fn grpc(address: SocketAddr) -> anyhow::Result<ClientApiClient<tonic::transport::Channel>> {
    let channel = Endpoint::from_shared(format!("http://{address}"))?
        .connect_timeout(Duration::from_secs(1))
        .timeout(CALL_TIMEOUT)
        .connect()
        .await
        .with_context(|| format!("connect to {address}"))?;
    Ok(ClientApiClient::new(channel))
}

/// `DescribeCluster` answered by `node` itself.
async fn describe_at(cluster: &Cluster, node: u8) -> anyhow::Result<DescribeClusterResponse> {
    let response = grpc(cluster.address(node))
        .await?
        .describe_cluster(DescribeClusterRequest {})
        .await
        .with_context(|| format!("describe the cluster at node {node}"))?
        .into_inner();
    if let Some(error) = response.error.as_ref().filter(|error| !error.is_none()) {
        bail!("node {node} refused DescribeCluster: {error:?}");
    }
    ensure!(
        response.answered_by == i32::from(node),
        "asked node {node}, answered by {}",
        response.answered_by
    );
    Ok(response)
}

/// `Metadata` for every topic, answered by `node`.
async fn metadata_at(address: SocketAddr) -> anyhow::Result<MetadataResponse> {
    Ok(grpc(address)
        .await?
        .metadata(MetadataRequest { topics: Vec::new() })
        .await
        .with_context(|| format!("metadata from {address}"))?
        .into_inner())
}

/// The topic names `address` knows, sorted.
async fn topics_at(address: SocketAddr) -> anyhow::Result<BTreeSet<String>> {
    Ok(metadata_at(address)
        .await?
        .topics
        .into_iter()
        .filter(|topic| topic.error.as_ref().is_none_or(|error| error.is_none()))
        .map(|topic| topic.name)
        .collect())
}

/// The controller leader `node` reports, with its whole answer.
async fn leader_at(cluster: &Cluster, node: u8) -> anyhow::Result<(u8, DescribeClusterResponse)> {
    let described = describe_at(cluster, node).await?;
    let leader = u8::try_from(described.controller_leader)
        .ok()
        .filter(|leader| *leader >= 1)
        .with_context(|| format!("node {node} knows no controller leader"))?;
    Ok((leader, described))
}

/// Every broker of the cluster is up and unfenced in the leader's view, every node
/// agrees on the leader, every voter holds the leader's whole log, and every partition of
/// `topic` is led by its only replica. Returns the leader and its answer.
async fn healthy(
    cluster: &Cluster,
    topic: Option<&str>,
) -> anyhow::Result<(u8, DescribeClusterResponse)> {
    let (leader, _) = leader_at(cluster, 1).await?;
    for node in cluster.nodes() {
        let (seen, _) = leader_at(cluster, node).await?;
        ensure!(
            seen == leader,
            "node {node} says {seen} leads, node 1 says {leader}"
        );
    }
    let (_, described_by_leader) = leader_at(cluster, leader).await?;
    let unfenced = described_by_leader
        .brokers
        .iter()
        .filter(|broker| !broker.fenced)
        .count();
    ensure!(
        unfenced == cluster.nodes().len(),
        "the leader {leader} sees {unfenced} unfenced brokers: {:?}",
        described_by_leader.brokers
    );
    // A voter behind the leader's log cannot win the next election, and its failed
    // candidacy delays the others' (no pre-vote): the next kill waits until all caught up.
    let behind: Vec<_> = described_by_leader
        .voters
        .iter()
        .filter(|voter| voter.lag != 0)
        .collect();
    ensure!(
        behind.is_empty(),
        "voters behind the leader {leader}: {behind:?}"
    );
    if let Some(topic) = topic {
        let metadata = metadata_at(cluster.address(leader)).await?;
        let partitions = &metadata
            .topics
            .iter()
            .find(|described| described.name == topic)
            .with_context(|| format!("no topic {topic}"))?
            .partitions;
        for partition in partitions {
            ensure!(
                partition.replicas.first() == Some(&partition.leader),
                "{topic}-{} is led by {}, its replicas are {:?}",
                partition.partition,
                partition.leader,
                partition.replicas
            );
        }
    }
    Ok((leader, described_by_leader))
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

/// Creates `topic` (one partition) through `client`, retrying what a leaderless quorum
/// answers (`NOT_CONTROLLER`, timeouts, an unreachable broker) until `within` has passed.
/// `TOPIC_ALREADY_EXISTS` counts as created: an earlier attempt that timed out landed.
async fn create_retrying(client: &Client, topic: &str, within: Duration) -> anyhow::Result<u32> {
    let deadline = Instant::now() + within;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let started = Instant::now();
        let created = client
            .admin()
            .create_topic(NewTopic::new(topic).partitions(1).replication_factor(1))
            .await;
        match created {
            Ok(()) => return Ok(attempts),
            Err(error) if error.code() == Some(ErrorCode::TopicAlreadyExists) => {
                return Ok(attempts)
            }
            Err(error) if Instant::now() >= deadline => {
                bail!("creating {topic}: still failing after {attempts} attempts: {error}")
            }
            Err(error) => {
                eprintln!(
                    "creating {topic}: attempt {attempts} failed after {:?}: {error}",
                    started.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
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
    let mut cluster = block(|| Cluster::start(short_heartbeats())).unwrap();
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
    let metadata = metadata_at(cluster.address(1)).await.unwrap();
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
            topics_at(cluster.address(*node))
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

/// Sets `retention_ms` of `topic`, retrying what a leaderless quorum answers.
async fn alter_retrying(client: &Client, topic: &str, retention_ms: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        let altered = client
            .admin()
            .alter_config(
                topic,
                [("retention_ms", retention_ms.to_string())],
                Vec::<String>::new(),
                false,
            )
            .await;
        match altered {
            Ok(_) => return Ok(()),
            Err(error) if retriable(&error) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => bail!("set retention_ms={retention_ms} on {topic}: {error}"),
        }
    }
}

fn retriable(error: &ClientError) -> bool {
    error.is_retriable()
        || matches!(
            error.code(),
            Some(ErrorCode::NotController | ErrorCode::RequestTimedOut)
        )
}

/// `retention_ms` of every topic named `prefix…`, as `address` describes them.
async fn retention_at(
    address: SocketAddr,
    topics: &BTreeSet<String>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let described = grpc(address)
        .await?
        .describe_topics(DescribeTopicsRequest {
            names: topics.iter().cloned().collect(),
        })
        .await?
        .into_inner();
    let mut retention = BTreeMap::new();
    for topic in described.topics {
        let name = topic
            .metadata
            .map(|metadata| metadata.name)
            .unwrap_or_default();
        let value = topic
            .configs
            .iter()
            .find(|entry| entry.key == "retention_ms")
            .map(|entry| entry.value.clone())
            .unwrap_or_default();
        retention.insert(name, value);
    }
    Ok(retention)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_voter_down_during_a_thousand_records_catches_up_through_a_snapshot() {
    const TOPICS: usize = 20;
    const ALTERATIONS: usize = 1_100;
    const WRITERS: usize = 8;
    let test_started = Instant::now();
    let mut cluster = block(|| Cluster::start(short_heartbeats())).unwrap();
    wait_for("the cluster forms", WAIT, || healthy(&cluster, None))
        .await
        .unwrap();
    block(|| cluster.kill(3)).unwrap();
    let snapshot_of_3 = cluster.data_dir(3).join(CONTROLLER_DIR).join(SNAPSHOT_FILE);
    assert!(
        !snapshot_of_3.exists(),
        "broker 3 never had a thousand entries"
    );
    let (leader, described) = wait_for("a leader among 1 and 2", WAIT, || async {
        let (leader, described) = leader_at(&cluster, 1).await?;
        ensure!(leader != 3, "3 is still named leader");
        anyhow::Ok((leader, described))
    })
    .await
    .unwrap();
    let first_index = described.last_log_index;

    let writes_started = Instant::now();
    let client = cluster.client_builder(&[1, 2]).build().await.unwrap();
    let topics: BTreeSet<String> = (0..TOPICS).map(|n| format!("snap-{n}")).collect();
    for topic in &topics {
        create_retrying(&client, topic, WAIT).await.unwrap();
    }
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let client = cluster.client_builder(&[1, 2]).build().await.unwrap();
        writers.push(tokio::spawn(async move {
            for n in (writer..ALTERATIONS).step_by(WRITERS) {
                let retention_ms = 3_600_000 + n as u64;
                alter_retrying(&client, &format!("snap-{}", n % TOPICS), retention_ms).await?;
            }
            anyhow::Ok(())
        }));
    }
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    let writes_took = writes_started.elapsed();

    let purged = cluster
        .data_dir(leader)
        .join(CONTROLLER_DIR)
        .join("purged.json");
    wait_until("the leader purges its log behind a snapshot", WAIT, || {
        let exists = purged.exists();
        async move { exists }
    })
    .await
    .unwrap();
    let (_, described) = leader_at(&cluster, leader).await.unwrap();
    let entries_written = described.last_log_index - first_index;
    assert!(
        entries_written >= 1_000,
        "{entries_written} Raft entries written while broker 3 was down"
    );
    eprintln!(
        "{TOPICS} creations and {ALTERATIONS} config changes ({entries_written} Raft entries) \
         with {WRITERS} writers took {writes_took:?}"
    );

    block(|| cluster.restart(3)).unwrap();
    let restarted_at = Instant::now();
    let version = wait_for("broker 3 catches up with the leader", WAIT, || async {
        let (leader_now, _) = leader_at(&cluster, 1).await?;
        let (_, by_leader) = leader_at(&cluster, leader_now).await?;
        let three_unfenced = by_leader
            .brokers
            .iter()
            .any(|broker| broker.node_id == 3 && !broker.fenced);
        ensure!(three_unfenced, "broker 3 is not unfenced yet");
        let by_three = describe_at(&cluster, 3).await?;
        ensure!(
            by_three.metadata_version == by_leader.metadata_version,
            "broker 3 is at version {}, the leader {leader_now} at {}",
            by_three.metadata_version,
            by_leader.metadata_version
        );
        anyhow::Ok(by_three.metadata_version)
    })
    .await
    .unwrap();
    eprintln!(
        "broker 3 caught up to metadata version {version} {:?} after its restart",
        restarted_at.elapsed()
    );
    let known_to_3 = topics_at(cluster.address(3)).await.unwrap();
    assert!(known_to_3.is_superset(&topics), "{known_to_3:?}");
    let retention_at_3 = retention_at(cluster.address(3), &topics).await.unwrap();
    let retention_at_leader = retention_at(cluster.address(leader), &topics)
        .await
        .unwrap();
    assert_eq!(retention_at_3, retention_at_leader);
    assert!(
        snapshot_of_3.exists(),
        "broker 3 caught up without installing a snapshot"
    );
    block(|| cluster.kill(3)).unwrap();
    block(|| cluster.restart(3)).unwrap();
    let after_restart = wait_for("broker 3 answers again", WAIT, || describe_at(&cluster, 3))
        .await
        .unwrap();
    assert!(
        after_restart.metadata_version >= version,
        "broker 3 came back at version {}, below {version}",
        after_restart.metadata_version
    );
    let known_to_3 = topics_at(cluster.address(3)).await.unwrap();
    assert!(known_to_3.is_superset(&topics), "{known_to_3:?}");
    assert_eq!(
        retention_at(cluster.address(3), &topics).await.unwrap(),
        retention_at_leader
    );
    eprintln!(
        "broker 3 restarted at metadata version {}; test took {:?}",
        after_restart.metadata_version,
        test_started.elapsed()
    );
}

/// Records of `legacy-<partition>` written before the quorum.
fn legacy_value(partition: i32, n: usize) -> String {
    format!("legacy-{partition}-{n}")
}

const LEGACY_TOPIC: &str = "legacy";
const LEGACY_RECORDS: usize = 5;

/// Writes what a one-node broker from before the quorum left behind: its metadata log
/// in `__cluster_metadata-0` (cluster id, broker 1 at `address`, topic `legacy` with two
/// partitions led by broker 1), and [`LEGACY_RECORDS`] records in each partition, with
/// the high watermark at the log end, as a single-replica leader keeps it.
fn write_legacy_directory(data_dir: &Path, address: &str) -> anyhow::Result<()> {
    let logs = LogManager::open(data_dir, LogConfig::default(), Arc::new(SystemClock))?;
    let (mut metadata, image) = MetadataLog::open(&logs, Default::default())?;
    ensure!(image.version == 0, "a fresh metadata log");
    let topic_id = "0f1e2d3c4b5a69788796a5b4c3d2e1f0".to_owned();
    let batches = vec![
        vec![MetadataRecord::SetClusterId {
            cluster_id: "legacy-cluster-0000000000000000".to_owned(),
        }],
        vec![MetadataRecord::RegisterBroker {
            broker_id: 1,
            address: address.to_owned(),
            rack: None,
            incarnation: 1,
        }],
        vec![
            MetadataRecord::CreateTopic {
                topic_id: topic_id.clone(),
                name: LEGACY_TOPIC.to_owned(),
                configs: BTreeMap::new(),
            },
            MetadataRecord::CreatePartition {
                topic_id: topic_id.clone(),
                partition: 0,
                replicas: vec![1],
                leader: 1,
                leader_epoch: 0,
                isr: vec![1],
            },
            MetadataRecord::CreatePartition {
                topic_id,
                partition: 1,
                replicas: vec![1],
                leader: 1,
                leader_epoch: 0,
                isr: vec![1],
            },
        ],
    ];
    for records in batches {
        let end_offset = metadata.end_offset();
        metadata.append(&records, end_offset)?;
    }
    for partition in 0..2 {
        let log = logs.get_or_create(
            &TopicPartition::new(TopicName::new(LEGACY_TOPIC)?, PartitionId(partition)),
            None,
        )?;
        let mut builder = BatchBuilder::new(BatchSettings::default());
        for n in 0..LEGACY_RECORDS {
            builder.append(&BatchRecord::from_value(
                0,
                Bytes::from(legacy_value(partition, n)),
            ))?;
        }
        let info = log.append(&builder.build()?, LeaderEpoch(0))?;
        log.wait_durable(info.log_end_offset)?;
        ensure!(info.log_end_offset == LogOffset(LEGACY_RECORDS as i64));
        log.advance_high_watermark(info.log_end_offset);
    }
    logs.checkpoint_all()?;
    logs.close()?;
    Ok(())
}

/// Every file under `dir` with its contents, by relative path.
fn snapshot_tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().to_path_buf();
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// The values of `legacy-<partition>` from offset 0 up to its log end.
async fn legacy_values(client: &Client, partition: i32) -> anyhow::Result<Vec<String>> {
    let (end, _) = client
        .admin()
        .list_offsets(LEGACY_TOPIC, partition, OffsetSpec::Latest)
        .await?;
    let mut consumer = client
        .consumer()
        .assign([(LEGACY_TOPIC, partition)])
        .start(Offset::Earliest)
        .build()
        .await?;
    let mut values = Vec::new();
    while consumer
        .position(LEGACY_TOPIC, partition)
        .is_none_or(|position| position < end)
    {
        let record = tokio::time::timeout(WAIT, consumer.next())
            .await
            .context("reading the legacy topic")?
            .context("the stream ended")??;
        values.push(
            String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).into_owned(),
        );
    }
    consumer.close().await?;
    Ok(values)
}

/// The directories of `data_dir` set aside (`<partition>.orphaned.<millis>`).
fn set_aside(data_dir: &Path) -> Vec<String> {
    std::fs::read_dir(data_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".orphaned."))
        .collect()
}

async fn connect_one(address: SocketAddr) -> anyhow::Result<Client> {
    Ok(Client::builder()
        .brokers([address.to_string()])
        .build()
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_node_data_directory_from_before_the_quorum_still_opens() {
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let port = free_port().unwrap();
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    block(|| write_legacy_directory(&data_dir, &address.to_string())).unwrap();
    let metadata_dir = data_dir.join(format!("{METADATA_TOPIC}-0"));
    assert!(metadata_dir.is_dir());

    // Three voters: refused, and the directory stays as it was.
    let before = snapshot_tree(&data_dir);
    let log_file = directory.path().join("broker.log");
    let voters = format!("1@{address},2@127.0.0.2:{port},3@127.0.0.3:{port}");
    let refused = block(|| {
        BrokerProcess::start_with_options(
            &data_dir,
            BrokerOptions {
                extra_args: ["--node-id", "1", "--controller-voters", &voters]
                    .map(str::to_owned)
                    .to_vec(),
                listen: Some(address),
                log_file: Some(log_file.clone()),
                log_filter: Some("info".to_owned()),
                ..BrokerOptions::default()
            },
        )
    });
    let log = std::fs::read_to_string(&log_file).unwrap_or_default();
    let error = refused.expect_err("a one-node directory cannot start with three voters");
    assert!(
        error.to_string().contains("exited during start-up"),
        "{error:#}\n{log}"
    );
    assert!(log.contains("one-node cluster"), "{log}");
    assert_eq!(
        snapshot_tree(&data_dir).keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "the refused start left files behind or removed some; its log:\n{log}"
    );
    assert!(
        snapshot_tree(&data_dir) == before,
        "the refused start changed files"
    );

    // One node: the topic, its records and new ones, across a restart.
    let mut broker = block(|| {
        BrokerProcess::start_with_options(
            &data_dir,
            BrokerOptions {
                listen: Some(address),
                log_file: Some(log_file.clone()),
                log_filter: Some("info".to_owned()),
                ..BrokerOptions::default()
            },
        )
    })
    .unwrap();
    let client = connect_one(address).await.unwrap();
    let described = client.admin().describe_topic(LEGACY_TOPIC).await.unwrap();
    assert_eq!(described.partitions.len(), 2, "{described:?}");
    for partition in 0..2 {
        let expected: Vec<String> = (0..LEGACY_RECORDS)
            .map(|n| legacy_value(partition, n))
            .collect();
        assert_eq!(legacy_values(&client, partition).await.unwrap(), expected);
    }
    let producer = client.producer().acks(Acks::All).build().unwrap();
    for partition in 0..2 {
        let delivery = producer
            .send(
                Record::to(LEGACY_TOPIC)
                    .partition(partition)
                    .value(format!("new-{partition}")),
            )
            .await
            .unwrap();
        assert_eq!(delivery.offset, LEGACY_RECORDS as i64);
    }
    producer.close().await.unwrap();
    drop(client);
    assert!(data_dir.join(CONTROLLER_DIR).join(SNAPSHOT_FILE).exists());
    assert!(
        !metadata_dir.exists(),
        "the old metadata log is still in place"
    );
    let aside = set_aside(&data_dir);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(
        aside[0].starts_with(&format!("{METADATA_TOPIC}-0.orphaned.")),
        "{aside:?}"
    );

    block(|| broker.kill()).unwrap();
    block(|| broker.restart()).unwrap();
    let client = wait_for("the broker answers after its restart", WAIT, || {
        connect_one(address)
    })
    .await
    .unwrap();
    let described = client.admin().describe_topic(LEGACY_TOPIC).await.unwrap();
    assert_eq!(described.partitions.len(), 2, "{described:?}");
    for partition in 0..2 {
        let mut expected: Vec<String> = (0..LEGACY_RECORDS)
            .map(|n| legacy_value(partition, n))
            .collect();
        expected.push(format!("new-{partition}"));
        assert_eq!(legacy_values(&client, partition).await.unwrap(), expected);
    }
    assert_eq!(set_aside(&data_dir), aside, "nothing else was set aside");
    block(|| broker.terminate()).unwrap();
}
