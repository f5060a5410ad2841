//! [`BatchBuilder`]: how a producer turns [`Record`]s into one encoded batch.
//!
//! Records are encoded as they are appended, into a buffer that starts with room for the
//! header, so [`BatchBuilder::estimated_size_bytes`] is exact for an uncompressed batch and
//! an upper bound (the uncompressed size) for a compressed one, and `build` of an
//! uncompressed batch copies nothing.
//!
//! What `build` writes (`docs/FORMAT.md`, "Record batch"): `base_offset` 0 and
//! `partition_leader_epoch` -1 (the leader stamps both), magic 2, `last_offset_delta` =
//! count - 1, `base_timestamp` = the first record's timestamp (as Kafka's
//! `MemoryRecordsBuilder` does; later deltas may be negative), `max_timestamp` = the
//! largest one, and the CRC over `attributes..end`.

use bytes::Bytes;

use super::compression::compress;
use super::error::RecordError;
use super::header::{
    attributes, compute_crc, set_crc, BatchHeader, Compression, TimestampType, BATCH_HEADER_BYTES,
    BATCH_LENGTH_PREFIX_BYTES, MAGIC,
};
use super::model::{Record, NO_TIMESTAMP};
use super::record_wire::{
    body_size, encode_sized, encoded_size, sized_with_length, HeaderFields, RecordFields,
};
use crate::types::{LeaderEpoch, Offset};

/// The producer-side settings of one batch. The defaults describe a plain, non-idempotent
/// producer: no compression, no producer id, create-time timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// `None`, `Lz4` or `Zstd`; `Gzip` and `Snappy` make `append` and `build` fail.
    pub compression: Compression,
    /// -1 when the producer is not idempotent.
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Sequence number of the first record, -1 when not idempotent.
    pub base_sequence: i32,
    pub timestamp_type: TimestampType,
}

impl Default for BatchSettings {
    fn default() -> BatchSettings {
        BatchSettings {
            compression: Compression::None,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            timestamp_type: TimestampType::CreateTime,
        }
    }
}

