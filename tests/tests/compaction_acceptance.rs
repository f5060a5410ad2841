//! Compaction acceptance: a compacted topic holding many writes over 1,000 keys keeps the
//! latest value of every key, tombstones disappear once `delete.retention.ms` has passed,
//! offsets are never reused, and a consumer reading from the start sees each key's latest
//! value.
//!
//! One broker (cleaner and retention checks every 200 ms), one partition with
//! `cleanup_policy=compact`, 64 KiB segments and `min_cleanable_dirty_ratio=0.01`. The
//! client producer writes `STRATA_COMPACTION_WRITES` records (default 1,000,000, the
//! acceptance figure; 5 to 30 s of producing in a debug build): write `i` has key
//! `k{i % 1000}` and value `i`, and lands at offset `i`. Then tombstones for the 100 keys
//! `k900`..`k999`, then rounds of one more write to each of the 900 live keys until the
//! segment holding the tombstones is sealed (the cleaner never touches the active
//! segment, and a segment rolls only when an append does not fit).
//!
//! `delete_retention_ms` starts at its default (one day): once the cleaner has shrunk the
//! sealed segments, a read from the start still shows every tombstone. It is then set to
//! 1 s, and the tombstones must go. The final read from the start (the client consumer)
//! checks offsets strictly increasing and below the log end, each live key's last value
//! its latest write at that write's offset, each key at most once below the active
//! segment, no tombstoned key at all, the log end equal to the number of records ever
//! written, and the next write taking exactly that offset.
//!
//! Every wait is a bounded loop on a condition (`CLEAN_WAIT`); no outcome depends on how
//! long anything took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use strata_client::{Client, Consumer, NewTopic, Offset, OffsetSpec, Producer, Record};
use strata_tests::broker_process::BrokerProcess;
use tokio_stream::StreamExt;

const TOPIC: &str = "latest-values";
const KEYS: i64 = 1_000;
/// Keys `k900`..`k999` end deleted.
const DELETED_FROM: i64 = 900;
const SEGMENT_BYTES: u64 = 64 * 1024;
/// The longest the cleaner may take to do each thing the test waits for.
const CLEAN_WAIT: Duration = Duration::from_secs(300);
/// Records enqueued before the producer is flushed and their deliveries checked.
const CHUNK: i64 = 50_000;

fn writes() -> i64 {
    std::env::var("STRATA_COMPACTION_WRITES")
        .ok()
        .map(|text| text.parse().expect("STRATA_COMPACTION_WRITES is a number"))
        .unwrap_or(1_000_000)
}

fn key(index: i64) -> String {
    format!("k{index}")
}

/// What the test wrote: each key's latest write (offset, value; `None` = tombstone).
#[derive(Default)]
struct Written {
    latest: BTreeMap<String, (i64, Option<String>)>,
    records: i64,
}

impl Written {
    /// Sends `records` (key, value) and checks each lands at the next offset.
    async fn send(&mut self, producer: &Producer, records: Vec<(String, Option<String>)>) {
        let mut deliveries = Vec::with_capacity(records.len());
        for (key, value) in records {
            let mut record = Record::to(TOPIC).partition(0).key(key.clone());
            if let Some(value) = &value {
                record = record.value(value.clone());
            }
            let delivery = producer.enqueue(record).expect("producer buffer");
            deliveries.push((key, value, delivery));
        }
        producer.flush().await.unwrap();
        for (key, value, delivery) in deliveries {
            let delivery = delivery.await.unwrap();
            assert_eq!(
                delivery.offset, self.records,
                "offsets are handed out in order"
            );
            self.latest.insert(key, (delivery.offset, value));
            self.records += 1;
        }
    }
}

/// The partition's `.log` files: (base offset, bytes), ascending.
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

/// Bytes of the sealed segments (all but the active one).
fn sealed_bytes(data: &Path) -> u64 {
    let all = segments(data);
    all.iter()
        .take(all.len().saturating_sub(1))
        .map(|(_, bytes)| bytes)
        .sum()
}

/// Every record from the start to `end` as (offset, key, value), read with the client
/// consumer; offsets must increase strictly and stay below `end`.
async fn read_from_start(client: &Client, end: i64) -> Vec<(i64, String, Option<String>)> {
    let mut consumer: Consumer = client
        .consumer()
        .assign([(TOPIC, 0)])
        .start(Offset::Earliest)
        .max_wait(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let text = |bytes: Option<bytes::Bytes>| bytes.map(|b| String::from_utf8(b.to_vec()).unwrap());
    let mut records: Vec<(i64, String, Option<String>)> = Vec::new();
    let deadline = Instant::now() + CLEAN_WAIT;
    while records.last().is_none_or(|(offset, _, _)| offset + 1 < end) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let record = tokio::time::timeout(remaining, consumer.next())
            .await
            .expect("the read from the start did not reach the log end")
            .expect("the stream ended")
            .unwrap();
        if let Some((last, _, _)) = records.last() {
            assert!(
                record.offset > *last,
                "offset {} after {last}",
                record.offset
            );
        }
        assert!(
            record.offset < end,
            "offset {} at or past the end {end}",
            record.offset
        );
        records.push((
            record.offset,
            text(record.key).expect("a compacted topic's records have keys"),
            text(record.value),
        ));
    }
    consumer.close().await.unwrap();
    records
}

