//! Hostile record batches, inputs #13 to #21 of `docs/RELIABILITY.md`: one named test per
//! input (#19, compression bombs, in `bombs.rs`; #20 and #21, size and timestamp limits, in
//! `limits.rs`). Each must end in the typed error the table names, without panicking and
//! without allocating more than a small multiple of the bytes received (measured by a
//! counting global allocator, see `allocation.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod allocation;
mod bombs;
mod forge;
mod limits;

use allocation::{bytes_allocated_by, CountingAllocator};
use bytes::Bytes;
use strata_proto::record::header::attributes;
use strata_proto::record::{
    decode_batch, validate_batch, BatchBuilder, Compression, DecodeLimits, Header, Record,
    RecordError, RecordErrorCode, ValidateLimits,
};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// What refusing `received` bytes may cost: a few copies of the input and an error message.
fn small_multiple(received: usize) -> usize {
    4 * received + 4096
}

/// Runs `validate_batch` and `decode_batch` on `batch`; both must fail with `code`, within
/// the allocation bound. Returns the validation error for further checks.
fn refused(batch: &[u8], limits: &ValidateLimits, code: RecordErrorCode) -> RecordError {
    let (validated, validate_bytes) = bytes_allocated_by(|| validate_batch(batch, limits));
    let error = validated.expect_err("validate_batch accepted a hostile batch");
    assert_eq!(error.code(), code, "validate_batch: {error}");
    assert!(
        validate_bytes <= small_multiple(batch.len()),
        "validate_batch allocated {validate_bytes} bytes"
    );

    let decode_limits = DecodeLimits {
        batch_bytes_max: limits.batch_bytes_max,
        decompressed_bytes_max: limits.decompressed_bytes_max,
    };
    let (decoded, decode_bytes) = bytes_allocated_by(|| decode_batch(batch, &decode_limits));
    // Decoding does not apply the broker's record-size and timestamp policies.
    if !matches!(
        error,
        RecordError::RecordTooLarge { .. } | RecordError::InvalidTimestamp { .. }
    ) {
        let decode_error = decoded.expect_err("decode_batch accepted a hostile batch");
        assert_eq!(decode_error.code(), code, "decode_batch: {decode_error}");
        assert!(
            decode_bytes <= small_multiple(batch.len()),
            "decode_batch allocated {decode_bytes} bytes"
        );
    }
    error
}

fn assert_reason(error: &RecordError, fragment: &str) {
    assert!(
        error.to_string().contains(fragment),
        "expected {fragment:?} in: {error}"
    );
}

fn built(records: &[Record]) -> Vec<u8> {
    let mut builder = BatchBuilder::default();
    for record in records {
        builder.append(record).unwrap();
    }
    builder.build().unwrap().to_vec()
}

fn defaults() -> ValidateLimits {
    ValidateLimits::default()
}

#[test]
fn hostile_13_wrong_crc_is_corrupt_message() {
    let batch = built(&[Record::from_value(1, &b"payload"[..])]);
    let mut flipped_value = batch.clone();
    *flipped_value.last_mut().unwrap() ^= 0x01;
    let mut wrong_crc_field = batch.clone();
    wrong_crc_field[20] ^= 0x80;
    for damaged in [flipped_value, wrong_crc_field] {
        let error = refused(&damaged, &defaults(), RecordErrorCode::CorruptMessage);
        assert!(matches!(error, RecordError::CrcMismatch { .. }), "{error}");
        assert!(error.is_retriable(), "damage in flight is worth a retry");
    }
}

#[test]
fn hostile_14_negative_batch_length_is_invalid_record() {
    for length in [-1, i32::MIN, 0, 48] {
        let mut header = forge::header(1);
        header.batch_length = length;
        let batch = forge::batch_keeping_length(header, &forge::records(1));
        let error = refused(&batch, &defaults(), RecordErrorCode::InvalidRecord);
        assert_reason(&error, "smaller than the header");
    }
}

#[test]
fn hostile_14_batch_length_larger_than_the_bytes_present_is_invalid_record() {
    let section = forge::records(1);
    let real = forge::batch(forge::header(1), &section);
    let mut header = forge::header(1);
    header.batch_length = (real.len() - 12 + 100) as i32;
    let batch = forge::batch_keeping_length(header, &section);
    let error = refused(&batch, &defaults(), RecordErrorCode::InvalidRecord);
    assert_reason(&error, "are present");
    // A length claiming 2 GiB is refused by the size cap before anything is read or sized.
    header.batch_length = i32::MAX;
    let batch = forge::batch_keeping_length(header, &section);
    refused(&batch, &defaults(), RecordErrorCode::MessageTooLarge);
}

