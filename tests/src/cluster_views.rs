//! What one node of a [`Cluster`] shows, asked of that node alone over raw gRPC, and the
//! waits built on it: the cluster described by node N, its metadata and topics, the
//! controller leader it names; every broker live, a partition led by its replica.
//!
//! The client library sends `DescribeCluster`, `Metadata` and `DescribeTopics` to
//! whichever broker it knows first, so a test that must know *which* broker answered
//! asks here instead: every call opens a connection to `127.0.0.N` and nothing else.
//!
//! The queries (`*_at`, [`healthy`]) return errors, so waits can poll them. The waits
//! (`*_until`, [`formed`], [`led_by_their_replicas_everywhere`], [`create_rf1_topic`])
//! panic when [`WAIT`] runs out: that is a test failure naming what was waited for. The
//! limit only bounds a hang; no test asserts how long anything took.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use strata_proto::api::v1::client_api_client::ClientApiClient;
use strata_proto::api::v1::{
    CreateTopicsRequest, DescribeClusterRequest, DescribeClusterResponse, DescribeTopicsRequest,
    MetadataRequest, MetadataResponse, PartitionMetadata, TopicSpec,
};
use tonic::transport::{Channel, Endpoint};

use crate::cluster::{Cluster, ClusterOptions};
use crate::wait::wait_for;

