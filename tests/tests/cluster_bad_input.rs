//! Bad input to the controller quorum of three real brokers (issue 19) is a typed error
//! that writes nothing:
//!
//! - a replication factor above the live brokers (four of three, then three with one
//!   broker down) is `INVALID_REPLICATION_FACTOR`, no node knows the topic and no node's
//!   metadata version moves; two replicas still fit, on the live brokers;
//! - a reassignment to an unknown broker is `INVALID_REPLICA_ASSIGNMENT` (client and
//!   CLI), and a dry run answers the plan and changes nothing; the real reassignment then
//!   adds the replica, the ISR staying the leader alone;
//! - a preferred election on a balanced cluster is "not needed" for every partition and
//!   moves no metadata version;
//! - a broker given a bad `--controller-voters` stops at once, names the problem and
//!   creates no data directory.
//!
//! "Nothing written" is checked as every node's own metadata version, asked of that node
//! over raw gRPC, staying where it settled before the request. Every wait is bounded
//! ([`WAIT`]) and only bounds a hang. The clusters kill their brokers when dropped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::process::Command;

use strata_client::{ErrorCode, NewTopic};
use strata_proto::api::v1::PartitionMetadata;
use strata_tests::broker_process::{free_port, workspace_binary};
use strata_tests::cli_runner::{json_of, run_bounded, strata, text};
use strata_tests::cluster::Cluster;
use strata_tests::cluster_views::{
    create_rf1_topic, describe_at, describe_until, formed, owned_by, partitions_at,
    partitions_until, start_three_voters, WAIT,
};
use strata_tests::wait::wait_for;

const PARTITIONS: i32 = 6;

/// Waits until every one of `nodes` has applied the same metadata version, and returns it.
async fn settled_metadata_version(cluster: &Cluster, nodes: &[u8]) -> i64 {
    wait_for("every node at one metadata version", WAIT, || async {
        let mut versions = BTreeSet::new();
        for &node in nodes {
            versions.insert(describe_at(cluster, node).await?.metadata_version);
        }
        match Vec::from_iter(versions).as_slice() {
            [version] => Ok(*version),
            versions => Err(anyhow::anyhow!("versions differ: {versions:?}")),
        }
    })
    .await
    .unwrap()
}

async fn assert_metadata_version(cluster: &Cluster, nodes: &[u8], expected: i64) {
    for &node in nodes {
        let description = describe_at(cluster, node).await.unwrap();
        assert_eq!(description.metadata_version, expected, "{description:?}");
    }
}

