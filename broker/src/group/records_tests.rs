//! The `__consumer_offsets` codec: round trips (fixed and generated), the exact bytes of
//! an offset key, and hostile bytes (truncated at every length, corrupted at every byte,
//! absurd counts) decoded into typed errors without panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn assignment(pairs: &[(&str, &[i32])]) -> Assignment {
    pairs
        .iter()
        .map(|(topic, partitions)| {
            (
                (*topic).to_owned(),
                partitions.iter().copied().collect::<BTreeSet<i32>>(),
            )
        })
        .collect()
}

fn snapshot() -> GroupSnapshot {
    GroupSnapshot {
        group_id: "payments".to_owned(),
        group_epoch: 7,
        assignment_epoch: 6,
        assignor: "uniform".to_owned(),
        members: vec![
            MemberSnapshot {
                member_id: "m-1".to_owned(),
                instance_id: Some("host-a".to_owned()),
                client_id: "svc".to_owned(),
                client_host: "127.0.0.1:5000".to_owned(),
                member_epoch: 7,
                subscription: Subscription {
                    topics: ["orders".to_owned()].into_iter().collect(),
                    regex: Some("orders-.*".to_owned()),
                },
                rebalance_timeout: Duration::from_secs(60),
                assigned: assignment(&[("orders", &[0, 1])]),
                revoking: assignment(&[("orders", &[2])]),
                target: assignment(&[("orders", &[0, 1]), ("orders-eu", &[0])]),
            },
            MemberSnapshot {
                member_id: "m-2".to_owned(),
                instance_id: None,
                client_id: String::new(),
                client_host: String::new(),
                member_epoch: 5,
                subscription: Subscription::default(),
                rebalance_timeout: Duration::ZERO,
                assigned: Assignment::new(),
                revoking: Assignment::new(),
                target: Assignment::new(),
            },
        ],
    }
}

fn offset_key() -> OffsetKey {
    OffsetKey {
        group_id: "g".to_owned(),
        topic: "t".to_owned(),
        partition: 3,
    }
}

fn offset_value() -> OffsetValue {
    OffsetValue {
        offset: 42,
        leader_epoch: 2,
        metadata: "checkpoint".to_owned(),
        commit_timestamp_ms: 1_700_000_000_000,
    }
}

#[test]
fn an_offset_commit_round_trips_and_its_key_has_the_documented_bytes() {
    let key = encode_offset_key(&offset_key()).unwrap();
    assert_eq!(
        key,
        [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3],
        "type 1, group, topic, partition (docs/FORMAT.md)"
    );
    let value = encode_offset_value(&offset_value()).unwrap();
    assert_eq!(&value[..2], &[0, 1], "value version 1");
    assert_eq!(
        decode(Some(&key), Some(&value)).unwrap(),
        GroupRecord::Offset {
            key: offset_key(),
            value: Some(offset_value())
        }
    );
}

#[test]
fn a_group_snapshot_round_trips() {
    let snapshot = snapshot();
    let key = encode_group_key(&snapshot.group_id).unwrap();
    let value = encode_group_value(&snapshot).unwrap();
    let decoded = decode(Some(&key), Some(&value)).unwrap();
    assert_eq!(decoded.group_id(), "payments");
    assert_eq!(
        decoded,
        GroupRecord::Group {
            group_id: "payments".to_owned(),
            snapshot: Some(snapshot)
        }
    );
}

#[test]
fn tombstones_decode_without_values() {
    let key = encode_offset_key(&offset_key()).unwrap();
    assert_eq!(
        decode(Some(&key), None).unwrap(),
        GroupRecord::Offset {
            key: offset_key(),
            value: None
        }
    );
    let key = encode_group_key("g").unwrap();
    assert_eq!(
        decode(Some(&key), None).unwrap(),
        GroupRecord::Group {
            group_id: "g".to_owned(),
            snapshot: None
        }
    );
}

#[test]
fn every_truncation_is_a_typed_error() {
    let key = encode_group_key("payments").unwrap();
    let value = encode_group_value(&snapshot()).unwrap();
    for cut in 0..value.len() {
        let error = decode(Some(&key), Some(&value[..cut])).unwrap_err();
        assert!(
            matches!(
                error,
                GroupRecordError::Truncated { .. } | GroupRecordError::CountTooLarge { .. }
            ),
            "cut at {cut}: {error}"
        );
    }
    for cut in 0..key.len() {
        assert!(
            decode(Some(&key[..cut]), Some(&value)).is_err(),
            "key cut at {cut}"
        );
    }
    let offset_value = encode_offset_value(&offset_value()).unwrap();
    let offset_key = encode_offset_key(&offset_key()).unwrap();
    for cut in 0..offset_value.len() {
        assert!(decode(Some(&offset_key), Some(&offset_value[..cut])).is_err());
    }
}

#[test]
fn corrupting_any_byte_never_panics() {
    let key = encode_group_key("payments").unwrap();
    let value = encode_group_value(&snapshot()).unwrap();
    for index in 0..value.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut corrupt = value.clone();
            corrupt[index] ^= flip;
            // Either an error or some snapshot: never a panic.
            let _ = decode(Some(&key), Some(&corrupt));
        }
    }
}

#[test]
fn hostile_counts_fail_before_any_allocation() {
    let key = encode_group_key("g").unwrap();
    // Version 1, epochs, empty assignor, then u32::MAX members with nothing after.
    let mut value = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0];
    value.extend_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        decode(Some(&key), Some(&value)).unwrap_err(),
        GroupRecordError::CountTooLarge {
            what: "members",
            count: u32::MAX,
            available: 0
        }
    );
    // A metadata length far beyond the value.
    let offset_key = encode_offset_key(&offset_key()).unwrap();
    let mut value = vec![0, 1];
    value.extend_from_slice(&5i64.to_be_bytes());
    value.extend_from_slice(&(-1i32).to_be_bytes());
    value.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        decode(Some(&offset_key), Some(&value)).unwrap_err(),
        GroupRecordError::CountTooLarge { .. }
    ));
}

