//! Property: `validate_batch` rejects every single-byte change of an encoded batch, and
//! neither it nor `decode_batch` panics on a batch damaged anywhere — even one whose CRC was
//! recomputed after the damage (the fuzzing case: a hostile producer signs its own bytes).
//!
//! Positions 0..8 (`base_offset`) and 12..16 (`partition_leader_epoch`) are left out of the
//! single-byte property on purpose: the CRC does not cover them, so that the leader can
//! stamp them without recomputing it, and any value there is a legitimate
//! stamp. Every other byte is protected: 8..12 (`batch_length`) by the check that the
//! length equals the bytes present, 16 (`magic`) by framing, 17..21 (the CRC itself) and
//! 21.. by the CRC, which catches every burst error of 32 bits or fewer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use proptest::prelude::*;
use strata_proto::record::{
    compute_crc, decode_batch, validate_batch, BatchBuilder, BatchSettings, Compression,
    DecodeLimits, Header, Record, ValidateLimits,
};

/// Bytes outside the CRC that the leader may stamp freely.
fn is_stamped_field(position: usize) -> bool {
    (0..8).contains(&position) || (12..16).contains(&position)
}

fn small_batch(compression: Compression) -> Bytes {
    let mut builder = BatchBuilder::new(BatchSettings {
        compression,
        ..BatchSettings::default()
    });
    let records = [
        Record::from_key_value(1_700_000_000_000, &b"key"[..], &b"value"[..]),
        Record {
            timestamp_ms: 1_700_000_000_005,
            key: None,
            value: None,
            headers: vec![
                Header::new("trace", Some(Bytes::from_static(b"abc"))),
                Header::new("", None),
            ],
        },
        Record::from_value(-1, &b"last"[..]),
    ];
    for record in &records {
        builder.append(record).unwrap();
    }
    builder.build().unwrap()
}

#[test]
fn every_single_byte_change_outside_the_stamped_fields_is_rejected() {
    for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let batch = small_batch(compression);
        validate_batch(&batch, &ValidateLimits::default()).unwrap();
        let mut damaged = batch.to_vec();
        for position in (0..batch.len()).filter(|&position| !is_stamped_field(position)) {
            let original = damaged[position];
            for replacement in (0..=u8::MAX).filter(|&value| value != original) {
                damaged[position] = replacement;
                let result = validate_batch(&damaged, &ValidateLimits::default());
                assert!(
                    result.is_err(),
                    "{compression}: byte {position} changed {original:#04x} -> {replacement:#04x} was accepted"
                );
            }
            damaged[position] = original;
        }
    }
}

#[test]
fn stamped_fields_are_not_covered_by_the_crc() {
    let batch = small_batch(Compression::None);
    let mut stamped = batch.to_vec();
    for position in (0..batch.len()).filter(|&position| is_stamped_field(position)) {
        stamped[position] ^= 0x5a;
    }
    validate_batch(&stamped, &ValidateLimits::default()).unwrap();
}

/// Rewrites the CRC so that damage past byte 21 reaches the record walk.
fn resign(batch: &mut [u8]) {
    let crc = compute_crc(batch);
    if let Some(field) = batch.get_mut(17..21) {
        field.copy_from_slice(&crc.to_be_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn damaged_and_resigned_batches_never_panic(
        compression in prop_oneof![Just(Compression::None), Just(Compression::Lz4), Just(Compression::Zstd)],
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        truncate_to in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut batch = small_batch(compression).to_vec();
        for (position, value) in edits {
            let position = position.index(batch.len());
            batch[position] = value;
        }
        if let Some(length) = truncate_to {
            batch.truncate(length.index(batch.len()));
        }
        let _ = validate_batch(&batch, &ValidateLimits::default());
        let _ = decode_batch(&batch, &DecodeLimits::default());
        resign(&mut batch);
        let _ = validate_batch(&batch, &ValidateLimits::default());
        let _ = decode_batch(&batch, &DecodeLimits::default());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = validate_batch(&bytes, &ValidateLimits::default());
        let _ = decode_batch(&bytes, &DecodeLimits::default());
    }
}