#[test]
fn hostile_14_batch_length_not_equal_to_the_real_size_is_invalid_record() {
    let mut batch = built(&[Record::from_value(1, &b"payload"[..])]);
    batch.push(0);
    let error = refused(&batch, &defaults(), RecordErrorCode::InvalidRecord);
    assert_reason(&error, "are present");
    batch.truncate(batch.len() - 2);
    refused(&batch, &defaults(), RecordErrorCode::InvalidRecord);
}

#[test]
fn hostile_15_record_count_2_pow_31_with_3_records_is_invalid_record() {
    // 2^31 does not fit an i32: as bytes it reads i32::MIN, refused by framing; the largest
    // count that does fit is refused by the walk once the 3 records run out.
    let batch = forge::batch(forge::header(i32::MIN), &forge::records(3));
    refused(&batch, &defaults(), RecordErrorCode::InvalidRecord);
    let batch = forge::batch(forge::header(i32::MAX), &forge::records(3));
    let error = refused(&batch, &defaults(), RecordErrorCode::InvalidRecord);
    assert_reason(&error, "only 3 records are present");
}

#[test]
fn hostile_15_ten_million_empty_headers_claimed_is_invalid_record() {
    let mut body = forge::body_prefix(0, 0, None, Some(b"v"));
    body.extend(forge::varint(10_000_000));
    for _ in 0..3 {
        body.extend(forge::varint(0)); // empty key
        body.extend(forge::varint(-1)); // null value
    }
    let batch = forge::batch(forge::header(1), &forge::record_from_body(&body));
    let error = refused(&batch, &defaults(), RecordErrorCode::InvalidRecord);
    assert_reason(&error, "header_count 10000000");
}

#[test]
fn hostile_15_a_million_empty_headers_present_are_checked_without_allocating() {
    let mut body = forge::body_prefix(0, 0, None, None);
    body.extend(forge::varint(1_000_000));
    for _ in 0..1_000_000 {
        body.extend([0x00, 0x01]); // empty key, null value
    }
    let batch = forge::batch(forge::header(1), &forge::record_from_body(&body));
    let (validated, allocated) = bytes_allocated_by(|| validate_batch(&batch, &defaults()));
    validated.unwrap();
    assert_eq!(allocated, 0);
    let decoded = decode_batch(&batch, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.records[0].headers.len(), 1_000_000);
    assert_eq!(decoded.records[0].headers[0], Header::new("", None));
}

#[test]
fn hostile_16_varint_over_10_bytes_is_invalid_record() {
    // timestamp_delta (a varlong) of 11 bytes.
    let mut body = vec![0u8];
    body.extend([0x80; 10]);
    body.push(0x00);
    body.extend([0x00, 0x01, 0x01, 0x00]); // offset_delta, null key, null value, no headers
    let batch = forge::batch(forge::header(1), &forge::record_from_body(&body));
    let error = refused(&batch, &defaults(), RecordErrorCode::InvalidRecord);
    assert_reason(&error, "longer than 10 bytes");
    // A record length (a varint) of 6 bytes.
    let mut section = vec![0x80; 5];
    section.push(0x00);
    section.extend(forge::records(1));
    let batch = forge::batch(forge::header(1), &section);
    let error = refused(&batch, &defaults(), RecordErrorCode::InvalidRecord);
    assert_reason(&error, "longer than 5 bytes");
}

#[test]
fn hostile_16_negative_length_other_than_null_is_invalid_record() {
    let mut negative_record_length = forge::varint(-5);
    negative_record_length.extend(forge::records(1));
    let mut negative_key = vec![0, 0, 0];
    negative_key.extend(forge::varint(-2));
    negative_key.extend([0x01, 0x00]);
    let mut negative_value = vec![0, 0, 0, 0x01];
    negative_value.extend(forge::varint(i32::MIN));
    negative_value.push(0x00);
    let mut negative_header_value = forge::body_prefix(0, 0, None, None);
    negative_header_value.extend([0x02, 0x02, b'k']);
    negative_header_value.extend(forge::varint(-7));
    let mut null_header_key = forge::body_prefix(0, 0, None, None);
    null_header_key.extend([0x02, 0x01, 0x01]);
    let sections = [
        negative_record_length,
        forge::record_from_body(&negative_key),
        forge::record_from_body(&negative_value),
        forge::record_from_body(&negative_header_value),
        forge::record_from_body(&null_header_key),
    ];
    for section in sections {
        let batch = forge::batch(forge::header(1), &section);
        let error = refused(&batch, &defaults(), RecordErrorCode::InvalidRecord);
        assert!(
            error.to_string().contains("negative") || error.to_string().contains("null"),
            "{error}"
        );
    }
}

