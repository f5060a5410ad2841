//! The broker every hostile-input test starts, and what a refused input must not change.

use bytes::Bytes;
use strata_proto::api::v1::{
    DescribeTopicsResponse, Error, ErrorCode, FetchPartition, FetchRequest, FetchedPartition,
    MetadataResponse, TopicSpec,
};
use strata_tests::broker_process::BrokerProcess;

use crate::common::{
    code, connect, create_topic, describe, fetch, metadata, produce, produce_ok, start_broker,
    try_create_topic, values_batch, Client,
};

pub const TOPIC: &str = "target";
pub const PARTITIONS: i32 = 2;

/// A running broker with topic [`TOPIC`]: two records in partition 0, one in 1.
pub struct Fixture {
    pub data: tempfile::TempDir,
    pub broker: BrokerProcess,
    pub client: Client,
}

/// What a refused input must leave exactly as it was.
#[derive(Debug, PartialEq)]
pub struct State {
    pub metadata: MetadataResponse,
    pub description: DescribeTopicsResponse,
    pub directories: Vec<String>,
}

pub async fn fixture(extra_args: &[&str]) -> Fixture {
    let data = tempfile::tempdir().unwrap();
    let broker = start_broker(data.path(), extra_args);
    let mut client = connect(&broker).await;
    create_topic(&mut client, TOPIC, PARTITIONS, &[]).await;
    produce_ok(&mut client, TOPIC, 0, values_batch(&["seed-0", "seed-1"])).await;
    produce_ok(&mut client, TOPIC, 1, values_batch(&["seed-2"])).await;
    Fixture {
        data,
        broker,
        client,
    }
}

impl Fixture {
    pub async fn state(&mut self) -> State {
        let mut directories: Vec<String> = std::fs::read_dir(self.data.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        directories.sort();
        State {
            metadata: metadata(&mut self.client).await,
            description: describe(&mut self.client, &[]).await,
            directories,
        }
    }

    pub async fn assert_unchanged(&mut self, before: &State, input: &str) {
        let after = self.state().await;
        assert_eq!(&after, before, "{input} changed the broker's state");
    }

    /// Produces `records` to `partition`; the broker must refuse them with `expected`
    /// and change nothing. Returns the error for further checks.
    pub async fn assert_produce_refused(
        &mut self,
        input: &str,
        partition: i32,
        records: Bytes,
        expected: ErrorCode,
    ) -> Error {
        let before = self.state().await;
        let response = produce(&mut self.client, TOPIC, partition, records).await;
        assert_eq!(code(&response.error), expected, "{input}: {response:?}");
        assert_eq!(response.base_offset, -1, "{input}");
        self.assert_unchanged(&before, input).await;
        response.error.unwrap()
    }

    pub async fn fetch_one(&mut self, request: FetchRequest) -> FetchedPartition {
        let response = fetch(&mut self.client, request).await;
        assert_eq!(response.partitions.len(), 1, "{response:?}");
        response.partitions.into_iter().next().unwrap()
    }

    /// Creates `spec`; the broker must refuse it with `expected` and change nothing.
    pub async fn assert_create_refused(&mut self, spec: TopicSpec, expected: ErrorCode) {
        let input = format!("CreateTopics {:?}", spec.name);
        let before = self.state().await;
        let result = try_create_topic(&mut self.client, spec).await;
        assert_eq!(code(&result.error), expected, "{input}: {result:?}");
        self.assert_unchanged(&before, &input).await;
    }
}

pub fn fetch_request(partition: FetchPartition) -> FetchRequest {
    FetchRequest {
        max_wait_ms: 0,
        min_bytes: 0,
        max_bytes: 1 << 20,
        partitions: vec![partition],
    }
}
