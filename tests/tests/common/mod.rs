//! Setup shared by the broker integration tests (`mod common;` in each test file): start a
//! real `strata-broker`, connect the generated gRPC client, create topics, build batches,
//! produce over the bidirectional stream, fetch everything back and list offsets.
//!
//! Every wait here is bounded by [`WAIT`], a safety net so a broker bug fails the test
//! instead of hanging CI; no test asserts on how long anything took.
//!
//! [`raw_grpc`] writes gRPC calls by hand over HTTP/2 for the inputs the generated client
//! cannot send.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

pub mod raw_grpc;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use strata_proto::api::v1::client_api_client::ClientApiClient;
use strata_proto::api::v1::{
    DescribeTopicsRequest, DescribeTopicsResponse, Error, ErrorCode, FetchPartition, FetchRequest,
    FetchResponse, InitProducerIdRequest, ListOffsetsPartition, ListOffsetsRequest, ListedOffset,
    MetadataRequest, MetadataResponse, OffsetSpec, ProduceRequest, ProduceResponse, TopicResult,
    TopicSpec,
};
use strata_proto::record::{
    decode_batch, BatchBuilder, BatchHeader, BatchSettings, DecodeLimits, Record, StoredRecord,
};
use strata_tests::broker_process::BrokerProcess;
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

/// The longest any single step of a test may take before it counts as hung.
pub const WAIT: Duration = Duration::from_secs(60);

/// What the client accepts and sends; above the broker's own limits so that the broker,
/// not the client, is what refuses oversized messages.
const CLIENT_MESSAGE_BYTES_MAX: usize = 64 << 20;

pub type Client = ClientApiClient<Channel>;

/// Awaits `future`, failing the test if it does not finish within [`WAIT`].
pub async fn bounded<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {WAIT:?}"))
}

/// Starts a broker on `data_dir` (the harness blocks while it waits for the port).
pub fn start_broker(data_dir: &Path, extra_args: &[&str]) -> BrokerProcess {
    tokio::task::block_in_place(|| BrokerProcess::start(data_dir, extra_args))
        .expect("start strata-broker (built with `cargo build -p strata-broker`?)")
}

/// Restarts a stopped broker on the same data directory and port.
pub fn restart(broker: &mut BrokerProcess) {
    tokio::task::block_in_place(|| broker.restart()).expect("restart strata-broker");
}

/// SIGTERM and wait for the clean shutdown; it must exit 0.
pub fn terminate(broker: &mut BrokerProcess) {
    let status = tokio::task::block_in_place(|| broker.terminate()).expect("SIGTERM the broker");
    assert!(status.success(), "clean shutdown exited with {status}");
}

/// SIGKILL: a crash.
pub fn kill(broker: &mut BrokerProcess) {
    tokio::task::block_in_place(|| broker.kill()).expect("SIGKILL the broker");
}

/// A client connected to `broker`, retrying while the listener comes up (bounded).
pub async fn connect(broker: &BrokerProcess) -> Client {
    const ATTEMPTS: u32 = 100;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let endpoint = Channel::from_shared(broker.url()).expect("broker url");
        match bounded("connect", endpoint.connect()).await {
            Ok(channel) => {
                return ClientApiClient::new(channel)
                    .max_decoding_message_size(CLIENT_MESSAGE_BYTES_MAX)
                    .max_encoding_message_size(CLIENT_MESSAGE_BYTES_MAX)
            }
            Err(_) if attempt < ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("cannot connect to {}: {error}", broker.url()),
        }
    }
}

/// The code of a response's error field (a missing field is a broker bug).
pub fn code(error: &Option<Error>) -> ErrorCode {
    error
        .as_ref()
        .expect("every response carries an error field")
        .error_code()
}

/// Asserts that a response's error field says success.
#[track_caller]
pub fn assert_ok(error: &Option<Error>) {
    assert_eq!(code(error), ErrorCode::None, "{error:?}");
}

/// Milliseconds since the Unix epoch, for record timestamps inside the broker's window.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since_epoch.as_millis()).expect("timestamp fits i64")
}

