//! Delayed delivery against a real `strata-broker` (`docs/DELAYED_DELIVERY.md`):
//!
//! - records sent with `deliver_after(2s)` to a topic with `delivery_delay_enabled=true`
//!   are never yielded to a group consumer before their due time (each record's
//!   consumption time is compared with the due time in its header: a record consumed
//!   early is the failure); records without a due time are delivered too;
//! - a partition that becomes due while the fetch loop waits on a 30 s long poll for the
//!   consumer's other topic is read at its due time, not when the long poll ends;
//! - bad due times get a typed error at `send` and write nothing: a topic without the
//!   feature, a due time beyond the topic's maximum ahead or behind.
//!
//! Waits are bounded; what decides is the order of clock readings, never a duration,
//! except in the long-poll test, whose bound (15 s) is half the long poll it must beat.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group_client;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use group_client::{connect, BROKER_ARGS, WAIT};
use strata_client::delayed_delivery::{deliver_at_ms, DELIVER_AT_MS};
use strata_client::{
    Client, ConsumedRecord, Consumer, DeliveryTimeError, Error, NewTopic, Offset, OffsetSpec,
    Record,
};
use strata_tests::broker_process::BrokerProcess;
use tokio_stream::StreamExt;

const PARTITIONS: i32 = 3;
const DELAYED: usize = 60;
/// Every sixth delayed record is followed by one without a due time.
const PLAIN_EVERY: usize = 6;
const PLAIN: usize = DELAYED / PLAIN_EVERY;

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

async fn delayed_topic(client: &Client, name: &str, max_ms: &str) {
    client
        .admin()
        .create_topic(
            NewTopic::new(name)
                .partitions(PARTITIONS)
                .config("delivery.delay.enabled", "true")
                .config("delivery.delay.max.ms", max_ms),
        )
        .await
        .unwrap();
}

async fn next(consumer: &mut Consumer) -> ConsumedRecord {
    tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("consumer stalled")
        .expect("stream ended")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delayed_records_are_never_consumed_before_their_due_time() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &BROKER_ARGS).unwrap();
    let client = connect(&broker).await;
    delayed_topic(&client, "reminders", "60000").await;
    let mut consumer = client
        .consumer()
        .topics(["reminders"])
        .group("notifier")
        .start(Offset::Earliest)
        .build()
        .await
        .unwrap();
    let producer = client.producer().build().unwrap();
    let mut sends = Vec::new();
    for index in 0..DELAYED {
        let record = Record::to("reminders")
            .key(format!("k{index}"))
            .value(format!("delayed-{index}"))
            .deliver_after(Duration::from_secs(2));
        sends.push(producer.enqueue(record).unwrap());
        if index % PLAIN_EVERY == 0 {
            let record = Record::to("reminders")
                .key(format!("k{index}"))
                .value(format!("plain-{index}"));
            sends.push(producer.enqueue(record).unwrap());
        }
    }
    for send in sends {
        send.await.unwrap();
    }
    let mut consumed: BTreeMap<String, (i64, Option<i64>)> = BTreeMap::new();
    while consumed.len() < DELAYED + PLAIN {
        let record = next(&mut consumer).await;
        let consumed_ms = now_ms();
        let value = String::from_utf8(record.value.clone().unwrap().to_vec()).unwrap();
        let due_ms = deliver_at_ms(&record);
        assert_eq!(due_ms.is_some(), value.starts_with("delayed-"), "{value}");
        let due_headers = record
            .headers
            .iter()
            .filter(|(key, _)| key == DELIVER_AT_MS)
            .count();
        assert_eq!(due_headers, usize::from(due_ms.is_some()), "{value}");
        if let Some(due_ms) = due_ms {
            assert!(
                consumed_ms >= due_ms,
                "{value} consumed at {consumed_ms}, {} ms before its due time {due_ms}",
                due_ms - consumed_ms
            );
        }
        assert!(
            consumed
                .insert(value.clone(), (consumed_ms, due_ms))
                .is_none(),
            "{value} twice"
        );
    }
    let lateness_ms: Vec<i64> = consumed
        .values()
        .filter_map(|(at, due)| due.map(|due| at - due))
        .collect();
    eprintln!(
        "lateness of {} delayed records: min {} ms, max {} ms",
        lateness_ms.len(),
        lateness_ms.iter().min().unwrap(),
        lateness_ms.iter().max().unwrap()
    );
    consumer.close().await.unwrap();
    producer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_due_partition_does_not_wait_for_a_long_poll_on_another_topic() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &BROKER_ARGS).unwrap();
    let client = connect(&broker).await;
    delayed_topic(&client, "later", "60000").await;
    client
        .admin()
        .create_topic(NewTopic::new("idle").partitions(1))
        .await
        .unwrap();
    let producer = client.producer().build().unwrap();
    producer
        .send(
            Record::to("later")
                .value("soon")
                .partition(0)
                .deliver_after(Duration::from_secs(1)),
        )
        .await
        .unwrap();
    // The broker's longest long poll: once `later` is deferred, the loop waits on `idle`.
    let mut consumer = client
        .consumer()
        .topics(["later", "idle"])
        .start(Offset::Earliest)
        .max_wait(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let record = next(&mut consumer).await;
    let consumed_ms = now_ms();
    let due_ms = deliver_at_ms(&record).unwrap();
    assert!(
        consumed_ms >= due_ms,
        "consumed {} ms early",
        due_ms - consumed_ms
    );
    assert!(
        consumed_ms - due_ms < 15_000,
        "consumed {} ms after its due time: it waited for the long poll on `idle`",
        consumed_ms - due_ms
    );
    producer.close().await.unwrap();
}

