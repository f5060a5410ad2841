//! The offset store: records applied in order (newest wins, tombstones delete), and a
//! coordinator on a one-node broker committing, fetching, refusing bad commits without
//! changing anything, deleting, and finding it all again after reloading the partition.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::group::records::OffsetKey;
use crate::node::groups::{GroupCoordinator, GroupSettings};
use crate::node::groups_requests::{CommitPartition, CommitRequest};
use crate::node::test_node::node_with_topic;

fn value(offset: i64) -> OffsetValue {
    OffsetValue {
        offset,
        leader_epoch: 0,
        metadata: String::new(),
        commit_timestamp_ms: 1,
    }
}

fn offset_record(group: &str, partition: i32, offset: Option<i64>) -> GroupRecord {
    GroupRecord::Offset {
        key: OffsetKey {
            group_id: group.to_owned(),
            topic: "t".to_owned(),
            partition,
        },
        value: offset.map(value),
    }
}

#[test]
fn the_newest_record_of_a_key_wins_and_tombstones_delete() {
    let mut records = PartitionRecords::default();
    records.apply(offset_record("g", 0, Some(5)));
    records.apply(offset_record("g", 1, Some(7)));
    records.apply(offset_record("g", 0, Some(9)));
    records.apply(offset_record("h", 0, Some(1)));
    records.apply(offset_record("h", 0, None));
    let g = &records.offsets["g"];
    assert_eq!(g[&("t".to_owned(), 0)].offset, 9);
    assert_eq!(g[&("t".to_owned(), 1)].offset, 7);
    assert!(
        !records.offsets.contains_key("h"),
        "its only offset was deleted"
    );
    let snapshot = crate::group::Group::new("g").snapshot();
    records.apply(GroupRecord::Group {
        group_id: "g".to_owned(),
        snapshot: Some(snapshot),
    });
    assert!(records.snapshots.contains_key("g"));
    records.apply(GroupRecord::Group {
        group_id: "g".to_owned(),
        snapshot: None,
    });
    assert!(records.snapshots.is_empty());
}

#[test]
fn records_that_do_not_decode_are_skipped_and_counted() {
    let mut records = PartitionRecords::default();
    records.apply_stored(&StoredRecord {
        offset: strata_proto::types::Offset(3),
        timestamp_ms: 0,
        attributes: 0,
        key: Some(bytes::Bytes::from_static(&[0, 9])),
        value: None,
        headers: Vec::new(),
    });
    assert_eq!(records.skipped, 1);
    assert!(records.offsets.is_empty());
}

fn admin_commit(group: &str, topic: &str, partition: i32, offset: i64) -> CommitRequest {
    CommitRequest {
        group_id: group.to_owned(),
        member_id: String::new(),
        member_epoch: -1,
        partitions: vec![CommitPartition {
            topic: topic.to_owned(),
            partition,
            offset,
            leader_epoch: 0,
            metadata: "m".to_owned(),
        }],
    }
}

/// Waits (bounded) until the coordinator of `group` has loaded its partition.
async fn loaded(coordinator: &Arc<GroupCoordinator>, group: &str) {
    for _ in 0..500 {
        match coordinator.offset_fetch(group, None).await {
            Err(NodeError::CoordinatorLoadInProgress { .. }) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => {
                other.unwrap();
                return;
            }
        }
    }
    panic!("the coordinator did not load");
}

