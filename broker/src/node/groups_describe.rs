//! What the coordinator shows of its groups: `ListGroups`, `DescribeGroups` (members,
//! assignments and, per partition, committed offset, high watermark and lag) and the lag
//! of every partition of every group coordinated here, for the metrics endpoint. High
//! watermarks are asked of the partitions' leaders each time (`groups_offsets.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use strata_proto::types::BrokerId;

use super::groups::GroupCoordinator;
use super::groups_offsets::{PartitionEnds, TopicPartitionKey};
use super::groups_store::GroupEntry;
use super::NodeError;
use crate::group::records::{partition_for, OffsetValue, OFFSETS_TOPIC};
use crate::group::{Group, GroupSnapshot, GroupState};

/// One group in `ListGroups`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub state: GroupState,
    pub members: usize,
}

/// One partition of a group: what it committed, its owner and its lag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub group_id: String,
    pub topic: String,
    pub partition: i32,
    pub committed: Option<OffsetValue>,
    /// The member that may consume it now.
    pub owner: Option<String>,
    /// `None` when the leader could not be asked.
    pub ends: Option<PartitionEnds>,
}

impl PartitionLag {
    /// High watermark − committed offset; without a commit, high watermark − log start
    /// (the whole partition); `None` when the ends are unknown.
    pub fn lag(&self) -> Option<i64> {
        let ends = self.ends?;
        let from = self
            .committed
            .as_ref()
            .map_or(ends.log_start_offset, |committed| committed.offset);
        Some((ends.high_watermark - from).max(0))
    }
}

/// A group as `DescribeGroups` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub state: GroupState,
    pub snapshot: GroupSnapshot,
    pub partitions: Vec<PartitionLag>,
}

impl GroupCoordinator {
    /// The groups coordinated here that have state or committed offsets.
    pub async fn list_groups(self: &Arc<Self>) -> Vec<GroupListing> {
        let mut listings = Vec::new();
        for coordinated in self.loaded() {
            for shared in coordinated.entries() {
                let entry = shared.lock().await;
                if entry.removed || (entry.group.is_none() && entry.offsets.is_empty()) {
                    continue;
                }
                let (state, members) = entry
                    .group
                    .as_ref()
                    .map_or((GroupState::Empty, 0), |group| {
                        (group.state(), group.snapshot().members.len())
                    });
                listings.push(GroupListing {
                    group_id: entry.group_id.clone(),
                    state,
                    members,
                });
            }
        }
        listings.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listings
    }

    /// Members, assignments and, per partition, committed offset, high watermark and lag.
    pub async fn describe_group(
        self: &Arc<Self>,
        group_id: &str,
    ) -> Result<GroupDescription, NodeError> {
        let not_found = || NodeError::GroupIdNotFound {
            group_id: group_id.to_owned(),
        };
        let locked = self
            .lock_group(group_id, false)
            .await?
            .ok_or_else(not_found)?;
        if locked.entry.group.is_none() && locked.entry.offsets.is_empty() {
            return Err(not_found());
        }
        let (state, snapshot, mut partitions) = describe_entry(&locked.entry);
        drop(locked);
        self.fill_ends(&mut partitions).await;
        Ok(GroupDescription {
            state,
            snapshot,
            partitions,
        })
    }

    /// The lag of every partition of every group coordinated here (committed or owned),
    /// with high watermarks asked of their leaders now: what the metrics endpoint exports.
    pub async fn lag(self: &Arc<Self>) -> Vec<PartitionLag> {
        let mut partitions = Vec::new();
        for coordinated in self.loaded() {
            for shared in coordinated.entries() {
                let entry = shared.lock().await;
                if !entry.removed {
                    partitions.extend(describe_entry(&entry).2);
                }
            }
        }
        self.fill_ends(&mut partitions).await;
        partitions
    }

    /// Asks the leaders for the ends of `partitions`; a partition whose leader does not
    /// answer keeps the last value learned, if any; one that no longer exists has none.
    async fn fill_ends(&self, partitions: &mut [PartitionLag]) {
        let keys: Vec<TopicPartitionKey> = partitions
            .iter()
            .map(|p| (p.topic.clone(), p.partition))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let ends = self.partition_ends(&keys).await;
        for partition in partitions {
            let key = (partition.topic.clone(), partition.partition);
            partition.ends = ends.get(&key).copied().flatten();
        }
    }

    /// The log start and high watermark of each of `partitions`, asked of its leader now
    /// (this broker's own log when it leads it, else `ListOffsets`); a partition whose
    /// leader does not answer gets the last value learned, if any; one that does not
    /// exist gets `None`.
    pub async fn partition_ends(
        &self,
        partitions: &[TopicPartitionKey],
    ) -> BTreeMap<TopicPartitionKey, Option<PartitionEnds>> {
        let answers = self.high_watermarks.refresh(&self.node, partitions).await;
        partitions
            .iter()
            .map(|key| {
                let ends = match answers.get(key) {
                    Some(Ok(ends)) => Some(*ends),
                    // The topic or partition is gone: no ends to show.
                    Some(Err(NodeError::UnknownTopicOrPartition { .. })) => None,
                    _ => self.high_watermarks.last_known(key),
                };
                (key.clone(), ends)
            })
            .collect()
    }

    /// The broker that coordinates `group_id` by this broker's metadata: the leader of
    /// its `__consumer_offsets` partition (`None` before the topic exists or while that
    /// partition has no leader).
    pub fn coordinator_of(&self, group_id: &str) -> Option<BrokerId> {
        let image = self.node.image();
        let count = image.topic(OFFSETS_TOPIC)?.partition_count();
        image
            .partition(OFFSETS_TOPIC, partition_for(group_id, count))?
            .leader
    }
}

/// The group's state, snapshot and partitions (committed or owned), without ends yet.
fn describe_entry(entry: &GroupEntry) -> (GroupState, GroupSnapshot, Vec<PartitionLag>) {
    let (state, snapshot) = match &entry.group {
        Some(group) => (group.state(), group.snapshot()),
        None => (
            GroupState::Empty,
            Group::new(entry.group_id.clone()).snapshot(),
        ),
    };
    let mut keys: BTreeSet<TopicPartitionKey> = entry.offsets.keys().cloned().collect();
    if let Some(group) = &entry.group {
        for (topic, partitions) in group.owned() {
            keys.extend(
                partitions
                    .into_iter()
                    .map(|partition| (topic.clone(), partition)),
            );
        }
    }
    let partitions = keys
        .into_iter()
        .map(|(topic, partition)| PartitionLag {
            group_id: entry.group_id.clone(),
            owner: entry
                .group
                .as_ref()
                .and_then(|group| group.owner_of(&topic, partition))
                .map(str::to_owned),
            committed: entry.offsets.get(&(topic.clone(), partition)).cloned(),
            ends: None,
            topic,
            partition,
        })
        .collect();
    (state, snapshot, partitions)
}
