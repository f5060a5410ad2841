//! `GET /v1/cluster`, `GET /v1/brokers` and `GET /v1/cluster/health`, from this broker's
//! metadata image and its view of the controller quorum.
//!
//! Health follows rpk's `cluster health`: the cluster is healthy when a controller leads,
//! every controller voter is a registered broker and no registered broker is fenced, and
//! every partition has a leader. Under-replicated partitions are listed but do not make
//! the cluster unhealthy (they are the `strata_under_replicated_partitions` alert). The
//! answer is 200 when healthy and 503 otherwise, with the same body, so `curl -f` works
//! as a check.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use strata_proto::views::{BrokerView, ClusterHealthView, ClusterView, VoterView};

use super::{json_response, ok, serving, ApiFailure};
use crate::admin::AdminState;
use crate::controller::quorum::{ControllerRequest, ReplyBody};
use crate::controller::MetadataImage;
use crate::node::Node;

/// How long `/v1/cluster` waits for the controller leader's view of voter lag.
const QUORUM_STATUS_WAIT: Duration = Duration::from_secs(2);

pub async fn cluster(State(state): State<Arc<AdminState>>) -> Result<Response, ApiFailure> {
    let (node, _) = serving(&state)?;
    Ok(ok(&cluster_view(&node).await))
}

pub async fn brokers(State(state): State<Arc<AdminState>>) -> Result<Response, ApiFailure> {
    let (node, _) = serving(&state)?;
    Ok(ok(&broker_views(&node.image())))
}

pub async fn health(State(state): State<Arc<AdminState>>) -> Result<Response, ApiFailure> {
    let (node, _) = serving(&state)?;
    let voters: Vec<i32> = node
        .quorum()
        .status()
        .voters
        .iter()
        .map(|(id, _)| *id)
        .collect();
    let view = judge(&node.image(), &voters, node.quorum().leader());
    let status = if view.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(json_response(status, &view))
}

fn broker_views(image: &MetadataImage) -> Vec<BrokerView> {
    image
        .brokers
        .values()
        .map(|broker| BrokerView {
            node_id: broker.id.0,
            address: broker.address.clone(),
            rack: broker.rack.clone(),
            state: BrokerView::state_name(broker.fenced).to_owned(),
            fenced: broker.fenced,
            incarnation: broker.incarnation,
        })
        .collect()
}

/// What `strata cluster info --format json` prints, plus this broker's version.
async fn cluster_view(node: &Arc<Node>) -> ClusterView {
    let image = node.image();
    let status = node.quorum().status();
    // Bounded: without a controller leader the answer still comes, with lag unknown.
    let progress = match node
        .quorum()
        .submit_within(ControllerRequest::QuorumStatus, QUORUM_STATUS_WAIT)
        .await
    {
        Ok(reply) => match reply.body {
            ReplyBody::QuorumStatus { voters } => voters,
            _ => Vec::new(),
        },
        Err(_) => Vec::new(),
    };
    let index = |index: Option<u64>| index.and_then(|index| i64::try_from(index).ok());
    ClusterView {
        cluster_id: image.cluster_id.clone().unwrap_or_default(),
        controller_id: status.leader,
        controller_term: status.term,
        topic_count: image.topics.values().filter(|t| !t.is_internal()).count(),
        answered_by: node.config().node_id.0,
        metadata_version: image.version,
        applied_index: index(status.applied_index).unwrap_or(-1),
        last_log_index: index(status.last_log_index).unwrap_or(-1),
        brokers: broker_views(&image),
        voters: status
            .voters
            .iter()
            .map(|(id, address)| {
                let known = progress.iter().find(|voter| voter.node_id == *id);
                VoterView {
                    node_id: *id,
                    address: address.clone(),
                    leader: status.leader == Some(*id),
                    matched_index: index(known.and_then(|voter| voter.matched_index)),
                    lag: index(known.and_then(|voter| voter.lag)),
                }
            })
            .collect(),
        version: Some(env!("CARGO_PKG_VERSION").to_owned()),
    }
}

/// The health rule, pure: see the module docs.
pub fn judge(image: &MetadataImage, voters: &[i32], controller: Option<i32>) -> ClusterHealthView {
    let registered: BTreeSet<i32> = image.brokers.keys().map(|id| id.0).collect();
    let all_nodes: BTreeSet<i32> = registered.iter().chain(voters).copied().collect();
    let nodes_down: Vec<i32> = all_nodes
        .iter()
        .copied()
        .filter(|id| {
            image
                .brokers
                .values()
                .find(|broker| broker.id.0 == *id)
                .is_none_or(|broker| broker.fenced)
        })
        .collect();
    let mut leaderless = Vec::new();
    let mut under_replicated = Vec::new();
    for topic in image.topics.values() {
        for (partition, state) in &topic.partitions {
            let name = format!("{}/{partition}", topic.name);
            if state.leader.is_none() {
                leaderless.push(name);
            } else if state.isr.len() < state.replicas.len() {
                under_replicated.push(name);
            }
        }
    }
    let mut reasons = Vec::new();
    if controller.is_none() {
        reasons.push("no active controller".to_owned());
    }
    for id in &nodes_down {
        if registered.contains(id) {
            reasons.push(format!("broker {id} is fenced"));
        } else {
            reasons.push(format!("broker {id} is not registered"));
        }
    }
    if !leaderless.is_empty() {
        reasons.push(format!(
            "{} partition(s) have no leader: {}",
            leaderless.len(),
            leaderless.join(", ")
        ));
    }
    ClusterHealthView {
        healthy: reasons.is_empty(),
        controller_id: controller,
        all_nodes: all_nodes.into_iter().collect(),
        nodes_down,
        leaderless_partitions: leaderless,
        under_replicated_partitions: under_replicated,
        reasons,
    }
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
