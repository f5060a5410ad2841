//! [`BatchRecords`]: one checked batch read lazily, one [`StoredRecord`] at a time.
//!
//! This is what a consumer uses on the hot path. [`BatchRecords::open`] does the per-batch
//! work once (framing, CRC, decompression capped at
//! [`DecodeLimits::decompressed_bytes_max`], and the same structural walk
//! [`validate_batch`](super::validate_batch) does), so a damaged or malformed batch fails
//! before any of its records is handed out. After that each `next` parses one record and
//! hands out its key, value and header values as slices of the batch's own buffer: an
//! uncompressed batch is never copied, a compressed one is decompressed once into one
//! buffer. Nothing is allocated per record except the header keys (`String`), and the
//! headers `Vec` only when the record has headers.
//!
//! [`decode_batch`](super::decode_batch) is this reader collected into a `Vec`.

use bytes::Bytes;

use super::cursor::ByteCursor;
use super::decode::DecodeLimits;
use super::error::RecordError;
use super::header::{check_stored_batch, BatchHeader, TimestampType};
use super::model::{Header, StoredRecord};
use super::record_wire::{parse_record, RecordView};
use super::section::{for_each_record, records_section};
use crate::types::Offset;

/// The records of one whole, checked batch, in offset order.
#[derive(Debug, Clone)]
pub struct BatchRecords {
    header: BatchHeader,
    /// The plain records section; every yielded `Bytes` slices it.
    section: Bytes,
    /// Where the next record starts in `section`.
    position: usize,
    /// How many records were handed out (or skipped); `record_count` once exhausted. (Not
    /// the next record's offset delta: a compacted batch has gaps.)
    next_delta: i32,
}

impl BatchRecords {
    /// Checks exactly one whole batch (`batch.len()` must equal its `batch_length` + 12)
    /// and positions the reader before its first record. Shares `batch`'s buffer when the
    /// batch is not compressed.
    pub fn open(batch: &Bytes, limits: &DecodeLimits) -> Result<BatchRecords, RecordError> {
        let header = check_stored_batch(batch, limits.batch_bytes_max)?;
        let section = match records_section(batch, &header, limits.decompressed_bytes_max)? {
            std::borrow::Cow::Borrowed(plain) => share(batch, plain),
            std::borrow::Cow::Owned(decompressed) => Bytes::from(decompressed),
        };
        BatchRecords::from_section(header, section)
    }

    /// A reader over `section`, the plain records of the batch `header` describes. Walks
    /// the records once to check their structure.
    pub(crate) fn from_section(
        header: BatchHeader,
        section: Bytes,
    ) -> Result<BatchRecords, RecordError> {
        for_each_record(
            &section,
            header.record_count,
            header.last_offset_delta,
            |_| Ok(()),
        )?;
        Ok(BatchRecords {
            header,
            section,
            position: 0,
            next_delta: 0,
        })
    }

    /// The batch header, as stored.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// Records not handed out yet.
    pub fn remaining(&self) -> usize {
        usize::try_from(self.header.record_count.saturating_sub(self.next_delta)).unwrap_or(0)
    }

    /// Moves past the records below `offset` without decoding them (a fetch may return a
    /// batch that starts before the offset asked for). Reads each record's offset delta:
    /// a compacted batch may have gaps between them.
    pub fn skip_to(&mut self, offset: Offset) -> Result<(), RecordError> {
        while self.remaining() > 0 {
            let mut cursor = ByteCursor::new(self.section.get(self.position..).unwrap_or(&[]));
            let view = parse_record(&mut cursor)?;
            let record_offset = self
                .header
                .base_offset
                .0
                .saturating_add(i64::from(view.offset_delta));
            if record_offset >= offset.0 {
                break;
            }
            self.position += view.size_bytes;
            self.next_delta += 1;
        }
        Ok(())
    }
}

impl Iterator for BatchRecords {
    type Item = Result<StoredRecord, RecordError>;

