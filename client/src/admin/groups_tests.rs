//! The group calls: wire values to typed ones, requests grouped by topic, per-partition
//! commit results, group id checks, and against a scripted coordinator, that a moving or
//! loading coordinator is found again and asked again until the request timeout while a
//! refusal (`GROUP_ID_NOT_FOUND`, `NON_EMPTY_GROUP`) comes back at once with its code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use strata_proto::api::v1 as wire;

use super::{commit_results, commit_topics, group_by_topic};
use crate::admin::{GroupDescription, GroupOffset, GroupState};
use crate::error::{Error, ErrorCode};
use crate::group_coordinator::{check_group_id, is_coordinator_retriable};

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

/// A group API that names itself coordinator and answers `DescribeGroups` with the
/// scripted per-group errors first, then the group; it counts `FindCoordinator` calls.
#[derive(Clone, Default)]
struct ScriptedCoordinator {
    state: std::sync::Arc<std::sync::Mutex<Script>>,
}

#[derive(Default)]
struct Script {
    address: String,
    describe_errors: std::collections::VecDeque<ErrorCode>,
    /// Answer every describe with this error.
    always: Option<ErrorCode>,
    find_coordinator_calls: usize,
    describe_calls: usize,
}

type Answer<T> = Result<tonic::Response<T>, tonic::Status>;

#[tonic::async_trait]
impl wire::group_api_server::GroupApi for ScriptedCoordinator {
    async fn find_coordinator(
        &self,
        _: tonic::Request<wire::FindCoordinatorRequest>,
    ) -> Answer<wire::FindCoordinatorResponse> {
        let mut script = self.state.lock().unwrap();
        script.find_coordinator_calls += 1;
        Ok(tonic::Response::new(wire::FindCoordinatorResponse {
            error: None,
            node_id: 1,
            address: script.address.clone(),
        }))
    }

    async fn describe_groups(
        &self,
        request: tonic::Request<wire::DescribeGroupsRequest>,
    ) -> Answer<wire::DescribeGroupsResponse> {
        let mut script = self.state.lock().unwrap();
        script.describe_calls += 1;
        let group_id = request.into_inner().group_ids.remove(0);
        let error = script.always.or_else(|| script.describe_errors.pop_front());
        Ok(tonic::Response::new(wire::DescribeGroupsResponse {
            groups: vec![wire::DescribedGroup {
                error: error.map(|code| wire::Error::new(code, "scripted")),
                group_id,
                state: "stable".into(),
                ..wire::DescribedGroup::default()
            }],
        }))
    }

    async fn consumer_group_heartbeat(
        &self,
        _: tonic::Request<wire::ConsumerGroupHeartbeatRequest>,
    ) -> Answer<wire::ConsumerGroupHeartbeatResponse> {
        Err(tonic::Status::unimplemented("scripted"))
    }

    async fn offset_commit(
        &self,
        _: tonic::Request<wire::OffsetCommitRequest>,
    ) -> Answer<wire::OffsetCommitResponse> {
        Ok(tonic::Response::new(wire::OffsetCommitResponse {
            error: Some(wire::Error::new(
                ErrorCode::NonEmptyGroup,
                "group g has 2 live members",
            )),
            topics: Vec::new(),
        }))
    }

    async fn offset_fetch(
        &self,
        _: tonic::Request<wire::OffsetFetchRequest>,
    ) -> Answer<wire::OffsetFetchResponse> {
        Err(tonic::Status::unimplemented("scripted"))
    }

    async fn list_groups(
        &self,
        _: tonic::Request<wire::ListGroupsRequest>,
    ) -> Answer<wire::ListGroupsResponse> {
        Err(tonic::Status::unimplemented("scripted"))
    }

    async fn delete_groups(
        &self,
        _: tonic::Request<wire::DeleteGroupsRequest>,
    ) -> Answer<wire::DeleteGroupsResponse> {
        Err(tonic::Status::unimplemented("scripted"))
    }
}

/// The scripted coordinator on a free port, and a client whose bootstrap list names the
/// in-process test broker (for metadata) and then the coordinator. The test broker has no
/// group API, so `FindCoordinator` moves on to the coordinator's address.
async fn scripted(
    script: Script,
    request_timeout: std::time::Duration,
) -> (
    ScriptedCoordinator,
    crate::test_broker::TestBroker,
    crate::Client,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let coordinator = ScriptedCoordinator::default();
    *coordinator.state.lock().unwrap() = Script {
        address: address.clone(),
        ..script
    };
    let service = wire::group_api_server::GroupApiServer::new(coordinator.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    let broker = crate::test_broker::TestBroker::start(&[]).await;
    let client = crate::Client::builder()
        .brokers([broker.address.clone(), address])
        .request_timeout(request_timeout)
        .build()
        .await
        .unwrap();
    (coordinator, broker, client)
}

#[tokio::test]
async fn a_moving_or_loading_coordinator_is_found_again_and_asked_again() {
    let script = Script {
        describe_errors: [
            ErrorCode::NotCoordinator,
            ErrorCode::CoordinatorLoadInProgress,
            ErrorCode::CoordinatorNotAvailable,
        ]
        .into(),
        ..Script::default()
    };
    let (coordinator, _broker, client) = scripted(script, std::time::Duration::from_secs(10)).await;
    let group = client.admin().describe_group("billing").await.unwrap();
    assert_eq!(group.group_id, "billing");
    assert_eq!(group.state, GroupState::Stable);
    let script = coordinator.state.lock().unwrap();
    assert_eq!(script.describe_calls, 4);
    assert_eq!(
        script.find_coordinator_calls, 4,
        "the coordinator is found anew before each attempt"
    );
}

#[tokio::test]
async fn retries_stop_at_the_request_timeout_with_the_last_error() {
    let script = Script {
        always: Some(ErrorCode::NotCoordinator),
        ..Script::default()
    };
    // Returning at all is the point: the loop ends once the request timeout has passed.
    // The budget leaves room for a second attempt even when the first one (two new
    // connections) is slow on a loaded machine: with 2 s it once had room for one only.
    let (coordinator, _broker, client) = scripted(script, std::time::Duration::from_secs(6)).await;
    let error = client.admin().describe_group("billing").await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::NotCoordinator), "{error}");
    assert!(coordinator.state.lock().unwrap().describe_calls >= 2);
}

#[tokio::test]
async fn a_refusal_is_not_retried_and_keeps_its_code() {
    let script = Script {
        describe_errors: [ErrorCode::GroupIdNotFound].into(),
        ..Script::default()
    };
    let (coordinator, _broker, client) = scripted(script, std::time::Duration::from_secs(10)).await;
    let admin = client.admin();
    let error = admin.describe_group("nobody").await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::GroupIdNotFound));
    assert_eq!(coordinator.state.lock().unwrap().describe_calls, 1);
    let error = admin
        .alter_group_offsets("g", [("orders", 0, 5)])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::NonEmptyGroup));
    assert!(!error.is_retriable());
    let results = admin.delete_groups(["", "x"]).await;
    assert_eq!(
        results[0].1.as_ref().unwrap_err().code(),
        Some(ErrorCode::InvalidGroupId)
    );
}
