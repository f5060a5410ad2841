//! The controller end to end on a real data directory: mutations, refusals that change
//! nothing (hostile inputs 24, 25 and 33 of `docs/RELIABILITY.md`), and metadata rebuilt
//! from the metadata log on reopen, with and without a snapshot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use strata_proto::record::{BatchHeader, DecodeLimits};
use strata_proto::types::{BrokerId, Offset};

use super::metadata_log::decode_metadata_batch;
use super::snapshot::{self, SNAPSHOT_FILE};
use super::*;
use crate::log::{FlushPolicy, LogConfig, LogManager, SystemClock};

fn open_logs(dir: &Path, config: LogConfig) -> LogManager {
    LogManager::open(dir, config, Arc::new(SystemClock)).unwrap()
}

fn me() -> BrokerRegistration {
    BrokerRegistration {
        broker_id: BrokerId(1),
        address: "127.0.0.1:7070".into(),
        rack: None,
    }
}

/// A log manager and a controller on `dir`; drop both to "restart".
fn open(dir: &Path, snapshot_every_records: u64) -> (LogManager, Controller) {
    let logs = open_logs(dir, LogConfig::default());
    let options = MetadataLogOptions {
        snapshot_every_records,
    };
    let controller =
        Controller::open_with_options(&logs, BrokerDefaults::default(), me(), options).unwrap();
    (logs, controller)
}

fn metadata_end_offset(logs: &LogManager) -> Offset {
    logs.get(&MetadataLog::partition().unwrap())
        .unwrap()
        .log_end_offset()
}

fn topic(name: &str, partitions: Option<i32>, configs: &[(&str, &str)]) -> NewTopic {
    NewTopic {
        name: name.into(),
        partitions,
        replication_factor: None,
        configs: configs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
    }
}

fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// Creates topics, alters a config and allocates producer ids; returns the ids.
fn populate(controller: &Controller) -> Vec<i64> {
    controller
        .create_topic(topic("orders", Some(3), &[("retention.ms", "-1")]), false)
        .unwrap();
    controller
        .create_topic(topic("payments", None, &[]), false)
        .unwrap();
    controller
        .alter_configs(
            "payments",
            strings(&[("flush", "interval:100")]),
            vec![],
            false,
        )
        .unwrap();
    controller.create_partitions("payments", 2, false).unwrap();
    (0..3)
        .map(|_| controller.allocate_producer_id().unwrap())
        .collect()
}

/// What must survive a restart (the broker's incarnation and the version move on).
fn durable_view(image: &MetadataImage) -> (Option<String>, BTreeMap<String, TopicImage>, i64) {
    (
        image.cluster_id.clone(),
        image.topics.clone(),
        image.next_producer_id,
    )
}

fn check_survives_reopen(snapshot_every_records: u64, remove_snapshot: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (before, ids_before) = {
        let (_logs, controller) = open(dir.path(), snapshot_every_records);
        let ids = populate(&controller);
        (controller.image(), ids)
    };
    let snapshot_path = dir.path().join("__cluster_metadata-0").join(SNAPSHOT_FILE);
    assert_eq!(snapshot_path.exists(), snapshot_every_records <= 3);
    if remove_snapshot {
        std::fs::remove_file(&snapshot_path).unwrap();
    }
    let (_logs, controller) = open(dir.path(), snapshot_every_records);
    let after = controller.image();
    assert_eq!(durable_view(&after), durable_view(&before));
    assert!(after.cluster_id.as_deref().is_some_and(|id| id.len() == 32));
    assert_eq!(after.topic("orders").unwrap().partition_count(), 3);
    assert_eq!(
        after.topic("orders").unwrap().configs,
        strings(&[("retention_ms", "-1")])
    );
    assert_eq!(after.broker(BrokerId(1)).unwrap().incarnation, 2);
    assert!(after.version > before.version);
    let id = controller.allocate_producer_id().unwrap();
    assert!(ids_before.iter().all(|before| *before < id), "{id} reused");
}

#[test]
fn metadata_survives_reopen_by_replaying_the_log() {
    check_survives_reopen(1000, false);
}

#[test]
fn metadata_survives_reopen_without_the_snapshot_file() {
    check_survives_reopen(3, true);
}

