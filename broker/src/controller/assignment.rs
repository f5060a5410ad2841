//! Replica assignment: which brokers hold the replicas of new partitions.
//!
//! Only live brokers (registered, not fenced) are offered by the caller. They are put in
//! walk order ([`walk_order`]) and walked round-robin from `start_index`, which
//! [`balanced_start`] picks for a new topic: the least-loaded broker (by replicas already
//! held), ties broken by a rotation the controller advances from topic to topic, so the
//! first partitions of many small topics do not all land on the same broker. Partition `p` (its number in the topic) gets `rf` consecutive
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
//! Racks: when any broker has one, the walk order is Kafka's rack-alternated list (racks
//! in name order, each contributing its next broker in id order, round after round;
//! brokers without a rack form one more group), so consecutive replicas of a partition
//! are on different racks whenever the racks allow it (always, with equally sized racks
//! and `rf` ≤ the number of racks). The formula is unchanged, so the balance invariants
//! hold too. Without racks the walk order is id order.

use std::collections::{BTreeMap, BTreeSet};

use strata_proto::types::BrokerId;

use super::error::ControllerError;
use super::topic_validation::validate_replication_factor;

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

/// The replicas of each new partition, in order, preferred leader first. `brokers` are
/// the live brokers; `start_index` is a position in their [`walk_order`].
pub fn assign_replicas(
    brokers: &[PlacementBroker],
    request: &AssignmentRequest,
) -> Result<Vec<Vec<BrokerId>>, ControllerError> {
    let ids = walk_order(brokers);
    let broker_count = ids.len();
    validate_replication_factor(request.replication_factor, broker_count)?;
    let replication_factor = usize::try_from(request.replication_factor).unwrap_or(1);
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

/// The order replicas are placed in: each broker once; id order, or Kafka's
/// rack-alternated order when any broker has a rack (see the module docs).
pub fn walk_order(brokers: &[PlacementBroker]) -> Vec<BrokerId> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<BrokerId>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for broker in brokers {
        if seen.insert(broker.id) {
            by_rack
                .entry(broker.rack.as_deref())
                .or_default()
                .push(broker.id);
        }
    }
    for ids in by_rack.values_mut() {
        ids.sort();
    }
    let rounds = by_rack.values().map(Vec::len).max().unwrap_or(0);
    (0..rounds)
        .flat_map(|round| {
            by_rack
                .values()
                .filter_map(move |ids| ids.get(round).copied())
        })
        .collect()
}

/// The `start_index` for a new topic: the position in [`walk_order`] of the broker holding
/// the fewest replicas (`replicas_held`, absent = none); among equals the first at or after
/// `rotation` (modulo the number of brokers), cyclically. With equal loads this is just
/// `rotation`, so a topic on empty brokers is placed exactly as before loads counted.
pub fn balanced_start(
    brokers: &[PlacementBroker],
    replicas_held: &BTreeMap<BrokerId, usize>,
    rotation: usize,
) -> usize {
    let order = walk_order(brokers);
    let count = order.len().max(1);
    let held = |position: usize| {
        order
            .get(position % count)
            .and_then(|id| replicas_held.get(id))
            .copied()
            .unwrap_or(0)
    };
    (0..count)
        .map(|step| (rotation % count + step) % count)
        .min_by_key(|position| held(*position))
        .unwrap_or(0)
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

    #[test]
    fn replication_factor_errors_name_both_numbers() {
        let error = assign_replicas(&brokers(&[1, 2, 3]), &request(0, 1, 4, 0)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid replication factor: replication factor 4 is larger than the 3 live brokers"
        );
        let error = validate_replication_factor(0, 3).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("replication factor 0 is below 1"),
            "{error}"
        );
    }

    fn racked(pairs: &[(i32, &str)]) -> Vec<PlacementBroker> {
        pairs
            .iter()
            .map(|(id, rack)| PlacementBroker {
                id: BrokerId(*id),
                rack: Some(rack.to_string()),
            })
            .collect()
    }

    #[test]
    fn racks_alternate_in_the_walk_order() {
        let placed = racked(&[(1, "a"), (2, "a"), (3, "a"), (4, "b"), (5, "c"), (6, "c")]);
        let order: Vec<i32> = walk_order(&placed).iter().map(|id| id.0).collect();
        assert_eq!(order, [1, 4, 5, 2, 6, 3]);
        let without_racks: Vec<i32> = walk_order(&brokers(&[3, 1, 2, 1]))
            .iter()
            .map(|id| id.0)
            .collect();
        assert_eq!(without_racks, [1, 2, 3]);
    }

    #[test]
    fn a_new_topic_starts_on_the_least_loaded_broker() {
        let three = brokers(&[1, 2, 3]);
        let held = BTreeMap::from([(BrokerId(1), 2), (BrokerId(2), 1), (BrokerId(3), 2)]);
        assert_eq!(balanced_start(&three, &held, 0), 1);
        assert_eq!(balanced_start(&three, &held, 7), 1);
        let equal = BTreeMap::from([(BrokerId(1), 1), (BrokerId(2), 1), (BrokerId(3), 1)]);
        assert_eq!(
            balanced_start(&three, &equal, 5),
            2,
            "the rotation breaks ties"
        );
        assert_eq!(balanced_start(&three, &BTreeMap::new(), 4), 1);
        assert_eq!(balanced_start(&[], &BTreeMap::new(), 4), 0);
    }

    #[test]
    fn six_partitions_on_three_empty_brokers_are_two_each() {
        let three = brokers(&[1, 2, 3]);
        let start = balanced_start(&three, &BTreeMap::new(), 11);
        let assignment = assign_replicas(&three, &request(0, 6, 1, start)).unwrap();
        let mut counts = BTreeMap::new();
        for replicas in &assignment {
            *counts.entry(replicas[0]).or_insert(0) += 1;
        }
        assert_eq!(counts.values().copied().collect::<Vec<_>>(), [2, 2, 2]);
    }

    proptest! {
        #[test]
        fn equal_racks_put_each_partition_on_distinct_racks(
            racks in 1usize..5,
            per_rack in 1usize..4,
            partitions in 1i32..40,
            rf_seed in 0usize..5,
            start in 0usize..100,
        ) {
            let rf = rf_seed % racks + 1;
            let placed: Vec<PlacementBroker> = (0..racks * per_rack)
                .map(|i| PlacementBroker {
                    id: BrokerId(i as i32 * 7 % 23 + i as i32 * 23),
                    rack: Some(format!("rack-{}", i % racks)),
                })
                .collect();
            let rack_of: BTreeMap<BrokerId, Option<String>> = placed
                .iter()
                .map(|broker| (broker.id, broker.rack.clone()))
                .collect();
            let assignment =
                assign_replicas(&placed, &request(0, partitions, rf as i32, start)).unwrap();
            for replicas in assignment {
                let used: BTreeSet<_> = replicas.iter().map(|id| &rack_of[id]).collect();
                prop_assert_eq!(used.len(), replicas.len(), "{:?}", replicas);
            }
        }

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