pub fn topic_spec(name: &str, partitions: i32, configs: &[(&str, &str)]) -> TopicSpec {
    TopicSpec {
        name: name.to_owned(),
        partitions,
        replication_factor: 1,
        configs: configs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect(),
    }
}

/// Creates one topic and returns its result, whatever it is.
pub async fn try_create_topic(client: &mut Client, spec: TopicSpec) -> TopicResult {
    let request = strata_proto::api::v1::CreateTopicsRequest {
        topics: vec![spec],
        validate_only: false,
    };
    let response = bounded("CreateTopics", client.create_topics(request))
        .await
        .expect("CreateTopics rpc")
        .into_inner();
    assert_eq!(response.results.len(), 1, "{response:?}");
    response.results.into_iter().next().expect("one result")
}

/// Creates a topic that must be accepted.
pub async fn create_topic(
    client: &mut Client,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let result = try_create_topic(client, topic_spec(name, partitions, configs)).await;
    assert_ok(&result.error);
}

pub async fn metadata(client: &mut Client) -> MetadataResponse {
    bounded(
        "Metadata",
        client.metadata(MetadataRequest { topics: vec![] }),
    )
    .await
    .expect("Metadata rpc")
    .into_inner()
}

pub async fn describe(client: &mut Client, names: &[&str]) -> DescribeTopicsResponse {
    let request = DescribeTopicsRequest {
        names: names.iter().map(|name| (*name).to_owned()).collect(),
    };
    bounded("DescribeTopics", client.describe_topics(request))
        .await
        .expect("DescribeTopics rpc")
        .into_inner()
}

/// A new producer id (epoch 0 on a fresh id).
pub async fn init_producer_id(client: &mut Client) -> (i64, i16) {
    let response = bounded(
        "InitProducerId",
        client.init_producer_id(InitProducerIdRequest {}),
    )
    .await
    .expect("InitProducerId rpc")
    .into_inner();
    assert_ok(&response.error);
    let epoch = i16::try_from(response.producer_epoch).expect("epoch fits i16");
    (response.producer_id, epoch)
}

/// One encoded batch of `records`.
pub fn batch(records: &[Record], settings: BatchSettings) -> Bytes {
    let mut builder = BatchBuilder::new(settings);
    for record in records {
        builder.append(record).expect("append record");
    }
    builder.build().expect("build batch")
}

/// One uncompressed, non-idempotent batch of values timestamped now.
pub fn values_batch(values: &[&str]) -> Bytes {
    let now = now_ms();
    let records: Vec<Record> = values
        .iter()
        .map(|value| Record::from_value(now, Bytes::copy_from_slice(value.as_bytes())))
        .collect();
    batch(&records, BatchSettings::default())
}

