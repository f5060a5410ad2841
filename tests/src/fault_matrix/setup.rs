//! The cluster a matrix row runs against, and what the runner asks of it: three voters on
//! 127.0.0.2–4 (so the test's clients, on 127.0.0.1, stay outside every cut between
//! brokers and can be cut off from one broker on their own), an RF-3 topic, and the
//! partitions' leaders and ISRs as the most recent leader epoch shows them.
//!
//! Every question goes to one node at a time with a short timeout, so a paused or cut-off
//! node delays nothing; every wait is bounded and running out of it is an error.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context};
use strata_proto::api::v1::{CreateTopicsRequest, ErrorCode, PartitionMetadata, TopicSpec};

use crate::broker_process::workspace_binary;
use crate::cluster::{Cluster, ClusterOptions};
use crate::cluster_views::{connect, partitions_at};
use crate::quorum_watch::formed;
use crate::wait::wait_for;

/// The first node: 127.0.0.2. The test's clients connect from 127.0.0.1.
pub const FIRST_NODE: u8 = 2;
/// Bounds every wait of the runner; a cluster that needs longer is broken.
pub const WAIT: Duration = Duration::from_secs(60);
/// How long one question to one node may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);
/// The broker flag setting how long a follower may lag before it leaves the ISR, when
/// the broker has it.
pub const REPLICA_LAG_FLAG: &str = "--replica-lag-time-max-ms";
/// What the runner sets it to when the broker has the flag (Kafka's default is 10 s).
pub const REPLICA_LAG_MS: u64 = 4_000;
/// The broker's ISR lag bound without the flag.
pub const REPLICA_LAG_DEFAULT_MS: u64 = 10_000;

/// Whether `strata-broker --help` lists `flag`: lets a row use a flag another change adds
/// once it is there, and run without it before.
pub fn broker_has_flag(flag: &str) -> bool {
    std::process::Command::new(workspace_binary("strata-broker"))
        .arg("--help")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).contains(flag))
        .unwrap_or(false)
}

/// The options of a matrix cluster: heartbeats every 200 ms and a 2 s session (a dead
/// broker is fenced quickly), and the ISR lag bound at [`REPLICA_LAG_MS`] when the broker
/// has [`REPLICA_LAG_FLAG`]. Returns the lag bound in force too.
pub fn options() -> (ClusterOptions, u64) {
    let mut extra_args: Vec<String> = [
        "--broker-heartbeat-interval-ms",
        "200",
        "--broker-session-timeout-ms",
        "2000",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut lag_ms = REPLICA_LAG_DEFAULT_MS;
    if broker_has_flag(REPLICA_LAG_FLAG) {
        extra_args.extend([REPLICA_LAG_FLAG.to_owned(), REPLICA_LAG_MS.to_string()]);
        lag_ms = REPLICA_LAG_MS;
    }
    let options = ClusterOptions {
        first_node: FIRST_NODE,
        extra_args,
        ..ClusterOptions::new(3)
    };
    (options, lag_ms)
}

/// Starts the cluster (blocking) and waits until it has formed.
pub async fn start(options: ClusterOptions) -> anyhow::Result<Cluster> {
    let cluster = tokio::task::block_in_place(|| Cluster::start(options))?;
    formed(&cluster).await?;
    Ok(cluster)
}

/// Creates `topic` with `partitions` RF-3 partitions through any node (retried while the
/// controller elects), then waits until every node shows every ISR full.
pub async fn create_topic(cluster: &Cluster, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let nodes = cluster.nodes();
    let mut attempt = 0_usize;
    wait_for(&format!("{topic} is created"), WAIT, || {
        let node = nodes[attempt % nodes.len()];
        attempt += 1;
        async move {
            let request = CreateTopicsRequest {
                topics: vec![TopicSpec {
                    name: topic.to_owned(),
                    partitions,
                    replication_factor: 3,
                    configs: HashMap::new(),
                }],
                validate_only: false,
            };
            let response = tokio::time::timeout(ASK_TIMEOUT * 5, async {
                connect(cluster, node)
                    .await?
                    .create_topics(request)
                    .await
                    .map_err(anyhow::Error::from)
            })
            .await
            .context("create_topics timed out")??
            .into_inner();
            let [result] = response.results.as_slice() else {
                bail!("one result expected: {response:?}");
            };
            match result.error.as_ref().map(|error| error.error_code()) {
                None | Some(ErrorCode::None | ErrorCode::TopicAlreadyExists) => Ok(()),
                Some(code) => bail!("node {node}: {code:?}"),
            }
        }
    })
    .await?;
    for node in cluster.nodes() {
        wait_for(
            &format!("node {node} shows every ISR full"),
            WAIT,
            || async move {
                let view = partitions_at(cluster, node, topic).await?;
                if i32::try_from(view.len()) == Ok(partitions) && all_full(&view) {
                    Ok(())
                } else {
                    bail!("not yet: {view:?}")
                }
            },
        )
        .await?;
    }
    Ok(())
}

/// Every partition has a leader and all three replicas in its ISR.
pub fn all_full(view: &[PartitionMetadata]) -> bool {
    view.iter()
        .all(|partition| partition.leader >= 0 && partition.isr.len() == partition.replicas.len())
}

/// The partitions of `topic` as the nodes that answer now show them, each taken from the
/// answer with the highest leader epoch. Nodes in `skip` (paused, stopped, cut off) are
/// not asked.
pub async fn topology(
    cluster: &Cluster,
    topic: &str,
    skip: &[u8],
) -> anyhow::Result<Vec<PartitionMetadata>> {
    let mut best: Vec<PartitionMetadata> = Vec::new();
    let mut errors = Vec::new();
    for node in cluster.nodes() {
        if skip.contains(&node) || !cluster.is_running(node) || cluster.is_paused(node) {
            continue;
        }
        let view =
            match tokio::time::timeout(ASK_TIMEOUT, partitions_at(cluster, node, topic)).await {
                Ok(Ok(view)) => view,
                Ok(Err(error)) => {
                    errors.push(format!("node {node}: {error:#}"));
                    continue;
                }
                Err(_) => {
                    errors.push(format!("node {node}: no answer within {ASK_TIMEOUT:?}"));
                    continue;
                }
            };
        for partition in view {
            match best
                .iter_mut()
                .find(|known| known.partition == partition.partition)
            {
                Some(known) if known.leader_epoch >= partition.leader_epoch => {}
                Some(known) => *known = partition,
                None => best.push(partition),
            }
        }
    }
    if best.is_empty() {
        bail!("no node described {topic}: {}", errors.join("; "));
    }
    best.sort_by_key(|partition| partition.partition);
    Ok(best)
}

/// The leader of `partition` of `topic` (a node number), once some node names one.
pub async fn leader_of(
    cluster: &Cluster,
    topic: &str,
    partition: i32,
    skip: &[u8],
) -> anyhow::Result<u8> {
    wait_for(
        &format!("a leader of {topic}/{partition}"),
        WAIT,
        || async {
            let view = topology(cluster, topic, skip).await?;
            let leader = view
                .iter()
                .find(|known| known.partition == partition)
                .map_or(-1, |known| known.leader);
            u8::try_from(leader)
                .ok()
                .filter(|leader| *leader >= 1)
                .with_context(|| format!("no leader yet: {view:?}"))
        },
    )
    .await
}