#[test]
fn metadata_survives_reopen_from_a_snapshot_plus_later_records() {
    check_survives_reopen(3, false);
}

#[test]
fn reopen_really_starts_from_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_logs, controller) = open(dir.path(), 1);
        populate(&controller);
    }
    // Rewrite the snapshot with a marker only it can carry: a controller that reads it
    // shows the marker, one that replays from offset 0 would not.
    let metadata_dir = dir.path().join("__cluster_metadata-0");
    let mut image = snapshot::load(&metadata_dir).unwrap();
    image.cluster_id = Some("from-the-snapshot".into());
    snapshot::store(&metadata_dir, &image).unwrap();
    let (_logs, controller) = open(dir.path(), 1000);
    assert_eq!(
        controller.image().cluster_id.as_deref(),
        Some("from-the-snapshot")
    );
    assert!(controller.image().topic("orders").is_some());
}

#[test]
fn a_damaged_snapshot_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let (_logs, controller) = open(dir.path(), 2);
        populate(&controller);
        controller.image()
    };
    let path = dir.path().join("__cluster_metadata-0").join(SNAPSHOT_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let (_logs, controller) = open(dir.path(), 1000);
    assert_eq!(durable_view(&controller.image()), durable_view(&before));
}

#[test]
fn every_mutation_is_one_batch_and_raises_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let (logs, controller) = open(dir.path(), 1000);
    let first = controller.image();
    assert_eq!(first.version, 2, "SetClusterId + RegisterBroker");
    assert_eq!(metadata_end_offset(&logs), Offset(first.version));
    let created = controller
        .create_topic(topic("orders", Some(4), &[]), false)
        .unwrap();
    assert_eq!(created.version, first.version + 5);
    assert_eq!(controller.image(), created);
    let log = logs.get(&MetadataLog::partition().unwrap()).unwrap();
    let read = log.read(Offset(first.version), 1 << 20, None).unwrap();
    let header = BatchHeader::parse(&read.batches).unwrap();
    assert_eq!(header.total_bytes(), read.batches.len(), "one batch");
    let records = decode_metadata_batch(&read.batches, &DecodeLimits::default()).unwrap();
    assert_eq!(records.len(), 5);
    assert!(matches!(records[0].1, MetadataRecord::CreateTopic { .. }));
    let mut versions = vec![created.version];
    versions.push(
        controller
            .allocate_producer_id()
            .map(|_| controller.image().version)
            .unwrap(),
    );
    versions.push(
        controller
            .create_partitions("orders", 5, false)
            .unwrap()
            .version,
    );
    versions.push(controller.delete_topic("orders").unwrap().version);
    assert!(
        versions.windows(2).all(|pair| pair[0] < pair[1]),
        "{versions:?}"
    );
    assert_eq!(
        metadata_end_offset(&logs),
        Offset(controller.image().version)
    );
}

#[test]
fn new_partitions_are_led_by_their_first_replica_with_a_full_isr() {
    let dir = tempfile::tempdir().unwrap();
    let (_logs, controller) = open(dir.path(), 1000);
    let image = controller
        .create_topic(topic("orders", Some(2), &[]), false)
        .unwrap();
    for partition in image.topic("orders").unwrap().partitions.values() {
        assert_eq!(partition.replicas, [BrokerId(1)]);
        assert_eq!(partition.leader, Some(BrokerId(1)));
        assert_eq!(partition.isr, partition.replicas);
        assert_eq!((partition.leader_epoch, partition.partition_epoch), (0, 0));
    }
    assert_eq!(image.topic("orders").unwrap().id.len(), 32);
}

/// Asserts `result` is `expected` (by code name) and that nothing was written.
fn assert_refused_unchanged<T: std::fmt::Debug>(
    logs: &LogManager,
    controller: &Controller,
    result: Result<T, ControllerError>,
    expected: &str,
    what: &str,
) {
    let error = result.expect_err(what);
    assert_eq!(error.code_name(), expected, "{what}: {error}");
    assert_eq!(
        metadata_end_offset(logs),
        Offset(controller.image().version),
        "{what}"
    );
}

