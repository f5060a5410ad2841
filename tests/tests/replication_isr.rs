//! ISR changes and `acks=all` over replication (issue 20) on three real brokers, one RF-3
//! partition:
//!
//! - (a) the followers catch up and the ISR grows to all three replicas, on every node's
//!   metadata;
//! - (b) an `acks=all` produce succeeds, and once it has every follower's log holds the
//!   acknowledged records (read with `strata-broker dump-log`);
//! - (c) the leader SIGKILLed, a new leader is elected from the ISR and serves every
//!   acknowledged record exactly once (consumed from the beginning);
//! - (d) the old leader restarted rejoins as a follower, catches up and re-enters the ISR.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use strata_client::{Acks, Offset, Record};
use strata_proto::api::v1::TopicSpec;
use strata_tests::broker_process::workspace_binary;
use strata_tests::cluster::Cluster;
use strata_tests::cluster_views::{
    create_topic, formed, partitions_until, start_three_voters, WAIT,
};
use tokio_stream::StreamExt;

const TOPIC: &str = "isr";
const RECORDS: usize = 300;

/// The offset after the last batch in `node`'s copy of partition 0 (0 when none).
fn log_end_offset(cluster: &Cluster, node: u8) -> i64 {
    let dir = cluster.data_dir(node).join(format!("{TOPIC}-0"));
    if !dir.is_dir() {
        return 0;
    }
    let output = std::process::Command::new(workspace_binary("strata-broker"))
        .arg("dump-log")
        .arg(&dir)
        .output()
        .expect("run strata-broker dump-log");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.starts_with("baseOffset:"))
        .filter_map(|line| {
            line.split(' ')
                .skip_while(|word| *word != "lastOffset:")
                .nth(1)
                .and_then(|offset| offset.parse::<i64>().ok())
        })
        .max()
        .map_or(0, |last| last + 1)
}

async fn isr_full_everywhere(cluster: &Cluster, nodes: &[u8]) -> i32 {
    let mut leader = -1;
    for &node in nodes {
        let partitions =
            partitions_until(cluster, node, TOPIC, "ISR = all three replicas", |all| {
                all.len() == 1 && all[0].leader >= 1 && all[0].isr.len() == 3
            })
            .await;
        leader = partitions[0].leader;
    }
    leader
}

async fn produce_all(cluster: &Cluster, via: u8, round: &str) -> Vec<String> {
    let client = cluster.client(via).await.unwrap();
    let producer = client.producer().acks(Acks::All).build().unwrap();
    let mut pending = Vec::new();
    let mut values = Vec::new();
    for i in 0..RECORDS {
        let value = format!("{round}-{i}");
        let record = Record::to(TOPIC).partition(0).value(value.clone());
        pending.push(producer.enqueue(record).unwrap());
        values.push(value);
    }
    producer.flush().await.unwrap();
    for delivery in pending {
        tokio::time::timeout(WAIT, delivery)
            .await
            .expect("delivered in time")
            .expect("acks=all produce succeeds");
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn isr_grows_acks_all_survives_a_leader_sigkill_and_the_old_leader_rejoins() {
    let mut cluster = start_three_voters();
    formed(&cluster).await;
    let spec = TopicSpec {
        name: TOPIC.to_owned(),
        partitions: 1,
        replication_factor: 3,
        configs: HashMap::new(),
    };
    create_topic(&cluster, 1, spec).await;

    // (a) the ISR grows to all three replicas.
    let leader = isr_full_everywhere(&cluster, &[1, 2, 3]).await;
    let leader = u8::try_from(leader).unwrap();

    // (b) acks=all: acknowledged means every ISR member holds the records.
    let acked = produce_all(&cluster, leader, "first").await;
    for node in 1..=3u8 {
        assert!(
            log_end_offset(&cluster, node) >= RECORDS as i64,
            "node {node} holds every acks=all record once they are acknowledged"
        );
    }

    // (c) the leader dies: a new leader from the ISR serves every acked record once.
    cluster.kill(leader).unwrap();
    let survivor = (1..=3u8).find(|node| *node != leader).unwrap();
    let partitions = partitions_until(&cluster, survivor, TOPIC, "a new leader", |all| {
        all.len() == 1 && all[0].leader >= 1 && all[0].leader != i32::from(leader)
    })
    .await;
    let new_leader = u8::try_from(partitions[0].leader).unwrap();
    let client = cluster.client(new_leader).await.unwrap();
    let mut consumer = client
        .consumer()
        .topics([TOPIC])
        .start(Offset::Earliest)
        .build()
        .await
        .unwrap();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..RECORDS {
        let record = tokio::time::timeout(WAIT, consumer.next())
            .await
            .expect("the acked records arrive from the new leader")
            .unwrap()
            .unwrap();
        let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
        *seen.entry(value).or_default() += 1;
    }
    for value in &acked {
        assert_eq!(seen.get(value), Some(&1), "{value} is read exactly once");
    }

    // More acks=all records under the new leader (the ISR shrinks the dead one out).
    produce_all(&cluster, new_leader, "second").await;

    // (d) the old leader comes back as a follower, catches up and re-enters the ISR.
    cluster.restart(leader).unwrap();
    isr_full_everywhere(&cluster, &[1, 2, 3]).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while log_end_offset(&cluster, leader) < 2 * RECORDS as i64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old leader caught up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
