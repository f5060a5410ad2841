//! The client's retry counters (`metrics` facade) against a real `strata-broker`: a
//! recorder installed for this test process counts
//! `strata_client_retry_records_total{topic,group,level}`,
//! `strata_client_dlt_records_total{topic,group,kind}` and
//! `strata_client_retry_handoff_failures_total{topic,group}` while a group consumer
//! retries and dead-letters records, and once its dead-letter topic is deleted under it
//! so that a hand-off fails.
//!
//! One test in this file: the recorder is process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group_client;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use group_client::{connect, create_topic, wait_until, BROKER_ARGS};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use strata_client::{ConsumedRecord, HandlerError, Offset, Record, RetryPolicy};
use strata_tests::broker_process::BrokerProcess;
use tokio::sync::oneshot;

/// Counters by `name{label=value,...}` (labels sorted).
#[derive(Debug, Default)]
struct Counters(Mutex<BTreeMap<String, Arc<AtomicU64>>>);

impl Counters {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let key = render(
            name,
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let counters = self.0.lock().unwrap();
        counters
            .get(&key)
            .map_or(0, |value| value.load(Ordering::SeqCst))
    }
}

fn render(name: &str, labels: impl Iterator<Item = (String, String)>) -> String {
    let mut labels: Vec<String> = labels.map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    format!("{name}{{{}}}", labels.join(","))
}

#[derive(Debug)]
struct TestRecorder(Arc<Counters>);

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let labels = key
            .labels()
            .map(|label| (label.key().to_owned(), label.value().to_owned()));
        let name = render(key.name(), labels);
        let mut counters = self.0 .0.lock().unwrap();
        Counter::from_arc(counters.entry(name).or_default().clone())
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_dead_letters_and_failed_hand_offs_are_counted() {
    let counters = Arc::new(Counters::default());
    metrics::set_global_recorder(TestRecorder(counters.clone())).unwrap();
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &BROKER_ARGS).unwrap();
    let client = connect(&broker).await;
    create_topic(&client, "orders", 1).await;
    let policy = RetryPolicy::default()
        .backoff(Duration::from_millis(200), 2.0, Duration::from_secs(1))
        .handoff_timeout(Duration::from_secs(2));
    let mut consumer = client
        .consumer()
        .topics(["orders"])
        .group("billing")
        .start(Offset::Earliest)
        .retry(policy)
        .build()
        .await
        .unwrap();
    let producer = client.producer().build().unwrap();
    for value in ["ok-1", "once-1", "always-1", "bad-1"] {
        producer
            .send(Record::to("orders").value(value))
            .await
            .unwrap();
    }
    let (stop_sender, stop) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let handler = |record: ConsumedRecord| async move {
            let value = String::from_utf8_lossy(record.value.as_deref().unwrap_or_default());
            let retried = strata_client::retry_topics::attempts_made(&record) > 0;
            match value.split('-').next().unwrap_or_default() {
                "once" if !retried => Err(HandlerError::msg("try again")),
                "always" => Err(HandlerError::msg("still down")),
                "bad" => Err(HandlerError::non_retryable(std::io::Error::other(
                    "malformed",
                ))),
                _ => Ok(()),
            }
        };
        let stop = async {
            let _ = stop.await;
        };
        consumer.run_until(handler, stop).await.unwrap();
        consumer
    });

    let source = [("topic", "orders"), ("group", "billing")];
    let with = |extra: (&'static str, &'static str)| {
        let mut labels = source.to_vec();
        labels.push(extra);
        labels
    };
    let dlt = "strata_client_dlt_records_total";
    wait_until("the exhausted record to be dead-lettered", || {
        counters.get(dlt, &with(("kind", "exhausted"))) == 1
    })
    .await;
    let retry = "strata_client_retry_records_total";
    // once-1 and always-1 failed their first attempt; always-1 also its second.
    assert_eq!(counters.get(retry, &with(("level", "0"))), 2);
    assert_eq!(counters.get(retry, &with(("level", "1"))), 1);
    assert_eq!(counters.get(dlt, &with(("kind", "non-retryable"))), 1);
    let failures = "strata_client_retry_handoff_failures_total";
    assert_eq!(counters.get(failures, &source), 0);

    // With its dead-letter topic gone, a hand-off cannot be acknowledged.
    client
        .admin()
        .delete_topic("orders.billing.dlt")
        .await
        .unwrap();
    producer
        .send(Record::to("orders").value("bad-2"))
        .await
        .unwrap();
    wait_until("a failed hand-off to be counted", || {
        counters.get(failures, &source) >= 1
    })
    .await;
    assert_eq!(counters.get(dlt, &with(("kind", "non-retryable"))), 1);
    stop_sender.send(()).unwrap();
    let consumer = task.await.unwrap();
    let _ = consumer.close().await;
    producer.close().await.unwrap();
}