#[test]
fn hostile_topic_names_are_invalid_topic_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (logs, controller) = open(dir.path(), 1000);
    controller
        .create_topic(topic("a_b", None, &[]), false)
        .unwrap();
    let before = controller.image();
    let long = "x".repeat(250);
    for name in [
        "", ".", "..", &long, "../x", "a/b", "a\0b", "tópico", "оrders", "__x", "a.b",
    ] {
        let result = controller.create_topic(topic(name, None, &[]), false);
        assert_refused_unchanged(&logs, &controller, result, "INVALID_TOPIC", name);
        let result = controller.create_topic(topic(name, None, &[]), true);
        assert_refused_unchanged(&logs, &controller, result, "INVALID_TOPIC", name);
    }
    assert_eq!(controller.image(), before);
    let result = controller.create_topic(topic("a_b", None, &[]), false);
    assert_refused_unchanged(&logs, &controller, result, "TOPIC_ALREADY_EXISTS", "a_b");
}

#[test]
fn bad_partition_counts_and_replication_factors_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (logs, controller) = open(dir.path(), 1000);
    let before = controller.image();
    for partitions in [0, -1, 1_000_000, i32::MAX] {
        let result = controller.create_topic(topic("t", Some(partitions), &[]), false);
        let what = format!("{partitions} partitions");
        assert_refused_unchanged(&logs, &controller, result, "INVALID_PARTITIONS", &what);
    }
    for replication_factor in [0, -1, 2] {
        let spec = NewTopic {
            replication_factor: Some(replication_factor),
            ..topic("t", Some(1), &[])
        };
        let result = controller.create_topic(spec, false);
        let what = format!("RF {replication_factor} on one broker");
        assert_refused_unchanged(
            &logs,
            &controller,
            result,
            "INVALID_REPLICATION_FACTOR",
            &what,
        );
    }
    assert_eq!(controller.image(), before);
}

#[test]
fn invalid_configs_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (logs, controller) = open(dir.path(), 1000);
    controller
        .create_topic(topic("orders", None, &[("retention_ms", "1000")]), false)
        .unwrap();
    let before = controller.image();
    let bad: [&[(&str, &str)]; 9] = [
        &[("retention.ms", "-2")],
        &[("retention_bytes", "-100")],
        &[("retention_ms", "ten")],
        &[("no.such.key", "1")],
        &[("segment_bytes", "12")],
        // Compaction does not exist yet; claiming it would let retention delete the
        // last value of a key on a topic shown as compacted.
        &[("cleanup.policy", "compact"), ("retention.ms", "100")],
        &[("cleanup_policy", "compact,delete")],
        // Above the broker's message_max_bytes (the default broker's 1 MiB): larger
        // requests would end the whole produce stream at the transport.
        &[("max.message.bytes", "1048577")],
        &[("message_max_bytes", "2147483647")],
    ];
    for configs in bad {
        let what = format!("{configs:?}");
        let result = controller.create_topic(topic("fresh", None, configs), false);
        assert_refused_unchanged(&logs, &controller, result, "INVALID_CONFIG", &what);
        let result = controller.alter_configs("orders", strings(configs), vec![], false);
        assert_refused_unchanged(&logs, &controller, result, "INVALID_CONFIG", &what);
        let result = controller.alter_configs("orders", strings(configs), vec![], true);
        assert_refused_unchanged(&logs, &controller, result, "INVALID_CONFIG", &what);
    }
    let result = controller.alter_configs("orders", BTreeMap::new(), vec!["nope".into()], false);
    assert_refused_unchanged(&logs, &controller, result, "INVALID_CONFIG", "delete nope");
    let result = controller.alter_configs("missing", BTreeMap::new(), vec![], false);
    assert_refused_unchanged(
        &logs,
        &controller,
        result,
        "UNKNOWN_TOPIC_OR_PARTITION",
        "missing",
    );
    assert_eq!(controller.image(), before);
}

