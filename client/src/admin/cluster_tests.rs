//! The cluster calls against the in-process [`TestBroker`]'s canned controller: wire `-1`
//! becomes `None`, election outcomes keep their typed codes, reassignments are all or
//! nothing, and `NOT_CONTROLLER` is retried only within the request timeout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::admin::{ElectionSelection, PartitionReassignment};
use crate::error::ErrorCode;
use crate::test_broker::{Assignment, TestBroker};
use crate::Client;

async fn client(broker: &TestBroker, request_timeout: Duration) -> Client {
    Client::builder()
        .brokers([broker.address.as_str()])
        .request_timeout(request_timeout)
        .build()
        .await
        .unwrap()
}

fn assignment(replicas: &[i32], leader: i32, isr: &[i32]) -> Assignment {
    Assignment {
        replicas: replicas.to_vec(),
        leader,
        leader_epoch: 4,
        isr: isr.to_vec(),
    }
}

fn controller_calls(broker: &TestBroker) -> usize {
    broker.state.lock().unwrap().controller.controller_calls
}

#[tokio::test]
async fn describe_cluster_reads_unknowns_as_none_and_sorts_by_node_id() {
    let broker = TestBroker::start(&[]).await;
    let admin = client(&broker, Duration::from_secs(5)).await.admin();
    let cluster = admin.describe_cluster().await.unwrap();
    assert_eq!(cluster.cluster_id, "test-cluster");
    assert_eq!(cluster.controller_leader, Some(1));
    assert_eq!(cluster.controller_term, 3);
    let voters: Vec<_> = cluster
        .voters
        .iter()
        .map(|v| (v.node_id, v.leader, v.matched_index, v.lag))
        .collect();
    assert_eq!(
        voters,
        [
            (1, true, Some(120), Some(0)),
            (2, false, Some(118), Some(2)),
            (3, false, Some(90), Some(30))
        ]
    );
    let brokers: Vec<_> = cluster
        .brokers
        .iter()
        .map(|b| (b.node_id, b.rack.as_deref(), b.fenced, b.incarnation))
        .collect();
    assert_eq!(
        brokers,
        [
            (1, Some("a"), false, 4),
            (2, Some("b"), false, 1),
            (3, None, true, 2)
        ]
    );
    assert_eq!(cluster.brokers[0].address, broker.address);
    assert_eq!((cluster.metadata_version, cluster.applied_index), (42, 120));
}

#[test]
fn minus_one_on_the_wire_is_none() {
    use strata_proto::api::v1 as wire;
    let response = wire::DescribeClusterResponse {
        controller_leader: -1,
        voters: vec![wire::ControllerVoter {
            node_id: 2,
            address: "h:1".into(),
            leader: false,
            matched_index: -1,
            lag: -1,
        }],
        ..Default::default()
    };
    let cluster = crate::admin::ClusterDescription::from_wire(&response);
    assert_eq!(cluster.controller_leader, None);
    assert_eq!(cluster.voters[0].matched_index, None);
    assert_eq!(cluster.voters[0].lag, None);
}

#[tokio::test]
async fn elections_report_each_partition_with_its_typed_outcome() {
    let broker = TestBroker::start(&[("orders", 3), ("audit", 1)]).await;
    broker.assign("orders", 0, assignment(&[2, 1], 1, &[1, 2]));
    broker.assign("orders", 2, assignment(&[3, 1], 1, &[1, 3]));
    let admin = client(&broker, Duration::from_secs(5)).await.admin();
    let selection = ElectionSelection::topic("orders", vec![2, 0, 1, 7]);
    let results = admin.elect_leaders(selection).await.unwrap();
    let seen: Vec<_> = results
        .iter()
        .map(|r| {
            let code = r.outcome.as_ref().err().and_then(|e| e.code());
            (r.partition, code, r.leader, r.leader_epoch, r.is_failure())
        })
        .collect();
    assert_eq!(
        seen,
        [
            (0, None, Some(2), 5, false),
            (1, Some(ErrorCode::ElectionNotNeeded), Some(1), 0, false),
            // Broker 3 is fenced: its being in the ISR is not enough.
            (
                2,
                Some(ErrorCode::PreferredLeaderNotAvailable),
                Some(1),
                4,
                true
            ),
            (7, Some(ErrorCode::UnknownTopicOrPartition), None, -1, true),
        ]
    );
    // Leadership moved once; a second election of everything finds nothing to do.
    let again = admin
        .elect_leaders(ElectionSelection::AllTopics)
        .await
        .unwrap();
    let partitions: Vec<_> = again
        .iter()
        .map(|r| (r.topic.as_str(), r.partition))
        .collect();
    assert_eq!(
        partitions,
        [("audit", 0), ("orders", 0), ("orders", 1), ("orders", 2)]
    );
    assert!(again[1]
        .outcome
        .as_ref()
        .is_err_and(|e| e.code() == Some(ErrorCode::ElectionNotNeeded)));
}

