//! Topics, their configs and their data survive a clean (SIGTERM) and a crash (SIGKILL)
//! restart, and the topics are rebuilt by replaying the metadata log: `dump-log` shows
//! the CreateTopic record, no other file in the data directory could hold the configs,
//! and removing the snapshot (only a hint) loses nothing. A deleted topic stays deleted
//! and its directories are gone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    assert_ok, code, connect, create_topic, describe, fetch_all, kill, metadata, produce_ok,
    restart, start_broker, terminate, values_batch, Client,
};
use strata_proto::api::v1::{
    ConfigSource, DeleteTopicsRequest, DescribeTopicsResponse, ErrorCode, MetadataResponse,
};
use strata_proto::record::StoredRecord;
use strata_tests::broker_process::workspace_binary;

const TOPIC: &str = "persisted";
const PARTITIONS: i32 = 3;
const CONFIGS: [(&str, &str); 2] = [("retention_ms", "3600000"), ("flush", "interval:100")];

/// What must be the same after a restart: the topic as described (without offsets, which
/// are checked through the records) and every record of every partition.
#[derive(Debug, PartialEq)]
struct Observed {
    metadata: MetadataResponse,
    description: DescribeTopicsResponse,
    records: Vec<Vec<StoredRecord>>,
}

async fn observe(client: &mut Client) -> Observed {
    let mut metadata = metadata(client).await;
    // RegisterBroker on every start moves the version; the topics must not move.
    metadata.metadata_version = 0;
    let description = describe(client, &[TOPIC]).await;
    let mut records = Vec::new();
    for partition in 0..PARTITIONS {
        records.push(fetch_all(client, TOPIC, partition).await);
    }
    Observed {
        metadata,
        description,
        records,
    }
}

fn assert_topic_configs(description: &DescribeTopicsResponse) {
    let topic = &description.topics[0];
    let metadata = topic.metadata.as_ref().unwrap();
    assert_ok(&metadata.error);
    assert_eq!(metadata.partitions.len(), PARTITIONS as usize);
    for (key, value) in CONFIGS {
        let entry = topic
            .configs
            .iter()
            .find(|entry| entry.key == key)
            .unwrap_or_else(|| panic!("no config {key} in {:?}", topic.configs));
        assert_eq!(entry.value, value, "{key}");
        assert_eq!(entry.source, ConfigSource::Topic as i32, "{key}");
    }
}

async fn produce_round(client: &mut Client, round: &str) {
    for partition in 0..PARTITIONS {
        let first = format!("{round}-{partition}-a");
        let second = format!("{round}-{partition}-b");
        produce_ok(client, TOPIC, partition, values_batch(&[&first, &second])).await;
    }
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    files.sort();
    files
}

