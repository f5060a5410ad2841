//! The leader side of replication in domain terms: who may fetch as a replica, and what a
//! replica fetch or an `OffsetForLeaderEpoch` of one partition answers. `service/
//! replication_api.rs` converts the `strata.v1.Replication` messages to these calls.
//!
//! A replica fetch differs from a consumer's in three ways: it reads up to the log end
//! offset, not the high watermark (followers copy records before they count, which is how
//! the high watermark can advance); it is refused to anyone but a registered replica of
//! the partition at its current incarnation; and it checks the follower's last fetched
//! epoch against this log (KIP-320) before reading, answering a diverging epoch instead of
//! records when the follower's log is not a prefix of this one.
//!
//! Each fetch offset is recorded on the partition ([`PartitionHandle::follower_fetch_offsets`])
//! as that follower's log end offset and fed to its `LeaderPartition`
//! ([`PartitionHandle::on_follower_fetch`]), which moves the high watermark and the ISR.

use bytes::Bytes;
use strata_proto::types::{BrokerId, LeaderEpoch, Offset};

use super::broker::Node;
use super::error::NodeError;
use super::partition::PartitionHandle;
use crate::controller::ControllerError;
use crate::replication::{check_leader_epoch, EpochMismatch};

/// One partition of a replica fetch.
#[derive(Debug, Clone)]
pub struct ReplicaFetchSpec {
    pub topic: String,
    pub partition: i32,
    /// The topic id the follower knows (32 hex digits); `None`: not checked.
    pub topic_id: Option<String>,
    /// The follower's log end offset.
    pub fetch_offset: Offset,
    /// The epoch of the follower's last batch; `None` for an empty log.
    pub last_fetched_epoch: Option<LeaderEpoch>,
    /// The leader epoch the follower knows; `None`: not checked.
    pub current_leader_epoch: Option<LeaderEpoch>,
    pub max_bytes: usize,
}

/// What a replica fetch of one partition answers.
#[derive(Debug, Clone)]
pub struct ReplicaFetched {
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
    pub leader_epoch: LeaderEpoch,
    /// KIP-320: the follower's last fetched epoch ends below its fetch offset here (or this
    /// log does not hold it): `(largest epoch ≤ it held here, where it ends)`, and no
    /// records. `(-1, -1)` when this log holds no epoch at or below it.
    pub diverging_epoch: Option<(LeaderEpoch, Offset)>,
    pub records: Bytes,
}

/// How much of a replica fetch [`Node::replica_fetch_partition`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaRead {
    /// The partition's offsets and checks only: for a partition whose last answer carried
    /// records the follower has not reported appending yet.
    StatusOnly,
    /// Read records from the fetch offset (segment files: call it from a blocking thread
    /// unless the fetch offset is the log end) and record the fetch offset as the
    /// follower's log end offset.
    Records,
}

impl Node {
    /// `Ok` when `replica` is registered at `incarnation` (an older process of the same
    /// broker id must not count as a follower); `StaleBrokerEpoch` otherwise.
    pub fn check_replica(&self, replica: BrokerId, incarnation: u64) -> Result<(), NodeError> {
        let image = self.image();
        let current = image.broker(replica).map_or(0, |info| info.incarnation);
        if current == incarnation && current != 0 {
            return Ok(());
        }
        Err(ControllerError::StaleBrokerEpoch {
            broker_id: replica.0,
            incarnation,
            current,
        }
        .into())
    }

    /// The partition led here, if `replica` is one of its replicas in the metadata;
    /// `NotLeader` (as the protocol says) for a follower that is not.
    fn replicated_partition(
        &self,
        replica: BrokerId,
        topic: &str,
        partition: i32,
        topic_id: Option<&str>,
    ) -> Result<std::sync::Arc<PartitionHandle>, NodeError> {
        let handle = self.partition(topic, partition)?;
        let image = self.image();
        let topic_image = image.topic(topic);
        let is_replica = topic_image
            .and_then(|state| state.partitions.get(&partition))
            .is_some_and(|state| state.replicas.contains(&replica));
        if !is_replica {
            return Err(NodeError::NotLeader {
                topic: topic.to_owned(),
                partition,
                leader: None,
            });
        }
        let id_matches = match (topic_id, topic_image) {
            (Some(asked), Some(state)) => asked.eq_ignore_ascii_case(&state.id),
            _ => true,
        };
        if !id_matches {
            return Err(NodeError::UnknownTopicOrPartition {
                topic: topic.to_owned(),
                partition,
            });
        }
        Ok(handle)
    }

