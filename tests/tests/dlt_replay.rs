//! `strata dlt replay` and `client.dead_letters(..).replay(..)` against a real
//! `strata-broker`: a dry run counts by error type and changes nothing; `--to source`
//! without `--yes` and a topic that is not a dead-letter topic are refused with their
//! codes and change nothing; `--execute` sends the records to the group's first retry
//! topic with their partition, key, value and headers, attempts reset and replay headers
//! added, and commits its progress, so a second run resends nothing; the group then
//! handles the replayed records; `strata group describe` lists the group's retry and
//! dead-letter topics with their record counts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group_client;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use group_client::{connect, create_topic, wait_until, BROKER_ARGS, WAIT};
use serde_json::Value;
use strata_client::retry_topics::attempts_made;
use strata_client::{
    Client, ConsumedRecord, DeadLetters, NewTopic, Offset, OffsetSpec, Record, Replay, ReplayError,
    RetryPolicy,
};
use strata_tests::broker_process::{workspace_binary, BrokerProcess};
use strata_tests::cli_runner::{run_bounded, text};
use tokio::sync::oneshot;

const DLT: &str = "orders.billing.dlt";
const RETRY_0: &str = "orders.billing.retry.0";
const PROGRESS_GROUP: &str = "strata-dlt-replay.orders.billing.dlt";

/// `strata -b <broker> ARGS`: exit code, stdout, stderr.
fn strata(broker: &BrokerProcess, args: &[&str]) -> (i32, String, String) {
    let mut command = std::process::Command::new(workspace_binary("strata"));
    command
        .arg("-b")
        .arg(broker.address().to_string())
        .args(args)
        .env_remove("STRATA_BROKERS")
        .env_remove("STRATA_FORMAT");
    let output = tokio::task::block_in_place(|| run_bounded(command, ""));
    let code = output.status.code().unwrap_or(-1);
    (code, text(&output.stdout), text(&output.stderr))
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn header<'a>(record: &'a ConsumedRecord, key: &str) -> Option<&'a str> {
    record
        .headers
        .iter()
        .rev()
        .find(|(name, _)| name == key)
        .and_then(|(_, value)| std::str::from_utf8(value.as_deref()?).ok())
}

async fn end_offsets(client: &Client, topic: &str) -> Vec<i64> {
    let mut ends = Vec::new();
    for partition in 0..2 {
        let (end, _) = client
            .admin()
            .list_offsets(topic, partition, OffsetSpec::Latest)
            .await
            .unwrap();
        ends.push(end);
    }
    ends
}

async fn committed(client: &Client) -> BTreeMap<i32, i64> {
    let offsets = client
        .admin()
        .committed_offsets(PROGRESS_GROUP, None)
        .await
        .unwrap();
    offsets
        .into_iter()
        .filter_map(|entry| Some((entry.partition, entry.offset?)))
        .collect()
}

/// Writes a dead-lettered record as the library would: origin, attempts and error
/// headers, plus a user header.
async fn dead_letter(client: &Client, partition: i32, key: &str, error_type: &str) {
    let producer = client.producer().build().unwrap();
    let record = Record::to(DLT)
        .partition(partition)
        .key(key.to_owned())
        .value(format!("value-{key}"))
        .header("trace", format!("trace-{key}"))
        .header("strata.original.topic", "orders")
        .header("strata.original.partition", partition.to_string())
        .header("strata.original.offset", "7")
        .header("strata.original.timestamp-ms", "1700000000000")
        .header("strata.original.group", "billing")
        .header("strata.first-failure-ms", "1700000000500")
        .header("strata.attempt", "3")
        .header("strata.error.kind", "exhausted")
        .header("strata.error.type", error_type.to_owned())
        .header("strata.error.message", "card declined");
    producer.send(record).await.unwrap();
    producer.close().await.unwrap();
}

