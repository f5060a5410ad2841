//! The consumer-group calls of [`Admin`] (issue 21): list, describe and delete groups,
//! read a group's committed offsets and change them from outside the group (a seek).
//!
//! Every call but `list_groups` goes to the group's coordinator through
//! [`call_coordinator`], which finds it and retries while it moves or loads. A broker
//! reports only the groups it coordinates, so `list_groups` asks every broker and merges
//! the answers. Per-item outcomes (`describe_groups`, `delete_groups`,
//! `alter_group_offsets`) come back one per item, so one bad group id does not hide the
//! others' results; `Err` is kept for failures of the whole call.
//!
//! Changing offsets from outside is an administrative commit (empty member id, epoch -1).
//! The coordinator refuses it with `NON_EMPTY_GROUP` while the group has live members,
//! which comes back as `Err(Error::Broker { code: ErrorCode::NonEmptyGroup, .. })`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strata_proto::api::v1 as wire;

use super::group_types::{
    CommittedOffset, GroupDescription, GroupListing, GroupListings, GroupOffset, GroupOffsetResult,
    ListGroupsFailure,
};
use super::Admin;
use crate::connection::{request, with_deadline};
use crate::consumer::offsets::list_offsets;
use crate::error::{Error, ErrorCode};
use crate::group_coordinator::{call_coordinator, check_group_id, group_client, GroupClient};
use crate::retry::backoff;

/// Member epoch of an administrative commit (no member).
const ADMIN_COMMIT_EPOCH: i32 = -1;

impl Admin {
    /// Every group of the cluster: each broker reports the groups it coordinates. A
    /// broker that cannot answer (after retrying `COORDINATOR_LOAD_IN_PROGRESS` within the
    /// request timeout) is listed in [`GroupListings::failures`]; `Err` only when the
    /// brokers themselves cannot be learned.
    pub async fn list_groups(&self) -> Result<GroupListings, Error> {
        self.client.refresh_metadata(&[]).await?;
        let mut brokers = self.client.metadata().brokers();
        brokers.sort_by_key(|broker| broker.node_id);
        let mut by_id: BTreeMap<String, GroupListing> = BTreeMap::new();
        let mut failures = Vec::new();
        for broker in brokers {
            match self.list_groups_of(&broker.address).await {
                Ok(groups) => {
                    for group in groups {
                        // While coordination moves, two brokers may both name a group;
                        // the one that names itself coordinator is the newer view.
                        let own = group.coordinator == broker.node_id;
                        if own || !by_id.contains_key(&group.group_id) {
                            by_id.insert(group.group_id.clone(), group);
                        }
                    }
                }
                Err(error) => failures.push(ListGroupsFailure {
                    node_id: broker.node_id,
                    address: broker.address.clone(),
                    error,
                }),
            }
        }
        Ok(GroupListings {
            groups: by_id.into_values().collect(),
            failures,
        })
    }

