//! `GET /v1/topics/{topic}/records?partition=P&limit=N`: the last `N` records of a
//! partition (default [`LIMIT_DEFAULT`], at most [`LIMIT_MAX`]), oldest first, all below
//! the high watermark, as `strata consume` prints them (keys and values as text when they
//! are UTF-8, else base64 with `*_encoding: "base64"`).
//!
//! The records are read from the partition's leader: this broker's own log when it leads
//! the partition, else the leader's `Fetch` over gRPC. At most [`READ_BYTES_MAX`] are
//! read. The broker setting `admin_peek = false` (`--admin-peek false`) turns the peek off:
//! it then answers 403 `PEEK_DISABLED`, whatever is asked.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use bytes::Bytes;
use strata_proto::api::v1::client_api_client::ClientApiClient;
use strata_proto::api::v1::{ErrorCode, FetchPartition, FetchRequest};
use strata_proto::record::{decode_batch, BatchHeader, DecodeLimits, StoredRecord};
use strata_proto::types::Offset;
use strata_proto::views::record::BASE64_ENCODING;
use strata_proto::views::{RecordHeaderView, RecordView, RecordsPeekView};

use super::topics::known_topic;
use super::{ok, query_pairs, serving, ApiFailure};
use crate::admin::AdminState;
use crate::node::{FetchSpec, Node};

pub const LIMIT_DEFAULT: i64 = 20;
pub const LIMIT_MAX: i64 = 100;
/// The most bytes one peek reads from the log.
pub const READ_BYTES_MAX: usize = 4 << 20;
/// How long the leader's `Fetch` may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// The parsed query: which partition, how many records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeekQuery {
    pub partition: i32,
    pub limit: i64,
}

/// `partition` is required; `limit` defaults to [`LIMIT_DEFAULT`] and is capped at
/// [`LIMIT_MAX`]; other parameters are refused, so a typo is not silently ignored.
pub fn parse_query(query: Option<&str>) -> Result<PeekQuery, String> {
    let mut partition = None;
    let mut limit = LIMIT_DEFAULT;
    for (name, value) in query_pairs(query) {
        match name {
            "partition" => {
                partition = Some(value.parse::<i32>().ok().filter(|p| *p >= 0).ok_or_else(
                    || format!("partition must be a partition number, not {value:?}"),
                )?)
            }
            "limit" => {
                limit = value
                    .parse::<i64>()
                    .ok()
                    .filter(|limit| *limit >= 1)
                    .ok_or_else(|| format!("limit must be a positive number, not {value:?}"))?
                    .min(LIMIT_MAX)
            }
            other => {
                return Err(format!(
                    "unknown parameter {other:?}: give partition and limit"
                ))
            }
        }
    }
    let partition = partition.ok_or("the partition parameter is required (?partition=0)")?;
    Ok(PeekQuery { partition, limit })
}

