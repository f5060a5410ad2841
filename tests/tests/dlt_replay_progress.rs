//! A replay commits its progress only past records the target acknowledged, against a
//! real `strata-broker`. The target topic refuses one record (`message_max_bytes` smaller
//! than it): the replay fails with that error and commits nothing at or after the refused
//! record, while the partition whose records were all acknowledged is committed to its
//! end, and every record below a committed offset is in the target. A target with fewer
//! partitions than the records need is refused before anything is sent, and so is the
//! default target of a group that retries in place (it has no retry topic).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group_client;

use std::collections::{BTreeMap, BTreeSet};

use group_client::{connect, create_topic, BROKER_ARGS, WAIT};
use strata_client::{
    Client, ConsumedRecord, NewTopic, Offset, OffsetSpec, Record, Replay, ReplayError,
    ReplayTarget, RetryOrdering, RetryPolicy,
};
use strata_tests::broker_process::BrokerProcess;
use tokio_stream::StreamExt;

const DLT: &str = "payments.billing.dlt";
const SINK: &str = "sink";

async fn dead_letter(client: &Client, partition: i32, key: &str, value_bytes: usize) {
    let producer = client.producer().build().unwrap();
    let record = Record::to(DLT)
        .partition(partition)
        .key(key.to_owned())
        .value("v".repeat(value_bytes))
        .header("strata.original.topic", "payments")
        .header("strata.error.type", "billing::Declined");
    producer.send(record).await.unwrap();
    producer.close().await.unwrap();
}

async fn progress(client: &Client) -> BTreeMap<i32, i64> {
    client
        .admin()
        .committed_offsets("strata-dlt-replay.payments.billing.dlt", None)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|entry| Some((entry.partition, entry.offset?)))
        .collect()
}

/// `strata.replay.from` of every record in the sink.
async fn replayed_from(client: &Client) -> BTreeSet<String> {
    let mut total = 0;
    for partition in 0..2 {
        let (end, _) = client
            .admin()
            .list_offsets(SINK, partition, OffsetSpec::Latest)
            .await
            .unwrap();
        total += end;
    }
    let mut consumer = client
        .consumer()
        .topics([SINK])
        .start(Offset::Earliest)
        .build()
        .await
        .unwrap();
    let mut from = BTreeSet::new();
    for _ in 0..total {
        let record: ConsumedRecord = tokio::time::timeout(WAIT, consumer.next())
            .await
            .expect("reading hung")
            .unwrap()
            .unwrap();
        let header = record
            .headers
            .iter()
            .find(|(key, _)| key == "strata.replay.from")
            .and_then(|(_, value)| value.clone())
            .unwrap();
        from.insert(String::from_utf8(header.to_vec()).unwrap());
    }
    consumer.close().await.unwrap();
    from
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn progress_is_committed_only_past_acknowledged_records() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &BROKER_ARGS).unwrap();
    let client = connect(&broker).await;
    create_topic(&client, "payments", 2).await;
    client
        .consumer()
        .topics(["payments"])
        .group("billing")
        .retry(RetryPolicy::default())
        .build()
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    // Partition 0: a record the sink refuses, then one it would take. Partition 1: two
    // records it takes.
    dead_letter(&client, 0, "too-big", 20_000).await;
    dead_letter(&client, 0, "after", 10).await;
    dead_letter(&client, 1, "small-1", 10).await;
    dead_letter(&client, 1, "small-2", 10).await;

    // A target with one partition cannot keep partition 1's number: refused, nothing sent.
    create_topic(&client, "narrow", 1).await;
    let dead_letters = client.dead_letters("payments", "billing").unwrap();
    let to_narrow = Replay::new()
        .to(ReplayTarget::Topic("narrow".to_owned()))
        .execute();
    let refused = dead_letters.replay(&to_narrow).await.err();
    assert!(
        matches!(
            refused,
            Some(ReplayError::TargetTooSmall { partition: 1, .. })
        ),
        "{refused:?}"
    );
    assert!(progress(&client).await.is_empty());

    // A group that retries in place has no retry topic to replay into.
    client
        .consumer()
        .topics(["payments"])
        .group("audit")
        .retry(RetryPolicy::default().ordering(RetryOrdering::BlockPartition))
        .build()
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    let in_place = client.dead_letters("payments", "audit").unwrap();
    let refused = in_place.replay(&Replay::new()).await.err();
    assert!(
        matches!(&refused, Some(ReplayError::NoRetryTopic { topic, .. }) if topic == "payments.audit.retry.0"),
        "{refused:?}"
    );

    let sink = NewTopic::new(SINK)
        .partitions(2)
        .config("message_max_bytes", "4096");
    client.admin().create_topic(sink).await.unwrap();
    let to_sink = Replay::new()
        .to(ReplayTarget::Topic(SINK.to_owned()))
        .execute();
    let failed = dead_letters.replay(&to_sink).await.err();
    assert!(
        matches!(&failed, Some(ReplayError::Client { source }) if source.code_name() == "MESSAGE_TOO_LARGE"),
        "{failed:?}"
    );
    let committed = progress(&client).await;
    assert_eq!(committed.get(&0).copied().unwrap_or(0), 0, "{committed:?}");
    assert_eq!(committed.get(&1), Some(&2), "{committed:?}");
    let in_sink = replayed_from(&client).await;
    for (partition, next) in &committed {
        for offset in 0..*next {
            let from = format!("{DLT}/{partition}/{offset}");
            assert!(
                in_sink.contains(&from),
                "{from} committed but not in the sink"
            );
        }
    }
    assert!(!in_sink.contains(&format!("{DLT}/0/0")));
}
