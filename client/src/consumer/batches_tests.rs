#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use strata_proto::record::{
    compute_crc, set_base_offset, BatchBuilder, BatchSettings, Compression, Header, Record,
    RecordError,
};

const ATTRIBUTES_POS: usize = 21;
const CRC_POS: usize = 17;

fn batch_of(settings: BatchSettings, base_offset: i64, records: &[Record]) -> Vec<u8> {
    let mut builder = BatchBuilder::new(settings);
    for record in records {
        builder.append(record).unwrap();
    }
    let mut bytes = builder.build().unwrap().to_vec();
    set_base_offset(&mut bytes, WireOffset(base_offset));
    bytes
}

fn batch(base_offset: i64, values: &[&str]) -> Vec<u8> {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(index, value)| {
            Record::from_key_value(1_000 + index as i64, "k", value.as_bytes().to_vec())
        })
        .collect();
    batch_of(BatchSettings::default(), base_offset, &records)
}

/// `bytes` turned into a control batch (attribute bit 5), CRC recomputed.
fn control(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes[ATTRIBUTES_POS + 1] |= attributes::CONTROL as u8;
    let crc = compute_crc(&bytes);
    bytes[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
    bytes
}

fn chunk(fetch_offset: i64, batches: Vec<Vec<u8>>) -> FetchedBatches {
    let from = FetchedFrom {
        topic: Arc::from("t"),
        partition: 2,
        fetch_offset,
        high_watermark: 10,
        log_start_offset: 0,
    };
    FetchedBatches::new(from, batches.into_iter().map(Bytes::from).collect())
}

/// Every item of the chunk: offsets of records, or the error that ended it.
fn drain(mut batches: FetchedBatches) -> (Vec<ConsumedRecord>, Option<Error>) {
    let mut records = Vec::new();
    while let Some(item) = batches.next_record() {
        match item {
            Ok(record) => records.push(record),
            Err(error) => {
                assert!(batches.is_empty(), "nothing follows an error");
                assert!(batches.next_record().is_none());
                return (records, Some(error));
            }
        }
    }
    assert!(batches.is_empty());
    (records, None)
}

fn offsets(records: &[ConsumedRecord]) -> Vec<i64> {
    records.iter().map(|record| record.offset).collect()
}

#[test]
fn records_below_the_fetch_offset_are_skipped() {
    let (records, error) = drain(chunk(2, vec![batch(0, &["a", "b", "c"]), batch(3, &["d"])]));
    assert!(error.is_none());
    assert_eq!(offsets(&records), [2, 3]);
    let first = &records[0];
    assert_eq!(first.value.as_deref(), Some(&b"c"[..]));
    assert_eq!(first.key.as_deref(), Some(&b"k"[..]));
    assert_eq!(first.timestamp, 1_002);
    assert_eq!((&*first.topic, first.partition), ("t", 2));
    assert_eq!((first.high_watermark, first.log_start_offset), (10, 0));
}

#[test]
fn control_batches_are_skipped() {
    let batches = vec![
        batch(0, &["a"]),
        control(batch(1, &["marker"])),
        batch(2, &["c"]),
    ];
    let (records, error) = drain(chunk(0, batches));
    assert!(error.is_none());
    assert_eq!(offsets(&records), [0, 2]);
    let only_control = chunk(0, vec![control(batch(0, &["marker"]))]);
    assert!(!only_control.is_empty());
    let (records, error) = drain(only_control);
    assert!(records.is_empty() && error.is_none());
}

#[test]
fn a_damaged_batch_ends_the_chunk_with_an_error() {
    let mut damaged = batch(2, &["c", "d"]);
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    let batches = vec![batch(0, &["a", "b"]), damaged, batch(4, &["e"])];
    let (records, error) = drain(chunk(0, batches));
    assert_eq!(
        offsets(&records),
        [0, 1],
        "records before the bad batch only"
    );
    let error = error.expect("the damaged batch is reported");
    assert!(
        matches!(&error, Error::Record(record) if matches!(record.cause(), RecordError::CrcMismatch { .. })),
        "{error}"
    );
    assert_eq!(error.code_name(), "CORRUPT_MESSAGE");
    assert!(error.is_retriable());
}

#[test]
fn a_damaged_batch_is_reported_with_its_topic_partition_and_base_offset() {
    let mut damaged = batch(7, &["h", "i"]);
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    let (_, error) = drain(chunk(5, vec![batch(5, &["f", "g"]), damaged]));
    let message = error.expect("the damaged batch is reported").to_string();
    assert!(
        message.starts_with("t partition 2, batch at offset 7: batch CRC mismatch"),
        "{message}"
    );

    // A record that does not decode, in a batch whose CRC matches, is located the same way.
    let mut bad_record = batch(3, &["x"]);
    let record_length_pos = 61;
    bad_record[record_length_pos] = 0x7f; // the record claims more bytes than follow
    let crc = compute_crc(&bad_record);
    bad_record[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
    let (_, error) = drain(chunk(3, vec![bad_record]));
    let message = error.expect("the bad record is reported").to_string();
    assert!(
        message.starts_with("t partition 2, batch at offset 3: "),
        "{message}"
    );
}

#[test]
fn compressed_batches_are_decompressed_and_read() {
    for compression in [Compression::Lz4, Compression::Zstd] {
        let settings = BatchSettings {
            compression,
            ..BatchSettings::default()
        };
        let records: Vec<Record> = (0..50)
            .map(|index| Record::from_value(index, vec![index as u8; 300]))
            .collect();
        let (read, error) = drain(chunk(45, vec![batch_of(settings, 0, &records)]));
        assert!(error.is_none(), "{compression:?}");
        assert_eq!(offsets(&read), [45, 46, 47, 48, 49]);
        assert_eq!(read[0].value.as_deref(), Some(&[45u8; 300][..]));
    }
}

#[test]
fn headers_and_null_keys_and_values_come_through() {
    let with_headers = Record {
        timestamp_ms: 5,
        key: None,
        value: None,
        headers: vec![
            Header::new("trace", Some(Bytes::from_static(b"abc"))),
            Header::new("empty", None),
        ],
    };
    let plain = Record {
        timestamp_ms: 6,
        key: Some(Bytes::new()),
        value: Some(Bytes::from_static(b"v")),
        headers: Vec::new(),
    };
    let bytes = batch_of(BatchSettings::default(), 0, &[with_headers, plain]);
    let (records, error) = drain(chunk(0, vec![bytes]));
    assert!(error.is_none());
    assert_eq!(
        (records[0].key.clone(), records[0].value.clone()),
        (None, None)
    );
    assert_eq!(
        records[0].headers,
        [
            ("trace".to_owned(), Some(Bytes::from_static(b"abc"))),
            ("empty".to_owned(), None)
        ]
    );
    assert_eq!(records[1].key.as_deref(), Some(&b""[..]), "empty, not null");
    assert!(records[1].headers.is_empty());
    assert_eq!(
        records[1].headers.capacity(),
        0,
        "no headers, no allocation"
    );
}

#[test]
fn values_are_slices_of_the_fetched_buffer() {
    let fetched = Bytes::from(batch(0, &["payload"]));
    let from = FetchedFrom {
        topic: Arc::from("t"),
        partition: 0,
        fetch_offset: 0,
        high_watermark: 1,
        log_start_offset: 0,
    };
    let mut batches = FetchedBatches::new(from, vec![fetched.clone()]);
    let record = batches.next_record().unwrap().unwrap();
    let value = record.value.unwrap();
    assert!(fetched.as_ptr_range().contains(&value.as_ptr()), "copied");
}
