//! The controller quorum of three real brokers (issue 19), through the client library and
//! the `strata` binary:
//!
//! - three brokers given `--controller-voters` form one cluster: three live brokers at
//!   incarnation 1, three voters, one controller leader, the same from every broker, from
//!   the client library and from `strata cluster info --format json`;
//! - a 6-partition RF-1 topic created through broker 2 puts two replicas and two leaders
//!   on each broker, and a CLI that names one broker produces to all six partitions while
//!   a CLI naming another reads every record back exactly once (`consume -e` takes its
//!   end offsets from `DescribeTopics`, which must not report a partition led elsewhere
//!   as empty);
//! - a SIGKILLed broker (a follower, then the controller leader) is fenced once its lease
//!   lapses and its partitions lose their leader; restarted, it is live at incarnation 2,
//!   leads them again and serves produce and fetch;
//! - a SIGTERMed broker exits 0; restarted, it serves its partitions, and every record
//!   produced before comes back exactly once;
//! - bad input is a typed error that writes nothing: a replication factor above the live
//!   brokers, a reassignment to an unknown broker (client and CLI), a dry run (the real
//!   reassignment then adds the replica, the ISR staying the leader alone); a preferred
//!   election on a balanced cluster is "not needed"; a broker given a bad
//!   `--controller-voters` stops at once, names the problem and creates no data directory.
//!
//! The brokers heartbeat every 200 ms with a 2 s session, so fencing is quick. Every wait is
//! bounded ([`WAIT`]) and only bounds a hang; what is asserted is the sequence of states
//! the cluster shows. The clusters kill their brokers when dropped.
//!
//! "Node N shows" means N's own answer: the checks ask one node over raw gRPC
//! ([`describe`], [`partitions`]), because the client library sends `DescribeCluster` and
//! `DescribeTopics` to the first broker it knows, whichever it was bootstrapped from.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::Write;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_client::{Acks, ErrorCode, NewTopic, Offset, OffsetSpec, Record};
use strata_proto::api::v1::client_api_client::ClientApiClient;
use strata_proto::api::v1::{
    CreateTopicsRequest, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest,
    PartitionMetadata, TopicSpec,
};
use strata_tests::broker_process::{free_port, workspace_binary};
use strata_tests::cluster::{Cluster, ClusterOptions};
use strata_tests::wait::wait_for;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// Bounds every wait and every command; a cluster that needs longer is broken.
const WAIT: Duration = Duration::from_secs(60);
const PARTITIONS: i32 = 6;

fn block<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Three voters with short heartbeats and sessions.
fn three_brokers() -> Cluster {
    let mut options = ClusterOptions::new(3);
    options.extra_args = [
        "--broker-heartbeat-interval-ms",
        "200",
        "--broker-session-timeout-ms",
        "2000",
    ]
    .map(str::to_owned)
    .to_vec();
    block(|| Cluster::start(options)).unwrap()
}

/// Runs `command` to its end with stdin `input`; it is killed if still running after
/// [`WAIT`], which fails the test.
fn run_bounded(mut command: Command, input: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap())
        .spawn()
        .unwrap_or_else(|error| panic!("start {command:?}: {error}"));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let started = Instant::now();
    let status: ExitStatus = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > WAIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command:?} still running after {WAIT:?}:\n{}",
                std::fs::read_to_string(&err).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    }
}

