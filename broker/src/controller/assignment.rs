//! Replica assignment: which brokers hold the replicas of new partitions.
//!
//! Brokers are taken in id order and walked round-robin from `start_index` (the controller
//! rotates it from topic to topic, so the first partitions of many small topics do not all
//! land on the same broker). Partition `p` (its number in the topic) gets `rf` consecutive
//! brokers of the walk starting at position `start + p·rf + ⌊p / (n / g)⌋` with `n`
//! brokers and `g = gcd(rf, n)`; the first one is its preferred leader.
//!
//! Why that formula: consecutive partitions tile the broker ring with runs of `rf`, so the
//! replicas of any run of partitions from 0 are spread within one per broker; every
//! `n / g` partitions the tiling has gone exactly `rf / g` times around the ring and the
//! shift by one moves the leaders onto the next residue class mod `g`, so leaders are also
//! within one per broker (with the plain tiling, `rf = n = 2` would put every leader on
//! the same broker).
//!
//! Invariants (property-tested below): each partition gets exactly `rf` distinct brokers;
//! over partitions `0..k`, replica counts and leader counts per broker differ by at most
//! one; assigning `0..a` and then `a..b` gives the same as assigning `0..b` in one go, so
//! added partitions keep the topic balanced when the broker set has not changed.
//!
//! Racks are accepted but not used yet: rack-aware placement will alternate racks within
//! the same signature.

use strata_proto::types::BrokerId;

use super::error::ControllerError;

/// A broker replicas may be placed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementBroker {
    pub id: BrokerId,
    pub rack: Option<String>,
}

/// Which partitions to place, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssignmentRequest {
    /// The number of the first new partition (the topic's current partition count).
    pub first_partition: i32,
    pub partition_count: i32,
    pub replication_factor: i32,
    /// Rotates the starting broker; taken modulo the number of brokers.
    pub start_index: usize,
}

/// The replicas of each new partition, in order, preferred leader first.
pub fn assign_replicas(
    brokers: &[PlacementBroker],
    request: &AssignmentRequest,
) -> Result<Vec<Vec<BrokerId>>, ControllerError> {
    let mut ids: Vec<BrokerId> = brokers.iter().map(|broker| broker.id).collect();
    ids.sort();
    ids.dedup();
    let broker_count = ids.len();
    let replication_factor = usize::try_from(request.replication_factor)
        .ok()
        .filter(|rf| (1..=broker_count).contains(rf))
        .ok_or_else(|| ControllerError::InvalidReplicationFactor {
            reason: format!(
                "replication factor {} must be between 1 and the {broker_count} registered brokers",
                request.replication_factor
            ),
        })?;
    let (first, count) = match (
        u64::try_from(request.first_partition),
        u64::try_from(request.partition_count),
    ) {
        (Ok(first), Ok(count)) => (first, count),
        _ => {
            return Err(ControllerError::InvalidPartitions {
                reason: format!(
                    "cannot place {} partitions from partition {}",
                    request.partition_count, request.first_partition
                ),
            })
        }
    };
    let n = broker_count as u64;
    let rf = replication_factor as u64;
    let partitions_per_shift = n / gcd(rf, n);
    let start = request.start_index as u64 % n;
    let assignment = (first..first + count)
        .map(|partition| {
            let leader_position = start + partition * rf + partition / partitions_per_shift;
            (0..rf)
                .map(|replica| {
                    let position = (leader_position + replica) % n;
                    ids.get(position as usize).copied().unwrap_or(BrokerId(-1))
                })
                .collect()
        })
        .collect();
    Ok(assignment)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    fn brokers(ids: &[i32]) -> Vec<PlacementBroker> {
        ids.iter()
            .map(|&id| PlacementBroker {
                id: BrokerId(id),
                rack: None,
            })
            .collect()
    }

    fn request(first: i32, count: i32, rf: i32, start: usize) -> AssignmentRequest {
        AssignmentRequest {
            first_partition: first,
            partition_count: count,
            replication_factor: rf,
            start_index: start,
        }
    }

    fn spread(counts: &BTreeMap<BrokerId, usize>, ids: &[BrokerId]) -> usize {
        let all: Vec<usize> = ids
            .iter()
            .map(|id| counts.get(id).copied().unwrap_or(0))
            .collect();
        all.iter().max().unwrap() - all.iter().min().unwrap()
    }

    #[test]
    fn two_brokers_rf_two_alternate_leaders() {
        let assignment = assign_replicas(&brokers(&[1, 2]), &request(0, 4, 2, 0)).unwrap();
        let leaders: Vec<i32> = assignment.iter().map(|replicas| replicas[0].0).collect();
        assert_eq!(leaders, [1, 2, 1, 2]);
    }

    #[test]
    fn one_broker_gets_everything() {
        let assignment = assign_replicas(&brokers(&[7]), &request(0, 3, 1, 5)).unwrap();
        assert_eq!(assignment, vec![vec![BrokerId(7)]; 3]);
    }

    #[test]
    fn bad_requests_are_refused() {
        let three = brokers(&[1, 2, 3]);
        for rf in [0, -1, 4] {
            assert!(matches!(
                assign_replicas(&three, &request(0, 1, rf, 0)),
                Err(ControllerError::InvalidReplicationFactor { .. })
            ));
        }
        assert!(matches!(
            assign_replicas(&[], &request(0, 1, 1, 0)),
            Err(ControllerError::InvalidReplicationFactor { .. })
        ));
        assert!(matches!(
            assign_replicas(&three, &request(-1, 1, 1, 0)),
            Err(ControllerError::InvalidPartitions { .. })
        ));
    }

    proptest! {
        #[test]
        fn assignment_is_distinct_sized_and_balanced(
            broker_count in 1usize..12,
            partitions in 1i32..120,
            rf_seed in 0usize..12,
            start in 0usize..1000,
            split_seed in 0i32..120,
        ) {
            let ids: Vec<i32> = (0..broker_count as i32).map(|i| i * 3 + 1).collect();
            let rf = (rf_seed % broker_count) as i32 + 1;
            let placed = brokers(&ids);
            let assignment = assign_replicas(&placed, &request(0, partitions, rf, start)).unwrap();
            prop_assert_eq!(assignment.len(), partitions as usize);
            let mut replica_counts = BTreeMap::new();
            let mut leader_counts = BTreeMap::new();
            for replicas in &assignment {
                prop_assert_eq!(replicas.len(), rf as usize);
                let distinct: BTreeSet<_> = replicas.iter().collect();
                prop_assert_eq!(distinct.len(), replicas.len());
                *leader_counts.entry(replicas[0]).or_insert(0) += 1;
                for id in replicas {
                    *replica_counts.entry(*id).or_insert(0) += 1;
                }
            }
            let all: Vec<BrokerId> = ids.iter().map(|&id| BrokerId(id)).collect();
            prop_assert!(spread(&replica_counts, &all) <= 1, "{:?}", replica_counts);
            prop_assert!(spread(&leader_counts, &all) <= 1, "{:?}", leader_counts);

            let split = split_seed % partitions;
            let mut in_two_steps =
                assign_replicas(&placed, &request(0, split, rf, start)).unwrap();
            in_two_steps.extend(
                assign_replicas(&placed, &request(split, partitions - split, rf, start)).unwrap(),
            );
            prop_assert_eq!(in_two_steps, assignment);
        }
    }
}
