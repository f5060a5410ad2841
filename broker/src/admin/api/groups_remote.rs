//! The groups other brokers coordinate, asked over gRPC (`GroupApi`): `ListGroups` of
//! every other live broker for `GET /v1/groups`, and `DescribeGroups` of a group's
//! coordinator for `GET /v1/groups/{group}`, converted to the same views as the groups
//! coordinated here. Each call is bounded by [`ASK_TIMEOUT`].

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use strata_proto::api::v1::group_api_client::GroupApiClient;
use strata_proto::api::v1::{
    DescribeGroupsRequest, DescribedGroup, ErrorCode, GroupTopicPartitions, ListGroupsRequest,
};
use strata_proto::types::BrokerId;
use strata_proto::views::{
    GroupListingView, GroupMemberView, GroupPartitionView, GroupView, TopicPartitionView,
};
use tonic::transport::Channel;

use super::ApiFailure;
use crate::node::{GroupCoordinator, Node};

/// How long one call to another broker may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

fn client(node: &Node, address: &str) -> Result<GroupApiClient<Channel>, String> {
    let channel = crate::controller::quorum::network::channel(address, node.config().local_ip)?;
    Ok(GroupApiClient::new(channel))
}

/// The groups of every other live broker; a broker that does not answer is skipped.
pub async fn list_elsewhere(node: &Arc<Node>) -> Vec<GroupListingView> {
    let me = node.config().node_id;
    let image = node.image();
    let mut listed = Vec::new();
    // One broker after the other: a cluster has a handful, and each answer is quick.
    for broker in image.brokers.values() {
        if broker.id == me || broker.fenced {
            continue;
        }
        let answer = async {
            let mut client = client(node, &broker.address)?;
            tokio::time::timeout(ASK_TIMEOUT, client.list_groups(ListGroupsRequest {}))
                .await
                .map_err(|_| format!("no answer within {ASK_TIMEOUT:?}"))?
                .map_err(|status| status.message().to_owned())
        }
        .await;
        match answer {
            Ok(response) => listed.extend(response.into_inner().groups.into_iter().map(|group| {
                GroupListingView {
                    group: group.group_id,
                    state: group.state,
                    members: u32::try_from(group.members).unwrap_or(0),
                    coordinator: group.coordinator,
                }
            })),
            Err(reason) => {
                tracing::warn!(broker = broker.id.0, %reason, "listing groups: a broker did not answer");
            }
        }
    }
    listed
}

/// `group_id` as its coordinator, another broker, describes it.
pub async fn describe_elsewhere(
    node: &Arc<Node>,
    groups: &Arc<GroupCoordinator>,
    coordinator: BrokerId,
    group_id: &str,
) -> Result<GroupView, ApiFailure> {
    let unavailable = |reason: String| {
        ApiFailure::unavailable(
            "COORDINATOR_NOT_AVAILABLE",
            format!(
                "the coordinator of group {group_id:?}, broker {}, did not answer: {reason}",
                coordinator.0
            ),
        )
    };
    let address = node
        .image()
        .broker(coordinator)
        .map(|broker| broker.address.clone())
        .ok_or_else(|| unavailable("it is not registered".to_owned()))?;
    let mut client = client(node, &address).map_err(unavailable)?;
    let request = DescribeGroupsRequest {
        group_ids: vec![group_id.to_owned()],
    };
    let described = tokio::time::timeout(ASK_TIMEOUT, client.describe_groups(request))
        .await
        .map_err(|_| unavailable(format!("no answer within {ASK_TIMEOUT:?}")))?
        .map_err(|status| unavailable(status.message().to_owned()))?
        .into_inner()
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| unavailable("an empty answer".to_owned()))?;
    match described.error.as_ref().map(|error| error.error_code()) {
        None | Some(ErrorCode::None) => {}
        Some(ErrorCode::GroupIdNotFound) => {
            return Err(ApiFailure::new(
                StatusCode::NOT_FOUND,
                "GROUP_ID_NOT_FOUND",
                format!("unknown group {group_id:?}"),
            ))
        }
        Some(code) => {
            let message = described.error.map(|e| e.message).unwrap_or_default();
            return Err(unavailable(format!("{}: {message}", code.as_str_name())));
        }
    }
    let mut view = group_view(described);
    // The coordinator's answer has no log start offsets; the leaders have them.
    let keys: Vec<(String, i32)> = view
        .partitions
        .iter()
        .map(|partition| (partition.topic.clone(), partition.partition))
        .collect();
    let ends = groups.partition_ends(&keys).await;
    for partition in &mut view.partitions {
        let key = (partition.topic.clone(), partition.partition);
        partition.log_start_offset = ends
            .get(&key)
            .copied()
            .flatten()
            .map(|ends| ends.log_start_offset);
    }
    Ok(view)
}

fn topic_partitions(assignment: &[GroupTopicPartitions]) -> Vec<TopicPartitionView> {
    assignment
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|partition| TopicPartitionView {
                topic: topic.topic.clone(),
                partition: *partition,
            })
        })
        .collect()
}

/// `None` for the wire's "unknown" (-1) and empty strings.
fn known(value: i64) -> Option<i64> {
    (value >= 0).then_some(value)
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

fn group_view(described: DescribedGroup) -> GroupView {
    let members: Vec<GroupMemberView> = described
        .members
        .into_iter()
        .map(|member| GroupMemberView {
            assignment: topic_partitions(&member.assignment),
            target_assignment: topic_partitions(&member.target_assignment),
            member_id: member.member_id,
            instance_id: non_empty(member.instance_id),
            client_id: member.client_id,
            host: member.client_host,
            member_epoch: member.member_epoch,
            subscribed_topics: member.subscribed_topic_names,
            subscribed_topic_regex: non_empty(member.subscribed_topic_regex),
        })
        .collect();
    let partitions: Vec<GroupPartitionView> = described
        .offsets
        .into_iter()
        .map(|offset| {
            let member_id = non_empty(offset.member_id);
            let owner = member_id
                .as_deref()
                .and_then(|id| members.iter().find(|member| member.member_id == id));
            GroupPartitionView {
                topic: offset.topic,
                partition: offset.partition,
                current_offset: known(offset.committed_offset),
                log_start_offset: None,
                log_end_offset: known(offset.high_watermark),
                lag: known(offset.lag),
                client_id: owner.map(|member| member.client_id.clone()),
                host: owner.map(|member| member.host.clone()),
                member_id,
            }
        })
        .collect();
    GroupView {
        group: described.group_id,
        state: described.state,
        coordinator: described.coordinator,
        assignor: described.assignor,
        group_epoch: described.group_epoch,
        assignment_epoch: described.assignment_epoch,
        total_lag: GroupView::total_lag_of(&partitions),
        members,
        partitions,
        retry_topics: Vec::new(),
    }
}
