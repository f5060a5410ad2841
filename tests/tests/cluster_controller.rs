//! The controller quorum of three real brokers (issue 19) forms one cluster, spreads
//! partitions, fences a dead broker and takes it back, through the client library and
//! the `strata` binary:
//!
//! - three brokers given `--controller-voters` form one cluster: three live brokers at
//!   incarnation 1, three voters, one controller leader, the same from every broker, from
//!   the client library and from `strata cluster info --format json`;
//! - a 6-partition RF-1 topic created through broker 2 puts two replicas and two leaders
//!   on each broker, and a CLI that names one broker produces to all six partitions while
//!   a CLI naming another reads every record back exactly once (`consume -e` takes its
//!   end offsets from `DescribeTopics`, which must not report a partition led elsewhere
//!   as empty);
//! - a SIGKILLed broker (a follower, then the controller leader) is fenced once its lease
//!   lapses and its partitions lose their leader; restarted, it is live at incarnation 2,
//!   leads them again and serves produce and fetch;
//! - a SIGTERMed broker exits 0; restarted, it serves its partitions, and every record
//!   produced before comes back exactly once.
//!
//! Bad input to the same cluster is in `cluster_bad_input.rs`.
//!
//! The brokers heartbeat every 200 ms with a 2 s session, so fencing is quick. Every wait is
//! bounded ([`WAIT`]) and only bounds a hang; what is asserted is the sequence of states
//! the cluster shows. The clusters kill their brokers when dropped.
//!
//! "Node N shows" means N's own answer: the checks ask one node over raw gRPC
//! ([`describe_at`], [`partitions_at`]), because the client library sends `DescribeCluster`
//! and `DescribeTopics` to the first broker it knows, whichever it was bootstrapped from.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use strata_client::{Acks, Offset, OffsetSpec, Record};
use strata_proto::api::v1::DescribeClusterResponse;
use strata_tests::cli_runner::{json_of, strata, text};
use strata_tests::cluster::Cluster;
use strata_tests::cluster_views::{
    all_live_at, broker_states, create_rf1_topic, describe_at, describe_until, formed,
    led_by_their_replicas_everywhere, owned_by, partitions_at, partitions_until,
    start_three_voters, WAIT,
};
use tokio_stream::StreamExt;

const PARTITIONS: i32 = 6;

fn block<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// How many of `values` each broker 1–3 has.
fn per_broker(values: impl IntoIterator<Item = i32>) -> BTreeMap<i32, usize> {
    let mut counts = BTreeMap::from([(1, 0), (2, 0), (3, 0)]);
    for value in values {
        *counts.entry(value).or_default() += 1;
    }
    counts
}

/// Produces one record to each of `partitions` through `via` (acks=all) and reads each
/// back at the offset it was given.
async fn produce_and_fetch(cluster: &Cluster, via: u8, topic: &str, partitions: &[i32]) {
    let client = cluster.client(via).await.unwrap();
    let producer = client.producer().acks(Acks::All).build().unwrap();
    for &partition in partitions {
        let value = format!("after-restart-{partition}");
        let record = Record::to(topic).partition(partition).value(value.clone());
        let delivery = producer.send(record).await.unwrap();
        assert_eq!(delivery.partition, partition);
        let mut consumer = client
            .consumer()
            .assign([(topic, partition)])
            .start(Offset::At(delivery.offset))
            .build()
            .await
            .unwrap();
        let fetched = tokio::time::timeout(WAIT, consumer.next())
            .await
            .expect("the record arrives")
            .unwrap()
            .unwrap();
        assert_eq!(
            (fetched.partition, fetched.offset),
            (partition, delivery.offset)
        );
        assert_eq!(fetched.value.as_deref(), Some(value.as_bytes()));
        consumer.close().await.unwrap();
    }
    producer.close().await.unwrap();
}