    /// Kafka's `OffsetForLeaderEpoch` for one partition led here: the largest epoch ≤
    /// `epoch` in this log and where it ends; `None` when this log holds no epoch at or
    /// below it (or none at all).
    pub fn offset_for_leader_epoch(
        &self,
        topic: &str,
        partition: i32,
        current_leader_epoch: Option<LeaderEpoch>,
        epoch: LeaderEpoch,
    ) -> Result<Option<(LeaderEpoch, Offset)>, NodeError> {
        let handle = self.partition(topic, partition)?;
        handle.log.check_online()?;
        let current = handle.leader_epoch();
        if let Some(requested) = current_leader_epoch {
            fence(requested, current)?;
        }
        Ok(leader_end_offset_for(&handle, current, epoch))
    }

    /// A replica fetch of one partition by `replica`, reading at most `max_bytes` (the
    /// first batch whole) under [`ReplicaRead::Records`].
    pub fn replica_fetch_partition(
        &self,
        replica: BrokerId,
        spec: &ReplicaFetchSpec,
        read: ReplicaRead,
    ) -> Result<ReplicaFetched, NodeError> {
        let handle = self.replicated_partition(
            replica,
            &spec.topic,
            spec.partition,
            spec.topic_id.as_deref(),
        )?;
        handle.log.check_online()?;
        let leader_epoch = handle.leader_epoch();
        if let Some(requested) = spec.current_leader_epoch {
            fence(requested, leader_epoch)?;
        }
        let mut fetched = ReplicaFetched {
            high_watermark: handle.log.high_watermark(),
            log_start_offset: handle.log.log_start_offset(),
            log_end_offset: handle.log.log_end_offset(),
            leader_epoch,
            diverging_epoch: None,
            records: Bytes::new(),
        };
        if let Some(last_epoch) = spec.last_fetched_epoch {
            let end = leader_end_offset_for(&handle, leader_epoch, last_epoch);
            let diverged = match end {
                Some((epoch, end_offset)) => epoch < last_epoch || end_offset < spec.fetch_offset,
                None => true,
            };
            if diverged {
                fetched.diverging_epoch = Some(end.unwrap_or((LeaderEpoch(-1), Offset(-1))));
                return Ok(fetched);
            }
        }
        if spec.fetch_offset < fetched.log_start_offset
            || spec.fetch_offset > fetched.log_end_offset
        {
            return Err(crate::log::LogError::OffsetOutOfRange {
                offset: spec.fetch_offset,
                log_start_offset: fetched.log_start_offset,
                log_end_offset: fetched.log_end_offset,
            }
            .into());
        }
        if read == ReplicaRead::StatusOnly {
            return Ok(fetched);
        }
        handle.record_follower_fetch(replica, spec.fetch_offset);
        if handle.on_follower_fetch(replica, spec.fetch_offset, leader_epoch) {
            // The high watermark moved: consumers and `acks=all` produces may go on.
            self.appended().notify_waiters();
        }
        if spec.fetch_offset < fetched.log_end_offset {
            let read = handle
                .log
                .read(spec.fetch_offset, spec.max_bytes.max(1), None)?;
            fetched.records = read.batches;
        }
        Ok(fetched)
    }
}

/// Where `epoch` ends in the log of a partition led here at `current`. The log's epoch
/// cache knows only epochs that have batches, but the current epoch begins at the log end
/// the moment this broker leads (Kafka assigns it in the cache then): an epoch above the
/// latest cached one and below `current` ends at the log end, and so does `current`
/// itself. Without this a follower holding an epoch this leader never wrote in (it led
/// then) would be told "undefined" and drop its whole log.
fn leader_end_offset_for(
    handle: &PartitionHandle,
    current: LeaderEpoch,
    epoch: LeaderEpoch,
) -> Option<(LeaderEpoch, Offset)> {
    if epoch > current {
        return None;
    }
    let log_end_offset = handle.log.log_end_offset();
    match handle.log.leader_epochs().last() {
        None => Some((epoch, log_end_offset)),
        Some((latest, _)) if epoch > *latest => Some((*latest, log_end_offset)),
        Some(_) => handle.log.end_offset_for_epoch(epoch),
    }
}

fn fence(requested: LeaderEpoch, current: LeaderEpoch) -> Result<(), NodeError> {
    match check_leader_epoch(requested, current) {
        Ok(()) => Ok(()),
        Err(EpochMismatch::Fenced { .. }) => {
            Err(NodeError::FencedLeaderEpoch { requested, current })
        }
        Err(EpochMismatch::Unknown { .. }) => {
            Err(NodeError::UnknownLeaderEpoch { requested, current })
        }
    }
}
