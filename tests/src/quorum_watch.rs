//! Waits on the controller quorum of a [`Cluster`] whatever its node numbers (a cluster
//! on 127.0.0.2–4 has brokers 2–4), for tests that cut, stop and restart its nodes: the
//! cluster formed, a leader agreed on by some nodes, one broker's state in one node's
//! view, a node's metadata caught up with the leader's; and topic creations through one
//! node, retried while the quorum elects.
//!
//! Every question goes to one node alone ([`crate::cluster_views`]), so a test knows whose
//! view it asserts on, and is given up after [`ASK_TIMEOUT`] and asked again: a voter
//! whose controller leader became unreachable holds a `DescribeCluster` while it asks that
//! leader for voter lag (up to 10 s, the forward's own timeout), and a wait for the new
//! leader should not hang on the old one. The waits return errors naming what they
//! waited for when [`WAIT`] runs out: the limits only bound hangs, nothing asserts how
//! long anything took.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use strata_proto::api::v1::{
    BrokerInfo, CreateTopicsRequest, DescribeClusterResponse, ErrorCode, TopicSpec,
};

use crate::cluster::Cluster;
use crate::cluster_views::{connect, describe_at, WAIT};
use crate::wait::wait_for;

/// How long one question to one node may take before it is asked again.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// The cluster as `node` describes it, within [`ASK_TIMEOUT`].
pub async fn describe_briefly(
    cluster: &Cluster,
    node: u8,
) -> anyhow::Result<DescribeClusterResponse> {
    tokio::time::timeout(ASK_TIMEOUT, describe_at(cluster, node))
        .await
        .with_context(|| {
            format!("node {node} did not describe the cluster within {ASK_TIMEOUT:?}")
        })?
}

/// Broker `broker` as `description` shows it.
pub fn broker_in(description: &DescribeClusterResponse, broker: u8) -> Option<&BrokerInfo> {
    description
        .brokers
        .iter()
        .find(|info| info.node_id == i32::from(broker))
}

/// The controller leader `description` names, if any.
pub fn leader_in(description: &DescribeClusterResponse) -> Option<u8> {
    u8::try_from(description.controller_leader)
        .ok()
        .filter(|leader| *leader >= 1)
}

/// Waits until every node of the cluster shows every node registered and unfenced, and
/// all name one controller leader; returns it with each node's incarnation, by node.
pub async fn formed(cluster: &Cluster) -> anyhow::Result<(u8, HashMap<u8, u64>)> {
    let nodes = cluster.nodes();
    wait_for("every node shows one live cluster", WAIT, || async {
        let mut leaders = BTreeSet::new();
        let mut incarnations = HashMap::new();
        for node in &nodes {
            let description = describe_briefly(cluster, *node).await?;
            for broker in &nodes {
                let info = broker_in(&description, *broker)
                    .with_context(|| format!("node {node} does not show broker {broker}"))?;
                ensure!(!info.fenced, "node {node} shows broker {broker} fenced");
                incarnations.insert(*broker, info.incarnation);
            }
            leaders.insert(leader_in(&description));
        }
        match Vec::from_iter(leaders).as_slice() {
            [Some(leader)] => Ok((*leader, incarnations)),
            leaders => bail!("controller leaders seen: {leaders:?}"),
        }
    })
    .await
}

/// Waits until every one of `nodes` names the same controller leader, one of `nodes`;
/// returns it.
pub async fn leader_among(cluster: &Cluster, nodes: &[u8]) -> anyhow::Result<u8> {
    let what = format!("nodes {nodes:?} agree on a controller leader among them");
    wait_for(&what, WAIT, || async {
        let mut leaders = BTreeSet::new();
        for node in nodes {
            leaders.insert(leader_in(&describe_briefly(cluster, *node).await?));
        }
        match Vec::from_iter(leaders).as_slice() {
            [Some(leader)] if nodes.contains(leader) => Ok(*leader),
            leaders => bail!("controller leaders seen: {leaders:?}"),
        }
    })
    .await
}

/// Waits until node `asked` shows broker `broker` in a state `ready` accepts; returns
/// that state.
pub async fn broker_until(
    cluster: &Cluster,
    asked: u8,
    broker: u8,
    what: &str,
    ready: impl Fn(&BrokerInfo) -> bool,
) -> anyhow::Result<BrokerInfo> {
    let what = format!("node {asked} shows broker {broker} {what}");
    wait_for(&what, WAIT, || async {
        let description = describe_briefly(cluster, asked).await?;
        match broker_in(&description, broker) {
            Some(info) if ready(info) => Ok(info.clone()),
            other => bail!("not yet: {other:?}"),
        }
    })
    .await
}

/// Waits until node `node` names `leader` as the controller leader and has applied the
/// metadata version `leader` has applied (read after `node`'s, so a leader that moves on
/// meanwhile only makes the wait longer); returns that version.
pub async fn caught_up_with(cluster: &Cluster, node: u8, leader: u8) -> anyhow::Result<i64> {
    let what = format!("node {node} follows node {leader} and has its metadata version");
    wait_for(&what, WAIT, || async {
        let followed = describe_briefly(cluster, node).await?;
        let led = describe_briefly(cluster, leader).await?;
        ensure!(
            leader_in(&followed) == Some(leader),
            "node {node} names {:?} the leader",
            leader_in(&followed)
        );
        ensure!(
            followed.metadata_version == led.metadata_version,
            "metadata version {} on node {node}, {} on node {leader}",
            followed.metadata_version,
            led.metadata_version
        );
        Ok(followed.metadata_version)
    })
    .await
}

/// Creates `topic` (`partitions` partitions, RF 1) through node `node` alone, retrying
/// every error (a quorum without a leader answers `NOT_CONTROLLER`, or nothing in time)
/// until `within` has passed; returns how many attempts it took.
/// `TOPIC_ALREADY_EXISTS` counts as created: an earlier attempt that timed out landed.
pub async fn create_retrying_at(
    cluster: &Cluster,
    node: u8,
    topic: &str,
    partitions: i32,
    within: Duration,
) -> anyhow::Result<u32> {
    let mut attempts = 0_u32;
    let what = format!("{topic} is created through node {node}");
    wait_for(&what, within, || {
        attempts += 1;
        async move {
            let request = CreateTopicsRequest {
                topics: vec![TopicSpec {
                    name: topic.to_owned(),
                    partitions,
                    replication_factor: 1,
                    configs: HashMap::new(),
                }],
                validate_only: false,
            };
            let response = connect(cluster, node)
                .await?
                .create_topics(request)
                .await?
                .into_inner();
            let [result] = response.results.as_slice() else {
                bail!("one result expected: {response:?}");
            };
            match result.error.as_ref().map(|error| error.error_code()) {
                None | Some(ErrorCode::None | ErrorCode::TopicAlreadyExists) => Ok(()),
                Some(code) => bail!("{code:?}: {:?}", result.error),
            }
        }
    })
    .await?;
    Ok(attempts)
}
