//! The parameter line, the `-X` split, and the producer settings in force.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::*;
use crate::commands::bench::args::{GroupSpec, Keys, Rate, RunArgs, DEFAULT_TOPIC};

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

fn producer_args() -> ProducerArgs {
    ProducerArgs {
        record_size: 100,
        keys: Keys::None,
        rate: Rate::Unlimited,
        producers: 1,
        acks: AcksArg::Leader,
        linger: Duration::from_millis(5),
        batch_size: 16_384,
        compression: CompressionArg::None,
        window: None,
    }
}

fn run_args() -> RunArgs {
    RunArgs {
        topic: DEFAULT_TOPIC.to_owned(),
        create: true,
        partitions: Some(6),
        replicas: None,
        records: Some(50_000_000),
        duration: None,
        warmup: None,
        hgrm: None,
        csv: None,
    }
}

#[test]
fn x_settings_override_the_flags() {
    let resolved = ProducerSettings::resolve(
        &producer_args(),
        &pairs(&[
            ("acks", "-1"),
            ("linger.ms", "20"),
            ("batch.size", "65536"),
            ("compression.type", "ZSTD"),
            ("buffer.memory", "1048576"),
        ]),
    );
    assert_eq!(resolved.acks, "all");
    assert_eq!(resolved.linger_ms, 20.0);
    assert_eq!(resolved.batch_size, 65_536);
    assert_eq!(resolved.compression, "zstd");
    assert_eq!(resolved.buffer_memory_bytes, 1 << 20);
    let plain = ProducerSettings::resolve(&producer_args(), &[]);
    assert_eq!(plain.acks, "1");
    assert_eq!(plain.linger_ms, 5.0);
    assert_eq!(plain.buffer_memory_bytes, DEFAULT_BUFFER_MEMORY_BYTES);
}

#[test]
fn e2e_splits_x_settings_between_producers_and_consumers() {
    let settings = pairs(&[
        ("linger.ms", "1"),
        ("fetch.max.wait.ms", "10"),
        ("retry.backoff.ms", "50"),
    ]);
    let split = split_settings(Mode::EndToEnd, &settings);
    assert_eq!(
        split.producer,
        pairs(&[("linger.ms", "1"), ("retry.backoff.ms", "50")])
    );
    assert_eq!(
        split.consumer,
        pairs(&[("fetch.max.wait.ms", "10"), ("retry.backoff.ms", "50")])
    );
    let produce = split_settings(Mode::Produce, &settings);
    assert_eq!((produce.producer.len(), produce.consumer.len()), (3, 0));
    let consume = split_settings(Mode::Consume, &settings);
    assert_eq!((consume.producer.len(), consume.consumer.len()), (0, 3));
}

#[test]
fn the_parameter_line_states_everything_that_shapes_the_result() {
    let spec = BenchSpec {
        mode: Mode::Produce,
        run: run_args(),
        producer: Some(producer_args()),
        consumers: 0,
        drain: Duration::ZERO,
        group: None,
    };
    let topic = TopicFacts {
        partitions: (0..6).collect(),
        replication_factor: 1,
        in_sync_replicas_min: 1,
        partitions_out_of_sync: 0,
        flush: "always".to_owned(),
    };
    let resolved = ProducerSettings::resolve(&producer_args(), &[]);
    let params = Params::new(
        &spec,
        &["127.0.0.1:7070".to_owned()],
        &topic,
        Some((&resolved, 1000)),
        &pairs(&[("max.in.flight.requests.per.connection", "5")]),
    );
    assert_eq!(
        params.line(),
        "bench produce: topic=strata-bench brokers=127.0.0.1:7070 partitions=6 \
         replication_factor=1 isr_min=1 flush=always acks=1 records=50000000 warmup=10s record_size=100 \
         keys=none rate=-1 producers=1 linger_ms=5 batch_size=16384 compression=none \
         window=1000 -X max.in.flight.requests.per.connection=5"
    );
    let json = serde_json::to_value(&params).unwrap();
    assert_eq!(json["mode"], "produce");
    assert_eq!(json["partitions"], 6);
    assert_eq!(json["replication_factor"], 1);
    assert_eq!(json["isr_min"], 1);
    assert_eq!(json["flush"], "always");
    assert_eq!(json["acks"], "1");
    assert_eq!(json["rate"], -1.0);
    assert_eq!(json["duration_s"], serde_json::Value::Null);
    assert_eq!(json["warmup_s"], 10.0);
}

#[test]
fn consume_parameters_leave_out_the_producer_side() {
    let spec = BenchSpec {
        mode: Mode::Consume,
        run: RunArgs {
            records: None,
            ..run_args()
        },
        producer: None,
        consumers: 3,
        drain: Duration::ZERO,
        group: None,
    };
    let topic = TopicFacts {
        partitions: vec![0],
        replication_factor: 1,
        in_sync_replicas_min: 1,
        partitions_out_of_sync: 0,
        flush: "-".to_owned(),
    };
    let params = Params::new(&spec, &["b:1".to_owned()], &topic, None, &[]);
    assert_eq!(
        params.line(),
        "bench consume: topic=strata-bench brokers=b:1 partitions=1 replication_factor=1 \
         isr_min=1 flush=- duration=60s warmup=0s consumers=3"
    );
}

#[test]
fn replica_counts_find_the_smallest_isr_and_the_partitions_out_of_sync() {
    let state = |has_leader, replicas, in_sync| ReplicaState {
        has_leader,
        replicas,
        in_sync,
    };
    assert_eq!(ReplicaCounts::of([]), ReplicaCounts::default());
    let in_sync = ReplicaCounts::of([state(true, 3, 3), state(true, 3, 3)]);
    assert_eq!(
        in_sync,
        ReplicaCounts {
            replication_factor: 3,
            in_sync_min: 3,
            out_of_sync: 0
        }
    );
    // A new partition: the leader alone in the ISR; another without a leader yet.
    let growing = ReplicaCounts::of([state(true, 3, 3), state(true, 3, 1), state(false, 3, 3)]);
    assert_eq!(growing.in_sync_min, 1);
    assert_eq!(growing.out_of_sync, 2);
    assert_eq!(ReplicaCounts::of([state(true, 1, 1)]).out_of_sync, 0);
}

#[test]
fn group_parameters_name_the_group_and_its_members() {
    let spec = BenchSpec {
        mode: Mode::Consume,
        run: RunArgs {
            records: None,
            ..run_args()
        },
        producer: None,
        consumers: 4,
        drain: Duration::ZERO,
        group: Some(GroupSpec {
            id: "bench-4".to_owned(),
            members: 4,
        }),
    };
    let topic = TopicFacts {
        partitions: (0..6).collect(),
        replication_factor: 1,
        in_sync_replicas_min: 1,
        partitions_out_of_sync: 0,
        flush: "always".to_owned(),
    };
    let params = Params::new(&spec, &["b:1".to_owned()], &topic, None, &[]);
    assert!(
        params
            .line()
            .ends_with("consumers=4 group=bench-4 members=4"),
        "{}",
        params.line()
    );
    let json = serde_json::to_value(&params).unwrap();
    assert_eq!(json["group"], "bench-4");
    assert_eq!(json["members"], 4);
    let plain = BenchSpec {
        group: None,
        ..spec
    };
    let json = serde_json::to_value(Params::new(&plain, &[], &topic, None, &[])).unwrap();
    assert!(json.get("group").is_none() && json.get("members").is_none());
}
