//! Log compaction through a real broker (`cleanup_policy=compact`): many updates of a few
//! keys in small segments; the broker's background cleaner (every 200 ms here, through
//! `--retention-check-interval-ms`) rewrites the sealed segments, after which a consumer
//! reading from the start finds each key's newest value (or its tombstone) at the offset
//! it was produced at, and none of the older values below the active segment. Offsets
//! are never reused, the files got smaller, the result survives a restart, and a record
//! without a key is refused with INVALID_RECORD and changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::{
    batch, code, connect, create_topic, describe, fetch, fetch_partition, latest_offset, now_ms,
    produce, produce_ok, restart, start_broker, terminate, values_batch, Client, WAIT,
};
use strata_proto::api::v1::{ErrorCode, FetchRequest};
use strata_proto::record::{
    decode_batch, next_offset_after, BatchHeader, BatchSettings, DecodeLimits, Record,
};

const TOPIC: &str = "changelog";
const KEYS: usize = 5;
const ROUNDS: usize = 40;

fn key(index: usize) -> String {
    format!("key-{index}")
}

fn value(key: usize, round: usize) -> String {
    format!("{}-round-{round:03}-{}", self::key(key), "x".repeat(60))
}

/// One batch holding one record (`value` `None` = tombstone).
fn keyed(key: &str, value: Option<&str>) -> Bytes {
    let record = Record {
        timestamp_ms: now_ms(),
        key: Some(Bytes::copy_from_slice(key.as_bytes())),
        value: value.map(|value| Bytes::copy_from_slice(value.as_bytes())),
        headers: Vec::new(),
    };
    batch(&[record], BatchSettings::default())
}

/// Every record from offset 0 to the high watermark as (offset, key, value), moving on by
/// batch (a compacted log has batches without records), checking offsets increase.
async fn read_all(client: &mut Client) -> Vec<(i64, String, Option<String>)> {
    let mut offset = 0;
    let mut records: Vec<(i64, String, Option<String>)> = Vec::new();
    for _ in 0..10_000 {
        let request = FetchRequest {
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: 1 << 20,
            partitions: vec![fetch_partition(TOPIC, 0, offset)],
        };
        let response = fetch(client, request).await;
        let fetched = response.partitions.first().expect("one partition");
        assert_eq!(code(&fetched.error), ErrorCode::None, "{fetched:?}");
        let mut rest = &fetched.records[..];
        while !rest.is_empty() {
            let header = BatchHeader::parse(rest).unwrap();
            let (one, tail) = rest.split_at(header.total_bytes());
            for record in decode_batch(one, &DecodeLimits::default()).unwrap().records {
                if record.offset.0 < offset {
                    continue;
                }
                if let Some((last, _, _)) = records.last() {
                    assert!(record.offset.0 > *last, "offsets increase");
                }
                let text = |bytes: Bytes| String::from_utf8(bytes.to_vec()).unwrap();
                records.push((
                    record.offset.0,
                    text(record.key.unwrap()),
                    record.value.map(text),
                ));
            }
            rest = tail;
        }
        if let Some(next) = next_offset_after(&fetched.records) {
            offset = next.0;
        }
        if offset >= fetched.high_watermark {
            return records;
        }
    }
    panic!("no end of the log after 10000 fetches");
}

/// The `.log` files of the partition: (base offset, bytes), ascending.
fn segments(data: &Path) -> Vec<(i64, u64)> {
    let dir = data.join(format!("{TOPIC}-0"));
    let mut found: Vec<(i64, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let base = name.strip_suffix(".log")?.parse().ok()?;
            Some((base, entry.metadata().unwrap().len()))
        })
        .collect();
    found.sort_unstable();
    found
}

