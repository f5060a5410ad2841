//! Retention through a real broker: with a short `--retention-check-interval-ms`, segments
//! beyond a topic's `retention_bytes` are deleted; the log start offset moves up, no file of
//! a deleted segment is left under its name, what remains reads back exactly, and all of it
//! survives a SIGKILL (taken while the reclaimer may still hold deleted files) and a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{
    connect, create_topic, fetch_all, kill, list_offset, produce_ok, restart, start_broker,
    values_batch, Client, WAIT,
};
use strata_proto::api::v1::OffsetSpec;
use strata_proto::record::StoredRecord;

const TOPIC: &str = "retained";
const SEGMENT_BYTES: u64 = 64 << 10;
const RETENTION_BYTES: u64 = 128 << 10;
const BATCHES: usize = 200;
const PER_BATCH: usize = 10;

fn value(index: usize) -> String {
    format!("{index:06}-{}", "x".repeat(500))
}

/// The `.log` files of the partition: (base offset, bytes).
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

async fn earliest(client: &mut Client) -> i64 {
    list_offset(client, TOPIC, 0, OffsetSpec::Earliest, 0)
        .await
        .offset
}

/// Every record from the log start is the one produced at its offset, with no gap.
fn assert_exact_suffix(records: &[StoredRecord], log_start: i64) {
    let total = (BATCHES * PER_BATCH) as i64;
    assert_eq!(records.len() as i64, total - log_start);
    for (record, offset) in records.iter().zip(log_start..) {
        assert_eq!(record.offset.0, offset);
        let expected = value(usize::try_from(offset).unwrap());
        assert_eq!(record.value.as_deref(), Some(expected.as_bytes()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_segments_and_the_rest_survives_sigkill() {
    let data = tempfile::tempdir().unwrap();
    let mut broker = start_broker(data.path(), &["--retention-check-interval-ms", "100"]);
    let mut client = connect(&broker).await;
    create_topic(
        &mut client,
        TOPIC,
        1,
        &[
            ("segment_bytes", &SEGMENT_BYTES.to_string()),
            ("retention_bytes", &RETENTION_BYTES.to_string()),
        ],
    )
    .await;
    for batch in 0..BATCHES {
        let values: Vec<String> = (0..PER_BATCH)
            .map(|i| value(batch * PER_BATCH + i))
            .collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        produce_ok(&mut client, TOPIC, 0, values_batch(&values)).await;
    }

    // Bounded wait for a retention pass; the assertions are about what it left.
    let deadline = tokio::time::Instant::now() + WAIT;
    while segments(data.path()).len() > 4 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A pass deletes its segments one by one: wait (bounded) until one has ended, i.e.
    // the files stay the same over a few passes.
    let mut left = segments(data.path());
    let mut unchanged = 0;
    while unchanged < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let now = segments(data.path());
        unchanged = if now == left { unchanged + 1 } else { 0 };
        left = now;
    }
    let log_start = earliest(&mut client).await;
    assert!(log_start > 0, "retention moved the log start: {left:?}");
    assert!(left.len() <= 4, "retention left {left:?}");
    assert_eq!(
        left[0].0, log_start,
        "the oldest file left starts at the log start"
    );
    let kept_bytes: u64 = left.iter().map(|(_, bytes)| bytes).sum();
    assert!(kept_bytes < RETENTION_BYTES + 2 * SEGMENT_BYTES, "{left:?}");
    let before = fetch_all(&mut client, TOPIC, 0).await;
    assert_exact_suffix(&before, log_start);

    kill(&mut broker);
    restart(&mut broker);
    let mut client = connect(&broker).await;
    assert_eq!(earliest(&mut client).await, log_start);
    assert_eq!(segments(data.path()), left);
    let after = fetch_all(&mut client, TOPIC, 0).await;
    assert_eq!(after, before);
}
