//! A damaged partition on a real `strata-broker`: a sealed segment in the middle of a
//! partition is deleted while the broker is stopped (cleanly). The broker still starts and
//! serves its other partitions, but the damaged one is offline: every fetch (in the gap,
//! before it, at its end) and every produce is refused with `STORAGE_ERROR`, never
//! answered with nothing or with an offset handed out before; and it stays so across a
//! clean restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{
    assert_ok, code, connect, create_topic, fetch, fetch_all, fetch_partition, produce, produce_ok,
    restart, start_broker, terminate, values_batch, Client,
};
use strata_proto::api::v1::{ErrorCode, FetchRequest};

const DAMAGED: &str = "damaged";
const HEALTHY: &str = "healthy";
const BATCHES: usize = 30;

/// The `<base>.log` files of a partition directory, in offset order, with their bases.
fn segments(dir: &Path) -> Vec<(i64, PathBuf)> {
    let mut segments: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let path = entry.unwrap().path();
            let base = path
                .file_name()?
                .to_str()?
                .strip_suffix(".log")?
                .parse()
                .ok()?;
            Some((base, path))
        })
        .collect();
    segments.sort();
    segments
}

async fn fetch_code(client: &mut Client, offset: i64) -> (ErrorCode, usize) {
    let request = FetchRequest {
        max_wait_ms: 0,
        min_bytes: 0,
        max_bytes: 1 << 20,
        partitions: vec![fetch_partition(DAMAGED, 0, offset)],
    };
    let response = fetch(client, request).await;
    let fetched = response.partitions.first().expect("one partition");
    (code(&fetched.error), fetched.records.len())
}

async fn assert_damaged_partition_refuses(client: &mut Client, gap: i64, end: i64) {
    for offset in [gap, 0, end] {
        let (code, bytes) = fetch_code(client, offset).await;
        assert_eq!(
            code,
            ErrorCode::StorageError,
            "fetch at {offset} ({bytes} bytes)"
        );
    }
    let response = produce(client, DAMAGED, 0, values_batch(&["after"])).await;
    assert_eq!(
        code(&response.error),
        ErrorCode::StorageError,
        "{response:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_middle_segment_takes_its_partition_offline_and_only_it() {
    let data = tempfile::tempdir().unwrap();
    let mut broker = start_broker(data.path(), &[]);
    let mut client = connect(&broker).await;
    create_topic(&mut client, DAMAGED, 1, &[("segment.bytes", "1024")]).await;
    create_topic(&mut client, HEALTHY, 1, &[]).await;
    let mut end = 0;
    for i in 0..BATCHES {
        let values: Vec<String> = (0..5).map(|j| format!("b{i}-{j}")).collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        produce_ok(&mut client, DAMAGED, 0, values_batch(&values)).await;
        end += 5;
    }
    produce_ok(&mut client, HEALTHY, 0, values_batch(&["h0", "h1"])).await;
    terminate(&mut broker);

    let partition_dir = data.path().join(format!("{DAMAGED}-0"));
    let segments = segments(&partition_dir);
    assert!(segments.len() >= 4, "{segments:?}");
    let (gap, middle) = segments[segments.len() / 2].clone();
    for extension in ["log", "index", "timeindex"] {
        std::fs::remove_file(middle.with_extension(extension)).unwrap();
    }

    for _ in 0..2 {
        restart(&mut broker);
        let mut client = connect(&broker).await;
        assert_damaged_partition_refuses(&mut client, gap, end).await;
        let healthy = fetch_all(&mut client, HEALTHY, 0).await;
        assert!(healthy.len() >= 2, "{healthy:?}");
        let response = produce(&mut client, HEALTHY, 0, values_batch(&["h2"])).await;
        assert_ok(&response.error);
        terminate(&mut broker);
    }
}
