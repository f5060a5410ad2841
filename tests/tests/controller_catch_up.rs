//! A controller voter that was down while the others wrote more than a thousand Raft
//! entries comes back through a snapshot install (issue 19).
//!
//! Broker 3 of three is SIGKILLed; the other two create 20 topics and change their
//! configs 1,100 times, until the leader has purged the log broker 3 would need. Restarted,
//! broker 3 is unfenced, reaches the leader's metadata version, knows every topic with the
//! leader's `retention_ms`, has a snapshot file of its own, and keeps all of it across
//! another SIGKILL. How long the writes and the catch-up took is printed, not asserted.
//!
//! Brokers are asked one by one over raw gRPC where it matters which broker answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::ensure;
use strata_broker::controller::quorum::state_machine::SNAPSHOT_FILE;
use strata_broker::controller::quorum::CONTROLLER_DIR;
use strata_tests::admin_retry::{alter_retrying, create_retrying};
use strata_tests::cluster_views::{
    describe_at, healthy, leader_at, retention_at, start_three_voters, topics_at, WAIT,
};
use strata_tests::wait::{wait_for, wait_until};

fn block<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_voter_down_during_a_thousand_records_catches_up_through_a_snapshot() {
    const TOPICS: usize = 20;
    const ALTERATIONS: usize = 1_100;
    const WRITERS: usize = 8;
    let test_started = Instant::now();
    let mut cluster = start_three_voters();
    wait_for("the cluster forms", WAIT, || healthy(&cluster, None))
        .await
        .unwrap();
    block(|| cluster.kill(3)).unwrap();
    let snapshot_of_3 = cluster.data_dir(3).join(CONTROLLER_DIR).join(SNAPSHOT_FILE);
    assert!(
        !snapshot_of_3.exists(),
        "broker 3 never had a thousand entries"
    );
    let (leader, described) = wait_for("a leader among 1 and 2", WAIT, || async {
        let (leader, described) = leader_at(&cluster, 1).await?;
        ensure!(leader != 3, "3 is still named leader");
        anyhow::Ok((leader, described))
    })
    .await
    .unwrap();
    let first_index = described.last_log_index;

    let writes_started = Instant::now();
    let client = cluster.client_builder(&[1, 2]).build().await.unwrap();
    let topics: BTreeSet<String> = (0..TOPICS).map(|n| format!("snap-{n}")).collect();
    for topic in &topics {
        create_retrying(&client, topic, WAIT).await.unwrap();
    }
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let client = cluster.client_builder(&[1, 2]).build().await.unwrap();
        writers.push(tokio::spawn(async move {
            for n in (writer..ALTERATIONS).step_by(WRITERS) {
                let retention_ms = 3_600_000 + n as u64;
                alter_retrying(&client, &format!("snap-{}", n % TOPICS), retention_ms).await?;
            }
            anyhow::Ok(())
        }));
    }
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    let writes_took = writes_started.elapsed();

    let purged = cluster
        .data_dir(leader)
        .join(CONTROLLER_DIR)
        .join("purged.json");
    wait_until("the leader purges its log behind a snapshot", WAIT, || {
        let exists = purged.exists();
        async move { exists }
    })
    .await
    .unwrap();
    let (_, described) = leader_at(&cluster, leader).await.unwrap();
    let entries_written = described.last_log_index - first_index;
    assert!(
        entries_written >= 1_000,
        "{entries_written} Raft entries written while broker 3 was down"
    );
    eprintln!(
        "{TOPICS} creations and {ALTERATIONS} config changes ({entries_written} Raft entries) \
         with {WRITERS} writers took {writes_took:?}"
    );

    block(|| cluster.restart(3)).unwrap();
    let restarted_at = Instant::now();
    let version = wait_for("broker 3 catches up with the leader", WAIT, || async {
        let (leader_now, _) = leader_at(&cluster, 1).await?;
        let (_, by_leader) = leader_at(&cluster, leader_now).await?;
        let three_unfenced = by_leader
            .brokers
            .iter()
            .any(|broker| broker.node_id == 3 && !broker.fenced);
        ensure!(three_unfenced, "broker 3 is not unfenced yet");
        let by_three = describe_at(&cluster, 3).await?;
        ensure!(
            by_three.metadata_version == by_leader.metadata_version,
            "broker 3 is at version {}, the leader {leader_now} at {}",
            by_three.metadata_version,
            by_leader.metadata_version
        );
        anyhow::Ok(by_three.metadata_version)
    })
    .await
    .unwrap();
    eprintln!(
        "broker 3 caught up to metadata version {version} {:?} after its restart",
        restarted_at.elapsed()
    );
    let known_to_3 = topics_at(&cluster, 3).await.unwrap();
    assert!(known_to_3.is_superset(&topics), "{known_to_3:?}");
    let retention_at_3 = retention_at(&cluster, 3, &topics).await.unwrap();
    let retention_at_leader = retention_at(&cluster, leader, &topics).await.unwrap();
    assert_eq!(retention_at_3, retention_at_leader);
    assert!(
        snapshot_of_3.exists(),
        "broker 3 caught up without installing a snapshot"
    );
    block(|| cluster.kill(3)).unwrap();
    block(|| cluster.restart(3)).unwrap();
    let after_restart = wait_for("broker 3 answers again", WAIT, || describe_at(&cluster, 3))
        .await
        .unwrap();
    assert!(
        after_restart.metadata_version >= version,
        "broker 3 came back at version {}, below {version}",
        after_restart.metadata_version
    );
    let known_to_3 = topics_at(&cluster, 3).await.unwrap();
    assert!(known_to_3.is_superset(&topics), "{known_to_3:?}");
    assert_eq!(
        retention_at(&cluster, 3, &topics).await.unwrap(),
        retention_at_leader
    );
    eprintln!(
        "broker 3 restarted at metadata version {}; test took {:?}",
        after_restart.metadata_version,
        test_started.elapsed()
    );
}
