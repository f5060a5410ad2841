//! Round trips through the real binaries: `strata-client` (admin, producer, consumer)
//! and the `strata` CLI against a real `strata-broker` on 127.0.0.1, including the
//! README's quick start and a bad topic name that must change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use strata_client::{Acks, Client, Compression, NewTopic, Offset, Record};
use strata_tests::broker_process::{workspace_binary, BrokerProcess};
use tokio_stream::StreamExt;

fn strata(broker: &BrokerProcess, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(workspace_binary("strata"))
        .arg("-b")
        .arg(broker.address().to_string())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn readme_quick_start_works_through_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &[]).unwrap();

    let created = strata(&broker, &["topic", "create", "demo"], None);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let produced = strata(
        &broker,
        &["produce", "demo", "-f", "%k %v\\n", "-H", "source=cli"],
        Some("k1 v1\nk2 v2\nk3 v3\n"),
    );
    assert!(produced.status.success(), "{}", text(&produced.stderr));
    let consumed = strata(
        &broker,
        &[
            "consume",
            "demo",
            "-o",
            "start",
            "-n",
            "3",
            "-f",
            "%p@%o %k=%v %h\\n",
        ],
        None,
    );
    assert!(consumed.status.success(), "{}", text(&consumed.stderr));
    assert_eq!(
        text(&consumed.stdout),
        "0@0 k1=v1 source=cli\n0@1 k2=v2 source=cli\n0@2 k3=v3 source=cli\n"
    );
}

#[test]
fn a_bad_topic_name_is_a_clear_error_and_changes_nothing() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &[]).unwrap();
    assert!(strata(&broker, &["topic", "create", "good"], None)
        .status
        .success());
    let before = strata(&broker, &["topic", "list"], None);
    let dirs_before = std::fs::read_dir(data.path()).unwrap().count();

    let refused = strata(&broker, &["topic", "create", "bad/name"], None);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("(INVALID_TOPIC)"),
        "{stderr}"
    );

    let after = strata(&broker, &["topic", "list"], None);
    assert_eq!(text(&before.stdout), text(&after.stdout));
    assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), dirs_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_produce_and_consume_keyed_records_with_headers() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &[]).unwrap();
    let client = Client::builder()
        .brokers([broker.address().to_string()])
        .build()
        .await
        .unwrap();
    client
        .admin()
        .create_topic(
            NewTopic::new("orders")
                .partitions(3)
                .config("retention_ms", "3600000"),
        )
        .await
        .unwrap();

    let producer = client
        .producer()
        .acks(Acks::All)
        .compression(Compression::Lz4)
        .linger(Duration::from_millis(2))
        .build()
        .unwrap();
    let mut sent = BTreeMap::new();
    let mut pending = Vec::new();
    for i in 0..60 {
        let record = Record::to("orders")
            .key(format!("key-{}", i % 7))
            .value(format!("value-{i}"))
            .header("n", i.to_string());
        pending.push((i, producer.enqueue(record).unwrap()));
    }
    producer.flush().await.unwrap();
    for (i, delivery) in pending {
        let delivery = delivery.await.unwrap();
        sent.insert((delivery.partition, delivery.offset), i);
    }
    producer.close().await.unwrap();
    assert_eq!(sent.len(), 60, "every record got its own offset");

    let mut consumer = client
        .consumer()
        .topics(["orders"])
        .start(Offset::Earliest)
        .build()
        .await
        .unwrap();
    let mut partition_of_key = BTreeMap::new();
    for _ in 0..60 {
        let record = tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .expect("records arrive")
            .unwrap()
            .unwrap();
        let i = sent[&(record.partition, record.offset)];
        assert_eq!(
            record.value.as_deref(),
            Some(format!("value-{i}").as_bytes())
        );
        assert_eq!(
            record.headers,
            vec![("n".to_owned(), Some(bytes::Bytes::from(i.to_string())))]
        );
        let key = record.key.clone().unwrap();
        // Keyed records of one key always land on one partition (murmur2).
        assert_eq!(
            *partition_of_key.entry(key).or_insert(record.partition),
            record.partition
        );
    }
    consumer.close().await.unwrap();
}
