//! Producer and consumer against the in-process [`TestBroker`]: ordering, retries,
//! deduplication of resent batches, seek and out-of-range handling. These exercise the
//! tasks and streams end to end; the real broker is tested in `tests/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tokio_stream::StreamExt;

use crate::error::{ErrorCode, WriteOutcome};
use crate::partitioner::partition_for_key;
use crate::test_broker::{Fault, TestBroker};
use crate::{Acks, Client, ConsumedRecord, Consumer, Error, Offset, Record};

async fn client(broker: &TestBroker) -> Client {
    Client::builder()
        .brokers([broker.address.as_str()])
        .request_timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap()
}

async fn next(consumer: &mut Consumer) -> Result<ConsumedRecord, Error> {
    tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("consumer stalled")
        .expect("stream ended")
}

fn values(count: usize) -> Vec<String> {
    (0..count).map(|index| format!("v{index}")).collect()
}

#[tokio::test]
async fn keyed_records_round_trip_in_order_per_partition() {
    let broker = TestBroker::start(&[("orders", 3)]).await;
    let client = client(&broker).await;
    let producer = client.producer().build().unwrap();
    let mut pending = Vec::new();
    for index in 0..60 {
        let key = format!("key-{}", index % 7);
        let record = Record::to("orders")
            .key(key)
            .value(format!("v{index}"))
            .header("h", "x");
        pending.push(producer.enqueue(record).unwrap());
    }
    producer.flush().await.unwrap();
    for (index, delivery) in pending.into_iter().enumerate() {
        let delivery = delivery.await.unwrap();
        let key = format!("key-{}", index % 7);
        assert_eq!(delivery.partition, partition_for_key(key.as_bytes(), 3));
        assert!(delivery.offset >= 0);
    }
    producer.close().await.unwrap();

    let mut consumer = client
        .consumer()
        .topics(["orders"])
        .start(Offset::Earliest)
        .build()
        .await
        .unwrap();
    assert_eq!(consumer.assignment().len(), 3);
    let mut last_index_per_key = std::collections::HashMap::new();
    for _ in 0..60 {
        let record = next(&mut consumer).await.unwrap();
        let key = String::from_utf8(record.key.unwrap().to_vec()).unwrap();
        let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
        let index: usize = value.trim_start_matches('v').parse().unwrap();
        assert_eq!(record.headers, vec![("h".to_owned(), Some("x".into()))]);
        if let Some(previous) = last_index_per_key.insert(key, index) {
            assert!(previous < index, "records of one key out of order");
        }
    }
    consumer.close().await.unwrap();
}

#[tokio::test]
async fn retriable_errors_and_lost_answers_neither_reorder_nor_duplicate() {
    let broker = TestBroker::start(&[("t", 1)]).await;
    let client = client(&broker).await;
    let producer = client
        .producer()
        .batch_size(100)
        .linger(Duration::from_millis(1))
        .request_timeout(Duration::from_millis(300))
        .retry_backoff(Duration::from_millis(10))
        .delivery_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    broker.inject(&[
        Fault::Answer(ErrorCode::NotEnoughReplicas),
        Fault::Silence,
        Fault::Answer(ErrorCode::NotLeader),
        Fault::KillStream(tonic::Code::Unavailable),
    ]);
    let sent = values(200);
    let futures: Vec<_> = sent
        .iter()
        .map(|value| {
            producer
                .enqueue(Record::to("t").value(value.clone()))
                .unwrap()
        })
        .collect();
    let mut offsets = Vec::new();
    for future in futures {
        offsets.push(future.await.unwrap().offset);
    }
    assert_eq!(
        offsets,
        (0..200).collect::<Vec<i64>>(),
        "offsets follow send order"
    );
    assert_eq!(broker.values("t", 0), sent, "stored once each, in order");
    assert!(
        broker.state.lock().unwrap().produce_requests > 4,
        "batches were retried"
    );
}

