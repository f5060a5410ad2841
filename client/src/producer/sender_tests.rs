//! The partition task against in-process test brokers: what it sends where when the
//! leader moves while requests are outstanding.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use strata_proto::api::v1 as wire;

use crate::test_broker::{Fault, TestBroker};
use crate::{Client, Record};

/// The longest any step here may take; only a stuck producer reaches it.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// A batch sealed after the leader moved, while an older one was still outstanding on the
/// old leader, must not overtake it: the older one is resent to the new leader first. (It
/// once went first, with the older batch left unsent behind it: the new leader refused it
/// for the sequence gap, and a debug build panicked on two streams outstanding.)
#[tokio::test]
async fn a_batch_sealed_after_the_leader_moved_leaves_after_the_outstanding_ones() {
    let old_leader = TestBroker::start(&[("moves", 1)]).await;
    let new_leader = TestBroker::start(&[("moves", 1)]).await;
    let client = Client::builder()
        .brokers([old_leader.address.as_str()])
        .request_timeout(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let producer = client.producer().linger(Duration::ZERO).build().unwrap();
    // The old leader appends the first batch and never answers it.
    old_leader.inject(&[Fault::Silence]);
    let first = producer
        .enqueue(Record::to("moves").value("first"))
        .unwrap();
    tokio::time::timeout(STEP_TIMEOUT, async {
        while old_leader.state.lock().unwrap().produce_requests_received == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the first batch never reached the old leader");

    TestBroker::move_leadership(&old_leader, &new_leader);
    client
        .refresh_metadata(&["moves".to_owned()])
        .await
        .unwrap();
    let second = producer
        .enqueue(Record::to("moves").value("second"))
        .unwrap();

    let first = tokio::time::timeout(STEP_TIMEOUT, first)
        .await
        .expect("the first record was never answered")
        .unwrap();
    let second = tokio::time::timeout(STEP_TIMEOUT, second)
        .await
        .expect("the second record was never answered")
        .unwrap();
    assert_eq!((first.offset, second.offset), (0, 1));
    assert_eq!(new_leader.values("moves", 0), ["first", "second"]);
    producer.close().await.unwrap();
}

/// A produce stream that the broker ends with a status that is not retriable, after it
/// appended the batch outstanding on it: that batch may have been appended (here it was),
/// so it is resent with its sequence numbers and answered with its offset. It was once
/// failed as "not written" and the next batch took its sequence numbers: the broker then
/// answered that one as a duplicate of the first, and acknowledged it at the first one's
/// offset without writing it.
#[tokio::test]
async fn a_stream_ended_by_a_final_status_leaves_its_requests_in_doubt() {
    let broker = TestBroker::start(&[("doubt", 1)]).await;
    let client = client(&broker).await;
    let producer = client.producer().linger(Duration::ZERO).build().unwrap();
    broker.inject(&[Fault::KillStream(tonic::Code::InvalidArgument)]);
    let first = producer
        .enqueue(Record::to("doubt").value("first"))
        .unwrap();
    let first = tokio::time::timeout(STEP_TIMEOUT, first)
        .await
        .expect("the first record was never answered")
        .expect("the first record was appended; its send must not fail");
    let second = producer
        .enqueue(Record::to("doubt").value("second"))
        .unwrap();
    let second = tokio::time::timeout(STEP_TIMEOUT, second)
        .await
        .expect("the second record was never answered")
        .unwrap();
    assert_eq!((first.offset, second.offset), (0, 1));
    assert_eq!(broker.values("doubt", 0), ["first", "second"]);
    producer.close().await.unwrap();
}

/// Two batches in flight on one stream; the broker refuses the first with a retriable
/// error (its lease lapsed) and checks the second, which it must then refuse as
/// `OUT_OF_ORDER_SEQUENCE` for the gap, and the second's answer arrives first. That
/// refusal is a consequence of the first one's, not a lost write: both are resent, in
/// order. (A fault-matrix run, row 2, once stopped a producer on it as fatal.)
#[tokio::test]
async fn a_sequence_gap_behind_an_unanswered_batch_is_retried_not_fatal() {
    let broker = TestBroker::start(&[("gap", 1)]).await;
    let client = client(&broker).await;
    let producer = client.producer().linger(Duration::ZERO).build().unwrap();
    // Both batches reach the broker before it processes either.
    broker.pause(true);
    broker.inject(&[Fault::AnswerLate(wire::ErrorCode::NotLeader)]);
    let first = producer.enqueue(Record::to("gap").value("first")).unwrap();
    received(&broker, 1).await;
    let second = producer.enqueue(Record::to("gap").value("second")).unwrap();
    received(&broker, 2).await;
    broker.pause(false);

    let first = tokio::time::timeout(STEP_TIMEOUT, first)
        .await
        .expect("the first record was never answered")
        .expect("the first batch was refused as retriable; its resend must succeed");
    let second = tokio::time::timeout(STEP_TIMEOUT, second)
        .await
        .expect("the second record was never answered")
        .expect("the second batch was refused only for the first one's gap");
    assert_eq!((first.offset, second.offset), (0, 1));
    assert_eq!(broker.values("gap", 0), ["first", "second"]);
    producer.close().await.unwrap();
}

/// Waits (bounded) until the broker has read `count` produce requests.
async fn received(broker: &TestBroker, count: usize) {
    tokio::time::timeout(STEP_TIMEOUT, async {
        while broker.state.lock().unwrap().produce_requests_received < count {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the broker never read {count} produce requests"));
}

/// The broker appends a batch and its answer never comes, while the batches after it are
/// answered. The broker remembers a producer's last 5 batches only, so no more than 4
/// may be appended after one still unanswered: its resend must still be recognised as
/// the duplicate it is. (A fault-matrix run, row 2 chasing, once had a batch resent after
/// 7 later ones were appended; the broker refused it, `expected sequence 717, got 709`,
/// and the producer stopped.)
#[tokio::test]
async fn no_more_than_the_window_is_appended_past_an_unanswered_batch() {
    let broker = TestBroker::start(&[("window", 1)]).await;
    let client = client(&broker).await;
    let producer = client
        .producer()
        .linger(Duration::ZERO)
        .request_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    broker.inject(&[Fault::Silence]);
    let first = producer
        .enqueue(Record::to("window").value("first"))
        .unwrap();
    received(&broker, 1).await;
    let mut later = Vec::new();
    for number in 0..8 {
        let value = format!("later-{number}");
        let sent = tokio::time::timeout(
            STEP_TIMEOUT,
            producer.send(Record::to("window").value(value)),
        )
        .await
        .expect("a later record was never answered")
        .expect("a later record failed");
        later.push(sent.offset);
    }
    let first = tokio::time::timeout(STEP_TIMEOUT, first)
        .await
        .expect("the first record was never answered")
        .expect("the first batch was appended; its resend must be answered as a duplicate");
    assert_eq!(first.offset, 0);
    assert_eq!(later, (1..=8).collect::<Vec<i64>>());
    let stored = broker.values("window", 0);
    assert_eq!(stored.len(), 9, "{stored:?}");
    assert!(!producer.is_fatal());
    producer.close().await.unwrap();
}

/// A client that bootstraps from `broker`.
async fn client(broker: &TestBroker) -> Client {
    Client::builder()
        .brokers([broker.address.as_str()])
        .build()
        .await
        .unwrap()
}
