//! The client library's group consumer against a real `strata-broker`: members share a
//! topic's partitions, a new member takes only what it is given while the others keep
//! reading, `close()` commits where the next member resumes (with the leader epoch), a
//! manual commit is where a dropped member's successor resumes, a crashed member's
//! partitions move once its session times out, a member goes on after its coordinator is
//! killed and restarted, one that stops polling leaves and comes back, a commit from a
//! member that lost its partitions fails as fenced (the client never sends it with the
//! new member's epoch), and a static member that restarts gets its partitions back
//! without moving anything else.
//!
//! Members run in tasks that record every record and rebalance event they see; the test
//! waits (bounded) for the states it expects and then checks what happened. Nothing is
//! decided by how long anything took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_client::consumer::{RebalanceEvent, RebalanceEvents};
use strata_client::{Client, CommitMode, Consumer, NewTopic, Offset, Record};
use strata_tests::broker_process::BrokerProcess;
use tokio_stream::StreamExt;

/// The longest any one wait may take before the test counts as hung.
const WAIT: Duration = Duration::from_secs(60);

/// Fast group timing: heartbeats every 200 ms, members expelled after 3 s of silence.
const BROKER_ARGS: [&str; 4] = [
    "--group-heartbeat-interval-ms",
    "200",
    "--group-session-timeout-ms",
    "3000",
];

type Partition = (String, i32);

/// A record a member was given.
#[derive(Debug, Clone)]
struct Seen {
    partition: i32,
    offset: i64,
    received: Instant,
}

/// What one member saw.
#[derive(Debug, Default)]
struct MemberLog {
    assignment: BTreeSet<Partition>,
    events: Vec<(Instant, RebalanceEvent)>,
    records: Vec<Seen>,
}

/// A consumer reading in its own task until told to stop.
struct Member {
    log: Arc<Mutex<MemberLog>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Consumer>,
}

impl Member {
    fn spawn(mut consumer: Consumer) -> Member {
        let log = Arc::new(Mutex::new(MemberLog::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let events = consumer.rebalance_events().expect("a group consumer");
        let task = tokio::spawn(read(log.clone(), stop.clone(), consumer, events));
        Member { log, stop, task }
    }

    fn assignment(&self) -> BTreeSet<Partition> {
        self.log.lock().unwrap().assignment.clone()
    }

    fn events(&self) -> Vec<(Instant, RebalanceEvent)> {
        self.log.lock().unwrap().events.clone()
    }

    fn records(&self) -> Vec<Seen> {
        self.log.lock().unwrap().records.clone()
    }

    /// Stops reading and hands the consumer back (still a member).
    async fn stop(self) -> Consumer {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

async fn read(
    log: Arc<Mutex<MemberLog>>,
    stop: Arc<AtomicBool>,
    mut consumer: Consumer,
    mut events: RebalanceEvents,
) -> Consumer {
    while !stop.load(Ordering::SeqCst) {
        tokio::select! {
            record = consumer.next() => {
                let record = record.expect("the stream ended").expect("a record");
                log.lock().unwrap().records.push(Seen {
                    partition: record.partition,
                    offset: record.offset,
                    received: Instant::now(),
                });
            }
            Some(event) = events.recv() => {
                let mut log = log.lock().unwrap();
                match &event {
                    RebalanceEvent::Assigned(partitions) => {
                        log.assignment.extend(partitions.iter().cloned());
                    }
                    RebalanceEvent::Revoked(partitions) | RebalanceEvent::Lost(partitions) => {
                        for partition in partitions {
                            log.assignment.remove(partition);
                        }
                    }
                    _ => {}
                }
                log.events.push((Instant::now(), event));
            }
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    consumer
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn connect(broker: &BrokerProcess) -> Client {
    Client::builder()
        .brokers([broker.address().to_string()])
        .request_timeout(Duration::from_secs(10))
        .build()
        .await
        .unwrap()
}

async fn create_topic(client: &Client, name: &str, partitions: i32) {
    client
        .admin()
        .create_topic(NewTopic::new(name).partitions(partitions))
        .await
        .unwrap();
}

async fn group_member(client: &Client, topic: &str, group: &str, commit: CommitMode) -> Consumer {
    tokio::time::timeout(
        WAIT,
        client
            .consumer()
            .topics([topic])
            .group(group)
            .start(Offset::Earliest)
            .commit(commit)
            .build(),
    )
    .await
    .expect("joining hung")
    .unwrap()
}

/// Produces to every partition in turn until stopped; returns how many records went to
/// each partition.
fn spawn_producer(
    client: &Client,
    topic: &'static str,
    partitions: i32,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<BTreeMap<i32, i64>> {
    let producer = client.producer().build().unwrap();
    tokio::spawn(async move {
        let mut sent: BTreeMap<i32, i64> = BTreeMap::new();
        let mut sequence = 0_i64;
        while !stop.load(Ordering::SeqCst) {
            let partition = i32::try_from(sequence % i64::from(partitions)).unwrap();
            producer
                .send(
                    Record::to(topic)
                        .partition(partition)
                        .value(sequence.to_string()),
                )
                .await
                .unwrap();
            *sent.entry(partition).or_default() += 1;
            sequence += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        producer.close().await.unwrap();
        sent
    })
}

fn auto_commit() -> CommitMode {
    CommitMode::Auto {
        interval: Duration::from_millis(300),
    }
}

/// Offsets a member got for `partition` in the order it got them.
fn offsets_of(records: &[Seen], partition: i32) -> Vec<i64> {
    records
        .iter()
        .filter(|seen| seen.partition == partition)
        .map(|seen| seen.offset)
        .collect()
}

fn assert_contiguous(offsets: &[i64], what: &str) {
    for pair in offsets.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "{what}: offsets jump or repeat: {offsets:?}"
        );
    }
}

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
