//! The acks=all durability loop of issue 3: an idempotent producer sends keyed records
//! while the broker is SIGKILLed 20 times at random moments and restarted on the same
//! data. At the end every acknowledged record is present exactly once, at the offset it
//! was acknowledged with, and each producer's records are in send order per partition.
//! Records whose send failed (the broker died) may appear, but at most once. Run twice:
//! with the defaults, and with direct I/O under `flush = interval`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rand::Rng;
use strata_client::{Acks, Client, NewTopic, Offset, OffsetSpec, Record};
use strata_tests::broker_process::BrokerProcess;
use tokio_stream::StreamExt;

const KILLS: usize = 20;
const PARTITIONS: i32 = 3;

/// What happened to one sent value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Acked { partition: i32, offset: i64 },
    Unknown,
}

async fn produce_until_killed(
    broker: &mut BrokerProcess,
    round: usize,
    outcomes: &mut BTreeMap<String, Outcome>,
) {
    let client = Client::builder()
        .brokers([broker.address().to_string()])
        .request_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let producer = client
        .producer()
        .acks(Acks::All)
        .idempotence(true)
        .linger(Duration::from_millis(1))
        .delivery_timeout(Duration::from_millis(1500))
        .request_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut pending = Vec::new();
    let run_ms = rand::thread_rng().gen_range(150..600);
    let started = std::time::Instant::now();
    let mut sequence = 0u64;
    // Keep enqueuing for a random while (bounded by count), then kill the broker.
    while started.elapsed() < Duration::from_millis(run_ms) && sequence < 20_000 {
        let value = format!("r{round}-s{sequence}");
        let record = Record::to("chaos")
            .key(format!("k{}", sequence % 11))
            .value(value.clone());
        match producer.enqueue(record) {
            Ok(delivery) => pending.push((value, delivery)),
            Err(_) => break,
        }
        sequence += 1;
        if sequence.is_multiple_of(64) {
            tokio::task::yield_now().await;
        }
    }
    broker.kill().unwrap();
    for (value, delivery) in pending {
        let outcome = match delivery.await {
            Ok(delivery) => Outcome::Acked {
                partition: delivery.partition,
                offset: delivery.offset,
            },
            Err(_) => Outcome::Unknown,
        };
        outcomes.insert(value, outcome);
    }
    drop(producer);
}

async fn read_everything(broker: &BrokerProcess) -> Vec<(i32, i64, String)> {
    let client = Client::builder()
        .brokers([broker.address().to_string()])
        .build()
        .await
        .unwrap();
    let admin = client.admin();
    let mut ends = HashMap::new();
    for partition in 0..PARTITIONS {
        let (end, _) = admin
            .list_offsets("chaos", partition, OffsetSpec::Latest)
            .await
            .unwrap();
        ends.insert(partition, end);
    }
    let total: i64 = ends.values().sum();
    let mut consumer = client
        .consumer()
        .topics(["chaos"])
        .start(Offset::Earliest)
        .build()
        .await
        .unwrap();
    let mut records = Vec::new();
    while (records.len() as i64) < total {
        let record = tokio::time::timeout(Duration::from_secs(60), consumer.next())
            .await
            .expect("the drain makes progress")
            .unwrap()
            .unwrap();
        let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
        records.push((record.partition, record.offset, value));
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_records_survive_20_sigkills_exactly_once_and_in_order() {
    sigkill_loop(&[]).await;
}

/// The same with `--log-io direct` and `flush = interval`: an append is acknowledged once
/// its direct write returned, with no fsync, and a killed process must still lose nothing
/// (and recovery must cut the block padding cleanly every time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_records_survive_20_sigkills_with_direct_io_and_interval_flush() {
    sigkill_loop(&["--log-io", "direct", "--flush", "interval:1000"]).await;
}

async fn sigkill_loop(broker_args: &[&str]) {
    let data = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(data.path(), broker_args).unwrap();
    let client = Client::builder()
        .brokers([broker.address().to_string()])
        .build()
        .await
        .unwrap();
    client
        .admin()
        .create_topic(NewTopic::new("chaos").partitions(PARTITIONS))
        .await
        .unwrap();
    drop(client);

    let mut outcomes = BTreeMap::new();
    for round in 0..KILLS {
        produce_until_killed(&mut broker, round, &mut outcomes).await;
        broker.restart().unwrap();
    }
    let records = read_everything(&broker).await;

    // Exactly once: no value twice, no offset twice.
    let mut seen: HashMap<&str, (i32, i64)> = HashMap::new();
    for (partition, offset, value) in &records {
        assert!(
            seen.insert(value, (*partition, *offset)).is_none(),
            "{value} is duplicated"
        );
    }
    // Every acknowledged record is there, where it was acknowledged.
    let mut acked = 0;
    for (value, outcome) in &outcomes {
        if let Outcome::Acked { partition, offset } = outcome {
            acked += 1;
            assert_eq!(
                seen.get(value.as_str()),
                Some(&(*partition, *offset)),
                "acked {value} lost or moved"
            );
        }
    }
    // Per producer (round) and partition, offsets follow send order.
    let mut last: HashMap<(String, i32), (u64, i64)> = HashMap::new();
    for (partition, offset, value) in &records {
        let (round, sequence) = value.split_once("-s").unwrap();
        let sequence: u64 = sequence.parse().unwrap();
        if let Some((previous_sequence, previous_offset)) =
            last.insert((round.to_owned(), *partition), (sequence, *offset))
        {
            assert!(
                sequence > previous_sequence && *offset > previous_offset,
                "{value} out of order"
            );
        }
    }
    assert!(
        acked > 100,
        "only {acked} records were acknowledged across {KILLS} rounds"
    );
    eprintln!(
        "{KILLS} kills: {} sent, {acked} acked, {} in the log, 0 lost, 0 duplicated",
        outcomes.len(),
        records.len()
    );
}
