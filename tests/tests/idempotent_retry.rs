//! Idempotent producers (hostile input 22 of `docs/RELIABILITY.md`): a batch retried after
//! its response was lost is answered with its original offset and stored once, also after a
//! SIGKILL restart (the producer state is rebuilt from the log); a sequence gap is
//! OUT_OF_ORDER_SEQUENCE and an older producer epoch PRODUCER_FENCED, and neither appends
//! anything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{
    assert_ok, batch, code, connect, create_topic, fetch_all, init_producer_id, kill,
    latest_offset, now_ms, produce, produce_ok, produce_request, restart, start_broker, Client,
    ProduceStream,
};
use strata_proto::api::v1::ErrorCode;
use strata_proto::record::{BatchSettings, Record};

const TOPIC: &str = "idempotent";
const RECORDS_PER_BATCH: i32 = 2;

/// Batch `index` of a producer: records `sequence(index)..sequence(index) + 2`, whose
/// values name the batch, so a record stored twice is visible.
fn idempotent_batch(producer_id: i64, epoch: i16, index: i32) -> Bytes {
    let records: Vec<Record> = (0..RECORDS_PER_BATCH)
        .map(|record| {
            let value = format!("epoch-{epoch}-batch-{index}-record-{record}");
            Record::from_value(now_ms(), Bytes::from(value))
        })
        .collect();
    let settings = BatchSettings {
        producer_id,
        producer_epoch: epoch,
        base_sequence: index * RECORDS_PER_BATCH,
        ..BatchSettings::default()
    };
    batch(&records, settings)
}

/// The values stored in the partition, in offset order.
async fn stored_values(client: &mut Client) -> Vec<String> {
    fetch_all(client, TOPIC, 0)
        .await
        .into_iter()
        .map(|record| String::from_utf8(record.value.unwrap().to_vec()).unwrap())
        .collect()
}

fn expected_values(epoch: i16, batches: std::ops::Range<i32>) -> Vec<String> {
    batches
        .flat_map(|index| {
            (0..RECORDS_PER_BATCH)
                .map(move |record| format!("epoch-{epoch}-batch-{index}-record-{record}"))
        })
        .collect()
}