/// Waits (bounded) until the broker has read `count` produce requests.
async fn received(broker: &TestBroker, count: usize) {
    for _ in 0..1000 {
        if broker.state.lock().unwrap().produce_requests_received >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the broker never read {count} produce requests");
}

/// The outside fault test's anomaly, made deterministic: the broker holds every request
/// (SIGSTOP) while the first batch's delivery times out and the second is still in flight.
/// A producer that took a new producer id then resent the second batch under it, and the
/// resumed broker appended it twice: once from the old stream, once under the new id.
/// Now the timed-out batch keeps its sequence number and nothing is written twice.
#[tokio::test]
async fn a_delivery_timeout_while_the_broker_is_paused_writes_nothing_twice() {
    let broker = TestBroker::start(&[("t", 1)]).await;
    let client = client(&broker).await;
    let producer = client
        .producer()
        .linger(Duration::ZERO)
        .request_timeout(Duration::from_millis(200))
        .retry_backoff(Duration::from_millis(10))
        .delivery_timeout(Duration::from_millis(1200))
        .build()
        .unwrap();
    broker.pause(true);
    let first = producer.enqueue(Record::to("t").value("first")).unwrap();
    received(&broker, 1).await;
    // The second batch's deadline falls well after the first one's.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let second = producer.enqueue(Record::to("t").value("second")).unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .expect("the first delivery times out while the broker is paused")
        .unwrap_err();
    assert_eq!(
        first.error.outcome(),
        WriteOutcome::Unknown,
        "{}",
        first.error
    );
    assert!(
        first.error.to_string().contains("may have been written"),
        "{}",
        first.error
    );
    // Let the producer resend what it holds before the broker resumes.
    let before = broker.state.lock().unwrap().produce_requests_received;
    received(&broker, before + 1).await;
    broker.pause(false);

    let second = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("answered once the broker resumes");
    let third = producer.send(Record::to("t").value("third")).await.unwrap();
    let stored = broker.values("t", 0);
    for value in ["first", "second", "third"] {
        let copies = stored.iter().filter(|stored| *stored == value).count();
        assert!(copies <= 1, "{value} stored {copies} times: {stored:?}");
    }
    if let Ok(second) = second {
        assert_eq!(
            stored.get(second.offset as usize).map(String::as_str),
            Some("second")
        );
    }
    assert_eq!(stored.last().map(String::as_str), Some("third"));
    assert_eq!(third.offset as usize, stored.len() - 1);
    assert!(!producer.is_fatal());
}

/// Waits (bounded) until the broker has read a produce request matching `what`
/// (stream number, partition, base sequence).
async fn read_by_broker(
    broker: &TestBroker,
    description: &str,
    what: impl Fn((usize, i32, i32)) -> bool,
) {
    for _ in 0..2000 {
        if broker
            .state
            .lock()
            .unwrap()
            .produce_log
            .iter()
            .any(|entry| what(*entry))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let log = broker.state.lock().unwrap().produce_log.clone();
    panic!("the broker never read {description}: {log:?}");
}

/// A partition whose stream was replaced by another partition's timeout resends what it
/// has outstanding on the new stream before anything newer: a stream never carries a
/// partition's later batch while an earlier one is only on an older stream (the broker
/// serves streams in parallel and would refuse the later one for the gap, a fatal error).
#[tokio::test]
async fn a_stream_replaced_by_another_partition_carries_each_partition_from_its_oldest_batch() {
    let broker = TestBroker::start(&[("t", 2)]).await;
    let client = client(&broker).await;
    let producer = client
        .producer()
        .linger(Duration::ZERO)
        .batch_size(1) // one record per batch
        .request_timeout(Duration::from_secs(3))
        .retry_backoff(Duration::from_millis(10))
        .delivery_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    broker.pause(true);
    let mut futures = vec![producer
        .enqueue(Record::to("t").partition(0).value("a"))
        .unwrap()];
    read_by_broker(&broker, "a", |(_, partition, _)| partition == 0).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    futures.push(
        producer
            .enqueue(Record::to("t").partition(1).value("b"))
            .unwrap(),
    );
    read_by_broker(&broker, "b", |(_, partition, _)| partition == 1).await;
    let first = broker.state.lock().unwrap().produce_log.last().unwrap().0;
    // Partition 0 times out first and resends on a new stream; partition 1, 1.5 s
    // younger, has not timed out yet when its next records come.
    read_by_broker(&broker, "a resent", |(stream, partition, _)| {
        partition == 0 && stream > first
    })
    .await;
    for value in ["c", "d"] {
        futures.push(
            producer
                .enqueue(Record::to("t").partition(1).value(value))
                .unwrap(),
        );
    }
    // A paused stream is read up to its first request: this is what partition 1 sent
    // first on a newer stream.
    read_by_broker(&broker, "partition 1 again", |(stream, partition, _)| {
        partition == 1 && stream > first
    })
    .await;
    broker.pause(false);
    for future in futures {
        tokio::time::timeout(Duration::from_secs(20), future)
            .await
            .expect("answered after the pause")
            .unwrap();
    }
    assert!(!producer.is_fatal());
    assert_eq!(broker.values("t", 1), ["b", "c", "d"]);
    let log = broker.state.lock().unwrap().produce_log.clone();
    let mut first_on_stream = std::collections::HashMap::new();
    for (stream, partition, sequence) in &log {
        first_on_stream
            .entry((*stream, *partition))
            .or_insert(*sequence);
    }
    for ((stream, partition), sequence) in first_on_stream {
        assert_eq!(
            sequence, 0,
            "stream {stream} carried partition {partition} from sequence {sequence}: {log:?}"
        );
    }
}

#[tokio::test]
async fn a_refused_batch_fails_alone_and_later_batches_are_renumbered() {
    let broker = TestBroker::start(&[("t", 1)]).await;
    let client = client(&broker).await;
    let producer = client
        .producer()
        .batch_size(100)
        .linger(Duration::from_millis(1))
        .build()
        .unwrap();
    broker.inject(&[Fault::Answer(ErrorCode::InvalidRecord)]);
    let sent = values(100);
    let futures: Vec<_> = sent
        .iter()
        .map(|value| {
            producer
                .enqueue(Record::to("t").value(value.clone()))
                .unwrap()
        })
        .collect();
    let mut failed = Vec::new();
    let mut delivered = Vec::new();
    for (value, future) in sent.iter().zip(futures) {
        match future.await {
            Ok(_) => delivered.push(value.clone()),
            Err(error) => {
                assert_eq!(error.error.code(), Some(ErrorCode::InvalidRecord));
                assert_eq!(error.record.value.as_deref(), Some(value.as_bytes()));
                failed.push(value.clone());
            }
        }
    }
    assert!(
        !failed.is_empty() && failed.len() < 10,
        "only the first batch fails"
    );
    assert_eq!(failed.first(), Some(&"v0".to_owned()));
    assert_eq!(broker.values("t", 0), delivered);
    let next = producer.send(Record::to("t").value("after")).await.unwrap();
    assert_eq!(next.offset, delivered.len() as i64);
}

#[tokio::test]
async fn acks_zero_completes_without_an_answer() {
    let broker = TestBroker::start(&[("t", 2)]).await;
    let client = client(&broker).await;
    let producer = client.producer().acks(Acks::None).build().unwrap();
    let delivery = producer
        .send(Record::to("t").value("x").partition(1))
        .await
        .unwrap();
    assert_eq!((delivery.partition, delivery.offset), (1, -1));
    producer.close().await.unwrap();
    assert_eq!(broker.values("t", 1), ["x"]);
}

#[tokio::test]
async fn unknown_topics_and_partitions_fail_the_send() {
    let broker = TestBroker::start(&[("t", 2)]).await;
    let client = client(&broker).await;
    let producer = client
        .producer()
        .max_block(Duration::from_millis(200))
        .build()
        .unwrap();
    let error = producer
        .send(Record::to("nope").value("x"))
        .await
        .unwrap_err();
    assert_eq!(error.error.code(), Some(ErrorCode::UnknownTopicOrPartition));
    let error = producer
        .send(Record::to("t").value("x").partition(5))
        .await
        .unwrap_err();
    assert_eq!(error.error.code(), Some(ErrorCode::UnknownTopicOrPartition));
    assert_eq!(error.record.partition, Some(5));
}

#[tokio::test]
async fn consumer_seeks_and_reports_out_of_range() {
    let broker = TestBroker::start(&[("t", 1)]).await;
    let client = client(&broker).await;
    let producer = client.producer().build().unwrap();
    for value in values(10) {
        producer.send(Record::to("t").value(value)).await.unwrap();
    }
    let mut consumer = client
        .consumer()
        .assign([("t", 0)])
        .start(Offset::Tail(4))
        .build()
        .await
        .unwrap();
    assert_eq!(consumer.position("t", 0), Some(6));
    assert_eq!(next(&mut consumer).await.unwrap().offset, 6);
    assert_eq!(consumer.position("t", 0), Some(7));
    consumer.seek("t", 0, Offset::At(2)).await.unwrap();
    assert_eq!(next(&mut consumer).await.unwrap().offset, 2);
    assert_eq!(next(&mut consumer).await.unwrap().offset, 3);
    consumer.seek("t", 0, Offset::At(50)).await.unwrap();
    let error = next(&mut consumer).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::OffsetOutOfRange));
    consumer.seek("t", 0, Offset::Latest).await.unwrap();
    producer.send(Record::to("t").value("new")).await.unwrap();
    let record = next(&mut consumer).await.unwrap();
    assert_eq!(
        (record.offset, record.value.as_deref()),
        (10, Some(&b"new"[..]))
    );
    assert!(consumer.seek("other", 0, Offset::Earliest).await.is_err());
}