pub async fn peek(
    State(state): State<Arc<AdminState>>,
    Path(topic): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiFailure> {
    if !state.peek_enabled() {
        return Err(ApiFailure::new(
            StatusCode::FORBIDDEN,
            "PEEK_DISABLED",
            "reading records through the admin API is turned off on this broker (admin_peek = false)",
        ));
    }
    let query = parse_query(query.as_deref()).map_err(ApiFailure::bad_request)?;
    let (node, groups) = serving(&state)?;
    let image = known_topic(&node, &topic)?;
    let Some(partition_state) = image.partitions.get(&query.partition) else {
        return Err(ApiFailure::new(
            StatusCode::NOT_FOUND,
            "UNKNOWN_TOPIC_OR_PARTITION",
            format!("topic {topic:?} has no partition {}", query.partition),
        ));
    };
    let leader = partition_state.leader.ok_or_else(|| {
        ApiFailure::unavailable(
            "LEADER_NOT_AVAILABLE",
            format!("{topic}/{} has no leader now", query.partition),
        )
    })?;
    let key = (topic.clone(), query.partition);
    let ends = groups
        .partition_ends(std::slice::from_ref(&key))
        .await
        .remove(&key)
        .flatten()
        .ok_or_else(|| {
            ApiFailure::unavailable(
                "LEADER_NOT_AVAILABLE",
                format!("the leader of {topic}/{} did not answer", query.partition),
            )
        })?;
    let reader = if leader == node.config().node_id {
        Reader::Local(Arc::clone(&node))
    } else {
        let address = node
            .image()
            .broker(leader)
            .map(|broker| broker.address.clone())
            .ok_or_else(|| {
                ApiFailure::unavailable("LEADER_NOT_AVAILABLE", "the leader is not registered")
            })?;
        let channel = crate::controller::quorum::network::channel(&address, node.config().local_ip)
            .map_err(|reason| ApiFailure::unavailable("LEADER_NOT_AVAILABLE", reason))?;
        Reader::Remote(ClientApiClient::new(channel))
    };
    let from = ends.log_start_offset.max(ends.high_watermark - query.limit);
    let records = reader
        .last_records(&topic, query.partition, from, ends.high_watermark)
        .await?;
    let records = records
        .iter()
        .map(|record| record_view(&topic, query.partition, record))
        .collect();
    Ok(ok(&RecordsPeekView {
        topic,
        partition: query.partition,
        log_start_offset: ends.log_start_offset,
        high_watermark: ends.high_watermark,
        records,
    }))
}

/// Where the records are read: this broker's log or the leader's `Fetch`.
enum Reader {
    Local(Arc<Node>),
    Remote(ClientApiClient<tonic::transport::Channel>),
}

impl Reader {
    /// The records of `[from, to)`, read in as many fetches as the sizes need, within
    /// [`READ_BYTES_MAX`] in all.
    async fn last_records(
        mut self,
        topic: &str,
        partition: i32,
        from: i64,
        to: i64,
    ) -> Result<Vec<StoredRecord>, ApiFailure> {
        let mut records = Vec::new();
        let mut next = from;
        let mut budget = READ_BYTES_MAX;
        while next < to && budget > 0 {
            let batches = self.read(topic, partition, next, budget).await?;
            if batches.is_empty() {
                break;
            }
            budget = budget.saturating_sub(batches.len());
            let before = next;
            for record in decode_all(&batches)? {
                if record.offset.0 >= next && record.offset.0 < to {
                    next = record.offset.0 + 1;
                    records.push(record);
                }
            }
            if next == before {
                break;
            }
        }
        Ok(records)
    }

    async fn read(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Bytes, ApiFailure> {
        let failed = |reason: String| ApiFailure::unavailable("FETCH_FAILED", reason);
        match self {
            Reader::Local(node) => {
                let spec = FetchSpec {
                    topic: topic.to_owned(),
                    partition,
                    fetch_offset: Offset(offset),
                    max_bytes,
                    current_leader_epoch: None,
                };
                let result = node
                    .fetch(vec![spec], Duration::ZERO, 0, max_bytes)
                    .await
                    .into_iter()
                    .next()
                    .ok_or_else(|| failed("no answer".to_owned()))?;
                result
                    .map(|data| data.records)
                    .map_err(|error| failed(error.to_string()))
            }
            Reader::Remote(client) => {
                let max_bytes = u32::try_from(max_bytes).unwrap_or(u32::MAX);
                let request = FetchRequest {
                    max_wait_ms: 0,
                    min_bytes: 0,
                    max_bytes,
                    partitions: vec![FetchPartition {
                        topic: topic.to_owned(),
                        partition,
                        fetch_offset: offset,
                        partition_max_bytes: max_bytes,
                        current_leader_epoch: -1,
                    }],
                };
                let answer = tokio::time::timeout(FETCH_TIMEOUT, client.fetch(request))
                    .await
                    .map_err(|_| {
                        failed(format!(
                            "the leader did not answer within {FETCH_TIMEOUT:?}"
                        ))
                    })?
                    .map_err(|status| failed(status.message().to_owned()))?
                    .into_inner()
                    .partitions
                    .into_iter()
                    .next()
                    .ok_or_else(|| failed("the leader answered for no partition".to_owned()))?;
                match answer.error {
                    Some(error) if error.error_code() != ErrorCode::None => Err(failed(format!(
                        "{}: {}",
                        error.error_code().as_str_name(),
                        error.message
                    ))),
                    _ => Ok(answer.records),
                }
            }
        }
    }
}

/// Every record of the whole batches in `batches`.
fn decode_all(batches: &[u8]) -> Result<Vec<StoredRecord>, ApiFailure> {
    let damaged = |reason: String| ApiFailure::unavailable("CORRUPT_MESSAGE", reason);
    let limits = DecodeLimits::default();
    let mut rest = batches;
    let mut records = Vec::new();
    while !rest.is_empty() {
        let header = BatchHeader::parse(rest).map_err(|error| damaged(error.to_string()))?;
        let Some(batch) = rest.get(..header.total_bytes()) else {
            break; // a partial batch at the end of a size-limited read
        };
        let decoded = decode_batch(batch, &limits).map_err(|error| damaged(error.to_string()))?;
        records.extend(decoded.records);
        rest = rest.get(header.total_bytes()..).unwrap_or_default();
    }
    Ok(records)
}

/// Text for a byte string, and the encoding marker when it had to be base64.
fn encode(bytes: Option<&[u8]>) -> (Option<String>, Option<String>) {
    match bytes {
        None => (None, None),
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => (Some(text.to_owned()), None),
            Err(_) => (
                Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
                Some(BASE64_ENCODING.to_owned()),
            ),
        },
    }
}

fn record_view(topic: &str, partition: i32, record: &StoredRecord) -> RecordView {
    let (key, key_encoding) = encode(record.key.as_deref());
    let (value, value_encoding) = encode(record.value.as_deref());
    RecordView {
        topic: topic.to_owned(),
        partition,
        offset: record.offset.0,
        timestamp: record.timestamp_ms,
        key,
        key_encoding,
        value,
        value_encoding,
        headers: record
            .headers
            .iter()
            .map(|header| {
                let (value, value_encoding) = encode(header.value.as_deref());
                RecordHeaderView {
                    key: header.key.clone(),
                    value,
                    value_encoding,
                }
            })
            .collect(),
    }
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
