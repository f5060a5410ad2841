//! `min_insync_replicas` (Kafka's `min.insync.replicas`) on real brokers (issue 20): the
//! ISR size below which a leader refuses `acks=all` writes with `NOT_ENOUGH_REPLICAS`.
//!
//! Five brokers, each a controller voter, so that two of them can die while the other
//! three keep a quorum (with three voters, killing both followers of a partition would
//! also stop the controller, and no ISR change could be committed). Every broker runs
//! with `--replica-lag-time-max-ms 2000`. Two RF-3 topics of one partition: `default`
//! without overrides (min ISR 2, the default from RF 3 on) and `one` created by the CLI
//! with `--config min_insync_replicas=1`.
//!
//! - (a) `describe` shows the effective value and its source; a value that is not an
//!   integer ≥ 1, or above the replication factor, is `INVALID_CONFIG` and creates or
//!   changes nothing.
//! - (b) both followers of `default` SIGKILLed: once its ISR is the leader alone, an
//!   `acks=all` produce answers `NOT_ENOUGH_REPLICAS` (the wire's typed code) and an
//!   `acks=1` produce is accepted; `one` still accepts `acks=all`.
//! - (c) the followers restarted, the ISR grows back to three and `acks=all` is accepted
//!   again.
//! - (d) configs altered while the leader leads take effect without a restart:
//!   `min_insync_replicas=3` refuses `acks=all` once one follower is down; deleting the
//!   override (back to 2) accepts it again.
//!
//! Every wait is bounded ([`WAIT`]) and polls the metadata; the verdicts are the codes
//! the broker answers, never how long anything took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use common::{produce_once, produce_request, values_batch, Client};
use strata_proto::api::v1::{CreateTopicsRequest, ErrorCode, ProduceResponse, TopicSpec};
use strata_tests::cli_runner::{json_of, strata, text};
use strata_tests::cluster::{Cluster, ClusterOptions};
use strata_tests::cluster_views::{
    broker_states, connect, describe_until, partitions_until, three_voters, WAIT,
};
use strata_tests::wait::wait_for;

const DEFAULT: &str = "default";
const ONE: &str = "one";

/// [`three_voters`]' fast heartbeats and sessions, on five voters, with a 2 s lag limit.
fn five_voters() -> ClusterOptions {
    let mut options = three_voters();
    options.nodes = 5;
    options
        .extra_args
        .extend(["--replica-lag-time-max-ms", "2000"].map(str::to_owned));
    options
}

async fn client(cluster: &Cluster, node: u8) -> Client {
    connect(cluster, node)
        .await
        .unwrap_or_else(|error| panic!("{error:#}"))
}

/// Produces one record to partition 0 of `topic` through `node` with `acks` (-1 or 1).
async fn produce(cluster: &Cluster, node: u8, topic: &str, acks: i32) -> ProduceResponse {
    let mut request = produce_request(1, topic, 0, values_batch(&["v"]));
    request.acks = acks;
    produce_once(&mut client(cluster, node).await, request)
        .await
        .unwrap_or_else(|status| panic!("produce to {topic} through node {node}: {status}"))
}

fn code(response: &ProduceResponse) -> ErrorCode {
    response
        .error
        .as_ref()
        .map_or(ErrorCode::None, |error| error.error_code())
}

/// An `acks=all` produce through the leader `node` answers `expected`. The metadata a
/// node serves is the controller's newest image, which the node applies to its
/// partitions right after; in that short window the answer is the one the ISR before
/// the change gives, so other answers are tolerated until `expected` comes (bounded).
async fn acks_all_answers(cluster: &Cluster, node: u8, topic: &str, expected: ErrorCode) {
    let what = format!("acks=all to {topic} through node {node} answers {expected:?}");
    wait_for(&what, WAIT, || async {
        let response = produce(cluster, node, topic, -1).await;
        let answered = code(&response);
        if answered == expected {
            return Ok(());
        }
        let in_transition = [
            ErrorCode::None,
            ErrorCode::NotEnoughReplicas,
            ErrorCode::NotEnoughReplicasAfterAppend,
        ];
        assert!(
            in_transition.contains(&answered),
            "{what}: unexpected {response:?}"
        );
        Err(anyhow::anyhow!("answered {response:?}"))
    })
    .await
    .unwrap_or_else(|error| panic!("{error:#}"));
}