/// Bounds every wait and every command; a cluster that needs longer is broken.
pub const WAIT: Duration = Duration::from_secs(60);
/// Bounds opening a connection to one broker.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bounds one gRPC call to one broker.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Three voters that heartbeat every 200 ms with a 2 s session, so a dead broker is
/// fenced quickly.
pub fn three_voters() -> ClusterOptions {
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

/// Starts [`three_voters`] from an async test (the start blocks until every broker
/// listens); panics if the cluster does not start.
pub fn start_three_voters() -> Cluster {
    tokio::task::block_in_place(|| Cluster::start(three_voters()))
        .unwrap_or_else(|error| panic!("start three voters: {error:#}"))
}

/// A gRPC connection to `node` alone.
pub async fn connect(cluster: &Cluster, node: u8) -> anyhow::Result<ClientApiClient<Channel>> {
    let address = cluster.address(node);
    let channel = Endpoint::from_shared(format!("http://{address}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .connect()
        .await
        .with_context(|| format!("connect to node {node} at {address}"))?;
    Ok(ClientApiClient::new(channel))
}

/// The cluster as `node` itself describes it (`answered_by` is checked).
pub async fn describe_at(cluster: &Cluster, node: u8) -> anyhow::Result<DescribeClusterResponse> {
    let response = connect(cluster, node)
        .await?
        .describe_cluster(DescribeClusterRequest {})
        .await
        .with_context(|| format!("describe the cluster at node {node}"))?
        .into_inner();
    if let Some(error) = response.error.as_ref().filter(|error| !error.is_none()) {
        bail!("node {node} could not describe the cluster: {error:?}");
    }
    ensure!(
        response.answered_by == i32::from(node),
        "asked node {node}, answered by {}",
        response.answered_by
    );
    Ok(response)
}

/// The cluster as `node` describes it once `ready` holds for it.
pub async fn describe_until(
    cluster: &Cluster,
    node: u8,
    what: &str,
    ready: impl Fn(&DescribeClusterResponse) -> bool,
) -> DescribeClusterResponse {
    let what = format!("node {node} shows {what}");
    wait_for(&what, WAIT, || async {
        let description = describe_at(cluster, node).await?;
        if ready(&description) {
            Ok(description)
        } else {
            Err(anyhow::anyhow!("not yet: {description:?}"))
        }
    })
    .await
    .unwrap_or_else(|error| panic!("{error:#}"))
}

/// `(node id, fenced, incarnation)` of every registered broker, by id.
pub fn broker_states(description: &DescribeClusterResponse) -> Vec<(i32, bool, u64)> {
    let mut states: Vec<(i32, bool, u64)> = description
        .brokers
        .iter()
        .map(|broker| (broker.node_id, broker.fenced, broker.incarnation))
        .collect();
    states.sort_unstable();
    states
}

/// Brokers 1–3 are registered, unfenced, at these incarnations.
pub fn all_live_at(description: &DescribeClusterResponse, incarnations: [u64; 3]) -> bool {
    broker_states(description)
        == vec![
            (1, false, incarnations[0]),
            (2, false, incarnations[1]),
            (3, false, incarnations[2]),
        ]
}

/// Waits until every node shows the three brokers live at incarnation 1 and names the
/// same controller leader; returns that leader.
pub async fn formed(cluster: &Cluster) -> u8 {
    wait_for("all nodes agree on one live cluster", WAIT, || async {
        let mut leaders = BTreeSet::new();
        for node in cluster.nodes() {
            let description = describe_at(cluster, node).await?;
            if !all_live_at(&description, [1, 1, 1]) {
                bail!("not all live at incarnation 1: {description:?}");
            }
            leaders.insert(description.controller_leader);
        }
        match Vec::from_iter(leaders).as_slice() {
            [leader] if *leader > 0 => Ok(u8::try_from(*leader)?),
            leaders => bail!("controller leaders seen: {leaders:?}"),
        }
    })
    .await
    .unwrap_or_else(|error| panic!("{error:#}"))
}

/// The controller leader `node` names, with its whole answer.
pub async fn leader_at(
    cluster: &Cluster,
    node: u8,
) -> anyhow::Result<(u8, DescribeClusterResponse)> {
    let described = describe_at(cluster, node).await?;
    let leader = u8::try_from(described.controller_leader)
        .ok()
        .filter(|leader| *leader >= 1)
        .with_context(|| format!("node {node} knows no controller leader"))?;
    Ok((leader, described))
}

/// `Metadata` for every topic, answered by `node`.
pub async fn metadata_at(cluster: &Cluster, node: u8) -> anyhow::Result<MetadataResponse> {
    Ok(connect(cluster, node)
        .await?
        .metadata(MetadataRequest { topics: Vec::new() })
        .await
        .with_context(|| format!("metadata from node {node}"))?
        .into_inner())
}

/// The topic names `node` knows.
pub async fn topics_at(cluster: &Cluster, node: u8) -> anyhow::Result<BTreeSet<String>> {
    Ok(metadata_at(cluster, node)
        .await?
        .topics
        .into_iter()
        .filter(|topic| topic.error.as_ref().is_none_or(|error| error.is_none()))
        .map(|topic| topic.name)
        .collect())
}

/// The partitions of `topic`, sorted, from `node`'s own metadata; an error saying `node`
/// "does not know" the topic when it answers with an error for it.
pub async fn partitions_at(
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
        bail!("node {node} answered {response:?}");
    };
    if let Some(error) = found.error.as_ref().filter(|error| !error.is_none()) {
        bail!("node {node} does not know {topic}: {error:?}");
    }
    let mut partitions = found.partitions.clone();
    partitions.sort_by_key(|partition| partition.partition);
    Ok(partitions)
}

/// `topic`'s partitions as `node` shows them once `ready` holds.
pub async fn partitions_until(
    cluster: &Cluster,
    node: u8,
    topic: &str,
    what: &str,
    ready: impl Fn(&[PartitionMetadata]) -> bool,
) -> Vec<PartitionMetadata> {
    let what = format!("node {node} shows {what}");
    wait_for(&what, WAIT, || async {
        let partitions = partitions_at(cluster, node, topic).await?;
        if ready(&partitions) {
            Ok(partitions)
        } else {
            Err(anyhow::anyhow!("not yet: {partitions:?}"))
        }
    })
    .await
    .unwrap_or_else(|error| panic!("{error:#}"))
}

/// `retention_ms` of each of `topics`, as `node` describes them, by topic name.
pub async fn retention_at(
    cluster: &Cluster,
    node: u8,
    topics: &BTreeSet<String>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let described = connect(cluster, node)
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

/// Every broker of the cluster is up and unfenced in the leader's view, every node
/// agrees on the leader, every voter holds the leader's whole log, and every partition of
/// `topic` is led by its first replica. Returns the leader and its answer.
pub async fn healthy(
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
        let metadata = metadata_at(cluster, leader).await?;
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

/// Waits until every running node shows each partition of `topic` led by its only
/// replica in `replicas`.
pub async fn led_by_their_replicas_everywhere(
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

/// Creates a topic of `partitions` RF-1 partitions through `node` and returns each
/// partition's only replica, once every node shows every partition led by it. Panics if
/// the creation fails or a partition has more than its leader as replicas and ISR.
/// Creates the topic `spec` describes through `node` over raw gRPC; panics (a test
/// failure) unless it was created.
pub async fn create_topic(cluster: &Cluster, node: u8, spec: TopicSpec) {
    let name = spec.name.clone();
    let request = CreateTopicsRequest {
        topics: vec![spec],
        validate_only: false,
    };
    let response = connect(cluster, node)
        .await
        .unwrap_or_else(|error| panic!("{error:#}"))
        .create_topics(request)
        .await
        .unwrap_or_else(|status| panic!("create {name} through node {node}: {status}"))
        .into_inner();
    let [created] = response.results.as_slice() else {
        panic!("one result expected: {response:?}");
    };
    let code = created.error.as_ref().map_or(0, |error| error.code);
    assert_eq!(code, 0, "{response:?}");
}

pub async fn create_rf1_topic(
    cluster: &Cluster,
    node: u8,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, i32> {
    let spec = TopicSpec {
        name: topic.to_owned(),
        partitions,
        replication_factor: 1,
        configs: HashMap::new(),
    };
    create_topic(cluster, node, spec).await;
    let described = partitions_until(cluster, node, topic, "every partition led", |all| {
        i32::try_from(all.len()) == Ok(partitions)
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

/// The partitions whose only replica is `node`.
pub fn owned_by(replicas: &BTreeMap<i32, i32>, node: u8) -> Vec<i32> {
    replicas
        .iter()
        .filter(|(_, replica)| **replica == i32::from(node))
        .map(|(partition, _)| *partition)
        .collect()
}
