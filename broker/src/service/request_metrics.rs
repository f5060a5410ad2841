//! Request metrics, counted where requests are answered (`admin/metrics.rs` names the
//! series): `strata_request_duration_seconds{rpc}` and `strata_requests_total{rpc,code}`
//! for every RPC, and the bytes and records producers append and consumers fetch, per
//! topic.
//!
//! Two places time requests:
//!
//! - [`RequestMetricsLayer`], the outermost layer of the server, times each unary call
//!   (request in → response headers out; tonic builds a unary answer before its headers
//!   go out) and reads its gRPC status.
//! - Calls that carry a stream of requests are timed per request, not per stream:
//!   `produce` (request read → answer queued, its commit included) in
//!   `service/produce.rs`, and `fetch` (the unary call, each answer of a fetch session
//!   and the zero-copy path alike, a long poll's wait included) in
//!   `client_api::fetch_response`. The follower's `ReplicaFetch` stream is not timed.
//!
//! The `code` label is `OK` for a success; otherwise the Strata error code of the answer
//! (`NOT_LEADER`, …) for produce and fetch, whose errors travel inside the answer, and the
//! gRPC status name (`INVALID_ARGUMENT`, …) for the others. RPC names come from a fixed
//! table, so a client calling made-up methods adds no series.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use metrics::{counter, histogram};
use strata_proto::api::v1::{ErrorCode, FetchedPartition};
use strata_proto::record::BatchHeader;

use crate::admin::metrics::{
    BYTES_IN_TOTAL, BYTES_OUT_TOTAL, RECORDS_IN_TOTAL, RECORDS_OUT_TOTAL, REQUESTS_TOTAL,
    REQUEST_DURATION_SECONDS,
};

/// The `rpc` label of the produce requests of a produce stream.
pub const PRODUCE: &str = "produce";
/// The `rpc` label of fetches (unary, fetch sessions, zero-copy path).
pub const FETCH: &str = "fetch";

/// The unary RPCs timed by [`RequestMetricsLayer`]: gRPC path → `rpc` label.
const UNARY_RPCS: [(&str, &str); 23] = [
    ("/strata.v1.ClientApi/Metadata", "metadata"),
    ("/strata.v1.ClientApi/CreateTopics", "create_topics"),
    ("/strata.v1.ClientApi/DeleteTopics", "delete_topics"),
    ("/strata.v1.ClientApi/DescribeTopics", "describe_topics"),
    ("/strata.v1.ClientApi/AlterConfigs", "alter_configs"),
    ("/strata.v1.ClientApi/CreatePartitions", "create_partitions"),
    ("/strata.v1.ClientApi/ListOffsets", "list_offsets"),
    ("/strata.v1.ClientApi/InitProducerId", "init_producer_id"),
    ("/strata.v1.ClientApi/DescribeCluster", "describe_cluster"),
    ("/strata.v1.ClientApi/ElectLeaders", "elect_leaders"),
    (
        "/strata.v1.ClientApi/ReassignPartitions",
        "reassign_partitions",
    ),
    (
        "/strata.v1.Replication/OffsetForLeaderEpoch",
        "offset_for_leader_epoch",
    ),
    ("/strata.v1.Controller/RaftAppend", "raft_append"),
    ("/strata.v1.Controller/RaftVote", "raft_vote"),
    ("/strata.v1.Controller/RaftSnapshot", "raft_snapshot"),
    ("/strata.v1.Controller/Submit", "controller_submit"),
    ("/strata.v1.GroupApi/FindCoordinator", "find_coordinator"),
    (
        "/strata.v1.GroupApi/ConsumerGroupHeartbeat",
        "consumer_group_heartbeat",
    ),
    ("/strata.v1.GroupApi/OffsetCommit", "offset_commit"),
    ("/strata.v1.GroupApi/OffsetFetch", "offset_fetch"),
    ("/strata.v1.GroupApi/ListGroups", "list_groups"),
    ("/strata.v1.GroupApi/DescribeGroups", "describe_groups"),
    ("/strata.v1.GroupApi/DeleteGroups", "delete_groups"),
];

/// The `rpc` label of a unary call's path, or `None` for a path not timed here.
pub fn unary_rpc(path: &str) -> Option<&'static str> {
    UNARY_RPCS
        .iter()
        .find(|(known, _)| *known == path)
        .map(|(_, rpc)| *rpc)
}

/// The calls that stream, by gRPC path: not timed per call, but named when a shutdown
/// reports what it still waits for ([`call_name`]).
const STREAMING_RPCS: [(&str, &str); 4] = [
    ("/strata.v1.ClientApi/Produce", "produce_stream"),
    ("/strata.v1.ClientApi/FetchStream", "fetch_stream"),
    ("/strata.v1.ClientApi/Fetch", "fetch"),
    ("/strata.v1.Replication/ReplicaFetch", "replica_fetch"),
];