#[test]
fn unknown_types_versions_trailing_bytes_and_bad_utf8_are_refused() {
    assert_eq!(
        decode(Some(&[0, 9, 0, 0]), None).unwrap_err(),
        GroupRecordError::UnknownKeyType { key_type: 9 }
    );
    assert_eq!(
        decode(None, None).unwrap_err(),
        GroupRecordError::MissingKey
    );
    let key = encode_offset_key(&offset_key()).unwrap();
    let mut value = encode_offset_value(&offset_value()).unwrap();
    value[1] = 2;
    assert_eq!(
        decode(Some(&key), Some(&value)).unwrap_err(),
        GroupRecordError::UnknownValueVersion { version: 2 }
    );
    let mut long_key = key.clone();
    long_key.push(0);
    assert!(matches!(
        decode(Some(&long_key), None).unwrap_err(),
        GroupRecordError::TrailingBytes { what: "key", .. }
    ));
    let bad_utf8 = [0, 2, 0, 1, 0xff];
    assert_eq!(
        decode(Some(&bad_utf8), None).unwrap_err(),
        GroupRecordError::NotUtf8 { what: "group id" }
    );
}

#[test]
fn oversized_fields_are_refused_when_encoding() {
    let mut value = offset_value();
    value.metadata = "x".repeat(METADATA_BYTES_MAX + 1);
    assert!(matches!(
        encode_offset_value(&value).unwrap_err(),
        GroupRecordError::TooLong { .. }
    ));
    assert!(encode_group_key(&"g".repeat(70_000)).is_err());
}

#[test]
fn the_partition_of_a_group_is_fnv1a_modulo_the_count() {
    // FNV-1a 32 of "" is its offset basis 0x811c9dc5; of "a" it is 0xe40c292c.
    assert_eq!(partition_for("", 50), (0x811c_9dc5u32 % 50) as i32);
    assert_eq!(partition_for("a", 50), (0xe40c_292cu32 % 50) as i32);
    assert_eq!(partition_for("anything", 1), 0);
    for group in ["a", "payments", "g-17", "ünïcode"] {
        let partition = partition_for(group, 10);
        assert!((0..10).contains(&partition));
        assert_eq!(partition, partition_for(group, 10), "stable");
    }
}

fn arb_assignment() -> impl Strategy<Value = Assignment> {
    proptest::collection::btree_map(
        "[a-z]{1,8}",
        proptest::collection::btree_set(0i32..100, 0..4),
        0..3,
    )
}

fn arb_member() -> impl Strategy<Value = MemberSnapshot> {
    (
        "[a-z0-9-]{0,12}",
        proptest::option::of("[a-z]{0,6}"),
        "\\PC{0,6}",
        any::<i32>(),
        proptest::collection::btree_set("[a-z]{1,6}", 0..3),
        proptest::option::of("[a-z.*]{0,6}"),
        0u64..10_000_000,
        (arb_assignment(), arb_assignment(), arb_assignment()),
    )
        .prop_map(
            |(
                member_id,
                instance_id,
                client_id,
                member_epoch,
                topics,
                regex,
                timeout_ms,
                (assigned, revoking, target),
            )| {
                MemberSnapshot {
                    member_id,
                    instance_id,
                    client_id,
                    client_host: "10.0.0.1:1".to_owned(),
                    member_epoch,
                    subscription: Subscription { topics, regex },
                    rebalance_timeout: Duration::from_millis(timeout_ms),
                    assigned,
                    revoking,
                    target,
                }
            },
        )
}

proptest! {
    #[test]
    fn generated_snapshots_round_trip(
        group_id in "\\PC{1,20}",
        group_epoch in any::<i32>(),
        assignment_epoch in any::<i32>(),
        members in proptest::collection::vec(arb_member(), 0..4),
    ) {
        let snapshot = GroupSnapshot {
            group_id: group_id.clone(),
            group_epoch,
            assignment_epoch,
            assignor: "range".to_owned(),
            members,
        };
        let key = encode_group_key(&group_id).unwrap();
        let value = encode_group_value(&snapshot).unwrap();
        prop_assert_eq!(
            decode(Some(&key), Some(&value)).unwrap(),
            GroupRecord::Group { group_id, snapshot: Some(snapshot) }
        );
    }

    #[test]
    fn generated_commits_round_trip(
        group_id in "\\PC{1,20}",
        topic in "[a-zA-Z0-9._-]{1,30}",
        partition in any::<i32>(),
        offset in any::<i64>(),
        leader_epoch in any::<i32>(),
        metadata in "\\PC{0,40}",
        commit_timestamp_ms in any::<i64>(),
    ) {
        let key = OffsetKey { group_id, topic, partition };
        let value = OffsetValue { offset, leader_epoch, metadata, commit_timestamp_ms };
        let decoded = decode(
            Some(&encode_offset_key(&key).unwrap()),
            Some(&encode_offset_value(&value).unwrap()),
        )
        .unwrap();
        prop_assert_eq!(decoded, GroupRecord::Offset { key, value: Some(value) });
    }

    #[test]
    fn arbitrary_bytes_never_panic(key in proptest::collection::vec(any::<u8>(), 0..64),
                                   value in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(Some(&key), Some(&value));
        let _ = decode(Some(&key), None);
    }
}
