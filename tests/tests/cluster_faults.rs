//! Cluster faults under load, checked by the history checker (docs/RELIABILITY §4, rows 5
//! and 11 of the fault matrix): three real brokers on 127.0.0.2–4 (so the test's own
//! clients, on 127.0.0.1, stay outside every network partition), heartbeats every 200 ms
//! and a 6 s session (it must outlast a controller election), a 6-partition RF-1 topic,
//! idempotent `acks=all` producers and `assign` consumers from `strata_tests::workload`.
//!
//! - `the_controller_leader_cut_off_from_the_other_voters` (row 5): the controller leader
//!   loses both other voters while clients still reach every broker. The majority elects
//!   a new leader, creates a topic and fences the cut-off broker; the partitions the
//!   majority leads keep acknowledging, and not one send to them fails. After the heal the
//!   cut-off broker heartbeats again, is unfenced at the same incarnation (its process
//!   never stopped: OPERATIONS "Leases and fencing" gives a new incarnation only to a
//!   new start) and has the leader's metadata version.
//! - `a_rolling_restart_under_load_loses_nothing_and_each_stop_is_clean` (row 11): each
//!   broker in turn gets SIGTERM, exits with status 0 within 30 s leaving the clean
//!   shutdown marker, and is restarted; the next stop waits until it is live at its next
//!   incarnation and leads its partitions again. Its partitions have no leader meanwhile
//!   (RF 1), so sends to them may time out, as `Unknown`; every failed send must be
//!   retriable and no producer may stop.
//!
//! Both end with the checker: nothing acknowledged lost, duplicated or reordered, no send
//! that failed as "not applied" in the log, no inconsistent offset. Each prints its
//! figures (cut → new leader → create → fence, per-broker stop time and how long its
//! partitions went without an acknowledgement); they are measured, never asserted. The
//! limits only bound the waits, except the 30 s a SIGTERM may take (the matrix's rule).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strata_broker::log::manager::CLEAN_SHUTDOWN_FILE;
use strata_tests::ack_timeline::AckTimeline;
use strata_tests::cluster::{Cluster, ClusterOptions};
use strata_tests::cluster_views::{create_rf1_topic, led_by_their_replicas_everywhere, owned_by};
use strata_tests::firewall;
use strata_tests::history::{check, Event, Recorder, TopicPartition};
use strata_tests::quorum_watch::{
    broker_until, caught_up_with, create_retrying_at, formed, leader_among,
};
use strata_tests::wait::wait_until;
use strata_tests::workload::{final_read, Workload, WorkloadConfig, FATAL_SEND_MARK};

const TOPIC: &str = "faults";
const PARTITIONS: i32 = 6;
/// Bounds the consumers' catch-up, the final read and the waits for acknowledgements.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// Acknowledgements on the majority's partitions to see after the fence, before the heal.
const ACKS_AFTER_FENCE: usize = 200;
/// Acknowledgements on every partition before the first stop and after each restart.
const ACKS_BETWEEN_STOPS: usize = 1_000;

/// Both tests load the two cores fully: they run one at a time. An async mutex: each
/// test holds it across its awaits, on its own runtime.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Nodes 2–4 on 127.0.0.2–4, all voters, with short leases. The session still outlasts a
/// controller election (up to about 4 s here under load): a broker that hears from no
/// controller for a whole session stops serving (`Quorum::holds_lease`), so a shorter one
/// would make the majority's brokers stop while the voters elect a new controller.
fn three_brokers() -> ClusterOptions {
    ClusterOptions {
        first_node: 2,
        extra_args: [
            "--broker-heartbeat-interval-ms",
            "200",
            "--broker-session-timeout-ms",
            "6000",
        ]
        .map(str::to_owned)
        .to_vec(),
        ..ClusterOptions::new(3)
    }
}

fn start(options: ClusterOptions) -> Cluster {
    tokio::task::block_in_place(|| Cluster::start(options))
        .unwrap_or_else(|error| panic!("start the cluster: {error:#}"))
}

fn note(recorder: &Recorder, description: String) {
    recorder.record("nemesis", Event::Nemesis { description });
}

