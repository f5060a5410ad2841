//! A data directory written by the one-node broker from before the controller quorum
//! (issue 19) still opens.
//!
//! The directory holds its metadata log in the partition `__cluster_metadata-0`, built
//! here with the broker's own log and metadata-log code, and two partitions of records.
//! Started with three voters it is refused, every file untouched. Started alone it opens
//! with its topic and records, moves its metadata into the quorum's first snapshot, sets
//! the old metadata log aside (`.orphaned.`), takes new records, and keeps all of it
//! across a SIGKILL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{ensure, Context};
use bytes::Bytes;
use strata_broker::controller::quorum::state_machine::SNAPSHOT_FILE;
use strata_broker::controller::quorum::CONTROLLER_DIR;
use strata_broker::controller::{MetadataLog, MetadataRecord, METADATA_TOPIC};
use strata_broker::log::{LogConfig, LogManager, SystemClock, TopicPartition};
use strata_client::{Acks, Client, Offset, OffsetSpec, Record};
use strata_proto::record::{BatchBuilder, BatchSettings, Record as BatchRecord};
use strata_proto::types::{LeaderEpoch, Offset as LogOffset, PartitionId, TopicName};
use strata_tests::broker_process::{free_port, BrokerOptions, BrokerProcess};
use strata_tests::cluster_views::WAIT;
use strata_tests::wait::wait_for;
use tokio_stream::StreamExt;

fn block<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Records of `legacy-<partition>` written before the quorum.
fn legacy_value(partition: i32, n: usize) -> String {
    format!("legacy-{partition}-{n}")
}

const LEGACY_TOPIC: &str = "legacy";
const LEGACY_RECORDS: usize = 5;

/// Writes what a one-node broker from before the quorum left behind: its metadata log
/// in `__cluster_metadata-0` (cluster id, broker 1 at `address`, topic `legacy` with two
/// partitions led by broker 1), and [`LEGACY_RECORDS`] records in each partition, with
/// the high watermark at the log end, as a single-replica leader keeps it.
fn write_legacy_directory(data_dir: &Path, address: &str) -> anyhow::Result<()> {
    let logs = LogManager::open(data_dir, LogConfig::default(), Arc::new(SystemClock))?;
    let (mut metadata, image) = MetadataLog::open(&logs, Default::default())?;
    ensure!(image.version == 0, "a fresh metadata log");
    let topic_id = "0f1e2d3c4b5a69788796a5b4c3d2e1f0".to_owned();
    let batches = vec![
        vec![MetadataRecord::SetClusterId {
            cluster_id: "legacy-cluster-0000000000000000".to_owned(),
        }],
        vec![MetadataRecord::RegisterBroker {
            broker_id: 1,
            address: address.to_owned(),
            rack: None,
            incarnation: 1,
            external_address: None,
        }],
        vec![
            MetadataRecord::CreateTopic {
                topic_id: topic_id.clone(),
                name: LEGACY_TOPIC.to_owned(),
                configs: BTreeMap::new(),
            },
            MetadataRecord::CreatePartition {
                topic_id: topic_id.clone(),
                partition: 0,
                replicas: vec![1],
                leader: 1,
                leader_epoch: 0,
                isr: vec![1],
            },
            MetadataRecord::CreatePartition {
                topic_id,
                partition: 1,
                replicas: vec![1],
                leader: 1,
                leader_epoch: 0,
                isr: vec![1],
            },
        ],
    ];
    for records in batches {
        let end_offset = metadata.end_offset();
        metadata.append(&records, end_offset)?;
    }
    for partition in 0..2 {
        let log = logs.get_or_create(
            &TopicPartition::new(TopicName::new(LEGACY_TOPIC)?, PartitionId(partition)),
            None,
        )?;
        let mut builder = BatchBuilder::new(BatchSettings::default());
        for n in 0..LEGACY_RECORDS {
            builder.append(&BatchRecord::from_value(
                0,
                Bytes::from(legacy_value(partition, n)),
            ))?;
        }
        let info = log.append(&builder.build()?, LeaderEpoch(0))?;
        log.wait_durable(info.log_end_offset)?;
        ensure!(info.log_end_offset == LogOffset(LEGACY_RECORDS as i64));
        log.advance_high_watermark(info.log_end_offset);
    }
    logs.checkpoint_all()?;
    logs.close()?;
    Ok(())
}

/// Every file under `dir` with its contents, by relative path.
fn snapshot_tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().to_path_buf();
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// The values of `legacy-<partition>` from offset 0 up to its log end.
async fn legacy_values(client: &Client, partition: i32) -> anyhow::Result<Vec<String>> {
    let (end, _) = client
        .admin()
        .list_offsets(LEGACY_TOPIC, partition, OffsetSpec::Latest)
        .await?;
    let mut consumer = client
        .consumer()
        .assign([(LEGACY_TOPIC, partition)])
        .start(Offset::Earliest)
        .build()
        .await?;
    let mut values = Vec::new();
    while consumer
        .position(LEGACY_TOPIC, partition)
        .is_none_or(|position| position < end)
    {
        let record = tokio::time::timeout(WAIT, consumer.next())
            .await
            .context("reading the legacy topic")?
            .context("the stream ended")??;
        values.push(
            String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).into_owned(),
        );
    }
    consumer.close().await?;
    Ok(values)
}

