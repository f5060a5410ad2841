#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use strata_proto::record::{set_base_offset, BatchBuilder, Record};
use strata_proto::types::Offset as WireOffset;

fn batch(base_offset: i64, values: &[&str]) -> Vec<u8> {
    let mut builder = BatchBuilder::default();
    for (index, value) in values.iter().enumerate() {
        builder
            .append(&Record::from_key_value(
                1_000 + index as i64,
                "k",
                value.as_bytes().to_vec(),
            ))
            .unwrap();
    }
    let mut bytes = builder.build().unwrap().to_vec();
    set_base_offset(&mut bytes, WireOffset(base_offset));
    bytes
}

fn fetched(records: Vec<u8>) -> wire::FetchedPartition {
    wire::FetchedPartition {
        topic: "t".into(),
        partition: 2,
        error: None,
        high_watermark: 10,
        log_start_offset: 0,
        records: Bytes::from(records),
    }
}

#[test]
fn records_before_the_fetch_offset_are_skipped() {
    let mut data = batch(0, &["a", "b", "c"]);
    data.extend(batch(3, &["d", "e"]));
    let (records, next) = decode_partition("t", 2, 2, &fetched(data)).unwrap();
    let offsets: Vec<i64> = records.iter().map(|record| record.offset).collect();
    assert_eq!(offsets, [2, 3, 4]);
    assert_eq!(next, 5);
    let first = records.front().unwrap();
    assert_eq!(first.value.as_deref(), Some(&b"c"[..]));
    assert_eq!((first.partition, first.high_watermark), (2, 10));
}

#[test]
fn a_cut_off_last_batch_is_left_for_the_next_fetch() {
    let mut data = batch(0, &["a"]);
    let second = batch(1, &["b"]);
    data.extend_from_slice(&second[..second.len() - 3]);
    let (records, next) = decode_partition("t", 0, 0, &fetched(data)).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(next, 1);
}

#[test]
fn a_damaged_batch_is_an_error_not_records() {
    let mut data = batch(0, &["a", "b"]);
    let last = data.len() - 1;
    data[last] ^= 0xff;
    let error = decode_partition("t", 0, 0, &fetched(data)).unwrap_err();
    assert!(
        matches!(error, Error::Record(RecordError::CrcMismatch { .. })),
        "{error}"
    );
    let hostile = Bytes::from(vec![0u8; 20]);
    assert!(split_batches(&hostile).is_err());
    assert!(split_batches(&Bytes::new()).unwrap().is_empty());
    assert!(split_batches(&Bytes::from(vec![0u8; 5])).is_err());
}
