//! What log compaction needs from the batch format, with no I/O: the keys of a stored
//! batch ([`visit_keys`]), the batch rewritten without some of its records
//! ([`retain_records`]), and the record-less batch that stands for records removed whole
//! ([`empty_batch`]).
//!
//! Rules of a rewritten batch (Kafka's, for RecordBatch v2 cleaned by its `LogCleaner`):
//! - `base_offset`, `partition_leader_epoch`, `last_offset_delta`, `base_timestamp`, the
//!   attributes (compression, timestamp type) and the producer fields (`producer_id`,
//!   `producer_epoch`, `base_sequence`) are kept, so no offset changes and an idempotent
//!   producer's sequence range stays what it was;
//! - each kept record keeps its bytes exactly (its offset and timestamp deltas are
//!   relative to the unchanged base), so only `record_count`, `batch_length`,
//!   `max_timestamp` (create time: the largest kept timestamp) and the CRC change;
//! - a compressed batch is decompressed (capped at `decompressed_bytes_max`) and its kept
//!   records are compressed again with the same codec.
//!
//! Offset deltas of a rewritten batch therefore have gaps, and its `record_count` may be
//! below `last_offset_delta + 1`: readers walk deltas, never count them (`section.rs`).

use bytes::Bytes;

use super::compression::compress;
use super::decode::DecodeLimits;
use super::error::RecordError;
use super::header::{
    check_stored_batch, compute_crc, set_crc, BatchHeader, Compression, TimestampType,
    BATCH_HEADER_BYTES, BATCH_LENGTH_PREFIX_BYTES, MAGIC,
};
use super::model::NO_TIMESTAMP;
use super::section::{for_each_record, records_section};
use crate::types::{LeaderEpoch, Offset};

/// One record of a stored batch, as the cleaner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordKey<'a> {
    /// `base_offset + offset_delta`.
    pub offset: Offset,
    /// `None` for a record without a key.
    pub key: Option<&'a [u8]>,
    /// The value is null: a tombstone, which deletes its key.
    pub is_tombstone: bool,
}

/// What [`retain_records`] made of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retained {
    /// Every record is kept: the batch stays as it is, byte for byte.
    All,
    /// Some records are kept: the rewritten batch.
    Some(Bytes),
    /// No record is kept.
    None,
}

