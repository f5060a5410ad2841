//! The group requests that change or read a group, in domain terms (`service/group_api.rs`
//! converts them): heartbeat, offset commit and fetch, delete. List, describe and lag are
//! in `groups_describe.rs`.
//!
//! Each takes the group's lock for the whole request (`groups.rs`); a change reaches
//! memory only after its records are committed to `__consumer_offsets`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::groups::{validate_group_id, GroupCoordinator};
use super::groups_offsets::{PartitionEnds, TopicPartitionKey};
use super::groups_store::{self, GroupEntry, KeyValue};
use super::NodeError;
use crate::group::records::{OffsetKey, OffsetValue, METADATA_BYTES_MAX};
use crate::group::{Group, GroupError, HeartbeatAnswer, HeartbeatRequest};

/// One partition of an offset commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// An offset commit: a member's (its id and epoch), or an administrator's (empty member
/// id), which is refused while the group has members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRequest {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub partitions: Vec<CommitPartition>,
}

/// A committed offset as `OffsetFetch` answers it (`None`: nothing committed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    pub committed: Option<OffsetValue>,
}

/// A member id: 128 random bits, written like a UUID.
fn new_member_id() -> String {
    let hex = format!("{:032x}", rand::random::<u128>());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Whether a commit refusal concerns the whole request (the member), not one partition.
fn refuses_whole_commit(error: &GroupError) -> bool {
    !matches!(error, GroupError::PartitionNotAssigned { .. })
}

impl GroupCoordinator {
    /// A member's heartbeat (join, stay or leave); the group's new state is written before
    /// the answer, and on a failed write the group is left as it was.
    pub async fn heartbeat(
        self: &Arc<Self>,
        group_id: &str,
        request: HeartbeatRequest,
    ) -> Result<HeartbeatAnswer, NodeError> {
        let locked = self.lock_group(group_id, true).await?;
        let Some(mut locked) = locked else {
            return Err(NodeError::GroupIdNotFound {
                group_id: group_id.to_owned(),
            });
        };
        let topics = self.topics_view();
        let entry = &mut *locked.entry;
        let before = entry.group.clone();
        let group = entry.group.get_or_insert_with(|| Group::new(group_id));
        let answer = group.heartbeat(
            request,
            &topics,
            &self.settings.group,
            Instant::now(),
            &mut new_member_id,
        );
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => {
                entry.group = before;
                return Err(error.into());
            }
        };
        if answer.changed {
            self.persist_group(locked.coordinated.partition, entry, before)
                .await?;
        }
        entry.topics_seen = Some(topics);
        Ok(answer)
    }

    /// Commits offsets. Whole-request refusals (not coordinator, unknown member, stale or
    /// fenced epoch, a seek while members are live) are the `Err`; otherwise each
    /// partition gets its own outcome, and the accepted ones are written as one batch.
    pub async fn offset_commit(
        self: &Arc<Self>,
        request: CommitRequest,
    ) -> Result<Vec<(String, i32, Result<(), NodeError>)>, NodeError> {
        validate_group_id(&request.group_id)?;
        // Shape and range first, outside the group's lock: they may ask other brokers.
        let mut outcomes: Vec<Result<(), NodeError>> = Vec::new();
        for partition in &request.partitions {
            outcomes.push(self.check_commit_shape(partition));
        }
        let wanted: Vec<TopicPartitionKey> = request
            .partitions
            .iter()
            .zip(&outcomes)
            .filter(|(_, outcome)| outcome.is_ok())
            .map(|(p, _)| (p.topic.clone(), p.partition))
            .filter(|key| self.high_watermarks.fresh(key).is_none())
            .collect();
        let mut refreshed = self.high_watermarks.refresh(&self.node, &wanted).await;
        for (partition, outcome) in request.partitions.iter().zip(outcomes.iter_mut()) {
            if outcome.is_ok() {
                *outcome = self.check_commit_offset(partition, &mut refreshed).await;
            }
        }
        let Some(mut locked) = self.lock_group(&request.group_id, true).await? else {
            return Err(NodeError::GroupIdNotFound {
                group_id: request.group_id,
            });
        };
        let entry = &mut *locked.entry;
        for (partition, outcome) in request.partitions.iter().zip(outcomes.iter_mut()) {
            if outcome.is_err() {
                continue;
            }
            if let Err(error) = check_member(entry, &request, partition) {
                if refuses_whole_commit(&error) {
                    return Err(error.into());
                }
                *outcome = Err(error.into());
            }
        }
        let now_ms = now_ms();
        let mut accepted = Vec::new();
        let mut records = Vec::new();
        for (partition, outcome) in request.partitions.iter().zip(&outcomes) {
            if outcome.is_ok() {
                let key = OffsetKey {
                    group_id: request.group_id.clone(),
                    topic: partition.topic.clone(),
                    partition: partition.partition,
                };
                let value = OffsetValue {
                    offset: partition.offset,
                    leader_epoch: partition.leader_epoch,
                    metadata: partition.metadata.clone(),
                    commit_timestamp_ms: now_ms,
                };
                records.push(KeyValue::offset(&key, Some(&value))?);
                accepted.push(((key.topic, key.partition), value));
            }
        }
        groups_store::write_records(
            &self.node,
            &request.group_id,
            locked.coordinated.partition,
            &records,
            self.settings.commit_timeout,
        )
        .await?;
        entry.offsets.extend(accepted);
        Ok(request
            .partitions
            .into_iter()
            .zip(outcomes)
            .map(|(partition, outcome)| (partition.topic, partition.partition, outcome))
            .collect())
    }

    /// The checks of one committed partition that need neither the group nor its leader.
    fn check_commit_shape(&self, partition: &CommitPartition) -> Result<(), NodeError> {
        if partition.metadata.len() > METADATA_BYTES_MAX {
            return Err(NodeError::InvalidRequest {
                reason: format!(
                    "the commit metadata of {}-{} is {} bytes, more than {METADATA_BYTES_MAX}",
                    partition.topic,
                    partition.partition,
                    partition.metadata.len()
                ),
            });
        }
        if self
            .node
            .image()
            .partition(&partition.topic, partition.partition)
            .is_none()
            || partition.topic.starts_with("__")
        {
            return Err(NodeError::UnknownTopicOrPartition {
                topic: partition.topic.clone(),
                partition: partition.partition,
            });
        }
        if partition.offset < 0 {
            return Err(NodeError::InvalidCommitOffset {
                topic: partition.topic.clone(),
                partition: partition.partition,
                offset: partition.offset,
                high_watermark: -1,
            });
        }
        Ok(())
    }

    /// The offset must be at most the partition's high watermark (the log end consumers
    /// see); a cached value below it is refreshed once before the refusal.
    async fn check_commit_offset(
        &self,
        partition: &CommitPartition,
        refreshed: &mut BTreeMap<TopicPartitionKey, Result<PartitionEnds, NodeError>>,
    ) -> Result<(), NodeError> {
        let key = (partition.topic.clone(), partition.partition);
        let (mut ends, cached) = match refreshed.remove(&key) {
            Some(result) => (result?, false),
            None => match self.high_watermarks.fresh(&key) {
                Some(ends) => (ends, true),
                None => (self.ask_ends(&key).await?, false),
            },
        };
        if partition.offset > ends.high_watermark && cached {
            ends = self.ask_ends(&key).await?;
        }
        if partition.offset > ends.high_watermark {
            return Err(NodeError::InvalidCommitOffset {
                topic: key.0,
                partition: key.1,
                offset: partition.offset,
                high_watermark: ends.high_watermark,
            });
        }
        Ok(())
    }

    async fn ask_ends(&self, key: &TopicPartitionKey) -> Result<PartitionEnds, NodeError> {
        let mut answers = self
            .high_watermarks
            .refresh(&self.node, std::slice::from_ref(key))
            .await;
        answers.remove(key).unwrap_or_else(|| {
            Err(NodeError::CoordinatorNotAvailable {
                reason: format!("the high watermark of {}-{} is unknown", key.0, key.1),
            })
        })
    }

    /// Committed offsets of `group_id`: of `partitions`, or every committed one when
    /// `None`. An unknown group has none.
    pub async fn offset_fetch(
        self: &Arc<Self>,
        group_id: &str,
        partitions: Option<Vec<TopicPartitionKey>>,
    ) -> Result<Vec<FetchedOffset>, NodeError> {
        let locked = self.lock_group(group_id, false).await?;
        let offsets = locked
            .as_ref()
            .map(|locked| locked.entry.offsets.clone())
            .unwrap_or_default();
        let fetched = match partitions {
            None => offsets
                .into_iter()
                .map(|((topic, partition), value)| FetchedOffset {
                    topic,
                    partition,
                    committed: Some(value),
                })
                .collect(),
            Some(partitions) => partitions
                .into_iter()
                .map(|(topic, partition)| FetchedOffset {
                    committed: offsets.get(&(topic.clone(), partition)).cloned(),
                    topic,
                    partition,
                })
                .collect(),
        };
        Ok(fetched)
    }

    /// Deletes a group without live members, with its committed offsets (tombstones for
    /// every key it has).
    pub async fn delete_group(self: &Arc<Self>, group_id: &str) -> Result<(), NodeError> {
        let not_found = || NodeError::GroupIdNotFound {
            group_id: group_id.to_owned(),
        };
        let mut locked = self
            .lock_group(group_id, false)
            .await?
            .ok_or_else(not_found)?;
        let entry = &mut *locked.entry;
        if entry.group.is_none() && entry.offsets.is_empty() {
            return Err(not_found());
        }
        if entry.has_members() {
            let members = entry
                .group
                .as_ref()
                .map_or(0, |group| group.snapshot().members.len());
            return Err(GroupError::NonEmptyGroup {
                group_id: group_id.to_owned(),
                members,
            }
            .into());
        }
        let mut records = vec![KeyValue::group(group_id, None)?];
        for (topic, partition) in entry.offsets.keys() {
            let key = OffsetKey {
                group_id: group_id.to_owned(),
                topic: topic.clone(),
                partition: *partition,
            };
            records.push(KeyValue::offset(&key, None)?);
        }
        groups_store::write_records(
            &self.node,
            group_id,
            locked.coordinated.partition,
            &records,
            self.settings.commit_timeout,
        )
        .await?;
        entry.removed = true;
        entry.group = None;
        entry.offsets.clear();
        locked.coordinated.remove(group_id);
        tracing::info!(group = group_id, "group deleted");
        Ok(())
    }
}

/// Whether the group lets this commit through (`Group::check_commit`); a group with no
/// state takes administrative commits only.
fn check_member(
    entry: &GroupEntry,
    request: &CommitRequest,
    partition: &CommitPartition,
) -> Result<(), GroupError> {
    match &entry.group {
        Some(group) => group.check_commit(
            &request.member_id,
            request.member_epoch,
            &partition.topic,
            partition.partition,
        ),
        None if request.member_id.is_empty() => Ok(()),
        None => Err(GroupError::UnknownMemberId {
            group_id: entry.group_id.clone(),
            member_id: request.member_id.clone(),
        }),
    }
}

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}
