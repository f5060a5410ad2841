//! The groups and committed offsets of one `__consumer_offsets` partition, as its
//! coordinator holds them: rebuilt by reading the partition from its log start to its log
//! end ([`PartitionRecords`], applying records in offset order: the newest record of a
//! key wins, a tombstone deletes it), and changed only by records written to the
//! partition first ([`write_records`], `acks=all`).
//!
//! A record that does not decode (damaged, or written by a newer broker) is skipped with
//! an error in the log: one bad record must not make every group of the partition
//! unavailable.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_proto::record::{
    decode_batch, next_offset_after, BatchBuilder, BatchHeader, BatchSettings, DecodeLimits,
    Record, StoredRecord,
};

use super::partition::PartitionHandle;
use super::{Node, NodeError};
use crate::group::records::{self, GroupRecord, OffsetKey, OffsetValue, OFFSETS_TOPIC};
use crate::group::{Group, GroupConfig, GroupSnapshot, TopicsView};

/// One group as its coordinator holds it: its state machine (none for a group that only
/// has committed offsets, such as one whose offsets were set by an administrator) and its
/// committed offsets.
#[derive(Debug)]
pub struct GroupEntry {
    pub group_id: String,
    pub group: Option<Group>,
    pub offsets: BTreeMap<(String, i32), OffsetValue>,
    /// Set when the group was deleted while someone waited for it: whoever then holds
    /// it looks the group up again.
    pub removed: bool,
    /// The topics the group's assignment was last computed against.
    pub topics_seen: Option<Arc<TopicsView>>,
}

impl GroupEntry {
    pub fn new(group_id: &str) -> GroupEntry {
        GroupEntry {
            group_id: group_id.to_owned(),
            group: None,
            offsets: BTreeMap::new(),
            removed: false,
            topics_seen: None,
        }
    }

    /// Whether the group has live members.
    pub fn has_members(&self) -> bool {
        self.group.as_ref().is_some_and(|group| !group.is_empty())
    }

    /// Whether `topics` differ from what the group last saw.
    pub fn topics_changed(&self, topics: &Arc<TopicsView>) -> bool {
        self.topics_seen
            .as_ref()
            .is_none_or(|seen| !Arc::ptr_eq(seen, topics) && seen != topics)
    }
}

/// A group's entry, locked for the whole of a request (its write included), so one
/// group's changes reach the log in the order they reach memory.
pub type SharedEntry = Arc<tokio::sync::Mutex<GroupEntry>>;

/// What the records of a partition say, applied in offset order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PartitionRecords {
    pub snapshots: BTreeMap<String, GroupSnapshot>,
    pub offsets: BTreeMap<String, BTreeMap<(String, i32), OffsetValue>>,
    /// Records skipped because they did not decode.
    pub skipped: usize,
}

impl PartitionRecords {
    /// Applies one decoded record: the newest value of a key wins; a tombstone deletes.
    pub fn apply(&mut self, record: GroupRecord) {
        match record {
            GroupRecord::Offset { key, value } => {
                let OffsetKey {
                    group_id,
                    topic,
                    partition,
                } = key;
                match value {
                    Some(value) => {
                        self.offsets
                            .entry(group_id)
                            .or_default()
                            .insert((topic, partition), value);
                    }
                    None => {
                        if let Some(offsets) = self.offsets.get_mut(&group_id) {
                            offsets.remove(&(topic, partition));
                            if offsets.is_empty() {
                                self.offsets.remove(&group_id);
                            }
                        }
                    }
                }
            }
            GroupRecord::Group { group_id, snapshot } => match snapshot {
                Some(snapshot) => {
                    self.snapshots.insert(group_id, snapshot);
                }
                None => {
                    self.snapshots.remove(&group_id);
                }
            },
        }
    }

    /// Applies a record as stored in the log.
    pub fn apply_stored(&mut self, record: &StoredRecord) {
        match records::decode(record.key.as_deref(), record.value.as_deref()) {
            Ok(decoded) => self.apply(decoded),
            Err(error) => {
                self.skipped += 1;
                tracing::error!(offset = record.offset.0, %error,
                    "skipping a record of __consumer_offsets that does not decode");
            }
        }
    }