/// Files a partition directory may hold: segments and their indexes, checkpoints, and in
/// the metadata partition the snapshot. At the top: the lock and the clean-shutdown marker.
fn is_log_file(path: &Path) -> bool {
    let name = path.file_name().unwrap().to_str().unwrap();
    let in_partition_dir = path.components().count() == 2;
    let is_segment_file = |extension: &str| {
        name.strip_suffix(extension)
            .is_some_and(|stem| stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
    };
    if !in_partition_dir {
        return path.components().count() == 1
            && [".lock", ".strata_cleanshutdown"].contains(&name);
    }
    let in_metadata_dir = path.starts_with("__cluster_metadata-0");
    is_segment_file(".log")
        || is_segment_file(".index")
        || is_segment_file(".timeindex")
        || name == "leader-epoch.checkpoint"
        || name == "partition.checkpoint"
        || (in_metadata_dir && name == "snapshot.json")
}

fn dump_metadata_log(data_dir: &Path) -> String {
    let output = Command::new(workspace_binary("strata-broker"))
        .arg("dump-log")
        .arg(data_dir.join("__cluster_metadata-0"))
        .arg("--records")
        .output()
        .unwrap();
    assert!(output.status.success(), "dump-log: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_configs_and_data_survive_a_sigterm_and_a_sigkill_restart() {
    let data = tempfile::tempdir().unwrap();
    let mut broker = start_broker(data.path(), &[]);
    let mut client = connect(&broker).await;
    create_topic(&mut client, TOPIC, PARTITIONS, &CONFIGS).await;
    produce_round(&mut client, "first").await;
    let before = observe(&mut client).await;
    assert_topic_configs(&before.description);
    assert_eq!(before.records.iter().map(Vec::len).sum::<usize>(), 6);

    terminate(&mut broker);
    restart(&mut broker);
    let mut client = connect(&broker).await;
    assert_eq!(observe(&mut client).await, before, "after SIGTERM");

    // Acknowledged under flush=interval: written to the page cache, which a process
    // crash does not lose.
    produce_round(&mut client, "second").await;
    let before = observe(&mut client).await;
    assert_eq!(before.records.iter().map(Vec::len).sum::<usize>(), 12);
    kill(&mut broker);
    restart(&mut broker);
    let mut client = connect(&broker).await;
    let after = observe(&mut client).await;
    assert_topic_configs(&after.description);
    assert_eq!(after, before, "after SIGKILL");
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_are_rebuilt_from_the_metadata_log_not_from_a_side_file() {
    let data = tempfile::tempdir().unwrap();
    let mut broker = start_broker(data.path(), &[]);
    let mut client = connect(&broker).await;
    create_topic(&mut client, TOPIC, PARTITIONS, &CONFIGS).await;
    produce_round(&mut client, "only").await;
    let before = observe(&mut client).await;
    terminate(&mut broker);

    let dump = dump_metadata_log(data.path());
    let create_record = dump
        .lines()
        .find(|line| line.contains(r#""type":"CreateTopic""#) && line.contains(TOPIC))
        .unwrap_or_else(|| panic!("no CreateTopic record for {TOPIC} in:\n{dump}"));
    assert!(
        create_record.contains(r#""retention_ms":"3600000""#)
            && create_record.contains(r#""flush":"interval:100""#),
        "{create_record}"
    );

    let files = files_under(data.path());
    for expected in [
        "__cluster_metadata-0/00000000000000000000.log",
        "persisted-0/00000000000000000000.log",
    ] {
        assert!(files.contains(&PathBuf::from(expected)), "{files:?}");
    }
    let unexpected: Vec<&PathBuf> = files.iter().filter(|path| !is_log_file(path)).collect();
    assert!(
        unexpected.is_empty(),
        "files that are not segments, indexes, checkpoints or the snapshot: {unexpected:?}\nall files: {files:?}"
    );
    // The snapshot is only a hint: without it the log replay alone rebuilds the topic.
    let snapshot = data
        .path()
        .join("__cluster_metadata-0")
        .join("snapshot.json");
    if snapshot.exists() {
        std::fs::remove_file(&snapshot).unwrap();
    }

    restart(&mut broker);
    let mut client = connect(&broker).await;
    let after = observe(&mut client).await;
    assert_topic_configs(&after.description);
    assert_eq!(after, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_topic_is_gone_after_a_restart_with_its_directories() {
    let data = tempfile::tempdir().unwrap();
    let mut broker = start_broker(data.path(), &[]);
    let mut client = connect(&broker).await;
    create_topic(&mut client, "doomed", 2, &[]).await;
    create_topic(&mut client, "kept", 1, &[]).await;
    produce_ok(&mut client, "doomed", 1, values_batch(&["bye"])).await;
    produce_ok(&mut client, "kept", 0, values_batch(&["hi"])).await;
    assert!(data.path().join("doomed-0").is_dir());
    assert!(data.path().join("doomed-1").is_dir());

    let request = DeleteTopicsRequest {
        names: vec!["doomed".to_owned()],
    };
    let response = client.delete_topics(request).await.unwrap().into_inner();
    assert_ok(&response.results[0].error);

    for stop in ["SIGTERM", "SIGKILL"] {
        if stop == "SIGTERM" {
            terminate(&mut broker);
        } else {
            kill(&mut broker);
        }
        restart(&mut broker);
        let mut client = connect(&broker).await;
        let names: Vec<String> = metadata(&mut client)
            .await
            .topics
            .into_iter()
            .map(|topic| topic.name)
            .collect();
        assert_eq!(names, ["kept"], "after {stop}");
        let description = describe(&mut client, &["doomed"]).await;
        let doomed = description.topics[0].metadata.as_ref().unwrap();
        assert_eq!(
            code(&doomed.error),
            ErrorCode::UnknownTopicOrPartition,
            "{stop}"
        );
        assert!(!data.path().join("doomed-0").exists(), "after {stop}");
        assert!(!data.path().join("doomed-1").exists(), "after {stop}");
        let kept = fetch_all(&mut client, "kept", 0).await;
        assert_eq!(kept.len(), 1, "after {stop}");
    }
}
