//! Damaged or missing cluster metadata never costs partition data. A real broker holds a
//! topic with acknowledged records and has just deleted another one; then its metadata log
//! (`__cluster_metadata-0`) is damaged: one byte of the last batch flipped, the segment
//! cut to half, or the whole directory gone, after a clean stop and after a crash. The
//! broker must refuse to start, delete nothing, and once the metadata is put back, serve
//! every acknowledged record with the deleted topic still deleted. A partition directory
//! the metadata does not know is set aside, never deleted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{
    assert_ok, connect, create_topic, fetch_all, kill, metadata, produce_ok, restart, start_broker,
    terminate, values_batch,
};
use strata_proto::api::v1::DeleteTopicsRequest;
use strata_tests::broker_process::BrokerProcess;

const KEPT: &str = "kept";
const GONE: &str = "gone";
const PARTITIONS: i32 = 2;
const METADATA_DIR: &str = "__cluster_metadata-0";

#[derive(Debug, Clone, Copy)]
enum Damage {
    FlipLastBatchByte,
    CutToHalf,
    Missing,
}

/// Starts a broker, creates `kept` with records and `gone`, deletes `gone`; returns the
/// broker (running) and the acknowledged values per partition of `kept`.
async fn populated(dir: &Path) -> (BrokerProcess, Vec<Vec<String>>) {
    let broker = start_broker(dir, &[]);
    let mut client = connect(&broker).await;
    create_topic(&mut client, KEPT, PARTITIONS, &[]).await;
    create_topic(&mut client, GONE, 1, &[]).await;
    let mut acked = Vec::new();
    for partition in 0..PARTITIONS {
        let values: Vec<String> = (0..5).map(|i| format!("p{partition}-v{i}")).collect();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        produce_ok(&mut client, KEPT, partition, values_batch(&refs)).await;
        acked.push(values);
    }
    let request = DeleteTopicsRequest {
        names: vec![GONE.to_owned()],
    };
    let response = client.delete_topics(request).await.unwrap().into_inner();
    assert_ok(&response.results[0].error);
    (broker, acked)
}

fn metadata_segment(dir: &Path) -> PathBuf {
    dir.join(METADATA_DIR).join("00000000000000000000.log")
}

/// Damages the metadata after copying it to `backup`, to undo it later.
fn damage(dir: &Path, damage: Damage, backup: &Path) {
    copy_dir(&dir.join(METADATA_DIR), backup);
    let segment = metadata_segment(dir);
    match damage {
        Damage::FlipLastBatchByte => {
            let mut bytes = fs::read(&segment).unwrap();
            let last = bytes.len() - 3;
            bytes[last] ^= 0x01;
            fs::write(&segment, bytes).unwrap();
        }
        Damage::CutToHalf => {
            let length = fs::metadata(&segment).unwrap().len();
            let file = fs::OpenOptions::new().write(true).open(&segment).unwrap();
            file.set_len(length / 2).unwrap();
        }
        Damage::Missing => fs::remove_dir_all(dir.join(METADATA_DIR)).unwrap(),
    }
}

fn undo(dir: &Path, backup: &Path) {
    let metadata = dir.join(METADATA_DIR);
    if metadata.exists() {
        fs::remove_dir_all(&metadata).unwrap();
    }
    copy_dir(backup, &metadata);
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// The bytes of every segment of `kept`, to show nothing in them changed.
fn kept_segments(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    (0..PARTITIONS)
        .map(|partition| {
            let path = dir
                .join(format!("{KEPT}-{partition}"))
                .join("00000000000000000000.log");
            let bytes = fs::read(&path)
                .unwrap_or_else(|error| panic!("{} must still be there: {error}", path.display()));
            (path, bytes)
        })
        .collect()
}

async fn assert_served(broker: &BrokerProcess, acked: &[Vec<String>]) {
    let mut client = connect(broker).await;
    for (partition, values) in acked.iter().enumerate() {
        let records = fetch_all(&mut client, KEPT, partition as i32).await;
        let served: Vec<String> = records
            .iter()
            .map(|record| String::from_utf8(record.value.clone().unwrap().to_vec()).unwrap())
            .collect();
        assert_eq!(&served, values, "{KEPT}-{partition}");
    }
    let topics = metadata(&mut client).await.topics;
    assert!(
        topics.iter().all(|topic| topic.name != GONE),
        "a deleted topic came back: {topics:?}"
    );
}

async fn refuses_to_start_and_keeps_the_data(damage_kind: Damage, crash: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (mut broker, acked) = populated(dir.path()).await;
    if crash {
        kill(&mut broker);
    } else {
        terminate(&mut broker);
    }
    let before = kept_segments(dir.path());
    let backup = tempfile::tempdir().unwrap();
    damage(dir.path(), damage_kind, backup.path());

    let start = tokio::task::block_in_place(|| broker.restart());
    assert!(
        start.is_err(),
        "{damage_kind:?} (crash: {crash}): the broker started on damaged metadata"
    );
    assert_eq!(
        kept_segments(dir.path()),
        before,
        "{damage_kind:?}: partition data changed"
    );

    undo(dir.path(), backup.path());
    restart(&mut broker);
    assert_served(&broker, &acked).await;
    terminate(&mut broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_the_last_metadata_batch_stops_the_start() {
    refuses_to_start_and_keeps_the_data(Damage::FlipLastBatchByte, true).await;
    refuses_to_start_and_keeps_the_data(Damage::FlipLastBatchByte, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_log_cut_to_half_stops_the_start() {
    refuses_to_start_and_keeps_the_data(Damage::CutToHalf, true).await;
    refuses_to_start_and_keeps_the_data(Damage::CutToHalf, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_metadata_beside_partition_data_stops_the_start() {
    refuses_to_start_and_keeps_the_data(Damage::Missing, true).await;
    refuses_to_start_and_keeps_the_data(Damage::Missing, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_the_metadata_does_not_know_is_set_aside_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (mut broker, acked) = populated(dir.path()).await;
    terminate(&mut broker);
    let ghost = dir.path().join("ghost-0");
    copy_dir(&dir.path().join(format!("{KEPT}-0")), &ghost);
    let ghost_bytes = fs::read(ghost.join("00000000000000000000.log")).unwrap();

    restart(&mut broker);
    assert_served(&broker, &acked).await;
    assert!(!ghost.exists(), "the unknown partition is out of service");
    let aside: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("ghost-0.orphaned."))
        })
        .collect();
    assert_eq!(aside.len(), 1, "set aside once: {aside:?}");
    let kept = fs::read(aside[0].join("00000000000000000000.log")).unwrap();
    assert_eq!(kept, ghost_bytes, "its data is intact");

    // A set-aside directory is skipped by later starts.
    terminate(&mut broker);
    restart(&mut broker);
    assert_served(&broker, &acked).await;
    assert!(aside[0].exists());
    terminate(&mut broker);
}