/// The one controller leader a description names, checked against the voter it marks.
fn controller_leader(description: &DescribeClusterResponse) -> i32 {
    let marked: Vec<i32> = description
        .voters
        .iter()
        .filter(|voter| voter.leader)
        .map(|voter| voter.node_id)
        .collect();
    assert_eq!(
        marked,
        vec![description.controller_leader],
        "one leader, named and marked: {description:?}"
    );
    description.controller_leader
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_brokers_form_one_cluster_with_one_controller_leader() {
    let cluster = start_three_voters();
    formed(&cluster).await;
    let addresses: Vec<(i32, String)> = cluster
        .nodes()
        .into_iter()
        .map(|node| (i32::from(node), cluster.address(node).to_string()))
        .collect();

    // Each node's own answer.
    let mut cluster_ids = BTreeSet::new();
    for node in cluster.nodes() {
        let description = describe_at(&cluster, node).await.unwrap();
        assert_eq!(description.answered_by, i32::from(node), "{description:?}");
        let mut brokers: Vec<(i32, String)> = description
            .brokers
            .iter()
            .map(|broker| (broker.node_id, broker.address.clone()))
            .collect();
        brokers.sort();
        assert_eq!(brokers, addresses, "{description:?}");
        assert!(all_live_at(&description, [1, 1, 1]), "{description:?}");
        let mut voters: Vec<(i32, String)> = description
            .voters
            .iter()
            .map(|voter| (voter.node_id, voter.address.clone()))
            .collect();
        voters.sort();
        assert_eq!(
            voters, addresses,
            "every broker is a voter: {description:?}"
        );
        let leader = controller_leader(&description);
        assert!((1..=3).contains(&leader), "{description:?}");
        assert!(description.controller_term >= 1, "{description:?}");
        assert!(!description.cluster_id.is_empty(), "{description:?}");
        cluster_ids.insert(description.cluster_id);
    }
    assert_eq!(cluster_ids.len(), 1, "one cluster: {cluster_ids:?}");
    let cluster_id = cluster_ids.pop_first().unwrap();

    // Through the client library.
    let client = cluster.client(3).await.unwrap();
    let description = client.admin().describe_cluster().await.unwrap();
    assert_eq!(description.cluster_id, cluster_id, "{description:?}");
    let brokers: Vec<(i32, String, bool, u64)> = description
        .brokers
        .iter()
        .map(|b| (b.node_id, b.address.clone(), b.fenced, b.incarnation))
        .collect();
    let live: Vec<(i32, String, bool, u64)> = addresses
        .iter()
        .map(|(id, address)| (*id, address.clone(), false, 1))
        .collect();
    assert_eq!(brokers, live, "{description:?}");
    let voters: Vec<(i32, String)> = description
        .voters
        .iter()
        .map(|voter| (voter.node_id, voter.address.clone()))
        .collect();
    assert_eq!(voters, addresses, "{description:?}");
    let marked: Vec<i32> = description
        .voters
        .iter()
        .filter(|voter| voter.leader)
        .map(|voter| voter.node_id)
        .collect();
    assert_eq!(
        marked,
        Vec::from_iter(description.controller_leader),
        "{description:?}"
    );
    assert_eq!(marked.len(), 1, "{description:?}");

    // Through the CLI, from its JSON document.
    let info = json_of(&strata(
        &cluster,
        2,
        &["--format", "json", "cluster", "info"],
        "",
    ));
    assert_eq!(info["cluster_id"], cluster_id.as_str(), "{info}");
    assert!(
        (1..=3).contains(&info["answered_by"].as_i64().unwrap()),
        "{info}"
    );
    let brokers = info["brokers"].as_array().unwrap();
    assert_eq!(brokers.len(), 3, "{info}");
    for (broker, (id, address)) in brokers.iter().zip(&addresses) {
        assert_eq!(broker["node_id"], *id, "{info}");
        assert_eq!(broker["address"], address.as_str(), "{info}");
        assert_eq!(broker["state"], "live", "{info}");
        assert_eq!(broker["fenced"], false, "{info}");
        assert_eq!(broker["incarnation"], 1, "{info}");
    }
    let voters = info["voters"].as_array().unwrap();
    let voter_ids: Vec<i64> = voters
        .iter()
        .map(|voter| voter["node_id"].as_i64().unwrap())
        .collect();
    assert_eq!(voter_ids, vec![1, 2, 3], "{info}");
    let controller = info["controller_id"].as_i64().expect("a controller leader");
    let marked: Vec<i64> = voters
        .iter()
        .filter(|voter| voter["leader"] == true)
        .map(|voter| voter["node_id"].as_i64().unwrap())
        .collect();
    assert_eq!(marked, vec![controller], "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_partitions_rf1_spread_two_per_broker_and_any_broker_reaches_every_partition() {
    let cluster = start_three_voters();
    formed(&cluster).await;
    const TOPIC: &str = "spread";
    let replicas = create_rf1_topic(&cluster, 2, TOPIC, PARTITIONS).await;
    let expected = BTreeMap::from([(1, 2), (2, 2), (3, 2)]);
    assert_eq!(per_broker(replicas.values().copied()), expected);
    for node in cluster.nodes() {
        let described = partitions_at(&cluster, node, TOPIC).await.unwrap();
        let leaders = described.iter().map(|partition| partition.leader);
        assert_eq!(per_broker(leaders), expected, "node {node}: {described:?}");
    }

    // Keyed records through a CLI that is given broker 1 only.
    const RECORDS: usize = 120;
    let input: String = (0..RECORDS)
        .map(|i| format!("key-{i} value-{i}\n"))
        .collect();
    let produced = strata(
        &cluster,
        1,
        &["--format", "json", "produce", TOPIC, "-f", "%k %v\\n"],
        &input,
    );
    assert!(produced.status.success(), "{}", text(&produced.stderr));
    let reports: BTreeSet<(i64, i64)> = text(&produced.stdout)
        .lines()
        .map(|line| {
            let report: Value = serde_json::from_str(line).unwrap();
            assert_eq!(report["topic"], TOPIC, "{line}");
            (
                report["partition"].as_i64().unwrap(),
                report["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(reports.len(), RECORDS, "one report and offset per record");
    let written: BTreeSet<i64> = reports.iter().map(|(partition, _)| *partition).collect();
    assert_eq!(written, (0..6).collect(), "the keys reach every partition");

    // Everything from the beginning, through a CLI that is given broker 3 only.
    let consumed = strata(
        &cluster,
        3,
        &["consume", TOPIC, "-o", "beginning", "-e"],
        "",
    );
    assert!(consumed.status.success(), "{}", text(&consumed.stderr));
    let mut seen = BTreeMap::new();
    for line in text(&consumed.stdout).lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        let position = (
            record["partition"].as_i64().unwrap(),
            record["offset"].as_i64().unwrap(),
        );
        let key = record["key"].as_str().unwrap().to_owned();
        let value = record["value"].as_str().unwrap();
        assert_eq!(value, key.replace("key-", "value-"), "{line}");
        assert!(seen.insert(key, position).is_none(), "twice: {line}");
    }
    let keys: BTreeSet<String> = (0..RECORDS).map(|i| format!("key-{i}")).collect();
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), keys);
    let positions: BTreeSet<(i64, i64)> = seen.values().copied().collect();
    assert_eq!(positions, reports, "read at the offsets produce reported");
}

/// Kills `victim` and checks, as `observer` shows it, that it is fenced at the
/// incarnation it had and its partitions have no leader while the others keep theirs;
/// restarts it and checks it is live at the next incarnation and leads them again (on
/// every node); produces to them and fetches back.
async fn kill_and_restart(
    cluster: &mut Cluster,
    victim: u8,
    observer: u8,
    topic: &str,
    replicas: &BTreeMap<i32, i32>,
) {
    let id = i32::from(victim);
    let its_own = owned_by(replicas, victim);
    assert_eq!(its_own.len(), 2, "{replicas:?}");
    let before = describe_until(cluster, observer, "every broker live", |d| {
        d.brokers.len() == 3 && d.brokers.iter().all(|b| !b.fenced)
    })
    .await;
    let live = broker_states(&before);
    cluster.kill(victim).unwrap();

    let description = describe_until(cluster, observer, "the killed broker fenced", |d| {
        d.brokers.iter().any(|b| b.node_id == id && b.fenced)
    })
    .await;
    let fenced: Vec<(i32, bool, u64)> = live
        .iter()
        .map(|&(node, _, incarnation)| (node, node == id, incarnation))
        .collect();
    assert_eq!(
        broker_states(&description),
        fenced,
        "only the killed broker is fenced, at the incarnation it had: {description:?}"
    );
    assert_ne!(
        description.controller_leader, id,
        "a dead voter is not the leader: {description:?}"
    );
    let what = "the killed broker's partitions without a leader";
    let fenced_view = partitions_until(cluster, observer, topic, what, |all| {
        all.iter()
            .filter(|partition| its_own.contains(&partition.partition))
            .all(|partition| partition.leader == -1)
    })
    .await;
    for partition in &fenced_view {
        assert_eq!(partition.replicas, vec![replicas[&partition.partition]]);
        if !its_own.contains(&partition.partition) {
            assert_eq!(
                partition.leader, replicas[&partition.partition],
                "the others keep their leader: {fenced_view:?}"
            );
        }
    }

    block(|| cluster.restart(victim)).unwrap();
    let restarted: Vec<(i32, bool, u64)> = live
        .iter()
        .map(|&(node, _, incarnation)| (node, false, incarnation + u64::from(node == id)))
        .collect();
    for node in cluster.nodes() {
        describe_until(cluster, node, "the restarted broker live again", |d| {
            broker_states(d) == restarted
        })
        .await;
    }
    led_by_their_replicas_everywhere(cluster, topic, replicas).await;
    produce_and_fetch(cluster, observer, topic, &its_own).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_broker_is_fenced_after_its_lease_and_unfenced_with_a_new_incarnation() {
    let mut cluster = start_three_voters();
    let leader = formed(&cluster).await;
    const TOPIC: &str = "fencing";
    let replicas = create_rf1_topic(&cluster, 1, TOPIC, PARTITIONS).await;

    // A follower of the quorum, as the controller leader shows it.
    let follower = cluster.nodes().into_iter().find(|n| *n != leader).unwrap();
    kill_and_restart(&mut cluster, follower, leader, TOPIC, &replicas).await;

    // The controller leader, as a survivor shows it: another voter takes over.
    let description = describe_until(&cluster, follower, "a controller leader", |d| {
        d.controller_leader > 0
    })
    .await;
    let leader = u8::try_from(description.controller_leader).unwrap();
    let observer = cluster.nodes().into_iter().find(|n| *n != leader).unwrap();
    kill_and_restart(&mut cluster, leader, observer, TOPIC, &replicas).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigtermed_broker_exits_zero_and_serves_its_partitions_after_restart() {
    let mut cluster = start_three_voters();
    formed(&cluster).await;
    const TOPIC: &str = "terminated";
    let replicas = create_rf1_topic(&cluster, 1, TOPIC, PARTITIONS).await;

    const RECORDS: usize = 300;
    let client = cluster.client(1).await.unwrap();
    let producer = client.producer().acks(Acks::All).build().unwrap();
    let mut pending = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let record = Record::to(TOPIC)
            .key(format!("key-{i}"))
            .value(format!("value-{i}"));
        pending.push((i, producer.enqueue(record).unwrap()));
    }
    producer.flush().await.unwrap();
    let mut sent = BTreeMap::new();
    for (i, delivery) in pending {
        let delivery = delivery.await.unwrap();
        assert!(sent
            .insert((delivery.partition, delivery.offset), i)
            .is_none());
    }
    producer.close().await.unwrap();
    drop(client);
    let written: BTreeSet<i32> = sent.keys().map(|(partition, _)| *partition).collect();
    assert_eq!(written, (0..PARTITIONS).collect());

    let status = block(|| cluster.terminate(3)).unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
    let its_own = owned_by(&replicas, 3);
    for node in [1, 2] {
        describe_until(&cluster, node, "the stopped broker fenced", |d| {
            broker_states(d) == vec![(1, false, 1), (2, false, 1), (3, true, 1)]
        })
        .await;
        let what = "the stopped broker's partitions without a leader";
        partitions_until(&cluster, node, TOPIC, what, |all| {
            all.iter().all(|partition| {
                let led_by_3 = its_own.contains(&partition.partition);
                partition.leader
                    == if led_by_3 {
                        -1
                    } else {
                        replicas[&partition.partition]
                    }
            })
        })
        .await;
    }

    block(|| cluster.restart(3)).unwrap();
    for node in cluster.nodes() {
        describe_until(&cluster, node, "the restarted broker live", |d| {
            all_live_at(d, [1, 1, 2])
        })
        .await;
    }
    led_by_their_replicas_everywhere(&cluster, TOPIC, &replicas).await;

    // Everything from the beginning, through broker 2: all of it, once.
    let client = cluster.client(2).await.unwrap();
    let mut log_end = 0;
    for partition in 0..PARTITIONS {
        let (offset, _) = client
            .admin()
            .list_offsets(TOPIC, partition, OffsetSpec::Latest)
            .await
            .unwrap();
        log_end += offset;
    }
    assert_eq!(
        log_end,
        i64::try_from(RECORDS).unwrap(),
        "nothing more stored"
    );
    let mut consumer = client
        .consumer()
        .topics([TOPIC])
        .start(Offset::Earliest)
        .build()
        .await
        .unwrap();
    let mut seen = BTreeMap::new();
    while seen.len() < RECORDS {
        let record = tokio::time::timeout(WAIT, consumer.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {RECORDS} records came back", seen.len()))
            .unwrap()
            .unwrap();
        let position = (record.partition, record.offset);
        let i = sent[&position];
        assert_eq!(record.key.as_deref(), Some(format!("key-{i}").as_bytes()));
        assert_eq!(
            record.value.as_deref(),
            Some(format!("value-{i}").as_bytes())
        );
        assert!(seen.insert(position, i).is_none(), "twice: {position:?}");
    }
    assert_eq!(seen, sent);
    consumer.close().await.unwrap();
}