/// Calls `visit` with each record of one whole stored batch, in offset order, after the
/// checks [`decode_batch`](super::decode_batch) makes (framing, CRC, structure).
pub fn visit_keys(
    batch: &[u8],
    limits: &DecodeLimits,
    mut visit: impl FnMut(RecordKey<'_>),
) -> Result<BatchHeader, RecordError> {
    let header = check_stored_batch(batch, limits.batch_bytes_max)?;
    let section = records_section(batch, &header, limits.decompressed_bytes_max)?;
    for_each_record(
        &section,
        header.record_count,
        header.last_offset_delta,
        |view| {
            visit(RecordKey {
                offset: header.base_offset.plus(i64::from(view.offset_delta)),
                key: view.key,
                is_tombstone: view.value.is_none(),
            });
            Ok(())
        },
    )?;
    Ok(header)
}

/// The batch with only the records `keep` accepts (see the module docs for what changes).
pub fn retain_records(
    batch: &[u8],
    limits: &DecodeLimits,
    mut keep: impl FnMut(RecordKey<'_>) -> bool,
) -> Result<Retained, RecordError> {
    let header = check_stored_batch(batch, limits.batch_bytes_max)?;
    let section = records_section(batch, &header, limits.decompressed_bytes_max)?;
    let mut kept = Vec::new();
    let mut kept_count = 0_i32;
    let mut max_timestamp = NO_TIMESTAMP;
    let mut position = 0_usize;
    for_each_record(
        &section,
        header.record_count,
        header.last_offset_delta,
        |view| {
            let start = position;
            position += view.size_bytes;
            let record = RecordKey {
                offset: header.base_offset.plus(i64::from(view.offset_delta)),
                key: view.key,
                is_tombstone: view.value.is_none(),
            };
            if keep(record) {
                kept.extend_from_slice(section.get(start..position).unwrap_or(&[]));
                kept_count += 1;
                let timestamp_ms = header.base_timestamp.wrapping_add(view.timestamp_delta);
                max_timestamp = max_timestamp.max(timestamp_ms);
            }
            Ok(())
        },
    )?;
    if kept_count == header.record_count {
        return Ok(Retained::All);
    }
    if kept_count == 0 {
        return Ok(Retained::None);
    }
    let max_timestamp = match header.timestamp_type() {
        TimestampType::CreateTime => max_timestamp,
        TimestampType::LogAppendTime => header.max_timestamp,
    };
    let records = match header.compression() {
        Some(Compression::None) | None => kept,
        Some(compression) => compress(compression, &kept)?,
    };
    let rewritten = BatchHeader {
        record_count: kept_count,
        max_timestamp,
        ..header
    };
    Ok(Retained::Some(encode(rewritten, &records)?))
}

/// A batch holding no record that covers the offsets `base_offset..=last_offset` under
/// `epoch`: what the cleaner writes where it removed whole batches, so the batches of a
/// segment still follow each other offset by offset. No timestamp (`max_timestamp` -1, so
/// a search by time never lands on it), no producer, no compression.
pub fn empty_batch(
    base_offset: Offset,
    last_offset: Offset,
    epoch: LeaderEpoch,
) -> Result<Bytes, RecordError> {
    let last_offset_delta = i32::try_from(last_offset.0 - base_offset.0)
        .ok()
        .filter(|delta| *delta >= 0)
        .ok_or_else(|| {
            RecordError::invalid(format!(
                "an empty batch cannot span offsets {base_offset}..={last_offset}"
            ))
        })?;
    let header = BatchHeader {
        base_offset,
        batch_length: 0,
        partition_leader_epoch: epoch,
        magic: MAGIC,
        crc: 0,
        attributes: 0,
        last_offset_delta,
        base_timestamp: NO_TIMESTAMP,
        max_timestamp: NO_TIMESTAMP,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        record_count: 0,
    };
    encode(header, &[])
}

/// `header` (its length and CRC computed here) followed by `records`.
fn encode(mut header: BatchHeader, records: &[u8]) -> Result<Bytes, RecordError> {
    let total = BATCH_HEADER_BYTES + records.len();
    header.batch_length = i32::try_from(total - BATCH_LENGTH_PREFIX_BYTES).map_err(|_| {
        RecordError::MessageTooLarge {
            size: total as u64,
            max: i32::MAX as u64,
        }
    })?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(records);
    let crc = compute_crc(&out);
    set_crc(&mut out, crc);
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::record::builder::{BatchBuilder, BatchSettings};
    use crate::record::decode::decode_batch;
    use crate::record::header::{set_base_offset, set_partition_leader_epoch};
    use crate::record::model::Record;
    use crate::record::{next_offset_after, BatchRecords};

    fn batch(compression: Compression) -> Vec<u8> {
        let settings = BatchSettings {
            compression,
            producer_id: 9,
            producer_epoch: 1,
            base_sequence: 30,
            ..BatchSettings::default()
        };
        let mut builder = BatchBuilder::new(settings);
        for (index, key) in ["a", "b", "a", "c"].iter().enumerate() {
            let mut record =
                Record::from_key_value(100 + index as i64, key.as_bytes().to_vec(), vec![b'v'; 50]);
            if index == 3 {
                record.value = None;
            }
            builder.append(&record).unwrap();
        }
        let mut bytes = builder.build().unwrap().to_vec();
        set_base_offset(&mut bytes, Offset(40));
        set_partition_leader_epoch(&mut bytes, LeaderEpoch(3));
        bytes
    }

    #[test]
    fn dropped_records_leave_gaps_and_the_rest_unchanged() {
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let original = batch(compression);
            let limits = DecodeLimits::default();
            let keep_odd = |record: RecordKey<'_>| record.offset.0 % 2 == 1;
            let Retained::Some(rewritten) = retain_records(&original, &limits, keep_odd).unwrap()
            else {
                panic!("some records are kept");
            };
            let decoded = decode_batch(&rewritten, &limits).unwrap();
            let before = BatchHeader::parse(&original).unwrap();
            let header = decoded.header;
            assert_eq!(header.base_offset, Offset(40));
            assert_eq!(header.last_offset(), before.last_offset());
            assert_eq!(header.partition_leader_epoch, LeaderEpoch(3));
            assert_eq!(
                (
                    header.producer_id,
                    header.producer_epoch,
                    header.base_sequence
                ),
                (9, 1, 30)
            );
            assert_eq!(header.compression(), Some(compression));
            assert_eq!((header.record_count, header.max_timestamp), (2, 103));
            let offsets: Vec<i64> = decoded.records.iter().map(|r| r.offset.0).collect();
            assert_eq!(offsets, [41, 43]);
            assert_eq!(
                decoded.records[1].value, None,
                "the tombstone is kept as it was"
            );
            assert_eq!(next_offset_after(&rewritten), Some(Offset(44)));
            let mut reader = BatchRecords::open(&rewritten, &limits).unwrap();
            reader.skip_to(Offset(42)).unwrap();
            assert_eq!(reader.next().unwrap().unwrap().offset, Offset(43));
        }
    }

    #[test]
    fn all_or_nothing_kept() {
        let original = batch(Compression::None);
        let limits = DecodeLimits::default();
        assert_eq!(
            retain_records(&original, &limits, |_| true).unwrap(),
            Retained::All
        );
        assert_eq!(
            retain_records(&original, &limits, |_| false).unwrap(),
            Retained::None
        );
        let mut keys = Vec::new();
        visit_keys(&original, &limits, |record| {
            keys.push((
                record.offset.0,
                record.key.map(<[u8]>::to_vec),
                record.is_tombstone,
            ))
        })
        .unwrap();
        assert_eq!(keys.len(), 4);
        assert_eq!(keys[3], (43, Some(b"c".to_vec()), true));
    }

    #[test]
    fn an_empty_batch_spans_its_offsets_and_yields_nothing() {
        let empty = empty_batch(Offset(10), Offset(19), LeaderEpoch(2)).unwrap();
        let header = check_stored_batch(&empty, usize::MAX).unwrap();
        assert_eq!((header.record_count, header.next_offset()), (0, Offset(20)));
        assert_eq!(header.partition_leader_epoch, LeaderEpoch(2));
        let decoded = decode_batch(&empty, &DecodeLimits::default()).unwrap();
        assert!(decoded.records.is_empty());
        assert_eq!(next_offset_after(&empty), Some(Offset(20)));
        assert!(empty_batch(Offset(10), Offset(9), LeaderEpoch(2)).is_err());
        // A client may never send one.
        let refused = crate::record::validate_batch(&empty, &Default::default()).unwrap_err();
        assert!(refused.to_string().contains("record_count 0"), "{refused}");
    }
}
