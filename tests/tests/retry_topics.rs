//! Retry and dead-letter topics of the client library against a real `strata-broker`:
//! records that fail once are handled again from the group's retry topic (never before
//! their due time), records that always fail or cannot be retried end in the group's
//! dead-letter topic with readable UTF-8 headers, the failed records' source offsets are
//! committed once they are safe elsewhere, `strata consume` shows their headers and
//! `strata dlt list` counts them by error type, a second group on the same topic never sees
//! the first group's retries, and a retry topic name owned by another (topic, group) is
//! refused without creating anything.
//!
//! Every wait is bounded; what the test checks is what was handled, forwarded and
//! committed, never how long it took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group_client;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use group_client::{connect, create_topic, wait_until, BROKER_ARGS, WAIT};
use strata_client::retry_topics::attempts_made;
use strata_client::{
    Client, ConsumedRecord, Consumer, HandlerError, NewTopic, Offset, OffsetSpec, Record,
    RetryPolicy,
};
use strata_tests::broker_process::{workspace_binary, BrokerProcess};
use strata_tests::cli_runner::{run_bounded, text};
use tokio::sync::oneshot;
use tokio_stream::StreamExt;

const PARTITIONS: i32 = 3;
/// Per kind: `ok-<n>` succeed, `once-<n>` fail on their first attempt, `always-<n>`
/// fail every attempt, `bad-<n>` fail with a non-retryable error.
const PER_KIND: usize = 6;

/// One handler call: the record's value, topic, attempts made before, and (for a retry
/// record) whether the clock had reached its due time.
#[derive(Debug, Clone)]
struct Call {
    value: String,
    topic: String,
    attempts_before: u32,
    due_reached: Option<bool>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap())
        .unwrap()
}

fn header<'a>(record: &'a ConsumedRecord, key: &str) -> Option<&'a str> {
    record
        .headers
        .iter()
        .find(|(name, _)| name == key)
        .and_then(|(_, value)| std::str::from_utf8(value.as_deref()?).ok())
}

fn value_of(record: &ConsumedRecord) -> String {
    String::from_utf8(record.value.clone().unwrap_or_default().to_vec()).unwrap()
}

