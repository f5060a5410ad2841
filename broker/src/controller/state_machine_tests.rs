//! One test per record type of the state machine, for what it applies and what it refuses
//! (refusals leave the image untouched).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use strata_proto::types::BrokerId;

use super::error::ControllerError;
use super::image::MetadataImage;
use super::metadata_record::MetadataRecord;
use super::state_machine::apply;

const TOPIC_ID: &str = "0123456789abcdef0123456789abcdef";

fn register(broker_id: i32, incarnation: u64) -> MetadataRecord {
    MetadataRecord::RegisterBroker {
        broker_id,
        address: format!("127.0.0.1:{}", 7000 + broker_id),
        rack: None,
        incarnation,
        external_address: None,
    }
}

fn create_topic(topic_id: &str, name: &str) -> MetadataRecord {
    MetadataRecord::CreateTopic {
        topic_id: topic_id.into(),
        name: name.into(),
        configs: BTreeMap::new(),
    }
}

fn create_partition(partition: i32, replicas: &[i32]) -> MetadataRecord {
    MetadataRecord::CreatePartition {
        topic_id: TOPIC_ID.into(),
        partition,
        replicas: replicas.to_vec(),
        leader: replicas.first().copied().unwrap_or(-1),
        leader_epoch: 0,
        isr: replicas.to_vec(),
    }
}

/// Applies `records` at consecutive offsets from the image's version.
fn apply_all(image: &mut MetadataImage, records: &[MetadataRecord]) {
    for record in records {
        let offset = image.version;
        apply(image, record, offset).unwrap();
    }
}

/// Three brokers and topic `orders` with one partition on brokers 1 and 2.
fn cluster() -> MetadataImage {
    let mut image = MetadataImage::default();
    apply_all(
        &mut image,
        &[
            register(1, 1),
            register(2, 1),
            register(3, 1),
            create_topic(TOPIC_ID, "orders"),
            create_partition(0, &[1, 2]),
        ],
    );
    image
}

/// `record` is refused at the next offset and the image does not change.
fn assert_refused(image: &MetadataImage, record: MetadataRecord) {
    let mut copy = image.clone();
    let offset = copy.version;
    let result = apply(&mut copy, &record, offset);
    assert!(
        matches!(result, Err(ControllerError::InvalidRecord { .. })),
        "{record:?} gave {result:?}"
    );
    assert_eq!(&copy, image, "{record:?} changed the image");
}

#[test]
fn version_follows_offsets_and_never_goes_back() {
    let mut image = MetadataImage::default();
    apply(&mut image, &register(1, 1), 0).unwrap();
    assert_eq!(image.version, 1);
    apply(&mut image, &register(1, 2), 5).unwrap();
    assert_eq!(
        image.version, 6,
        "gaps (non-metadata Raft entries) are allowed"
    );
    let before = image.clone();
    assert!(apply(&mut image, &register(1, 3), 4).is_err());
    assert!(apply(&mut image, &register(1, 3), i64::MAX).is_err());
    assert_eq!(image, before);
}

#[test]
fn set_cluster_id_is_written_once() {
    let mut image = MetadataImage::default();
    let set = |id: &str| MetadataRecord::SetClusterId {
        cluster_id: id.into(),
    };
    assert_refused(&image, set(""));
    apply_all(&mut image, &[set("abc")]);
    assert_eq!(image.cluster_id.as_deref(), Some("abc"));
    apply_all(&mut image, &[set("abc")]);
    assert_refused(&image, set("other"));
}

#[test]
fn register_broker_needs_a_growing_incarnation() {
    let mut image = cluster();
    assert_eq!(image.broker(BrokerId(2)).unwrap().incarnation, 1);
    apply_all(&mut image, &[register(2, 2)]);
    assert_eq!(image.broker(BrokerId(2)).unwrap().incarnation, 2);
    assert_refused(&image, register(2, 2));
    assert_refused(&image, register(-1, 1));
    assert_refused(
        &image,
        MetadataRecord::RegisterBroker {
            broker_id: 9,
            address: String::new(),
            rack: None,
            incarnation: 1,
            external_address: None,
        },
    );
}

#[test]
fn create_topic_needs_a_fresh_valid_name_and_id() {
    let image = cluster();
    let topic = image.topic("orders").unwrap();
    assert_eq!(topic.id, TOPIC_ID);
    assert_eq!(image.topic_by_id(TOPIC_ID).unwrap().name, "orders");
    let other_id = "fedcba9876543210fedcba9876543210";
    assert_refused(&image, create_topic(other_id, "orders"));
    assert_refused(&image, create_topic(TOPIC_ID, "payments"));
    assert_refused(&image, create_topic(other_id, "a/b"));
    assert_refused(&image, create_topic(other_id, ""));
    for bad_id in ["", "xyz", &"0".repeat(32), &"A".repeat(32), &"a".repeat(31)] {
        assert_refused(&image, create_topic(bad_id, "payments"));
    }
}

