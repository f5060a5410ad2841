//! Topics, their configs and their data survive a clean (SIGTERM) and a crash (SIGKILL)
//! restart, and the topics are rebuilt from the controller quorum's Raft state
//! (`<data>/controller`): `dump-log` shows the CreateTopic record in the Raft log, no file
//! outside the controller directory holds the configs (nor could any hold them, by the
//! list of files allowed), and a data directory holding only a copy of the controller
//! directory starts with the topic and its configs. A deleted topic stays deleted and its
//! directories are gone.
//!
//! What legitimately changes per start is compared apart ([`Starts`]): the broker's
//! incarnation rises by exactly one per start, and leader epochs never go down (a
//! SIGTERM's controlled shutdown fences the broker, the restart unfences it, each raising
//! the epochs of the partitions it leads).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    assert_ok, code, connect, create_topic, describe, fetch_all, kill, metadata, produce_ok,
    restart, start_broker, terminate, values_batch, Client,
};
use strata_broker::controller::quorum::CONTROLLER_DIR;
use strata_proto::api::v1::{
    ConfigSource, DeleteTopicsRequest, DescribeTopicsResponse, ErrorCode, MetadataResponse,
    PartitionMetadata,
};
use strata_proto::record::StoredRecord;
use strata_tests::broker_process::workspace_binary;

const TOPIC: &str = "persisted";
const PARTITIONS: i32 = 3;
const CONFIGS: [(&str, &str); 2] = [("retention_ms", "3600000"), ("flush", "interval:100")];

/// What must be the same after a restart: the topic as described (without offsets, which
/// are checked through the records) and every record of every partition, with the fields
/// in [`Starts`] zeroed.
#[derive(Debug, PartialEq)]
struct Observed {
    metadata: MetadataResponse,
    description: DescribeTopicsResponse,
    records: Vec<Vec<StoredRecord>>,
}

