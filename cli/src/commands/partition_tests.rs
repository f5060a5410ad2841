//! `partition elect-leader` output: the table, the JSON rows, the summary and which
//! outcomes count as failures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn row(partition: i32, leader: Option<i32>, epoch: i32, status: &str, failed: bool) -> ElectionRow {
    ElectionRow {
        topic: "orders".into(),
        partition,
        leader,
        leader_epoch: epoch,
        status: status.into(),
        message: (status != ELECTED).then(|| format!("broker says {status}")),
        failed,
    }
}

fn rows() -> Vec<ElectionRow> {
    vec![
        row(0, Some(2), 5, "ELECTED", false),
        row(1, Some(1), 0, "ELECTION_NOT_NEEDED", false),
        row(2, Some(1), 4, "PREFERRED_LEADER_NOT_AVAILABLE", true),
        row(7, None, -1, "UNKNOWN_TOPIC_OR_PARTITION", true),
    ]
}

#[test]
fn the_table_has_one_row_per_partition_with_dashes_for_unknowns() {
    assert_eq!(
        election_table(&rows()).to_string(),
        "TOPIC   PARTITION  LEADER  EPOCH  STATUS\n\
         orders  0          2       5      ELECTED\n\
         orders  1          1       0      ELECTION_NOT_NEEDED\n\
         orders  2          1       4      PREFERRED_LEADER_NOT_AVAILABLE\n\
         orders  7          -       -      UNKNOWN_TOPIC_OR_PARTITION\n"
    );
}

#[test]
fn json_rows_carry_status_and_message_but_not_the_failed_flag() {
    let json = serde_json::to_value(rows()).unwrap();
    assert_eq!(json[0]["status"], "ELECTED");
    assert!(json[0].get("message").is_none());
    assert_eq!(json[0]["leader"], 2);
    assert_eq!(json[0]["leader_epoch"], 5);
    assert_eq!(json[3]["leader"], serde_json::Value::Null);
    assert_eq!(json[1]["message"], "broker says ELECTION_NOT_NEEDED");
    assert!(json[2].get("failed").is_none());
}

#[test]
fn the_summary_counts_outcomes_and_mentions_failures_only_when_there_are_some() {
    assert_eq!(
        election_summary(&rows()),
        "4 partitions: 1 elected, 1 already led by the preferred replica, 2 failed"
    );
    assert_eq!(
        election_summary(&rows()[..2]),
        "2 partitions: 1 elected, 1 already led by the preferred replica"
    );
    assert_eq!(election_summary(&[]), "no partitions to elect leaders for");
}

#[test]
fn an_unknown_topic_without_a_partition_is_named_alone() {
    let unknown = row(-1, None, -1, "UNKNOWN_TOPIC_OR_PARTITION", true);
    assert_eq!(partition_name(&unknown), "orders");
    assert_eq!(partition_name(&rows()[2]), "orders/2");
    let table = election_table(&[unknown]).to_string();
    assert_eq!(
        table.lines().nth(1),
        Some("orders  -          -       -      UNKNOWN_TOPIC_OR_PARTITION")
    );
}