/// The partition of `topic` as `node` shows it once its ISR is exactly `isr` (any order).
async fn isr_until(cluster: &Cluster, node: u8, topic: &str, isr: &[i32]) -> (i32, Vec<i32>) {
    let mut wanted = isr.to_vec();
    wanted.sort_unstable();
    let what = format!("{topic}-0 with the ISR {wanted:?}");
    let partitions = partitions_until(cluster, node, topic, &what, |all| {
        let mut shown = all.first().map(|p| p.isr.clone()).unwrap_or_default();
        shown.sort_unstable();
        all.len() == 1 && all[0].leader >= 1 && shown == wanted
    })
    .await;
    (partitions[0].leader, partitions[0].replicas.clone())
}

/// `min_insync_replicas` of `topic` as `strata topic describe --format json` shows it:
/// `(value, source)`.
fn described_min_insync(cluster: &Cluster, node: u8, topic: &str) -> (String, String) {
    let output = strata(
        cluster,
        node,
        &["topic", "describe", topic, "--format", "json"],
        "",
    );
    let description = json_of(&output);
    let configs = description["configs"].as_array().expect("a configs list");
    let entry = configs
        .iter()
        .find(|entry| entry["key"] == "min_insync_replicas")
        .unwrap_or_else(|| panic!("no min_insync_replicas in {description}"));
    let field = |name: &str| entry[name].as_str().map(str::to_owned);
    (field("value").unwrap(), field("source").unwrap())
}

/// Runs `strata ARGS` through `node` and checks it fails with `INVALID_CONFIG`.
fn refused_as_invalid_config(cluster: &Cluster, node: u8, args: &[&str]) {
    let output = strata(cluster, node, args, "");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(stderr.contains("INVALID_CONFIG"), "{args:?}: {stderr}");
}

