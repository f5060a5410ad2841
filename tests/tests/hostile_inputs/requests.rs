//! #23, #25–#27: produce, fetch and list-offsets requests with values out of range.

use strata_proto::api::v1::{
    CreatePartitionsRequest, ErrorCode, FetchPartition, FetchRequest, ListOffsetsPartition,
    ListOffsetsRequest, OffsetSpec, ProduceRequest, TopicSpec,
};
use strata_proto::record::{BatchSettings, Record};

use crate::common::{
    batch, code, decode_records, fetch, fetch_partition, latest_offset, now_ms, produce,
    produce_ok, produce_once, produce_request, topic_spec,
};
use crate::fixture::{fetch_request, fixture, PARTITIONS, TOPIC};
use crate::forge::valid_batch;

#[tokio::test(flavor = "multi_thread")]
async fn hostile_23_acks_outside_minus_one_zero_one_is_invalid_required_acks() {
    let mut fixture = fixture(&[]).await;
    for acks in [2, -2, 100, i32::MIN, i32::MAX] {
        let before = fixture.state().await;
        let request = ProduceRequest {
            acks,
            ..produce_request(7, TOPIC, 0, valid_batch())
        };
        let response = produce_once(&mut fixture.client, request).await.unwrap();
        assert_eq!(
            code(&response.error),
            ErrorCode::InvalidRequiredAcks,
            "acks {acks}"
        );
        fixture
            .assert_unchanged(&before, &format!("acks {acks}"))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_25_partitions_out_of_range_are_unknown_and_bad_counts_are_refused() {
    let mut fixture = fixture(&[]).await;
    let before = fixture.state().await;
    for partition in [-1, PARTITIONS, i32::MAX, i32::MIN] {
        let response = produce(&mut fixture.client, TOPIC, partition, valid_batch()).await;
        let input = format!("partition {partition}");
        assert_eq!(
            code(&response.error),
            ErrorCode::UnknownTopicOrPartition,
            "produce to {input}"
        );
        let fetched = fixture
            .fetch_one(fetch_request(fetch_partition(TOPIC, partition, 0)))
            .await;
        assert_eq!(
            code(&fetched.error),
            ErrorCode::UnknownTopicOrPartition,
            "fetch from {input}"
        );
        assert!(fetched.records.is_empty());
        let request = ListOffsetsRequest {
            partitions: vec![ListOffsetsPartition {
                topic: TOPIC.to_owned(),
                partition,
                spec: OffsetSpec::Latest as i32,
                timestamp_ms: 0,
            }],
        };
        let listed = fixture.client.list_offsets(request).await.unwrap();
        let listed = &listed.into_inner().offsets[0];
        assert_eq!(
            code(&listed.error),
            ErrorCode::UnknownTopicOrPartition,
            "list offsets of {input}"
        );
    }
    fixture
        .assert_unchanged(&before, "partitions out of range")
        .await;

    // A partition count or replication factor of 0 means "the broker default"
    // (client_api.proto), so the refused values are negative or too large.
    for partitions in [-1, 1_000_000, i32::MAX] {
        let spec = TopicSpec {
            partitions,
            ..topic_spec("fresh", 1, &[])
        };
        fixture
            .assert_create_refused(spec, ErrorCode::InvalidPartitions)
            .await;
    }
    for replication_factor in [-1, 2, i32::MAX] {
        let spec = TopicSpec {
            replication_factor,
            ..topic_spec("fresh", 1, &[])
        };
        fixture
            .assert_create_refused(spec, ErrorCode::InvalidReplicationFactor)
            .await;
    }
    for total_count in [1_000_000, i32::MAX, PARTITIONS, 1, -1] {
        let before = fixture.state().await;
        let request = CreatePartitionsRequest {
            topic: TOPIC.to_owned(),
            total_count,
            validate_only: false,
        };
        let response = fixture.client.create_partitions(request).await.unwrap();
        assert_eq!(
            code(&response.into_inner().error),
            ErrorCode::InvalidPartitions,
            "CreatePartitions to {total_count}"
        );
        fixture
            .assert_unchanged(&before, &format!("CreatePartitions to {total_count}"))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_26_fetch_offsets_out_of_range_and_clamped_sizes_and_waits() {
    let mut fixture = fixture(&[]).await;
    let before = fixture.state().await;
    let high_watermark = latest_offset(&mut fixture.client, TOPIC, 0).await;
    for offset in [-1, high_watermark + 1, i64::MAX, i64::MIN] {
        let fetched = fixture
            .fetch_one(fetch_request(fetch_partition(TOPIC, 0, offset)))
            .await;
        assert_eq!(
            code(&fetched.error),
            ErrorCode::OffsetOutOfRange,
            "offset {offset}"
        );
        assert!(fetched.records.is_empty(), "offset {offset}");
    }

    // Sizes of 0 and u32::MAX are clamped: the answer holds whole batches below the HW.
    for (max_bytes, partition_max_bytes) in [(0, 0), (u32::MAX, u32::MAX), (0, u32::MAX)] {
        let request = FetchRequest {
            max_bytes,
            partitions: vec![FetchPartition {
                partition_max_bytes,
                ..fetch_partition(TOPIC, 0, 0)
            }],
            ..fetch_request(fetch_partition(TOPIC, 0, 0))
        };
        let fetched = fixture.fetch_one(request).await;
        assert_eq!(code(&fetched.error), ErrorCode::None, "{max_bytes}");
        let records = decode_records(&fetched.records);
        assert!(!records.is_empty(), "max_bytes {max_bytes}");
        assert!(records.iter().all(|r| r.offset.0 < fetched.high_watermark));
    }

    // A wait of u32::MAX ms (49 days) is clamped to the broker's maximum: both polls
    // return, one empty at the HW and one with the data it could find.
    let waits = [high_watermark, 0].map(|offset| {
        let mut client = fixture.client.clone();
        tokio::spawn(async move {
            let request = FetchRequest {
                max_wait_ms: u32::MAX,
                min_bytes: u32::MAX,
                max_bytes: 1 << 20,
                partitions: vec![fetch_partition(TOPIC, 0, offset)],
            };
            fetch(&mut client, request).await
        })
    });
    let [at_high_watermark, from_start] = waits;
    let at_high_watermark = at_high_watermark.await.unwrap();
    let from_start = from_start.await.unwrap();
    assert_eq!(
        code(&at_high_watermark.partitions[0].error),
        ErrorCode::None
    );
    assert!(at_high_watermark.partitions[0].records.is_empty());
    assert_eq!(code(&from_start.partitions[0].error), ErrorCode::None);
    assert!(!from_start.partitions[0].records.is_empty());
    fixture.assert_unchanged(&before, "fetches").await;
}

/// #26 "sizes clamped": `max_bytes` bounds a whole response except for its first batch
/// (Kafka's rule, so a consumer always progresses). Asking for one partition many times
/// must not multiply what the broker reads and sends: here 100 entries × a 100 KiB batch
/// would be 10 MiB for a 1 MiB limit, and a 1 MiB request holds over 100 000 entries,
/// which × a 1 MiB batch is 100 GiB read into memory.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_26_repeated_fetch_partitions_do_not_multiply_max_bytes() {
    const ENTRIES: usize = 100;
    const MAX_BYTES: u32 = 1 << 20;
    let mut fixture = fixture(&[]).await;
    let value = vec![5u8; 100 * 1024];
    let big = batch(
        &[Record::from_value(now_ms(), value)],
        BatchSettings::default(),
    );
    let big_bytes = big.len();
    let base_offset = produce_ok(&mut fixture.client, TOPIC, 1, big).await;
    let request = FetchRequest {
        max_wait_ms: 0,
        min_bytes: 0,
        max_bytes: MAX_BYTES,
        partitions: vec![fetch_partition(TOPIC, 1, base_offset); ENTRIES],
    };
    let response = fetch(&mut fixture.client, request).await;
    let returned: usize = response
        .partitions
        .iter()
        .map(|partition| partition.records.len())
        .sum();
    assert!(
        returned <= (MAX_BYTES as usize).max(big_bytes),
        "{returned} bytes returned for max_bytes {MAX_BYTES}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_27_future_leader_epoch_is_unknown_leader_epoch() {
    let mut fixture = fixture(&[]).await;
    let before = fixture.state().await;
    let epoch = before.metadata.topics[0].partitions[0].leader_epoch;
    assert_eq!(epoch, 0, "one node leads at epoch 0");
    for (requested, expected) in [
        (epoch + 5, ErrorCode::UnknownLeaderEpoch),
        (i32::MAX, ErrorCode::UnknownLeaderEpoch),
        (epoch, ErrorCode::None),
        (-1, ErrorCode::None), // -1: not checked
    ] {
        let partition = FetchPartition {
            current_leader_epoch: requested,
            ..fetch_partition(TOPIC, 0, 0)
        };
        let fetched = fixture.fetch_one(fetch_request(partition)).await;
        assert_eq!(code(&fetched.error), expected, "epoch {requested}");
        if expected != ErrorCode::None {
            assert!(fetched.records.is_empty(), "no data with a refused epoch");
        }
    }
    fixture.assert_unchanged(&before, "leader epochs").await;
}