async fn log_end(client: &Client) -> i64 {
    client
        .admin()
        .list_offsets(TOPIC, 0, OffsetSpec::Latest)
        .await
        .unwrap()
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_topic_keeps_each_keys_latest_value_and_drops_tombstones() {
    let writes = writes();
    assert!(writes >= KEYS, "STRATA_COMPACTION_WRITES below {KEYS}");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("broker");
    let broker = tokio::task::block_in_place(|| {
        BrokerProcess::start(&data, &["--retention-check-interval-ms", "200"])
    })
    .expect("start strata-broker (built with `cargo build -p strata-broker`?)");
    let client = Client::builder()
        .brokers([broker.address().to_string()])
        .request_timeout(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let segment_bytes = SEGMENT_BYTES.to_string();
    client
        .admin()
        .create_topic(
            NewTopic::new(TOPIC)
                .config("cleanup_policy", "compact")
                .config("segment_bytes", segment_bytes.as_str())
                .config("min_cleanable_dirty_ratio", "0.01"),
        )
        .await
        .unwrap();
    let producer = client
        .producer()
        .batch_size(128 * 1024)
        .linger(Duration::from_millis(5))
        .buffer_memory(256 << 20)
        .build()
        .unwrap();

    let started = Instant::now();
    let mut written = Written::default();
    let mut index = 0;
    while index < writes {
        let chunk_end = (index + CHUNK).min(writes);
        let records = (index..chunk_end)
            .map(|i| (key(i % KEYS), Some(i.to_string())))
            .collect();
        written.send(&producer, records).await;
        index = chunk_end;
    }
    let tombstones = (DELETED_FROM..KEYS).map(|k| (key(k), None)).collect();
    written.send(&producer, tombstones).await;
    let last_tombstone = written.records - 1;
    // Seal the segment holding the tombstones: one more value per live key, round after
    // round, until the active segment starts past them.
    let mut seal_rounds = 0;
    while segments(&data).last().unwrap().0 <= last_tombstone {
        seal_rounds += 1;
        assert!(seal_rounds <= 100, "the tombstones' segment never rolled");
        let round = (0..DELETED_FROM)
            .map(|k| (key(k), Some(format!("seal-{seal_rounds}-{k}"))))
            .collect();
        written.send(&producer, round).await;
    }
    producer.close().await.unwrap();
    let produced_bytes: u64 = segments(&data).iter().map(|(_, bytes)| bytes).sum();
    println!(
        "{writes} writes, {} tombstones, {seal_rounds} sealing rounds: {} records, \
         {produced_bytes} bytes on disk, produced in {:?}",
        KEYS - DELETED_FROM,
        written.records,
        started.elapsed()
    );
    let end = log_end(&client).await;
    assert_eq!(
        end, written.records,
        "the log end is the number of records written"
    );

    // The cleaner shrinks the sealed segments to about one record per key.
    let cleaning = Instant::now();
    let small = 200 * 1024;
    let deadline = Instant::now() + CLEAN_WAIT;
    while sealed_bytes(&data) > small {
        assert!(
            Instant::now() < deadline,
            "the sealed segments still hold {} bytes after {CLEAN_WAIT:?}",
            sealed_bytes(&data)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "sealed segments down to {} bytes after {:?}",
        sealed_bytes(&data),
        cleaning.elapsed()
    );

    // With a day of delete retention, the cleaned log still shows every tombstone.
    let records = read_from_start(&client, end).await;
    let deleted: BTreeSet<String> = (DELETED_FROM..KEYS).map(key).collect();
    let seen_tombstones: BTreeSet<String> = records
        .iter()
        .filter(|(_, _, value)| value.is_none())
        .map(|(_, key, _)| key.clone())
        .collect();
    assert_eq!(
        seen_tombstones, deleted,
        "tombstones stay until delete.retention.ms has passed"
    );

    // One second of delete retention: the tombstones go at the next pass.
    client
        .admin()
        .alter_config(
            TOPIC,
            [("delete_retention_ms", "1000")],
            Vec::<String>::new(),
            false,
        )
        .await
        .unwrap();
    let deadline = Instant::now() + CLEAN_WAIT;
    let records = loop {
        let records = read_from_start(&client, end).await;
        if !records.iter().any(|(_, key, _)| deleted.contains(key)) {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "tombstones still there {CLEAN_WAIT:?} after delete_retention_ms=1000"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "tombstones gone {:?} after the change; {} records left of {}",
        cleaning.elapsed(),
        records.len(),
        written.records
    );

    // Each live key's last value read is its latest write, at that write's offset.
    let mut last_seen: BTreeMap<&str, (i64, &Option<String>)> = BTreeMap::new();
    for (offset, key, value) in &records {
        last_seen.insert(key, (*offset, value));
    }
    for (key, (offset, value)) in &written.latest {
        if deleted.contains(key) {
            assert!(value.is_none(), "{key} ends deleted");
            assert!(!last_seen.contains_key(key.as_str()), "{key} was deleted");
            continue;
        }
        assert_eq!(
            last_seen.get(key.as_str()),
            Some(&(*offset, value)),
            "{key}: the latest write"
        );
    }
    assert_eq!(
        last_seen.len(),
        (DELETED_FROM) as usize,
        "only live keys remain"
    );
    // Below the active segment the log is clean: each key at most once.
    let active_base = segments(&data).last().unwrap().0;
    let mut below = BTreeSet::new();
    for (offset, key, _) in records
        .iter()
        .filter(|(offset, _, _)| *offset < active_base)
    {
        assert!(
            below.insert(key),
            "{key} twice below the active segment (at {offset})"
        );
    }

    // Offsets are never reused: the log end is unchanged and the next write goes there.
    assert_eq!(log_end(&client).await, end);
    let producer = client.producer().build().unwrap();
    let delivery = producer
        .send(Record::to(TOPIC).partition(0).key(key(0)).value("after"))
        .await
        .unwrap();
    assert_eq!(delivery.offset, end, "the next write takes the next offset");
    producer.close().await.unwrap();
    drop(broker);
}