async fn produce_one(node: &Arc<Node>) {
    let batch = {
        let mut builder = BatchBuilder::new(BatchSettings::default());
        builder.append(&Record::from_value(1, "v")).unwrap();
        builder.build().unwrap()
    };
    node.produce("t", 0, batch, 1 << 20)
        .await
        .unwrap()
        .commit()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_are_checked_stored_and_found_again_after_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_topic(dir.path(), "t").await;
    for _ in 0..3 {
        produce_one(&node).await;
    }
    let settings = GroupSettings {
        offsets_topic_partitions: Some(3),
        ..GroupSettings::default()
    };
    let coordinator = GroupCoordinator::start(Arc::clone(&node), settings.clone());
    assert!(matches!(
        coordinator.find_coordinator("").await,
        Err(NodeError::InvalidGroupId { .. })
    ));
    let (leader, address) = coordinator.find_coordinator("g").await.unwrap();
    assert_eq!((leader, address.as_str()), (1, "127.0.0.1:1"));
    assert_eq!(
        node.image().topic(OFFSETS_TOPIC).unwrap().partition_count(),
        3
    );
    loaded(&coordinator, "g").await;

    let results = coordinator
        .offset_commit(admin_commit("g", "t", 0, 2))
        .await
        .unwrap();
    assert!(results[0].2.is_ok(), "{results:?}");
    // Beyond the high watermark (3), unknown partition, negative: refused, nothing written.
    for (topic, partition, offset) in [("t", 0, 4), ("t", 5, 1), ("nope", 0, 1), ("t", 0, -1)] {
        let results = coordinator
            .offset_commit(admin_commit("g", topic, partition, offset))
            .await
            .unwrap();
        let error = results[0].2.as_ref().unwrap_err();
        assert!(
            matches!(
                error,
                NodeError::InvalidCommitOffset { .. } | NodeError::UnknownTopicOrPartition { .. }
            ),
            "{topic}-{partition} at {offset}: {error}"
        );
    }
    // A member commit to a group without members is refused as a whole.
    let mut member_commit = admin_commit("g", "t", 0, 1);
    member_commit.member_id = "forged".to_owned();
    member_commit.member_epoch = 3;
    assert!(matches!(
        coordinator.offset_commit(member_commit).await,
        Err(NodeError::Group(
            crate::group::GroupError::UnknownMemberId { .. }
        ))
    ));
    let fetched = coordinator.offset_fetch("g", None).await.unwrap();
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].committed.as_ref().unwrap().offset, 2);
    assert_eq!(fetched[0].committed.as_ref().unwrap().metadata, "m");

    let description = coordinator.describe_group("g").await.unwrap();
    assert_eq!(description.partitions.len(), 1);
    assert_eq!(
        description.partitions[0].lag(),
        Some(1),
        "HW 3 - committed 2"
    );
    assert_eq!(coordinator.lag().await.len(), 1);
    let listed = coordinator.list_groups().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].group_id, "g");

    // A second group, deleted afterwards.
    loaded(&coordinator, "other").await;
    coordinator
        .offset_commit(admin_commit("other", "t", 0, 3))
        .await
        .unwrap();
    coordinator.delete_group("other").await.unwrap();
    assert!(matches!(
        coordinator.delete_group("other").await,
        Err(NodeError::GroupIdNotFound { .. })
    ));

    // A new coordinator reads the partitions again: the same offsets, "other" gone.
    let reloaded = GroupCoordinator::start(Arc::clone(&node), settings);
    loaded(&reloaded, "g").await;
    let fetched = reloaded.offset_fetch("g", None).await.unwrap();
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].committed.as_ref().unwrap().offset, 2);
    loaded(&reloaded, "other").await;
    assert!(reloaded
        .offset_fetch("other", None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(reloaded.list_groups().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_cannot_produce_to_the_offsets_topic() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_topic(dir.path(), "t").await;
    let coordinator = GroupCoordinator::start(Arc::clone(&node), GroupSettings::default());
    coordinator.find_coordinator("g").await.unwrap();
    let batch = {
        let mut builder = BatchBuilder::new(BatchSettings::default());
        builder
            .append(&Record::from_key_value(1, "k", "v"))
            .unwrap();
        builder.build().unwrap()
    };
    let refused = node.produce(OFFSETS_TOPIC, 0, batch, 1 << 20).await;
    assert!(matches!(refused, Err(NodeError::InternalTopic { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offsets_of_a_deleted_topic_show_no_lag() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_topic(dir.path(), "t").await;
    produce_one(&node).await;
    let coordinator = GroupCoordinator::start(Arc::clone(&node), GroupSettings::default());
    coordinator.find_coordinator("g").await.unwrap();
    loaded(&coordinator, "g").await;
    coordinator
        .offset_commit(admin_commit("g", "t", 0, 1))
        .await
        .unwrap();
    let described = coordinator.describe_group("g").await.unwrap();
    assert_eq!(described.partitions[0].lag(), Some(0));
    node.submit(crate::controller::quorum::ControllerRequest::DeleteTopic {
        name: "t".to_owned(),
    })
    .await
    .unwrap();
    let described = coordinator.describe_group("g").await.unwrap();
    let partition = &described.partitions[0];
    assert_eq!(partition.committed.as_ref().unwrap().offset, 1, "kept");
    assert_eq!((partition.ends, partition.lag()), (None, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_for_unknown_groups_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_topic(dir.path(), "t").await;
    produce_one(&node).await;
    let coordinator = GroupCoordinator::start(Arc::clone(&node), GroupSettings::default());
    coordinator.find_coordinator("g").await.unwrap();
    for index in 0..50 {
        let group = format!("made-up-{index}");
        loaded(&coordinator, &group).await;
        let forged = crate::group::HeartbeatRequest {
            member_id: "forged".to_owned(),
            member_epoch: 3,
            ..crate::group::HeartbeatRequest::default()
        };
        assert!(coordinator.heartbeat(&group, forged).await.is_err());
        let mut commit = admin_commit(&group, "t", 0, 1);
        commit.member_id = "forged".to_owned();
        assert!(coordinator.offset_commit(commit).await.is_err());
    }
    let held: usize = coordinator
        .loaded()
        .iter()
        .map(|coordinated| coordinated.entries().len())
        .sum();
    assert_eq!(held, 0, "no entry kept for groups that do not exist");
    assert!(coordinator.list_groups().await.is_empty());
}
