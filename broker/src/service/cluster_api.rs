//! Cluster calls of the client API: describe the cluster, elect preferred leaders, reassign
//! partitions. Each converts the request, makes one call into [`Node`] and converts the
//! answer.

use std::sync::Arc;

use strata_proto::api::v1::{
    BrokerInfo, ControllerVoter, DescribeClusterRequest, DescribeClusterResponse,
    ElectLeadersRequest, ElectLeadersResponse, ElectionResult, Error, ErrorCode,
    ReassignPartitionsRequest, ReassignPartitionsResponse, ReassignmentResult,
};

use super::status;
use crate::controller::quorum::{ControllerRequest, ReplyBody};
use crate::controller::Listener;
use crate::node::{Node, NodeError};

/// How long a describe waits for the controller leader's view of voter lag.
const QUORUM_STATUS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Brokers from this broker's image, at their addresses for a client of `listener`; the
/// quorum from its voter, with each voter's lag as the controller leader reports it (asked
/// for; -1 where it cannot be had).
pub async fn describe_cluster(
    node: &Arc<Node>,
    _request: DescribeClusterRequest,
    listener: Listener,
) -> DescribeClusterResponse {
    let image = node.image();
    let status = node.quorum().status();
    // Bounded well below a client's timeout: without a controller leader the answer
    // still comes, with the lag unknown.
    let progress = match node
        .quorum()
        .submit_within(ControllerRequest::QuorumStatus, QUORUM_STATUS_WAIT)
        .await
    {
        Ok(reply) => match reply.body {
            ReplyBody::QuorumStatus { voters } => voters,
            _ => Vec::new(),
        },
        Err(error) => {
            tracing::debug!(%error, "no voter progress from the controller leader");
            Vec::new()
        }
    };
    let wire_index =
        |index: Option<u64>| index.map_or(-1, |index| i64::try_from(index).unwrap_or(i64::MAX));
    DescribeClusterResponse {
        error: Some(status::none()),
        cluster_id: image.cluster_id.clone().unwrap_or_default(),
        answered_by: node.config().node_id.0,
        controller_leader: status.leader.unwrap_or(-1),
        controller_term: status.term,
        voters: status
            .voters
            .iter()
            .map(|(id, address)| {
                let known = progress.iter().find(|voter| voter.node_id == *id);
                ControllerVoter {
                    node_id: *id,
                    address: address.clone(),
                    leader: status.leader == Some(*id),
                    matched_index: wire_index(known.and_then(|voter| voter.matched_index)),
                    lag: wire_index(known.and_then(|voter| voter.lag)),
                }
            })
            .collect(),
        brokers: image
            .brokers
            .values()
            .map(|broker| BrokerInfo {
                node_id: broker.id.0,
                address: broker.address_for(listener).to_owned(),
                rack: broker.rack.clone().unwrap_or_default(),
                fenced: broker.fenced,
                incarnation: broker.incarnation,
            })
            .collect(),
        metadata_version: image.version,
        applied_index: wire_index(status.applied_index),
        last_log_index: wire_index(status.last_log_index),
    }
}

fn whole_request_error(error: &NodeError) -> Option<Error> {
    Some(status::to_wire(error))
}

fn code_by_name(name: &str) -> ErrorCode {
    ErrorCode::from_str_name(name).unwrap_or(ErrorCode::UnknownServerError)
}

pub async fn elect_leaders(node: &Arc<Node>, request: ElectLeadersRequest) -> ElectLeadersResponse {
    let selection = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = (!topic.partitions.is_empty()).then_some(topic.partitions);
            (topic.topic, partitions)
        })
        .collect();
    match node
        .submit(ControllerRequest::ElectPreferred { selection })
        .await
    {
        Ok(reply) => {
            let ReplyBody::Elections { results } = reply.body else {
                return ElectLeadersResponse {
                    error: Some(Error::new(
                        ErrorCode::UnknownServerError,
                        "unexpected controller reply",
                    )),
                    results: Vec::new(),
                };
            };
            ElectLeadersResponse {
                error: Some(status::none()),
                results: results
                    .into_iter()
                    .map(|result| ElectionResult {
                        error: Some(match &result.refused {
                            None => status::none(),
                            Some((code, message)) => {
                                Error::new(code_by_name(code), message.clone())
                            }
                        }),
                        topic: result.topic,
                        partition: result.partition,
                        leader: result.leader,
                        leader_epoch: result.leader_epoch,
                    })
                    .collect(),
            }
        }
        Err(error) => ElectLeadersResponse {
            error: whole_request_error(&error),
            results: Vec::new(),
        },
    }
}

pub async fn reassign_partitions(
    node: &Arc<Node>,
    request: ReassignPartitionsRequest,
) -> ReassignPartitionsResponse {
    let requests = request
        .reassignments
        .into_iter()
        .map(|reassignment| {
            (
                reassignment.topic,
                reassignment.partition,
                reassignment.replicas,
            )
        })
        .collect();
    let submitted = node
        .submit(ControllerRequest::Reassign {
            requests,
            dry_run: request.dry_run,
        })
        .await;
    match submitted {
        Ok(reply) => {
            let ReplyBody::Reassignments { results } = reply.body else {
                return ReassignPartitionsResponse {
                    error: Some(Error::new(
                        ErrorCode::UnknownServerError,
                        "unexpected controller reply",
                    )),
                    results: Vec::new(),
                };
            };
            ReassignPartitionsResponse {
                error: Some(status::none()),
                results: results
                    .into_iter()
                    .map(|result| ReassignmentResult {
                        topic: result.topic,
                        partition: result.partition,
                        error: Some(status::none()),
                        current_replicas: result.current_replicas,
                        target_replicas: result.target_replicas,
                        leader: result.leader,
                        isr: result.isr,
                    })
                    .collect(),
            }
        }
        Err(error) => ReassignPartitionsResponse {
            error: whole_request_error(&error),
            results: Vec::new(),
        },
    }
}
