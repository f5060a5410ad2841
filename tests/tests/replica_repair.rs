//! A follower replica found damaged at start-up is repaired from its leader (issue 20,
//! "Corrupt replica"), on three real brokers:
//!
//! - an RF-3 topic with 1 KiB segments, so many segments are sealed, and an RF-1 topic
//!   with a partition on every broker;
//! - once the ISR holds all three replicas and a follower holds every `acks=all` record,
//!   that follower is SIGKILLed and one byte in the middle of one of its sealed segments
//!   is flipped (a segment its recovery scans: at or after its checkpointed recovery
//!   point, read from `partition.checkpoint`);
//! - restarted, it starts, serves its RF-1 partition (produce and fetch), repairs the
//!   damaged replica and fetches it again from the leader: the ISR is back to three and
//!   the records produced while it was down and after it came back reach it;
//! - stopped again, `strata-broker dump-log` finds no damage in its copy, and the same
//!   batches (offsets, epochs, CRCs) as in the leader's copy; the cut part is kept in
//!   `<topic>-0.damaged.<ms>`.
//!
//! Every wait is bounded ([`WAIT`]); none decides the verdict by how long it took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use strata_client::{Acks, Offset, Record};
use strata_proto::api::v1::TopicSpec;
use strata_tests::broker_process::workspace_binary;
use strata_tests::cluster::Cluster;
use strata_tests::cluster_views::{
    create_rf1_topic, create_topic, formed, owned_by, partitions_until, start_three_voters, WAIT,
};
use tokio_stream::StreamExt;

const REPLICATED: &str = "repaired";
const SINGLE: &str = "single";
/// Records per produce round; one round is about one batch of ~400 bytes.
const ROUND_RECORDS: usize = 10;
const ROUNDS: usize = 30;

/// `strata-broker dump-log <dir>`: exit status and the batch lines without their byte
/// positions (segment boundaries may differ between replicas; the batches may not).
fn dump_log(dir: &Path) -> (Option<i32>, Vec<String>, String) {
    let output = std::process::Command::new(workspace_binary("strata-broker"))
        .arg("dump-log")
        .arg(dir)
        .output()
        .expect("run strata-broker dump-log");
    let batches = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.starts_with("baseOffset:"))
        .map(|line| {
            let words: Vec<&str> = line.split(' ').collect();
            let mut kept = Vec::new();
            let mut skip = false;
            for word in words {
                if skip {
                    skip = false;
                    continue;
                }
                if word == "position:" {
                    skip = true;
                    continue;
                }
                kept.push(word);
            }
            kept.join(" ")
        })
        .collect();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), batches, stderr)
}

/// The offset after the last intact batch of `node`'s copy of the replicated partition.
fn log_end_offset(cluster: &Cluster, node: u8) -> i64 {
    let (_, batches, _) = dump_log(&partition_dir(cluster, node));
    batches
        .iter()
        .filter_map(|line| {
            line.split(' ')
                .skip_while(|word| *word != "lastOffset:")
                .nth(1)
                .and_then(|offset| offset.parse::<i64>().ok())
        })
        .max()
        .map_or(0, |last| last + 1)
}

fn partition_dir(cluster: &Cluster, node: u8) -> PathBuf {
    cluster.data_dir(node).join(format!("{REPLICATED}-0"))
}

/// `recovery_point` from a partition's `partition.checkpoint` (0 when there is none).
fn recovery_point(dir: &Path) -> i64 {
    let text = std::fs::read_to_string(dir.join("partition.checkpoint")).unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix("recovery_point "))
        .and_then(|offset| offset.trim().parse().ok())
        .unwrap_or(0)
}

/// The base offsets of the `.log` files in `dir`, ascending.
fn segment_bases(dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    bases
}

/// A sealed segment of `dir` that recovery will scan after a crash: from the one holding
/// the recovery point on, not the last (active) one, and not empty.
fn scanned_sealed_segment(dir: &Path) -> Option<PathBuf> {
    let bases = segment_bases(dir);
    let point = recovery_point(dir);
    let scan_from = bases
        .iter()
        .copied()
        .filter(|base| *base <= point)
        .max()
        .unwrap_or(0);
    let sealed = bases.get(..bases.len().checked_sub(1)?)?;
    let scanned: Vec<PathBuf> = sealed
        .iter()
        .filter(|base| **base >= scan_from)
        .map(|base| dir.join(format!("{base:020}.log")))
        .filter(|path| std::fs::metadata(path).is_ok_and(|meta| meta.len() > 0))
        .collect();
    // The middle one, so that later segments exist too.
    scanned.get(scanned.len() / 2).cloned()
}

fn flip_middle_byte(path: &Path) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let middle = file.metadata().unwrap().len() / 2;
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, middle).unwrap();
    file.write_all_at(&[byte[0] ^ 0xff], middle).unwrap();
    file.sync_all().unwrap();
}

async fn produce_rounds(cluster: &Cluster, via: u8, round: &str, rounds: usize) {
    let client = cluster.client(via).await.unwrap();
    let producer = client.producer().acks(Acks::All).build().unwrap();
    for r in 0..rounds {
        let mut pending = Vec::new();
        for i in 0..ROUND_RECORDS {
            let value = format!("{round}-{r}-{i}-padding-to-make-the-batches-larger");
            let record = Record::to(REPLICATED).partition(0).value(value);
            pending.push(producer.enqueue(record).unwrap());
        }
        producer.flush().await.unwrap();
        for delivery in pending {
            tokio::time::timeout(WAIT, delivery)
                .await
                .expect("delivered in time")
                .expect("acks=all produce succeeds");
        }
    }
}