/// What moves on every start: each broker's incarnation and each partition's leader epoch
/// (as Metadata and DescribeTopics answer them).
#[derive(Debug, PartialEq)]
struct Starts {
    incarnations: BTreeMap<i32, u64>,
    leader_epochs: BTreeMap<(&'static str, String, i32), i32>,
}

/// Moves the leader epochs of `partitions` of `topic` into `epochs` (zeroing them).
fn take_epochs(
    epochs: &mut BTreeMap<(&'static str, String, i32), i32>,
    answer: &'static str,
    topic: &str,
    partitions: &mut [PartitionMetadata],
) {
    for partition in partitions {
        let key = (answer, topic.to_owned(), partition.partition);
        epochs.insert(key, std::mem::take(&mut partition.leader_epoch));
    }
}

async fn observe(client: &mut Client) -> (Observed, Starts) {
    let mut metadata = metadata(client).await;
    // Registration, fencing and unfencing move the version; the topics must not move.
    metadata.metadata_version = 0;
    let mut starts = Starts {
        incarnations: BTreeMap::new(),
        leader_epochs: BTreeMap::new(),
    };
    for broker in &mut metadata.brokers {
        starts
            .incarnations
            .insert(broker.node_id, std::mem::take(&mut broker.incarnation));
    }
    for topic in &mut metadata.topics {
        let epochs = &mut starts.leader_epochs;
        take_epochs(epochs, "metadata", &topic.name, &mut topic.partitions);
    }
    let mut description = describe(client, &[TOPIC]).await;
    for topic in &mut description.topics {
        if let Some(topic) = topic.metadata.as_mut() {
            let epochs = &mut starts.leader_epochs;
            take_epochs(epochs, "describe", &topic.name, &mut topic.partitions);
        }
    }
    let mut records = Vec::new();
    for partition in 0..PARTITIONS {
        records.push(fetch_all(client, TOPIC, partition).await);
    }
    let observed = Observed {
        metadata,
        description,
        records,
    };
    (observed, starts)
}

/// One restart happened between `before` and `after`: every incarnation rose by exactly
/// one, and no leader epoch went down.
#[track_caller]
fn assert_one_start(before: &Starts, after: &Starts, what: &str) {
    assert!(!before.incarnations.is_empty(), "{what}: no brokers");
    let expected: BTreeMap<i32, u64> = before
        .incarnations
        .iter()
        .map(|(id, incarnation)| (*id, incarnation + 1))
        .collect();
    assert_eq!(after.incarnations, expected, "{what}: incarnations");
    assert_eq!(
        after.leader_epochs.keys().collect::<Vec<_>>(),
        before.leader_epochs.keys().collect::<Vec<_>>(),
        "{what}: the same partitions"
    );
    for (key, epoch) in &before.leader_epochs {
        let now = after.leader_epochs[key];
        assert!(
            now >= *epoch,
            "{what}: {key:?} leader epoch {epoch} went down to {now}"
        );
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

/// Files the controller directory may hold: the Raft log, vote, committed index, purged
/// log id and snapshot, and the temporary files their atomic replacement writes.
fn is_controller_file(name: &str) -> bool {
    let name = name.strip_suffix(".tmp").unwrap_or(name);
    [
        "raft.log",
        "vote.json",
        "committed.json",
        "purged.json",
        "snapshot.json",
    ]
    .contains(&name)
}

/// Files a data directory may hold: in a partition directory segments and their indexes
/// and checkpoints; in the controller directory its files; at the top the lock and the
/// clean-shutdown marker.
fn is_allowed_file(path: &Path) -> bool {
    let name = path.file_name().unwrap().to_str().unwrap();
    let is_segment_file = |extension: &str| {
        name.strip_suffix(extension)
            .is_some_and(|stem| stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
    };
    match path.components().count() {
        1 => [".lock", ".strata_cleanshutdown"].contains(&name),
        2 if path.starts_with(CONTROLLER_DIR) => is_controller_file(name),
        2 => {
            is_segment_file(".log")
                || is_segment_file(".index")
                || is_segment_file(".timeindex")
                || name == "leader-epoch.checkpoint"
                || name == "partition.checkpoint"
        }
        _ => false,
    }
}

fn dump_controller(data_dir: &Path) -> String {
    let output = Command::new(workspace_binary("strata-broker"))
        .arg("dump-log")
        .arg(data_dir.join(CONTROLLER_DIR))
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
    let (before, starts_before) = observe(&mut client).await;
    assert_topic_configs(&before.description);
    assert_eq!(before.records.iter().map(Vec::len).sum::<usize>(), 6);

    terminate(&mut broker);
    restart(&mut broker);
    let mut client = connect(&broker).await;
    let (after, starts_after) = observe(&mut client).await;
    assert_eq!(after, before, "after SIGTERM");
    assert_one_start(&starts_before, &starts_after, "after SIGTERM");

    // Acknowledged under flush=interval: written to the page cache, which a process
    // crash does not lose.
    produce_round(&mut client, "second").await;
    let (before, starts_before) = observe(&mut client).await;
    assert_eq!(before.records.iter().map(Vec::len).sum::<usize>(), 12);
    kill(&mut broker);
    restart(&mut broker);
    let mut client = connect(&broker).await;
    let (after, starts_after) = observe(&mut client).await;
    assert_topic_configs(&after.description);
    assert_eq!(after, before, "after SIGKILL");
    assert_one_start(&starts_before, &starts_after, "after SIGKILL");
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_are_rebuilt_from_the_raft_log_not_from_a_side_file() {
    let data = tempfile::tempdir().unwrap();
    let mut broker = start_broker(data.path(), &[]);
    let mut client = connect(&broker).await;
    create_topic(&mut client, TOPIC, PARTITIONS, &CONFIGS).await;
    produce_round(&mut client, "only").await;
    let (before, starts_before) = observe(&mut client).await;
    terminate(&mut broker);

    let dump = dump_controller(data.path());
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
        "controller/raft.log",
        "persisted-0/00000000000000000000.log",
    ] {
        assert!(files.contains(&PathBuf::from(expected)), "{files:?}");
    }
    let unexpected: Vec<&PathBuf> = files.iter().filter(|path| !is_allowed_file(path)).collect();
    assert!(
        unexpected.is_empty(),
        "files that are not segments, indexes, checkpoints or the controller's: {unexpected:?}\nall files: {files:?}"
    );
    // None of the allowed files outside the controller directory holds the configs.
    for path in files
        .iter()
        .filter(|path| !path.starts_with(CONTROLLER_DIR))
    {
        let bytes = std::fs::read(data.path().join(path)).unwrap();
        let holds = |value: &str| bytes.windows(value.len()).any(|w| w == value.as_bytes());
        assert!(
            !holds("3600000") && !holds("interval:100"),
            "{} holds a topic config",
            path.display()
        );
    }

    // The controller directory alone carries the topic: a data directory holding only a
    // copy of it starts with the topic, its partitions and its configs.
    let copy = tempfile::tempdir().unwrap();
    let controller_copy = copy.path().join(CONTROLLER_DIR);
    std::fs::create_dir(&controller_copy).unwrap();
    for entry in std::fs::read_dir(data.path().join(CONTROLLER_DIR)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), controller_copy.join(entry.file_name())).unwrap();
    }
    let mut from_copy = start_broker(copy.path(), &[]);
    let mut copy_client = connect(&from_copy).await;
    assert_topic_configs(&describe(&mut copy_client, &[TOPIC]).await);
    terminate(&mut from_copy);

    restart(&mut broker);
    let mut client = connect(&broker).await;
    let (after, starts_after) = observe(&mut client).await;
    assert_topic_configs(&after.description);
    assert_eq!(after, before);
    assert_one_start(&starts_before, &starts_after, "after SIGTERM");
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