    /// The groups, restored: every member gets a fresh session from `now`.
    pub fn into_entries(self, config: &GroupConfig, now: Instant) -> HashMap<String, SharedEntry> {
        let mut entries: HashMap<String, GroupEntry> = HashMap::new();
        for (group_id, snapshot) in self.snapshots {
            let mut entry = GroupEntry::new(&group_id);
            entry.group = Some(Group::restore(snapshot, config, now));
            entries.insert(group_id, entry);
        }
        for (group_id, offsets) in self.offsets {
            entries
                .entry(group_id.clone())
                .or_insert_with(|| GroupEntry::new(&group_id))
                .offsets = offsets;
        }
        entries
            .into_iter()
            .map(|(group_id, entry)| (group_id, Arc::new(tokio::sync::Mutex::new(entry))))
            .collect()
    }
}

/// Reads every batch of `handle`'s log from its start to its end (blocking).
pub fn read_partition(handle: &PartitionHandle) -> Result<PartitionRecords, NodeError> {
    let log = &handle.log;
    let mut records = PartitionRecords::default();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    let limits = DecodeLimits::default();
    while offset < end {
        let read = log.read(offset, 1 << 20, None)?;
        let Some(next) = next_offset_after(&read.batches) else {
            break;
        };
        let mut rest: &[u8] = &read.batches;
        while !rest.is_empty() {
            let header = BatchHeader::parse(rest)?;
            let Some((batch, tail)) = rest.split_at_checked(header.total_bytes()) else {
                break;
            };
            for record in decode_batch(batch, &limits)?.records {
                if record.offset >= offset {
                    records.apply_stored(&record);
                }
            }
            rest = tail;
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    Ok(records)
}

/// One record to write: its key and value (`None`: a tombstone).
#[derive(Debug, Clone)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

impl KeyValue {
    pub fn offset(key: &OffsetKey, value: Option<&OffsetValue>) -> Result<KeyValue, NodeError> {
        Ok(KeyValue {
            key: records::encode_offset_key(key).map_err(invalid)?,
            value: value
                .map(records::encode_offset_value)
                .transpose()
                .map_err(invalid)?,
        })
    }

    pub fn group(group_id: &str, snapshot: Option<&GroupSnapshot>) -> Result<KeyValue, NodeError> {
        Ok(KeyValue {
            key: records::encode_group_key(group_id).map_err(invalid)?,
            value: snapshot
                .map(records::encode_group_value)
                .transpose()
                .map_err(invalid)?,
        })
    }
}

fn invalid(error: records::GroupRecordError) -> NodeError {
    NodeError::InvalidRequest {
        reason: error.to_string(),
    }
}

/// Writes `records` as one batch (not idempotent: producer id -1) to `partition` of
/// `__consumer_offsets`, and waits until it is committed on the ISR (`acks=all`, at most
/// `timeout`). Errors are those of a coordinator: the partition led elsewhere now is
/// `NOT_COORDINATOR`; too few replicas or a timeout is `COORDINATOR_NOT_AVAILABLE`
/// (Kafka's mapping). The batch may be in the log after an error; the caller then leaves
/// memory unchanged, and a later load may find it (as in Kafka).
pub async fn write_records(
    node: &Arc<Node>,
    group_id: &str,
    partition: i32,
    records: &[KeyValue],
    timeout: Duration,
) -> Result<(), NodeError> {
    if records.is_empty() {
        return Ok(());
    }
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX);
    let mut builder = BatchBuilder::new(BatchSettings::default());
    for record in records {
        builder.append(&Record {
            timestamp_ms: now_ms,
            key: Some(Bytes::copy_from_slice(&record.key)),
            value: record.value.as_deref().map(Bytes::copy_from_slice),
            headers: Vec::new(),
        })?;
    }
    let batch = builder.build()?;
    let result = async {
        node.check_acks_all(OFFSETS_TOPIC, partition)?;
        let pending = node
            .append_internal(OFFSETS_TOPIC, partition, batch)
            .await?;
        pending.commit_acks_all(timeout).await
    }
    .await;
    result
        .map(drop)
        .map_err(|error| coordinator_error(group_id, error))
}

/// A failed write of a coordinator, as its callers see it.
fn coordinator_error(group_id: &str, error: NodeError) -> NodeError {
    match error {
        NodeError::NotLeader { .. } | NodeError::UnknownTopicOrPartition { .. } => {
            NodeError::NotCoordinator {
                group_id: group_id.to_owned(),
                reason: error.to_string(),
            }
        }
        NodeError::NotEnoughReplicas { .. }
        | NodeError::NotEnoughReplicasAfterAppend
        | NodeError::RequestTimedOut { .. }
        | NodeError::ShuttingDown => NodeError::CoordinatorNotAvailable {
            reason: format!("writing to __consumer_offsets failed: {error}"),
        },
        other => other,
    }
}

#[cfg(test)]
#[path = "groups_store_tests.rs"]
mod tests;