#[tokio::test]
async fn a_corrupt_batch_is_an_error_and_stops_the_partition_until_seek() {
    let broker = TestBroker::start(&[("t", 1)]).await;
    let client = client(&broker).await;
    let producer = client.producer().build().unwrap();
    for value in values(5) {
        producer.send(Record::to("t").value(value)).await.unwrap();
    }
    {
        let mut state = broker.state.lock().unwrap();
        let (base_offset, _, batch) = &mut state.topics.get_mut("t").unwrap()[0].batches[2];
        assert_eq!(*base_offset, 2, "one batch per awaited send");
        let mut damaged = batch.to_vec();
        let last = damaged.len() - 1;
        damaged[last] ^= 0xff;
        *batch = bytes::Bytes::from(damaged);
    }
    let mut consumer = client
        .consumer()
        .assign([("t", 0)])
        .start(Offset::Earliest)
        .build()
        .await
        .unwrap();
    assert_eq!(next(&mut consumer).await.unwrap().offset, 0);
    assert_eq!(next(&mut consumer).await.unwrap().offset, 1);
    let error = next(&mut consumer).await.unwrap_err();
    assert_eq!(error.code_name(), "CORRUPT_MESSAGE", "{error}");
    assert_eq!(consumer.position("t", 0), Some(2));
    let nothing = tokio::time::timeout(Duration::from_millis(300), consumer.next()).await;
    assert!(nothing.is_err(), "the partition stays stopped");
    consumer.seek("t", 0, Offset::At(3)).await.unwrap();
    assert_eq!(next(&mut consumer).await.unwrap().offset, 3);
    assert_eq!(next(&mut consumer).await.unwrap().offset, 4);
}