/// A short, fixed name for a call's path: its `rpc` label, the name of a streaming
/// call, the service for health and reflection, else `other` (so made-up paths cannot
/// grow a table).
pub fn call_name(path: &str) -> &'static str {
    if let Some(rpc) = unary_rpc(path) {
        return rpc;
    }
    if let Some((_, name)) = STREAMING_RPCS.iter().find(|(known, _)| *known == path) {
        return name;
    }
    if path.starts_with("/grpc.health.") {
        "health"
    } else if path.starts_with("/grpc.reflection.") {
        "reflection"
    } else {
        "other"
    }
}

/// Counts one request of `rpc` answered with `code` after `elapsed`.
pub fn record_request(rpc: &'static str, code: &'static str, elapsed: Duration) {
    histogram!(REQUEST_DURATION_SECONDS, "rpc" => rpc).record(elapsed.as_secs_f64());
    counter!(REQUESTS_TOTAL, "rpc" => rpc, "code" => code).increment(1);
}

/// The `code` label of a Strata error code carried in an answer.
pub fn error_code_label(code: i32) -> &'static str {
    match ErrorCode::try_from(code) {
        Ok(ErrorCode::None) => "OK",
        Ok(code) => code.as_str_name(),
        Err(_) => "UNKNOWN_SERVER_ERROR",
    }
}

/// The gRPC status names, by code (the gRPC spec's order).
const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The `code` label of a unary answer's headers: its `grpc-status` (present in the
/// headers when the call failed before any message, as tonic answers errors), else `OK`.
pub fn grpc_code_label(headers: &http::HeaderMap) -> &'static str {
    let Some(value) = headers.get("grpc-status") else {
        return "OK";
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.parse::<usize>().ok())
        .and_then(|code| GRPC_CODES.get(code).copied())
        .unwrap_or("UNKNOWN")
}

/// The records of one produced batch, from its header (0 for bytes that are not a
/// batch: the log refuses those anyway).
pub fn batch_record_count(batch: &[u8]) -> u64 {
    BatchHeader::parse(batch).map_or(0, |header| header.record_count.max(0) as u64)
}

/// Counts a batch of `bytes` holding `records` that a producer appended to `topic`.
pub fn produced(topic: &str, bytes: usize, records: u64) {
    counter!(BYTES_IN_TOTAL, "topic" => topic.to_owned()).increment(bytes as u64);
    counter!(RECORDS_IN_TOTAL, "topic" => topic.to_owned()).increment(records);
}

/// Records in `batches`, whole batches one after the other as the log returns them,
/// from each batch header's record count (a torn tail counts nothing).
pub fn record_count(mut batches: &[u8]) -> u64 {
    let mut records = 0_u64;
    while let Ok(header) = BatchHeader::parse(batches) {
        let Some(rest) = batches.get(header.total_bytes()..) else {
            break;
        };
        records += header.record_count.max(0) as u64;
        batches = rest;
    }
    records
}

/// Counts one fetch answer begun at `started`: bytes and records per topic, and the
/// request with the first error among its partitions (`OK` when there is none).
pub fn fetched(partitions: &[FetchedPartition], started: Instant) {
    let mut code = "OK";
    for partition in partitions {
        let error = partition.error.as_ref().map_or(0, |error| error.code);
        if code == "OK" && error != ErrorCode::None as i32 {
            code = error_code_label(error);
        }
        if partition.records.is_empty() {
            continue;
        }
        let topic = partition.topic.clone();
        counter!(BYTES_OUT_TOTAL, "topic" => topic.clone())
            .increment(partition.records.len() as u64);
        counter!(RECORDS_OUT_TOTAL, "topic" => topic).increment(record_count(&partition.records));
    }
    record_request(FETCH, code, started.elapsed());
}

/// Times the unary calls of [`UNARY_RPCS`]; every other call passes through untouched.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestMetricsLayer;

impl<S> tower::Layer<S> for RequestMetricsLayer {
    type Service = RequestMetrics<S>;

    fn layer(&self, inner: S) -> RequestMetrics<S> {
        RequestMetrics { inner }
    }
}

/// See [`RequestMetricsLayer`].
#[derive(Debug, Clone)]
pub struct RequestMetrics<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for RequestMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let rpc = unary_rpc(request.uri().path());
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            if let Some(rpc) = rpc {
                let code = match &response {
                    Ok(response) => grpc_code_label(response.headers()),
                    Err(_) => "UNKNOWN",
                };
                record_request(rpc, code, started.elapsed());
            }
            response
        })
    }
}

#[cfg(test)]
#[path = "request_metrics_tests.rs"]
mod tests;
