//! Tests of [`alter_isr`]: every refusal on a hand-built cluster, the accepted shrink and
//! expansion, and the record applied by the state machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use strata_proto::types::BrokerId;

use super::*;
use crate::controller::election::fence;
use crate::controller::state_machine::apply;

const ORDERS: &str = "0123456789abcdef0123456789abcdef";

/// Applies `records` at the next offsets; every record must be accepted.
fn write(image: &mut MetadataImage, records: &[MetadataRecord]) {
    for record in records {
        let offset = image.version;
        apply(image, record, offset).unwrap_or_else(|error| panic!("{record:?}: {error}"));
    }
}

/// Brokers 1–4 (incarnation 1; broker 4 at incarnation 2) and `orders-0` on replicas
/// [1, 2, 3], led by 1 at leader epoch 0 with ISR [1, 2], partition epoch 0.
fn cluster() -> MetadataImage {
    let mut image = MetadataImage::default();
    let mut records: Vec<MetadataRecord> = [(1, 1), (2, 1), (3, 1), (4, 2)]
        .into_iter()
        .map(|(broker_id, incarnation)| MetadataRecord::RegisterBroker {
            broker_id,
            address: format!("127.0.0.1:{}", 7000 + broker_id),
            rack: None,
            incarnation,
            external_address: None,
        })
        .collect();
    records.push(MetadataRecord::CreateTopic {
        topic_id: ORDERS.into(),
        name: "orders".into(),
        configs: BTreeMap::new(),
    });
    records.push(MetadataRecord::CreatePartition {
        topic_id: ORDERS.into(),
        partition: 0,
        replicas: vec![1, 2, 3],
        leader: 1,
        leader_epoch: 0,
        isr: vec![1, 2],
    });
    write(&mut image, &records);
    image
}

fn brokers(list: &[i32]) -> Vec<BrokerId> {
    list.iter().copied().map(BrokerId).collect()
}

/// Broker 1 (incarnation 1) asks for `new_isr` at leader epoch 0, partition epoch 0.
fn request(new_isr: &[BrokerId]) -> AlterPartition<'_> {
    AlterPartition {
        topic: "orders",
        partition: 0,
        broker: BrokerId(1),
        incarnation: 1,
        leader_epoch: 0,
        partition_epoch: 0,
        new_isr,
    }
}

/// [`request`] for `new_isr`, decided on `image`.
fn ask(image: &MetadataImage, new_isr: &[i32]) -> Result<Vec<MetadataRecord>, ControllerError> {
    alter_isr(image, &request(&brokers(new_isr)))
}

#[test]
fn an_expansion_is_one_change_with_the_next_partition_epoch() {
    let mut image = cluster();
    let records = ask(&image, &[1, 2, 3]).unwrap();
    assert_eq!(
        records,
        vec![MetadataRecord::ChangePartition {
            topic_id: ORDERS.into(),
            partition: 0,
            leader: Some(1),
            leader_epoch: 0,
            isr: vec![1, 2, 3],
            partition_epoch: 1,
            replicas: None,
        }]
    );
    write(&mut image, &records);
    let partition = image.partition("orders", 0).unwrap();
    assert_eq!(partition.isr, brokers(&[1, 2, 3]));
    assert_eq!(partition.partition_epoch, 1);
    assert_eq!(
        (partition.leader, partition.leader_epoch),
        (Some(BrokerId(1)), 0)
    );
    assert_eq!(partition.replicas, brokers(&[1, 2, 3]));
}

#[test]
fn a_shrink_to_the_leader_alone_applies_and_the_next_change_needs_the_new_epoch() {
    let mut image = cluster();
    let records = ask(&image, &[1]).unwrap();
    write(&mut image, &records);
    let partition = image.partition("orders", 0).unwrap();
    assert_eq!(
        (partition.isr.clone(), partition.partition_epoch),
        (brokers(&[1]), 1)
    );
    // The same leader deciding again on partition epoch 0 is refused; on 1 it is heard.
    assert!(matches!(
        ask(&image, &[1, 2]),
        Err(ControllerError::InvalidUpdateVersion {
            partition_epoch: 0,
            current: 1,
            ..
        })
    ));
    let new_isr = brokers(&[1, 2]);
    let again = AlterPartition {
        partition_epoch: 1,
        ..request(&new_isr)
    };
    let records = alter_isr(&image, &again).unwrap();
    write(&mut image, &records);
    assert_eq!(image.partition("orders", 0).unwrap().partition_epoch, 2);
}

