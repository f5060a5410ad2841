//! Records go in through the Produce stream and come back unchanged through Fetch: keys,
//! headers, null values, lz4 and zstd batches, many requests in flight on one stream with
//! dense offsets in send order per partition; a long-poll fetch wakes up for new data;
//! a fetch session (FetchStream) answers from where each answer ended, waits at the end
//! of the log for new data, and ends after an error; ListOffsets answers earliest, latest
//! and by timestamp; InitProducerId hands out distinct ids.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use common::{
    assert_ok, batch, bounded, connect, create_topic, fetch, fetch_all, fetch_partition,
    init_producer_id, latest_offset, list_offset, now_ms, produce_ok, produce_request,
    start_broker, values_batch, ProduceStream,
};
use strata_proto::api::v1::{
    ErrorCode, FetchRequest, FetchResponse, FetchSessionRequest, OffsetSpec,
};
use strata_proto::record::{BatchSettings, Compression, Header, Record};
use tokio_stream::StreamExt;

const TOPIC: &str = "roundtrip";
const REQUESTS: u64 = 20;

/// The three records of request `request`: a keyed record with headers (one with a null
/// value), a record with neither key nor value, and a compressible one with an empty key.
fn records_of(request: u64) -> Vec<Record> {
    let now = now_ms();
    vec![
        Record {
            timestamp_ms: now,
            key: Some(Bytes::from(format!("key-{request}"))),
            value: Some(Bytes::from(format!("value-{request}"))),
            headers: vec![
                Header::new("trace", Some(Bytes::from(format!("t-{request}")))),
                Header::new("null-header", None),
            ],
        },
        Record {
            timestamp_ms: now + 1,
            key: None,
            value: None,
            headers: Vec::new(),
        },
        Record {
            timestamp_ms: now + 2,
            key: Some(Bytes::new()),
            value: Some(Bytes::from(format!("{request:04}").repeat(500))),
            headers: vec![Header::new("", Some(Bytes::new()))],
        },
    ]
}