#[test]
fn create_partition_is_dense_on_registered_distinct_brokers() {
    let mut image = cluster();
    let partition = image.partition("orders", 0).unwrap();
    assert_eq!(partition.replicas, [BrokerId(1), BrokerId(2)]);
    assert_eq!(partition.leader, Some(BrokerId(1)));
    assert_eq!(partition.partition_epoch, 0);
    assert_refused(&image, create_partition(0, &[1]));
    assert_refused(&image, create_partition(2, &[1]));
    assert_refused(&image, create_partition(1, &[]));
    assert_refused(&image, create_partition(1, &[1, 1]));
    assert_refused(&image, create_partition(1, &[1, 9]));
    let leader_outside_isr = MetadataRecord::CreatePartition {
        topic_id: TOPIC_ID.into(),
        partition: 1,
        replicas: vec![1, 2],
        leader: 3,
        leader_epoch: 0,
        isr: vec![1, 2],
    };
    assert_refused(&image, leader_outside_isr);
    let unknown_topic = MetadataRecord::CreatePartition {
        topic_id: "fedcba9876543210fedcba9876543210".into(),
        partition: 0,
        replicas: vec![1],
        leader: 1,
        leader_epoch: 0,
        isr: vec![1],
    };
    assert_refused(&image, unknown_topic);
    apply_all(&mut image, &[create_partition(1, &[3])]);
    assert_eq!(image.topic("orders").unwrap().partition_count(), 2);
}

#[test]
fn change_partition_raises_epochs_and_keeps_the_leader_in_the_isr() {
    let mut image = cluster();
    let change = |leader: Option<i32>, leader_epoch, isr: &[i32], partition_epoch| {
        MetadataRecord::ChangePartition {
            topic_id: TOPIC_ID.into(),
            partition: 0,
            leader,
            leader_epoch,
            isr: isr.to_vec(),
            partition_epoch,
            replicas: None,
        }
    };
    apply_all(&mut image, &[change(Some(1), 0, &[1], 1)]);
    let partition = image.partition("orders", 0).unwrap();
    assert_eq!(partition.isr, [BrokerId(1)]);
    assert_eq!(partition.partition_epoch, 1);
    assert_refused(&image, change(Some(2), 0, &[1, 2], 2));
    assert_refused(&image, change(Some(1), 0, &[1], 1));
    assert_refused(&image, change(Some(2), 1, &[1], 2));
    assert_refused(&image, change(Some(1), 0, &[1, 3], 2));
    assert_refused(&image, change(Some(1), 0, &[1, 1], 2));
    apply_all(&mut image, &[change(Some(2), 1, &[2], 2)]);
    apply_all(&mut image, &[change(None, 2, &[2], 3)]);
    let partition = image.partition("orders", 0).unwrap();
    assert_eq!(partition.leader, None);
    assert_eq!(partition.leader_epoch, 2);
}

/// A `ChangePartition` of `orders-0` that also replaces the replica list.
fn reassign(
    replicas: &[i32],
    leader: Option<i32>,
    isr: &[i32],
    epochs: (i32, i32),
) -> MetadataRecord {
    MetadataRecord::ChangePartition {
        topic_id: TOPIC_ID.into(),
        partition: 0,
        leader,
        leader_epoch: epochs.0,
        isr: isr.to_vec(),
        partition_epoch: epochs.1,
        replicas: Some(replicas.to_vec()),
    }
}

#[test]
fn change_partition_with_replicas_replaces_the_replica_list() {
    let mut image = cluster();
    assert_refused(&image, reassign(&[], None, &[], (1, 1)));
    assert_refused(&image, reassign(&[2, 2], Some(2), &[2], (1, 1)));
    assert_refused(&image, reassign(&[2, 9], Some(2), &[2], (1, 1)));
    assert_refused(&image, reassign(&[2, 3], Some(2), &[1, 2], (1, 1)));
    assert_refused(&image, reassign(&[2, 3], Some(3), &[2], (1, 1)));
    apply_all(&mut image, &[reassign(&[2, 3], Some(2), &[2], (1, 1))]);
    let partition = image.partition("orders", 0).unwrap();
    assert_eq!(partition.replicas, [BrokerId(2), BrokerId(3)]);
    assert_eq!(partition.leader, Some(BrokerId(2)));
    assert_eq!(partition.isr, [BrokerId(2)]);
    assert_eq!((partition.leader_epoch, partition.partition_epoch), (1, 1));
    // Without `replicas` the list stays, and the ISR is checked against it.
    let keep = MetadataRecord::ChangePartition {
        topic_id: TOPIC_ID.into(),
        partition: 0,
        leader: Some(2),
        leader_epoch: 1,
        isr: vec![2, 3],
        partition_epoch: 2,
        replicas: None,
    };
    apply_all(&mut image, &[keep]);
    assert_eq!(
        image.partition("orders", 0).unwrap().replicas,
        [BrokerId(2), BrokerId(3)]
    );
}

