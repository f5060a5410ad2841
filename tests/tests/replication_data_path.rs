//! The replication data path (issue 20) on three real brokers: followers copy their
//! leaders' logs batch for batch.
//!
//! - an RF-3 topic of three partitions: every record produced to the leaders (acks=1)
//!   reaches both followers, and the three data directories then hold the same batches —
//!   the same offsets, leader epochs, sizes and CRCs (the CRC covers every byte after it,
//!   the header fields before it are compared one by one, so equal lines mean equal bytes);
//! - a follower SIGKILLed while more records are produced catches up once restarted
//!   (reconciling by leader epoch first) and is identical again;
//! - the followers join the ISR once they have caught up (ISR changes and acks=all are
//!   tested in `tests/tests/replication_isr.rs`).
//!
//! Logs are compared with `strata-broker dump-log` on each node's partition directory.
//! Every wait is bounded ([`WAIT`]); what is asserted is the state the logs reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use strata_client::{Acks, Record};
use strata_proto::api::v1::{
    ErrorCode, FetchPartition, FetchRequest, PartitionMetadata, TopicSpec,
};
use strata_tests::broker_process::workspace_binary;
use strata_tests::cluster::Cluster;
use strata_tests::cluster_views::{
    connect, create_topic, formed, partitions_until, start_three_voters, WAIT,
};

const TOPIC: &str = "replicated";
const PARTITIONS: i32 = 3;
const RECORDS_PER_PARTITION: usize = 200;