async fn setup(
    data_dir: &std::path::Path,
) -> (strata_tests::broker_process::BrokerProcess, Client, i64) {
    let broker = start_broker(data_dir, &[]);
    let mut client = connect(&broker).await;
    create_topic(&mut client, TOPIC, 1, &[]).await;
    let (producer_id, epoch) = init_producer_id(&mut client).await;
    assert_eq!(epoch, 0);
    (broker, client, producer_id)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_batch_gets_its_original_offset_and_is_stored_once() {
    let data = tempfile::tempdir().unwrap();
    let (_broker, mut client, producer_id) = setup(data.path()).await;
    let batch_at = |index| idempotent_batch(producer_id, 0, index);

    assert_eq!(produce_ok(&mut client, TOPIC, 0, batch_at(0)).await, 0);
    // The same bytes again, as a producer sends them when the response was dropped.
    assert_eq!(produce_ok(&mut client, TOPIC, 0, batch_at(0)).await, 0);
    assert_eq!(latest_offset(&mut client, TOPIC, 0).await, 2);

    for index in 1..6 {
        let base_offset = produce_ok(&mut client, TOPIC, 0, batch_at(index)).await;
        assert_eq!(base_offset, i64::from(index * RECORDS_PER_BATCH));
    }
    // Any of the last five batches is a duplicate answered with its original offset.
    for index in [1, 3, 5] {
        let base_offset = produce_ok(&mut client, TOPIC, 0, batch_at(index)).await;
        assert_eq!(base_offset, i64::from(index * RECORDS_PER_BATCH));
    }
    // Batch 0 is older than the five remembered: refused, never appended again.
    let response = produce(&mut client, TOPIC, 0, batch_at(0)).await;
    assert_eq!(code(&response.error), ErrorCode::OutOfOrderSequence);
    assert_eq!(latest_offset(&mut client, TOPIC, 0).await, 12);

    // Retries in flight on one stream: 6, 6 again, 7, without waiting in between.
    let mut stream = ProduceStream::open(&mut client).await;
    for (request_id, index) in [(60, 6), (61, 6), (70, 7)] {
        stream
            .send(produce_request(request_id, TOPIC, 0, batch_at(index)))
            .await;
    }
    let mut answers = Vec::new();
    for _ in 0..3 {
        let response = stream.recv().await.unwrap();
        assert_ok(&response.error);
        answers.push((response.request_id, response.base_offset));
    }
    answers.sort_unstable();
    assert_eq!(answers, [(60, 12), (61, 12), (70, 14)]);

    assert_eq!(latest_offset(&mut client, TOPIC, 0).await, 16);
    assert_eq!(stored_values(&mut client).await, expected_values(0, 0..8));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sequence_gap_is_out_of_order_and_appends_nothing() {
    let data = tempfile::tempdir().unwrap();
    let (_broker, mut client, producer_id) = setup(data.path()).await;
    produce_ok(&mut client, TOPIC, 0, idempotent_batch(producer_id, 0, 0)).await;

    // Batch 2 without batch 1: sequences 4.. where 2 is expected.
    let response = produce(&mut client, TOPIC, 0, idempotent_batch(producer_id, 0, 2)).await;
    assert_eq!(code(&response.error), ErrorCode::OutOfOrderSequence);
    assert!(!response.error.as_ref().unwrap().retriable);
    assert_eq!(latest_offset(&mut client, TOPIC, 0).await, 2);

    // The refused batch left the state as it was: batch 1 is the next one.
    let base_offset = produce_ok(&mut client, TOPIC, 0, idempotent_batch(producer_id, 0, 1)).await;
    assert_eq!(base_offset, 2);
    assert_eq!(stored_values(&mut client).await, expected_values(0, 0..2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_a_sigkill_restart_still_gets_the_original_offset() {
    let data = tempfile::tempdir().unwrap();
    let (mut broker, mut client, producer_id) = setup(data.path()).await;
    for index in 0..3 {
        produce_ok(
            &mut client,
            TOPIC,
            0,
            idempotent_batch(producer_id, 0, index),
        )
        .await;
    }

    kill(&mut broker);
    restart(&mut broker);
    let mut client = connect(&broker).await;
    // The last batch again (its response "lost" in the crash), then an earlier one.
    for index in [2, 1] {
        let base_offset = produce_ok(
            &mut client,
            TOPIC,
            0,
            idempotent_batch(producer_id, 0, index),
        )
        .await;
        assert_eq!(base_offset, i64::from(index * RECORDS_PER_BATCH));
    }
    assert_eq!(latest_offset(&mut client, TOPIC, 0).await, 6);
    let gap = produce(&mut client, TOPIC, 0, idempotent_batch(producer_id, 0, 4)).await;
    assert_eq!(code(&gap.error), ErrorCode::OutOfOrderSequence);
    let base_offset = produce_ok(&mut client, TOPIC, 0, idempotent_batch(producer_id, 0, 3)).await;
    assert_eq!(base_offset, 6);
    assert_eq!(stored_values(&mut client).await, expected_values(0, 0..4));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_older_producer_epoch_after_a_newer_one_is_fenced_also_after_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let (mut broker, mut client, producer_id) = setup(data.path()).await;
    produce_ok(&mut client, TOPIC, 0, idempotent_batch(producer_id, 0, 0)).await;
    // A new epoch starts again at sequence 0.
    produce_ok(&mut client, TOPIC, 0, idempotent_batch(producer_id, 1, 0)).await;

    for moment in ["before the restart", "after a SIGKILL restart"] {
        let response = produce(&mut client, TOPIC, 0, idempotent_batch(producer_id, 0, 1)).await;
        assert_eq!(
            code(&response.error),
            ErrorCode::ProducerFenced,
            "{moment}: {response:?}"
        );
        assert_eq!(latest_offset(&mut client, TOPIC, 0).await, 4, "{moment}");
        if moment.starts_with("before") {
            kill(&mut broker);
            restart(&mut broker);
            client = connect(&broker).await;
        }
    }
    let mut expected = expected_values(0, 0..1);
    expected.extend(expected_values(1, 0..1));
    assert_eq!(stored_values(&mut client).await, expected);
}

/// Hostile input 22: "unknown producer id → UNKNOWN_PRODUCER_ID" (Kafka's answer to a
/// producer this partition has no state for, sending a sequence other than 0).
#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_producer_id_with_a_nonzero_sequence_is_unknown_producer_id() {
    let data = tempfile::tempdir().unwrap();
    let (_broker, mut client, producer_id) = setup(data.path()).await;
    let response = produce(&mut client, TOPIC, 0, idempotent_batch(producer_id, 0, 3)).await;
    assert_eq!(code(&response.error), ErrorCode::UnknownProducerId);
    assert_eq!(latest_offset(&mut client, TOPIC, 0).await, 0);
}