/// Collects records into one batch. Not thread-safe; one per partition being filled.
#[derive(Debug)]
pub struct BatchBuilder {
    settings: BatchSettings,
    /// Header placeholder followed by the encoded, uncompressed records.
    buffer: Vec<u8>,
    record_count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl BatchBuilder {
    pub fn new(settings: BatchSettings) -> BatchBuilder {
        BatchBuilder::with_capacity(settings, 0)
    }

    /// A builder whose buffer has room for `capacity_bytes` up front (a producer passes its
    /// `batch.size`, so filling the batch never reallocates).
    pub fn with_capacity(settings: BatchSettings, capacity_bytes: usize) -> BatchBuilder {
        let mut buffer = Vec::with_capacity(capacity_bytes.max(BATCH_HEADER_BYTES));
        buffer.resize(BATCH_HEADER_BYTES, 0);
        BatchBuilder {
            settings,
            buffer,
            record_count: 0,
            base_timestamp: NO_TIMESTAMP,
            max_timestamp: NO_TIMESTAMP,
        }
    }

    pub fn settings(&self) -> &BatchSettings {
        &self.settings
    }

    /// Encodes `record` as the next record of the batch. On error the builder is unchanged.
    pub fn append(&mut self, record: &Record) -> Result<(), RecordError> {
        self.append_within(&record.fields(), usize::MAX).map(|_| ())
    }

    /// Encodes `record` as the next record if the batch then stays within `size_max`
    /// bytes (uncompressed) or is empty so far (a lone record may exceed it). Returns
    /// `Ok(false)`, builder unchanged, when it would not fit; on error it is unchanged too.
    /// Sizes the record once: the producer's hot path.
    pub fn append_within<H: HeaderFields>(
        &mut self,
        record: &RecordFields<'_, H>,
        size_max: usize,
    ) -> Result<bool, RecordError> {
        check_compression(self.settings.compression)?;
        if record.timestamp_ms < NO_TIMESTAMP {
            return Err(RecordError::InvalidTimestamp {
                timestamp_ms: record.timestamp_ms,
                reason: "timestamps below -1 are not allowed".to_owned(),
            });
        }
        if self.record_count == i32::MAX {
            return Err(RecordError::invalid(
                "a batch holds at most i32::MAX records",
            ));
        }
        let (offset_delta, timestamp_delta) = self.deltas(record.timestamp_ms);
        let body_bytes = body_size(record, offset_delta, timestamp_delta)?;
        let record_bytes = sized_with_length(body_bytes, offset_delta)?;
        if self.record_count > 0 && self.buffer.len().saturating_add(record_bytes) > size_max {
            return Ok(false);
        }
        encode_sized(
            record,
            offset_delta,
            timestamp_delta,
            body_bytes,
            &mut self.buffer,
        )?;
        if self.record_count == 0 {
            self.base_timestamp = record.timestamp_ms;
        }
        self.max_timestamp = self.max_timestamp.max(record.timestamp_ms);
        self.record_count += 1;
        Ok(true)
    }

    /// The size of a batch holding `record` alone, before compression: what a producer
    /// compares with its largest request.
    pub fn size_alone<H: HeaderFields>(record: &RecordFields<'_, H>) -> Result<usize, RecordError> {
        Ok(BATCH_HEADER_BYTES.saturating_add(encoded_size(record, 0, 0)?))
    }

    /// How many records have been appended.
    pub fn record_count(&self) -> usize {
        self.record_count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    /// The size of the batch built now, before compression: exact when uncompressed, an
    /// upper bound in practice when compressed. For `batch.size`-style accumulation.
    pub fn estimated_size_bytes(&self) -> usize {
        self.buffer.len()
    }

    /// What [`BatchBuilder::estimated_size_bytes`] would be after appending `record`, so a
    /// producer can close a batch before it grows past its target size.
    pub fn estimated_size_bytes_with(&self, record: &Record) -> Result<usize, RecordError> {
        let (offset_delta, timestamp_delta) = self.deltas(record.timestamp_ms);
        let record_bytes = encoded_size(&record.fields(), offset_delta, timestamp_delta)?;
        Ok(self.buffer.len().saturating_add(record_bytes))
    }

    /// Encodes the batch: header, records, compression and CRC. Refuses an empty batch.
    pub fn build(self) -> Result<Bytes, RecordError> {
        let compression = self.settings.compression;
        check_compression(compression)?;
        if self.record_count == 0 {
            return Err(RecordError::invalid("a batch needs at least one record"));
        }
        let attributes = self.attributes();
        let mut buffer = match compression {
            Compression::None => self.buffer,
            _ => {
                let records = self.buffer.get(BATCH_HEADER_BYTES..).unwrap_or(&[]);
                let block = compress(compression, records)?;
                let mut buffer = Vec::with_capacity(BATCH_HEADER_BYTES + block.len());
                buffer.resize(BATCH_HEADER_BYTES, 0);
                buffer.extend_from_slice(&block);
                buffer
            }
        };
        let batch_length =
            i32::try_from(buffer.len() - BATCH_LENGTH_PREFIX_BYTES).map_err(|_| {
                RecordError::MessageTooLarge {
                    size: buffer.len() as u64,
                    max: i32::MAX as u64 + BATCH_LENGTH_PREFIX_BYTES as u64,
                }
            })?;
        let header = BatchHeader {
            base_offset: Offset(0),
            batch_length,
            partition_leader_epoch: LeaderEpoch(-1),
            magic: MAGIC,
            crc: 0,
            attributes,
            last_offset_delta: self.record_count - 1,
            base_timestamp: self.base_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: self.settings.producer_id,
            producer_epoch: self.settings.producer_epoch,
            base_sequence: self.settings.base_sequence,
            record_count: self.record_count,
        };
        if let Some(header_bytes) = buffer.get_mut(..BATCH_HEADER_BYTES) {
            header_bytes.copy_from_slice(&header.encode());
        }
        let crc = compute_crc(&buffer);
        set_crc(&mut buffer, crc);
        Ok(Bytes::from(buffer))
    }

    /// The offset and timestamp deltas `record` gets if appended next.
    fn deltas(&self, timestamp_ms: i64) -> (i32, i64) {
        let base_timestamp = if self.record_count == 0 {
            timestamp_ms
        } else {
            self.base_timestamp
        };
        // Wrapping, as in Kafka: decoding adds the delta back with the same wrap.
        (self.record_count, timestamp_ms.wrapping_sub(base_timestamp))
    }

    fn attributes(&self) -> i16 {
        let timestamp_type = match self.settings.timestamp_type {
            TimestampType::CreateTime => 0,
            TimestampType::LogAppendTime => attributes::TIMESTAMP_TYPE_LOG_APPEND,
        };
        self.settings.compression.id() | timestamp_type
    }
}

impl Default for BatchBuilder {
    fn default() -> BatchBuilder {
        BatchBuilder::new(BatchSettings::default())
    }
}

fn check_compression(compression: Compression) -> Result<(), RecordError> {
    match compression {
        Compression::None | Compression::Lz4 | Compression::Zstd => Ok(()),
        Compression::Gzip | Compression::Snappy => {
            Err(RecordError::UnsupportedCompression { compression })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::record::header::check_stored_batch;

    #[test]
    fn header_fields_follow_the_records() {
        let mut builder = BatchBuilder::default();
        for timestamp_ms in [1_000, 3_000, 2_000] {
            let record = Record::from_value(timestamp_ms, &b"value"[..]);
            let expected = builder.estimated_size_bytes_with(&record).unwrap();
            builder.append(&record).unwrap();
            assert_eq!(builder.estimated_size_bytes(), expected);
        }
        let estimate = builder.estimated_size_bytes();
        let batch = builder.build().unwrap();
        assert_eq!(batch.len(), estimate);
        let header = check_stored_batch(&batch, usize::MAX).unwrap();
        assert_eq!(header.base_offset, Offset(0));
        assert_eq!(header.partition_leader_epoch, LeaderEpoch(-1));
        assert_eq!((header.record_count, header.last_offset_delta), (3, 2));
        assert_eq!(
            (header.base_timestamp, header.max_timestamp),
            (1_000, 3_000)
        );
        assert_eq!(
            (
                header.producer_id,
                header.producer_epoch,
                header.base_sequence
            ),
            (-1, -1, -1)
        );
        assert_eq!(header.compression(), Some(Compression::None));
    }

    #[test]
    fn empty_batches_and_unsupported_codecs_are_refused() {
        assert!(matches!(
            BatchBuilder::default().build(),
            Err(RecordError::InvalidRecord { .. })
        ));
        for compression in [Compression::Gzip, Compression::Snappy] {
            let mut builder = BatchBuilder::new(BatchSettings {
                compression,
                ..BatchSettings::default()
            });
            let error = builder
                .append(&Record::from_value(0, &b"v"[..]))
                .unwrap_err();
            assert_eq!(error, RecordError::UnsupportedCompression { compression });
            assert!(error.to_string().contains("not supported"));
        }
    }

    #[test]
    fn timestamps_below_minus_one_are_refused_and_leave_the_builder_unchanged() {
        let mut builder = BatchBuilder::default();
        let error = builder
            .append(&Record::from_value(-2, &b"v"[..]))
            .unwrap_err();
        assert!(matches!(
            error,
            RecordError::InvalidTimestamp {
                timestamp_ms: -2,
                ..
            }
        ));
        assert!(builder.is_empty());
        assert_eq!(builder.estimated_size_bytes(), BATCH_HEADER_BYTES);
    }

    #[test]
    fn settings_reach_the_header() {
        let settings = BatchSettings {
            compression: Compression::Zstd,
            producer_id: 7,
            producer_epoch: 2,
            base_sequence: 40,
            timestamp_type: TimestampType::LogAppendTime,
        };
        let mut builder = BatchBuilder::new(settings);
        builder
            .append(&Record::from_value(5, vec![0u8; 10_000]))
            .unwrap();
        let batch = builder.build().unwrap();
        assert!(batch.len() < 1_000, "zeros should compress");
        let header = check_stored_batch(&batch, usize::MAX).unwrap();
        assert_eq!(header.compression(), Some(Compression::Zstd));
        assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(
            (
                header.producer_id,
                header.producer_epoch,
                header.base_sequence
            ),
            (7, 2, 40)
        );
    }
}
