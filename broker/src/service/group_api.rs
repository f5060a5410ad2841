//! The `GroupApi` gRPC service: each method converts the request, makes one call into
//! the [`GroupCoordinator`], and converts the answer (errors through `status.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use strata_proto::api::v1::group_api_server::GroupApi;
use strata_proto::api::v1::{
    CommittedOffset, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
    DeleteGroupResult, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, DescribedGroup, FindCoordinatorRequest, FindCoordinatorResponse,
    GroupListing, GroupMember, GroupPartitionOffset, GroupTopicPartitions, ListGroupsRequest,
    ListGroupsResponse, OffsetCommitPartitionResult, OffsetCommitRequest, OffsetCommitResponse,
    OffsetCommitTopicResult, OffsetFetchRequest, OffsetFetchResponse,
};
use tonic::{Request, Response, Status};

use super::connections::ClientConnection;
use super::status;
use crate::group::{Assignment, HeartbeatRequest, Subscription};
use crate::node::groups_describe::GroupDescription;
use crate::node::groups_requests::{CommitPartition, CommitRequest};
use crate::node::{GroupCoordinator, NodeError};

/// Most groups one Describe or Delete request may name.
const GROUPS_PER_REQUEST_MAX: usize = 1000;

/// The gRPC front of the group coordinator.
#[derive(Debug, Clone)]
pub struct GroupApiService {
    groups: Arc<GroupCoordinator>,
}

impl GroupApiService {
    pub fn new(groups: Arc<GroupCoordinator>) -> GroupApiService {
        GroupApiService { groups }
    }

    fn node_id(&self) -> i32 {
        self.groups.node().config().node_id.0
    }
}

fn wire<T>(result: &Result<T, NodeError>) -> strata_proto::api::v1::Error {
    result
        .as_ref()
        .map_or_else(status::to_wire, |_| status::none())
}

fn millis(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}

fn to_assignment(topics: Vec<GroupTopicPartitions>) -> Assignment {
    let mut assignment = Assignment::new();
    for topic in topics {
        assignment
            .entry(topic.topic)
            .or_default()
            .extend(topic.partitions);
    }
    assignment
}

fn from_assignment(assignment: &Assignment) -> Vec<GroupTopicPartitions> {
    assignment
        .iter()
        .map(|(topic, partitions)| GroupTopicPartitions {
            topic: topic.clone(),
            partitions: partitions.iter().copied().collect(),
        })
        .collect()
}

/// The heartbeat in the state machine's terms (ids are UTF-8 already: protobuf strings).
fn heartbeat_request(
    request: ConsumerGroupHeartbeatRequest,
    client_host: String,
) -> HeartbeatRequest {
    let subscription = request.has_subscription.then(|| Subscription {
        topics: request.subscribed_topic_names.into_iter().collect(),
        regex: (!request.subscribed_topic_regex.is_empty())
            .then_some(request.subscribed_topic_regex),
    });
    HeartbeatRequest {
        member_id: request.member_id,
        member_epoch: request.member_epoch,
        instance_id: (!request.instance_id.is_empty()).then_some(request.instance_id),
        subscription,
        server_assignor: (!request.server_assignor.is_empty()).then_some(request.server_assignor),
        owned: request
            .has_owned
            .then(|| to_assignment(request.owned_partitions)),
        client_id: request.client_id,
        client_host,
        rebalance_timeout: (request.rebalance_timeout_ms > 0)
            .then(|| Duration::from_millis(u64::from(request.rebalance_timeout_ms.unsigned_abs()))),
    }
}

