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
        fetch_offset: 0,
    }
}

fn offsets(mut batches: FetchedBatches) -> Vec<i64> {
    let mut offsets = Vec::new();
    while let Some(record) = batches.next_record() {
        offsets.push(record.unwrap().offset);
    }
    offsets
}

#[test]
fn the_next_fetch_starts_after_the_last_whole_batch() {
    let mut data = batch(0, &["a", "b", "c"]);
    data.extend(batch(3, &["d", "e"]));
    let (batches, next) = split_partition("t", 2, 2, &fetched(data)).unwrap();
    assert_eq!(next, 5);
    assert_eq!(offsets(batches), [2, 3, 4]);
}

#[test]
fn a_cut_off_last_batch_is_left_for_the_next_fetch() {
    let mut data = batch(0, &["a"]);
    let second = batch(1, &["b"]);
    data.extend_from_slice(&second[..second.len() - 3]);
    let (batches, next) = split_partition("t", 0, 0, &fetched(data)).unwrap();
    assert_eq!(next, 1);
    assert_eq!(offsets(batches), [0]);
}

#[test]
fn a_damaged_batch_is_left_for_the_stream_to_report() {
    let mut data = batch(0, &["a", "b"]);
    let last = data.len() - 1;
    data[last] ^= 0xff;
    // Splitting looks at framing only; the CRC is checked when the batch is reached.
    let (mut batches, next) = split_partition("t", 0, 0, &fetched(data)).unwrap();
    assert_eq!(next, 2);
    let error = batches.next_record().unwrap().unwrap_err();
    assert!(
        matches!(&error, Error::Record(record) if matches!(record.cause(), RecordError::CrcMismatch { .. })),
        "{error}"
    );
}

#[test]
fn batches_after_one_with_broken_framing_are_not_split_out() {
    let mut broken = batch(0, &["a"]);
    broken[16] = 7; // magic
    let mut data = broken;
    data.extend(batch(1, &["b"]));
    let (mut batches, next) = split_partition("t", 0, 0, &fetched(data)).unwrap();
    assert_eq!(next, 0, "nothing trusted, nothing skipped");
    assert!(batches.next_record().unwrap().is_err());
    assert!(batches.next_record().is_none());
}

#[test]
fn hostile_lengths_are_refused() {
    let hostile = Bytes::from(vec![0u8; 20]);
    assert!(split_batches(&hostile).is_err());
    assert!(split_batches(&Bytes::new()).unwrap().is_empty());
    assert!(split_batches(&Bytes::from(vec![0u8; 5])).is_err());
}

#[test]
fn a_session_grants_as_many_answers_as_fit_in_half_the_stream_window() {
    let request = |sizes: &[u32], max_bytes: u32| wire::FetchRequest {
        max_wait_ms: 500,
        min_bytes: 1,
        max_bytes,
        partitions: sizes
            .iter()
            .map(|size| wire::FetchPartition {
                topic: "t".into(),
                partition: 0,
                fetch_offset: 0,
                partition_max_bytes: *size,
                current_leader_epoch: -1,
            })
            .collect(),
    };
    let half_window = HTTP2_STREAM_WINDOW_BYTES / 2;
    assert_eq!(
        session_grants(&request(&[2 << 20], 50 << 20)),
        half_window / (2 << 20)
    );
    assert_eq!(
        session_grants(&request(&[1 << 20, 1 << 20], 50 << 20)),
        half_window / (2 << 20)
    );
    // Answers bigger than half the window: still one, or the session could not go on.
    assert_eq!(session_grants(&request(&[16 << 20], 50 << 20)), 1);
    // max_bytes caps an answer over many partitions; tiny answers stop at eight.
    assert_eq!(
        session_grants(&request(&[8 << 20; 10], 1 << 20)),
        half_window / (1 << 20)
    );
    assert_eq!(session_grants(&request(&[1], 50 << 20)), 8);
}

#[test]
fn a_session_asks_the_same_whatever_the_order_of_its_partitions() {
    let partition = |number, fetch_offset| wire::FetchPartition {
        topic: "t".into(),
        partition: number,
        fetch_offset,
        partition_max_bytes: 1 << 20,
        current_leader_epoch: -1,
    };
    let request = |partitions| wire::FetchRequest {
        max_wait_ms: 500,
        min_bytes: 1,
        max_bytes: 50 << 20,
        partitions,
    };
    let wanted = request(vec![partition(0, 5), partition(1, 9)]);
    let rotated = request(vec![partition(1, 9), partition(0, 5)]);
    assert!(asks_the_same(&rotated, &wanted));
    let moved_on = request(vec![partition(1, 9), partition(0, 6)]);
    assert!(!asks_the_same(&moved_on, &wanted));
    let fewer = request(vec![partition(0, 5)]);
    assert!(!asks_the_same(&fewer, &wanted));
}
