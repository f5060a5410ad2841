//! Consumer groups as `strata group list|describe --format json` and `GET /v1/groups…`
//! show them.

use serde::{Deserialize, Serialize};

/// One row of `group list` (`GET /v1/groups`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupListingView {
    pub group: String,
    /// `empty`, `assigning`, `reconciling` or `stable` (KIP-848's states).
    pub state: String,
    pub members: u32,
    pub coordinator: i32,
}

/// `group describe` (`GET /v1/groups/{group}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupView {
    pub group: String,
    pub state: String,
    pub coordinator: i32,
    pub assignor: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    /// The sum of the known lags; `None` when none is known.
    pub total_lag: Option<i64>,
    pub members: Vec<GroupMemberView>,
    pub partitions: Vec<GroupPartitionView>,
    /// The group's retry and dead-letter topics (`docs/RETRY.md`), found by their
    /// `strata.retry.group` label: by source topic, retry levels in order, then the DLT.
    #[serde(default)]
    pub retry_topics: Vec<GroupRetryTopicView>,
}

/// One retry or dead-letter topic of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRetryTopicView {
    pub topic: String,
    /// `retry` or `dlt`.
    pub kind: String,
    /// The retry level; `None` for a dead-letter topic.
    pub level: Option<u32>,
    /// The topic whose failed records it holds.
    pub source: String,
    pub partitions: usize,
    /// Records held: high watermark minus log start offset, summed over its partitions
    /// (those whose offsets are not known count 0).
    pub records: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMemberView {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    pub member_epoch: i32,
    pub subscribed_topics: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    /// What it owns now.
    pub assignment: Vec<TopicPartitionView>,
    /// What the coordinator wants it to own once reconciled.
    pub target_assignment: Vec<TopicPartitionView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPartitionView {
    pub topic: String,
    pub partition: i32,
}

/// One partition the group committed to or owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPartitionView {
    pub topic: String,
    pub partition: i32,
    /// The committed offset (the next one the group reads); `None` if nothing is.
    pub current_offset: Option<i64>,
    pub log_start_offset: Option<i64>,
    /// The partition's high watermark.
    pub log_end_offset: Option<i64>,
    pub lag: Option<i64>,
    pub member_id: Option<String>,
    pub client_id: Option<String>,
    pub host: Option<String>,
}

impl GroupView {
    /// The sum of the known lags, `None` when no lag is known.
    pub fn total_lag_of(partitions: &[GroupPartitionView]) -> Option<i64> {
        partitions
            .iter()
            .filter_map(|partition| partition.lag)
            .fold(None, |total, lag| Some(total.unwrap_or(0) + lag))
    }
}
