//! The partition task against in-process test brokers: what it sends where when the
//! leader moves while requests are outstanding.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

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