/// Reads every record of `topic` up to its current end.
async fn read_all(client: &Client, topic: &str) -> Vec<ConsumedRecord> {
    let ends = end_offsets(client, topic).await;
    let total: i64 = ends.iter().sum();
    let mut consumer = client
        .consumer()
        .topics([topic])
        .start(Offset::Earliest)
        .build()
        .await
        .unwrap();
    let mut records = Vec::new();
    while i64::try_from(records.len()).unwrap() < total {
        let next = tokio::time::timeout(WAIT, tokio_stream::StreamExt::next(&mut consumer));
        records.push(next.await.expect("reading hung").unwrap().unwrap());
    }
    consumer.close().await.unwrap();
    records
}

fn policy() -> RetryPolicy {
    RetryPolicy::default().backoff(Duration::from_millis(200), 2.0, Duration::from_secs(1))
}

async fn billing_consumer(client: &Client) -> strata_client::Consumer {
    client
        .consumer()
        .topics(["orders"])
        .group("billing")
        .start(Offset::Earliest)
        .retry(policy())
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_is_a_dry_run_until_executed_and_never_resends() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &BROKER_ARGS).unwrap();
    let client = connect(&broker).await;
    create_topic(&client, "orders", 2).await;
    // The group's retry and dead-letter topics, created (and labelled) by the library.
    billing_consumer(&client).await.close().await.unwrap();
    for (partition, key, error_type) in [
        (0, "a", "billing::Declined"),
        (1, "b", "billing::Declined"),
        (1, "c", "billing::Declined"),
        (0, "d", "std::io::error::Error"),
        (1, "e", "std::io::error::Error"),
    ] {
        dead_letter(&client, partition, key, error_type).await;
    }

    // A dry run counts by error type, shows a sample, and changes nothing.
    let (code, stdout, stderr) = strata(&broker, &["dlt", "replay", DLT, "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let plan = json(&stdout);
    assert_eq!(plan["executed"], false);
    assert_eq!(plan["target"], RETRY_0);
    assert_eq!(plan["records"], 5);
    assert_eq!(plan["by_error_type"]["billing::Declined"], 3);
    assert_eq!(plan["by_error_type"]["std::io::error::Error"], 2);
    assert!(!plan["sample"].as_array().unwrap().is_empty());
    assert!(stderr.contains("dry run"), "{stderr}");
    let (code, stdout, _) = strata(&broker, &["dlt", "replay", DLT]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("WOULD-REPLAY") && stdout.contains("billing::Declined"),
        "{stdout}"
    );
    let (code, stdout, _) = strata(
        &broker,
        &[
            "dlt",
            "replay",
            DLT,
            "--where",
            "strata.error.type=billing::Declined",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(json(&stdout)["records"], 3);
    assert_eq!(
        end_offsets(&client, RETRY_0).await,
        [0, 0],
        "a dry run produces nothing"
    );
    assert!(
        committed(&client).await.is_empty(),
        "a dry run commits nothing"
    );

    // --to source needs --yes; a topic that is not a dead-letter topic is refused.
    let (code, _, stderr) = strata(
        &broker,
        &["dlt", "replay", DLT, "--to", "source", "--execute"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("CONFIRMATION_REQUIRED") && stderr.contains("every group"),
        "{stderr}"
    );
    let (code, stdout, stderr) = strata(
        &broker,
        &[
            "dlt", "replay", DLT, "--to", "source", "--yes", "--format", "json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("warning"), "{stderr}");
    assert_eq!(json(&stdout)["target"], "orders");
    let (code, _, stderr) = strata(&broker, &["dlt", "replay", "orders", "--execute"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("NOT_A_DEAD_LETTER_TOPIC"), "{stderr}");
    client
        .admin()
        .create_topic(NewTopic::new("fake.billing.dlt"))
        .await
        .unwrap();
    let refused = DeadLetters::of_topic(&client, "fake.billing.dlt")
        .await
        .err();
    assert!(
        matches!(refused, Some(ReplayError::NotDeadLetterTopic { .. })),
        "{refused:?}"
    );
    assert_eq!(end_offsets(&client, "orders").await, [0, 0]);
    assert_eq!(end_offsets(&client, RETRY_0).await, [0, 0]);
    assert!(committed(&client).await.is_empty());

    // --execute: to the first retry topic, same partition, key, value and headers.
    let (code, stdout, stderr) = strata(
        &broker,
        &["dlt", "replay", DLT, "--execute", "--format", "json"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json(&stdout)["records"], 5);
    assert_eq!(end_offsets(&client, RETRY_0).await, [2, 3]);
    assert_eq!(committed(&client).await, BTreeMap::from([(0, 2), (1, 3)]));
    let dead: BTreeMap<String, ConsumedRecord> = read_all(&client, DLT)
        .await
        .into_iter()
        .map(|record| (header(&record, "trace").unwrap().to_owned(), record))
        .collect();
    for replayed in read_all(&client, RETRY_0).await {
        let original = &dead[header(&replayed, "trace").unwrap()];
        assert_eq!(replayed.partition, original.partition);
        assert_eq!(replayed.key, original.key);
        assert_eq!(replayed.value, original.value);
        assert_eq!(header(&replayed, "strata.attempt"), Some("0"));
        assert_eq!(header(&replayed, "strata.replay.count"), Some("1"));
        let from = format!("{DLT}/{}/{}", original.partition, original.offset);
        assert_eq!(header(&replayed, "strata.replay.from"), Some(from.as_str()));
        for key in [
            "strata.original.topic",
            "strata.error.type",
            "strata.error.message",
        ] {
            assert_eq!(header(&replayed, key), header(original, key), "{key}");
        }
        assert!(header(&replayed, "strata.retry.due-ms").is_some());
    }

    // A second run resends nothing; a new dead letter is the only one the library sends.
    let (code, stdout, _) = strata(
        &broker,
        &["dlt", "replay", DLT, "--execute", "--format", "json"],
    );
    assert_eq!(code, 0);
    assert_eq!(json(&stdout)["records"], 0);
    assert_eq!(end_offsets(&client, RETRY_0).await, [2, 3]);
    dead_letter(&client, 0, "f", "billing::Declined").await;
    let report = client
        .dead_letters("orders", "billing")
        .unwrap()
        .replay(&Replay::new().execute())
        .await
        .unwrap();
    assert_eq!((report.matched, report.examined), (1, 1));
    assert_eq!(end_offsets(&client, RETRY_0).await, [3, 3]);

    // The group handles them again, from its first retry topic, with every attempt.
    let handled = Arc::new(Mutex::new(Vec::new()));
    let (stop_sender, stop) = oneshot::channel::<()>();
    let mut consumer = billing_consumer(&client).await;
    let log = handled.clone();
    let task = tokio::spawn(async move {
        let handler = |record: ConsumedRecord| {
            let log = log.clone();
            async move {
                log.lock()
                    .unwrap()
                    .push((record.topic.to_string(), attempts_made(&record)));
                Ok(())
            }
        };
        let stop = async {
            let _ = stop.await;
        };
        consumer.run_until(handler, stop).await.unwrap();
        consumer
    });
    wait_until("billing to handle the six replayed records", || {
        handled.lock().unwrap().len() >= 6
    })
    .await;
    stop_sender.send(()).unwrap();
    task.await.unwrap().close().await.unwrap();
    for (topic, attempts_before) in handled.lock().unwrap().iter() {
        assert_eq!((topic.as_str(), *attempts_before), (RETRY_0, 0));
    }

    // `group describe` lists billing's retry and dead-letter topics with their counts.
    let (code, stdout, stderr) = strata(
        &broker,
        &["group", "describe", "billing", "--format", "json"],
    );
    assert_eq!(code, 0, "{stderr}");
    let described = json(&stdout);
    let topics = described[0]["retry_topics"].as_array().unwrap();
    let listed: Vec<(String, String, i64)> = topics
        .iter()
        .map(|topic| {
            let name = topic["topic"].as_str().unwrap().to_owned();
            (
                name,
                topic["kind"].as_str().unwrap().to_owned(),
                topic["records"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (RETRY_0.to_owned(), "retry".to_owned(), 6),
            ("orders.billing.retry.1".to_owned(), "retry".to_owned(), 0),
            (DLT.to_owned(), "dlt".to_owned(), 6),
        ]
    );
    let (code, stdout, _) = strata(&broker, &["group", "describe", "billing"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("RETRY TOPICS") && stdout.contains(RETRY_0),
        "{stdout}"
    );
}
