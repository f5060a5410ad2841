//! The group coordinator of real brokers over raw gRPC (`GroupApi`):
//!
//! - committed offsets survive a restart of a one-node broker, and bad commits (beyond
//!   the high watermark, an empty group id, a forged member, an unknown partition) are
//!   refused with their codes and change nothing, as OffsetFetch shows; users cannot
//!   produce to `__consumer_offsets`;
//! - on three brokers with an RF-3 `__consumer_offsets` (30 partitions), commits are
//!   checked against high watermarks learned from other partition leaders, another
//!   broker answers NOT_COORDINATOR, and SIGKILLing the coordinator moves the group to
//!   another broker, which serves the committed offsets;
//! - with a live member (heartbeats): a forged member id, a commit for a partition it
//!   does not own, and an administrative commit (a seek) or a delete while it is live are
//!   refused and change nothing;
//! - a member survives a restart (its group's snapshot) and is expelled once its session
//!   lapses.
//!
//! Every wait is bounded (`common::WAIT` per call, a count of tries per loop); no
//! assertion is about how long anything took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::{
    bounded, code, connect, create_topic, produce, produce_ok, restart, start_broker, terminate,
    values_batch, Client,
};
use strata_proto::api::v1::group_api_client::GroupApiClient;
use strata_proto::api::v1::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, DeleteGroupsRequest,
    DescribeGroupsRequest, DescribedGroup, ErrorCode, FindCoordinatorRequest, GroupTopicPartitions,
    OffsetCommitPartition, OffsetCommitRequest, OffsetCommitResponse, OffsetCommitTopic,
    OffsetFetchRequest, TopicSpec,
};
use strata_tests::cluster::Cluster;
use strata_tests::cluster_views::{self, formed, partitions_until, start_three_voters};
use tonic::transport::Channel;

type Groups = GroupApiClient<Channel>;

const GROUP: &str = "billing";
const TOPIC: &str = "orders";

/// Codes a client answers by asking again (after finding the coordinator again).
fn retriable(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::CoordinatorLoadInProgress
            | ErrorCode::CoordinatorNotAvailable
            | ErrorCode::NotCoordinator
    )
}