/// Whether below the active segment each key appears at most once.
fn cleaned_below(records: &[(i64, String, Option<String>)], active_base: i64) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    records
        .iter()
        .filter(|(offset, _, _)| *offset < active_base)
        .all(|(_, key, _)| seen.insert(key.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleaner_keeps_each_keys_newest_value_at_its_offset() {
    let data = tempfile::tempdir().unwrap();
    let mut broker = start_broker(data.path(), &["--retention-check-interval-ms", "200"]);
    let mut client = connect(&broker).await;
    create_topic(
        &mut client,
        TOPIC,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment_bytes", "1024"),
            ("min_cleanable_dirty_ratio", "0.01"),
        ],
    )
    .await;
    let description = describe(&mut client, &[TOPIC]).await;
    let configs = &description.topics.first().unwrap().configs;
    let shown = |key: &str| {
        configs
            .iter()
            .find(|entry| entry.key == key)
            .unwrap()
            .value
            .clone()
    };
    assert_eq!(shown("cleanup_policy"), "compact");
    assert_eq!(shown("delete_retention_ms"), "86400000");

    // The newest write of each key: (offset, value); the last key ends deleted.
    let mut newest: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
    let mut written: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut bytes_produced = 0_u64;
    for round in 0..ROUNDS {
        for index in 0..KEYS {
            let value = value(index, round);
            let deleted = index == KEYS - 1 && round == ROUNDS - 1;
            let value = (!deleted).then_some(value.as_str());
            let batch = keyed(&key(index), value);
            bytes_produced += batch.len() as u64;
            let offset = produce_ok(&mut client, TOPIC, 0, batch).await;
            newest.insert(key(index), (offset, value.map(str::to_owned)));
            written.entry(key(index)).or_default().push(offset);
        }
    }
    let produced = (ROUNDS * KEYS) as i64;
    assert_eq!(latest_offset(&mut client, TOPIC, 0).await, produced);

    // A keyless record is refused, typed, and takes no offset.
    let response = produce(&mut client, TOPIC, 0, values_batch(&["no key"])).await;
    assert_eq!(
        code(&response.error),
        ErrorCode::InvalidRecord,
        "{response:?}"
    );
    let error = response.error.unwrap();
    assert!(!error.retriable);
    assert!(error.message.contains("without a key"), "{error:?}");
    assert_eq!(latest_offset(&mut client, TOPIC, 0).await, produced);

    let deadline = tokio::time::Instant::now() + WAIT;
    let records = loop {
        let active_base = segments(data.path()).last().unwrap().0;
        let records = read_all(&mut client).await;
        if cleaned_below(&records, active_base) {
            break records;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cleaner did not run within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let segments_after = segments(data.path());
    let bytes_after: u64 = segments_after.iter().map(|(_, bytes)| bytes).sum();
    assert!(
        bytes_after < bytes_produced / 2,
        "{bytes_produced} bytes produced, {bytes_after} on disk"
    );
    assert_newest(
        &records,
        &newest,
        &written,
        segments_after.last().unwrap().0,
    );

    // Offsets are never reused: the next record goes after every offset handed out.
    assert_eq!(
        produce_ok(&mut client, TOPIC, 0, keyed(&key(0), Some("after"))).await,
        produced
    );
    terminate(&mut broker);
    restart(&mut broker);
    let mut client = connect(&broker).await;
    let reread = read_all(&mut client).await;
    assert_eq!(
        &reread[..reread.len() - 1],
        &records[..],
        "the cleaned log survives a restart"
    );
}

/// Each key's newest record is held at its offset (a tombstone as a null value), and
/// below `active_base` (the active segment is never cleaned) no record is held that a
/// later write of its key below `active_base` superseded.
fn assert_newest(
    records: &[(i64, String, Option<String>)],
    newest: &BTreeMap<String, (i64, Option<String>)>,
    written: &BTreeMap<String, Vec<i64>>,
    active_base: i64,
) {
    for (key, (offset, value)) in newest {
        let held = records.iter().find(|(held, _, _)| held == offset);
        assert_eq!(held, Some(&(*offset, key.clone(), value.clone())), "{key}");
    }
    for (offset, key, _) in records
        .iter()
        .filter(|(offset, _, _)| *offset < active_base)
    {
        let superseded = written[key]
            .iter()
            .any(|later| later > offset && *later < active_base);
        assert!(!superseded, "{key} at {offset} is an older value");
    }
    assert!(
        records.len() < ROUNDS * KEYS / 2,
        "{} records left",
        records.len()
    );
}
