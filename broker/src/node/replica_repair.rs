//! Damaged replicas: repaired from the partition's leader when that cannot lose a
//! committed record, kept offline otherwise.
//!
//! A partition log found damaged when the broker starts (a bad batch in a sealed segment or
//! before the recovery point, segments that do not meet, a log shorter than its checkpoint
//! promised) is opened *offline* (`log/partition_log/offline.rs`): it is never served, and
//! never handed to the replica fetchers. On every metadata image, each offline log of a
//! partition this broker is a replica of is decided here:
//!
//! - **Repair** when another live broker leads the partition, and this broker is
//!   registered at its current incarnation and is not in the partition's ISR. The leader
//!   is an ISR member, so it holds every committed record; this broker, out of the ISR,
//!   cannot be elected while it holds less. The log is cut to its last good batch
//!   ([`LogManager::repair`]: the cut part is moved to `<topic>-<partition>.damaged.<ms>`,
//!   never deleted), on a blocking thread, and the image is applied again: the repaired
//!   log is then followed like any other (reconcile by epoch, KIP-101; fetch), and the
//!   leader adds it back to the ISR once it has caught up.
//! - **Wait** otherwise, offline. Not registered yet: the registration (which takes this
//!   broker out of every ISR with another live member, `controller/election.rs`) comes
//!   with a later image. Still in the ISR, leading it, or no leader: this broker may be
//!   the only one holding some committed records, so cutting would lose them. The
//!   partition stays offline, with one warning saying what an operator can do
//!   (docs/OPERATIONS.md, "A damaged partition").
//!
//! One repair per partition runs at a time; a failed one is logged and tried again with
//! the next image. `Node::start_repair` (`broker/cluster.rs`) runs them.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use strata_proto::types::BrokerId;

use crate::controller::{MetadataImage, PartitionImage};
use crate::log::{LogManager, TopicPartition};

/// Where the decision about one offline replica stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RepairState {
    /// A repair runs on a blocking thread.
    Running,
    /// Kept offline for `reason`, already warned about.
    Waiting { reason: String },
}

/// The offline replicas of this broker and what is being done about them.
#[derive(Debug, Default)]
pub(super) struct ReplicaRepairs {
    states: Mutex<HashMap<TopicPartition, RepairState>>,
}

/// What to do with one offline replica now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Decision {
    Repair,
    Wait { reason: String },
}

/// The decision for the offline replica of `partition` on broker `me`, registered (as far
/// as this process knows) at `incarnation` (0: not yet). See the module docs.
pub(super) fn decide(
    image: &MetadataImage,
    partition: &PartitionImage,
    me: BrokerId,
    incarnation: u64,
) -> Decision {
    let wait = |reason: &str| Decision::Wait {
        reason: reason.to_owned(),
    };
    let registered = incarnation != 0
        && image
            .broker(me)
            .is_some_and(|info| info.incarnation == incarnation);
    match partition.leader {
        None => wait(
            "the partition has no leader, and this broker may hold committed records no \
             other replica has",
        ),
        Some(leader) if leader == me => wait(
            "this broker leads the partition: no other in-sync replica is live to repair it \
             from, and cutting it could lose committed records",
        ),
        Some(leader) if !super::followers::is_live(image, leader) => {
            wait("the partition's leader is not live")
        }
        Some(_) if !registered => wait("this broker is not registered at its new incarnation yet"),
        Some(_) if partition.isr.contains(&me) => wait(
            "this broker is still in the partition's ISR, so it could be elected while its \
             log holds less than was committed",
        ),
        Some(_) => Decision::Repair,
    }
}

impl ReplicaRepairs {
    fn states(&self) -> MutexGuard<'_, HashMap<TopicPartition, RepairState>> {
        self.states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes that `partition` waits, offline, for `reason`; warns once per reason.
    pub(super) fn wait(&self, partition: &TopicPartition, dir: &std::path::Path, reason: String) {
        let mut states = self.states();
        match states.get(partition) {
            Some(RepairState::Running) => return,
            Some(RepairState::Waiting { reason: known }) if *known == reason => return,
            _ => {}
        }
        tracing::warn!(%partition, dir = %dir.display(), %reason,
            "a damaged replica stays offline and is not repaired: nothing is served from it. \
             It is repaired from the leader once another in-sync replica leads and this \
             broker is out of the ISR; see docs/OPERATIONS.md, \"A damaged partition\", for \
             what an operator can do");
        states.insert(partition.clone(), RepairState::Waiting { reason });
    }

