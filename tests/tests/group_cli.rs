//! `strata group list|describe|seek|delete` against a real one-node broker (issue 21):
//! describe shows each partition's committed offset, log end and lag, also while a
//! producer writes; a seek without `--execute` changes nothing (committed offsets read
//! before and after), with it moves them; a group with live members is neither moved nor
//! deleted, and says why. Offsets are committed with the admin client's administrative
//! commit; the live member is a raw `ConsumerGroupHeartbeat` join. `strata consume -g`
//! commits exactly what it printed, a second run goes on from there, and Ctrl-C commits,
//! leaves the group at once and exits 0. On three brokers, a CLI that knows one broker
//! lists the groups every broker coordinates and reaches each group's coordinator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use strata_client::{Client, ErrorCode, NewTopic, OffsetSpec, Record};
use strata_proto::api::v1 as wire;
use strata_proto::api::v1::group_api_client::GroupApiClient;
use strata_tests::broker_process::{workspace_binary, BrokerProcess};
use strata_tests::cli_runner::{self, run_bounded, text};
use strata_tests::cluster::Cluster;
use strata_tests::cluster_views;

const TOPIC: &str = "orders";

/// `strata -b <broker> ARGS`, bounded; from an async test.
fn strata(broker: &BrokerProcess, args: &[&str]) -> Output {
    let mut command = Command::new(workspace_binary("strata"));
    command
        .arg("-b")
        .arg(broker.address().to_string())
        .args(["--timeout", "30s"])
        .args(args)
        .env_remove("STRATA_BROKERS")
        .env_remove("STRATA_FORMAT");
    tokio::task::block_in_place(|| run_bounded(command, ""))
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", text(&output.stdout)))
}

async fn client(broker: &BrokerProcess) -> Client {
    Client::builder()
        .brokers([broker.address().to_string()])
        .build()
        .await
        .unwrap()
}

/// Creates `orders` with two partitions and writes `per_partition` records to each.
async fn topic_with_records(client: &Client, per_partition: usize) {
    client
        .admin()
        .create_topic(NewTopic::new(TOPIC).partitions(2))
        .await
        .unwrap();
    produce(client, per_partition).await;
}

async fn produce(client: &Client, per_partition: usize) {
    let producer = client.producer().build().unwrap();
    for partition in 0..2 {
        for index in 0..per_partition {
            producer
                .send(
                    Record::to(TOPIC)
                        .partition(partition)
                        .value(format!("v{index}")),
                )
                .await
                .unwrap();
        }
    }
    producer.close().await.unwrap();
}

/// The group's committed offsets of `orders` 0 and 1 (`None`: nothing committed).
async fn committed(client: &Client, group: &str) -> Vec<Option<i64>> {
    let partitions = [(TOPIC.to_owned(), 0), (TOPIC.to_owned(), 1)];
    let offsets = client
        .admin()
        .committed_offsets(group, Some(&partitions))
        .await
        .unwrap();
    (0..2)
        .map(|partition| {
            offsets
                .iter()
                .find(|offset| offset.topic == TOPIC && offset.partition == partition)
                .and_then(|offset| offset.offset)
        })
        .collect()
}

async fn high_watermarks(client: &Client) -> Vec<i64> {
    let mut marks = Vec::new();
    for partition in 0..2 {
        let (offset, _) = client
            .admin()
            .list_offsets(TOPIC, partition, OffsetSpec::Latest)
            .await
            .unwrap();
        marks.push(offset);
    }
    marks
}