/// Creating `topic` with `replication_factor` through the client is refused as
/// `INVALID_REPLICATION_FACTOR`, and no node knows the topic afterwards.
async fn assert_replication_factor_refused(
    cluster: &Cluster,
    nodes: &[u8],
    topic: &str,
    replication_factor: i32,
) {
    let admin = cluster.client(nodes[0]).await.unwrap().admin();
    let new_topic = NewTopic::new(topic)
        .partitions(3)
        .replication_factor(replication_factor);
    let error = admin.create_topic(new_topic).await.unwrap_err();
    assert_eq!(
        error.code(),
        Some(ErrorCode::InvalidReplicationFactor),
        "{error}"
    );
    let topics = admin.list_topics().await.unwrap();
    assert!(
        topics.iter().all(|listed| listed.name != topic),
        "{topics:?}"
    );
    for &node in nodes {
        let unknown = partitions_at(cluster, node, topic).await.unwrap_err();
        assert!(
            unknown.to_string().contains("does not know"),
            "node {node}: {unknown}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replication_factor_above_the_live_brokers_is_refused_and_writes_nothing() {
    let mut cluster = start_three_voters();
    let leader = formed(&cluster).await;
    let all = cluster.nodes();
    let version = settled_metadata_version(&cluster, &all).await;
    assert_replication_factor_refused(&cluster, &all, "too-wide", 4).await;
    assert_metadata_version(&cluster, &all, version).await;

    // One broker down: three replicas no longer fit.
    let victim = all.iter().copied().find(|n| *n != leader).unwrap();
    let survivors: Vec<u8> = all.iter().copied().filter(|n| *n != victim).collect();
    cluster.kill(victim).unwrap();
    for &node in &survivors {
        describe_until(&cluster, node, "the killed broker fenced", |d| {
            d.brokers
                .iter()
                .all(|b| b.fenced == (b.node_id == i32::from(victim)))
        })
        .await;
    }
    let version = settled_metadata_version(&cluster, &survivors).await;
    assert_replication_factor_refused(&cluster, &survivors, "too-wide", 3).await;
    assert_metadata_version(&cluster, &survivors, version).await;

    // Two replicas still fit, on the live brokers: the refusals were about the count.
    let admin = cluster.client(leader).await.unwrap().admin();
    let fits = NewTopic::new("fits").partitions(2).replication_factor(2);
    admin.create_topic(fits).await.unwrap();
    let live: BTreeSet<i32> = survivors.iter().map(|n| i32::from(*n)).collect();
    let described = partitions_at(&cluster, leader, "fits").await.unwrap();
    for partition in &described {
        let replicas: BTreeSet<i32> = partition.replicas.iter().copied().collect();
        assert_eq!(replicas, live, "only live brokers: {described:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reassignment_to_an_unknown_broker_is_refused_and_a_dry_run_changes_nothing() {
    let cluster = start_three_voters();
    formed(&cluster).await;
    const TOPIC: &str = "moves";
    let replicas = create_rf1_topic(&cluster, 1, TOPIC, PARTITIONS).await;
    let partition = owned_by(&replicas, 1)[0];
    let all = cluster.nodes();
    let version = settled_metadata_version(&cluster, &all).await;
    let unchanged = |all: &[PartitionMetadata]| {
        all.len() == replicas.len()
            && all.iter().all(|p| {
                p.replicas == vec![replicas[&p.partition]]
                    && p.isr == p.replicas
                    && p.leader == p.replicas[0]
            })
    };
    let assert_unchanged = || async {
        for node in cluster.nodes() {
            let described = partitions_at(&cluster, node, TOPIC).await.unwrap();
            assert!(unchanged(&described), "node {node}: {described:?}");
        }
        assert_metadata_version(&cluster, &all, version).await;
    };

    // Broker 9 is not registered: through the client…
    let admin = cluster.client(2).await.unwrap().admin();
    let error = admin
        .reassign_partitions([(TOPIC, partition, vec![1, 9])], false)
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some(ErrorCode::InvalidReplicaAssignment),
        "{error}"
    );
    assert!(error.to_string().contains("broker 9"), "{error}");
    // …and through the CLI.
    let number = partition.to_string();
    let reassign = |extra: &[&'static str]| -> Vec<&str> {
        let mut args = vec!["partition", "reassign", "--topic", TOPIC];
        args.extend(["--partition", number.as_str()]);
        args.extend(extra);
        args
    };
    let refused = strata(&cluster, 3, &reassign(&["--replicas", "1,9"]), "");
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("broker 9"), "{stderr}");
    assert!(stderr.contains("(INVALID_REPLICA_ASSIGNMENT)"), "{stderr}");
    assert_unchanged().await;

    // A dry run of a valid one answers what would change, and changes nothing.
    let mut args = vec!["--format", "json"];
    args.extend(reassign(&["--replicas", "1,2", "--dry-run"]));
    let dry_run = json_of(&strata(&cluster, 2, &args, ""));
    assert_eq!(dry_run["dry_run"], true, "{dry_run}");
    let [planned] = dry_run["partitions"].as_array().unwrap().as_slice() else {
        panic!("one partition: {dry_run}");
    };
    let expected = serde_json::json!({
        "topic": TOPIC, "partition": partition, "current_replicas": [1],
        "target_replicas": [1, 2], "leader": 1, "isr": [1],
    });
    for (field, value) in expected.as_object().unwrap() {
        assert_eq!(&planned[field], value, "{field}: {dry_run}");
    }
    assert_unchanged().await;

    // The real one adds the replica. It joins the ISR once it has caught up with the
    // leader, which for this empty partition may already have happened by the time a
    // node is asked: the ISR is the leader alone or both.
    let mut args = vec!["--format", "json"];
    args.extend(reassign(&["--replicas", "1,2"]));
    let applied = json_of(&strata(&cluster, 2, &args, ""));
    assert_eq!(applied["dry_run"], false, "{applied}");
    let [done] = applied["partitions"].as_array().unwrap().as_slice() else {
        panic!("one partition: {applied}");
    };
    for (field, value) in expected.as_object().unwrap() {
        assert_eq!(&done[field], value, "{field}: {applied}");
    }
    for node in cluster.nodes() {
        let moved = partitions_until(&cluster, node, TOPIC, "the new replica list", |all| {
            all.iter()
                .any(|p| p.partition == partition && p.replicas == vec![1, 2])
        })
        .await;
        for described in &moved {
            if described.partition == partition {
                assert_eq!(described.leader, 1, "node {node}: {moved:?}");
                assert!(
                    described.isr == vec![1] || described.isr == vec![1, 2],
                    "node {node}: {moved:?}"
                );
            } else {
                assert_eq!(described.replicas, vec![replicas[&described.partition]]);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preferred_election_on_a_balanced_cluster_is_not_needed() {
    let cluster = start_three_voters();
    formed(&cluster).await;
    const TOPIC: &str = "balanced";
    create_rf1_topic(&cluster, 1, TOPIC, PARTITIONS).await;
    let all = cluster.nodes();
    let version = settled_metadata_version(&cluster, &all).await;

    let args = ["partition", "elect-leader", "--all-topics"];
    let elected = strata(&cluster, 2, &args, "");
    let (stdout, stderr) = (text(&elected.stdout), text(&elected.stderr));
    assert_eq!(elected.status.code(), Some(0), "{stdout}{stderr}");
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["TOPIC", "PARTITION", "LEADER", "EPOCH", "STATUS"]);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let partitions: Vec<String> = rows.iter().map(|row| row[1].to_owned()).collect();
    assert_eq!(partitions, ["0", "1", "2", "3", "4", "5"], "{stdout}");
    for row in &rows {
        assert_eq!((row[0], row[4]), (TOPIC, "ELECTION_NOT_NEEDED"), "{stdout}");
    }
    assert!(!stderr.contains("error"), "{stderr}");
    assert!(
        stderr.contains("6 partitions: 0 elected, 6 already led by the preferred replica"),
        "{stderr}"
    );
    assert_metadata_version(&cluster, &all, version).await;
}

#[test]
fn a_bad_controller_voters_flag_stops_the_start_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let own = format!("127.0.0.1:{port}");
    let cases = [
        (format!("1@{own},1@127.0.0.2:{port}"), "names voter 1 twice"),
        (
            "1@127.0.0.1".to_owned(),
            "entry \"1@127.0.0.1\" is not <id>@<host>:<port>",
        ),
        (
            format!("x@h:1,1@{own}"),
            "entry \"x@h:1\" is not <id>@<host>:<port>",
        ),
        (
            format!("2@127.0.0.2:{port},3@127.0.0.3:{port}"),
            "does not name this broker (--node-id 1)",
        ),
    ];
    for (number, (voters, problem)) in cases.iter().enumerate() {
        let data = dir.path().join(format!("data-{number}"));
        let mut command = Command::new(workspace_binary("strata-broker"));
        command
            .args(["--node-id", "1", "--listen", &own, "--data-dir"])
            .arg(&data)
            .args(["--controller-voters", voters])
            .env("RUST_LOG", "info")
            .env_remove("STRATA_CONFIG")
            .env("STRATA_LISTENERS__ADMIN", "127.0.0.1:0");
        let output = run_bounded(command, "");
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{voters}: {output:?}");
        assert!(stderr.contains(problem), "{voters}: {stderr}");
        let empty = std::fs::read_dir(&data).map_or(true, |mut entries| entries.next().is_none());
        assert!(empty, "{voters}: {} was written", data.display());
    }
}