#[test]
fn hostile_17_offset_deltas_that_jump_or_go_backwards_are_invalid_record() {
    for deltas in [[0, 5, 6], [0, 1, 0], [1, 2, 3], [0, 0, 1], [0, 2, 1]] {
        let section: Vec<u8> = deltas
            .iter()
            .flat_map(|&delta| forge::record(delta, 0, b"v"))
            .collect();
        let batch = forge::batch(forge::header(3), &section);
        let error = refused(&batch, &defaults(), RecordErrorCode::InvalidRecord);
        assert_reason(&error, "offset deltas must run 0, 1, 2");
    }
}

#[test]
fn hostile_17_last_offset_delta_not_count_minus_one_is_invalid_record() {
    for last_offset_delta in [0, 1, -1] {
        let mut header = forge::header(3);
        header.last_offset_delta = last_offset_delta;
        let batch = forge::batch(header, &forge::records(3));
        let error = refused(&batch, &defaults(), RecordErrorCode::InvalidRecord);
        assert_reason(&error, "does not match last_offset_delta");
    }
    // Above count - 1 is what a batch compacted by the log cleaner looks like: readers
    // take it, a producer may not send it.
    for last_offset_delta in [3, 100, i32::MAX] {
        let mut header = forge::header(3);
        header.last_offset_delta = last_offset_delta;
        let batch = forge::batch(header, &forge::records(3));
        let error = validate_batch(&batch, &defaults()).unwrap_err();
        assert_eq!(error.code(), RecordErrorCode::InvalidRecord, "{error}");
        assert_reason(&error, "does not match last_offset_delta");
        let decoded = decode_batch(&batch, &DecodeLimits::default()).unwrap();
        assert_eq!(decoded.records.len(), 3);
    }
}

#[test]
fn hostile_18_unknown_magic_is_unsupported_version() {
    for magic in [0, 1, 3, -1, i8::MAX] {
        let mut header = forge::header(1);
        header.magic = magic;
        let batch = forge::batch(header, &forge::records(1));
        let error = refused(&batch, &defaults(), RecordErrorCode::UnsupportedVersion);
        assert_eq!(error, RecordError::UnsupportedMagic { magic });
    }
}

#[test]
fn hostile_18_unknown_compression_id_is_invalid_record() {
    for id in 5..=7 {
        let mut header = forge::header(1);
        header.attributes = id;
        let batch = forge::batch(header, &forge::records(1));
        let error = refused(&batch, &defaults(), RecordErrorCode::InvalidRecord);
        assert_reason(&error, "unknown compression id");
    }
    // Known to Kafka but not implemented by Strata.
    for compression in [Compression::Gzip, Compression::Snappy] {
        let mut header = forge::header(1);
        header.attributes = compression.id();
        let batch = forge::batch(header, &forge::records(1));
        let error = refused(&batch, &defaults(), RecordErrorCode::InvalidRecord);
        assert_eq!(error, RecordError::UnsupportedCompression { compression });
    }
}

#[test]
fn hostile_18_reserved_attribute_bits_are_invalid_record() {
    for bit in 6..16 {
        let mut header = forge::header(1);
        header.attributes = 1 << bit;
        assert_ne!(header.attributes & attributes::RESERVED_MASK, 0);
        let batch = forge::batch(header, &forge::records(1));
        let error = refused(&batch, &defaults(), RecordErrorCode::InvalidRecord);
        assert_reason(&error, "reserved attribute bits");
    }
}

#[test]
fn a_valid_uncompressed_batch_is_validated_without_allocating() {
    let batch = built(&[
        Record::from_key_value(1, &b"k"[..], &b"v"[..]),
        Record {
            timestamp_ms: 2,
            key: None,
            value: None,
            headers: vec![Header::new("h", Some(Bytes::from_static(b"x")))],
        },
    ]);
    let (validated, allocated) = bytes_allocated_by(|| validate_batch(&batch, &defaults()));
    validated.unwrap();
    assert_eq!(allocated, 0);
}
