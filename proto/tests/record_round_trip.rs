//! Property: any records a producer may write come back unchanged from
//! `build` → (`validate_batch` → leader stamping) → `decode_batch`, for every codec.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use proptest::prelude::*;
use strata_proto::record::{
    compute_crc, decode_batch, recompute_crc_for_header, set_base_offset,
    set_partition_leader_epoch, validate_batch, BatchBuilder, BatchHeader, BatchSettings,
    Compression, DecodeLimits, Header, Record, ValidateLimits, BATCH_HEADER_BYTES, NO_TIMESTAMP,
};
use strata_proto::types::{LeaderEpoch, Offset};

fn bytes_strategy() -> impl Strategy<Value = Option<Bytes>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..48).prop_map(Bytes::from))
}

fn timestamp_strategy() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(NO_TIMESTAMP),
        0i64..=i64::MAX,
        1_600_000_000_000i64..1_800_000_000_000,
    ]
}

fn record_strategy() -> impl Strategy<Value = Record> {
    let header = (any::<String>(), bytes_strategy()).prop_map(|(key, value)| Header { key, value });
    (
        timestamp_strategy(),
        bytes_strategy(),
        bytes_strategy(),
        proptest::collection::vec(header, 0..4),
    )
        .prop_map(|(timestamp_ms, key, value, headers)| Record {
            timestamp_ms,
            key,
            value,
            headers,
        })
}

fn settings_strategy() -> impl Strategy<Value = BatchSettings> {
    (
        prop_oneof![
            Just(Compression::None),
            Just(Compression::Lz4),
            Just(Compression::Zstd)
        ],
        any::<i64>(),
        any::<i16>(),
        any::<i32>(),
    )
        .prop_map(
            |(compression, producer_id, producer_epoch, base_sequence)| BatchSettings {
                compression,
                producer_id,
                producer_epoch,
                base_sequence,
                ..BatchSettings::default()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn build_then_decode_returns_the_records(
        records in proptest::collection::vec(record_strategy(), 1..20),
        settings in settings_strategy(),
        base_offset in 0i64..(1 << 50),
        epoch in 0i32..i32::MAX,
    ) {
        let mut builder = BatchBuilder::new(settings);
        for record in &records {
            builder.append(record).unwrap();
        }
        let uncompressed_estimate = builder.estimated_size_bytes();
        let mut batch = builder.build().unwrap().to_vec();
        if settings.compression == Compression::None {
            prop_assert_eq!(batch.len(), uncompressed_estimate);
        }

        let header = validate_batch(&batch, &ValidateLimits::default()).unwrap();
        prop_assert_eq!(header.record_count as usize, records.len());
        set_base_offset(&mut batch, Offset(base_offset));
        set_partition_leader_epoch(&mut batch, LeaderEpoch(epoch));
        validate_batch(&batch, &ValidateLimits::default()).unwrap();

        let decoded = decode_batch(&batch, &DecodeLimits::default()).unwrap();
        prop_assert_eq!(decoded.header.base_offset, Offset(base_offset));
        prop_assert_eq!(decoded.header.partition_leader_epoch, LeaderEpoch(epoch));
        prop_assert_eq!(decoded.header.compression(), Some(settings.compression));
        prop_assert_eq!(decoded.header.producer_id, settings.producer_id);
        prop_assert_eq!(decoded.header.producer_epoch, settings.producer_epoch);
        prop_assert_eq!(decoded.header.base_sequence, settings.base_sequence);
        let max_timestamp = records.iter().map(|record| record.timestamp_ms).max();
        prop_assert_eq!(Some(decoded.header.max_timestamp), max_timestamp);
        for (index, stored) in decoded.records.iter().enumerate() {
            prop_assert_eq!(stored.offset, Offset(base_offset + index as i64));
            prop_assert_eq!(stored.attributes, 0);
        }
        let decoded: Vec<Record> = decoded.records.into_iter().map(Record::from).collect();
        prop_assert_eq!(decoded, records);
    }

    /// Restamping producer id, epoch and sequence (what an idempotent producer does to a
    /// built batch) gives the CRC a full pass would, from the header alone.
    #[test]
    fn recomputed_crc_for_a_new_header_matches_a_full_pass(
        records in proptest::collection::vec(record_strategy(), 1..20),
        settings in settings_strategy(),
        producer_id in any::<i64>(),
        producer_epoch in any::<i16>(),
        base_sequence in any::<i32>(),
    ) {
        let mut builder = BatchBuilder::new(settings);
        for record in &records {
            builder.append(record).unwrap();
        }
        let mut batch = builder.build().unwrap().to_vec();
        let mut header = BatchHeader::parse(&batch).unwrap();
        let old_header = header.encode();
        header.producer_id = producer_id;
        header.producer_epoch = producer_epoch;
        header.base_sequence = base_sequence;
        let new_header = header.encode();
        let records_bytes = batch.len() - BATCH_HEADER_BYTES;
        let crc = recompute_crc_for_header(header.crc, &old_header, &new_header, records_bytes);
        batch[..BATCH_HEADER_BYTES].copy_from_slice(&new_header);
        prop_assert_eq!(crc, compute_crc(&batch));
    }
}

#[test]
fn extreme_timestamps_round_trip() {
    // Deltas wrap (as in Kafka) when the first and a later timestamp are far apart.
    let records = [
        Record::from_value(i64::MAX, &b"a"[..]),
        Record::from_value(NO_TIMESTAMP, &b"b"[..]),
        Record::from_value(0, &b"c"[..]),
    ];
    let mut builder = BatchBuilder::default();
    for record in &records {
        builder.append(record).unwrap();
    }
    let batch = builder.build().unwrap();
    validate_batch(&batch, &ValidateLimits::default()).unwrap();
    let decoded = decode_batch(&batch, &DecodeLimits::default()).unwrap();
    let decoded: Vec<Record> = decoded.records.into_iter().map(Record::from).collect();
    assert_eq!(decoded, records);
}

#[test]
fn large_batches_of_every_codec_round_trip() {
    for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let mut builder = BatchBuilder::new(BatchSettings {
            compression,
            ..BatchSettings::default()
        });
        let records: Vec<Record> = (0..1_000u32)
            .map(|i| {
                Record::from_key_value(i64::from(i), i.to_be_bytes().to_vec(), vec![i as u8; 1_000])
            })
            .collect();
        for record in &records {
            builder.append(record).unwrap();
        }
        let batch = builder.build().unwrap();
        validate_batch(&batch, &ValidateLimits::default()).unwrap();
        let decoded = decode_batch(&batch, &DecodeLimits::default()).unwrap();
        assert_eq!(decoded.records.len(), records.len(), "{compression}");
        let decoded: Vec<Record> = decoded.records.into_iter().map(Record::from).collect();
        assert_eq!(decoded, records, "{compression}");
    }
}
