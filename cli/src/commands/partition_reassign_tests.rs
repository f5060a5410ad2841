//! `partition reassign` output and the flags-or-file choice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::reassignment_file::ReassignmentFile;

fn report(dry_run: bool) -> ReassignmentReport {
    ReassignmentReport {
        dry_run,
        partitions: vec![
            ReassignmentRow {
                topic: "orders".into(),
                partition: 0,
                current_replicas: vec![1, 2, 3],
                target_replicas: vec![2, 3, 4],
                leader: Some(2),
                isr: vec![2, 3, 4],
            },
            ReassignmentRow {
                topic: "orders".into(),
                partition: 1,
                current_replicas: vec![3],
                target_replicas: vec![4],
                leader: None,
                isr: vec![],
            },
        ],
    }
}

fn args(topic: Option<&str>, partition: Option<i32>, replicas: &[i32]) -> ReassignArgs {
    ReassignArgs {
        topic: topic.map(str::to_owned),
        partition,
        replicas: replicas.to_vec(),
        reassignment_json_file: None,
        dry_run: false,
    }
}

#[test]
fn the_table_shows_current_and_target_replicas_leader_and_isr() {
    assert_eq!(
        report(false).table().to_string(),
        "TOPIC   PARTITION  CURRENT-REPLICAS  TARGET-REPLICAS  LEADER  ISR\n\
         orders  0          1,2,3             2,3,4            2       2,3,4\n\
         orders  1          3                 4                -       -\n"
    );
}

#[test]
fn json_says_whether_it_was_a_dry_run() {
    let json = serde_json::to_value(report(true)).unwrap();
    assert_eq!(json["dry_run"], true);
    assert_eq!(
        json["partitions"][0]["current_replicas"],
        serde_json::json!([1, 2, 3])
    );
    assert_eq!(
        json["partitions"][0]["target_replicas"],
        serde_json::json!([2, 3, 4])
    );
    assert_eq!(json["partitions"][1]["leader"], serde_json::Value::Null);
    assert_eq!(json["partitions"][1]["isr"], serde_json::json!([]));
}

#[test]
fn flags_give_one_reassignment_and_a_file_gives_its_own() {
    let flags = requested(&args(Some("orders"), Some(3), &[2, 3])).unwrap();
    assert_eq!(flags, [("orders".to_owned(), 3, vec![2, 3])]);
    let mut from_file = args(None, None, &[]);
    from_file.reassignment_json_file = Some(ReassignmentFile {
        partitions: vec![("t".into(), 0, vec![1]), ("u".into(), 2, vec![2, 1])],
    });
    assert_eq!(requested(&from_file).unwrap().len(), 2);
}

#[test]
fn a_repeated_replica_in_flags_is_a_usage_error() {
    let error = check_before_connecting(&args(Some("orders"), Some(0), &[2, 2])).unwrap_err();
    assert_eq!(error.exit, ExitStatus::Usage);
    assert!(
        error.message.contains("broker 2 is listed twice"),
        "{}",
        error.message
    );
    assert_eq!(
        requested(&args(None, Some(0), &[2])).unwrap_err().exit,
        ExitStatus::Usage
    );
}
