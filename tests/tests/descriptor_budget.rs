//! The descriptor budget, on a real broker started under a low open-files limit
//! (`RLIMIT_NOFILE` 1024, soft and hard, as on a host with `ulimit -n 1024`):
//!
//! - a topic with more partitions than the broker can keep open is refused up front with
//!   `INVALID_PARTITIONS` naming the limit and how to raise it, and nothing is created; a
//!   topic that fits is created, and the broker restarts with it (cleanly and after a
//!   crash). Before, `CreateTopics(partitions=10000)` used up every descriptor, answered
//!   `STORAGE_ERROR`, and the broker could not start again ("Too many open files");
//! - a topic with 1 KiB segments under load keeps the broker's open descriptors bounded
//!   however many segments it makes, reads every record back, and survives a restart.
//!   Before, each segment held three descriptors: the partition ran out, and then failed
//!   every write with "File exists".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{
    assert_ok, code, connect, fetch_all, kill, metadata, produce_ok, restart, terminate,
    topic_spec, try_create_topic, values_batch, Client, WAIT,
};
use strata_proto::api::v1::{CreatePartitionsRequest, ErrorCode};
use strata_tests::broker_process::BrokerProcess;

/// The open-files limit the brokers here run under.
const OPEN_FILES_LIMIT: u64 = 1024;

fn start_limited(data_dir: &Path, extra_args: &[&str]) -> BrokerProcess {
    tokio::task::block_in_place(|| {
        BrokerProcess::start_with_open_files_limit(data_dir, extra_args, OPEN_FILES_LIMIT)
    })
    .expect("start strata-broker")
}

/// Descriptors the broker process has open now.
fn open_descriptors(broker: &BrokerProcess) -> usize {
    let pid = broker.pid().expect("running");
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Partition directories of `topic` in the data directory.
fn partition_dirs(data_dir: &Path, topic: &str) -> usize {
    std::fs::read_dir(data_dir)
        .unwrap()
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .and_then(|name| name.strip_prefix(topic))
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|partition| partition.parse::<u32>().is_ok())
        })
        .count()
}

async fn topic_names(client: &mut Client) -> Vec<String> {
    metadata(client)
        .await
        .topics
        .into_iter()
        .map(|topic| topic.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_beyond_the_budget_is_refused_up_front_and_one_within_it_survives_restarts() {
    let data = tempfile::tempdir().unwrap();
    let mut broker = start_limited(data.path(), &[]);
    let mut client = connect(&broker).await;

    let refused = try_create_topic(&mut client, topic_spec("huge", 10_000, &[])).await;
    assert_eq!(
        code(&refused.error),
        ErrorCode::InvalidPartitions,
        "{refused:?}"
    );
    let message = refused.error.as_ref().unwrap().message.clone();
    for expected in ["RLIMIT_NOFILE 1024", "ulimit -Hn", "per broker"] {
        assert!(
            message.contains(expected),
            "{expected:?} missing from: {message}"
        );
    }
    assert!(!topic_names(&mut client).await.contains(&"huge".to_owned()));
    assert_eq!(partition_dirs(data.path(), "huge"), 0);

    let created = try_create_topic(&mut client, topic_spec("fits", 200, &[])).await;
    assert_ok(&created.error);
    assert_eq!(partition_dirs(data.path(), "fits"), 200);
    for partition in [0, 99, 199] {
        produce_ok(&mut client, "fits", partition, values_batch(&["kept"])).await;
    }
    let descriptors = open_descriptors(&broker);
    eprintln!("descriptors open with 200 partitions: {descriptors}");
    assert!(
        descriptors < OPEN_FILES_LIMIT as usize / 2,
        "{descriptors} descriptors open with 200 partitions"
    );
    // Growing past the budget is refused the same way.
    let grow = CreatePartitionsRequest {
        topic: "fits".to_owned(),
        total_count: 1_000,
        validate_only: false,
    };
    let response = client.create_partitions(grow).await.unwrap().into_inner();
    assert_eq!(
        code(&response.error),
        ErrorCode::InvalidPartitions,
        "{response:?}"
    );

    drop(client);
    terminate(&mut broker);
    restart(&mut broker);
    let mut client = connect(&broker).await;
    for partition in [0, 99, 199] {
        let records = fetch_all(&mut client, "fits", partition).await;
        assert_eq!(records.len(), 1, "fits-{partition} after a clean restart");
    }
    drop(client);
    kill(&mut broker);
    restart(&mut broker);
    let mut client = connect(&broker).await;
    assert_eq!(fetch_all(&mut client, "fits", 199).await.len(), 1);
    assert_eq!(topic_names(&mut client).await, vec!["fits".to_owned()]);
}

/// One ~900-byte record: with 1 KiB segments, every batch rolls a new segment.
fn big_value(index: usize) -> String {
    format!("{index:06}-{}", "x".repeat(900))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_segments_under_load_keep_descriptors_bounded_and_survive_restarts() {
    const BATCHES: usize = 1_500;
    let data = tempfile::tempdir().unwrap();
    let mut broker = start_limited(data.path(), &["--flush", "interval:1000"]);
    let mut client = connect(&broker).await;
    let created = try_create_topic(
        &mut client,
        topic_spec("tiny", 1, &[("segment.bytes", "1024")]),
    )
    .await;
    assert_ok(&created.error);
    let at_start = open_descriptors(&broker);
    let mut most = at_start;
    let deadline = tokio::time::Instant::now() + 10 * WAIT;
    for index in 0..BATCHES {
        let offset = produce_ok(&mut client, "tiny", 0, values_batch(&[&big_value(index)])).await;
        assert_eq!(offset, index as i64);
        if index % 100 == 0 {
            most = most.max(open_descriptors(&broker));
        }
        assert!(tokio::time::Instant::now() < deadline, "produce is stuck");
    }
    let segments = std::fs::read_dir(data.path().join("tiny-0"))
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count();
    assert!(segments >= BATCHES, "{segments} segments");
    // Reading everything back touches every segment.
    let records = fetch_all(&mut client, "tiny", 0).await;
    assert_eq!(records.len(), BATCHES);
    for (record, index) in records.iter().zip(0..) {
        assert_eq!(record.value.as_deref(), Some(big_value(index).as_bytes()));
    }
    most = most.max(open_descriptors(&broker));
    // The cache of open sealed segments gets an eighth of the limit: 128.
    let bound = at_start + 128 + 16;
    eprintln!("descriptors open: {at_start} at start, {most} at most with {segments} segments");
    assert!(
        most <= bound,
        "{most} descriptors open at most with {segments} segments (started with {at_start})"
    );

    drop(client);
    terminate(&mut broker);
    restart(&mut broker);
    let mut client = connect(&broker).await;
    assert_eq!(fetch_all(&mut client, "tiny", 0).await.len(), BATCHES);
    let offset = produce_ok(&mut client, "tiny", 0, values_batch(&[&big_value(BATCHES)])).await;
    assert_eq!(offset, BATCHES as i64);
    assert!(open_descriptors(&broker) <= bound);

    drop(client);
    kill(&mut broker);
    restart(&mut broker);
    let mut client = connect(&broker).await;
    let records = fetch_all(&mut client, "tiny", 0).await;
    assert_eq!(records.len(), BATCHES + 1);
    assert!(open_descriptors(&broker) <= bound);
}