#[test]
fn alter_configs_reports_old_and_new_values() {
    let dir = tempfile::tempdir().unwrap();
    let (_logs, controller) = open(dir.path(), 1000);
    controller
        .create_topic(topic("orders", None, &[("retention_ms", "1000")]), false)
        .unwrap();
    let (changes, image) = controller
        .alter_configs(
            "orders",
            strings(&[("retention.ms", "2000"), ("segment.ms", "60000")]),
            vec![],
            false,
        )
        .unwrap();
    let change = |key: &str, old: Option<&str>, new: Option<&str>| ConfigChange {
        key: key.into(),
        old: old.map(str::to_owned),
        new: new.map(str::to_owned),
    };
    assert_eq!(
        changes,
        [
            change("retention_ms", Some("1000"), Some("2000")),
            change("segment_ms", None, Some("60000")),
        ]
    );
    assert_eq!(
        image.topic("orders").unwrap().configs,
        strings(&[("retention_ms", "2000"), ("segment_ms", "60000")])
    );

    let (changes, preview) = controller
        .alter_configs("orders", BTreeMap::new(), vec!["retention.ms".into()], true)
        .unwrap();
    assert_eq!(changes, [change("retention_ms", Some("2000"), None)]);
    assert!(!preview
        .topic("orders")
        .unwrap()
        .configs
        .contains_key("retention_ms"));
    assert_eq!(controller.image(), image, "validate_only writes nothing");

    let (changes, after) = controller
        .alter_configs(
            "orders",
            BTreeMap::new(),
            vec!["retention_ms".into()],
            false,
        )
        .unwrap();
    assert_eq!(changes, [change("retention_ms", Some("2000"), None)]);
    assert_eq!(
        after.topic("orders").unwrap().configs,
        strings(&[("segment_ms", "60000")])
    );
    let (changes, same) = controller
        .alter_configs(
            "orders",
            strings(&[("segment_ms", "60000")]),
            vec!["flush".into()],
            false,
        )
        .unwrap();
    assert!(changes.is_empty());
    assert_eq!(same.version, after.version, "a no-op writes nothing");
}

#[test]
fn partitions_can_only_be_added() {
    let dir = tempfile::tempdir().unwrap();
    let (logs, controller) = open(dir.path(), 1000);
    controller
        .create_topic(topic("orders", Some(3), &[]), false)
        .unwrap();
    for total in [2, 3, 0, -1, 1_000_000] {
        let result = controller.create_partitions("orders", total, false);
        let what = format!("to {total}");
        assert_refused_unchanged(&logs, &controller, result, "INVALID_PARTITIONS", &what);
    }
    let result = controller.create_partitions("missing", 4, false);
    assert_refused_unchanged(
        &logs,
        &controller,
        result,
        "UNKNOWN_TOPIC_OR_PARTITION",
        "missing",
    );
    let preview = controller.create_partitions("orders", 5, true).unwrap();
    assert_eq!(preview.topic("orders").unwrap().partition_count(), 5);
    assert_eq!(
        controller
            .image()
            .topic("orders")
            .unwrap()
            .partition_count(),
        3
    );
    let image = controller.create_partitions("orders", 5, false).unwrap();
    let orders = image.topic("orders").unwrap();
    assert_eq!(
        orders.partitions.keys().copied().collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(orders.partitions[&4].leader, Some(BrokerId(1)));
}

#[test]
fn validate_only_create_previews_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let (logs, controller) = open(dir.path(), 1000);
    let before = controller.image();
    let preview = controller
        .create_topic(topic("orders", Some(2), &[("segment.bytes", "4096")]), true)
        .unwrap();
    assert_eq!(preview.topic("orders").unwrap().partition_count(), 2);
    assert_eq!(controller.image(), before);
    assert_eq!(metadata_end_offset(&logs), Offset(before.version));
}

#[test]
fn deleted_topics_can_be_recreated_with_a_new_id() {
    let dir = tempfile::tempdir().unwrap();
    let (logs, controller) = open(dir.path(), 1000);
    let first = controller
        .create_topic(topic("orders", Some(2), &[("retention_ms", "5")]), false)
        .unwrap();
    let first_id = first.topic("orders").unwrap().id.clone();
    let deleted = controller.delete_topic("orders").unwrap();
    assert!(deleted.topic("orders").is_none());
    let result = controller.delete_topic("orders");
    assert_refused_unchanged(
        &logs,
        &controller,
        result,
        "UNKNOWN_TOPIC_OR_PARTITION",
        "gone",
    );
    let again = controller
        .create_topic(topic("orders", Some(1), &[]), false)
        .unwrap();
    let orders = again.topic("orders").unwrap();
    assert_ne!(orders.id, first_id);
    assert_eq!(orders.partition_count(), 1);
    assert!(orders.configs.is_empty());
}