/// Waits until every node shows the replicated partition with all three in the ISR;
/// returns its leader.
async fn isr_full_everywhere(cluster: &Cluster) -> u8 {
    let mut leader = 0;
    for node in 1..=3u8 {
        let partitions = partitions_until(
            cluster,
            node,
            REPLICATED,
            "ISR = all three replicas",
            |all| all.len() == 1 && all[0].leader >= 1 && all[0].isr.len() == 3,
        )
        .await;
        leader = u8::try_from(partitions[0].leader).unwrap();
    }
    leader
}

async fn wait_log_end_at_least(cluster: &Cluster, node: u8, end: i64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while log_end_offset(cluster, node) < end {
        assert!(
            tokio::time::Instant::now() < deadline,
            "node {node} holds {end} records"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Produces to and consumes from `node`'s own RF-1 partition: it serves it.
async fn serves_its_own_partition(cluster: &Cluster, node: u8, partition: i32, value: &str) {
    let client = cluster.client(node).await.unwrap();
    let producer = client.producer().acks(Acks::All).build().unwrap();
    let delivery = producer
        .enqueue(
            Record::to(SINGLE)
                .partition(partition)
                .value(value.to_owned()),
        )
        .unwrap();
    producer.flush().await.unwrap();
    tokio::time::timeout(WAIT, delivery)
        .await
        .expect("delivered in time")
        .unwrap_or_else(|error| {
            panic!("node {node} takes a produce to {SINGLE}-{partition}: {error}")
        });
    let mut consumer = client
        .consumer()
        .topics([SINGLE])
        .start(Offset::Earliest)
        .build()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let record = tokio::time::timeout_at(deadline, consumer.next())
            .await
            .unwrap_or_else(|_| panic!("{value} is read back from node {node}"))
            .unwrap()
            .unwrap();
        if record.value.as_deref() == Some(value.as_bytes()) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_with_a_corrupt_sealed_segment_starts_and_is_repaired_from_its_leader() {
    let mut cluster = start_three_voters();
    formed(&cluster).await;
    let spec = TopicSpec {
        name: REPLICATED.to_owned(),
        partitions: 1,
        replication_factor: 3,
        configs: HashMap::from([("segment.bytes".to_owned(), "1024".to_owned())]),
    };
    create_topic(&cluster, 1, spec).await;
    let single = create_rf1_topic(&cluster, 1, SINGLE, 6).await;
    let leader = isr_full_everywhere(&cluster).await;
    let victim = (1..=3u8).find(|node| *node != leader).unwrap();
    let own = *owned_by(&single, victim)
        .first()
        .expect("the victim owns an RF-1 partition");

    // Records on every replica, then the follower dies and one of its sealed segments is
    // damaged. Recovery scans from the recovery point: if a periodic checkpoint moved it
    // past every sealed segment, the follower comes back and more records roll more
    // segments (bounded).
    let mut produced = 0;
    let mut damaged = None;
    for attempt in 0..3 {
        produce_rounds(&cluster, leader, &format!("before{attempt}"), ROUNDS).await;
        produced += ROUNDS * ROUND_RECORDS;
        wait_log_end_at_least(&cluster, victim, produced as i64).await;
        cluster.kill(victim).unwrap();
        damaged = scanned_sealed_segment(&partition_dir(&cluster, victim));
        if damaged.is_some() {
            break;
        }
        cluster.restart(victim).unwrap();
        isr_full_everywhere(&cluster).await;
    }
    let damaged = damaged.expect("a sealed segment the recovery scans");
    flip_middle_byte(&damaged);
    let (status, _, stderr) = dump_log(&partition_dir(&cluster, victim));
    assert_eq!(status, Some(1), "dump-log sees the damage: {stderr}");

    // Records the follower misses while it is down.
    produce_rounds(&cluster, leader, "while-down", 5).await;
    produced += 5 * ROUND_RECORDS;

    // It starts, serves its own partition, and repairs the damaged replica.
    cluster.restart(victim).unwrap();
    serves_its_own_partition(&cluster, victim, own, "after-restart").await;
    let leader = isr_full_everywhere(&cluster).await;
    assert_ne!(
        leader, victim,
        "the repaired replica was not elected while repairing"
    );
    produce_rounds(&cluster, leader, "after", 5).await;
    produced += 5 * ROUND_RECORDS;
    wait_log_end_at_least(&cluster, victim, produced as i64).await;
    assert!(
        cluster.log(victim).contains("repaired a damaged replica"),
        "the repair is logged"
    );
    let aside: Vec<String> = std::fs::read_dir(cluster.data_dir(victim))
        .unwrap()
        .filter_map(|entry| entry.unwrap().file_name().into_string().ok())
        .filter(|name| name.starts_with(&format!("{REPLICATED}-0.damaged.")))
        .collect();
    assert_eq!(aside.len(), 1, "the cut part is kept aside: {aside:?}");

    // Stopped, its copy has no damage and the leader's batches.
    cluster.terminate(victim).unwrap();
    cluster.terminate(leader).unwrap();
    let (status, repaired, stderr) = dump_log(&partition_dir(&cluster, victim));
    assert_eq!(status, Some(0), "dump-log finds no damage: {stderr}");
    let (status, leaders, stderr) = dump_log(&partition_dir(&cluster, leader));
    assert_eq!(status, Some(0), "{stderr}");
    assert_eq!(
        repaired.len(),
        leaders.len(),
        "as many batches as the leader"
    );
    assert_eq!(repaired, leaders, "the leader's batches, byte for byte");
}