#[test]
fn the_same_members_in_another_order_change_nothing() {
    let image = cluster();
    assert_eq!(ask(&image, &[2, 1]).unwrap(), Vec::new());
    assert_eq!(ask(&image, &[1, 2]).unwrap(), Vec::new());
}

#[test]
fn a_stale_incarnation_is_refused() {
    let image = cluster();
    let new_isr = brokers(&[1]);
    let old = AlterPartition {
        incarnation: 0,
        ..request(&new_isr)
    };
    assert!(matches!(
        alter_isr(&image, &old),
        Err(ControllerError::StaleBrokerEpoch {
            broker_id: 1,
            incarnation: 0,
            current: 1
        })
    ));
}

#[test]
fn an_unknown_topic_or_partition_is_refused() {
    let image = cluster();
    let new_isr = brokers(&[1]);
    for (topic, partition) in [("nope", 0), ("orders", 1)] {
        let unknown = AlterPartition {
            topic,
            partition,
            ..request(&new_isr)
        };
        let error = alter_isr(&image, &unknown).unwrap_err();
        assert_eq!(error.code_name(), "UNKNOWN_TOPIC_OR_PARTITION", "{error}");
    }
}

#[test]
fn a_stale_leader_epoch_is_fenced() {
    let mut image = cluster();
    // Broker 1 is fenced: broker 2 leads at epoch 1 and the ISR is [2].
    let fencing = fence(&image, BrokerId(1));
    write(&mut image, &fencing);
    let partition = image.partition("orders", 0).unwrap();
    assert_eq!(
        (partition.leader, partition.leader_epoch),
        (Some(BrokerId(2)), 1)
    );
    let error = ask(&image, &[1, 2]).unwrap_err();
    assert!(
        matches!(
            error,
            ControllerError::FencedLeaderEpoch {
                leader_epoch: 0,
                current: 1,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(error.code_name(), "FENCED_LEADER_EPOCH");
}

#[test]
fn a_broker_that_does_not_lead_is_refused_with_the_leader() {
    let image = cluster();
    let new_isr = brokers(&[1, 2]);
    let follower = AlterPartition {
        broker: BrokerId(2),
        ..request(&new_isr)
    };
    let error = alter_isr(&image, &follower).unwrap_err();
    assert!(
        matches!(
            error,
            ControllerError::NotLeaderOrFollower {
                broker_id: 2,
                leader: Some(1),
                ..
            }
        ),
        "{error}"
    );
    // An unregistered broker leads nothing either.
    let stranger = AlterPartition {
        broker: BrokerId(9),
        ..request(&new_isr)
    };
    assert!(matches!(
        alter_isr(&image, &stranger),
        Err(ControllerError::NotLeaderOrFollower { broker_id: 9, .. })
    ));
}

#[test]
fn a_malformed_isr_is_an_invalid_request() {
    let image = cluster();
    for (new_isr, says) in [
        (&[][..], "leaves out the leader"),
        (&[1, 2, 1][..], "twice"),
        (&[1, 4][..], "not one of the replicas"),
        (&[2, 3][..], "leaves out the leader"),
    ] {
        let error = ask(&image, new_isr).unwrap_err();
        assert!(
            matches!(error, ControllerError::InvalidIsr { .. }),
            "{new_isr:?}: {error}"
        );
        assert_eq!(error.code_name(), "INVALID_REQUEST");
        assert!(error.to_string().contains(says), "{new_isr:?}: {error}");
    }
}

#[test]
fn a_fenced_broker_may_not_join() {
    let mut image = cluster();
    let fencing = fence(&image, BrokerId(3));
    write(&mut image, &fencing);
    let error = ask(&image, &[1, 2, 3]).unwrap_err();
    assert!(
        matches!(
            error,
            ControllerError::IneligibleReplica { broker_id: 3, .. }
        ),
        "{error}"
    );
    assert_eq!(error.code_name(), "INELIGIBLE_REPLICA");
    assert!(error.to_string().contains("fenced"), "{error}");
}

#[test]
fn a_fenced_member_that_stays_is_not_refused() {
    // Broker 2 is fenced while it is in the ISR (the leader's last view): fence() drops
    // it, so build that state by hand with a FenceBroker record alone.
    let mut image = cluster();
    write(
        &mut image,
        &[MetadataRecord::FenceBroker {
            broker_id: 2,
            incarnation: 1,
        }],
    );
    assert_eq!(ask(&image, &[1, 2]).unwrap(), Vec::new());
    let records = ask(&image, &[1]).unwrap();
    write(&mut image, &records);
    assert_eq!(image.partition("orders", 0).unwrap().isr, brokers(&[1]));
}