/// A broker with `count` one-record batches in partition 0 of `t` (one awaited send
/// each), and a consumer from its start that gets one batch per answer (a fetch returns
/// at least one whole batch), so the records take `count` answers.
async fn one_batch_per_answer(broker: &TestBroker, count: usize) -> Consumer {
    let client = client(broker).await;
    let producer = client.producer().build().unwrap();
    for value in values(count) {
        producer.send(Record::to("t").value(value)).await.unwrap();
    }
    client
        .consumer()
        .assign([("t", 0)])
        .start(Offset::Earliest)
        .max_partition_fetch_bytes(1)
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn one_fetch_session_carries_a_partition_until_a_seek_replaces_it() {
    let broker = TestBroker::start(&[("t", 1)]).await;
    // Ten answers: more than the prefetch slots hold.
    let mut consumer = one_batch_per_answer(&broker, 10).await;
    for offset in 0..10 {
        assert_eq!(next(&mut consumer).await.unwrap().offset, offset);
    }
    {
        let state = broker.state.lock().unwrap();
        assert_eq!((state.fetch_streams, state.unary_fetches), (1, 0));
    }
    consumer.seek("t", 0, Offset::At(3)).await.unwrap();
    assert_eq!(next(&mut consumer).await.unwrap().offset, 3);
    assert_eq!(next(&mut consumer).await.unwrap().offset, 4);
    assert_eq!(broker.state.lock().unwrap().fetch_streams, 2);
}

#[tokio::test]
async fn a_broker_without_fetch_sessions_is_read_with_unary_fetches() {
    let broker = TestBroker::start(&[("t", 1)]).await;
    broker.state.lock().unwrap().fetch_streams_unimplemented = true;
    let mut consumer = one_batch_per_answer(&broker, 5).await;
    for offset in 0..5 {
        assert_eq!(next(&mut consumer).await.unwrap().offset, offset);
    }
    let state = broker.state.lock().unwrap();
    assert_eq!(state.fetch_streams, 0);
    assert!(state.unary_fetches >= 5, "{} fetches", state.unary_fetches);
}

#[tokio::test]
async fn paused_partitions_yield_nothing_until_resumed() {
    let broker = TestBroker::start(&[("t", 2)]).await;
    let client = client(&broker).await;
    let producer = client.producer().build().unwrap();
    producer
        .send(Record::to("t").value("p0").partition(0))
        .await
        .unwrap();
    let mut consumer = client
        .consumer()
        .topics(["t"])
        .start(Offset::Earliest)
        .build()
        .await
        .unwrap();
    consumer.pause(&[("t", 0)]);
    producer
        .send(Record::to("t").value("p1").partition(1))
        .await
        .unwrap();
    let record = next(&mut consumer).await.unwrap();
    assert_eq!(record.partition, 1);
    let nothing = tokio::time::timeout(Duration::from_millis(300), consumer.next()).await;
    assert!(nothing.is_err(), "partition 0 is paused");
    consumer.resume(&[("t", 0)]);
    let record = next(&mut consumer).await.unwrap();
    assert_eq!((record.partition, record.offset), (0, 0));
}

/// Against a real broker: `STRATA_BROKERS=127.0.0.1:7070 cargo test -p strata-client --lib
/// real_broker -- --ignored`. Creates a fresh topic, produces keyed, keyless, compressed
/// and acks=0 records, and reads them back.
#[tokio::test]
#[ignore = "needs a running strata-broker (STRATA_BROKERS)"]
async fn real_broker_round_trip() {
    use crate::{Compression, NewTopic, OffsetSpec};
    let client = Client::builder().build().await.unwrap();
    let topic = format!("client-e2e-{}", crate::record::now_ms());
    let admin = client.admin();
    admin
        .create_topic(NewTopic::new(&topic).partitions(3))
        .await
        .unwrap();
    let bad = admin
        .create_topic(NewTopic::new("bad/name"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some(ErrorCode::InvalidTopic), "{bad}");
    let description = admin.describe_topic(&topic).await.unwrap();
    assert_eq!(description.partitions.len(), 3);
    for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let producer = client.producer().compression(compression).build().unwrap();
        let mut futures = Vec::new();
        for index in 0..100 {
            let record = Record::to(&topic).value(format!("{compression}-{index}"));
            let record = if index % 2 == 0 {
                record.key(format!("k{index}"))
            } else {
                record
            };
            futures.push(producer.enqueue(record).unwrap());
        }
        for future in futures {
            future.await.unwrap();
        }
        producer.close().await.unwrap();
    }
    let fire_and_forget = client.producer().acks(Acks::None).build().unwrap();
    fire_and_forget
        .send(Record::to(&topic).value("acks0").partition(0))
        .await
        .unwrap();
    fire_and_forget.close().await.unwrap();
    let mut total = 0;
    for partition in 0..3 {
        total += admin
            .list_offsets(&topic, partition, OffsetSpec::Latest)
            .await
            .unwrap()
            .0;
    }
    assert_eq!(total, 301);
    let mut consumer = client
        .consumer()
        .topics([topic.as_str()])
        .start(Offset::Earliest)
        .build()
        .await
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 301 {
        let record = next(&mut consumer).await.unwrap();
        assert!(
            seen.insert((record.partition, record.offset)),
            "duplicate {record:?}"
        );
    }
    consumer.close().await.unwrap();
    admin.delete_topic(&topic).await.unwrap();
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn cheap_clone<T: Clone + Send + Sync>() {}
    cheap_clone::<Client>();
    cheap_clone::<crate::Producer>();
    cheap_clone::<crate::Admin>();
    send_sync::<Consumer>();
    send_sync::<Error>();
    send_sync::<crate::SendError>();
    send_sync::<crate::DeliveryFuture>();
}

/// Compile-time check: the futures of the public API can be spawned on Tokio.
#[allow(dead_code)] // never called; it only has to compile
fn futures_are_send(producer: &crate::Producer, consumer: &mut Consumer, client: &Client) {
    fn is_send<T: Send>(_: T) {}
    is_send(producer.send(Record::to("t")));
    is_send(producer.flush());
    is_send(producer.close());
    is_send(consumer.seek("t", 0, Offset::Earliest));
    is_send(client.admin().describe_topic("t"));
    is_send(
        client
            .admin()
            .list_offsets("t", 0, crate::OffsetSpec::Latest),
    );
    is_send(client.consumer().topics(["t"]).build());
    is_send(Client::builder().build());
}
