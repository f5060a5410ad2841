//! ISR changes a partition leader asks for: Kafka's AlterPartition (KIP-497), decided by
//! [`alter_isr`] on the active controller.
//!
//! A leader shrinks the ISR when a follower falls behind (`replica_lag_max_ms`) and expands
//! it when one catches up (docs/ARCHITECTURE.md, "Replication"); the change takes effect only once the controller
//! has committed it, so the ISR the leader counts for the high watermark and
//! `min_insync_replicas` is never larger than the committed one.
//!
//! Pure, like `election.rs`: a function of the [`MetadataImage`] that returns the records
//! to write (one `ChangePartition`, or none when the ISR is already the asked one) or a
//! typed refusal. The checks, in Kafka's order (`ReplicationControlManager`):
//! 1. the sender runs its registered incarnation (`STALE_BROKER_EPOCH`), as for a
//!    controlled shutdown;
//! 2. the partition exists (`UNKNOWN_TOPIC_OR_PARTITION`);
//! 3. the leader epoch is the partition's (`FENCED_LEADER_EPOCH`) and the sender leads it
//!    (`NOT_LEADER`);
//! 4. the partition epoch is the partition's (`INVALID_UPDATE_VERSION`): the leader decided
//!    on the state the controller still holds, so no concurrent change (a fencing, an
//!    election, a reassignment) is overwritten;
//! 5. the new ISR is well-formed: not empty, no broker twice, only replicas, and the leader
//!    in it (`INVALID_REQUEST`);
//! 6. every broker it adds is registered and unfenced (`INELIGIBLE_REPLICA`, KIP-841: a
//!    fenced broker could otherwise be counted in sync, and even elected, while it is
//!    gone). Members that stay are not checked again: removing them is the leader's call.
//!
//! The change keeps the leader and its leader epoch and raises the partition epoch by one.
//! The ISR is compared as a set: the same members in another order change nothing.

use std::collections::BTreeSet;

use strata_proto::types::BrokerId;

use super::error::ControllerError;
use super::image::MetadataImage;
use super::metadata_record::MetadataRecord;

/// What a partition leader asks for (the fields of `ControllerRequest::AlterPartition`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartition<'a> {
    pub topic: &'a str,
    pub partition: i32,
    /// The asking broker and the incarnation its process registered with.
    pub broker: BrokerId,
    pub incarnation: u64,
    /// The leader epoch and partition epoch the leader decided on.
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// The ISR it asks for, the leader included.
    pub new_isr: &'a [BrokerId],
}

/// The records of an ISR change, or why it is refused. See the module docs.
pub fn alter_isr(
    image: &MetadataImage,
    request: &AlterPartition<'_>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let AlterPartition {
        topic: name,
        partition: number,
        broker,
        incarnation,
        leader_epoch,
        partition_epoch,
        new_isr,
    } = *request;
    if let Some(info) = image.broker(broker) {
        if info.incarnation != incarnation {
            return Err(ControllerError::StaleBrokerEpoch {
                broker_id: broker.0,
                incarnation,
                current: info.incarnation,
            });
        }
    }
    let topic = image
        .topic(name)
        .ok_or_else(|| ControllerError::UnknownTopic { name: name.into() })?;
    let partition = topic
        .partitions
        .get(&number)
        .ok_or_else(|| ControllerError::UnknownTopic {
            name: format!("{name}-{number}"),
        })?;
    if leader_epoch != partition.leader_epoch {
        return Err(ControllerError::FencedLeaderEpoch {
            topic: name.into(),
            partition: number,
            leader_epoch,
            current: partition.leader_epoch,
        });
    }
    if partition.leader != Some(broker) {
        return Err(ControllerError::NotLeaderOrFollower {
            topic: name.into(),
            partition: number,
            broker_id: broker.0,
            leader: partition.leader.map(|id| id.0),
        });
    }
    if partition_epoch != partition.partition_epoch {
        return Err(ControllerError::InvalidUpdateVersion {
            topic: name.into(),
            partition: number,
            partition_epoch,
            current: partition.partition_epoch,
        });
    }
    let invalid = |reason: String| ControllerError::InvalidIsr {
        topic: name.into(),
        partition: number,
        reason,
    };
    let members: BTreeSet<BrokerId> = new_isr.iter().copied().collect();
    if members.len() != new_isr.len() {
        return Err(invalid(format!("{} names a broker twice", ids(new_isr))));
    }
    if let Some(outsider) = new_isr.iter().find(|id| !partition.replicas.contains(id)) {
        return Err(invalid(format!(
            "broker {outsider} in {} is not one of the replicas {}",
            ids(new_isr),
            ids(&partition.replicas)
        )));
    }
    if !members.contains(&broker) {
        return Err(invalid(format!(
            "{} leaves out the leader, broker {broker}",
            ids(new_isr)
        )));
    }
    for joining in new_isr.iter().filter(|id| !partition.isr.contains(id)) {
        let reason = match image.broker(*joining) {
            None => "it is not registered",
            Some(info) if info.fenced => "it is fenced",
            Some(_) => continue,
        };
        return Err(ControllerError::IneligibleReplica {
            topic: name.into(),
            partition: number,
            broker_id: joining.0,
            reason: reason.into(),
        });
    }
    let current: BTreeSet<BrokerId> = partition.isr.iter().copied().collect();
    if members == current {
        return Ok(Vec::new());
    }
    Ok(vec![MetadataRecord::ChangePartition {
        topic_id: topic.id.clone(),
        partition: number,
        leader: Some(broker.0),
        leader_epoch,
        isr: new_isr.iter().map(|id| id.0).collect(),
        partition_epoch: partition.partition_epoch.saturating_add(1),
        replicas: None,
    }])
}

/// `[1, 2, 3]`: broker ids as an operator writes them.
fn ids(list: &[BrokerId]) -> String {
    let list: Vec<String> = list.iter().map(|id| id.0.to_string()).collect();
    format!("[{}]", list.join(", "))
}

#[cfg(test)]
#[path = "isr_tests.rs"]
mod tests;
