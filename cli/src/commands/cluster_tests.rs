//! `cluster info` output, text and JSON, from views built by hand.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn view() -> ClusterView {
    let broker = |node_id, rack: Option<&str>, fenced, incarnation| BrokerView {
        node_id,
        address: format!("10.0.0.{node_id}:7070"),
        rack: rack.map(str::to_owned),
        state: if fenced { "fenced" } else { "live" }.to_owned(),
        fenced,
        incarnation,
    };
    let voter = |node_id, leader, matched_index, lag| VoterView {
        node_id,
        address: format!("10.0.0.{node_id}:7071"),
        leader,
        matched_index,
        lag,
    };
    ClusterView {
        cluster_id: "c-1".into(),
        controller_id: Some(2),
        controller_term: 7,
        topic_count: 3,
        answered_by: 1,
        metadata_version: 42,
        applied_index: 118,
        last_log_index: 120,
        brokers: vec![
            broker(1, Some("a"), false, 4),
            broker(2, Some("b"), false, 1),
            broker(3, None, true, 2),
        ],
        voters: vec![
            voter(1, false, Some(118), Some(2)),
            voter(2, true, Some(120), Some(0)),
            voter(3, false, None, None),
        ],
        version: None,
    }
}

#[test]
fn text_has_cluster_brokers_and_quorum_sections() {
    assert_eq!(
        render_text(&view()),
        "CLUSTER\n\
         =======\n\
         CLUSTER-ID        c-1\n\
         CONTROLLER-ID     2\n\
         CONTROLLER-TERM   7\n\
         TOPICS            3\n\
         ANSWERED-BY       1\n\
         METADATA-VERSION  42\n\
         APPLIED-INDEX     118\n\
         LAST-LOG-INDEX    120\n\
         \n\
         BROKERS\n\
         =======\n\
         ID  ADDRESS        RACK  STATE   INCARNATION\n\
         1   10.0.0.1:7070  a     live    4\n\
         2*  10.0.0.2:7070  b     live    1\n\
         3   10.0.0.3:7070  -     fenced  2\n\
         \n\
         QUORUM\n\
         ======\n\
         ID  ADDRESS        STATUS    MATCHED-INDEX  LAG\n\
         1   10.0.0.1:7071  follower  118            2\n\
         2   10.0.0.2:7071  leader    120            0\n\
         3   10.0.0.3:7071  follower  -              -\n"
    );
}

#[test]
fn no_controller_leader_prints_a_dash_and_marks_no_broker() {
    let mut view = view();
    view.controller_id = None;
    let text = render_text(&view);
    assert!(text.contains("CONTROLLER-ID     -\n"), "{text}");
    assert!(!text.contains('*'), "{text}");
}

#[test]
fn json_keeps_the_old_fields_and_adds_state_and_voters() {
    let json = serde_json::to_value(view()).unwrap();
    assert_eq!(json["cluster_id"], "c-1");
    // The broker's `GET /v1/cluster` adds its version; the CLI's JSON stays as it was.
    assert!(json.get("version").is_none(), "{json}");
    assert_eq!(json["controller_id"], 2);
    assert_eq!(json["controller_term"], 7);
    assert_eq!(json["topic_count"], 3);
    assert_eq!(json["brokers"][0]["rack"], "a");
    assert_eq!(json["brokers"][2]["rack"], serde_json::Value::Null);
    assert_eq!(json["brokers"][2]["state"], "fenced");
    assert_eq!(json["brokers"][2]["fenced"], true);
    assert_eq!(json["brokers"][0]["incarnation"], 4);
    assert_eq!(json["voters"][1]["leader"], true);
    assert_eq!(json["voters"][0]["lag"], 2);
    assert_eq!(json["voters"][2]["matched_index"], serde_json::Value::Null);
    let mut no_leader = view();
    no_leader.controller_id = None;
    let json = serde_json::to_value(no_leader).unwrap();
    assert_eq!(json["controller_id"], serde_json::Value::Null);
}