/// A produce request with acks = all.
pub fn produce_request(
    request_id: u64,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> ProduceRequest {
    ProduceRequest {
        request_id,
        topic: topic.to_owned(),
        partition,
        acks: -1,
        timeout_ms: 30_000,
        records,
    }
}

/// One open `Produce` stream: requests go in without waiting, responses come back tagged
/// with their request ids.
pub struct ProduceStream {
    requests: mpsc::Sender<ProduceRequest>,
    responses: Streaming<ProduceResponse>,
}

impl ProduceStream {
    pub async fn open(client: &mut Client) -> ProduceStream {
        let (requests, receiver) = mpsc::channel(1024);
        let outbound = tokio_stream::wrappers::ReceiverStream::new(receiver);
        let responses = bounded("open Produce stream", client.produce(outbound))
            .await
            .expect("Produce rpc")
            .into_inner();
        ProduceStream {
            requests,
            responses,
        }
    }

    /// Queues a request without waiting for anything.
    pub async fn send(&self, request: ProduceRequest) {
        bounded("queue produce request", self.requests.send(request))
            .await
            .expect("produce stream open");
    }

    /// The next response, or the status that ended the stream.
    pub async fn recv(&mut self) -> Result<ProduceResponse, Status> {
        bounded("produce response", self.responses.message())
            .await?
            .ok_or_else(|| Status::aborted("the broker ended the produce stream"))
    }
}

/// Sends one request on a fresh stream and waits for its response.
pub async fn produce_once(
    client: &mut Client,
    request: ProduceRequest,
) -> Result<ProduceResponse, Status> {
    let request_id = request.request_id;
    let mut stream = ProduceStream::open(client).await;
    stream.send(request).await;
    let response = stream.recv().await?;
    assert_eq!(response.request_id, request_id);
    Ok(response)
}

/// Produces one batch with acks = all; returns the response (error included).
pub async fn produce(
    client: &mut Client,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> ProduceResponse {
    produce_once(client, produce_request(1, topic, partition, records))
        .await
        .expect("produce stream")
}

/// Produces one batch that must be accepted; returns its base offset.
pub async fn produce_ok(client: &mut Client, topic: &str, partition: i32, records: Bytes) -> i64 {
    let response = produce(client, topic, partition, records).await;
    assert_ok(&response.error);
    response.base_offset
}

pub fn fetch_partition(topic: &str, partition: i32, fetch_offset: i64) -> FetchPartition {
    FetchPartition {
        topic: topic.to_owned(),
        partition,
        fetch_offset,
        partition_max_bytes: 1 << 20,
        current_leader_epoch: -1,
    }
}

pub async fn fetch(client: &mut Client, request: FetchRequest) -> FetchResponse {
    bounded("Fetch", client.fetch(request))
        .await
        .expect("Fetch rpc")
        .into_inner()
}

/// Every record of whole `batches` (as a fetch returns them), in order.
pub fn decode_records(mut batches: &[u8]) -> Vec<StoredRecord> {
    let mut records = Vec::new();
    while !batches.is_empty() {
        let header = BatchHeader::parse(batches).expect("batch header");
        let (one, rest) = batches.split_at(header.total_bytes());
        records.extend(
            decode_batch(one, &DecodeLimits::default())
                .expect("decode fetched batch")
                .records,
        );
        batches = rest;
    }
    records
}

/// Every record of a partition from its log start to its high watermark, checking that
/// no fetch returns a record at or above the high watermark it reports.
pub async fn fetch_all(client: &mut Client, topic: &str, partition: i32) -> Vec<StoredRecord> {
    const FETCHES_MAX: usize = 10_000;
    let mut offset = list_offset(client, topic, partition, OffsetSpec::Earliest, 0)
        .await
        .offset;
    let mut records = Vec::new();
    for _ in 0..FETCHES_MAX {
        let request = FetchRequest {
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: 4 << 20,
            partitions: vec![fetch_partition(topic, partition, offset)],
        };
        let response = fetch(client, request).await;
        let fetched = response.partitions.first().expect("one partition");
        assert_ok(&fetched.error);
        let high_watermark = fetched.high_watermark;
        for record in decode_records(&fetched.records) {
            assert!(
                record.offset.0 < high_watermark,
                "fetch returned offset {} at or above the high watermark {high_watermark}",
                record.offset.0
            );
            // A fetch may start at a batch that begins before the fetch offset.
            if record.offset.0 >= offset {
                offset = record.offset.0 + 1;
                records.push(record);
            }
        }
        if offset >= high_watermark {
            return records;
        }
    }
    panic!("{topic}-{partition}: no end after {FETCHES_MAX} fetches");
}

pub async fn list_offset(
    client: &mut Client,
    topic: &str,
    partition: i32,
    spec: OffsetSpec,
    timestamp_ms: i64,
) -> ListedOffset {
    let request = ListOffsetsRequest {
        partitions: vec![ListOffsetsPartition {
            topic: topic.to_owned(),
            partition,
            spec: spec as i32,
            timestamp_ms,
        }],
    };
    let response = bounded("ListOffsets", client.list_offsets(request))
        .await
        .expect("ListOffsets rpc")
        .into_inner();
    response.offsets.into_iter().next().expect("one offset")
}

/// The high watermark (ListOffsets latest), which must be answered without error.
pub async fn latest_offset(client: &mut Client, topic: &str, partition: i32) -> i64 {
    let listed = list_offset(client, topic, partition, OffsetSpec::Latest, 0).await;
    assert_ok(&listed.error);
    listed.offset
}