fn described(
    node_id: i32,
    group_id: String,
    result: Result<GroupDescription, NodeError>,
) -> DescribedGroup {
    let error = Some(wire(&result));
    let Ok(description) = result else {
        return DescribedGroup {
            error,
            group_id,
            coordinator: node_id,
            ..DescribedGroup::default()
        };
    };
    let snapshot = description.snapshot;
    let members = snapshot
        .members
        .iter()
        .map(|member| GroupMember {
            member_id: member.member_id.clone(),
            instance_id: member.instance_id.clone().unwrap_or_default(),
            client_id: member.client_id.clone(),
            client_host: member.client_host.clone(),
            member_epoch: member.member_epoch,
            subscribed_topic_names: member.subscription.topics.iter().cloned().collect(),
            subscribed_topic_regex: member.subscription.regex.clone().unwrap_or_default(),
            assignment: from_assignment(&member.assigned),
            target_assignment: from_assignment(&member.target),
        })
        .collect();
    let offsets = description
        .partitions
        .iter()
        .map(|partition| GroupPartitionOffset {
            topic: partition.topic.clone(),
            partition: partition.partition,
            committed_offset: partition.committed.as_ref().map_or(-1, |c| c.offset),
            metadata: partition
                .committed
                .as_ref()
                .map(|c| c.metadata.clone())
                .unwrap_or_default(),
            high_watermark: partition.ends.map_or(-1, |ends| ends.high_watermark),
            lag: partition.lag().unwrap_or(-1),
            member_id: partition.owner.clone().unwrap_or_default(),
        })
        .collect();
    DescribedGroup {
        error,
        group_id,
        state: description.state.as_str().to_owned(),
        group_epoch: snapshot.group_epoch,
        assignment_epoch: snapshot.assignment_epoch,
        assignor: snapshot.assignor,
        coordinator: node_id,
        members,
        offsets,
    }
}

fn too_many(count: usize) -> Status {
    Status::invalid_argument(format!(
        "{count} groups in one request; at most {GROUPS_PER_REQUEST_MAX}"
    ))
}

#[tonic::async_trait]
impl GroupApi for GroupApiService {
    async fn find_coordinator(
        &self,
        request: Request<FindCoordinatorRequest>,
    ) -> Result<Response<FindCoordinatorResponse>, Status> {
        let listener = super::connections::listener_of(&request);
        let result = self
            .groups
            .find_coordinator_for(&request.into_inner().group_id, listener)
            .await;
        let error = Some(wire(&result));
        let (node_id, address) = result.unwrap_or((-1, String::new()));
        Ok(Response::new(FindCoordinatorResponse {
            error,
            node_id,
            address,
        }))
    }

    async fn consumer_group_heartbeat(
        &self,
        request: Request<ConsumerGroupHeartbeatRequest>,
    ) -> Result<Response<ConsumerGroupHeartbeatResponse>, Status> {
        // The listener wraps each connection (`connections.rs`), so its peer comes from
        // that connection's info, not from tonic's `remote_addr` (which stays empty).
        let client_host = request
            .extensions()
            .get::<ClientConnection>()
            .map(|connection| connection.peer().to_string())
            .or_else(|| request.remote_addr().map(|address| address.to_string()))
            .unwrap_or_default();
        let request = request.into_inner();
        let group_id = request.group_id.clone();
        let settings = &self.groups.settings().group;
        let session_timeout_ms = millis(settings.session_timeout);
        let result = self
            .groups
            .heartbeat(&group_id, heartbeat_request(request, client_host))
            .await;
        let error = Some(wire(&result));
        let response = match result {
            Ok(answer) => ConsumerGroupHeartbeatResponse {
                error,
                member_id: answer.member_id,
                member_epoch: answer.member_epoch,
                heartbeat_interval_ms: millis(answer.heartbeat_interval),
                has_assignment: answer.assignment.is_some(),
                assignment: answer
                    .assignment
                    .as_ref()
                    .map(from_assignment)
                    .unwrap_or_default(),
                session_timeout_ms,
            },
            Err(_) => ConsumerGroupHeartbeatResponse {
                error,
                member_epoch: -1,
                heartbeat_interval_ms: millis(settings.heartbeat_interval),
                session_timeout_ms,
                ..ConsumerGroupHeartbeatResponse::default()
            },
        };
        Ok(Response::new(response))
    }

