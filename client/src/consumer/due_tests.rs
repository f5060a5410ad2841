//! Records with a due time against the in-process test broker: never yielded before it,
//! while the consumer's other partitions keep flowing. (The producer's checks need the
//! topic's configs, which the test broker does not serve: these records carry the
//! header as written by hand; `tests/tests/delayed_delivery.rs` runs the whole path.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tokio_stream::StreamExt;

use crate::delayed_delivery::{deliver_at_ms, DELIVER_AT_MS};
use crate::record::now_ms;
use crate::test_broker::TestBroker;
use crate::{Client, Offset, Record};

async fn client(broker: &TestBroker) -> Client {
    Client::builder()
        .brokers([broker.address.as_str()])
        .request_timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_record_is_not_yielded_before_its_due_time_and_others_flow_meanwhile() {
    let broker = TestBroker::start(&[("t", 2)]).await;
    let client = client(&broker).await;
    let producer = client.producer().build().unwrap();
    // Far enough ahead that reading six ready records takes less, even on a loaded VM.
    let due_ms = now_ms() + 5000;
    // Partition 0: a delayed record, then one due already (behind it, so held too).
    producer
        .send(
            Record::to("t")
                .value("later")
                .partition(0)
                .header(DELIVER_AT_MS, due_ms.to_string()),
        )
        .await
        .unwrap();
    producer
        .send(
            Record::to("t")
                .value("due-behind")
                .partition(0)
                .header(DELIVER_AT_MS, (due_ms - 60_000).to_string()),
        )
        .await
        .unwrap();
    for index in 0..5 {
        producer
            .send(Record::to("t").value(format!("now-{index}")).partition(1))
            .await
            .unwrap();
    }
    let mut consumer = client
        .consumer()
        .topics(["t"])
        .start(Offset::Earliest)
        .build()
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 7 {
        let record = tokio::time::timeout(Duration::from_secs(20), consumer.next())
            .await
            .expect("consumer stalled")
            .expect("stream ended")
            .unwrap();
        let consumed_ms = now_ms();
        if let Some(due) = deliver_at_ms(&record) {
            assert!(
                consumed_ms >= due_ms,
                "{:?} yielded at {consumed_ms}, due at {due} (head due at {due_ms})",
                record.value
            );
        }
        seen.push((
            record.partition,
            String::from_utf8_lossy(&record.value.unwrap()).into_owned(),
        ));
    }
    let first_of_partition_0 = seen
        .iter()
        .position(|(partition, _)| *partition == 0)
        .unwrap();
    assert!(
        seen[..first_of_partition_0]
            .iter()
            .filter(|(partition, _)| *partition == 1)
            .count()
            == 5,
        "partition 1 was read while partition 0 waited: {seen:?}"
    );
    let partition_0: Vec<&str> = seen
        .iter()
        .filter(|(partition, _)| *partition == 0)
        .map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(partition_0, ["later", "due-behind"], "offset order holds");
    producer.close().await.unwrap();
}

#[tokio::test]
async fn an_unreadable_due_time_does_not_hold_a_record_back() {
    let broker = TestBroker::start(&[("t", 1)]).await;
    let client = client(&broker).await;
    let producer = client.producer().build().unwrap();
    producer
        .send(Record::to("t").value("v").header(DELIVER_AT_MS, "soon"))
        .await
        .unwrap();
    let mut consumer = client
        .consumer()
        .topics(["t"])
        .start(Offset::Earliest)
        .build()
        .await
        .unwrap();
    let record = tokio::time::timeout(Duration::from_secs(20), consumer.next())
        .await
        .expect("consumer stalled")
        .expect("stream ended")
        .unwrap();
    assert_eq!(record.value.as_deref(), Some(&b"v"[..]));
    producer.close().await.unwrap();
}
