//! [`decode_batch`]: how tools, tests and `dump-log` turn one stored batch back into
//! [`StoredRecord`]s with absolute offsets and timestamps, all at once. (The consumer reads
//! batches lazily and without copying through [`BatchRecords`].)
//!
//! Decoding checks what validation checks about structure (framing, length, CRC, exactly
//! `record_count` records with offset deltas `0, 1, 2, …`, no trailing bytes) but not the
//! broker's policy limits (per-record size, timestamp window). Memory is bounded by the
//! input: the records section is copied (or decompressed, capped) once into one [`Bytes`]
//! that every key and value slices into, and every `Vec` is sized by
//! `min(claimed count, bytes remaining / smallest item)`. The decoded form costs at most
//! a few tens of bytes per input byte (worst case: 2-byte empty headers, 56 bytes each as a
//! [`Header`]); brokers never decode, they validate in place.

use bytes::Bytes;

use super::batch_records::BatchRecords;
use super::error::RecordError;
use super::header::{check_stored_batch, BatchHeader};
use super::model::StoredRecord;
use super::record_wire::RECORD_BYTES_MIN;
use super::section::records_section;

/// Size limits a decoder enforces on untrusted batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest whole batch (header included) accepted.
    pub batch_bytes_max: usize,
    /// Largest records section a compressed batch may expand to.
    pub decompressed_bytes_max: usize,
}

/// 8 MiB: large enough for benchmark batches; brokers configure their own, smaller limit.
pub const BATCH_BYTES_MAX_DEFAULT: usize = 8 << 20;
/// 64 MiB of decompressed records per batch.
pub const DECOMPRESSED_BYTES_MAX_DEFAULT: usize = 64 << 20;

impl Default for DecodeLimits {
    fn default() -> DecodeLimits {
        DecodeLimits {
            batch_bytes_max: BATCH_BYTES_MAX_DEFAULT,
            decompressed_bytes_max: DECOMPRESSED_BYTES_MAX_DEFAULT,
        }
    }
}

/// One decoded batch: its header as stored, and its records in offset order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBatch {
    pub header: BatchHeader,
    pub records: Vec<StoredRecord>,
}

/// Decodes exactly one whole batch (`batch.len()` must equal its `batch_length` + 12).
/// Copies the records section once; [`BatchRecords`] reads a `Bytes` batch without copying.
pub fn decode_batch(batch: &[u8], limits: &DecodeLimits) -> Result<DecodedBatch, RecordError> {
    let header = check_stored_batch(batch, limits.batch_bytes_max)?;
    let section = match records_section(batch, &header, limits.decompressed_bytes_max)? {
        std::borrow::Cow::Borrowed(plain) => Bytes::copy_from_slice(plain),
        std::borrow::Cow::Owned(decompressed) => Bytes::from(decompressed),
    };
    let claimed = usize::try_from(header.record_count).unwrap_or(0);
    let mut records = Vec::with_capacity(claimed.min(section.len() / RECORD_BYTES_MIN));
    let reader = BatchRecords::from_section(header, section)?;
    let header = *reader.header();
    for record in reader {
        records.push(record?);
    }
    Ok(DecodedBatch { header, records })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::record::builder::{BatchBuilder, BatchSettings};
    use crate::record::header::{set_base_offset, Compression, TimestampType};
    use crate::record::model::Record;
    use crate::types::Offset;

    #[test]
    fn offsets_are_absolute_after_stamping() {
        let mut builder = BatchBuilder::default();
        builder
            .append(&Record::from_key_value(10, &b"k"[..], &b"a"[..]))
            .unwrap();
        builder.append(&Record::from_value(8, &b"b"[..])).unwrap();
        let mut batch = builder.build().unwrap().to_vec();
        set_base_offset(&mut batch, Offset(100));
        let decoded = decode_batch(&batch, &DecodeLimits::default()).unwrap();
        let offsets: Vec<_> = decoded.records.iter().map(|record| record.offset).collect();
        assert_eq!(offsets, [Offset(100), Offset(101)]);
        let timestamps: Vec<_> = decoded
            .records
            .iter()
            .map(|record| record.timestamp_ms)
            .collect();
        assert_eq!(timestamps, [10, 8]);
    }

    #[test]
    fn log_append_time_batches_report_max_timestamp() {
        let settings = BatchSettings {
            timestamp_type: TimestampType::LogAppendTime,
            ..BatchSettings::default()
        };
        let mut builder = BatchBuilder::new(settings);
        builder.append(&Record::from_value(3, &b"a"[..])).unwrap();
        builder.append(&Record::from_value(9, &b"b"[..])).unwrap();
        let decoded = decode_batch(&builder.build().unwrap(), &DecodeLimits::default()).unwrap();
        assert!(decoded
            .records
            .iter()
            .all(|record| record.timestamp_ms == 9));
    }

    #[test]
    fn decompressed_size_is_capped() {
        let settings = BatchSettings {
            compression: Compression::Lz4,
            ..BatchSettings::default()
        };
        let mut builder = BatchBuilder::new(settings);
        builder
            .append(&Record::from_value(0, vec![0u8; 100_000]))
            .unwrap();
        let batch = builder.build().unwrap();
        let limits = DecodeLimits {
            decompressed_bytes_max: 50_000,
            ..DecodeLimits::default()
        };
        let error = decode_batch(&batch, &limits).unwrap_err();
        assert!(
            matches!(error, RecordError::DecompressedTooLarge { .. }),
            "{error}"
        );
        assert!(decode_batch(&batch, &DecodeLimits::default()).is_ok());
    }
}