#[test]
fn internal_topics_are_for_the_broker_only() {
    let dir = tempfile::tempdir().unwrap();
    let (logs, controller) = open(dir.path(), 1000);
    let result = controller.create_topic(topic("__consumer_offsets", None, &[]), false);
    assert_refused_unchanged(&logs, &controller, result, "INVALID_TOPIC", "user __");
    let image = controller
        .create_internal_topic(topic(
            "__consumer_offsets",
            Some(3),
            &[("retention.ms", "-1")],
        ))
        .unwrap();
    assert!(image.topic("__consumer_offsets").unwrap().is_internal());
    let result = controller.create_internal_topic(topic(METADATA_TOPIC, None, &[]));
    assert_refused_unchanged(&logs, &controller, result, "INVALID_TOPIC", "metadata name");
    let result = controller.delete_topic("__consumer_offsets");
    assert_refused_unchanged(
        &logs,
        &controller,
        result,
        "INVALID_TOPIC",
        "delete internal",
    );
}

#[test]
fn a_metadata_log_holding_compact_still_opens_without_claiming_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let topic_id = {
        let (_logs, controller) = open(dir.path(), 1000);
        let image = controller
            .create_topic(topic("orders", None, &[("retention_ms", "1000")]), false)
            .unwrap();
        image.topic("orders").unwrap().id.clone()
    };
    // What a broker from before the refusal wrote for `alter-config --set
    // cleanup_policy=compact --set max.message.bytes=2147483647`.
    let stored = strings(&[
        ("cleanup_policy", "compact"),
        ("message_max_bytes", "2147483647"),
    ]);
    {
        let logs = open_logs(dir.path(), LogConfig::default());
        let options = MetadataLogOptions {
            snapshot_every_records: 1000,
        };
        let (mut log, image) = MetadataLog::open(&logs, options).unwrap();
        let record = MetadataRecord::AlterConfig {
            topic_id,
            set: stored.clone(),
            delete: Vec::new(),
        };
        log.append(&[record], image.version).unwrap();
    }

    let (_logs, controller) = open(dir.path(), 1000);
    let image = controller.image();
    let orders = image.topic("orders").unwrap();
    let mut kept = stored.clone();
    kept.insert("retention_ms".into(), "1000".into());
    assert_eq!(orders.configs, kept, "the stored values are read and kept");
    let effective = TopicConfig::effective(&orders.configs, controller.defaults());
    assert_eq!(effective.cleanup_policy.value, CleanupPolicy::Delete);
    assert_eq!(effective.cleanup_policy.source, ConfigValueSource::Default);
    assert_eq!(effective.message_max_bytes.value, 1 << 20);
    assert_eq!(effective.retention_ms.value, 1000);
    // The operator can clear the value, and other keys still change.
    let (changes, image) = controller
        .alter_configs(
            "orders",
            strings(&[("retention_ms", "2000")]),
            vec!["cleanup.policy".into()],
            false,
        )
        .unwrap();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(!image
        .topic("orders")
        .unwrap()
        .configs
        .contains_key("cleanup_policy"));
}

#[test]
fn producer_ids_are_unique_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = BTreeSet::new();
    for _ in 0..3 {
        let (_logs, controller) = open(dir.path(), 1000);
        for _ in 0..(PRODUCER_ID_BLOCK_SIZE + 5) {
            let id = controller.allocate_producer_id().unwrap();
            assert!(seen.insert(id), "producer id {id} handed out twice");
        }
    }
    assert_eq!(seen.len() as i64, 3 * (PRODUCER_ID_BLOCK_SIZE + 5));
}

#[test]
fn the_metadata_log_stays_flush_always_under_an_interval_broker_default() {
    let dir = tempfile::tempdir().unwrap();
    let interval = LogConfig {
        flush: FlushPolicy::Interval {
            interval_ms: 60_000,
        },
        retention_ms: Some(1),
        ..LogConfig::default()
    };
    for _ in 0..2 {
        let logs = open_logs(dir.path(), interval.clone());
        let controller = Controller::open(&logs, BrokerDefaults::default(), me()).unwrap();
        let log = logs.get(&MetadataLog::partition().unwrap()).unwrap();
        assert_eq!(log.config(), MetadataLog::log_config());
        assert_eq!(log.durable_offset(), log.log_end_offset());
        drop(controller);
    }
}