/// The batch lines of `dump-log` for `node`'s copy of `partition`, without the file
/// positions (segments may roll at other offsets on a follower; the batches are what
/// must be equal).
fn batches(cluster: &Cluster, node: u8, partition: i32) -> Vec<String> {
    let dir = cluster.data_dir(node).join(format!("{TOPIC}-{partition}"));
    if !dir.is_dir() {
        return Vec::new();
    }
    let output = std::process::Command::new(workspace_binary("strata-broker"))
        .arg("dump-log")
        .arg(&dir)
        .output()
        .expect("run strata-broker dump-log");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.starts_with("baseOffset:"))
        .map(|line| {
            line.split(' ')
                .collect::<Vec<_>>()
                .chunks(2)
                .filter(|pair| pair[0] != "position:")
                .map(|pair| pair.join(" "))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The offset after the last batch of `lines` (0 when empty).
fn log_end_offset(lines: &[String]) -> i64 {
    lines.last().map_or(0, |line| {
        let last: i64 = line
            .split(' ')
            .skip_while(|word| *word != "lastOffset:")
            .nth(1)
            .and_then(|offset| offset.parse().ok())
            .expect("a lastOffset");
        last + 1
    })
}

/// Waits until all three copies of every partition are equal and hold `records` records
/// each; returns them by partition.
async fn identical_everywhere(cluster: &Cluster, records: i64) -> HashMap<i32, Vec<String>> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut all = HashMap::new();
        let mut differences = Vec::new();
        for partition in 0..PARTITIONS {
            let copies: Vec<Vec<String>> = (1..=3)
                .map(|node| batches(cluster, node, partition))
                .collect();
            let ends: Vec<i64> = copies.iter().map(|copy| log_end_offset(copy)).collect();
            if ends.iter().any(|end| *end != records) || copies.iter().any(|c| *c != copies[0]) {
                differences.push(format!("partition {partition}: log ends {ends:?}"));
            }
            all.insert(partition, copies[0].clone());
        }
        if differences.is_empty() {
            return all;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replicas did not converge to {records} records: {differences:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn create_rf3_topic(cluster: &Cluster) -> Vec<PartitionMetadata> {
    let spec = TopicSpec {
        name: TOPIC.to_owned(),
        partitions: PARTITIONS,
        replication_factor: 3,
        configs: HashMap::new(),
    };
    create_topic(cluster, 1, spec).await;
    partitions_until(cluster, 1, TOPIC, "three led RF-3 partitions", |all| {
        all.len() == 3
            && all
                .iter()
                .all(|partition| partition.leader >= 1 && partition.replicas.len() == 3)
    })
    .await
}

/// Produces `count` keyed records to each of `partitions` (acks=1), through node `via`.
async fn produce(cluster: &Cluster, via: u8, partitions: &[i32], round: &str, count: usize) {
    let client = cluster.client(via).await.unwrap();
    let producer = client.producer().acks(Acks::Leader).build().unwrap();
    let mut pending = Vec::new();
    for &partition in partitions {
        for i in 0..count {
            let record = Record::to(TOPIC)
                .partition(partition)
                .key(format!("key-{partition}-{i}"))
                .value(format!("{round}-{partition}-{i}"));
            pending.push(producer.enqueue(record).unwrap());
        }
    }
    producer.flush().await.unwrap();
    for delivery in pending {
        tokio::time::timeout(WAIT, delivery)
            .await
            .expect("delivered in time")
            .unwrap();
    }
}

/// Every partition's ISR holds its three replicas, as `node` shows it.
async fn isr_is_every_replica(cluster: &Cluster, node: u8) {
    partitions_until(
        cluster,
        node,
        TOPIC,
        "each ISR = its three replicas",
        |all| {
            all.iter()
                .all(|partition| partition.leader >= 1 && partition.isr.len() == 3)
        },
    )
    .await;
}

/// A follower holds the records but does not serve them: a consumer fetch of `partition`
/// from `follower` answers NOT_LEADER naming `leader`.
async fn follower_does_not_serve(cluster: &Cluster, follower: u8, partition: i32, leader: i32) {
    let request = FetchRequest {
        max_wait_ms: 0,
        min_bytes: 0,
        max_bytes: 1 << 20,
        partitions: vec![FetchPartition {
            topic: TOPIC.to_owned(),
            partition,
            fetch_offset: 0,
            partition_max_bytes: 1 << 20,
            current_leader_epoch: -1,
        }],
    };
    let response = connect(cluster, follower)
        .await
        .unwrap()
        .fetch(request)
        .await
        .unwrap()
        .into_inner();
    let error = response.partitions[0].error.clone().unwrap_or_default();
    assert_eq!(error.code, ErrorCode::NotLeader as i32, "{response:?}");
    assert_eq!(error.leader_hint, leader, "{response:?}");
    assert!(response.partitions[0].records.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn followers_copy_their_leaders_logs_and_catch_up_after_a_sigkill() {
    let mut cluster = start_three_voters();
    formed(&cluster).await;
    let created = create_rf3_topic(&cluster).await;
    let all: Vec<i32> = (0..PARTITIONS).collect();

    produce(&cluster, 1, &all, "first", RECORDS_PER_PARTITION).await;
    let first = identical_everywhere(&cluster, RECORDS_PER_PARTITION as i64).await;
    for (partition, lines) in &first {
        assert!(!lines.is_empty(), "partition {partition} has batches");
    }
    isr_is_every_replica(&cluster, 1).await;
    for partition in &created {
        for follower in (1..=3u8).filter(|node| i32::from(*node) != partition.leader) {
            follower_does_not_serve(&cluster, follower, partition.partition, partition.leader)
                .await;
        }
    }

    // A follower of partition 0 dies; the partitions it does not lead go on.
    let leader_of_0 = created[0].leader;
    let victim = (1..=3u8)
        .find(|node| i32::from(*node) != leader_of_0)
        .unwrap();
    let survivor = (1..=3u8).find(|node| *node != victim).unwrap();
    cluster.kill(victim).unwrap();
    let others: Vec<i32> = created
        .iter()
        .filter(|partition| partition.leader != i32::from(victim))
        .map(|partition| partition.partition)
        .collect();
    produce(&cluster, survivor, &others, "second", RECORDS_PER_PARTITION).await;

    cluster.restart(victim).unwrap();
    partitions_until(
        &cluster,
        survivor,
        TOPIC,
        "every partition led again",
        |all| all.iter().all(|partition| partition.leader >= 1),
    )
    .await;
    // The victim's own partitions (if it led one, a new leader was elected from the
    // ISR) get the same second round now.
    let victims: Vec<i32> = all
        .iter()
        .copied()
        .filter(|p| !others.contains(p))
        .collect();
    if !victims.is_empty() {
        produce(
            &cluster,
            survivor,
            &victims,
            "second",
            RECORDS_PER_PARTITION,
        )
        .await;
    }
    let second = identical_everywhere(&cluster, 2 * RECORDS_PER_PARTITION as i64).await;
    for (partition, lines) in &second {
        assert!(
            lines.starts_with(&first[partition]),
            "partition {partition}: the first round's batches are kept as they were"
        );
    }
    isr_is_every_replica(&cluster, survivor).await;
}
