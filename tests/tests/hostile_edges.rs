//! Inputs a real broker used to accept although it could not honour them, so that data
//! was acknowledged and then lost or never delivered:
//!
//! - a plain producer's control batch (attributes bit 5) was acknowledged, then skipped by
//!   every consumer; a transactional batch (bit 4) claimed transactions Strata does not
//!   have. Both are now `INVALID_RECORD`, and nothing is appended;
//! - a `cleanup.policy` other than `delete`, `compact` and `compact,delete` is
//!   `INVALID_CONFIG` on create and alter (compaction itself: `compaction.rs`);
//! - a topic's `max.message.bytes` above the broker's `message_max_bytes` (which sizes
//!   the transport's decode limit) was accepted, and larger batches then ended the whole
//!   produce stream. It is now `INVALID_CONFIG` naming the broker's limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{
    code, connect, create_topic, describe, fetch_all, latest_offset, metadata, produce, produce_ok,
    start_broker, topic_spec, try_create_topic, values_batch, Client,
};
use strata_proto::api::v1::{AlterConfigsRequest, ErrorCode, TopicSpec};
use strata_proto::record::header::attributes;
use strata_proto::record::{compute_crc, BatchHeader, BATCH_HEADER_BYTES};
use strata_tests::broker_process::BrokerProcess;

const TOPIC: &str = "edges";
/// The broker's `message_max_bytes` in these tests: small, so the limit is easy to cross.
const BROKER_MESSAGE_MAX_BYTES: usize = 64 * 1024;

/// A broker with [`TOPIC`] (one partition) holding one record.
async fn broker() -> (tempfile::TempDir, BrokerProcess, Client) {
    let data = tempfile::tempdir().unwrap();
    let limit = BROKER_MESSAGE_MAX_BYTES.to_string();
    let broker = start_broker(data.path(), &["--message-max-bytes", &limit]);
    let mut client = connect(&broker).await;
    create_topic(&mut client, TOPIC, 1, &[]).await;
    produce_ok(&mut client, TOPIC, 0, values_batch(&["seed"])).await;
    (data, broker, client)
}

/// A valid batch of `values` with `bits` set in its attributes and its CRC recomputed, so
/// that the bits are the only thing a producer could not have sent.
fn with_attribute_bits(values: &[&str], bits: i16) -> Bytes {
    let mut bytes = values_batch(values).to_vec();
    let mut header = BatchHeader::parse(&bytes).unwrap();
    header.attributes |= bits;
    bytes[..BATCH_HEADER_BYTES].copy_from_slice(&header.encode());
    let crc = compute_crc(&bytes);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(bytes)
}

/// The values of every record of the partition, in offset order.
async fn values(client: &mut Client) -> Vec<String> {
    fetch_all(client, TOPIC, 0)
        .await
        .into_iter()
        .map(|record| String::from_utf8(record.value.unwrap().to_vec()).unwrap())
        .collect()
}

/// Creates `spec` and alters [`TOPIC`] with its configs: both must be refused with
/// `INVALID_CONFIG` whose message contains `fragment`, and change nothing.
async fn assert_config_refused(client: &mut Client, spec: TopicSpec, fragment: &str) {
    let input = format!("{:?}", spec.configs);
    let metadata_before = metadata(client).await;
    let description_before = describe(client, &[]).await;

    let created = try_create_topic(client, spec.clone()).await;
    assert_eq!(
        code(&created.error),
        ErrorCode::InvalidConfig,
        "create {input}"
    );
    let message = &created.error.as_ref().unwrap().message;
    assert!(message.contains(fragment), "create {input}: {message}");

    for validate_only in [true, false] {
        let request = AlterConfigsRequest {
            topic: TOPIC.to_owned(),
            set: spec.configs.clone(),
            delete: Vec::new(),
            validate_only,
        };
        let response = client.alter_configs(request).await.unwrap().into_inner();
        assert_eq!(
            code(&response.error),
            ErrorCode::InvalidConfig,
            "alter {input}"
        );
        let message = &response.error.as_ref().unwrap().message;
        assert!(message.contains(fragment), "alter {input}: {message}");
    }

    assert_eq!(metadata(client).await, metadata_before, "{input}");
    assert_eq!(describe(client, &[]).await, description_before, "{input}");
}

