//! The cluster-health rule, on images written as their snapshot JSON.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use super::*;

/// Brokers 1 and 2 (2 fenced if `fenced`); `orders` with partition 0 led by 1 with
/// ISR [1] of [1, 2], and partition 1 led by `leader_of_1`.
fn image(fenced: bool, leader_of_1: Option<i32>) -> MetadataImage {
    let broker = |id: i32, fenced: bool| {
        json!({"id": id, "address": format!("127.0.0.{id}:7070"), "rack": null,
               "incarnation": 1, "fenced": fenced})
    };
    let partition = |leader: Option<i32>, isr: &[i32]| {
        json!({"replicas": [1, 2], "leader": leader, "leader_epoch": 0, "isr": isr,
               "partition_epoch": 0})
    };
    serde_json::from_value(json!({
        "version": 10,
        "cluster_id": "c",
        "brokers": [broker(1, false), broker(2, fenced)],
        "topics": {"orders": {"id": "00000000000000000000000000000001", "name": "orders",
            "configs": {},
            "partitions": {"0": partition(Some(1), &[1]), "1": partition(leader_of_1, &[1, 2])}}},
        "next_producer_id": 0
    }))
    .unwrap()
}

#[test]
fn a_cluster_with_a_controller_live_voters_and_leaders_is_healthy() {
    let health = judge(&image(false, Some(2)), &[1, 2], Some(1));
    assert!(health.healthy, "{health:?}");
    assert!(health.reasons.is_empty());
    assert_eq!(health.all_nodes, [1, 2]);
    assert!(health.nodes_down.is_empty());
    // Under-replicated is reported, but it is not a reason to be unhealthy.
    assert_eq!(health.under_replicated_partitions, ["orders/0"]);
}

#[test]
fn each_broken_condition_is_one_reason() {
    let health = judge(&image(true, None), &[1, 2, 3], None);
    assert!(!health.healthy);
    assert_eq!(health.all_nodes, [1, 2, 3]);
    assert_eq!(health.nodes_down, [2, 3]);
    assert_eq!(health.leaderless_partitions, ["orders/1"]);
    assert_eq!(
        health.reasons,
        [
            "no active controller",
            "broker 2 is fenced",
            "broker 3 is not registered",
            "1 partition(s) have no leader: orders/1",
        ]
    );
}