/// `(committed, log end, lag)` of `orders` 0 and 1 in `group describe --format json`.
fn described_partitions(described: &Value) -> Vec<(Option<i64>, Option<i64>, Option<i64>)> {
    let group = &described[0];
    (0..2)
        .map(|partition| {
            let row = group["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|row| row["topic"] == TOPIC && row["partition"] == partition)
                .unwrap_or_else(|| panic!("partition {partition} missing: {described}"));
            (
                row["current_offset"].as_i64(),
                row["log_end_offset"].as_i64(),
                row["lag"].as_i64(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_lag_and_seek_changes_offsets_only_with_execute() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &[]).unwrap();
    let client = client(&broker).await;
    topic_with_records(&client, 10).await;
    let results = client
        .admin()
        .alter_group_offsets("billing", [(TOPIC, 0, 3), (TOPIC, 1, 4)])
        .await
        .unwrap();
    assert!(
        results.iter().all(|result| result.result.is_ok()),
        "{results:?}"
    );
    assert_eq!(committed(&client, "billing").await, [Some(3), Some(4)]);

    // Describe: committed, log end and lag per partition, and the total.
    let described = json(&strata(
        &broker,
        &["group", "describe", "billing", "--format", "json"],
    ));
    assert_eq!(
        described_partitions(&described),
        [(Some(3), Some(10), Some(7)), (Some(4), Some(10), Some(6))]
    );
    assert_eq!(described[0]["total_lag"], 13);
    assert_eq!(described[0]["state"], "Empty");
    assert_eq!(described[0]["partitions"][0]["log_start_offset"], 0);
    let table = strata(&broker, &["group", "describe", "billing"]);
    assert!(table.status.success(), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    let header = table
        .lines()
        .position(|line| line.starts_with("TOPIC "))
        .unwrap_or_else(|| panic!("{table}"));
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(header + 1)
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            ["orders", "0", "3", "0", "10", "7", "-", "-", "-"],
            ["orders", "1", "4", "0", "10", "6", "-", "-", "-"]
        ],
        "{table}"
    );
    assert!(table.contains("TOTAL-LAG    13"), "{table}");

    // While a producer writes, each describe's log end lies between the high watermarks
    // read just before and just after it, and the lag follows it.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, stop) = (client.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                produce(&client, 5).await;
            }
        })
    };
    let mut seen_growth = false;
    for _ in 0..5 {
        let before = high_watermarks(&client).await;
        let described = json(&strata(
            &broker,
            &["group", "describe", "billing", "--format", "json"],
        ));
        let after = high_watermarks(&client).await;
        for (partition, (committed, log_end, lag)) in
            described_partitions(&described).into_iter().enumerate()
        {
            let log_end = log_end.unwrap();
            assert!(
                (before[partition]..=after[partition]).contains(&log_end),
                "partition {partition}: log end {log_end} outside [{}, {}]",
                before[partition],
                after[partition]
            );
            assert_eq!(lag, Some(log_end - committed.unwrap()));
            seen_growth |= log_end > 10;
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(seen_growth, "the producer never moved the log end");
    let ends = high_watermarks(&client).await;
    let described = json(&strata(
        &broker,
        &["group", "describe", "billing", "--format", "json"],
    ));
    assert_eq!(
        described_partitions(&described),
        [
            (Some(3), Some(ends[0]), Some(ends[0] - 3)),
            (Some(4), Some(ends[1]), Some(ends[1] - 4))
        ]
    );

    // A seek without --execute prints the plan and changes nothing.
    let dry = strata(&broker, &["group", "seek", "billing", "--to", "start"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(
        text(&dry.stderr).contains("dry run"),
        "{}",
        text(&dry.stderr)
    );
    let plan: Vec<Vec<String>> = text(&dry.stdout)
        .lines()
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .collect();
    assert_eq!(
        plan,
        [
            [
                "GROUP",
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "NEW-OFFSET"
            ],
            ["billing", "orders", "0", "3", "0"],
            ["billing", "orders", "1", "4", "0"]
        ]
    );
    let dry = json(&strata(
        &broker,
        &[
            "group", "seek", "billing", "--to", "end", "--format", "json",
        ],
    ));
    assert_eq!(dry[0]["new_offset"], ends[0]);
    assert!(dry[0].get("status").is_none(), "{dry}");
    assert_eq!(committed(&client, "billing").await, [Some(3), Some(4)]);

    // With --execute the offsets move: to an offset, by a shift, to a time.
    let moved = strata(
        &broker,
        &["group", "seek", "billing", "--to", "5", "--execute"],
    );
    assert!(moved.status.success(), "{}", text(&moved.stderr));
    assert!(text(&moved.stdout).lines().nth(1).unwrap().ends_with("OK"));
    assert_eq!(committed(&client, "billing").await, [Some(5), Some(5)]);
    let shifted = strata(
        &broker,
        &["group", "seek", "billing", "--shift-by", "-2", "--execute"],
    );
    assert!(shifted.status.success(), "{}", text(&shifted.stderr));
    assert_eq!(committed(&client, "billing").await, [Some(3), Some(3)]);
    let by_time = strata(
        &broker,
        &[
            "group",
            "seek",
            "billing",
            "--to",
            "@-1h",
            "--topics",
            TOPIC,
            "--execute",
        ],
    );
    assert!(by_time.status.success(), "{}", text(&by_time.stderr));
    assert_eq!(committed(&client, "billing").await, [Some(0), Some(0)]);
    // Beyond the log end: moved to the end, with a warning.
    let beyond = strata(
        &broker,
        &["group", "seek", "billing", "--to", "999999", "--execute"],
    );
    assert!(beyond.status.success(), "{}", text(&beyond.stderr));
    assert!(text(&beyond.stderr).contains("outside the log"));
    assert_eq!(
        committed(&client, "billing").await,
        [Some(ends[0]), Some(ends[1])]
    );

    // Listed, then deleted with its offsets.
    let listed = json(&strata(&broker, &["group", "list", "--format", "json"]));
    assert_eq!(
        listed,
        serde_json::json!([{"group": "billing", "state": "Empty", "members": 0, "coordinator": 1}])
    );
    let deleted = strata(&broker, &["group", "delete", "billing", "-y"]);
    assert!(deleted.status.success(), "{}", text(&deleted.stderr));
    assert_eq!(text(&deleted.stdout), "GROUP    STATUS\nbilling  OK\n");
    let gone = strata(&broker, &["group", "describe", "billing"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        text(&gone.stderr).contains("(GROUP_ID_NOT_FOUND)"),
        "{}",
        text(&gone.stderr)
    );
    let listed = json(&strata(&broker, &["groups", "--format", "json"]));
    assert_eq!(listed, serde_json::json!([]));
}

/// A member that joins `group` subscribed to `orders` with a raw heartbeat, and leaves.
struct RawMember {
    coordinator: GroupApiClient<tonic::transport::Channel>,
    group: String,
    member_id: String,
    member_epoch: i32,
}

impl RawMember {
    async fn join(broker: &BrokerProcess, group: &str) -> RawMember {
        let mut coordinator = GroupApiClient::connect(broker.url()).await.unwrap();
        for _ in 0..200 {
            let response = coordinator
                .consumer_group_heartbeat(wire::ConsumerGroupHeartbeatRequest {
                    group_id: group.to_owned(),
                    member_epoch: 0,
                    has_subscription: true,
                    subscribed_topic_names: vec![TOPIC.to_owned()],
                    has_owned: true,
                    client_id: "raw-member".to_owned(),
                    ..wire::ConsumerGroupHeartbeatRequest::default()
                })
                .await
                .unwrap()
                .into_inner();
            match response.error.as_ref().filter(|error| !error.is_none()) {
                None => {
                    return RawMember {
                        coordinator,
                        group: group.to_owned(),
                        member_id: response.member_id,
                        member_epoch: response.member_epoch,
                    }
                }
                Some(error) if error.retriable => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Some(error) => panic!("join refused: {error:?}"),
            }
        }
        panic!("the coordinator never accepted the join");
    }

    async fn leave(mut self) {
        let response = self
            .coordinator
            .consumer_group_heartbeat(wire::ConsumerGroupHeartbeatRequest {
                group_id: self.group.clone(),
                member_id: self.member_id.clone(),
                member_epoch: -1,
                ..wire::ConsumerGroupHeartbeatRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            response.error.as_ref().is_none_or(wire::Error::is_none),
            "leave refused: {:?} (epoch {})",
            response.error,
            self.member_epoch
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_with_live_members_is_neither_moved_nor_deleted() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &[]).unwrap();
    let client = client(&broker).await;
    topic_with_records(&client, 4).await;
    client
        .admin()
        .alter_group_offsets("live", [(TOPIC, 0, 2), (TOPIC, 1, 2)])
        .await
        .unwrap();
    let member = RawMember::join(&broker, "live").await;

    let listed = json(&strata(&broker, &["group", "list", "--format", "json"]));
    assert_eq!(listed[0]["group"], "live");
    assert_eq!(listed[0]["members"], 1);
    let described = json(&strata(
        &broker,
        &["group", "describe", "live", "--format", "json"],
    ));
    assert_eq!(
        described[0]["members"][0]["member_id"],
        member.member_id.as_str()
    );
    assert_eq!(described[0]["members"][0]["client_id"], "raw-member");

    // The seek plan is still shown, with a note; --execute is refused and moves nothing.
    let dry = strata(&broker, &["group", "seek", "live", "--to", "start"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(
        text(&dry.stderr).contains("live member"),
        "{}",
        text(&dry.stderr)
    );
    let refused = strata(
        &broker,
        &["group", "seek", "live", "--to", "start", "--execute"],
    );
    assert_eq!(refused.status.code(), Some(1));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.starts_with("error: ")
            && stderr.contains("(NON_EMPTY_GROUP)")
            && stderr.contains("hint: "),
        "{stderr}"
    );
    assert!(refused.stdout.is_empty());
    assert_eq!(committed(&client, "live").await, [Some(2), Some(2)]);
    // The coordinator refuses the administrative commit itself, as a typed error.
    let error = client
        .admin()
        .alter_group_offsets("live", [(TOPIC, 0, 0)])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::NonEmptyGroup), "{error}");
    assert_eq!(committed(&client, "live").await, [Some(2), Some(2)]);

    let refused = strata(&broker, &["group", "delete", "live", "-y"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        text(&refused.stdout),
        "GROUP  STATUS\nlive   NON_EMPTY_GROUP\n"
    );
    assert!(text(&refused.stderr).contains("(NON_EMPTY_GROUP)"));
    assert_eq!(committed(&client, "live").await, [Some(2), Some(2)]);

    // Once the member has left, both work.
    member.leave().await;
    let moved = strata(
        &broker,
        &["group", "seek", "live", "--to", "end", "--execute"],
    );
    assert!(moved.status.success(), "{}", text(&moved.stderr));
    assert_eq!(committed(&client, "live").await, [Some(4), Some(4)]);
    let deleted = strata(&broker, &["group", "delete", "live", "-y"]);
    assert!(deleted.status.success(), "{}", text(&deleted.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_group_input_is_refused_before_anything_changes() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &[]).unwrap();
    let empty = strata(&broker, &["group", "describe", ""]);
    assert_eq!(empty.status.code(), Some(2), "{}", text(&empty.stderr));
    let bad_target = strata(&broker, &["group", "seek", "g", "--to", "yesterday"]);
    assert_eq!(bad_target.status.code(), Some(2));
    let unknown = strata(&broker, &["group", "seek", "nobody", "--to", "start"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("--topics"),
        "{}",
        text(&unknown.stderr)
    );
    let client = client(&broker).await;
    let error = client.admin().describe_group("").await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::InvalidGroupId));
}

/// `(partition, offset)` of each `%p %o` line.
fn positions(stdout: &str) -> Vec<(i32, i64)> {
    stdout
        .lines()
        .map(|line| {
            let (partition, offset) = line.split_once(' ').unwrap();
            (partition.parse().unwrap(), offset.parse().unwrap())
        })
        .collect()
}

/// Per partition of `orders`, the offset after the last record printed (`None`: none).
fn next_offsets(printed: &[(i32, i64)]) -> Vec<Option<i64>> {
    (0..2)
        .map(|partition| {
            printed
                .iter()
                .filter(|(p, _)| *p == partition)
                .map(|(_, offset)| offset + 1)
                .max()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_with_a_group_commits_what_it_printed_and_the_next_run_goes_on() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &[]).unwrap();
    let client = client(&broker).await;
    topic_with_records(&client, 10).await;
    let consume = [
        "consume", TOPIC, "-g", "readers", "-n", "12", "-f", "%p %o\\n",
    ];

    let first = strata(&broker, &consume);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(text(&first.stderr).contains("joined group readers"));
    let first = positions(&text(&first.stdout));
    assert_eq!(first.len(), 12);
    // Exactly what was printed is committed, and the member left on exit.
    let mut expected = next_offsets(&first);
    assert_eq!(committed(&client, "readers").await, expected);
    let described = json(&strata(
        &broker,
        &["group", "describe", "readers", "--format", "json"],
    ));
    assert_eq!(described[0]["members"], serde_json::json!([]));
    let committed_total: i64 = expected.iter().flatten().sum();
    assert_eq!(described[0]["total_lag"], 20 - committed_total);

    // The next run starts where the first one stopped: together, every record once.
    let second = strata(
        &broker,
        &[
            "consume", TOPIC, "-g", "readers", "-n", "8", "-f", "%p %o\\n",
        ],
    );
    assert!(second.status.success(), "{}", text(&second.stderr));
    let second = positions(&text(&second.stdout));
    let mut all: Vec<(i32, i64)> = first.iter().chain(&second).copied().collect();
    all.sort_unstable();
    let every: Vec<(i32, i64)> = (0..2).flat_map(|p| (0..10).map(move |o| (p, o))).collect();
    assert_eq!(all, every);
    expected = vec![Some(10), Some(10)];
    assert_eq!(committed(&client, "readers").await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_commits_what_was_printed_leaves_the_group_and_exits_0() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &[]).unwrap();
    let client = client(&broker).await;
    topic_with_records(&client, 5).await;
    let output = tempfile::NamedTempFile::new().unwrap();
    let errors = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(workspace_binary("strata"))
        .arg("-b")
        .arg(broker.address().to_string())
        .args(["consume", TOPIC, "-g", "followers", "-f", "%p %o\\n"])
        .env_remove("STRATA_BROKERS")
        .stdin(std::process::Stdio::null())
        .stdout(output.reopen().unwrap())
        .stderr(errors.reopen().unwrap())
        .spawn()
        .unwrap();
    // Following the log: wait (bounded) until all 10 records are printed, then Ctrl-C.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(output.path())
        .unwrap()
        .lines()
        .count()
        < 10
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the consumer printed {:?}; stderr {:?}",
            std::fs::read_to_string(output.path()),
            std::fs::read_to_string(errors.path())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill only sends a signal to the child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = tokio::task::block_in_place(|| {
        for _ in 0..600 {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        None
    })
    .expect("the consumer did not exit within 30 s of Ctrl-C");
    let stderr = std::fs::read_to_string(errors.path()).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("interrupted: consumed 10 records"),
        "{stderr}"
    );
    let printed = positions(&std::fs::read_to_string(output.path()).unwrap());
    assert_eq!(next_offsets(&printed), [Some(5), Some(5)]);
    assert_eq!(committed(&client, "followers").await, [Some(5), Some(5)]);
    // It left: the group is empty at once, not after the session timeout.
    let listed = json(&strata(&broker, &["group", "list", "--format", "json"]));
    assert_eq!(listed[0]["group"], "followers");
    assert_eq!(listed[0]["members"], 0);
}

/// `strata -b <node> ARGS` against one node of a cluster.
fn strata_at(cluster: &Cluster, node: u8, args: &[&str]) -> Output {
    cli_runner::strata(
        cluster,
        node,
        &[&["--timeout", "30s"][..], args].concat(),
        "",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_three_brokers_every_group_is_listed_and_reached_through_any_broker() {
    let cluster = cluster_views::start_three_voters();
    cluster_views::formed(&cluster).await;
    let spec = wire::TopicSpec {
        name: TOPIC.to_owned(),
        partitions: 2,
        replication_factor: 3,
        configs: std::collections::HashMap::new(),
    };
    cluster_views::create_topic(&cluster, 1, spec).await;
    cluster_views::partitions_until(&cluster, 1, TOPIC, "leaders and full ISRs", |all| {
        all.len() == 2 && all.iter().all(|p| p.leader >= 1 && p.isr.len() == 3)
    })
    .await;
    let client = cluster
        .client_builder(&[1, 2, 3])
        .request_timeout(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    produce(&client, 10).await;

    // Groups until two brokers coordinate some: the CLI below only talks to node 1.
    let admin = client.admin();
    let mut coordinators = std::collections::BTreeMap::new();
    for index in 0..60 {
        let group = format!("g{index}");
        admin
            .alter_group_offsets(&group, [(TOPIC, 0, 3), (TOPIC, 1, 4)])
            .await
            .unwrap();
        let coordinator = admin.describe_group(&group).await.unwrap().coordinator;
        coordinators.insert(group, coordinator);
        let distinct: std::collections::BTreeSet<i32> = coordinators.values().copied().collect();
        if distinct.len() >= 2 && coordinators.len() >= 3 {
            break;
        }
    }
    let elsewhere = coordinators
        .iter()
        .find(|(_, coordinator)| **coordinator != 1)
        .map(|(group, _)| group.clone())
        .expect("some group coordinated by broker 2 or 3");

    let listed = json(&strata_at(
        &cluster,
        1,
        &["group", "list", "--format", "json"],
    ));
    let listed: std::collections::BTreeMap<String, i64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|group| {
            (
                group["group"].as_str().unwrap().to_owned(),
                group["coordinator"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected: std::collections::BTreeMap<String, i64> = coordinators
        .iter()
        .map(|(group, coordinator)| (group.clone(), i64::from(*coordinator)))
        .collect();
    assert_eq!(listed, expected);

    let described = json(&strata_at(
        &cluster,
        1,
        &["group", "describe", &elsewhere, "--format", "json"],
    ));
    assert_eq!(
        described_partitions(&described),
        [(Some(3), Some(10), Some(7)), (Some(4), Some(10), Some(6))]
    );
    let moved = strata_at(
        &cluster,
        1,
        &["group", "seek", &elsewhere, "--to", "end", "--execute"],
    );
    assert!(moved.status.success(), "{}", text(&moved.stderr));
    assert_eq!(committed(&client, &elsewhere).await, [Some(10), Some(10)]);
    let deleted = strata_at(&cluster, 1, &["group", "delete", &elsewhere, "-y"]);
    assert!(deleted.status.success(), "{}", text(&deleted.stderr));
    let listed = json(&strata_at(&cluster, 1, &["groups", "--format", "json"]));
    assert_eq!(listed.as_array().unwrap().len(), coordinators.len() - 1);
}