    /// Members, their assignments and, per partition, the committed offset, high
    /// watermark and lag of each group, in the order asked. A group that does not exist
    /// is `GROUP_ID_NOT_FOUND`. Log start offsets are asked of the partitions' leaders,
    /// best effort.
    pub async fn describe_groups<I>(
        &self,
        group_ids: I,
    ) -> Vec<(String, Result<GroupDescription, Error>)>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let mut results = Vec::new();
        for group_id in group_ids.into_iter().map(Into::into) {
            let result = self.describe_group(&group_id).await;
            results.push((group_id, result));
        }
        results
    }

    /// One group's description; see [`Admin::describe_groups`].
    pub async fn describe_group(&self, group_id: &str) -> Result<GroupDescription, Error> {
        let message = wire::DescribeGroupsRequest {
            group_ids: vec![group_id.to_owned()],
        };
        let described = call_coordinator(
            &self.client,
            "describe groups",
            group_id,
            |mut coordinator: GroupClient, timeout| {
                let message = message.clone();
                async move {
                    let call = coordinator.describe_groups(request(message, timeout));
                    let response = with_deadline("describe groups", timeout, call).await?;
                    let group = response
                        .groups
                        .into_iter()
                        .find(|group| group.group_id == group_id)
                        .ok_or_else(|| missing_result("describe groups", group_id))?;
                    match Error::from_wire(group.error.as_ref()) {
                        Some(error) => Err(error),
                        None => Ok(group),
                    }
                }
            },
        )
        .await?;
        let mut description = GroupDescription::from_wire(&described);
        self.fill_log_start_offsets(&mut description).await;
        Ok(description)
    }

    /// Deletes groups that have no live members, with their committed offsets. One
    /// result per group, in the order asked; a group with members is `NON_EMPTY_GROUP`.
    pub async fn delete_groups<I>(&self, group_ids: I) -> Vec<(String, Result<(), Error>)>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let mut results = Vec::new();
        for group_id in group_ids.into_iter().map(Into::into) {
            let result = self.delete_group(&group_id).await;
            results.push((group_id, result));
        }
        results
    }

    /// Deletes one group; see [`Admin::delete_groups`].
    pub async fn delete_group(&self, group_id: &str) -> Result<(), Error> {
        let message = wire::DeleteGroupsRequest {
            group_ids: vec![group_id.to_owned()],
        };
        call_coordinator(
            &self.client,
            "delete groups",
            group_id,
            |mut coordinator: GroupClient, timeout| {
                let message = message.clone();
                async move {
                    let call = coordinator.delete_groups(request(message, timeout));
                    let response = with_deadline("delete groups", timeout, call).await?;
                    let result = response
                        .results
                        .iter()
                        .find(|result| result.group_id == group_id)
                        .ok_or_else(|| missing_result("delete groups", group_id))?;
                    match Error::from_wire(result.error.as_ref()) {
                        Some(error) => Err(error),
                        None => Ok(()),
                    }
                }
            },
        )
        .await
    }

    /// The group's committed offsets (OffsetFetch), sorted by topic and partition: for
    /// the given partitions (`None` where nothing is committed), or with `None` every
    /// partition the group has committed. A partition the coordinator refuses fails the
    /// whole call.
    pub async fn committed_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<CommittedOffset>, Error> {
        let message = wire::OffsetFetchRequest {
            group_id: group_id.to_owned(),
            topics: partitions.map(group_by_topic).unwrap_or_default(),
        };
        let response = call_coordinator(
            &self.client,
            "fetch offsets",
            group_id,
            |mut coordinator: GroupClient, timeout| {
                let message = message.clone();
                async move {
                    let call = coordinator.offset_fetch(request(message, timeout));
                    let response = with_deadline("fetch offsets", timeout, call).await?;
                    match Error::from_wire(response.error.as_ref()) {
                        Some(error) => Err(error),
                        None => Ok(response),
                    }
                }
            },
        )
        .await?;
        let mut offsets = Vec::with_capacity(response.offsets.len());
        for offset in &response.offsets {
            if let Some(error) = Error::from_wire(offset.error.as_ref()) {
                return Err(error);
            }
            offsets.push(CommittedOffset::from_wire(offset));
        }
        offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(offsets)
    }

    /// Stores offsets for a group from outside it (Kafka's `alterConsumerGroupOffsets`;
    /// what `strata group seek --execute` does). Refused for the whole call with
    /// `NON_EMPTY_GROUP` while the group has live members. One result per partition,
    /// sorted; an offset beyond the log end is `INVALID_COMMIT_OFFSET`.
    pub async fn alter_group_offsets<I>(
        &self,
        group_id: &str,
        offsets: I,
    ) -> Result<Vec<GroupOffsetResult>, Error>
    where
        I: IntoIterator,
        I::Item: Into<GroupOffset>,
    {
        check_group_id(group_id)?;
        let offsets: Vec<GroupOffset> = offsets.into_iter().map(Into::into).collect();
        if offsets.is_empty() {
            return Ok(Vec::new());
        }
        let message = wire::OffsetCommitRequest {
            group_id: group_id.to_owned(),
            member_id: String::new(),
            member_epoch: ADMIN_COMMIT_EPOCH,
            topics: commit_topics(&offsets),
        };
        let response = call_coordinator(
            &self.client,
            "commit offsets",
            group_id,
            |mut coordinator: GroupClient, timeout| {
                let message = message.clone();
                async move {
                    let call = coordinator.offset_commit(request(message, timeout));
                    let response = with_deadline("commit offsets", timeout, call).await?;
                    match Error::from_wire(response.error.as_ref()) {
                        Some(error) => Err(error),
                        None => Ok(response),
                    }
                }
            },
        )
        .await?;
        Ok(commit_results(&offsets, &response))
    }

    /// The groups one broker coordinates, retrying `COORDINATOR_LOAD_IN_PROGRESS`
    /// (its list would be incomplete) within the request timeout.
    async fn list_groups_of(&self, address: &str) -> Result<Vec<GroupListing>, Error> {
        let budget = self.client.request_timeout();
        let deadline = Instant::now() + budget;
        let mut attempt = 0;
        loop {
            let answer = self.list_groups_once(address, deadline).await;
            match answer {
                Err(error) if error.code() == Some(ErrorCode::CoordinatorLoadInProgress) => {
                    attempt += 1;
                    let wait = backoff(Duration::from_millis(50), Duration::from_secs(1), attempt);
                    if Instant::now() + wait >= deadline {
                        return Err(error);
                    }
                    tokio::time::sleep(wait).await;
                }
                answer => return answer,
            }
        }
    }

    async fn list_groups_once(
        &self,
        address: &str,
        deadline: Instant,
    ) -> Result<Vec<GroupListing>, Error> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let mut broker = group_client(&self.client, address)?;
        let call = broker.list_groups(request(wire::ListGroupsRequest {}, timeout));
        let response = with_deadline("list groups", timeout, call).await?;
        if let Some(error) = Error::from_wire(response.error.as_ref()) {
            return Err(error);
        }
        Ok(response
            .groups
            .iter()
            .map(GroupListing::from_wire)
            .collect())
    }

    /// The coordinator reports each partition's high watermark but not its log start;
    /// ask the leaders. What cannot be had stays `None`.
    async fn fill_log_start_offsets(&self, description: &mut GroupDescription) {
        let partitions: Vec<(String, i32)> = description
            .offsets
            .iter()
            .map(|offset| (offset.topic.clone(), offset.partition))
            .collect();
        if partitions.is_empty() {
            return;
        }
        let mut topics: Vec<String> = partitions.iter().map(|(topic, _)| topic.clone()).collect();
        topics.dedup();
        let unknown: Vec<String> = topics
            .into_iter()
            .filter(|topic| self.client.metadata().partition_count(topic).is_none())
            .collect();
        if !unknown.is_empty() {
            self.refresh(&unknown).await;
        }
        let listed =
            match list_offsets(&self.client, &partitions, wire::OffsetSpec::Earliest, 0).await {
                Ok(listed) => listed,
                Err(error) => {
                    tracing::debug!(%error, "log start offsets for a group description");
                    return;
                }
            };
        for (offset, start) in description.offsets.iter_mut().zip(listed) {
            offset.log_start_offset = start.ok().map(|start| start.offset);
        }
    }
}

