//! Shared test fixtures for the storage engine's tests: building batches with known
//! contents and reading a log back into values.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bytes::Bytes;
use strata_proto::record::{
    decode_batch, next_offset_after, BatchBuilder, BatchHeader, BatchSettings, DecodeLimits, Record,
};
use strata_proto::types::Offset;

use super::{Clock, LogConfig, ManualClock, PartitionLog, PreviousShutdown};

/// An encoded batch holding one record per value, timestamps at `timestamp_ms`.
pub fn batch(values: &[Vec<u8>], timestamp_ms: i64) -> Vec<u8> {
    let mut builder = BatchBuilder::new(BatchSettings::default());
    for value in values {
        builder
            .append(&Record::from_value(
                timestamp_ms,
                Bytes::copy_from_slice(value),
            ))
            .unwrap();
    }
    builder.build().unwrap().to_vec()
}

/// A batch of `count` records whose values are `"<tag>-<i>"`.
pub fn tagged_batch(tag: &str, count: usize, timestamp_ms: i64) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..count)
        .map(|i| format!("{tag}-{i}").into_bytes())
        .collect();
    batch(&values, timestamp_ms)
}

/// Every (offset, value) in `bytes`, a run of whole batches.
pub fn decode_values(mut bytes: &[u8]) -> Vec<(Offset, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let header = BatchHeader::parse(bytes).unwrap();
        let (one, rest) = bytes.split_at(header.total_bytes());
        let decoded = decode_batch(one, &DecodeLimits::default()).unwrap();
        for record in decoded.records {
            out.push((
                record.offset,
                record.value.map(|v| v.to_vec()).unwrap_or_default(),
            ));
        }
        bytes = rest;
    }
    out
}

/// Every (offset, value) from the log start to its end.
pub fn read_all(log: &PartitionLog) -> Vec<(Offset, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    loop {
        let result = log.read(offset, 1 << 20, None).unwrap();
        if result.batches.is_empty() {
            break;
        }
        let values = decode_values(&result.batches);
        offset = values.last().unwrap().0.plus(1);
        out.extend(values);
    }
    out
}

/// The log's batches from `offset` to its end, exactly as stored, laid end to end (what a
/// follower fetching everything would receive).
pub fn read_bytes_from(log: &PartitionLog, mut offset: Offset) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let result = log.read(offset, 1 << 20, None).unwrap();
        let Some(next) = next_offset_after(&result.batches) else {
            break;
        };
        out.extend_from_slice(&result.batches);
        offset = next;
    }
    out
}

/// A small-segment configuration so tests roll often. With `STRATA_TEST_LOG_IO=direct`
/// in the environment the logs use direct I/O (`.ci/run` runs the log tests both ways).
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        index_bytes_max: 4096,
        direct_io: std::env::var("STRATA_TEST_LOG_IO").is_ok_and(|io| io == "direct"),
        ..LogConfig::default()
    }
}

pub fn open(
    dir: &std::path::Path,
    config: &LogConfig,
    clock: &ManualClock,
    previous: PreviousShutdown,
) -> PartitionLog {
    let clock: Arc<dyn Clock> = Arc::new(clock.clone());
    PartitionLog::open(dir, config.clone(), clock, previous).unwrap()
}
