//! `GET /v1/groups` and `GET /v1/groups/{group}`.
//!
//! A group lives on one coordinator (the leader of its `__consumer_offsets` partition).
//! The list merges this broker's groups with every other live broker's answer to
//! `ListGroups`, as `strata group list` does; a broker that does not answer within a few
//! seconds is left out (and logged). A group coordinated here is described from the
//! coordinator itself; one coordinated elsewhere is asked of its coordinator
//! (`DescribeGroups`, [`super::groups_remote`]). Lag is the high watermark minus the
//! committed offset (the whole partition when nothing is committed).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use strata_proto::views::{
    GroupListingView, GroupMemberView, GroupPartitionView, GroupView, TopicPartitionView,
};

use super::group_retry_topics::retry_topics_of;
use super::groups_remote;
use super::{ok, serving, ApiFailure};
use crate::admin::AdminState;
use crate::group::records::OFFSETS_TOPIC;
use crate::group::Assignment;
use crate::node::groups_describe::GroupDescription;
use crate::node::NodeError;

pub async fn list(State(state): State<Arc<AdminState>>) -> Result<Response, ApiFailure> {
    let (node, groups) = serving(&state)?;
    let me = node.config().node_id.0;
    let mut listed: Vec<GroupListingView> = groups
        .list_groups()
        .await
        .into_iter()
        .map(|listing| GroupListingView {
            group: listing.group_id,
            state: listing.state.as_str().to_owned(),
            members: u32::try_from(listing.members).unwrap_or(u32::MAX),
            coordinator: me,
        })
        .collect();
    listed.extend(groups_remote::list_elsewhere(&node).await);
    listed.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(ok(&listed))
}

pub async fn describe(
    State(state): State<Arc<AdminState>>,
    Path(group_id): Path<String>,
) -> Result<Response, ApiFailure> {
    let (node, groups) = serving(&state)?;
    let me = node.config().node_id;
    match groups.describe_group(&group_id).await {
        Ok(description) => {
            let mut view = group_view(&group_id, me.0, &description);
            view.retry_topics = retry_topics_of(&node, &groups, &group_id).await;
            Ok(ok(&view))
        }
        Err(NodeError::NotCoordinator { .. } | NodeError::CoordinatorLoadInProgress { .. }) => {
            match groups.coordinator_of(&group_id) {
                Some(coordinator) if coordinator != me => {
                    let mut view =
                        groups_remote::describe_elsewhere(&node, &groups, coordinator, &group_id)
                            .await?;
                    view.retry_topics = retry_topics_of(&node, &groups, &group_id).await;
                    Ok(ok(&view))
                }
                // No `__consumer_offsets` yet: no group was ever created.
                None if node.image().topic(OFFSETS_TOPIC).is_none() => Err(node_failure(
                    &group_id,
                    &NodeError::GroupIdNotFound {
                        group_id: group_id.clone(),
                    },
                )),
                _ => Err(ApiFailure::unavailable(
                    "COORDINATOR_NOT_AVAILABLE",
                    format!("the coordinator of group {group_id:?} is not available now"),
                )),
            }
        }
        Err(error) => Err(node_failure(&group_id, &error)),
    }
}

/// An error of the local coordinator as an API error.
pub fn node_failure(group_id: &str, error: &NodeError) -> ApiFailure {
    match error {
        NodeError::GroupIdNotFound { .. } => ApiFailure::new(
            StatusCode::NOT_FOUND,
            "GROUP_ID_NOT_FOUND",
            format!("unknown group {group_id:?}"),
        ),
        NodeError::InvalidGroupId { .. } => ApiFailure::new(
            StatusCode::BAD_REQUEST,
            "INVALID_GROUP_ID",
            error.to_string(),
        ),
        other => ApiFailure::unavailable("COORDINATOR_NOT_AVAILABLE", other.to_string()),
    }
}

fn topic_partitions(assignment: &Assignment) -> Vec<TopicPartitionView> {
    assignment
        .iter()
        .flat_map(|(topic, partitions)| {
            partitions.iter().map(|partition| TopicPartitionView {
                topic: topic.clone(),
                partition: *partition,
            })
        })
        .collect()
}

/// What `strata group describe --format json` prints for one group.
fn group_view(group_id: &str, coordinator: i32, description: &GroupDescription) -> GroupView {
    let snapshot = &description.snapshot;
    let members: Vec<GroupMemberView> = snapshot
        .members
        .iter()
        .map(|member| GroupMemberView {
            member_id: member.member_id.clone(),
            instance_id: member.instance_id.clone(),
            client_id: member.client_id.clone(),
            host: member.client_host.clone(),
            member_epoch: member.member_epoch,
            subscribed_topics: member.subscription.topics.iter().cloned().collect(),
            subscribed_topic_regex: member.subscription.regex.clone(),
            assignment: topic_partitions(&member.assigned),
            target_assignment: topic_partitions(&member.target),
        })
        .collect();
    let partitions: Vec<GroupPartitionView> = description
        .partitions
        .iter()
        .map(|partition| {
            let owner = partition
                .owner
                .as_deref()
                .and_then(|id| members.iter().find(|member| member.member_id == id));
            GroupPartitionView {
                topic: partition.topic.clone(),
                partition: partition.partition,
                current_offset: partition.committed.as_ref().map(|c| c.offset),
                log_start_offset: partition.ends.map(|ends| ends.log_start_offset),
                log_end_offset: partition.ends.map(|ends| ends.high_watermark),
                lag: partition.lag(),
                member_id: partition.owner.clone(),
                client_id: owner.map(|member| member.client_id.clone()),
                host: owner.map(|member| member.host.clone()),
            }
        })
        .collect();
    GroupView {
        group: group_id.to_owned(),
        state: description.state.as_str().to_owned(),
        coordinator,
        assignor: snapshot.assignor.clone(),
        group_epoch: snapshot.group_epoch,
        assignment_epoch: snapshot.assignment_epoch,
        total_lag: GroupView::total_lag_of(&partitions),
        members,
        partitions,
        retry_topics: Vec::new(),
    }
}
