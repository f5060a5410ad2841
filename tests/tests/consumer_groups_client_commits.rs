//! The client library's group consumer against a real `strata-broker`, commits:
//! `close()` commits where the next member resumes (with the leader epoch, over
//! `auto.offset.reset=latest`), a manual commit is where a dropped member's successor
//! resumes, a member that stops polling leaves and comes back, a commit from a member that
//! lost its partitions fails as fenced (the client never sends it with the new member's
//! epoch), and a committed offset deleted by retention is reset by `auto.offset.reset`.
//!
//! Helpers in `tests/tests/group_client/mod.rs`; every wait is bounded and decides
//! nothing by time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group_client;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use group_client::*;
use strata_client::consumer::RebalanceEvent;
use strata_client::{CommitMode, NewTopic, Offset, Record};
use strata_tests::broker_process::BrokerProcess;
use tokio_stream::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn close_commits_and_the_next_member_resumes_where_it_stopped() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &BROKER_ARGS).unwrap();
    let client = connect(&broker).await;
    create_topic(&client, "events", 2).await;
    let producer = client.producer().build().unwrap();
    for index in 0..40 {
        producer
            .send(
                Record::to("events")
                    .partition(index % 2)
                    .value(index.to_string()),
            )
            .await
            .unwrap();
    }

    // Auto mode, a long interval: only close() commits.
    let commit = CommitMode::Auto {
        interval: Duration::from_secs(3600),
    };
    let mut first = group_member(&client, "events", "audit", commit).await;
    let mut read: BTreeMap<i32, i64> = BTreeMap::new();
    for _ in 0..15 {
        let record = tokio::time::timeout(WAIT, first.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        read.insert(record.partition, record.offset + 1);
    }
    first.close().await.unwrap();
    // What close() committed, with the leader epoch of the last record read.
    let committed = client
        .admin()
        .committed_offsets("audit", None)
        .await
        .unwrap();
    for (partition, offset) in &read {
        let stored = committed
            .iter()
            .find(|stored| stored.partition == *partition)
            .unwrap();
        assert_eq!(stored.offset, Some(*offset));
        assert_eq!(stored.leader_epoch, Some(0), "the one broker's first epoch");
    }

    // Latest would skip everything: the committed offsets must win.
    let mut second = tokio::time::timeout(
        WAIT,
        client
            .consumer()
            .topics(["events"])
            .group("audit")
            .start(Offset::Latest)
            .commit(CommitMode::Manual)
            .build(),
    )
    .await
    .unwrap()
    .unwrap();
    let mut first_seen: BTreeMap<i32, i64> = BTreeMap::new();
    let mut manually_committed: BTreeMap<i32, i64> = BTreeMap::new();
    while first_seen.len() < 2 || manually_committed.values().sum::<i64>() < 25 {
        let record = tokio::time::timeout(WAIT, second.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        first_seen.entry(record.partition).or_insert(record.offset);
        manually_committed.insert(record.partition, record.offset + 1);
    }
    for (partition, offset) in &first_seen {
        let expected = read.get(partition).copied().unwrap_or(0);
        assert_eq!(*offset, expected, "partition {partition} resumed elsewhere");
    }
    second.commit().await.unwrap();
    // Dropped, not closed: nothing more is committed in Manual mode, and the member
    // leaves as best it can.
    drop(second);

    let mut third = group_member(&client, "events", "audit", CommitMode::Manual).await;
    let mut resumed: BTreeMap<i32, i64> = BTreeMap::new();
    while resumed.len() < manually_committed.iter().filter(|(_, o)| **o < 20).count() {
        let record = tokio::time::timeout(WAIT, third.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        resumed.entry(record.partition).or_insert(record.offset);
    }
    for (partition, offset) in &resumed {
        assert_eq!(
            Some(offset),
            manually_committed.get(partition),
            "partition {partition} did not resume at the manual commit"
        );
    }
    third.close().await.unwrap();
    producer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_that_stops_polling_leaves_and_joins_again_when_it_polls() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &BROKER_ARGS).unwrap();
    let client = connect(&broker).await;
    create_topic(&client, "tasks", 2).await;
    let stop_producing = Arc::new(AtomicBool::new(false));
    let producer = spawn_producer(&client, "tasks", 2, stop_producing.clone());

    let mut stuck = tokio::time::timeout(
        WAIT,
        client
            .consumer()
            .topics(["tasks"])
            .group("crunchers")
            .start(Offset::Earliest)
            .max_poll_interval(Duration::from_secs(1))
            .build(),
    )
    .await
    .unwrap()
    .unwrap();
    let mut stuck_events = stuck.rebalance_events().unwrap();
    let busy = Member::spawn(group_member(&client, "tasks", "crunchers", auto_commit()).await);
    // The stuck member reads until both members have one partition, then holds a record
    // of its own and stops polling.
    let deadline = Instant::now() + WAIT;
    let held = loop {
        assert!(
            Instant::now() < deadline,
            "the members never had one partition each"
        );
        tokio::select! {
            record = stuck.next() => {
                let record = record.unwrap().unwrap();
                let own = ("tasks".to_owned(), record.partition);
                if busy.assignment().len() == 1
                    && stuck.assignment() == vec![own.clone()]
                    && !busy.assignment().contains(&own)
                {
                    break record;
                }
            }
            Some(_) = stuck_events.recv() => {}
        }
    };
    while stuck_events.try_recv().is_some() {}
    wait_until("the busy member takes the stuck member's partition", || {
        busy.assignment().len() == 2
    })
    .await;

    // Back: the next poll drops the partition it lost, and the member joins again.
    let mut lost = false;
    let mut assigned_again = false;
    let deadline = Instant::now() + WAIT;
    while !(lost && assigned_again) {
        assert!(Instant::now() < deadline, "the member did not come back");
        tokio::select! {
            _ = stuck.next() => {}
            Some(event) = stuck_events.recv() => match event {
                RebalanceEvent::Lost(partitions) => {
                    assert!(partitions.contains(&("tasks".to_owned(), held.partition)));
                    lost = true;
                }
                RebalanceEvent::Assigned(partitions) if lost && !partitions.is_empty() => {
                    assigned_again = true;
                }
                _ => {}
            },
        }
    }
    wait_until("the busy member gave one back", || {
        busy.assignment().len() == 1
    })
    .await;
    stop_producing.store(true, Ordering::SeqCst);
    producer.await.unwrap();
    stuck.close().await.unwrap();
    busy.stop().await.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_from_a_member_that_lost_its_partitions_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &BROKER_ARGS).unwrap();
    let client = connect(&broker).await;
    create_topic(&client, "payments", 2).await;
    let stop_producing = Arc::new(AtomicBool::new(false));
    let producer = spawn_producer(&client, "payments", 2, stop_producing.clone());
    let mut late = tokio::time::timeout(
        WAIT,
        client
            .consumer()
            .topics(["payments"])
            .group("settlers")
            .start(Offset::Earliest)
            .commit(CommitMode::Manual)
            .max_poll_interval(Duration::from_secs(1))
            .build(),
    )
    .await
    .unwrap()
    .unwrap();
    let busy = Member::spawn(group_member(&client, "payments", "settlers", auto_commit()).await);
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(
            Instant::now() < deadline,
            "the members never had one partition each"
        );
        let record = tokio::time::timeout(WAIT, late.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let own = ("payments".to_owned(), record.partition);
        if busy.assignment().len() == 1 && late.assignment() == vec![own.clone()] {
            break;
        }
    }
    late.commit().await.unwrap();
    // Holding a record past max.poll.interval: the member leaves, its partition moves.
    wait_until("the busy member takes the late member's partition", || {
        busy.assignment().len() == 2
    })
    .await;
    let refused = late.commit().await.unwrap_err();
    assert!(refused.is_member_fenced(), "{refused}");
    stop_producing.store(true, Ordering::SeqCst);
    producer.await.unwrap();
    late.close().await.unwrap();
    busy.stop().await.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_committed_offset_deleted_by_retention_is_reset_by_auto_offset_reset() {
    let data = tempfile::tempdir().unwrap();
    let mut args = BROKER_ARGS.to_vec();
    args.extend(["--retention-check-interval-ms", "100"]);
    let broker = BrokerProcess::start(data.path(), &args).unwrap();
    let client = connect(&broker).await;
    client
        .admin()
        .create_topic(
            NewTopic::new("clicks")
                .partitions(1)
                .config("segment_bytes", "1024")
                .config("retention_bytes", "4096"),
        )
        .await
        .unwrap();
    let producer = client.producer().linger(Duration::ZERO).build().unwrap();
    let value = "x".repeat(200);
    for _ in 0..3 {
        producer
            .send(Record::to("clicks").value(value.clone()))
            .await
            .unwrap();
    }
    let mut first = group_member(&client, "clicks", "analysts", CommitMode::Manual).await;
    let record = tokio::time::timeout(WAIT, first.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(record.offset, 0);
    first.commit().await.unwrap();
    first.close().await.unwrap();

    // Retention deletes the segment holding the committed offset.
    for _ in 0..100 {
        producer
            .send(Record::to("clicks").value(value.clone()))
            .await
            .unwrap();
    }
    let admin = client.admin();
    let deadline = Instant::now() + WAIT;
    let log_start = loop {
        let (earliest, _) = admin
            .list_offsets("clicks", 0, strata_client::OffsetSpec::Earliest)
            .await
            .unwrap();
        if earliest > 1 {
            break earliest;
        }
        assert!(Instant::now() < deadline, "retention never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Earliest: the member starts at the log start instead of stopping on the error.
    let mut second = group_member(&client, "clicks", "analysts", CommitMode::Manual).await;
    let record = tokio::time::timeout(WAIT, second.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        record.offset >= log_start,
        "{} < {log_start}",
        record.offset
    );
    second.close().await.unwrap();
    producer.close().await.unwrap();
}