fn compression_of(request: u64) -> Compression {
    [Compression::None, Compression::Lz4, Compression::Zstd][(request % 3) as usize]
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_batches_come_back_unchanged_with_dense_offsets_in_send_order() {
    let data = tempfile::tempdir().unwrap();
    let broker = start_broker(data.path(), &[]);
    let mut client = connect(&broker).await;
    create_topic(&mut client, TOPIC, 2, &[]).await;

    // 20 requests sent before any response is read.
    let mut stream = ProduceStream::open(&mut client).await;
    let mut sent: BTreeMap<i32, Vec<(u64, Vec<Record>)>> = BTreeMap::new();
    for request_id in 0..REQUESTS {
        let partition = (request_id % 2) as i32;
        let records = records_of(request_id);
        let settings = BatchSettings {
            compression: compression_of(request_id),
            ..BatchSettings::default()
        };
        let bytes = batch(&records, settings);
        stream
            .send(produce_request(request_id, TOPIC, partition, bytes))
            .await;
        sent.entry(partition)
            .or_default()
            .push((request_id, records));
    }
    let mut base_offsets = BTreeMap::new();
    for _ in 0..REQUESTS {
        let response = stream.recv().await.expect("produce response");
        assert_ok(&response.error);
        assert!(
            base_offsets
                .insert(response.request_id, response.base_offset)
                .is_none(),
            "two responses for request {}",
            response.request_id
        );
    }
    assert_eq!(base_offsets.len(), REQUESTS as usize);

    for (partition, requests) in &sent {
        // Dense and in send order: each request starts where the previous one ended.
        let mut expected_base = 0;
        let mut expected_records = Vec::new();
        for (request_id, records) in requests {
            assert_eq!(
                base_offsets[request_id], expected_base,
                "partition {partition}, request {request_id}"
            );
            expected_base += records.len() as i64;
            expected_records.extend(records.iter().cloned());
        }
        let fetched = fetch_all(&mut client, TOPIC, *partition).await;
        let offsets: Vec<i64> = fetched.iter().map(|record| record.offset.0).collect();
        assert_eq!(offsets, (0..expected_base).collect::<Vec<_>>());
        let fetched: Vec<Record> = fetched.into_iter().map(Record::from).collect();
        assert_eq!(fetched, expected_records, "partition {partition}");
        assert_eq!(
            latest_offset(&mut client, TOPIC, *partition).await,
            expected_base
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_poll_at_the_high_watermark_returns_the_data_produced_meanwhile() {
    const ATTEMPTS: usize = 5;
    let data = tempfile::tempdir().unwrap();
    let broker = start_broker(data.path(), &[]);
    let mut client = connect(&broker).await;
    create_topic(&mut client, TOPIC, 1, &[]).await;
    produce_ok(&mut client, TOPIC, 0, values_batch(&["before"])).await;

    // A machine slow enough to let the 2 s wait run out before the produce lands gets
    // another attempt; what is asserted is that the poll returns the new record.
    for attempt in 0..ATTEMPTS {
        let high_watermark = latest_offset(&mut client, TOPIC, 0).await;
        let mut poller = client.clone();
        let poll = tokio::spawn(async move {
            let request = FetchRequest {
                max_wait_ms: 2_000,
                min_bytes: 1,
                max_bytes: 1 << 20,
                partitions: vec![fetch_partition(TOPIC, 0, high_watermark)],
            };
            fetch(&mut poller, request).await
        });
        let value = format!("during-{attempt}");
        let base_offset = produce_ok(&mut client, TOPIC, 0, values_batch(&[&value])).await;
        assert_eq!(base_offset, high_watermark);
        let response = bounded("long poll", poll).await.unwrap();
        let fetched = &response.partitions[0];
        assert_ok(&fetched.error);
        if fetched.records.is_empty() {
            continue;
        }
        let records = common::decode_records(&fetched.records);
        let record = records
            .iter()
            .find(|record| record.offset.0 == high_watermark)
            .expect("the record produced during the poll");
        assert_eq!(record.value.as_deref(), Some(value.as_bytes()));
        return;
    }
    panic!("no long poll returned the record produced while it waited");
}

/// The offsets and values of one answer's only partition, and where it was read from.
fn session_answer(answer: &FetchResponse) -> (i64, Vec<(i64, String)>) {
    assert_eq!(answer.partitions.len(), 1, "{answer:?}");
    let fetched = &answer.partitions[0];
    assert_ok(&fetched.error);
    let records = common::decode_records(&fetched.records)
        .into_iter()
        .map(|record| {
            let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
            (record.offset.0, value)
        })
        .collect();
    (fetched.fetch_offset, records)
}

/// The first message of a fetch session of partition 0 from `fetch_offset` (answers
/// at once, one whole batch each when `one_batch` is set), granting `grant` answers.
fn open_session(fetch_offset: i64, one_batch: bool, grant: u32) -> FetchSessionRequest {
    let mut partition = fetch_partition(TOPIC, 0, fetch_offset);
    if one_batch {
        partition.partition_max_bytes = 1;
    }
    FetchSessionRequest {
        fetch: Some(FetchRequest {
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: 1 << 20,
            partitions: vec![partition],
        }),
        grant,
    }
}

/// Opens a fetch session with `first`; later grants go through the returned sender.
async fn start_session(
    client: &mut common::Client,
    first: FetchSessionRequest,
) -> (
    tokio::sync::mpsc::Sender<FetchSessionRequest>,
    tonic::Streaming<FetchResponse>,
) {
    let (grants, messages) = tokio::sync::mpsc::channel(8);
    grants.send(first).await.unwrap();
    let answers = bounded(
        "FetchStream",
        client.fetch_stream(tokio_stream::wrappers::ReceiverStream::new(messages)),
    )
    .await
    .unwrap()
    .into_inner();
    (grants, answers)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fetch_session_reads_on_from_each_answer_and_waits_at_the_end() {
    let data = tempfile::tempdir().unwrap();
    let broker = start_broker(data.path(), &[]);
    let mut client = connect(&broker).await;
    create_topic(&mut client, TOPIC, 1, &[]).await;
    produce_ok(&mut client, TOPIC, 0, values_batch(&["a", "b", "c"])).await;
    produce_ok(&mut client, TOPIC, 0, values_batch(&["d", "e"])).await;

    // partition_max_bytes 1: each answer is one whole batch (at least one is returned).
    let (grants, mut answers) = start_session(&mut client, open_session(1, true, 3)).await;
    let mut next_answer = async || {
        bounded("session answer", answers.next())
            .await
            .expect("the session goes on")
            .expect("an answer")
    };
    let letters = |pairs: &[(i64, &str)]| -> Vec<(i64, String)> {
        pairs
            .iter()
            .map(|(offset, value)| (*offset, (*value).to_owned()))
            .collect()
    };
    // The first batch starts before the offset asked for; the client skips offset 0.
    assert_eq!(
        session_answer(&next_answer().await),
        (1, letters(&[(0, "a"), (1, "b"), (2, "c")]))
    );
    assert_eq!(
        session_answer(&next_answer().await),
        (3, letters(&[(3, "d"), (4, "e")]))
    );
    // At the end of the log: an empty answer (asked with max_wait 0). The session then
    // waits for data, and the record produced meanwhile comes next (after empty waits
    // of at least 100 ms each, if this machine is slow to produce it).
    assert_eq!(session_answer(&next_answer().await), (5, Vec::new()));
    let grant = |grant| FetchSessionRequest { fetch: None, grant };
    grants.send(grant(50)).await.unwrap();
    let mut producer_client = client.clone();
    let producer = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        produce_ok(&mut producer_client, TOPIC, 0, values_batch(&["f"])).await
    });
    let mut records = Vec::new();
    for _ in 0..50 {
        let (from, got) = session_answer(&next_answer().await);
        assert_eq!(from, 5);
        if !got.is_empty() {
            records = got;
            break;
        }
    }
    assert_eq!(bounded("produce", producer).await.unwrap(), 5);
    assert_eq!(records, letters(&[(5, "f")]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fetch_session_sends_only_granted_answers() {
    let data = tempfile::tempdir().unwrap();
    let broker = start_broker(data.path(), &[]);
    let mut client = connect(&broker).await;
    create_topic(&mut client, TOPIC, 1, &[]).await;
    for value in ["a", "b", "c", "d", "e"] {
        produce_ok(&mut client, TOPIC, 0, values_batch(&[value])).await;
    }
    // Two answers granted and nothing more to say: five batches are there, two come,
    // and the session ends with OK once the grants are used.
    let messages = tokio_stream::iter([open_session(0, true, 2)]);
    let mut answers = bounded("FetchStream", client.fetch_stream(messages))
        .await
        .unwrap()
        .into_inner();
    let mut offsets = Vec::new();
    while let Some(answer) = bounded("answer", answers.next()).await {
        let (from, records) = session_answer(&answer.unwrap());
        offsets.push((from, records.len()));
    }
    assert_eq!(offsets, [(0, 1), (1, 1)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fetch_session_takes_turns_between_partitions_when_max_bytes_binds() {
    let data = tempfile::tempdir().unwrap();
    let broker = start_broker(data.path(), &[]);
    let mut client = connect(&broker).await;
    create_topic(&mut client, TOPIC, 2, &[]).await;
    for value in ["a", "b", "c"] {
        produce_ok(&mut client, TOPIC, 0, values_batch(&[value])).await;
        produce_ok(&mut client, TOPIC, 1, values_batch(&[value])).await;
    }
    // max_bytes 1: an answer holds the one batch of the first partition in request order
    // that has data (KIP-74). Partition 0 always has data here, so only the session's
    // rotation lets partition 1 in.
    let first = FetchSessionRequest {
        fetch: Some(FetchRequest {
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: 1,
            partitions: vec![fetch_partition(TOPIC, 0, 0), fetch_partition(TOPIC, 1, 0)],
        }),
        grant: 4,
    };
    let mut answers = bounded(
        "FetchStream",
        client.fetch_stream(tokio_stream::iter([first])),
    )
    .await
    .unwrap()
    .into_inner();
    let mut served = Vec::new();
    while let Some(answer) = bounded("answer", answers.next()).await {
        for fetched in answer.unwrap().partitions {
            assert_ok(&fetched.error);
            if !fetched.records.is_empty() {
                let records = common::decode_records(&fetched.records);
                served.push((fetched.partition, records[0].offset.0));
            }
        }
    }
    assert_eq!(served, [(0, 0), (1, 0), (0, 1), (1, 1)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fetch_session_ends_after_an_answer_with_an_error() {
    let data = tempfile::tempdir().unwrap();
    let broker = start_broker(data.path(), &[]);
    let mut client = connect(&broker).await;
    create_topic(&mut client, TOPIC, 1, &[]).await;
    produce_ok(&mut client, TOPIC, 0, values_batch(&["a"])).await;
    // Granted plenty, and the client's side stays open: only the error ends it.
    let (grants, mut answers) = start_session(&mut client, open_session(40, false, 10)).await;
    let answer = bounded("answer", answers.next()).await.unwrap().unwrap();
    let fetched = &answer.partitions[0];
    assert_eq!(common::code(&fetched.error), ErrorCode::OffsetOutOfRange);
    assert_eq!(fetched.fetch_offset, 40);
    assert!(
        bounded("end", answers.next()).await.is_none(),
        "ended with OK"
    );
    drop(grants);
}

#[tokio::test(flavor = "multi_thread")]
async fn list_offsets_finds_earliest_latest_and_the_first_record_at_a_timestamp() {
    let data = tempfile::tempdir().unwrap();
    let broker = start_broker(data.path(), &[]);
    let mut client = connect(&broker).await;
    create_topic(&mut client, "one-per-batch", 1, &[]).await;
    create_topic(&mut client, "one-batch", 1, &[]).await;

    let record = |timestamp_ms| Record::from_value(timestamp_ms, Bytes::from_static(b"v"));
    for timestamp_ms in [1_000, 2_000, 3_000] {
        let bytes = batch(&[record(timestamp_ms)], BatchSettings::default());
        produce_ok(&mut client, "one-per-batch", 0, bytes).await;
    }
    let records: Vec<Record> = [1_000, 2_000, 3_000].into_iter().map(record).collect();
    produce_ok(
        &mut client,
        "one-batch",
        0,
        batch(&records, BatchSettings::default()),
    )
    .await;

    for topic in ["one-per-batch", "one-batch"] {
        let earliest = list_offset(&mut client, topic, 0, OffsetSpec::Earliest, 0).await;
        assert_ok(&earliest.error);
        assert_eq!(earliest.offset, 0, "{topic}");
        assert_eq!(latest_offset(&mut client, topic, 0).await, 3, "{topic}");
        for (timestamp_ms, expected) in [(0, 0), (1_000, 0), (1_500, 1), (3_000, 2), (3_001, -1)] {
            let listed =
                list_offset(&mut client, topic, 0, OffsetSpec::Timestamp, timestamp_ms).await;
            assert_ok(&listed.error);
            assert_eq!(listed.offset, expected, "{topic} at {timestamp_ms} ms");
            if expected >= 0 {
                assert_eq!(listed.timestamp_ms, (expected + 1) * 1_000, "{topic}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn init_producer_id_hands_out_distinct_ids_at_epoch_zero() {
    let data = tempfile::tempdir().unwrap();
    let broker = start_broker(data.path(), &[]);
    let mut client = connect(&broker).await;
    let mut ids = HashSet::new();
    for _ in 0..5 {
        let (producer_id, epoch) = init_producer_id(&mut client).await;
        assert!(producer_id >= 0);
        assert_eq!(epoch, 0);
        assert!(
            ids.insert(producer_id),
            "producer id {producer_id} handed out twice"
        );
    }
}