#[tokio::test]
async fn an_empty_selection_elects_nothing_and_sends_nothing() {
    let broker = TestBroker::start(&[("orders", 1)]).await;
    let admin = client(&broker, Duration::from_secs(5)).await.admin();
    let results = admin
        .elect_leaders(ElectionSelection::Topics(Vec::new()))
        .await
        .unwrap();
    assert!(results.is_empty());
    assert!(admin
        .reassign_partitions(Vec::<PartitionReassignment>::new(), false)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(controller_calls(&broker), 0);
}

#[tokio::test]
async fn a_dry_run_reassignment_answers_and_changes_nothing() {
    let broker = TestBroker::start(&[("orders", 2)]).await;
    broker.assign("orders", 0, assignment(&[1, 2], 1, &[1, 2]));
    let admin = client(&broker, Duration::from_secs(5)).await.admin();
    let planned = admin
        .reassign_partitions([("orders", 0, vec![2, 3])], true)
        .await
        .unwrap();
    assert_eq!(planned.len(), 1);
    let plan = &planned[0];
    assert_eq!(plan.current_replicas, [1, 2]);
    assert_eq!(plan.target_replicas, [2, 3]);
    // 3 is not in sync yet, and 1 leaves: 2 is the only in-sync replica and leads.
    assert_eq!((plan.leader, plan.isr.as_slice()), (Some(2), &[2][..]));

    let applied = admin
        .reassign_partitions([("orders", 0, vec![2, 3])], false)
        .await
        .unwrap();
    assert_eq!(
        applied[0].current_replicas,
        [1, 2],
        "the dry run wrote nothing"
    );
    let after = admin
        .reassign_partitions([("orders", 0, vec![3, 2])], true)
        .await
        .unwrap();
    assert_eq!(after[0].current_replicas, [2, 3]);
    assert_eq!(
        after[0].leader,
        Some(2),
        "a leader kept in the target stays"
    );
}

#[tokio::test]
async fn a_refused_reassignment_is_an_error_with_the_brokers_message() {
    let broker = TestBroker::start(&[("orders", 2)]).await;
    let admin = client(&broker, Duration::from_secs(5)).await.admin();
    let error = admin
        .reassign_partitions([("orders", 0, vec![1, 9])], false)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::InvalidReplicaAssignment));
    assert_eq!(
        error.to_string(),
        "broker 9 in the replica list of orders-0 is not registered"
    );
    assert!(!error.is_retriable());

    let error = admin
        .reassign_partitions([("orders", 1, vec![2])], false)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::InvalidReplicaAssignment));
    assert!(
        error
            .to_string()
            .contains("keep none of its in-sync replicas"),
        "{error}"
    );

    // One unknown partition fails the request; the valid partition is not changed either.
    let error = admin
        .reassign_partitions([("orders", 1, vec![1, 2]), ("orders", 5, vec![1])], false)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::UnknownTopicOrPartition));
    let unchanged = admin
        .reassign_partitions([("orders", 1, vec![1])], true)
        .await
        .unwrap();
    assert_eq!(unchanged[0].current_replicas, [1]);
}

#[test]
fn a_partition_refused_in_its_result_is_an_error_naming_it() {
    use strata_proto::api::v1 as wire;
    let result = wire::ReassignmentResult {
        topic: "orders".into(),
        partition: 5,
        error: Some(wire::Error::new(
            ErrorCode::UnknownTopicOrPartition,
            "no such partition",
        )),
        ..Default::default()
    };
    let error = crate::admin::ReassignmentResult::from_wire(&result).unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::UnknownTopicOrPartition));
    assert_eq!(error.to_string(), "orders/5: no such partition");
}

#[tokio::test]
async fn not_controller_is_retried_until_a_controller_answers() {
    let broker = TestBroker::start(&[("orders", 1)]).await;
    broker
        .state
        .lock()
        .unwrap()
        .controller
        .not_controller_answers = 2;
    let admin = client(&broker, Duration::from_secs(5)).await.admin();
    let results = admin
        .elect_leaders(ElectionSelection::AllTopics)
        .await
        .unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(controller_calls(&broker), 3);
}

#[tokio::test]
async fn not_controller_past_the_request_timeout_is_returned() {
    let broker = TestBroker::start(&[("orders", 1)]).await;
    broker
        .state
        .lock()
        .unwrap()
        .controller
        .not_controller_answers = usize::MAX;
    let admin = client(&broker, Duration::from_millis(400)).await.admin();
    let error = admin
        .reassign_partitions([("orders", 0, vec![1])], false)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::NotController));
    assert!(error.is_retriable());
    assert!(controller_calls(&broker) >= 2, "retried at least once");
}

#[allow(dead_code)]
fn futures_are_send(admin: &crate::Admin) {
    fn is_send<T: Send>(_: T) {}
    is_send(admin.describe_cluster());
    is_send(admin.elect_leaders(ElectionSelection::AllTopics));
    is_send(admin.reassign_partitions([("t", 0, vec![1])], true));
}