fn topic_partitions(partitions: &[i32]) -> Vec<TopicPartition> {
    partitions
        .iter()
        .map(|partition| TopicPartition::new(TOPIC, *partition))
        .collect()
}

fn workload_config(cluster: &Cluster, send_partitions: Vec<i32>) -> WorkloadConfig {
    let brokers = cluster
        .addresses()
        .iter()
        .map(ToString::to_string)
        .collect();
    WorkloadConfig {
        send_partitions,
        seed: rand::random::<u32>().into(),
        ..WorkloadConfig::new(brokers, TOPIC, PARTITIONS)
    }
}

/// Waits until `partitions` have `count` acknowledgements recorded at or after the mark
/// starting with `mark`.
async fn acks_after(recorder: &Recorder, mark: &str, partitions: &[TopicPartition], count: usize) {
    let what = format!("{count} acknowledgements on {partitions:?} after \"{mark}\"");
    wait_until(&what, DRAIN_LIMIT, || async {
        let timeline = AckTimeline::from_entries(&recorder.entries());
        let since = timeline.mark(mark).unwrap_or(Duration::MAX);
        timeline.acks_between(partitions, since, Duration::MAX) >= count
    })
    .await
    .unwrap_or_else(|error| panic!("{error:#}"));
}

/// Stops the producers, lets the consumers catch up, reads every partition in full and
/// runs the checker; panics on any anomaly or liveness failure, printing the summary.
async fn drain_and_check(
    label: &str,
    mut workload: Workload,
    config: &WorkloadConfig,
    recorder: &Recorder,
) {
    let tally = workload.stop_producers().await.unwrap();
    assert_eq!(tally.stuck, 0, "{label}: sends that never completed");
    assert_eq!(
        tally.rebuilt, 0,
        "{label}: a producer stopped on a fatal error"
    );
    workload.catch_up(DRAIN_LIMIT).await.unwrap();
    final_read(config, recorder, "final-read", DRAIN_LIMIT)
        .await
        .unwrap();
    let report = check(&recorder.entries());
    println!("{label} seed {}: {}", config.seed, report.summary());
    if !report.is_valid() {
        let path = std::env::temp_dir().join(format!("strata-{label}-history.txt"));
        let saved = recorder.dump(&path).map(|()| path.display().to_string());
        panic!("{label}: {report}\nhistory: {saved:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_controller_leader_cut_off_from_the_other_voters() {
    const LABEL: &str = "cluster_faults controller cut off";
    let test_started = Instant::now();
    if !firewall::skip_unless_available(LABEL) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let mut cluster = start(three_brokers());
    let (old_leader, incarnations) = formed(&cluster).await.unwrap();
    let replicas = create_rf1_topic(&cluster, old_leader, TOPIC, PARTITIONS).await;
    let majority: Vec<u8> = cluster
        .nodes()
        .into_iter()
        .filter(|node| *node != old_leader)
        .collect();
    let majority_partitions: Vec<i32> = majority
        .iter()
        .flat_map(|node| owned_by(&replicas, *node))
        .collect();
    assert!(!majority_partitions.is_empty(), "{replicas:?}");
    let watched = topic_partitions(&majority_partitions);

    let recorder = Recorder::new();
    let config = workload_config(&cluster, majority_partitions.clone());
    let workload = Workload::start(config.clone(), recorder.clone())
        .await
        .unwrap();
    note(&recorder, "warm-up".to_owned());
    acks_after(&recorder, "warm-up", &watched, 50).await;

    note(&recorder, format!("cut: node {old_leader} isolated"));
    let cut = Instant::now();
    tokio::task::block_in_place(|| cluster.isolate(old_leader)).unwrap();
    let new_leader = leader_among(&cluster, &majority).await.unwrap();
    let elected_after = cut.elapsed();
    let through = *majority.iter().find(|node| **node != new_leader).unwrap();
    let attempts = create_retrying_at(&cluster, through, "created-during-cut", 1, DRAIN_LIMIT)
        .await
        .unwrap();
    let created_after = cut.elapsed();
    let fenced = broker_until(&cluster, new_leader, old_leader, "fenced", |info| {
        info.fenced
    })
    .await
    .unwrap();
    let fenced_after = cut.elapsed();
    assert_eq!(fenced.incarnation, incarnations[&old_leader]);
    note(
        &recorder,
        format!("fenced: node {old_leader} in node {new_leader}'s view"),
    );
    acks_after(&recorder, "fenced", &watched, ACKS_AFTER_FENCE).await;

    note(&recorder, "heal".to_owned());
    tokio::task::block_in_place(|| cluster.heal_all()).unwrap();
    let healed = Instant::now();
    // The process never stopped: it heartbeats again at the incarnation it had.
    let rejoined = broker_until(&cluster, new_leader, old_leader, "live again", |info| {
        !info.fenced
    })
    .await
    .unwrap();
    assert_eq!(rejoined.incarnation, incarnations[&old_leader]);
    let unfenced_after = healed.elapsed();
    let version = caught_up_with(&cluster, old_leader, new_leader)
        .await
        .unwrap();
    let caught_up_after = healed.elapsed();
    led_by_their_replicas_everywhere(&cluster, TOPIC, &replicas).await;
    note(&recorder, "rejoined".to_owned());

    drain_and_check(
        "cluster_faults-controller-cut-off",
        workload,
        &config,
        &recorder,
    )
    .await;
    let timeline = AckTimeline::from_entries(&recorder.entries());
    let [cut_at, fenced_at, heal_at] =
        ["cut", "fenced", "heal"].map(|mark| timeline.mark(mark).unwrap());
    let acks_during_cut = timeline.acks_between(&watched, cut_at, heal_at);
    let failed = timeline.failures_on(&watched);
    println!(
        "{LABEL}: node {old_leader} cut off; node {new_leader} elected after {:.2} s; topic \
         created through node {through} after {:.2} s ({attempts} attempts); node {old_leader} \
         fenced after {:.2} s; heal: unfenced after {:.2} s, metadata version {version} after \
         {:.2} s; {acks_during_cut} acks on partitions {majority_partitions:?} during the cut \
         ({} after the fence), longest silence {:.2} s; {:.1} s in all",
        elected_after.as_secs_f64(),
        created_after.as_secs_f64(),
        fenced_after.as_secs_f64(),
        unfenced_after.as_secs_f64(),
        caught_up_after.as_secs_f64(),
        timeline.acks_between(&watched, fenced_at, heal_at),
        timeline
            .longest_silence(&watched, cut_at, heal_at)
            .as_secs_f64(),
        test_started.elapsed().as_secs_f64(),
    );
    assert!(
        acks_during_cut > 0,
        "no acknowledgement while node {old_leader} was cut off"
    );
    let new_leader_log = cluster.log(new_leader);
    for node in &majority {
        let fenced = format!("fencing it and moving its leadership broker_id={node}");
        assert!(
            !new_leader_log.contains(&fenced),
            "the new controller (node {new_leader}) fenced node {node} of the majority:\n{}",
            lines_with(&new_leader_log, "lease lapsed")
        );
    }
    assert!(
        failed.is_empty(),
        "sends to partitions the majority leads failed: {failed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_under_load_loses_nothing_and_each_stop_is_clean() {
    const LABEL: &str = "cluster_faults rolling restart";
    let test_started = Instant::now();
    let _one = ONE_AT_A_TIME.lock().await;
    let mut cluster = start(three_brokers());
    let (leader, mut incarnations) = formed(&cluster).await.unwrap();
    let replicas = create_rf1_topic(&cluster, leader, TOPIC, PARTITIONS).await;
    let recorder = Recorder::new();
    let config = workload_config(&cluster, Vec::new());
    let workload = Workload::start(config.clone(), recorder.clone())
        .await
        .unwrap();
    let every_partition = topic_partitions(&(0..PARTITIONS).collect::<Vec<_>>());
    note(&recorder, "warm-up".to_owned());
    acks_after(&recorder, "warm-up", &every_partition, ACKS_BETWEEN_STOPS).await;

    let mut stops = BTreeMap::new();
    for node in cluster.nodes() {
        let stop_time = stop_cleanly(&mut cluster, &recorder, node);
        tokio::task::block_in_place(|| cluster.restart(node)).unwrap();
        note(&recorder, format!("restarted node {node}"));
        let incarnation = incarnations[&node] + 1;
        let asked = leader_among(&cluster, &cluster.nodes()).await.unwrap();
        broker_until(
            &cluster,
            asked,
            node,
            "live at its next incarnation",
            |info| !info.fenced && info.incarnation == incarnation,
        )
        .await
        .unwrap();
        incarnations.insert(node, incarnation);
        led_by_their_replicas_everywhere(&cluster, TOPIC, &replicas).await;
        let own = topic_partitions(&owned_by(&replicas, node));
        let restarted = format!("restarted node {node}");
        for partition in &own {
            acks_after(&recorder, &restarted, std::slice::from_ref(partition), 1).await;
        }
        // Under load between stops too, not only right after a restart.
        acks_after(&recorder, &restarted, &every_partition, ACKS_BETWEEN_STOPS).await;
        stops.insert(node, (stop_time, own));
    }

    drain_and_check(
        "cluster_faults-rolling-restart",
        workload,
        &config,
        &recorder,
    )
    .await;
    let timeline = AckTimeline::from_entries(&recorder.entries());
    for (node, (stop_time, own)) in &stops {
        let sigterm = timeline.mark(&format!("SIGTERM node {node}")).unwrap();
        let restarted = timeline.mark(&format!("restarted node {node}")).unwrap();
        let unavailable = own
            .iter()
            .filter_map(|partition| timeline.first_ack_after(partition, restarted))
            .max()
            .unwrap()
            .saturating_sub(sigterm);
        println!(
            "{LABEL}: node {node} stopped in {:.2} s; its partitions {:?} acknowledged again \
             {:.2} s after SIGTERM",
            stop_time.as_secs_f64(),
            own.iter().map(|tp| tp.partition).collect::<Vec<_>>(),
            unavailable.as_secs_f64()
        );
    }
    let fatal: Vec<_> = timeline
        .failures()
        .iter()
        .filter(|failure| failure.error.contains(FATAL_SEND_MARK))
        .collect();
    println!(
        "{LABEL}: {} failed sends, all retriable: {}; {:.1} s in all",
        timeline.failures().len(),
        fatal.is_empty(),
        test_started.elapsed().as_secs_f64()
    );
    assert!(
        fatal.is_empty(),
        "sends failed with errors that are not retriable: {fatal:?}"
    );
}

/// The lines of `log` that contain `text`.
fn lines_with(log: &str, text: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|line| line.contains(text)).collect();
    lines.join("\n")
}

/// What a broker logs once the controller has moved away all it could and fenced it.
const CONTROLLED_SHUTDOWN_DONE: &str = "controlled shutdown done";

/// SIGTERMs `node` and asserts it exits with status 0 within 30 s (the harness SIGKILLs
/// it and fails after that), after a controlled shutdown, leaving the clean shutdown
/// marker; returns how long the stop took. Each node is stopped once per test, so its log
/// holds at most this stop's controlled shutdown.
fn stop_cleanly(cluster: &mut Cluster, recorder: &Recorder, node: u8) -> Duration {
    note(recorder, format!("SIGTERM node {node}"));
    let started = Instant::now();
    let status = tokio::task::block_in_place(|| cluster.terminate(node))
        .unwrap_or_else(|error| panic!("SIGTERM to node {node}: {error:#}"));
    let stop_time = started.elapsed();
    note(recorder, format!("node {node} exited ({status})"));
    assert!(
        status.success(),
        "node {node} exited with {status} after SIGTERM"
    );
    let log = cluster.log(node);
    assert!(
        log.contains(CONTROLLED_SHUTDOWN_DONE),
        "node {node} stopped without a controlled shutdown:\n{}",
        lines_with(&log, "shutdown")
    );
    let marker = cluster.data_dir(node).join(CLEAN_SHUTDOWN_FILE);
    assert!(
        marker.exists(),
        "node {node} exited without writing {}",
        marker.display()
    );
    stop_time
}
