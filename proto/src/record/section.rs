//! The records section of a batch (everything after the 61-byte header): getting its plain
//! bytes and walking its records in order.
//!
//! The walk is shared by [`decode_batch`](super::decode_batch) and
//! [`validate_batch`](super::validate_batch), so both enforce the same structure: exactly
//! `record_count` records, offset deltas strictly increasing from 0 up to at most
//! `last_offset_delta`, and no byte after the last record. It borrows the section and
//! allocates nothing.
//!
//! Offset deltas may skip values only in a batch rewritten by log compaction (Kafka's
//! rule): the cleaner drops records but keeps the others' offsets and the batch's
//! `last_offset_delta`. A batch with `record_count = last_offset_delta + 1` (every batch a
//! producer builds; [`validate_batch`](super::validate_batch) insists on it) therefore
//! walks exactly `0, 1, 2, …`.

use std::borrow::Cow;

use super::compression::decompress;
use super::cursor::ByteCursor;
use super::error::RecordError;
use super::header::{BatchHeader, Compression, BATCH_HEADER_BYTES};
use super::record_wire::{parse_record, RecordView};

/// The plain records section of a whole, framing-checked batch: borrowed when uncompressed,
/// decompressed (capped at `decompressed_bytes_max`) otherwise.
pub(crate) fn records_section<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
    decompressed_bytes_max: usize,
) -> Result<Cow<'a, [u8]>, RecordError> {
    let block = batch.get(BATCH_HEADER_BYTES..).unwrap_or(&[]);
    match header.compression() {
        Some(Compression::None) => Ok(Cow::Borrowed(block)),
        Some(compression) => decompress(compression, block, decompressed_bytes_max).map(Cow::Owned),
        None => Err(RecordError::invalid(format!(
            "unknown compression id {}",
            header.attributes & super::header::attributes::COMPRESSION_MASK
        ))),
    }
}

/// Parses the `record_count` records of `section` in order and hands each to `visit`,
/// stopping at the first error (its own or `visit`'s).
pub(crate) fn for_each_record<'a>(
    section: &'a [u8],
    record_count: i32,
    last_offset_delta: i32,
    mut visit: impl FnMut(RecordView<'a>) -> Result<(), RecordError>,
) -> Result<(), RecordError> {
    let mut cursor = ByteCursor::new(section);
    let mut lowest_delta = 0_i32;
    for present in 0..record_count.max(0) {
        if cursor.is_empty() {
            return Err(too_few(record_count, present));
        }
        let view = parse_record(&mut cursor)?;
        // The records left after this one need a delta each above it.
        let room_after = record_count - 1 - present;
        let highest_delta = last_offset_delta.saturating_sub(room_after);
        if view.offset_delta < lowest_delta || view.offset_delta > highest_delta {
            return Err(out_of_sequence(present, view.offset_delta));
        }
        lowest_delta = view.offset_delta.saturating_add(1);
        visit(view)?;
    }
    if !cursor.is_empty() {
        return Err(RecordError::invalid(format!(
            "{} bytes follow the last of {record_count} records",
            cursor.remaining()
        )));
    }
    Ok(())
}

#[cold]
fn too_few(record_count: i32, present: i32) -> RecordError {
    RecordError::invalid(format!(
        "record_count is {record_count} but only {present} records are present"
    ))
}

#[cold]
fn out_of_sequence(index: i32, found: i32) -> RecordError {
    RecordError::invalid(format!(
        "record {index} has offset_delta {found}; offset deltas must run 0, 1, 2, … (with \
         gaps only where compaction removed records, up to last_offset_delta)"
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::record::model::Record;
    use crate::record::record_wire::encode_record;

    fn section(offset_deltas: &[i32]) -> Vec<u8> {
        let mut out = Vec::new();
        for &delta in offset_deltas {
            encode_record(
                &Record::from_value(0, &b"v"[..]).fields(),
                delta,
                0,
                &mut out,
            )
            .unwrap();
        }
        out
    }

    #[test]
    fn walks_contiguous_records() {
        let bytes = section(&[0, 1, 2]);
        let mut seen = Vec::new();
        for_each_record(&bytes, 3, 2, |view| {
            seen.push(view.offset_delta);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [0, 1, 2]);
    }

    #[test]
    fn refuses_gaps_steps_back_missing_and_extra_records() {
        for (deltas, count) in [
            (&[0, 2, 3][..], 3),
            (&[0, 1, 0][..], 3),
            (&[1, 2, 3][..], 3),
            (&[0, 1][..], 3),
            (&[0, 1, 2][..], 2),
        ] {
            let bytes = section(deltas);
            let result = for_each_record(&bytes, count, count - 1, |_| Ok(()));
            assert!(
                matches!(result, Err(RecordError::InvalidRecord { .. })),
                "{deltas:?} with count {count}: {result:?}"
            );
        }
    }

    #[test]
    fn compacted_batches_may_skip_deltas_within_last_offset_delta() {
        let bytes = section(&[1, 4, 9]);
        let mut seen = Vec::new();
        for_each_record(&bytes, 3, 9, |view| {
            seen.push(view.offset_delta);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [1, 4, 9]);
        for (deltas, last) in [
            (&[1, 4, 10][..], 9),
            (&[4, 4, 9][..], 9),
            (&[5, 4, 9][..], 9),
        ] {
            let bytes = section(deltas);
            let result = for_each_record(&bytes, 3, last, |_| Ok(()));
            assert!(result.is_err(), "{deltas:?} within {last}: {result:?}");
        }
        assert!(for_each_record(&[], 0, 7, |_| Ok(())).is_ok());
    }
}