/// Partitions grouped by topic, for OffsetFetch.
fn group_by_topic(partitions: &[(String, i32)]) -> Vec<wire::GroupTopicPartitions> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(topic).or_default().push(*partition);
    }
    by_topic
        .into_iter()
        .map(|(topic, partitions)| wire::GroupTopicPartitions {
            topic: topic.to_owned(),
            partitions,
        })
        .collect()
}

/// Offsets grouped by topic, for OffsetCommit.
fn commit_topics(offsets: &[GroupOffset]) -> Vec<wire::OffsetCommitTopic> {
    let mut by_topic: BTreeMap<&str, Vec<wire::OffsetCommitPartition>> = BTreeMap::new();
    for offset in offsets {
        by_topic
            .entry(&offset.topic)
            .or_default()
            .push(wire::OffsetCommitPartition {
                partition: offset.partition,
                offset: offset.offset,
                leader_epoch: -1,
                metadata: String::new(),
            });
    }
    by_topic
        .into_iter()
        .map(|(topic, partitions)| wire::OffsetCommitTopic {
            topic: topic.to_owned(),
            partitions,
        })
        .collect()
}

/// One result per offset asked for, sorted; a partition the answer leaves out is an error.
fn commit_results(
    offsets: &[GroupOffset],
    response: &wire::OffsetCommitResponse,
) -> Vec<GroupOffsetResult> {
    let mut results: Vec<GroupOffsetResult> = offsets
        .iter()
        .map(|offset| {
            let answered = response
                .topics
                .iter()
                .filter(|topic| topic.topic == offset.topic)
                .flat_map(|topic| topic.partitions.iter())
                .find(|partition| partition.partition == offset.partition);
            let result = match answered {
                None => Err(Error::broker(
                    ErrorCode::UnknownServerError,
                    format!(
                        "the coordinator sent no result for {}/{}",
                        offset.topic, offset.partition
                    ),
                )),
                Some(answer) => match Error::from_wire(answer.error.as_ref()) {
                    Some(error) => Err(error),
                    None => Ok(()),
                },
            };
            GroupOffsetResult {
                topic: offset.topic.clone(),
                partition: offset.partition,
                result,
            }
        })
        .collect();
    results.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    results
}

fn missing_result(operation: &str, group_id: &str) -> Error {
    Error::broker(
        ErrorCode::UnknownServerError,
        format!("{operation}: the coordinator sent no result for group {group_id}"),
    )
}

#[cfg(test)]
#[path = "groups_tests.rs"]
mod tests;
