//! Topics as `strata topic list|describe --format json` and `GET /v1/topics…` show them.

use serde::{Deserialize, Serialize};

/// One row of `topic list` (`GET /v1/topics`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicListingView {
    pub name: String,
    pub partitions: usize,
    /// The replication factor.
    pub replicas: usize,
}

/// `topic describe` (`GET /v1/topics/{topic}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicView {
    pub name: String,
    pub topic_id: String,
    pub partition_count: usize,
    pub replication_factor: usize,
    pub configs: Vec<ConfigView>,
    pub partitions: Vec<PartitionView>,
}

/// One effective topic config and where its value comes from (`default`, `broker`,
/// `topic`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigView {
    pub key: String,
    pub value: String,
    pub source: String,
}

/// One partition (`GET /v1/topics/{topic}/partitions`). Offsets are `None` when the
/// leader could not be asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionView {
    pub partition: i32,
    pub leader: Option<i32>,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub log_start_offset: Option<i64>,
    pub high_watermark: Option<i64>,
}

impl TopicView {
    /// The largest replica set of any partition (a topic's replication factor; during a
    /// reassignment a partition may briefly have more).
    pub fn replication_factor_of(partitions: &[PartitionView]) -> usize {
        partitions
            .iter()
            .map(|partition| partition.replicas.len())
            .max()
            .unwrap_or(0)
    }
}