async fn groups_at(address: &str) -> Groups {
    let channel = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20));
    for _ in 0..100 {
        if let Ok(channel) = channel.connect().await {
            return GroupApiClient::new(channel);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cannot connect to {address}");
}

/// FindCoordinator asked of `address` until it names a coordinator: its id and address.
async fn find_coordinator(address: &str, group: &str) -> (i32, String) {
    let mut groups = groups_at(address).await;
    for _ in 0..600 {
        let request = FindCoordinatorRequest {
            group_id: group.to_owned(),
        };
        match groups.find_coordinator(request).await {
            Ok(response) => {
                let response = response.into_inner();
                match code(&response.error) {
                    ErrorCode::None => return (response.node_id, response.address),
                    other if retriable(other) => {}
                    other => panic!("FindCoordinator: {other:?} {response:?}"),
                }
            }
            Err(status) => eprintln!("FindCoordinator failed at the transport: {status}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no coordinator for {group} within the bound");
}

fn commit_request(
    group: &str,
    member: &str,
    epoch: i32,
    topic: &str,
    partition: i32,
    offset: i64,
) -> OffsetCommitRequest {
    OffsetCommitRequest {
        group_id: group.to_owned(),
        member_id: member.to_owned(),
        member_epoch: epoch,
        topics: vec![OffsetCommitTopic {
            topic: topic.to_owned(),
            partitions: vec![OffsetCommitPartition {
                partition,
                offset,
                leader_epoch: -1,
                metadata: format!("at {offset}"),
            }],
        }],
    }
}

/// Sends `request` until its whole-request error is not retriable (load in progress).
async fn commit(groups: &mut Groups, request: OffsetCommitRequest) -> OffsetCommitResponse {
    for _ in 0..600 {
        let response = bounded("OffsetCommit", groups.offset_commit(request.clone()))
            .await
            .expect("OffsetCommit rpc")
            .into_inner();
        if !retriable(code(&response.error)) {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("OffsetCommit kept answering a retriable error");
}

/// The code of the one partition of a commit answered without a whole-request error.
fn partition_code(response: &OffsetCommitResponse) -> ErrorCode {
    assert_eq!(code(&response.error), ErrorCode::None, "{response:?}");
    let [topic] = response.topics.as_slice() else {
        panic!("one topic: {response:?}");
    };
    let [partition] = topic.partitions.as_slice() else {
        panic!("one partition: {response:?}");
    };
    code(&partition.error)
}

/// Every committed offset of `group`, retrying while the coordinator loads.
async fn committed(groups: &mut Groups, group: &str) -> BTreeMap<(String, i32), i64> {
    for _ in 0..600 {
        let request = OffsetFetchRequest {
            group_id: group.to_owned(),
            topics: Vec::new(),
        };
        let response = bounded("OffsetFetch", groups.offset_fetch(request))
            .await
            .expect("OffsetFetch rpc")
            .into_inner();
        match code(&response.error) {
            ErrorCode::None => {
                return response
                    .offsets
                    .into_iter()
                    .map(|offset| ((offset.topic, offset.partition), offset.offset))
                    .collect()
            }
            other if retriable(other) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("OffsetFetch: {other:?} {response:?}"),
        }
    }
    panic!("OffsetFetch kept answering a retriable error");
}

async fn describe_group(groups: &mut Groups, group: &str) -> DescribedGroup {
    let request = DescribeGroupsRequest {
        group_ids: vec![group.to_owned()],
    };
    let response = bounded("DescribeGroups", groups.describe_groups(request))
        .await
        .expect("DescribeGroups rpc")
        .into_inner();
    response.groups.into_iter().next().expect("one group")
}

/// What OffsetFetch answers for one committed partition.
fn one(topic: &str, partition: i32, offset: i64) -> BTreeMap<(String, i32), i64> {
    [((topic.to_owned(), partition), offset)]
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_survive_a_restart_and_bad_commits_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = start_broker(dir.path(), &[]);
    let mut client: Client = connect(&broker).await;
    create_topic(&mut client, TOPIC, 2, &[]).await;
    produce_ok(
        &mut client,
        TOPIC,
        0,
        values_batch(&["a", "b", "c", "d", "e"]),
    )
    .await;
    let address = broker.address().to_string();

    // An empty group id is refused, by FindCoordinator and by a commit.
    let mut any = groups_at(&address).await;
    let response = any
        .find_coordinator(FindCoordinatorRequest {
            group_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        code(&response.error),
        ErrorCode::InvalidGroupId,
        "{response:?}"
    );

    let (node_id, coordinator) = find_coordinator(&address, GROUP).await;
    assert_eq!(node_id, 1);
    let mut groups = groups_at(&coordinator).await;
    let response = commit(&mut groups, commit_request("", "", -1, TOPIC, 0, 1)).await;
    assert_eq!(
        code(&response.error),
        ErrorCode::InvalidGroupId,
        "{response:?}"
    );
    assert!(
        response.error.unwrap().message.contains("empty"),
        "the message says why"
    );

    // An administrative commit of a group without members.
    let response = commit(&mut groups, commit_request(GROUP, "", -1, TOPIC, 0, 3)).await;
    assert_eq!(partition_code(&response), ErrorCode::None, "{response:?}");
    let expected = one(TOPIC, 0, 3);
    assert_eq!(committed(&mut groups, GROUP).await, expected);

    // Beyond the log end (HW 5), an unknown partition, a forged member: refused.
    let response = commit(&mut groups, commit_request(GROUP, "", -1, TOPIC, 0, 6)).await;
    assert_eq!(partition_code(&response), ErrorCode::InvalidCommitOffset);
    let response = commit(&mut groups, commit_request(GROUP, "", -1, TOPIC, 7, 0)).await;
    assert_eq!(
        partition_code(&response),
        ErrorCode::UnknownTopicOrPartition
    );
    let forged = commit_request(GROUP, "forged-member", 4, TOPIC, 0, 1);
    let response = commit(&mut groups, forged).await;
    assert_eq!(
        code(&response.error),
        ErrorCode::UnknownMemberId,
        "{response:?}"
    );
    assert_eq!(
        committed(&mut groups, GROUP).await,
        expected,
        "nothing changed"
    );

    // Users may not write the internal topic.
    let refused = produce(&mut client, "__consumer_offsets", 0, values_batch(&["x"])).await;
    assert_eq!(code(&refused.error), ErrorCode::InvalidTopic, "{refused:?}");

    // Describe: committed 3, HW 5, lag 2.
    let described = describe_group(&mut groups, GROUP).await;
    assert_eq!(code(&described.error), ErrorCode::None, "{described:?}");
    let [partition] = described.offsets.as_slice() else {
        panic!("one partition: {described:?}");
    };
    assert_eq!(
        (
            partition.committed_offset,
            partition.high_watermark,
            partition.lag
        ),
        (3, 5, 2)
    );

    // Restart: the new coordinator reads __consumer_offsets again.
    terminate(&mut broker);
    restart(&mut broker);
    let (_, coordinator) = find_coordinator(&address, GROUP).await;
    let mut groups = groups_at(&coordinator).await;
    assert_eq!(committed(&mut groups, GROUP).await, expected);
    let response = commit(&mut groups, commit_request(GROUP, "", -1, TOPIC, 0, 5)).await;
    assert_eq!(partition_code(&response), ErrorCode::None, "{response:?}");

    // Deleted, then gone.
    let request = DeleteGroupsRequest {
        group_ids: vec![GROUP.to_owned(), "never-seen".to_owned()],
    };
    let response = groups.delete_groups(request).await.unwrap().into_inner();
    let codes: Vec<ErrorCode> = response.results.iter().map(|r| code(&r.error)).collect();
    assert_eq!(
        codes,
        [ErrorCode::None, ErrorCode::GroupIdNotFound],
        "{response:?}"
    );
    assert!(committed(&mut groups, GROUP).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_coordinator_serves_the_offsets_after_the_old_one_is_sigkilled() {
    let mut cluster: Cluster = start_three_voters();
    formed(&cluster).await;
    let spec = TopicSpec {
        name: TOPIC.to_owned(),
        partitions: 3,
        replication_factor: 3,
        configs: HashMap::new(),
    };
    cluster_views::create_topic(&cluster, 1, spec).await;
    let partitions = partitions_until(&cluster, 1, TOPIC, "leaders and full ISRs", |all| {
        all.len() == 3 && all.iter().all(|p| p.leader >= 1 && p.isr.len() == 3)
    })
    .await;
    // Partition p gets p + 2 records, from its own leader: the three leaders are spread
    // over the brokers, so the coordinator learns most high watermarks from another one.
    for partition in &partitions {
        let leader = u8::try_from(partition.leader).unwrap();
        let mut client = cluster_views::connect(&cluster, leader).await.unwrap();
        let values: Vec<String> = (0..partition.partition + 2)
            .map(|i| i.to_string())
            .collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        produce_ok(
            &mut client,
            TOPIC,
            partition.partition,
            values_batch(&values),
        )
        .await;
    }

    let (coordinator_id, coordinator) =
        find_coordinator(&cluster.address(1).to_string(), GROUP).await;
    assert!(
        partitions.iter().any(|p| p.leader != coordinator_id),
        "some partition is led by another broker than the coordinator: {partitions:?}"
    );
    let mut groups = groups_at(&coordinator).await;
    let mut expected = BTreeMap::new();
    for partition in 0..3 {
        let high_watermark = i64::from(partition) + 2;
        let beyond = commit_request(GROUP, "", -1, TOPIC, partition, high_watermark + 1);
        let response = commit(&mut groups, beyond).await;
        assert_eq!(partition_code(&response), ErrorCode::InvalidCommitOffset);
        let at_end = commit_request(GROUP, "", -1, TOPIC, partition, high_watermark);
        let response = commit(&mut groups, at_end).await;
        assert_eq!(partition_code(&response), ErrorCode::None, "{response:?}");
        expected.insert((TOPIC.to_owned(), partition), high_watermark);
    }
    assert_eq!(committed(&mut groups, GROUP).await, expected);
    // min(50, 10 x 3 brokers) partitions, each on all three brokers.
    partitions_until(
        &cluster,
        1,
        "__consumer_offsets",
        "30 partitions of three replicas",
        |all| all.len() == 30 && all.iter().all(|partition| partition.replicas.len() == 3),
    )
    .await;

    // Any other broker refuses the group's calls: NOT_COORDINATOR, saying why.
    let other = cluster
        .nodes()
        .into_iter()
        .find(|node| i32::from(*node) != coordinator_id)
        .unwrap();
    let mut elsewhere = groups_at(&cluster.address(other).to_string()).await;
    let request = OffsetFetchRequest {
        group_id: GROUP.to_owned(),
        topics: Vec::new(),
    };
    let refused = elsewhere.offset_fetch(request).await.unwrap().into_inner();
    assert_eq!(
        code(&refused.error),
        ErrorCode::NotCoordinator,
        "{refused:?}"
    );
    assert!(refused.offsets.is_empty());

    let killed = u8::try_from(coordinator_id).unwrap();
    cluster.kill(killed).unwrap();
    let survivor = cluster
        .nodes()
        .into_iter()
        .find(|node| *node != killed)
        .unwrap();
    // Until the controller fences the dead broker, FindCoordinator may still name it.
    let mut served = None;
    for _ in 0..300 {
        let (id, address) = find_coordinator(&cluster.address(survivor).to_string(), GROUP).await;
        if id != coordinator_id {
            let mut groups = groups_at(&address).await;
            served = Some(committed(&mut groups, GROUP).await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        served.expect("another broker coordinates the group"),
        expected
    );
}

async fn heartbeat(
    groups: &mut Groups,
    request: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    for _ in 0..600 {
        let response = bounded(
            "Heartbeat",
            groups.consumer_group_heartbeat(request.clone()),
        )
        .await
        .expect("heartbeat rpc")
        .into_inner();
        if !retriable(code(&response.error)) {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the heartbeat kept answering a retriable error");
}

fn owned(assignment: &[GroupTopicPartitions]) -> Vec<(String, i32)> {
    let mut owned: Vec<(String, i32)> = assignment
        .iter()
        .flat_map(|topic| topic.partitions.iter().map(|p| (topic.topic.clone(), *p)))
        .collect();
    owned.sort();
    owned
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_member_is_protected_from_forged_and_outside_changes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path(), &[]);
    let mut client: Client = connect(&broker).await;
    create_topic(&mut client, TOPIC, 2, &[]).await;
    create_topic(&mut client, "other", 1, &[]).await;
    produce_ok(&mut client, TOPIC, 0, values_batch(&["a", "b", "c"])).await;
    produce_ok(&mut client, "other", 0, values_batch(&["a", "b", "c"])).await;
    let (_, coordinator) = find_coordinator(&broker.address().to_string(), GROUP).await;
    let mut groups = groups_at(&coordinator).await;

    // Join, then heartbeat (reporting what it owns) until it owns both partitions.
    let join = ConsumerGroupHeartbeatRequest {
        group_id: GROUP.to_owned(),
        member_epoch: 0,
        has_subscription: true,
        subscribed_topic_names: vec![TOPIC.to_owned()],
        has_owned: true,
        client_id: "test".to_owned(),
        ..ConsumerGroupHeartbeatRequest::default()
    };
    let mut answer = heartbeat(&mut groups, join).await;
    assert_eq!(code(&answer.error), ErrorCode::None, "{answer:?}");
    let member_id = answer.member_id.clone();
    assert!(!member_id.is_empty());
    let mut owns = owned(&answer.assignment);
    for _ in 0..100 {
        if owns.len() == 2 {
            break;
        }
        let request = ConsumerGroupHeartbeatRequest {
            group_id: GROUP.to_owned(),
            member_id: member_id.clone(),
            member_epoch: answer.member_epoch,
            has_owned: true,
            owned_partitions: vec![GroupTopicPartitions {
                topic: TOPIC.to_owned(),
                partitions: owns.iter().map(|(_, p)| *p).collect(),
            }],
            ..ConsumerGroupHeartbeatRequest::default()
        };
        answer = heartbeat(&mut groups, request).await;
        assert_eq!(code(&answer.error), ErrorCode::None, "{answer:?}");
        if answer.has_assignment {
            owns = owned(&answer.assignment);
        }
    }
    assert_eq!(owns, [(TOPIC.to_owned(), 0), (TOPIC.to_owned(), 1)]);
    let epoch = answer.member_epoch;

    // The member commits what it owns.
    let response = commit(
        &mut groups,
        commit_request(GROUP, &member_id, epoch, TOPIC, 0, 2),
    )
    .await;
    assert_eq!(partition_code(&response), ErrorCode::None, "{response:?}");
    let before = committed(&mut groups, GROUP).await;

    // A heartbeat with a forged member id.
    let forged = ConsumerGroupHeartbeatRequest {
        group_id: GROUP.to_owned(),
        member_id: "forged".to_owned(),
        member_epoch: epoch,
        ..ConsumerGroupHeartbeatRequest::default()
    };
    let refused = heartbeat(&mut groups, forged).await;
    assert_eq!(
        code(&refused.error),
        ErrorCode::UnknownMemberId,
        "{refused:?}"
    );
    // A commit for a partition it does not own.
    let response = commit(
        &mut groups,
        commit_request(GROUP, &member_id, epoch, "other", 0, 1),
    )
    .await;
    assert_eq!(partition_code(&response), ErrorCode::PartitionNotAssigned);
    // A seek (administrative commit) while it is live.
    let response = commit(&mut groups, commit_request(GROUP, "", -1, TOPIC, 0, 0)).await;
    assert_eq!(
        code(&response.error),
        ErrorCode::NonEmptyGroup,
        "{response:?}"
    );
    // A delete while it is live.
    let request = DeleteGroupsRequest {
        group_ids: vec![GROUP.to_owned()],
    };
    let response = groups.delete_groups(request).await.unwrap().into_inner();
    assert_eq!(code(&response.results[0].error), ErrorCode::NonEmptyGroup);

    assert_eq!(
        committed(&mut groups, GROUP).await,
        before,
        "nothing changed"
    );
    let described = describe_group(&mut groups, GROUP).await;
    assert_eq!(described.members.len(), 1, "{described:?}");
    assert_eq!(described.members[0].member_id, member_id);
    // The address the heartbeats came from: this test's client, on loopback.
    assert!(
        described.members[0].client_host.starts_with("127.0.0.1:"),
        "{described:?}"
    );

    // Once it leaves, a seek is accepted.
    let leave = ConsumerGroupHeartbeatRequest {
        group_id: GROUP.to_owned(),
        member_id: member_id.clone(),
        member_epoch: -1,
        ..ConsumerGroupHeartbeatRequest::default()
    };
    let left = heartbeat(&mut groups, leave).await;
    assert_eq!(code(&left.error), ErrorCode::None, "{left:?}");
    let response = commit(&mut groups, commit_request(GROUP, "", -1, TOPIC, 0, 0)).await;
    assert_eq!(partition_code(&response), ErrorCode::None, "{response:?}");
}

/// Describes `group` until `ready` holds (bounded), retrying while the coordinator loads.
async fn describe_until(
    groups: &mut Groups,
    group: &str,
    ready: impl Fn(&DescribedGroup) -> bool,
) -> DescribedGroup {
    let mut last = None;
    for _ in 0..600 {
        let described = describe_group(groups, group).await;
        let error = code(&described.error);
        if error == ErrorCode::None && ready(&described) {
            return described;
        }
        assert!(
            error == ErrorCode::None || retriable(error),
            "{described:?}"
        );
        last = Some(described);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the group never got there: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_survive_a_restart_and_are_expelled_once_their_session_lapses() {
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--group-session-timeout-ms",
        "1500",
        "--group-heartbeat-interval-ms",
        "500",
    ];
    let mut broker = start_broker(dir.path(), &flags);
    let mut client: Client = connect(&broker).await;
    create_topic(&mut client, TOPIC, 2, &[]).await;
    let address = broker.address().to_string();
    let (_, coordinator) = find_coordinator(&address, GROUP).await;
    let mut groups = groups_at(&coordinator).await;
    let join = ConsumerGroupHeartbeatRequest {
        group_id: GROUP.to_owned(),
        member_epoch: 0,
        has_subscription: true,
        subscribed_topic_names: vec![TOPIC.to_owned()],
        has_owned: true,
        ..ConsumerGroupHeartbeatRequest::default()
    };
    let answer = heartbeat(&mut groups, join).await;
    assert_eq!(code(&answer.error), ErrorCode::None, "{answer:?}");
    assert_eq!(
        (answer.session_timeout_ms, answer.heartbeat_interval_ms),
        (1500, 500)
    );

    // The group's snapshot was written: after a restart the member is still there.
    terminate(&mut broker);
    restart(&mut broker);
    let (_, coordinator) = find_coordinator(&address, GROUP).await;
    let mut groups = groups_at(&coordinator).await;
    let described = describe_until(&mut groups, GROUP, |group| !group.members.is_empty()).await;
    assert_eq!(described.members[0].member_id, answer.member_id);
    assert!(described.group_epoch >= 1, "{described:?}");

    // No heartbeats: the member is expelled once its session lapses, and a seek is
    // then accepted.
    let expelled = describe_until(&mut groups, GROUP, |group| group.members.is_empty()).await;
    assert_eq!(expelled.state, "empty", "{expelled:?}");
    let response = commit(&mut groups, commit_request(GROUP, "", -1, TOPIC, 0, 0)).await;
    assert_eq!(partition_code(&response), ErrorCode::None, "{response:?}");
}