    async fn offset_commit(
        &self,
        request: Request<OffsetCommitRequest>,
    ) -> Result<Response<OffsetCommitResponse>, Status> {
        let request = request.into_inner();
        let partitions = request
            .topics
            .into_iter()
            .flat_map(|topic| {
                let name = topic.topic;
                topic.partitions.into_iter().map(move |p| CommitPartition {
                    topic: name.clone(),
                    partition: p.partition,
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata: p.metadata,
                })
            })
            .collect();
        let result = self
            .groups
            .offset_commit(CommitRequest {
                group_id: request.group_id,
                member_id: request.member_id,
                member_epoch: request.member_epoch,
                partitions,
            })
            .await;
        let error = Some(wire(&result));
        let mut topics: BTreeMap<String, Vec<OffsetCommitPartitionResult>> = BTreeMap::new();
        for (topic, partition, outcome) in result.unwrap_or_default() {
            topics
                .entry(topic)
                .or_default()
                .push(OffsetCommitPartitionResult {
                    partition,
                    error: Some(wire(&outcome)),
                });
        }
        Ok(Response::new(OffsetCommitResponse {
            error,
            topics: topics
                .into_iter()
                .map(|(topic, partitions)| OffsetCommitTopicResult { topic, partitions })
                .collect(),
        }))
    }

    async fn offset_fetch(
        &self,
        request: Request<OffsetFetchRequest>,
    ) -> Result<Response<OffsetFetchResponse>, Status> {
        let request = request.into_inner();
        let partitions = (!request.topics.is_empty()).then(|| {
            request
                .topics
                .into_iter()
                .flat_map(|topic| {
                    let name = topic.topic;
                    topic
                        .partitions
                        .into_iter()
                        .map(move |partition| (name.clone(), partition))
                })
                .collect()
        });
        let result = self
            .groups
            .offset_fetch(&request.group_id, partitions)
            .await;
        let error = Some(wire(&result));
        let offsets = result
            .unwrap_or_default()
            .into_iter()
            .map(|fetched| {
                let committed = fetched.committed;
                CommittedOffset {
                    topic: fetched.topic,
                    partition: fetched.partition,
                    offset: committed.as_ref().map_or(-1, |c| c.offset),
                    leader_epoch: committed.as_ref().map_or(-1, |c| c.leader_epoch),
                    metadata: committed.map(|c| c.metadata).unwrap_or_default(),
                    error: Some(status::none()),
                }
            })
            .collect();
        Ok(Response::new(OffsetFetchResponse { error, offsets }))
    }

    async fn list_groups(
        &self,
        _request: Request<ListGroupsRequest>,
    ) -> Result<Response<ListGroupsResponse>, Status> {
        let coordinator = self.node_id();
        let groups = self
            .groups
            .list_groups()
            .await
            .into_iter()
            .map(|listing| GroupListing {
                group_id: listing.group_id,
                state: listing.state.as_str().to_owned(),
                members: i32::try_from(listing.members).unwrap_or(i32::MAX),
                coordinator,
            })
            .collect();
        Ok(Response::new(ListGroupsResponse {
            error: Some(status::none()),
            groups,
        }))
    }

    async fn describe_groups(
        &self,
        request: Request<DescribeGroupsRequest>,
    ) -> Result<Response<DescribeGroupsResponse>, Status> {
        let group_ids = request.into_inner().group_ids;
        if group_ids.len() > GROUPS_PER_REQUEST_MAX {
            return Err(too_many(group_ids.len()));
        }
        let mut groups = Vec::with_capacity(group_ids.len());
        for group_id in group_ids {
            let result = self.groups.describe_group(&group_id).await;
            groups.push(described(self.node_id(), group_id, result));
        }
        Ok(Response::new(DescribeGroupsResponse { groups }))
    }

    async fn delete_groups(
        &self,
        request: Request<DeleteGroupsRequest>,
    ) -> Result<Response<DeleteGroupsResponse>, Status> {
        let group_ids = request.into_inner().group_ids;
        if group_ids.len() > GROUPS_PER_REQUEST_MAX {
            return Err(too_many(group_ids.len()));
        }
        let mut results = Vec::with_capacity(group_ids.len());
        for group_id in group_ids {
            let result = self.groups.delete_group(&group_id).await;
            results.push(DeleteGroupResult {
                error: Some(wire(&result)),
                group_id,
            });
        }
        Ok(Response::new(DeleteGroupsResponse { results }))
    }
}