/// `strata -b <node's address> ARGS`, stdin `input`.
fn strata(cluster: &Cluster, node: u8, args: &[&str], input: &str) -> Output {
    let mut command = Command::new(workspace_binary("strata"));
    command
        .arg("-b")
        .arg(cluster.address(node).to_string())
        .args(args)
        .env_remove("STRATA_BROKERS")
        .env_remove("STRATA_FORMAT");
    block(|| run_bounded(command, input))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The output of a command that must succeed, as JSON.
fn json_of(output: &Output) -> Value {
    assert!(output.status.success(), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", text(&output.stdout)))
}

/// A gRPC connection to `node` alone.
async fn connect(cluster: &Cluster, node: u8) -> anyhow::Result<ClientApiClient<Channel>> {
    let channel = Channel::from_shared(cluster.broker(node).url())?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await?;
    Ok(ClientApiClient::new(channel))
}

/// The cluster as `node` itself describes it.
async fn describe(cluster: &Cluster, node: u8) -> anyhow::Result<DescribeClusterResponse> {
    let mut grpc = connect(cluster, node).await?;
    let response = grpc
        .describe_cluster(DescribeClusterRequest {})
        .await?
        .into_inner();
    if let Some(error) = response.error.as_ref().filter(|error| error.code != 0) {
        anyhow::bail!("node {node} could not describe the cluster: {error:?}");
    }
    Ok(response)
}

/// The cluster as `node` describes it once `ready` holds for it.
async fn describe_until(
    cluster: &Cluster,
    node: u8,
    what: &str,
    ready: impl Fn(&DescribeClusterResponse) -> bool,
) -> DescribeClusterResponse {
    let what = format!("node {node} shows {what}");
    wait_for(&what, WAIT, || async {
        let description = describe(cluster, node).await?;
        if ready(&description) {
            Ok(description)
        } else {
            Err(anyhow::anyhow!("not yet: {description:?}"))
        }
    })
    .await
    .unwrap()
}

/// `(node id, fenced, incarnation)` of every registered broker, by id.
fn broker_states(description: &DescribeClusterResponse) -> Vec<(i32, bool, u64)> {
    let mut states: Vec<(i32, bool, u64)> = description
        .brokers
        .iter()
        .map(|broker| (broker.node_id, broker.fenced, broker.incarnation))
        .collect();
    states.sort_unstable();
    states
}

fn all_live_at(description: &DescribeClusterResponse, incarnations: [u64; 3]) -> bool {
    broker_states(description)
        == vec![
            (1, false, incarnations[0]),
            (2, false, incarnations[1]),
            (3, false, incarnations[2]),
        ]
}

/// Waits until every node shows the three brokers live at incarnation 1 and names the
/// same controller leader; returns that leader.
async fn formed(cluster: &Cluster) -> u8 {
    wait_for("all nodes agree on one live cluster", WAIT, || async {
        let mut leaders = BTreeSet::new();
        for node in cluster.nodes() {
            let description = describe(cluster, node).await?;
            if !all_live_at(&description, [1, 1, 1]) {
                anyhow::bail!("not all live at incarnation 1: {description:?}");
            }
            leaders.insert(description.controller_leader);
        }
        match Vec::from_iter(leaders).as_slice() {
            [leader] if *leader > 0 => Ok(u8::try_from(*leader)?),
            leaders => anyhow::bail!("controller leaders seen: {leaders:?}"),
        }
    })
    .await
    .unwrap()
}

/// The partitions of `topic`, sorted, from `node`'s own metadata.
async fn partitions(
    cluster: &Cluster,
    node: u8,
    topic: &str,
) -> anyhow::Result<Vec<PartitionMetadata>> {
    let mut grpc = connect(cluster, node).await?;
    let request = MetadataRequest {
        topics: vec![topic.to_owned()],
    };
    let response = grpc.metadata(request).await?.into_inner();
    let [found] = response.topics.as_slice() else {
        anyhow::bail!("node {node} answered {response:?}");
    };
    if let Some(error) = found.error.as_ref().filter(|error| error.code != 0) {
        anyhow::bail!("node {node} does not know {topic}: {error:?}");
    }
    let mut partitions = found.partitions.clone();
    partitions.sort_by_key(|partition| partition.partition);
    Ok(partitions)
}

/// `topic`'s partitions as `node` shows them once `ready` holds.
async fn partitions_until(
    cluster: &Cluster,
    node: u8,
    topic: &str,
    what: &str,
    ready: impl Fn(&[PartitionMetadata]) -> bool,
) -> Vec<PartitionMetadata> {
    let what = format!("node {node} shows {what}");
    wait_for(&what, WAIT, || async {
        let partitions = partitions(cluster, node, topic).await?;
        if ready(&partitions) {
            Ok(partitions)
        } else {
            Err(anyhow::anyhow!("not yet: {partitions:?}"))
        }
    })
    .await
    .unwrap()
}

/// Waits until every running node shows each partition of `topic` led by its only
/// replica in `replicas`.
async fn led_by_their_replicas_everywhere(
    cluster: &Cluster,
    topic: &str,
    replicas: &BTreeMap<i32, i32>,
) {
    for node in cluster.nodes() {
        if cluster.is_running(node) {
            let what = "every partition led by its replica";
            partitions_until(cluster, node, topic, what, |all| {
                all.len() == replicas.len()
                    && all
                        .iter()
                        .all(|partition| partition.leader == replicas[&partition.partition])
            })
            .await;
        }
    }
}

/// Creates a `PARTITIONS`-partition RF-1 topic through `node` and returns each
/// partition's only replica, once every node shows every partition led by it.
async fn create_rf1_topic(cluster: &Cluster, node: u8, topic: &str) -> BTreeMap<i32, i32> {
    let mut grpc = connect(cluster, node).await.unwrap();
    let request = CreateTopicsRequest {
        topics: vec![TopicSpec {
            name: topic.to_owned(),
            partitions: PARTITIONS,
            replication_factor: 1,
            configs: HashMap::new(),
        }],
        validate_only: false,
    };
    let response = grpc.create_topics(request).await.unwrap().into_inner();
    let [created] = response.results.as_slice() else {
        panic!("one result expected: {response:?}");
    };
    let code = created.error.as_ref().map_or(0, |error| error.code);
    assert_eq!(code, 0, "{response:?}");
    let described = partitions_until(cluster, node, topic, "every partition led", |all| {
        i32::try_from(all.len()) == Ok(PARTITIONS)
            && all.iter().all(|partition| partition.leader >= 0)
    })
    .await;
    let replicas = described
        .iter()
        .map(|partition| {
            assert_eq!(partition.replicas.len(), 1, "{described:?}");
            assert_eq!(partition.leader, partition.replicas[0], "{described:?}");
            assert_eq!(partition.isr, partition.replicas, "{described:?}");
            (partition.partition, partition.replicas[0])
        })
        .collect();
    led_by_their_replicas_everywhere(cluster, topic, &replicas).await;
    replicas
}

/// How many of `values` each broker 1–3 has.
fn per_broker(values: impl IntoIterator<Item = i32>) -> BTreeMap<i32, usize> {
    let mut counts = BTreeMap::from([(1, 0), (2, 0), (3, 0)]);
    for value in values {
        *counts.entry(value).or_default() += 1;
    }
    counts
}

fn owned_by(replicas: &BTreeMap<i32, i32>, node: u8) -> Vec<i32> {
    replicas
        .iter()
        .filter(|(_, replica)| **replica == i32::from(node))
        .map(|(partition, _)| *partition)
        .collect()
}

/// Produces one record to each of `partitions` through `via` (acks=all) and reads each
/// back at the offset it was given.
async fn produce_and_fetch(cluster: &Cluster, via: u8, topic: &str, partitions: &[i32]) {
    let client = cluster.client(via).await.unwrap();
    let producer = client.producer().acks(Acks::All).build().unwrap();
    for &partition in partitions {
        let value = format!("after-restart-{partition}");
        let record = Record::to(topic).partition(partition).value(value.clone());
        let delivery = producer.send(record).await.unwrap();
        assert_eq!(delivery.partition, partition);
        let mut consumer = client
            .consumer()
            .assign([(topic, partition)])
            .start(Offset::At(delivery.offset))
            .build()
            .await
            .unwrap();
        let fetched = tokio::time::timeout(WAIT, consumer.next())
            .await
            .expect("the record arrives")
            .unwrap()
            .unwrap();
        assert_eq!(
            (fetched.partition, fetched.offset),
            (partition, delivery.offset)
        );
        assert_eq!(fetched.value.as_deref(), Some(value.as_bytes()));
        consumer.close().await.unwrap();
    }
    producer.close().await.unwrap();
}

/// The one controller leader a description names, checked against the voter it marks.
fn controller_leader(description: &DescribeClusterResponse) -> i32 {
    let marked: Vec<i32> = description
        .voters
        .iter()
        .filter(|voter| voter.leader)
        .map(|voter| voter.node_id)
        .collect();
    assert_eq!(
        marked,
        vec![description.controller_leader],
        "one leader, named and marked: {description:?}"
    );
    description.controller_leader
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_brokers_form_one_cluster_with_one_controller_leader() {
    let cluster = three_brokers();
    formed(&cluster).await;
    let addresses: Vec<(i32, String)> = cluster
        .nodes()
        .into_iter()
        .map(|node| (i32::from(node), cluster.address(node).to_string()))
        .collect();

    // Each node's own answer.
    let mut cluster_ids = BTreeSet::new();
    for node in cluster.nodes() {
        let description = describe(&cluster, node).await.unwrap();
        assert_eq!(description.answered_by, i32::from(node), "{description:?}");
        let mut brokers: Vec<(i32, String)> = description
            .brokers
            .iter()
            .map(|broker| (broker.node_id, broker.address.clone()))
            .collect();
        brokers.sort();
        assert_eq!(brokers, addresses, "{description:?}");
        assert!(all_live_at(&description, [1, 1, 1]), "{description:?}");
        let mut voters: Vec<(i32, String)> = description
            .voters
            .iter()
            .map(|voter| (voter.node_id, voter.address.clone()))
            .collect();
        voters.sort();
        assert_eq!(
            voters, addresses,
            "every broker is a voter: {description:?}"
        );
        let leader = controller_leader(&description);
        assert!((1..=3).contains(&leader), "{description:?}");
        assert!(description.controller_term >= 1, "{description:?}");
        assert!(!description.cluster_id.is_empty(), "{description:?}");
        cluster_ids.insert(description.cluster_id);
    }
    assert_eq!(cluster_ids.len(), 1, "one cluster: {cluster_ids:?}");
    let cluster_id = cluster_ids.pop_first().unwrap();

    // Through the client library.
    let client = cluster.client(3).await.unwrap();
    let description = client.admin().describe_cluster().await.unwrap();
    assert_eq!(description.cluster_id, cluster_id, "{description:?}");
    let brokers: Vec<(i32, String, bool, u64)> = description
        .brokers
        .iter()
        .map(|b| (b.node_id, b.address.clone(), b.fenced, b.incarnation))
        .collect();
    let live: Vec<(i32, String, bool, u64)> = addresses
        .iter()
        .map(|(id, address)| (*id, address.clone(), false, 1))
        .collect();
    assert_eq!(brokers, live, "{description:?}");
    let voters: Vec<(i32, String)> = description
        .voters
        .iter()
        .map(|voter| (voter.node_id, voter.address.clone()))
        .collect();
    assert_eq!(voters, addresses, "{description:?}");
    let marked: Vec<i32> = description
        .voters
        .iter()
        .filter(|voter| voter.leader)
        .map(|voter| voter.node_id)
        .collect();
    assert_eq!(
        marked,
        Vec::from_iter(description.controller_leader),
        "{description:?}"
    );
    assert_eq!(marked.len(), 1, "{description:?}");

    // Through the CLI, from its JSON document.
    let info = json_of(&strata(
        &cluster,
        2,
        &["--format", "json", "cluster", "info"],
        "",
    ));
    assert_eq!(info["cluster_id"], cluster_id.as_str(), "{info}");
    assert!(
        (1..=3).contains(&info["answered_by"].as_i64().unwrap()),
        "{info}"
    );
    let brokers = info["brokers"].as_array().unwrap();
    assert_eq!(brokers.len(), 3, "{info}");
    for (broker, (id, address)) in brokers.iter().zip(&addresses) {
        assert_eq!(broker["node_id"], *id, "{info}");
        assert_eq!(broker["address"], address.as_str(), "{info}");
        assert_eq!(broker["state"], "live", "{info}");
        assert_eq!(broker["fenced"], false, "{info}");
        assert_eq!(broker["incarnation"], 1, "{info}");
    }
    let voters = info["voters"].as_array().unwrap();
    let voter_ids: Vec<i64> = voters
        .iter()
        .map(|voter| voter["node_id"].as_i64().unwrap())
        .collect();
    assert_eq!(voter_ids, vec![1, 2, 3], "{info}");
    let controller = info["controller_id"].as_i64().expect("a controller leader");
    let marked: Vec<i64> = voters
        .iter()
        .filter(|voter| voter["leader"] == true)
        .map(|voter| voter["node_id"].as_i64().unwrap())
        .collect();
    assert_eq!(marked, vec![controller], "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_partitions_rf1_spread_two_per_broker_and_any_broker_reaches_every_partition() {
    let cluster = three_brokers();
    formed(&cluster).await;
    const TOPIC: &str = "spread";
    let replicas = create_rf1_topic(&cluster, 2, TOPIC).await;
    let expected = BTreeMap::from([(1, 2), (2, 2), (3, 2)]);
    assert_eq!(per_broker(replicas.values().copied()), expected);
    for node in cluster.nodes() {
        let described = partitions(&cluster, node, TOPIC).await.unwrap();
        let leaders = described.iter().map(|partition| partition.leader);
        assert_eq!(per_broker(leaders), expected, "node {node}: {described:?}");
    }

    // Keyed records through a CLI that is given broker 1 only.
    const RECORDS: usize = 120;
    let input: String = (0..RECORDS)
        .map(|i| format!("key-{i} value-{i}\n"))
        .collect();
    let produced = strata(
        &cluster,
        1,
        &["--format", "json", "produce", TOPIC, "-f", "%k %v\\n"],
        &input,
    );
    assert!(produced.status.success(), "{}", text(&produced.stderr));
    let reports: BTreeSet<(i64, i64)> = text(&produced.stdout)
        .lines()
        .map(|line| {
            let report: Value = serde_json::from_str(line).unwrap();
            assert_eq!(report["topic"], TOPIC, "{line}");
            (
                report["partition"].as_i64().unwrap(),
                report["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(reports.len(), RECORDS, "one report and offset per record");
    let written: BTreeSet<i64> = reports.iter().map(|(partition, _)| *partition).collect();
    assert_eq!(written, (0..6).collect(), "the keys reach every partition");

    // Everything from the beginning, through a CLI that is given broker 3 only.
    let consumed = strata(
        &cluster,
        3,
        &["consume", TOPIC, "-o", "beginning", "-e"],
        "",
    );
    assert!(consumed.status.success(), "{}", text(&consumed.stderr));
    let mut seen = BTreeMap::new();
    for line in text(&consumed.stdout).lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        let position = (
            record["partition"].as_i64().unwrap(),
            record["offset"].as_i64().unwrap(),
        );
        let key = record["key"].as_str().unwrap().to_owned();
        let value = record["value"].as_str().unwrap();
        assert_eq!(value, key.replace("key-", "value-"), "{line}");
        assert!(seen.insert(key, position).is_none(), "twice: {line}");
    }
    let keys: BTreeSet<String> = (0..RECORDS).map(|i| format!("key-{i}")).collect();
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), keys);
    let positions: BTreeSet<(i64, i64)> = seen.values().copied().collect();
    assert_eq!(positions, reports, "read at the offsets produce reported");
}

/// Kills `victim` and checks, as `observer` shows it, that it is fenced at the
/// incarnation it had and its partitions have no leader while the others keep theirs;
/// restarts it and checks it is live at the next incarnation and leads them again (on
/// every node); produces to them and fetches back.
async fn kill_and_restart(
    cluster: &mut Cluster,
    victim: u8,
    observer: u8,
    topic: &str,
    replicas: &BTreeMap<i32, i32>,
) {
    let id = i32::from(victim);
    let its_own = owned_by(replicas, victim);
    assert_eq!(its_own.len(), 2, "{replicas:?}");
    let before = describe_until(cluster, observer, "every broker live", |d| {
        d.brokers.len() == 3 && d.brokers.iter().all(|b| !b.fenced)
    })
    .await;
    let live = broker_states(&before);
    cluster.kill(victim).unwrap();

    let description = describe_until(cluster, observer, "the killed broker fenced", |d| {
        d.brokers.iter().any(|b| b.node_id == id && b.fenced)
    })
    .await;
    let fenced: Vec<(i32, bool, u64)> = live
        .iter()
        .map(|&(node, _, incarnation)| (node, node == id, incarnation))
        .collect();
    assert_eq!(
        broker_states(&description),
        fenced,
        "only the killed broker is fenced, at the incarnation it had: {description:?}"
    );
    assert_ne!(
        description.controller_leader, id,
        "a dead voter is not the leader: {description:?}"
    );
    let what = "the killed broker's partitions without a leader";
    let fenced_view = partitions_until(cluster, observer, topic, what, |all| {
        all.iter()
            .filter(|partition| its_own.contains(&partition.partition))
            .all(|partition| partition.leader == -1)
    })
    .await;
    for partition in &fenced_view {
        assert_eq!(partition.replicas, vec![replicas[&partition.partition]]);
        if !its_own.contains(&partition.partition) {
            assert_eq!(
                partition.leader, replicas[&partition.partition],
                "the others keep their leader: {fenced_view:?}"
            );
        }
    }

    block(|| cluster.restart(victim)).unwrap();
    let restarted: Vec<(i32, bool, u64)> = live
        .iter()
        .map(|&(node, _, incarnation)| (node, false, incarnation + u64::from(node == id)))
        .collect();
    for node in cluster.nodes() {
        describe_until(cluster, node, "the restarted broker live again", |d| {
            broker_states(d) == restarted
        })
        .await;
    }
    led_by_their_replicas_everywhere(cluster, topic, replicas).await;
    produce_and_fetch(cluster, observer, topic, &its_own).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_broker_is_fenced_after_its_lease_and_unfenced_with_a_new_incarnation() {
    let mut cluster = three_brokers();
    let leader = formed(&cluster).await;
    const TOPIC: &str = "fencing";
    let replicas = create_rf1_topic(&cluster, 1, TOPIC).await;

    // A follower of the quorum, as the controller leader shows it.
    let follower = cluster.nodes().into_iter().find(|n| *n != leader).unwrap();
    kill_and_restart(&mut cluster, follower, leader, TOPIC, &replicas).await;

    // The controller leader, as a survivor shows it: another voter takes over.
    let description = describe_until(&cluster, follower, "a controller leader", |d| {
        d.controller_leader > 0
    })
    .await;
    let leader = u8::try_from(description.controller_leader).unwrap();
    let observer = cluster.nodes().into_iter().find(|n| *n != leader).unwrap();
    kill_and_restart(&mut cluster, leader, observer, TOPIC, &replicas).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigtermed_broker_exits_zero_and_serves_its_partitions_after_restart() {
    let mut cluster = three_brokers();
    formed(&cluster).await;
    const TOPIC: &str = "terminated";
    let replicas = create_rf1_topic(&cluster, 1, TOPIC).await;

    const RECORDS: usize = 300;
    let client = cluster.client(1).await.unwrap();
    let producer = client.producer().acks(Acks::All).build().unwrap();
    let mut pending = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let record = Record::to(TOPIC)
            .key(format!("key-{i}"))
            .value(format!("value-{i}"));
        pending.push((i, producer.enqueue(record).unwrap()));
    }
    producer.flush().await.unwrap();
    let mut sent = BTreeMap::new();
    for (i, delivery) in pending {
        let delivery = delivery.await.unwrap();
        assert!(sent
            .insert((delivery.partition, delivery.offset), i)
            .is_none());
    }
    producer.close().await.unwrap();
    drop(client);
    let written: BTreeSet<i32> = sent.keys().map(|(partition, _)| *partition).collect();
    assert_eq!(written, (0..PARTITIONS).collect());

    let status = block(|| cluster.terminate(3)).unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
    let its_own = owned_by(&replicas, 3);
    for node in [1, 2] {
        describe_until(&cluster, node, "the stopped broker fenced", |d| {
            broker_states(d) == vec![(1, false, 1), (2, false, 1), (3, true, 1)]
        })
        .await;
        let what = "the stopped broker's partitions without a leader";
        partitions_until(&cluster, node, TOPIC, what, |all| {
            all.iter().all(|partition| {
                let led_by_3 = its_own.contains(&partition.partition);
                partition.leader
                    == if led_by_3 {
                        -1
                    } else {
                        replicas[&partition.partition]
                    }
            })
        })
        .await;
    }

    block(|| cluster.restart(3)).unwrap();
    for node in cluster.nodes() {
        describe_until(&cluster, node, "the restarted broker live", |d| {
            all_live_at(d, [1, 1, 2])
        })
        .await;
    }
    led_by_their_replicas_everywhere(&cluster, TOPIC, &replicas).await;

    // Everything from the beginning, through broker 2: all of it, once.
    let client = cluster.client(2).await.unwrap();
    let mut log_end = 0;
    for partition in 0..PARTITIONS {
        let (offset, _) = client
            .admin()
            .list_offsets(TOPIC, partition, OffsetSpec::Latest)
            .await
            .unwrap();
        log_end += offset;
    }
    assert_eq!(
        log_end,
        i64::try_from(RECORDS).unwrap(),
        "nothing more stored"
    );
    let mut consumer = client
        .consumer()
        .topics([TOPIC])
        .start(Offset::Earliest)
        .build()
        .await
        .unwrap();
    let mut seen = BTreeMap::new();
    while seen.len() < RECORDS {
        let record = tokio::time::timeout(WAIT, consumer.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {RECORDS} records came back", seen.len()))
            .unwrap()
            .unwrap();
        let position = (record.partition, record.offset);
        let i = sent[&position];
        assert_eq!(record.key.as_deref(), Some(format!("key-{i}").as_bytes()));
        assert_eq!(
            record.value.as_deref(),
            Some(format!("value-{i}").as_bytes())
        );
        assert!(seen.insert(position, i).is_none(), "twice: {position:?}");
    }
    assert_eq!(seen, sent);
    consumer.close().await.unwrap();
}

/// Waits until every one of `nodes` has applied the same metadata version, and returns it.
async fn settled_metadata_version(cluster: &Cluster, nodes: &[u8]) -> i64 {
    wait_for("every node at one metadata version", WAIT, || async {
        let mut versions = BTreeSet::new();
        for &node in nodes {
            versions.insert(describe(cluster, node).await?.metadata_version);
        }
        match Vec::from_iter(versions).as_slice() {
            [version] => Ok(*version),
            versions => Err(anyhow::anyhow!("versions differ: {versions:?}")),
        }
    })
    .await
    .unwrap()
}

async fn assert_metadata_version(cluster: &Cluster, nodes: &[u8], expected: i64) {
    for &node in nodes {
        let description = describe(cluster, node).await.unwrap();
        assert_eq!(description.metadata_version, expected, "{description:?}");
    }
}

/// Creating `topic` with `replication_factor` through the client is refused as
/// `INVALID_REPLICATION_FACTOR`, and no node knows the topic afterwards.
async fn assert_replication_factor_refused(
    cluster: &Cluster,
    nodes: &[u8],
    topic: &str,
    replication_factor: i32,
) {
    let admin = cluster.client(nodes[0]).await.unwrap().admin();
    let new_topic = NewTopic::new(topic)
        .partitions(3)
        .replication_factor(replication_factor);
    let error = admin.create_topic(new_topic).await.unwrap_err();
    assert_eq!(
        error.code(),
        Some(ErrorCode::InvalidReplicationFactor),
        "{error}"
    );
    let topics = admin.list_topics().await.unwrap();
    assert!(
        topics.iter().all(|listed| listed.name != topic),
        "{topics:?}"
    );
    for &node in nodes {
        let unknown = partitions(cluster, node, topic).await.unwrap_err();
        assert!(
            unknown.to_string().contains("does not know"),
            "node {node}: {unknown}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replication_factor_above_the_live_brokers_is_refused_and_writes_nothing() {
    let mut cluster = three_brokers();
    let leader = formed(&cluster).await;
    let all = cluster.nodes();
    let version = settled_metadata_version(&cluster, &all).await;
    assert_replication_factor_refused(&cluster, &all, "too-wide", 4).await;
    assert_metadata_version(&cluster, &all, version).await;

    // One broker down: three replicas no longer fit.
    let victim = all.iter().copied().find(|n| *n != leader).unwrap();
    let survivors: Vec<u8> = all.iter().copied().filter(|n| *n != victim).collect();
    cluster.kill(victim).unwrap();
    for &node in &survivors {
        describe_until(&cluster, node, "the killed broker fenced", |d| {
            d.brokers
                .iter()
                .all(|b| b.fenced == (b.node_id == i32::from(victim)))
        })
        .await;
    }
    let version = settled_metadata_version(&cluster, &survivors).await;
    assert_replication_factor_refused(&cluster, &survivors, "too-wide", 3).await;
    assert_metadata_version(&cluster, &survivors, version).await;

    // Two replicas still fit, on the live brokers: the refusals were about the count.
    let admin = cluster.client(leader).await.unwrap().admin();
    let fits = NewTopic::new("fits").partitions(2).replication_factor(2);
    admin.create_topic(fits).await.unwrap();
    let live: BTreeSet<i32> = survivors.iter().map(|n| i32::from(*n)).collect();
    let described = partitions(&cluster, leader, "fits").await.unwrap();
    for partition in &described {
        let replicas: BTreeSet<i32> = partition.replicas.iter().copied().collect();
        assert_eq!(replicas, live, "only live brokers: {described:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reassignment_to_an_unknown_broker_is_refused_and_a_dry_run_changes_nothing() {
    let cluster = three_brokers();
    formed(&cluster).await;
    const TOPIC: &str = "moves";
    let replicas = create_rf1_topic(&cluster, 1, TOPIC).await;
    let partition = owned_by(&replicas, 1)[0];
    let all = cluster.nodes();
    let version = settled_metadata_version(&cluster, &all).await;
    let unchanged = |all: &[PartitionMetadata]| {
        all.len() == replicas.len()
            && all.iter().all(|p| {
                p.replicas == vec![replicas[&p.partition]]
                    && p.isr == p.replicas
                    && p.leader == p.replicas[0]
            })
    };
    let assert_unchanged = || async {
        for node in cluster.nodes() {
            let described = partitions(&cluster, node, TOPIC).await.unwrap();
            assert!(unchanged(&described), "node {node}: {described:?}");
        }
        assert_metadata_version(&cluster, &all, version).await;
    };

    // Broker 9 is not registered: through the client…
    let admin = cluster.client(2).await.unwrap().admin();
    let error = admin
        .reassign_partitions([(TOPIC, partition, vec![1, 9])], false)
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some(ErrorCode::InvalidReplicaAssignment),
        "{error}"
    );
    assert!(error.to_string().contains("broker 9"), "{error}");
    // …and through the CLI.
    let number = partition.to_string();
    let reassign = |extra: &[&'static str]| -> Vec<&str> {
        let mut args = vec!["partition", "reassign", "--topic", TOPIC];
        args.extend(["--partition", number.as_str()]);
        args.extend(extra);
        args
    };
    let refused = strata(&cluster, 3, &reassign(&["--replicas", "1,9"]), "");
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("broker 9"), "{stderr}");
    assert!(stderr.contains("(INVALID_REPLICA_ASSIGNMENT)"), "{stderr}");
    assert_unchanged().await;

    // A dry run of a valid one answers what would change, and changes nothing.
    let mut args = vec!["--format", "json"];
    args.extend(reassign(&["--replicas", "1,2", "--dry-run"]));
    let dry_run = json_of(&strata(&cluster, 2, &args, ""));
    assert_eq!(dry_run["dry_run"], true, "{dry_run}");
    let [planned] = dry_run["partitions"].as_array().unwrap().as_slice() else {
        panic!("one partition: {dry_run}");
    };
    let expected = serde_json::json!({
        "topic": TOPIC, "partition": partition, "current_replicas": [1],
        "target_replicas": [1, 2], "leader": 1, "isr": [1],
    });
    for (field, value) in expected.as_object().unwrap() {
        assert_eq!(&planned[field], value, "{field}: {dry_run}");
    }
    assert_unchanged().await;

    // The real one adds the replica; the ISR stays the leader alone (no replication yet).
    let mut args = vec!["--format", "json"];
    args.extend(reassign(&["--replicas", "1,2"]));
    let applied = json_of(&strata(&cluster, 2, &args, ""));
    assert_eq!(applied["dry_run"], false, "{applied}");
    let [done] = applied["partitions"].as_array().unwrap().as_slice() else {
        panic!("one partition: {applied}");
    };
    for (field, value) in expected.as_object().unwrap() {
        assert_eq!(&done[field], value, "{field}: {applied}");
    }
    for node in cluster.nodes() {
        let moved = partitions_until(&cluster, node, TOPIC, "the new replica list", |all| {
            all.iter()
                .any(|p| p.partition == partition && p.replicas == vec![1, 2])
        })
        .await;
        for described in &moved {
            if described.partition == partition {
                let leader_and_isr = (described.leader, described.isr.clone());
                assert_eq!(leader_and_isr, (1, vec![1]), "node {node}: {moved:?}");
            } else {
                assert_eq!(described.replicas, vec![replicas[&described.partition]]);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preferred_election_on_a_balanced_cluster_is_not_needed() {
    let cluster = three_brokers();
    formed(&cluster).await;
    const TOPIC: &str = "balanced";
    create_rf1_topic(&cluster, 1, TOPIC).await;
    let all = cluster.nodes();
    let version = settled_metadata_version(&cluster, &all).await;

    let args = ["partition", "elect-leader", "--all-topics"];
    let elected = strata(&cluster, 2, &args, "");
    let (stdout, stderr) = (text(&elected.stdout), text(&elected.stderr));
    assert_eq!(elected.status.code(), Some(0), "{stdout}{stderr}");
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["TOPIC", "PARTITION", "LEADER", "EPOCH", "STATUS"]);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let partitions: Vec<String> = rows.iter().map(|row| row[1].to_owned()).collect();
    assert_eq!(partitions, ["0", "1", "2", "3", "4", "5"], "{stdout}");
    for row in &rows {
        assert_eq!((row[0], row[4]), (TOPIC, "ELECTION_NOT_NEEDED"), "{stdout}");
    }
    assert!(!stderr.contains("error"), "{stderr}");
    assert!(
        stderr.contains("6 partitions: 0 elected, 6 already led by the preferred replica"),
        "{stderr}"
    );
    assert_metadata_version(&cluster, &all, version).await;
}

#[test]
fn a_bad_controller_voters_flag_stops_the_start_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let own = format!("127.0.0.1:{port}");
    let cases = [
        (format!("1@{own},1@127.0.0.2:{port}"), "names voter 1 twice"),
        (
            "1@127.0.0.1".to_owned(),
            "entry \"1@127.0.0.1\" is not <id>@<host>:<port>",
        ),
        (
            format!("x@h:1,1@{own}"),
            "entry \"x@h:1\" is not <id>@<host>:<port>",
        ),
        (
            format!("2@127.0.0.2:{port},3@127.0.0.3:{port}"),
            "does not name this broker (--node-id 1)",
        ),
    ];
    for (number, (voters, problem)) in cases.iter().enumerate() {
        let data = dir.path().join(format!("data-{number}"));
        let mut command = Command::new(workspace_binary("strata-broker"));
        command
            .args(["--node-id", "1", "--listen", &own, "--data-dir"])
            .arg(&data)
            .args(["--controller-voters", voters])
            .env("RUST_LOG", "info")
            .env_remove("STRATA_CONFIG");
        let output = run_bounded(command, "");
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{voters}: {output:?}");
        assert!(stderr.contains(problem), "{voters}: {stderr}");
        let empty = std::fs::read_dir(&data).map_or(true, |mut entries| entries.next().is_none());
        assert!(empty, "{voters}: {} was written", data.display());
    }
}