/// `strata -b <broker> ARGS`, bounded; its stdout, which it must have succeeded to print.
fn strata(broker: &BrokerProcess, args: &[&str]) -> String {
    let mut command = std::process::Command::new(workspace_binary("strata"));
    command
        .arg("-b")
        .arg(broker.address().to_string())
        .args(args)
        .env_remove("STRATA_BROKERS")
        .env_remove("STRATA_FORMAT");
    let output = tokio::task::block_in_place(|| run_bounded(command, ""));
    assert!(
        output.status.success(),
        "{args:?}: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Short waits (200 ms, then 400 ms) keep the test quick; the defaults are 1 s and 2 s.
fn policy() -> RetryPolicy {
    RetryPolicy::default().backoff(Duration::from_millis(200), 2.0, Duration::from_secs(1))
}

async fn retrying_member(client: &Client, topic: &str, group: &str) -> Consumer {
    tokio::time::timeout(
        WAIT,
        client
            .consumer()
            .topics([topic])
            .group(group)
            .start(Offset::Earliest)
            .retry(policy())
            .build(),
    )
    .await
    .expect("building hung")
    .unwrap()
}

/// Runs `consumer` with the test's handler until `stop`; returns it for `close`.
fn spawn_handler(
    mut consumer: Consumer,
    calls: Arc<Mutex<Vec<Call>>>,
    stop: oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<Consumer> {
    tokio::spawn(async move {
        let handler = |record: ConsumedRecord| {
            let calls = calls.clone();
            async move {
                let value = value_of(&record);
                let attempts_before = attempts_made(&record);
                let due_reached = header(&record, "strata.retry.due-ms")
                    .map(|due| now_ms() >= due.parse::<i64>().unwrap());
                calls.lock().unwrap().push(Call {
                    value: value.clone(),
                    topic: record.topic.to_string(),
                    attempts_before,
                    due_reached,
                });
                match value.split('-').next().unwrap() {
                    "once" if attempts_before == 0 => Err(HandlerError::msg("try again")),
                    "always" => Err(HandlerError::from(std::io::Error::other("still down"))),
                    "bad" => Err(HandlerError::non_retryable(std::io::Error::other(
                        "malformed order",
                    ))),
                    _ => Ok(()),
                }
            }
        };
        let stop = async {
            let _ = stop.await;
        };
        consumer.run_until(handler, stop).await.unwrap();
        consumer
    })
}

async fn produce_orders(client: &Client) -> BTreeSet<String> {
    let producer = client.producer().build().unwrap();
    let mut values = BTreeSet::new();
    for kind in ["ok", "once", "always", "bad"] {
        for n in 0..PER_KIND {
            let value = format!("{kind}-{n}");
            producer
                .send(Record::to("orders").key(value.clone()).value(value.clone()))
                .await
                .unwrap();
            values.insert(value);
        }
    }
    producer.close().await.unwrap();
    values
}

/// Every record of `topic` up to its end when called.
async fn read_all(client: &Client, topic: &str) -> Vec<ConsumedRecord> {
    let mut consumer = client
        .consumer()
        .topics([topic])
        .start(Offset::Earliest)
        .build()
        .await
        .unwrap();
    let mut ends = BTreeMap::new();
    for partition in 0..PARTITIONS {
        let end = client
            .admin()
            .list_offsets(topic, partition, OffsetSpec::Latest)
            .await
            .unwrap()
            .0;
        ends.insert(partition, end);
    }
    let expected: i64 = ends.values().sum();
    let mut records = Vec::new();
    while i64::try_from(records.len()).unwrap() < expected {
        let record = tokio::time::timeout(WAIT, consumer.next())
            .await
            .expect("reading hung")
            .unwrap()
            .unwrap();
        records.push(record);
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_records_are_retried_then_dead_lettered_within_their_group() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &BROKER_ARGS).unwrap();
    let client = connect(&broker).await;
    create_topic(&client, "orders", PARTITIONS).await;
    let values = produce_orders(&client).await;

    let billing_calls = Arc::new(Mutex::new(Vec::new()));
    let (stop_billing, stop) = oneshot::channel();
    let billing = retrying_member(&client, "orders", "billing").await;
    let billing = spawn_handler(billing, billing_calls.clone(), stop);
    let shipping_calls = Arc::new(Mutex::new(Vec::new()));
    let (stop_shipping, stop) = oneshot::channel();
    let shipping = retrying_member(&client, "orders", "shipping").await;
    let shipping = spawn_handler(shipping, shipping_calls.clone(), stop);

    // Every retryable record gets its three attempts: the first from `orders`, the
    // second from retry.0 and the third from retry.1.
    wait_until("billing to make every attempt", || {
        let calls = billing_calls.lock().unwrap();
        let always_last = calls
            .iter()
            .filter(|call| call.value.starts_with("always-") && call.attempts_before == 2)
            .count();
        let once_again = calls
            .iter()
            .filter(|call| call.value.starts_with("once-") && call.attempts_before == 1)
            .count();
        always_last == PER_KIND && once_again == PER_KIND
    })
    .await;
    let dlt = "orders.billing.dlt";
    let deadline = Instant::now() + WAIT;
    let dead = loop {
        let dead = read_all(&client, dlt).await;
        if dead.len() >= 2 * PER_KIND {
            break dead;
        }
        assert!(Instant::now() < deadline, "the DLT holds only {dead:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop_billing.send(()).unwrap();
    billing.await.unwrap().close().await.unwrap();

    let calls = billing_calls.lock().unwrap().clone();
    for call in &calls {
        if call.topic == "orders" {
            assert_eq!(call.attempts_before, 0, "{call:?}");
            assert_eq!(call.due_reached, None, "{call:?}");
        } else {
            let level = call.attempts_before - 1;
            assert_eq!(
                call.topic,
                format!("orders.billing.retry.{level}"),
                "{call:?}"
            );
            assert_eq!(call.due_reached, Some(true), "handled before due: {call:?}");
        }
        assert!(!call.value.starts_with("ok-") || call.attempts_before == 0);
    }
    let handled: BTreeSet<&str> = calls.iter().map(|call| call.value.as_str()).collect();
    assert_eq!(
        handled.len(),
        values.len(),
        "every record reached the handler"
    );
    for kind in ["bad", "ok"] {
        let again = calls
            .iter()
            .filter(|call| call.value.starts_with(kind) && call.attempts_before > 0)
            .count();
        assert_eq!(again, 0, "{kind} records are never retried");
    }

    // The dead-letter topic: the exhausted and the non-retryable records, with their
    // origin, attempts and error in readable headers.
    let mut dead_values = BTreeSet::new();
    for record in &dead {
        let value = value_of(record);
        let (attempt, kind, message) = if value.starts_with("always-") {
            ("3", "exhausted", "still down")
        } else {
            assert!(value.starts_with("bad-"), "{value} in the DLT");
            ("1", "non-retryable", "malformed order")
        };
        assert_eq!(header(record, "strata.original.topic"), Some("orders"));
        assert_eq!(header(record, "strata.original.group"), Some("billing"));
        assert_eq!(header(record, "strata.attempt"), Some(attempt), "{value}");
        assert_eq!(header(record, "strata.error.kind"), Some(kind), "{value}");
        assert_eq!(header(record, "strata.error.message"), Some(message));
        assert_eq!(
            header(record, "strata.error.type"),
            Some("std::io::error::Error")
        );
        assert_eq!(header(record, "strata.retry.due-ms"), None);
        let partition: i32 = header(record, "strata.original.partition")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(partition, record.partition, "same partition number");
        assert!(header(record, "strata.original.offset").is_some());
        assert!(header(record, "strata.first-failure-ms").is_some());
        for (key, value) in &record.headers {
            let text = value.as_deref().map(std::str::from_utf8);
            assert!(matches!(text, Some(Ok(_))), "{key} is not UTF-8 text");
        }
        assert_eq!(record.key.as_deref(), Some(value.as_bytes()));
        dead_values.insert(value);
    }
    assert_eq!(
        dead_values.len(),
        2 * PER_KIND,
        "each failure once: {dead_values:?}"
    );

    // The CLI reads them: the headers as text, and `dlt list` counts them by error type.
    let headers = strata(
        &broker,
        &["consume", dlt, "-o", "start", "-e", "-f", "%h\n"],
    );
    let lines: Vec<&str> = headers.lines().collect();
    assert_eq!(lines.len(), 2 * PER_KIND, "{headers}");
    for line in lines {
        assert!(line.contains("strata.original.topic=orders"), "{line}");
        assert!(
            line.contains("strata.error.type=std::io::error::Error"),
            "{line}"
        );
    }
    let listed: serde_json::Value = serde_json::from_str(&strata(
        &broker,
        &["dlt", "list", "orders", "--format", "json"],
    ))
    .unwrap();
    let listed = listed.as_array().unwrap();
    let billing_dlt = listed
        .iter()
        .find(|entry| entry["topic"] == dlt)
        .expect("billing's DLT is listed");
    assert_eq!(billing_dlt["source"], "orders");
    assert_eq!(billing_dlt["group"], "billing");
    assert_eq!(billing_dlt["records"], 2 * PER_KIND);
    assert_eq!(
        billing_dlt["by_error_type"]["std::io::error::Error"],
        2 * PER_KIND
    );

    // Everything is committed: the failed records only after their hand-off.
    let committed = client
        .admin()
        .committed_offsets("billing", None)
        .await
        .unwrap();
    for partition in 0..PARTITIONS {
        let end = client
            .admin()
            .list_offsets("orders", partition, OffsetSpec::Latest)
            .await
            .unwrap()
            .0;
        let offset = committed
            .iter()
            .find(|entry| entry.topic == "orders" && entry.partition == partition)
            .and_then(|entry| entry.offset);
        assert_eq!(offset, Some(end), "orders/{partition} committed to its end");
    }

    // Group scoping: shipping read every record of `orders` once and never one of
    // billing's retry topics.
    wait_until("shipping to read every record", || {
        shipping_calls.lock().unwrap().len() >= values.len()
    })
    .await;
    stop_shipping.send(()).unwrap();
    let shipping = shipping.await.unwrap();
    let assigned = shipping.assignment();
    shipping.close().await.unwrap();
    let shipping_calls = shipping_calls.lock().unwrap().clone();
    assert!(
        assigned
            .iter()
            .all(|(topic, _)| !topic.starts_with("orders.billing.")),
        "{assigned:?}"
    );
    for call in &shipping_calls {
        assert!(
            call.topic == "orders" || call.topic.starts_with("orders.shipping."),
            "shipping saw {call:?}"
        );
    }
    let shipping_values: BTreeSet<&str> = shipping_calls
        .iter()
        .map(|call| call.value.as_str())
        .collect();
    assert_eq!(shipping_values.len(), values.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_topic_name_owned_by_another_pair_is_refused_and_nothing_is_created() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &BROKER_ARGS).unwrap();
    let client = connect(&broker).await;
    create_topic(&client, "payments", 2).await;
    // A topic with the DLT's name that was not created for (payments, billing).
    let labelled_for_another = NewTopic::new("payments.billing.dlt")
        .partitions(2)
        .config("strata.retry.source-topic", "payments.billing")
        .config("strata.retry.group", "other")
        .config("strata.retry.kind", "dlt")
        .config("strata.retry.level", "0");
    client
        .admin()
        .create_topic(labelled_for_another)
        .await
        .unwrap();
    let refused = client
        .consumer()
        .topics(["payments"])
        .group("billing")
        .retry(policy())
        .build()
        .await
        .expect_err("a DLT owned by another pair must be refused");
    assert_eq!(refused.code_name(), "INVALID_CONFIG", "{refused}");
    let message = refused.to_string();
    assert!(message.contains("payments.billing.dlt"), "{message}");
    assert!(
        message.contains("belongs to topic \"payments.billing\""),
        "{message}"
    );
    let topics: Vec<String> = client
        .admin()
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|topic| topic.name)
        .collect();
    assert!(
        !topics
            .iter()
            .any(|name| name.starts_with("payments.billing.retry")),
        "nothing created: {topics:?}"
    );

    // The broker keeps the labels checked like any config.
    let bad_label = NewTopic::new("x").config("strata.retry.kind", "later");
    let error = client.admin().create_topic(bad_label).await.err().unwrap();
    assert_eq!(error.code_name(), "INVALID_CONFIG", "{error}");

    // A policy that cannot work fails `build` before anything is created.
    let error = client
        .consumer()
        .topics(["payments"])
        .group("audit")
        .retry(RetryPolicy::default().max_attempts(0))
        .build()
        .await
        .err()
        .unwrap();
    assert_eq!(error.code_name(), "INVALID_CONFIG", "{error}");
    let error = client
        .consumer()
        .topics(["payments"])
        .retry(RetryPolicy::default())
        .build()
        .await
        .err()
        .unwrap();
    assert_eq!(error.code_name(), "INVALID_CONFIG", "{error}");
    let after: Vec<String> = client
        .admin()
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|topic| topic.name)
        .filter(|name| name.starts_with("payments.audit"))
        .collect();
    assert!(after.is_empty(), "{after:?}");
}
