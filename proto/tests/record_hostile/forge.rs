//! Hand-made batches for hostile-input tests: any header values, any records-section bytes,
//! with a correct CRC unless a test breaks it on purpose — so each test reaches the check
//! it is about instead of failing earlier at the CRC.

use strata_proto::record::varint::{encode_varint, encode_varlong};
use strata_proto::record::{
    compute_crc, BatchHeader, BATCH_HEADER_BYTES, BATCH_LENGTH_PREFIX_BYTES, MAGIC,
};
use strata_proto::types::{LeaderEpoch, Offset};

/// A plain create-time header for `record_count` records with all timestamps 0.
pub fn header(record_count: i32) -> BatchHeader {
    BatchHeader {
        base_offset: Offset(0),
        batch_length: 0,
        partition_leader_epoch: LeaderEpoch(-1),
        magic: MAGIC,
        crc: 0,
        attributes: 0,
        last_offset_delta: record_count.wrapping_sub(1),
        base_timestamp: 0,
        max_timestamp: 0,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        record_count,
    }
}

/// Header + section with `batch_length` set to the real size and a correct CRC.
pub fn batch(mut header: BatchHeader, section: &[u8]) -> Vec<u8> {
    header.batch_length = (BATCH_HEADER_BYTES + section.len() - BATCH_LENGTH_PREFIX_BYTES) as i32;
    batch_keeping_length(header, section)
}

/// Header + section with `batch_length` as given and a correct CRC.
pub fn batch_keeping_length(header: BatchHeader, section: &[u8]) -> Vec<u8> {
    let mut bytes = header.encode().to_vec();
    bytes.extend_from_slice(section);
    let crc = compute_crc(&bytes);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    bytes
}

pub fn varint(value: i32) -> Vec<u8> {
    let mut out = Vec::new();
    encode_varint(value, &mut out);
    out
}

pub fn varlong(value: i64) -> Vec<u8> {
    let mut out = Vec::new();
    encode_varlong(value, &mut out);
    out
}

/// Prefixes a record body with its length varint.
pub fn record_from_body(body: &[u8]) -> Vec<u8> {
    let mut out = varint(body.len() as i32);
    out.extend_from_slice(body);
    out
}

/// The body of a record with the given fields up to (excluding) the header count.
pub fn body_prefix(
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Vec<u8> {
    let mut body = vec![0u8]; // attributes
    body.extend(varlong(timestamp_delta));
    body.extend(varint(offset_delta));
    for field in [key, value] {
        match field {
            None => body.extend(varint(-1)),
            Some(bytes) => {
                body.extend(varint(bytes.len() as i32));
                body.extend_from_slice(bytes);
            }
        }
    }
    body
}

/// A well-formed record with no headers.
pub fn record(offset_delta: i32, timestamp_delta: i64, value: &[u8]) -> Vec<u8> {
    let mut body = body_prefix(offset_delta, timestamp_delta, None, Some(value));
    body.extend(varint(0));
    record_from_body(&body)
}

/// Well-formed records with offset deltas `0..count` and timestamp delta 0.
pub fn records(count: i32) -> Vec<u8> {
    (0..count)
        .flat_map(|delta| record(delta, 0, b"v"))
        .collect()
}