#[test]
fn fence_and_unfence_need_the_registered_incarnation() {
    let mut image = cluster();
    apply_all(&mut image, &[register(2, 2)]);
    let fence = |broker_id, incarnation| MetadataRecord::FenceBroker {
        broker_id,
        incarnation,
    };
    let unfence = |broker_id, incarnation| MetadataRecord::UnfenceBroker {
        broker_id,
        incarnation,
    };
    assert_refused(&image, fence(9, 1));
    assert_refused(&image, fence(2, 1));
    assert_refused(&image, fence(2, 3));
    assert_refused(&image, unfence(9, 1));
    apply_all(&mut image, &[fence(2, 2)]);
    assert!(image.broker(BrokerId(2)).unwrap().fenced);
    assert!(!image.broker(BrokerId(1)).unwrap().fenced);
    assert_refused(&image, unfence(2, 1));
    apply_all(&mut image, &[unfence(2, 2)]);
    assert!(!image.broker(BrokerId(2)).unwrap().fenced);
    // A new registration (a restart) leaves the broker unfenced.
    apply_all(&mut image, &[fence(2, 2), register(2, 3)]);
    assert!(!image.broker(BrokerId(2)).unwrap().fenced);
}

#[test]
fn producer_id_blocks_are_contiguous_and_positive() {
    let mut image = MetadataImage::default();
    let allocate = |first_id, count| MetadataRecord::AllocateProducerIds { first_id, count };
    apply_all(&mut image, &[allocate(0, 1000), allocate(1000, 10)]);
    assert_eq!(image.next_producer_id, 1010);
    assert_refused(&image, allocate(0, 1000));
    assert_refused(&image, allocate(1010, 0));
    assert_refused(&image, allocate(1010, -5));
    image.next_producer_id = i64::MAX - 1;
    assert_refused(&image, allocate(i64::MAX - 1, 10));
}

#[test]
fn alter_config_sets_and_deletes_overrides() {
    let mut image = cluster();
    let alter = |set: &[(&str, &str)], delete: &[&str]| MetadataRecord::AlterConfig {
        topic_id: TOPIC_ID.into(),
        set: set
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
        delete: delete.iter().map(|key| key.to_string()).collect(),
    };
    apply_all(&mut image, &[alter(&[("retention_ms", "5")], &[])]);
    apply_all(
        &mut image,
        &[alter(&[("flush", "always")], &["retention_ms"])],
    );
    let configs = &image.topic("orders").unwrap().configs;
    assert_eq!(
        configs,
        &BTreeMap::from([("flush".to_string(), "always".to_string())])
    );
    assert_refused(&image, alter(&[("flush", "always")], &["flush"]));
    let mut unknown = alter(&[], &["flush"]);
    if let MetadataRecord::AlterConfig { topic_id, .. } = &mut unknown {
        *topic_id = "fedcba9876543210fedcba9876543210".into();
    }
    assert_refused(&image, unknown);
}

#[test]
fn delete_topic_removes_it_and_frees_the_name() {
    let mut image = cluster();
    apply_all(
        &mut image,
        &[MetadataRecord::DeleteTopic {
            topic_id: TOPIC_ID.into(),
        }],
    );
    assert!(image.topic("orders").is_none());
    assert_refused(
        &image,
        MetadataRecord::DeleteTopic {
            topic_id: TOPIC_ID.into(),
        },
    );
    apply_all(
        &mut image,
        &[create_topic("fedcba9876543210fedcba9876543210", "orders")],
    );
    assert_eq!(
        image.topic("orders").unwrap().id,
        "fedcba9876543210fedcba9876543210"
    );
}

#[test]
fn replaying_the_same_records_gives_the_same_image() {
    let records = [
        register(1, 1),
        create_topic(TOPIC_ID, "orders"),
        create_partition(0, &[1]),
        MetadataRecord::AllocateProducerIds {
            first_id: 0,
            count: 1000,
        },
    ];
    let mut first = MetadataImage::default();
    let mut second = MetadataImage::default();
    apply_all(&mut first, &records);
    apply_all(&mut second, &records);
    assert_eq!(first, second);
    assert_eq!(first.version, 4);
}
