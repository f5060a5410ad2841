//! The hand-off of failed records against a real `strata-broker`, for `Stream` users
//! calling `Consumer::fail` themselves: a hand-off that cannot be acknowledged (its
//! dead-letter topic was deleted) holds the partition at the failed record (nothing
//! after it is yielded, nothing at or after it committed) until the forward gets through
//! once the topic is back; and `Ordering::BlockPartition` retries a record in place,
//! keeping the partition's order, without retry topics.
//!
//! Every wait is bounded; the test checks what was yielded, forwarded and committed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group_client;

use std::time::Duration;

use group_client::{connect, create_topic, BROKER_ARGS, WAIT};
use strata_client::retry_topics::attempts_made;
use strata_client::{
    Client, CommitMode, ConsumedRecord, Consumer, HandlerError, Handoff, NewTopic, Offset, Record,
    RetryOrdering, RetryPolicy,
};
use strata_tests::broker_process::BrokerProcess;
use tokio_stream::StreamExt;

async fn next(consumer: &mut Consumer) -> ConsumedRecord {
    tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("no record came")
        .unwrap()
        .unwrap()
}

async fn produce(client: &Client, topic: &str, values: &[&str]) {
    let producer = client.producer().build().unwrap();
    for value in values {
        producer
            .send(
                Record::to(topic)
                    .partition(0)
                    .key(value.to_string())
                    .value(value.to_string()),
            )
            .await
            .unwrap();
    }
    producer.close().await.unwrap();
}

async fn committed(client: &Client, group: &str, topic: &str) -> Option<i64> {
    let offsets = client.admin().committed_offsets(group, None).await.unwrap();
    offsets
        .iter()
        .find(|entry| entry.topic == topic && entry.partition == 0)
        .and_then(|entry| entry.offset)
}

fn value(record: &ConsumedRecord) -> &str {
    std::str::from_utf8(record.value.as_deref().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_hand_off_holds_the_partition_until_the_forward_gets_through() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &BROKER_ARGS).unwrap();
    let client = connect(&broker).await;
    create_topic(&client, "events", 1).await;
    produce(&client, "events", &["e0", "e1", "e2"]).await;
    let mut consumer = client
        .consumer()
        .topics(["events"])
        .group("audit")
        .start(Offset::Earliest)
        .commit(CommitMode::Manual)
        .retry(
            RetryPolicy::default()
                .max_attempts(1)
                .handoff_timeout(Duration::from_secs(2)),
        )
        .build()
        .await
        .unwrap();
    // The DLT goes away after `build` created it: the hand-off cannot succeed.
    client
        .admin()
        .delete_topic("events.audit.dlt")
        .await
        .unwrap();

    let first = next(&mut consumer).await;
    assert_eq!(value(&first), "e0");
    let failing = next(&mut consumer).await;
    assert_eq!(value(&failing), "e1");
    let refused = consumer
        .fail(&failing, HandlerError::msg("broken"))
        .await
        .expect_err("the DLT is gone: the hand-off cannot be acknowledged");
    assert_eq!(
        refused.code_name(),
        "UNKNOWN_TOPIC_OR_PARTITION",
        "{refused}"
    );
    // Held: the position is back at the failed record and a commit stops there.
    assert_eq!(consumer.position("events", 0), Some(1));
    consumer.commit().await.unwrap();
    assert_eq!(committed(&client, "audit", "events").await, Some(1));

    // The topic comes back (as the client creates it): the background resend gets
    // through, and the partition goes on after the failed record, not at it.
    let dlt = NewTopic::new("events.audit.dlt")
        .partitions(1)
        .config("strata.retry.source-topic", "events")
        .config("strata.retry.group", "audit")
        .config("strata.retry.kind", "dlt")
        .config("strata.retry.level", "0");
    client.admin().create_topic(dlt).await.unwrap();
    let after = next(&mut consumer).await;
    assert_eq!(
        value(&after),
        "e2",
        "the failed record is not yielded again"
    );
    assert_eq!(after.offset, 2);
    consumer.commit().await.unwrap();
    assert_eq!(committed(&client, "audit", "events").await, Some(3));
    consumer.close().await.unwrap();

    let mut dead = client
        .consumer()
        .assign([("events.audit.dlt", 0)])
        .start(Offset::Earliest)
        .build()
        .await
        .unwrap();
    let record = next(&mut dead).await;
    assert_eq!(value(&record), "e1");
    assert_eq!(attempts_made(&record), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn block_partition_retries_in_place_and_keeps_the_order() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &BROKER_ARGS).unwrap();
    let client = connect(&broker).await;
    create_topic(&client, "ledger", 1).await;
    produce(&client, "ledger", &["twice", "after", "never", "last"]).await;
    let policy = RetryPolicy::default()
        .ordering(RetryOrdering::BlockPartition)
        .backoff(Duration::from_millis(100), 2.0, Duration::from_secs(1));
    let mut consumer = client
        .consumer()
        .topics(["ledger"])
        .group("books")
        .start(Offset::Earliest)
        .commit(CommitMode::Manual)
        .retry(policy)
        .build()
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut handoffs = Vec::new();
    while seen.last().map(String::as_str) != Some("last") {
        let record = next(&mut consumer).await;
        let name = value(&record).to_owned();
        let failures_before = seen.iter().filter(|seen| **seen == name).count();
        seen.push(name.clone());
        let fails = match name.as_str() {
            "twice" => failures_before < 2,
            "never" => true,
            _ => false,
        };
        if fails {
            handoffs.push(
                consumer
                    .fail(&record, HandlerError::msg("no"))
                    .await
                    .unwrap(),
            );
        }
    }
    assert_eq!(
        seen,
        ["twice", "twice", "twice", "after", "never", "never", "never", "last"],
        "each record is retried in place before the next one is read"
    );
    assert!(
        matches!(
            handoffs.as_slice(),
            [
                Handoff::RetryInPlace { attempt: 1, .. },
                Handoff::RetryInPlace { attempt: 2, .. },
                Handoff::RetryInPlace { attempt: 1, .. },
                Handoff::RetryInPlace { attempt: 2, .. },
                Handoff::DeadLetter { attempt: 3, .. },
            ]
        ),
        "{handoffs:?}"
    );
    consumer.commit().await.unwrap();
    assert_eq!(committed(&client, "books", "ledger").await, Some(4));
    consumer.close().await.unwrap();
    let topics: Vec<String> = client
        .admin()
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|topic| topic.name)
        .filter(|name| name.starts_with("ledger."))
        .collect();
    assert_eq!(topics, ["ledger.books.dlt"], "no retry topics in place");
}