    /// Marks a repair of `partition` as running; `false` if one already runs.
    pub(super) fn begin(&self, partition: &TopicPartition) -> bool {
        let mut states = self.states();
        if states.get(partition) == Some(&RepairState::Running) {
            return false;
        }
        states.insert(partition.clone(), RepairState::Running);
        true
    }

    pub(super) fn end(&self, partition: &TopicPartition) {
        self.states().remove(partition);
    }
}

/// Repairs one offline log and says what it did. Returns whether it is online again.
pub(super) fn repair_one(logs: &LogManager, partition: &TopicPartition) -> bool {
    match logs.repair(partition) {
        Ok(Some(repaired)) => {
            let report = &repaired.report;
            let aside = repaired
                .aside
                .as_ref()
                .map_or_else(String::new, |path| path.display().to_string());
            match &report.damage {
                Some(damage) => tracing::warn!(
                    %partition,
                    path = %damage.path.display(),
                    position = damage.position,
                    reason = %damage.reason,
                    offset = report.log_end_offset.0,
                    bytes_cut = report.bytes_cut,
                    set_aside = %aside,
                    "repaired a damaged replica: its log is cut at its last good batch, \
                     before the damage, and is fetched again from the leader"
                ),
                None => tracing::warn!(
                    %partition,
                    offset = report.log_end_offset.0,
                    "repaired a replica whose log ended below its checkpoint: fetching the \
                     rest again from the leader"
                ),
            }
            true
        }
        Ok(None) => false,
        Err(error) => {
            tracing::error!(%partition, %error,
                "repairing a damaged replica failed; it stays offline and is tried again \
                 with the next metadata change or restart");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::controller::image::BrokerInfo;

    fn image_with(brokers: &[(i32, u64, bool)]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for (id, incarnation, fenced) in brokers {
            image.brokers.insert(
                BrokerId(*id),
                BrokerInfo {
                    id: BrokerId(*id),
                    address: format!("127.0.0.1:{}", 9000 + id),
                    rack: None,
                    incarnation: *incarnation,
                    fenced: *fenced,
                    external_address: None,
                },
            );
        }
        image
    }

    fn partition(leader: Option<i32>, isr: &[i32]) -> PartitionImage {
        PartitionImage {
            replicas: vec![BrokerId(1), BrokerId(2), BrokerId(3)],
            leader: leader.map(BrokerId),
            leader_epoch: 4,
            isr: isr.iter().copied().map(BrokerId).collect(),
            partition_epoch: 7,
        }
    }

    /// Only a registered broker out of the ISR, with another live leader, repairs.
    #[test]
    fn a_replica_is_repaired_only_from_a_live_leader_while_out_of_the_isr() {
        let me = BrokerId(3);
        let live = image_with(&[(1, 1, false), (2, 1, false), (3, 2, false)]);
        let leader_fenced = image_with(&[(1, 1, true), (2, 1, false), (3, 2, false)]);
        let cases = [
            (
                &live,
                partition(Some(1), &[1, 2]),
                2,
                true,
                "out of the ISR",
            ),
            (
                &live,
                partition(Some(1), &[1, 2, 3]),
                2,
                false,
                "still in the ISR",
            ),
            (&live, partition(Some(3), &[3]), 2, false, "leads it"),
            (&live, partition(None, &[3]), 2, false, "no leader"),
            (
                &live,
                partition(Some(1), &[1, 2]),
                0,
                false,
                "not registered",
            ),
            (
                &live,
                partition(Some(1), &[1, 2]),
                1,
                false,
                "an older incarnation",
            ),
            (
                &leader_fenced,
                partition(Some(1), &[1]),
                2,
                false,
                "the leader is fenced",
            ),
        ];
        for (image, partition, incarnation, repairs, what) in cases {
            let decision = decide(image, &partition, me, incarnation);
            assert_eq!(
                decision == Decision::Repair,
                repairs,
                "{what}: {decision:?}"
            );
        }
    }
}
