//! The group calls' pure parts: wire values to typed ones, requests grouped by topic,
//! per-partition commit results, group id checks and which errors re-find the coordinator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use strata_proto::api::v1 as wire;

use super::{commit_results, commit_topics, group_by_topic};
use crate::admin::coordinator::{check_group_id, is_coordinator_retriable};
use crate::admin::{GroupDescription, GroupOffset, GroupState};
use crate::error::{Error, ErrorCode};

fn partitions(topic: &str, numbers: &[i32]) -> wire::GroupTopicPartitions {
    wire::GroupTopicPartitions {
        topic: topic.to_owned(),
        partitions: numbers.to_vec(),
    }
}

fn partition_offset(
    topic: &str,
    partition: i32,
    committed: i64,
    hw: i64,
    lag: i64,
    member: &str,
) -> wire::GroupPartitionOffset {
    wire::GroupPartitionOffset {
        topic: topic.to_owned(),
        partition,
        committed_offset: committed,
        metadata: String::new(),
        high_watermark: hw,
        lag,
        member_id: member.to_owned(),
    }
}

#[test]
fn a_description_reads_sentinels_as_none_and_sorts() {
    let wire_group = wire::DescribedGroup {
        error: None,
        group_id: "billing".into(),
        state: "reconciling".into(),
        group_epoch: 7,
        assignment_epoch: 6,
        assignor: "uniform".into(),
        coordinator: 1,
        members: vec![
            wire::GroupMember {
                member_id: "m-b".into(),
                instance_id: String::new(),
                client_id: "svc".into(),
                client_host: "10.0.0.2:5000".into(),
                member_epoch: 7,
                subscribed_topic_names: vec!["orders".into()],
                subscribed_topic_regex: String::new(),
                assignment: vec![partitions("orders", &[2, 0])],
                target_assignment: vec![partitions("orders", &[0])],
            },
            wire::GroupMember {
                member_id: "m-a".into(),
                instance_id: "host-1".into(),
                ..wire::GroupMember::default()
            },
        ],
        offsets: vec![
            partition_offset("orders", 2, -1, 40, 40, "m-b"),
            partition_offset("orders", 0, 10, 15, 5, "m-b"),
            partition_offset("audit", 0, 3, -1, -1, ""),
        ],
    };
    let group = GroupDescription::from_wire(&wire_group);
    assert_eq!(group.state, GroupState::Reconciling);
    assert_eq!(group.state.to_string(), "Reconciling");
    let members: Vec<&str> = group.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(members, ["m-a", "m-b"]);
    assert_eq!(group.members[0].instance_id.as_deref(), Some("host-1"));
    assert_eq!(group.members[1].instance_id, None);
    assert_eq!(
        group.members[1].assignment,
        [("orders".to_owned(), 0), ("orders".to_owned(), 2)]
    );
    let rows: Vec<_> = group
        .offsets
        .iter()
        .map(|o| {
            (
                o.topic.as_str(),
                o.partition,
                o.committed_offset,
                o.high_watermark,
                o.lag,
                o.member_id.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("audit", 0, Some(3), None, None, None),
            ("orders", 0, Some(10), Some(15), Some(5), Some("m-b")),
            ("orders", 2, None, Some(40), Some(40), Some("m-b")),
        ]
    );
    assert_eq!(group.total_lag(), Some(45));
    assert_eq!(
        group.member("m-b").map(|m| m.client_id.as_str()),
        Some("svc")
    );
}

#[test]
fn total_lag_is_unknown_without_any_known_lag() {
    let group = GroupDescription::from_wire(&wire::DescribedGroup {
        state: "empty".into(),
        offsets: vec![partition_offset("t", 0, 1, -1, -1, "")],
        ..wire::DescribedGroup::default()
    });
    assert_eq!(group.total_lag(), None);
    assert_eq!(
        GroupState::from_wire("dead"),
        GroupState::Other("dead".into())
    );
}

#[test]
fn requests_group_partitions_by_topic() {
    let asked = [
        ("b".to_owned(), 1),
        ("a".to_owned(), 0),
        ("b".to_owned(), 0),
    ];
    let topics = group_by_topic(&asked);
    assert_eq!(topics, [partitions("a", &[0]), partitions("b", &[1, 0])]);
    let offsets: Vec<GroupOffset> = vec![("b", 1, 5).into(), ("a", 0, 7).into()];
    let commit = commit_topics(&offsets);
    assert_eq!(commit.len(), 2);
    assert_eq!(commit[0].topic, "a");
    assert_eq!(commit[0].partitions[0].offset, 7);
    assert_eq!(commit[0].partitions[0].leader_epoch, -1);
}

#[test]
fn commit_results_keep_each_partitions_error_and_flag_missing_ones() {
    let offsets: Vec<GroupOffset> =
        vec![("t", 0, 5).into(), ("t", 1, 99).into(), ("t", 2, 1).into()];
    let response = wire::OffsetCommitResponse {
        error: None,
        topics: vec![wire::OffsetCommitTopicResult {
            topic: "t".into(),
            partitions: vec![
                wire::OffsetCommitPartitionResult {
                    partition: 1,
                    error: Some(wire::Error::new(
                        ErrorCode::InvalidCommitOffset,
                        "beyond the log end",
                    )),
                },
                wire::OffsetCommitPartitionResult {
                    partition: 0,
                    error: None,
                },
            ],
        }],
    };
    let results = commit_results(&offsets, &response);
    let outcomes: Vec<_> = results
        .iter()
        .map(|r| (r.partition, r.result.as_ref().err().map(Error::code_name)))
        .collect();
    assert_eq!(
        outcomes,
        [
            (0, None),
            (1, Some("INVALID_COMMIT_OFFSET")),
            (2, Some("UNKNOWN_SERVER_ERROR"))
        ]
    );
}

#[test]
fn group_ids_are_checked_before_sending() {
    assert!(check_group_id("billing").is_ok());
    let empty = check_group_id("").unwrap_err();
    assert_eq!(empty.code(), Some(ErrorCode::InvalidGroupId));
    assert!(!empty.is_retriable());
    assert!(check_group_id(&"g".repeat(249)).is_ok());
    assert_eq!(
        check_group_id(&"g".repeat(250)).unwrap_err().code(),
        Some(ErrorCode::InvalidGroupId)
    );
}

#[test]
fn moving_or_loading_coordinators_are_retried_and_refusals_are_not() {
    for code in [
        ErrorCode::NotCoordinator,
        ErrorCode::CoordinatorLoadInProgress,
        ErrorCode::CoordinatorNotAvailable,
    ] {
        assert!(
            is_coordinator_retriable(&Error::broker(code, "")),
            "{code:?}"
        );
    }
    for code in [
        ErrorCode::NonEmptyGroup,
        ErrorCode::GroupIdNotFound,
        ErrorCode::InvalidGroupId,
        ErrorCode::InvalidCommitOffset,
    ] {
        assert!(
            !is_coordinator_retriable(&Error::broker(code, "")),
            "{code:?}"
        );
    }
    assert!(is_coordinator_retriable(&Error::Transport(
        tonic::Status::unavailable("gone")
    )));
    assert!(!is_coordinator_retriable(&Error::Transport(
        tonic::Status::unimplemented("old broker")
    )));
}
