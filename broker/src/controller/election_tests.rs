//! Tests of the leadership decisions: each function on hand-built clusters, then a
//! property test that drives random fence / unfence / shutdown / preferred-election
//! sequences through the state machine and checks the election invariants after each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use strata_proto::types::BrokerId;

use super::*;
use crate::controller::state_machine::apply;

const ORDERS: &str = "0123456789abcdef0123456789abcdef";
const UNCLEAN: &str = "fedcba9876543210fedcba9876543210";
const INTERNAL: &str = "00000000000000000000000000000001";

/// Applies `records` as one batch at the next offsets; every record must be accepted.
fn write(image: &mut MetadataImage, records: &[MetadataRecord]) {
    for record in records {
        let offset = image.version;
        apply(image, record, offset).unwrap_or_else(|error| panic!("{record:?}: {error}"));
    }
}

/// Writes the records `decide` returns for the current image.
fn run(image: &mut MetadataImage, decide: impl Fn(&MetadataImage) -> Vec<MetadataRecord>) {
    let records = decide(image);
    write(image, &records);
}

/// `(replicas, leader, isr)` of one partition; leader -1 = none.
type Spec<'a> = (&'a [i32], i32, &'a [i32]);

fn add_topic(image: &mut MetadataImage, id: &str, name: &str, unclean: bool, specs: &[Spec<'_>]) {
    let configs = if unclean {
        BTreeMap::from([("unclean_leader_election_enable".into(), "true".into())])
    } else {
        BTreeMap::new()
    };
    let mut records = vec![MetadataRecord::CreateTopic {
        topic_id: id.into(),
        name: name.into(),
        configs,
    }];
    for (partition, (replicas, leader, isr)) in (0..).zip(specs) {
        records.push(MetadataRecord::CreatePartition {
            topic_id: id.into(),
            partition,
            replicas: replicas.to_vec(),
            leader: *leader,
            leader_epoch: 0,
            isr: isr.to_vec(),
        });
    }
    write(image, &records);
}

/// Brokers `ids` (incarnation 1) and topic `orders` with `specs`.
fn cluster(ids: &[i32], specs: &[Spec<'_>]) -> MetadataImage {
    let mut image = MetadataImage::default();
    let registrations: Vec<MetadataRecord> = ids
        .iter()
        .map(|id| MetadataRecord::RegisterBroker {
            broker_id: *id,
            address: format!("127.0.0.1:{}", 7000 + id),
            rack: None,
            incarnation: 1,
            external_address: None,
        })
        .collect();
    write(&mut image, &registrations);
    add_topic(&mut image, ORDERS, "orders", false, specs);
    image
}

fn state(image: &MetadataImage, topic: &str, partition: i32) -> (Option<i32>, i32, Vec<i32>) {
    let partition = image.partition(topic, partition).unwrap();
    let isr = partition.isr.iter().map(|id| id.0).collect();
    (partition.leader.map(|id| id.0), partition.leader_epoch, isr)
}

fn fenced(image: &MetadataImage, id: i32) -> bool {
    image.broker(BrokerId(id)).unwrap().fenced
}

#[test]
fn fence_moves_leadership_to_the_next_live_isr_member_in_replica_order() {
    let mut image = cluster(
        &[1, 2, 3],
        &[(&[1, 3, 2], 1, &[2, 1, 3]), (&[2, 1, 3], 2, &[2, 3, 1])],
    );
    let records = fence(&image, BrokerId(1));
    assert_eq!(
        records[0],
        MetadataRecord::FenceBroker {
            broker_id: 1,
            incarnation: 1
        }
    );
    assert_eq!(records.len(), 3);
    write(&mut image, &records);
    assert!(fenced(&image, 1));
    assert_eq!(state(&image, "orders", 0), (Some(3), 1, vec![2, 3]));
    assert_eq!(state(&image, "orders", 1), (Some(2), 0, vec![2, 3]));
    assert_eq!(image.partition("orders", 1).unwrap().partition_epoch, 1);
    assert!(fence(&image, BrokerId(1)).is_empty(), "already fenced");
    assert!(fence(&image, BrokerId(9)).is_empty(), "unknown");
}

#[test]
fn the_last_isr_member_stays_in_the_isr_and_leads_again_when_it_returns() {
    let mut image = cluster(&[1, 2, 3], &[(&[1, 2, 3], 1, &[1, 2, 3])]);
    run(&mut image, |image| fence(image, BrokerId(2)));
    run(&mut image, |image| fence(image, BrokerId(3)));
    assert_eq!(state(&image, "orders", 0), (Some(1), 0, vec![1]));
    run(&mut image, |image| fence(image, BrokerId(1)));
    assert_eq!(state(&image, "orders", 0), (None, 1, vec![1]));
    // Broker 2 is not in the ISR: it comes back, but may not lead.
    let back = unfence(&image, BrokerId(2), 1);
    assert_eq!(back.len(), 1);
    write(&mut image, &back);
    assert_eq!(state(&image, "orders", 0), (None, 1, vec![1]));
    // The last-known leader does.
    run(&mut image, |image| unfence(image, BrokerId(1), 1));
    assert_eq!(state(&image, "orders", 0), (Some(1), 2, vec![1]));
}

/// A broker that registers again as a new process leaves every ISR with another live
/// member (handing over what it led); where it is the only live member it stays.
#[test]
fn a_restarted_broker_leaves_the_isrs_it_shares_with_a_live_member() {
    let mut image = cluster(
        &[1, 2, 3],
        &[
            (&[1, 2, 3], 1, &[1, 2, 3]),
            (&[3, 1, 2], 3, &[3, 1, 2]),
            (&[3, 2], 3, &[3]),
            (&[1, 2], 1, &[1, 2]),
        ],
    );
    run(&mut image, |image| fence(image, BrokerId(2)));
    run(&mut image, |image| restarted(image, BrokerId(3)));
    // A follower: out of the ISR, same leader and leader epoch.
    assert_eq!(state(&image, "orders", 0), (Some(1), 0, vec![1]));
    // A leader: the next live ISR member leads, at a new leader epoch.
    assert_eq!(state(&image, "orders", 1), (Some(1), 1, vec![1]));
    // The only ISR member: unchanged.
    assert_eq!(state(&image, "orders", 2), (Some(3), 0, vec![3]));
    // Not a replica: unchanged.
    assert_eq!(state(&image, "orders", 3), (Some(1), 0, vec![1]));
    assert!(
        restarted(&image, BrokerId(3)).is_empty(),
        "nothing left to change"
    );
    assert!(restarted(&image, BrokerId(9)).is_empty(), "unknown");
}

#[test]
fn unclean_election_takes_a_live_replica_outside_the_isr_only_when_enabled() {
    let mut image = cluster(&[1, 2], &[(&[1, 2], 1, &[1])]);
    add_topic(&mut image, UNCLEAN, "risky", true, &[(&[1, 2], 1, &[1])]);
    run(&mut image, |image| fence(image, BrokerId(1)));
    assert_eq!(state(&image, "orders", 0), (None, 1, vec![1]));
    assert_eq!(state(&image, "risky", 0), (Some(2), 1, vec![2]));
}

#[test]
fn unclean_election_also_happens_when_an_outside_replica_returns() {
    let mut image = cluster(&[1, 2], &[]);
    add_topic(&mut image, UNCLEAN, "risky", true, &[(&[1, 2], 1, &[1])]);
    run(&mut image, |image| fence(image, BrokerId(2)));
    run(&mut image, |image| fence(image, BrokerId(1)));
    assert_eq!(state(&image, "risky", 0), (None, 1, vec![1]));
    run(&mut image, |image| unfence(image, BrokerId(2), 1));
    assert_eq!(state(&image, "risky", 0), (Some(2), 2, vec![2]));
}

#[test]
fn unfence_needs_a_fenced_broker_at_its_incarnation() {
    let mut image = cluster(&[1, 2], &[(&[1, 2], 1, &[1, 2])]);
    assert!(unfence(&image, BrokerId(1), 1).is_empty(), "not fenced");
    assert!(unfence(&image, BrokerId(9), 1).is_empty(), "unknown");
    run(&mut image, |image| fence(image, BrokerId(1)));
    assert!(
        unfence(&image, BrokerId(1), 2).is_empty(),
        "other incarnation"
    );
    let records = unfence(&image, BrokerId(1), 1);
    assert_eq!(records.len(), 1, "broker 2 leads already: {records:?}");
    write(&mut image, &records);
    assert!(!fenced(&image, 1));
    assert_eq!(state(&image, "orders", 0), (Some(2), 1, vec![2]));
}

#[test]
fn controlled_shutdown_moves_what_can_move_and_then_returns_nothing() {
    let mut image = cluster(
        &[1, 2, 3],
        &[
            (&[1, 2, 3], 1, &[1, 2, 3]),
            (&[1, 2], 1, &[1]),
            (&[2, 1], 2, &[2, 1]),
        ],
    );
    run(&mut image, |image| fence(image, BrokerId(2)));
    let records = controlled_shutdown(&image, BrokerId(1));
    assert_eq!(records.len(), 1, "{records:?}");
    write(&mut image, &records);
    assert_eq!(state(&image, "orders", 0), (Some(3), 1, vec![3]));
    assert_eq!(state(&image, "orders", 1), (Some(1), 0, vec![1]));
    assert_eq!(state(&image, "orders", 2), (Some(1), 1, vec![1]));
    assert!(controlled_shutdown(&image, BrokerId(1)).is_empty());
    assert!(controlled_shutdown(&image, BrokerId(9)).is_empty());
}

#[test]
fn preferred_election_reports_every_selected_partition() {
    let mut image = cluster(
        &[1, 2, 3],
        &[
            (&[1, 3], 3, &[1, 3]),
            (&[1, 2], 1, &[1, 2]),
            (&[3, 1], 1, &[1]),
            (&[2, 3], 3, &[2, 3]),
        ],
    );
    add_topic(
        &mut image,
        INTERNAL,
        "__internal",
        false,
        &[(&[2, 1], 1, &[1, 2])],
    );
    run(&mut image, |image| fence(image, BrokerId(2)));
    let (outcomes, records) = elect_preferred(&image, &[]);
    let results: Vec<_> = outcomes
        .iter()
        .map(|outcome| (outcome.topic.as_str(), outcome.partition, outcome.result))
        .collect();
    assert_eq!(
        results,
        [
            ("orders", 0, Ok((BrokerId(1), 1))),
            ("orders", 1, Err(ElectionRefusal::NotNeeded)),
            ("orders", 2, Err(ElectionRefusal::PreferredNotAvailable)),
            ("orders", 3, Err(ElectionRefusal::PreferredNotAvailable)),
        ],
        "broker 2 is fenced, broker 3 is not in the ISR of partition 2; internal topics only when named"
    );
    write(&mut image, &records);
    assert_eq!(state(&image, "orders", 0), (Some(1), 1, vec![1, 3]));

    let selection = [
        ("orders".to_string(), Some(vec![1, 9, 1])),
        ("nope".to_string(), None),
        ("nope".to_string(), Some(vec![0])),
        ("__internal".to_string(), None),
    ];
    let (outcomes, records) = elect_preferred(&image, &selection);
    let results: Vec<_> = outcomes
        .iter()
        .map(|outcome| (outcome.topic.as_str(), outcome.partition, outcome.result))
        .collect();
    let unknown = Err(ElectionRefusal::UnknownTopicOrPartition);
    assert_eq!(
        results,
        [
            ("orders", 1, Err(ElectionRefusal::NotNeeded)),
            ("orders", 9, unknown),
            ("nope", -1, unknown),
            ("nope", 0, unknown),
            ("__internal", 0, Err(ElectionRefusal::PreferredNotAvailable)),
        ]
    );
    assert!(records.is_empty());
}

/// One partition of a reassignment request.
type Request = (String, i32, Vec<i32>);

fn request(partition: i32, replicas: &[i32]) -> Request {
    ("orders".into(), partition, replicas.to_vec())
}

fn refusal(image: &MetadataImage, requests: &[Request]) -> (String, String) {
    let error = reassign(image, requests).unwrap_err();
    (error.code_name().to_string(), error.to_string())
}

#[test]
fn reassignment_keeps_the_remaining_isr_and_moves_the_leader_if_it_leaves() {
    let mut image = cluster(&[1, 2, 3], &[(&[1, 2], 1, &[1, 2]), (&[3], 3, &[3])]);
    let requests = [request(0, &[2, 3]), request(1, &[3])];
    let (outcomes, records) = reassign(&image, &requests).unwrap();
    assert_eq!(
        outcomes,
        [
            ReassignmentOutcome {
                topic: "orders".into(),
                partition: 0,
                current_replicas: vec![BrokerId(1), BrokerId(2)],
                target_replicas: vec![BrokerId(2), BrokerId(3)],
                leader: Some(BrokerId(2)),
                isr: vec![BrokerId(2)],
            },
            ReassignmentOutcome {
                topic: "orders".into(),
                partition: 1,
                current_replicas: vec![BrokerId(3)],
                target_replicas: vec![BrokerId(3)],
                leader: Some(BrokerId(3)),
                isr: vec![BrokerId(3)],
            },
        ]
    );
    assert_eq!(records.len(), 1, "an unchanged partition writes nothing");
    write(&mut image, &records);
    assert_eq!(state(&image, "orders", 0), (Some(2), 1, vec![2]));
    assert_eq!(
        image.partition("orders", 0).unwrap().replicas,
        [BrokerId(2), BrokerId(3)]
    );
    // The leader stays when it stays a replica, whatever its position.
    let (_, records) = reassign(&image, &[request(0, &[3, 2, 1])]).unwrap();
    write(&mut image, &records);
    assert_eq!(state(&image, "orders", 0), (Some(2), 1, vec![2]));
}

#[test]
fn reassignment_is_refused_whole_with_the_reason() {
    let image = cluster(&[1, 2, 3], &[(&[1, 2], 1, &[1, 2]), (&[3], 3, &[3])]);
    let good = request(1, &[3, 1]);
    let invalid = "INVALID_REPLICA_ASSIGNMENT".to_string();
    let cases: [(Vec<Request>, &str, &str); 7] = [
        (vec![good.clone(), request(0, &[])], &invalid, "empty"),
        (
            vec![good.clone(), request(0, &[2, 2])],
            &invalid,
            "names broker 2 twice",
        ),
        (
            vec![good.clone(), request(0, &[1, 9])],
            &invalid,
            "broker 9",
        ),
        (
            vec![request(1, &[1, 2])],
            &invalid,
            "the new replicas must catch up first",
        ),
        (vec![good.clone(), good.clone()], &invalid, "named twice"),
        (
            vec![good.clone(), request(5, &[1])],
            "UNKNOWN_TOPIC_OR_PARTITION",
            "orders-5",
        ),
        (
            vec![good.clone(), ("nope".into(), 0, vec![1])],
            "UNKNOWN_TOPIC_OR_PARTITION",
            "nope",
        ),
    ];
    for (requests, code, text) in cases {
        let (got_code, message) = refusal(&image, &requests);
        assert_eq!(got_code, code, "{requests:?}: {message}");
        assert!(message.contains(text), "{requests:?}: {message}");
    }
}

#[test]
fn reassignment_elects_a_live_isr_member_when_the_leader_leaves() {
    let mut image = cluster(&[1, 2, 3], &[(&[1, 2, 3], 1, &[1, 2, 3])]);
    run(&mut image, |image| fence(image, BrokerId(2)));
    let (outcomes, records) = reassign(&image, &[request(0, &[2, 3])]).unwrap();
    assert_eq!(outcomes[0].leader, Some(BrokerId(3)), "broker 2 is fenced");
    write(&mut image, &records);
    assert_eq!(state(&image, "orders", 0), (Some(3), 1, vec![3]));
}

/// One step of the property test.
#[derive(Debug, Clone)]
enum Step {
    Fence(i32),
    Unfence(i32),
    Shutdown(i32),
    Preferred,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1..=4i32).prop_map(Step::Fence),
        (1..=4i32).prop_map(Step::Unfence),
        (1..=4i32).prop_map(Step::Shutdown),
        Just(Step::Preferred),
    ]
}