    fn next(&mut self) -> Option<Result<StoredRecord, RecordError>> {
        if self.remaining() == 0 {
            return None;
        }
        let mut cursor = ByteCursor::new(self.section.get(self.position..).unwrap_or(&[]));
        let parsed = parse_record(&mut cursor).and_then(|view| {
            Ok((
                view.size_bytes,
                stored_record(&self.section, &self.header, view)?,
            ))
        });
        match parsed {
            Ok((size_bytes, record)) => {
                self.position += size_bytes;
                self.next_delta += 1;
                Some(Ok(record))
            }
            Err(error) => {
                // `open` walked every record already, so this cannot happen; stop anyway.
                self.next_delta = self.header.record_count;
                Some(Err(error))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining(), Some(self.remaining()))
    }
}

fn stored_record(
    section: &Bytes,
    header: &BatchHeader,
    view: RecordView<'_>,
) -> Result<StoredRecord, RecordError> {
    let offset = header
        .base_offset
        .0
        .checked_add(i64::from(view.offset_delta))
        .ok_or_else(|| {
            RecordError::invalid(format!(
                "base_offset {} plus offset_delta {} overflows",
                header.base_offset, view.offset_delta
            ))
        })?;
    let timestamp_ms = match header.timestamp_type() {
        TimestampType::CreateTime => header.base_timestamp.wrapping_add(view.timestamp_delta),
        TimestampType::LogAppendTime => header.max_timestamp,
    };
    let mut headers = Vec::with_capacity(view.header_count);
    for raw in view.headers() {
        let raw = raw?;
        headers.push(Header {
            key: raw.key.to_owned(),
            value: raw.value.map(|value| share(section, value)),
        });
    }
    Ok(StoredRecord {
        offset: Offset(offset),
        timestamp_ms,
        attributes: view.attributes,
        key: view.key.map(|key| share(section, key)),
        value: view.value.map(|value| share(section, value)),
        headers,
    })
}

/// A `Bytes` for `part`, sharing `buffer` instead of copying.
fn share(buffer: &Bytes, part: &[u8]) -> Bytes {
    // Every part was parsed out of `buffer` itself, so it always lies inside it, which is
    // the one condition under which `slice_ref` could panic (an empty part is fine too).
    buffer.slice_ref(part)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::record::builder::{BatchBuilder, BatchSettings};
    use crate::record::header::{set_base_offset, Compression};
    use crate::record::model::Record;

    fn batch(settings: BatchSettings, base_offset: i64, values: &[&str]) -> Bytes {
        let mut builder = BatchBuilder::new(settings);
        for value in values {
            builder
                .append(&Record::from_value(7, value.as_bytes().to_vec()))
                .unwrap();
        }
        let mut bytes = builder.build().unwrap().to_vec();
        set_base_offset(&mut bytes, Offset(base_offset));
        Bytes::from(bytes)
    }

    fn values(records: BatchRecords) -> Vec<(i64, String)> {
        records
            .map(|record| {
                let record = record.unwrap();
                let value = record.value.unwrap();
                (record.offset.0, String::from_utf8(value.to_vec()).unwrap())
            })
            .collect()
    }

    #[test]
    fn uncompressed_values_share_the_batch_buffer() {
        let bytes = batch(BatchSettings::default(), 10, &["a", "bb"]);
        let mut records = BatchRecords::open(&bytes, &DecodeLimits::default()).unwrap();
        assert_eq!(records.remaining(), 2);
        let first = records.next().unwrap().unwrap();
        let value = first.value.unwrap();
        let inside = bytes.as_ptr_range();
        assert!(inside.contains(&value.as_ptr()), "the value was copied");
        assert_eq!(values(records), [(11, "bb".to_owned())]);
    }

    #[test]
    fn skip_to_moves_past_earlier_records_only() {
        let bytes = batch(BatchSettings::default(), 10, &["a", "b", "c"]);
        let mut records = BatchRecords::open(&bytes, &DecodeLimits::default()).unwrap();
        records.skip_to(Offset(12)).unwrap();
        assert_eq!(values(records.clone()), [(12, "c".to_owned())]);
        records.skip_to(Offset(5)).unwrap();
        assert_eq!(records.remaining(), 1);
        records.skip_to(Offset(99)).unwrap();
        assert_eq!(records.next().map(|record| record.is_ok()), None);
    }

    #[test]
    fn compressed_batches_decompress_once_and_capped() {
        let settings = BatchSettings {
            compression: Compression::Zstd,
            ..BatchSettings::default()
        };
        let bytes = batch(settings, 0, &["x", "y"]);
        let records = BatchRecords::open(&bytes, &DecodeLimits::default()).unwrap();
        assert_eq!(values(records), [(0, "x".to_owned()), (1, "y".to_owned())]);
        let tight = DecodeLimits {
            decompressed_bytes_max: 4,
            ..DecodeLimits::default()
        };
        let error = BatchRecords::open(&bytes, &tight).unwrap_err();
        assert!(
            matches!(error, RecordError::DecompressedTooLarge { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_damaged_batch_fails_before_any_record() {
        let mut bytes = batch(BatchSettings::default(), 0, &["a", "b"]).to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let error = BatchRecords::open(&Bytes::from(bytes), &DecodeLimits::default()).unwrap_err();
        assert!(matches!(error, RecordError::CrcMismatch { .. }), "{error}");
    }
}