/// The effective value of `key` for [`TOPIC`], as described.
async fn described(client: &mut Client, key: &str) -> String {
    let description = describe(client, &[TOPIC]).await;
    let topic = description.topics.first().expect("one topic");
    let entry = topic.configs.iter().find(|entry| entry.key == key);
    entry.expect("every key is described").value.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn control_and_transactional_batches_from_a_producer_are_invalid_record() {
    let (_data, _broker, mut client) = broker().await;
    let end_before = latest_offset(&mut client, TOPIC, 0).await;
    let inputs = [
        ("control batch", attributes::CONTROL),
        ("transactional batch", attributes::TRANSACTIONAL),
        (
            "transactional control batch",
            attributes::CONTROL | attributes::TRANSACTIONAL,
        ),
    ];
    for (input, bits) in inputs {
        let batch = with_attribute_bits(&["never-delivered"], bits);
        let response = produce(&mut client, TOPIC, 0, batch).await;
        assert_eq!(
            code(&response.error),
            ErrorCode::InvalidRecord,
            "{input}: {response:?}"
        );
        assert_eq!(response.base_offset, -1, "{input}: no offset handed out");
        assert!(!response.error.unwrap().retriable, "{input}");
        assert_eq!(
            latest_offset(&mut client, TOPIC, 0).await,
            end_before,
            "{input}"
        );
    }
    let next = produce_ok(&mut client, TOPIC, 0, values_batch(&["after"])).await;
    assert_eq!(next, end_before, "the refused batches took no offsets");
    assert_eq!(values(&mut client).await, ["seed", "after"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_cleanup_policy_is_invalid_config() {
    let (_data, _broker, mut client) = broker().await;
    let refused: [&[(&str, &str)]; 4] = [
        &[("cleanup.policy", "shred"), ("retention.ms", "1000")],
        &[("cleanup_policy", "compact,shred")],
        &[("cleanup.policy", "delete,delete")],
        &[("cleanup.policy", "COMPACT")],
    ];
    for configs in refused {
        let spec = topic_spec("compacted", 1, configs);
        assert_config_refused(&mut client, spec, "expected \"delete\", \"compact\"").await;
    }
    assert_eq!(described(&mut client, "cleanup_policy").await, "delete");
    create_topic(&mut client, "deleted", 1, &[("cleanup.policy", "delete")]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_topic_max_message_bytes_above_the_broker_limit_is_invalid_config() {
    let (_data, _broker, mut client) = broker().await;
    let limit = BROKER_MESSAGE_MAX_BYTES.to_string();
    let above = (BROKER_MESSAGE_MAX_BYTES + 1).to_string();
    let naming_the_limit = format!("message_max_bytes ({limit})");
    for key in ["max.message.bytes", "message_max_bytes"] {
        for value in [above.as_str(), "2147483647"] {
            let spec = topic_spec("large", 1, &[(key, value)]);
            assert_config_refused(&mut client, spec, &naming_the_limit).await;
        }
    }
    // Up to the broker's limit is fine, and batches that large are accepted.
    create_topic(
        &mut client,
        "at-the-limit",
        1,
        &[("max.message.bytes", &limit)],
    )
    .await;
    let request = AlterConfigsRequest {
        topic: TOPIC.to_owned(),
        set: [("max.message.bytes".to_owned(), limit.clone())].into(),
        delete: Vec::new(),
        validate_only: false,
    };
    let response = client.alter_configs(request).await.unwrap().into_inner();
    assert_eq!(code(&response.error), ErrorCode::None, "{response:?}");
    assert_eq!(described(&mut client, "message_max_bytes").await, limit);
    let large_value = "x".repeat(BROKER_MESSAGE_MAX_BYTES - 1024);
    produce_ok(&mut client, TOPIC, 0, values_batch(&[&large_value])).await;
}