fn ok(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acks_all_is_refused_below_min_insync_replicas_and_accepted_again_once_the_isr_grows() {
    let mut cluster = tokio::task::block_in_place(|| Cluster::start(five_voters()))
        .unwrap_or_else(|error| panic!("start five voters: {error:#}"));
    let five_live: Vec<(i32, bool, u64)> = (1..=5).map(|id| (id, false, 1)).collect();
    describe_until(
        &cluster,
        1,
        "five live brokers and a controller",
        |described| broker_states(described) == five_live && described.controller_leader >= 1,
    )
    .await;

    // (a) `default` through the API without configs; `one` and refusals through the CLI.
    let request = CreateTopicsRequest {
        topics: vec![TopicSpec {
            name: DEFAULT.to_owned(),
            partitions: 1,
            replication_factor: 3,
            configs: HashMap::new(),
        }],
        validate_only: false,
    };
    let response = client(&cluster, 1)
        .await
        .create_topics(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        response.results[0]
            .error
            .as_ref()
            .map_or(0, |error| error.code),
        0,
        "{response:?}"
    );
    let create_one = [
        "topic",
        "create",
        ONE,
        "-p",
        "1",
        "-r",
        "3",
        "--config",
        "min_insync_replicas=1",
    ];
    ok(&strata(&cluster, 1, &create_one, ""));
    for bad in [
        "min.insync.replicas=0",
        "min_insync_replicas=4",
        "min_insync_replicas=two",
    ] {
        refused_as_invalid_config(
            &cluster,
            1,
            &["topic", "create", "refused", "-r", "3", "-c", bad],
        );
    }
    let topics = json_of(&strata(
        &cluster,
        1,
        &["topic", "list", "--format", "json"],
        "",
    ));
    let names: Vec<&str> = topics
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|topic| topic["name"].as_str())
        .collect();
    assert!(!names.contains(&"refused"), "{topics}");

    let partitions = partitions_until(&cluster, 1, DEFAULT, "default-0 led", |all| {
        all.len() == 1 && all[0].leader >= 1 && all[0].replicas.len() == 3
    })
    .await;
    let replicas = partitions[0].replicas.clone();
    let (leader, _) = isr_until(&cluster, 1, DEFAULT, &replicas).await;
    let partitions = partitions_until(&cluster, 1, ONE, "one-0 led", |all| {
        all.len() == 1 && all[0].leader >= 1 && all[0].replicas.len() == 3
    })
    .await;
    isr_until(&cluster, 1, ONE, &partitions[0].replicas).await;
    let leader_node = u8::try_from(leader).unwrap();
    assert_eq!(
        described_min_insync(&cluster, leader_node, DEFAULT),
        ("2".to_owned(), "DEFAULT".to_owned())
    );
    assert_eq!(
        described_min_insync(&cluster, leader_node, ONE),
        ("1".to_owned(), "TOPIC".to_owned())
    );
    refused_as_invalid_config(
        &cluster,
        leader_node,
        &[
            "topic",
            "alter-config",
            DEFAULT,
            "--set",
            "min_insync_replicas=4",
        ],
    );
    assert_eq!(
        described_min_insync(&cluster, leader_node, DEFAULT),
        ("2".to_owned(), "DEFAULT".to_owned()),
        "a refused alter changes nothing"
    );
    acks_all_answers(&cluster, leader_node, DEFAULT, ErrorCode::None).await;

    // (b) both followers of `default` die; the ISR shrinks to the leader alone.
    let followers: Vec<u8> = replicas
        .iter()
        .filter(|id| **id != leader)
        .map(|id| u8::try_from(*id).unwrap())
        .collect();
    for follower in &followers {
        cluster.kill(*follower).unwrap();
    }
    isr_until(&cluster, leader_node, DEFAULT, &[leader]).await;
    acks_all_answers(&cluster, leader_node, DEFAULT, ErrorCode::NotEnoughReplicas).await;
    let refused = produce(&cluster, leader_node, DEFAULT, -1).await;
    assert_eq!(code(&refused), ErrorCode::NotEnoughReplicas, "{refused:?}");
    assert!(refused.error.as_ref().unwrap().retriable, "{refused:?}");
    let acks_one = produce(&cluster, leader_node, DEFAULT, 1).await;
    assert_eq!(code(&acks_one), ErrorCode::None, "acks=1: {acks_one:?}");

    // `one` (min ISR 1) still takes acks=all, on whichever live replica leads it now.
    let alive: Vec<u8> = cluster
        .nodes()
        .into_iter()
        .filter(|node| !followers.contains(node))
        .collect();
    let dead: Vec<i32> = followers.iter().map(|node| i32::from(*node)).collect();
    let partitions = partitions_until(
        &cluster,
        leader_node,
        ONE,
        "one-0 without dead ISR members",
        |all| {
            all.len() == 1
                && all[0].leader >= 1
                && !dead.contains(&all[0].leader)
                && all[0].isr.iter().all(|id| !dead.contains(id))
        },
    )
    .await;
    let one_leader = u8::try_from(partitions[0].leader).unwrap();
    assert!(alive.contains(&one_leader));
    acks_all_answers(&cluster, one_leader, ONE, ErrorCode::None).await;

    // (c) the followers come back, catch up and rejoin: acks=all is accepted again.
    for follower in &followers {
        cluster.restart(*follower).unwrap();
    }
    isr_until(&cluster, leader_node, DEFAULT, &replicas).await;
    acks_all_answers(&cluster, leader_node, DEFAULT, ErrorCode::None).await;

    // (d) altered through the leader, which applies the change before the CLI returns:
    // the very next produce is checked against it, without a restart.
    ok(&strata(
        &cluster,
        leader_node,
        &[
            "topic",
            "alter-config",
            DEFAULT,
            "--set",
            "min.insync.replicas=3",
        ],
        "",
    ));
    assert_eq!(
        described_min_insync(&cluster, leader_node, DEFAULT),
        ("3".to_owned(), "TOPIC".to_owned())
    );
    let produced = produce(&cluster, leader_node, DEFAULT, -1).await;
    assert_eq!(code(&produced), ErrorCode::None, "ISR 3 ≥ 3: {produced:?}");
    cluster.kill(followers[0]).unwrap();
    let remaining: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|id| *id != i32::from(followers[0]))
        .collect();
    isr_until(&cluster, leader_node, DEFAULT, &remaining).await;
    acks_all_answers(&cluster, leader_node, DEFAULT, ErrorCode::NotEnoughReplicas).await;
    ok(&strata(
        &cluster,
        leader_node,
        &[
            "topic",
            "alter-config",
            DEFAULT,
            "--delete",
            "min_insync_replicas",
        ],
        "",
    ));
    let produced = produce(&cluster, leader_node, DEFAULT, -1).await;
    assert_eq!(
        code(&produced),
        ErrorCode::None,
        "back to the default 2, ISR 2: {produced:?}"
    );
}