/// Partitions as replica lists over brokers 1..=4 (a rotation and a length).
fn partition_specs() -> impl Strategy<Value = Vec<(usize, usize)>> {
    prop::collection::vec((0usize..4, 1usize..=4), 1..8)
}

proptest! {
    #[test]
    fn elections_keep_leaders_live_and_isrs_clean(
        specs in partition_specs(),
        steps in prop::collection::vec(step(), 1..40),
    ) {
        let replicas: Vec<Vec<i32>> = specs
            .iter()
            .map(|(rotation, length)| {
                (0..*length).map(|i| ((rotation + i) % 4) as i32 + 1).collect()
            })
            .collect();
        let owned: Vec<(&[i32], i32, &[i32])> = replicas
            .iter()
            .map(|list| (list.as_slice(), list[0], list.as_slice()))
            .collect();
        let mut image = cluster(&[1, 2, 3, 4], &owned);
        for step in steps {
            let before = image.clone();
            let records = match step {
                Step::Fence(id) => fence(&image, BrokerId(id)),
                Step::Unfence(id) => unfence(&image, BrokerId(id), 1),
                Step::Shutdown(id) => controlled_shutdown(&image, BrokerId(id)),
                Step::Preferred => elect_preferred(&image, &[]).1,
            };
            write(&mut image, &records);
            for (number, partition) in &image.topic("orders").unwrap().partitions {
                let old = before.partition("orders", *number).unwrap();
                prop_assert!(!partition.isr.is_empty(), "empty ISR: {partition:?}");
                prop_assert!(partition.isr.iter().all(|id| old.isr.contains(id)),
                    "the ISR grew without unclean election: {old:?} -> {partition:?}");
                if let Some(leader) = partition.leader {
                    prop_assert!(!image.broker(leader).unwrap().fenced,
                        "fenced leader after {step:?}: {partition:?}");
                    if partition.leader != old.leader {
                        prop_assert!(old.isr.contains(&leader));
                        prop_assert!(partition.leader_epoch > old.leader_epoch);
                    }
                } else {
                    let live_member = partition.isr.iter()
                        .any(|id| !image.broker(*id).unwrap().fenced);
                    prop_assert!(!live_member,
                        "leaderless with a live ISR member after {step:?}: {partition:?}");
                }
            }
            if let Step::Fence(id) = step {
                prop_assert!(fenced(&image, id));
                for partition in image.topic("orders").unwrap().partitions.values() {
                    prop_assert!(partition.leader != Some(BrokerId(id)));
                    prop_assert!(!partition.isr.contains(&BrokerId(id)) || partition.isr.len() == 1);
                }
            }
        }
    }
}