/// The directories of `data_dir` set aside (`<partition>.orphaned.<millis>`).
fn set_aside(data_dir: &Path) -> Vec<String> {
    std::fs::read_dir(data_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".orphaned."))
        .collect()
}

async fn connect_one(address: SocketAddr) -> anyhow::Result<Client> {
    Ok(Client::builder()
        .brokers([address.to_string()])
        .build()
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_node_data_directory_from_before_the_quorum_still_opens() {
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let port = free_port().unwrap();
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    block(|| write_legacy_directory(&data_dir, &address.to_string())).unwrap();
    let metadata_dir = data_dir.join(format!("{METADATA_TOPIC}-0"));
    assert!(metadata_dir.is_dir());

    // Three voters: refused, and the directory stays as it was.
    let before = snapshot_tree(&data_dir);
    let log_file = directory.path().join("broker.log");
    let voters = format!("1@{address},2@127.0.0.2:{port},3@127.0.0.3:{port}");
    let refused = block(|| {
        BrokerProcess::start_with_options(
            &data_dir,
            BrokerOptions {
                extra_args: ["--node-id", "1", "--controller-voters", &voters]
                    .map(str::to_owned)
                    .to_vec(),
                listen: Some(address),
                log_file: Some(log_file.clone()),
                log_filter: Some("info".to_owned()),
                ..BrokerOptions::default()
            },
        )
    });
    let log = std::fs::read_to_string(&log_file).unwrap_or_default();
    let error = refused.expect_err("a one-node directory cannot start with three voters");
    assert!(
        error.to_string().contains("exited during start-up"),
        "{error:#}\n{log}"
    );
    assert!(log.contains("one-node cluster"), "{log}");
    assert_eq!(
        snapshot_tree(&data_dir).keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "the refused start left files behind or removed some; its log:\n{log}"
    );
    assert!(
        snapshot_tree(&data_dir) == before,
        "the refused start changed files"
    );

    // One node: the topic, its records and new ones, across a restart.
    let mut broker = block(|| {
        BrokerProcess::start_with_options(
            &data_dir,
            BrokerOptions {
                listen: Some(address),
                log_file: Some(log_file.clone()),
                log_filter: Some("info".to_owned()),
                ..BrokerOptions::default()
            },
        )
    })
    .unwrap();
    let client = connect_one(address).await.unwrap();
    let described = client.admin().describe_topic(LEGACY_TOPIC).await.unwrap();
    assert_eq!(described.partitions.len(), 2, "{described:?}");
    for partition in 0..2 {
        let expected: Vec<String> = (0..LEGACY_RECORDS)
            .map(|n| legacy_value(partition, n))
            .collect();
        assert_eq!(legacy_values(&client, partition).await.unwrap(), expected);
    }
    let producer = client.producer().acks(Acks::All).build().unwrap();
    for partition in 0..2 {
        let delivery = producer
            .send(
                Record::to(LEGACY_TOPIC)
                    .partition(partition)
                    .value(format!("new-{partition}")),
            )
            .await
            .unwrap();
        assert_eq!(delivery.offset, LEGACY_RECORDS as i64);
    }
    producer.close().await.unwrap();
    drop(client);
    assert!(data_dir.join(CONTROLLER_DIR).join(SNAPSHOT_FILE).exists());
    assert!(
        !metadata_dir.exists(),
        "the old metadata log is still in place"
    );
    let aside = set_aside(&data_dir);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(
        aside[0].starts_with(&format!("{METADATA_TOPIC}-0.orphaned.")),
        "{aside:?}"
    );

    block(|| broker.kill()).unwrap();
    block(|| broker.restart()).unwrap();
    let client = wait_for("the broker answers after its restart", WAIT, || {
        connect_one(address)
    })
    .await
    .unwrap();
    let described = client.admin().describe_topic(LEGACY_TOPIC).await.unwrap();
    assert_eq!(described.partitions.len(), 2, "{described:?}");
    for partition in 0..2 {
        let mut expected: Vec<String> = (0..LEGACY_RECORDS)
            .map(|n| legacy_value(partition, n))
            .collect();
        expected.push(format!("new-{partition}"));
        assert_eq!(legacy_values(&client, partition).await.unwrap(), expected);
    }
    assert_eq!(set_aside(&data_dir), aside, "nothing else was set aside");
    block(|| broker.terminate()).unwrap();
}
