//! The client library's group consumer against a real `strata-broker`, membership and
//! rebalancing: members share a topic's partitions, a new member takes only what it is
//! given while the others keep reading, a crashed member's partitions move once its
//! session times out, a member goes on after its coordinator is killed and restarted, a
//! member cut off for its session timeout gives its partitions up and joins again, a
//! static member that restarts gets its partitions back without moving anything else,
//! and a regex subscription follows the matching topics. Commits are in
//! `tests/tests/consumer_groups_client_commits.rs`.
//!
//! Members run in tasks that record every record and rebalance event they see
//! (`tests/tests/group_client/mod.rs`); the test waits (bounded) for the states it
//! expects and then checks what happened. Nothing is decided by how long anything took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group_client;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use group_client::*;
use strata_client::consumer::RebalanceEvent;
use strata_client::{Client, Offset, Record};
use strata_tests::broker_process::BrokerProcess;
use tokio_stream::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_share_partitions_and_a_new_member_moves_only_what_it_takes() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &BROKER_ARGS).unwrap();
    let client = connect(&broker).await;
    create_topic(&client, "orders", 6).await;
    let stop_producing = Arc::new(AtomicBool::new(false));
    let producer = spawn_producer(&client, "orders", 6, stop_producing.clone());

    let mut members = Vec::new();
    for _ in 0..3 {
        let consumer = group_member(&client, "orders", "billing", auto_commit()).await;
        members.push(Member::spawn(consumer));
    }
    wait_until("three members with two partitions each", || {
        members.iter().all(|member| member.assignment().len() == 2)
    })
    .await;
    let before: Vec<BTreeSet<Partition>> = members.iter().map(Member::assignment).collect();
    let union: BTreeSet<Partition> = before.iter().flatten().cloned().collect();
    assert_eq!(union.len(), 6, "every partition has one owner: {before:?}");
    wait_until("every member reading", || {
        members.iter().all(|member| member.records().len() > 20)
    })
    .await;

    let joined_at = Instant::now();
    let fourth = Member::spawn(group_member(&client, "orders", "billing", auto_commit()).await);
    wait_until("the fourth member reading", || {
        !fourth.assignment().is_empty() && !fourth.records().is_empty()
    })
    .await;
    let fourth_assigned_at = fourth
        .events()
        .iter()
        .find(|(_, event)| matches!(event, RebalanceEvent::Assigned(p) if !p.is_empty()))
        .map(|(at, _)| *at)
        .unwrap();
    wait_until("the old members settled", || {
        let owned: usize = members.iter().map(|member| member.assignment().len()).sum();
        owned + fourth.assignment().len() == 6
    })
    .await;

    let taken = fourth.assignment();
    for (member, before) in members.iter().zip(&before) {
        let after = member.assignment();
        assert!(
            after.is_subset(before),
            "an old member was given a partition: {before:?} -> {after:?}"
        );
        let moved: BTreeSet<Partition> = before.difference(&after).cloned().collect();
        assert!(
            moved.is_subset(&taken),
            "{moved:?} moved elsewhere than to the new member"
        );
        let late_assignments = member
            .events()
            .iter()
            .filter(|(at, event)| *at >= joined_at && matches!(event, RebalanceEvent::Assigned(_)))
            .count();
        assert_eq!(late_assignments, 0, "an old member was reassigned");
        // Kept partitions went on while the group rebalanced: records of them arrived
        // between the fourth member's join and its first assignment, and their offsets
        // neither jump nor repeat over the whole run.
        let records = member.records();
        for (_, partition) in &after {
            assert_contiguous(&offsets_of(&records, *partition), "a kept partition");
        }
        let during = records
            .iter()
            .filter(|seen| after.iter().any(|(_, p)| *p == seen.partition))
            .filter(|seen| seen.received > joined_at && seen.received < fourth_assigned_at)
            .count();
        assert!(
            after.is_empty() || during > 0,
            "kept partitions {after:?} paused while the group rebalanced"
        );
    }
    let taken_count = taken.len();
    assert!(
        (1..=2).contains(&taken_count),
        "the new member should take one or two partitions, took {taken:?}"
    );

    // A partition that moved is read by its new owner from where the old one committed
    // before giving it up: nothing skipped.
    for (_, partition) in &taken {
        let new_owner = offsets_of(&fourth.records(), *partition);
        let old_owner: Vec<i64> = members
            .iter()
            .flat_map(|member| offsets_of(&member.records(), *partition))
            .collect();
        let first_new = *new_owner.first().unwrap();
        let last_old = *old_owner.last().unwrap();
        assert!(
            first_new <= last_old + 1,
            "partition {partition}: the old owner stopped at {last_old}, the new one started at {first_new}"
        );
        assert_contiguous(&new_owner, "a moved partition at its new owner");
    }

    stop_producing.store(true, Ordering::SeqCst);
    producer.await.unwrap();
    for member in members.into_iter().chain([fourth]) {
        member.stop().await.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crashed_members_partitions_move_after_its_session_times_out() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &BROKER_ARGS).unwrap();
    let client = connect(&broker).await;
    create_topic(&client, "jobs", 2).await;
    let stop_producing = Arc::new(AtomicBool::new(false));
    let producer = spawn_producer(&client, "jobs", 2, stop_producing.clone());

    // The victim runs on a runtime of its own, which is then shut down: its heartbeats
    // stop without a leave, as when the process is killed.
    let address = broker.address().to_string();
    let (assigned_sender, assigned) = std::sync::mpsc::channel();
    let (crash, crashed) = std::sync::mpsc::channel::<()>();
    let victim = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let client = Client::builder().brokers([address]).build().await.unwrap();
            let mut consumer = group_member(&client, "jobs", "workers", auto_commit()).await;
            let mut events = consumer.rebalance_events().unwrap();
            loop {
                tokio::select! {
                    _ = consumer.next() => {}
                    Some(RebalanceEvent::Assigned(partitions)) = events.recv() => {
                        assigned_sender.send(partitions).unwrap();
                    }
                    () = tokio::time::sleep(Duration::from_millis(20)) => {
                        if crashed.try_recv().is_ok() {
                            break;
                        }
                    }
                }
            }
            std::mem::forget(consumer);
        });
        runtime.shutdown_background();
    });
    let survivor = Member::spawn(group_member(&client, "jobs", "workers", auto_commit()).await);
    wait_until("both members with one partition", || {
        survivor.assignment().len() == 1
    })
    .await;
    let victims: Vec<Partition> = tokio::task::block_in_place(|| {
        let mut partitions = Vec::new();
        while partitions.is_empty() {
            partitions = assigned
                .recv_timeout(WAIT)
                .expect("the victim was assigned nothing");
        }
        partitions
    });

    crash.send(()).unwrap();
    tokio::task::block_in_place(|| victim.join().unwrap());
    let crashed_at = Instant::now();
    wait_until("the survivor takes the crashed member's partition", || {
        survivor.assignment().len() == 2
    })
    .await;
    let moved_at = survivor
        .events()
        .iter()
        .rev()
        .find(|(_, event)| matches!(event, RebalanceEvent::Assigned(_)))
        .map(|(at, _)| *at)
        .unwrap();
    assert!(moved_at > crashed_at);
    for partition in &victims {
        assert!(survivor.assignment().contains(partition));
    }
    wait_until("the survivor reads the moved partition", || {
        survivor
            .records()
            .iter()
            .any(|seen| victims.iter().any(|(_, p)| *p == seen.partition))
    })
    .await;
    stop_producing.store(true, Ordering::SeqCst);
    producer.await.unwrap();
    survivor.stop().await.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_goes_on_reading_after_its_coordinator_is_killed_and_restarted() {
    let data = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(data.path(), &BROKER_ARGS).unwrap();
    let client = connect(&broker).await;
    create_topic(&client, "ledger", 2).await;
    let producer = client.producer().build().unwrap();
    for index in 0..20 {
        producer
            .send(
                Record::to("ledger")
                    .partition(index % 2)
                    .value(index.to_string()),
            )
            .await
            .unwrap();
    }
    let member = Member::spawn(group_member(&client, "ledger", "accounts", auto_commit()).await);
    wait_until("the member read the first records", || {
        member.records().len() >= 20
    })
    .await;

    broker.kill().unwrap();
    broker.restart().unwrap();
    for index in 20..40 {
        producer
            .send(
                Record::to("ledger")
                    .partition(index % 2)
                    .value(index.to_string()),
            )
            .await
            .unwrap();
    }
    wait_until(
        "the member read the records produced after the restart",
        || {
            let records = member.records();
            (0..2).all(|partition| offsets_of(&records, partition).contains(&19))
        },
    )
    .await;
    // At least once: every offset of each partition was read, perhaps some twice (a
    // member that had to join again resumes at its last commit).
    let records = member.records();
    for partition in 0..2 {
        let seen: BTreeSet<i64> = offsets_of(&records, partition).into_iter().collect();
        assert_eq!(seen, (0..20).collect(), "partition {partition}");
    }
    producer.close().await.unwrap();
    member.stop().await.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_static_member_that_restarts_gets_its_partitions_back_and_nothing_else_moves() {
    let data = tempfile::tempdir().unwrap();
    // A long session: the restarted member is back long before it would be expelled.
    let broker = BrokerProcess::start(
        data.path(),
        &[
            "--group-heartbeat-interval-ms",
            "200",
            "--group-session-timeout-ms",
            "30000",
        ],
    )
    .unwrap();
    let client = connect(&broker).await;
    create_topic(&client, "shipments", 2).await;
    let static_member = |client: &Client| {
        client
            .consumer()
            .topics(["shipments"])
            .group("couriers")
            .instance_id("host-a")
            .start(Offset::Earliest)
            .build()
    };
    let first = Member::spawn(
        tokio::time::timeout(WAIT, static_member(&client))
            .await
            .unwrap()
            .unwrap(),
    );
    let other = Member::spawn(group_member(&client, "shipments", "couriers", auto_commit()).await);
    wait_until("one partition each", || {
        first.assignment().len() == 1 && other.assignment().len() == 1
    })
    .await;
    let held = first.assignment();
    first.stop().await.close().await.unwrap();
    let closed_at = Instant::now();

    let again = Member::spawn(
        tokio::time::timeout(WAIT, static_member(&client))
            .await
            .unwrap()
            .unwrap(),
    );
    wait_until("the restarted member has a partition", || {
        !again.assignment().is_empty()
    })
    .await;
    assert_eq!(again.assignment(), held);
    let moved_since = other
        .events()
        .iter()
        .filter(|(at, _)| *at > closed_at)
        .count();
    assert_eq!(
        moved_since,
        0,
        "the other member saw a rebalance: {:?}",
        other.events()
    );
    again.stop().await.close().await.unwrap();
    other.stop().await.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_cut_off_for_its_session_timeout_gives_up_its_partitions_and_joins_again() {
    let data = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(data.path(), &BROKER_ARGS).unwrap();
    let client = Client::builder()
        .brokers([broker.address().to_string()])
        .request_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    create_topic(&client, "alerts", 2).await;
    let member = Member::spawn(group_member(&client, "alerts", "pagers", auto_commit()).await);
    wait_until("the member owns both partitions", || {
        member.assignment().len() == 2
    })
    .await;

    // SIGSTOP: heartbeats time out instead of failing fast, as with a network cut.
    broker.pause().unwrap();
    wait_until("the member gives its partitions up as lost", || {
        member
            .events()
            .iter()
            .any(|(_, event)| matches!(event, RebalanceEvent::Lost(p) if p.len() == 2))
    })
    .await;
    assert!(member.assignment().is_empty());
    broker.resume().unwrap();
    wait_until("the member joined again", || member.assignment().len() == 2).await;
    member.stop().await.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_regex_subscription_gets_the_matching_topics_including_one_created_later() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &BROKER_ARGS).unwrap();
    let client = connect(&broker).await;
    create_topic(&client, "metrics-cpu", 2).await;
    create_topic(&client, "logs", 1).await;
    let consumer = tokio::time::timeout(
        WAIT,
        client
            .consumer()
            .topic_regex("metrics-.*")
            .group("dashboards")
            .start(Offset::Earliest)
            .build(),
    )
    .await
    .unwrap()
    .unwrap();
    let member = Member::spawn(consumer);
    let partitions = |names: &[(&str, i32)]| -> BTreeSet<Partition> {
        names
            .iter()
            .map(|(topic, partition)| ((*topic).to_owned(), *partition))
            .collect()
    };
    wait_until("the matching topic assigned", || {
        member.assignment() == partitions(&[("metrics-cpu", 0), ("metrics-cpu", 1)])
    })
    .await;
    create_topic(&client, "metrics-disk", 1).await;
    wait_until("the topic created later assigned too", || {
        member.assignment()
            == partitions(&[("metrics-cpu", 0), ("metrics-cpu", 1), ("metrics-disk", 0)])
    })
    .await;
    let producer = client.producer().build().unwrap();
    producer
        .send(Record::to("metrics-disk").value("97%"))
        .await
        .unwrap();
    producer.send(Record::to("logs").value("no")).await.unwrap();
    wait_until("the new topic's record read", || {
        !member.records().is_empty()
    })
    .await;
    producer.close().await.unwrap();
    member.stop().await.close().await.unwrap();
}
