//! The leader side of a replica fetch session against a one-node broker that is its own
//! partition's only replica: registration checks, reading to the log end, the long poll
//! woken by an append, divergence (KIP-320), fencing, and `OffsetForLeaderEpoch`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use strata_proto::api::v1::OffsetForLeaderEpochPartition;
use strata_proto::record::{BatchBuilder, Record};

use super::*;
use crate::node::test_node::node_with_topic;

type Answers = mpsc::Receiver<Result<ReplicaFetchResponse, Status>>;

fn batch(value: &'static [u8]) -> Bytes {
    let mut builder = BatchBuilder::default();
    builder.append(&Record::from_value(1_000, value)).unwrap();
    builder.build().unwrap()
}

async fn produce(node: &Arc<Node>, topic: &str, value: &'static [u8]) {
    let pending = node.produce(topic, 0, batch(value), 1 << 20).await.unwrap();
    pending.commit().await.unwrap();
}

fn position(topic: &str, fetch_offset: i64, last_fetched_epoch: i32) -> ReplicaFetchPartition {
    ReplicaFetchPartition {
        topic: topic.to_owned(),
        partition: 0,
        topic_id: Bytes::new(),
        fetch_offset,
        last_fetched_epoch,
        current_leader_epoch: -1,
        partition_max_bytes: 0,
    }
}

/// Opens a session as `replica_id` at `incarnation` with `partitions` and `grant`.
fn open(
    node: &Arc<Node>,
    incarnation: u64,
    partitions: Vec<ReplicaFetchPartition>,
    grant: u32,
) -> (
    mpsc::UnboundedSender<Result<ReplicaFetchRequest, Status>>,
    Answers,
) {
    let (follower, requests) = mpsc::unbounded_channel();
    follower
        .send(Ok(ReplicaFetchRequest {
            replica_id: 1,
            incarnation,
            max_wait_ms: 10_000,
            min_bytes: 1,
            max_bytes: 0,
            partitions,
            removed: Vec::new(),
            grant,
        }))
        .unwrap();
    let requests = tokio_stream::wrappers::UnboundedReceiverStream::new(requests);
    let (answers, received) = mpsc::channel(1);
    tokio::spawn(run_session(Arc::clone(node), requests, answers));
    (follower, received)
}

async fn next(received: &mut Answers) -> ReplicaFetchResponse {
    tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("an answer within 10 s")
        .expect("the session is open")
        .expect("an answer, not a status")
}

fn code(error: &Option<Error>) -> i32 {
    error
        .as_ref()
        .map_or(ErrorCode::None as i32, |error| error.code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_reads_to_the_log_end_and_waits_for_appends() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_topic(dir.path(), "orders").await;
    produce(&node, "orders", b"a").await;
    produce(&node, "orders", b"b").await;
    let incarnation = node.quorum().incarnation();

    let (follower, mut received) = open(&node, incarnation, vec![position("orders", 0, -1)], 1);
    let answer = next(&mut received).await;
    let [fetched] = &answer.partitions[..] else {
        panic!("one partition: {answer:?}")
    };
    assert_eq!(code(&fetched.error), ErrorCode::None as i32);
    assert_eq!((fetched.fetch_offset, fetched.high_watermark), (0, 2));
    let expected = node
        .partition("orders", 0)
        .unwrap()
        .log
        .read(Offset(0), 1 << 20, None)
        .unwrap()
        .batches;
    assert_eq!(fetched.records, expected, "both batches, verbatim");
    let handle = node.partition("orders", 0).unwrap();
    assert_eq!(
        handle.follower_fetch_offsets()[&BrokerId(1)].fetch_offset,
        Offset(0)
    );

    // Caught up: the next answer waits for an append.
    follower
        .send(Ok(ReplicaFetchRequest {
            partitions: vec![position("orders", 2, 0)],
            grant: 1,
            ..ReplicaFetchRequest::default()
        }))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(received.try_recv().is_err(), "nothing new yet");
    produce(&node, "orders", b"c").await;
    let answer = next(&mut received).await;
    assert_eq!(answer.partitions.len(), 1);
    assert_eq!(answer.partitions[0].fetch_offset, 2);
    assert!(!answer.partitions[0].records.is_empty());
    assert_eq!(
        handle.follower_fetch_offsets()[&BrokerId(1)].fetch_offset,
        Offset(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_incarnations_diverged_logs_and_old_epochs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_topic(dir.path(), "orders").await;
    produce(&node, "orders", b"a").await;
    let incarnation = node.quorum().incarnation();

    let (_follower, mut received) = open(&node, incarnation + 1, Vec::new(), 1);
    let answer = next(&mut received).await;
    assert_eq!(code(&answer.error), ErrorCode::StaleBrokerEpoch as i32);
    assert!(received.recv().await.is_none(), "the session ends");

    // The follower holds epoch 0 up to offset 5; this log ends epoch 0 at 1.
    let (_follower, mut received) = open(&node, incarnation, vec![position("orders", 5, 0)], 1);
    let answer = next(&mut received).await;
    let diverging = answer.partitions[0].diverging_epoch.expect("diverging");
    assert_eq!((diverging.epoch, diverging.end_offset), (0, 1));
    assert!(answer.partitions[0].records.is_empty());

    let fenced = ReplicaFetchPartition {
        current_leader_epoch: 7,
        ..position("orders", 0, -1)
    };
    let (_follower, mut received) = open(&node, incarnation, vec![fenced], 1);
    let answer = next(&mut received).await;
    assert_eq!(
        code(&answer.partitions[0].error),
        ErrorCode::UnknownLeaderEpoch as i32
    );

    let service = ReplicationService::new(Arc::clone(&node));
    let asked = |leader_epoch| OffsetForLeaderEpochPartition {
        topic: "orders".to_owned(),
        partition: 0,
        current_leader_epoch: 0,
        leader_epoch,
    };
    let answer = service
        .offset_for_leader_epoch(Request::new(OffsetForLeaderEpochRequest {
            replica_id: 1,
            partitions: vec![asked(0), asked(4)],
        }))
        .await
        .unwrap()
        .into_inner();
    let ends: Vec<(i32, i64)> = answer
        .partitions
        .iter()
        .map(|result| {
            let end = result.end.unwrap();
            (end.epoch, end.end_offset)
        })
        .collect();
    assert_eq!(ends, vec![(0, 1), (-1, -1)]);
}