async fn end_offsets(client: &Client, topic: &str) -> Vec<i64> {
    let mut ends = Vec::new();
    for partition in 0..PARTITIONS {
        let (end, _) = client
            .admin()
            .list_offsets(topic, partition, OffsetSpec::Latest)
            .await
            .unwrap();
        ends.push(end);
    }
    ends
}

fn refusal(error: &Error) -> &DeliveryTimeError {
    match error {
        Error::DeliveryTime(refusal) => refusal,
        other => panic!("expected a DeliveryTime error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_due_times_are_refused_at_send_and_write_nothing() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &[]).unwrap();
    let client = connect(&broker).await;
    delayed_topic(&client, "delayed", "60000").await;
    client
        .admin()
        .create_topic(NewTopic::new("plain").partitions(PARTITIONS))
        .await
        .unwrap();
    let producer = client.producer().build().unwrap();

    let error = producer
        .send(
            Record::to("plain")
                .value("x")
                .deliver_after(Duration::from_secs(1)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refusal(&error.error), DeliveryTimeError::NotEnabled { topic } if topic == "plain")
    );
    assert_eq!(error.error.code_name(), "INVALID_DELIVERY_TIME");
    assert_eq!(
        error.record.value.as_deref(),
        Some(&b"x"[..]),
        "the record comes back"
    );

    let too_far = producer
        .send(
            Record::to("delayed")
                .value("x")
                .deliver_after(Duration::from_secs(61)),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        refusal(&too_far.error),
        DeliveryTimeError::TooFarAhead { max_ms: 60_000, .. }
    ));
    let past = producer
        .send(
            Record::to("delayed")
                .value("x")
                .deliver_at_ms(now_ms() - 61_000),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        refusal(&past.error),
        DeliveryTimeError::TooFarInPast { .. }
    ));
    // The settings are known now: `enqueue` refuses at once, before any future exists.
    let epoch = producer
        .enqueue(Record::to("delayed").value("x").deliver_at(UNIX_EPOCH))
        .unwrap_err();
    assert!(matches!(
        refusal(&epoch.error),
        DeliveryTimeError::TooFarInPast { .. }
    ));

    // A due time in the recent past is due now, and is accepted.
    producer
        .send(
            Record::to("delayed")
                .value("ok")
                .partition(1)
                .deliver_at_ms(now_ms() - 1000),
        )
        .await
        .unwrap();
    producer.close().await.unwrap();
    assert_eq!(
        end_offsets(&client, "plain").await,
        [0, 0, 0],
        "nothing written to plain"
    );
    assert_eq!(
        end_offsets(&client, "delayed").await,
        [0, 1, 0],
        "only the good record"
    );

    // The broker checks the configs themselves.
    let bad = client
        .admin()
        .create_topic(NewTopic::new("bad").config("delivery.delay.max.ms", "10"))
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("delivery_delay_max_ms"), "{bad}");
}
