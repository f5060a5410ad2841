//! The partitions this broker follows: a replica, not the leader, with a leader that is
//! registered and not fenced. Their logs are opened here for the replica fetcher
//! (`replication/fetcher.rs`) and never served to clients: produce and fetch to them
//! keep answering `NOT_LEADER` with the leader's id, since only the partitions this
//! broker leads are in the node's partition map.

use std::sync::Arc;

use strata_proto::types::{BrokerId, LeaderEpoch, PartitionId, TopicName};

use super::error::NodeError;
use crate::controller::MetadataImage;
use crate::log::{LogConfig, LogManager, ReplicaRole, TopicPartition};
use crate::replication::fetcher::{FollowedPartition, FollowerAssignment};

/// A partition of the image this broker follows, before its log is opened.
#[derive(Debug, Clone)]
pub(super) struct FollowedSpec {
    pub name: TopicName,
    pub partition: i32,
    pub topic_id: String,
    pub leader: BrokerId,
    pub leader_epoch: LeaderEpoch,
    pub log_config: LogConfig,
}

/// Whether `leader` can be fetched from: registered and not fenced.
pub(super) fn is_live(image: &MetadataImage, leader: BrokerId) -> bool {
    image.broker(leader).is_some_and(|info| !info.fenced)
}

/// Opens (or creates) the log of every followed partition and groups them by leader.
pub(super) fn open_followed(
    logs: &LogManager,
    image: &MetadataImage,
    followed: Vec<FollowedSpec>,
) -> Result<FollowerAssignment, NodeError> {
    let mut assignment = FollowerAssignment::default();
    for spec in followed {
        let Some(leader) = image.broker(spec.leader) else {
            continue;
        };
        let topic_partition = TopicPartition::new(spec.name.clone(), PartitionId(spec.partition));
        // A log that cannot be opened is not followed (and says why); only a fatal error
        // stops the metadata from being applied, so the partitions led here still open.
        let log = match logs.get_or_create(&topic_partition, Some(spec.log_config.clone())) {
            Ok(log) => log,
            Err(error) if !error.is_fatal() => {
                tracing::error!(partition = %topic_partition, %error,
                    "cannot open the log of a followed partition; not fetching it");
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        if log.config() != spec.log_config {
            log.set_config(spec.log_config);
        }
        // A produce still in flight from when this broker led it cannot append now.
        log.set_role(ReplicaRole::Following);
        let by_leader = assignment.leaders.entry(spec.leader).or_default();
        by_leader.address = leader.address.clone();
        by_leader.partitions.insert(
            (spec.name.as_str().to_owned(), spec.partition),
            FollowedPartition {
                topic: spec.name,
                partition: PartitionId(spec.partition),
                topic_id: topic_id_bytes(&spec.topic_id),
                leader_epoch: spec.leader_epoch,
                log: Arc::clone(&log),
            },
        );
    }
    Ok(assignment)
}

/// 32 hex digits → 16 bytes (empty when malformed: the leader then does not check it).
fn topic_id_bytes(id: &str) -> Vec<u8> {
    let bytes: Option<Vec<u8>> = (0..id.len() / 2)
        .map(|i| {
            id.get(2 * i..2 * i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect();
    bytes.unwrap_or_default()
}
