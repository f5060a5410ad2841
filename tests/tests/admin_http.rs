//! The admin HTTP listener of a real `strata-broker`: `/healthz` answers 200, `/readyz`
//! answers 200 once the broker serves and 503 `shutting_down` after SIGTERM while
//! a connection still drains, 503 `booting` while no controller quorum exists, `/metrics` counts the records produced to a topic and shows
//! the produce latency histogram with its buckets, a group's lag, and `strata-broker probe --ready`
//! exits 0 against the running broker and 1 against a closed port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{bounded, connect, create_topic, produce_ok, start_broker, values_batch, WAIT};
use strata_broker::admin::probe::{self, Answer};
use strata_proto::api::v1::group_api_client::GroupApiClient;
use strata_proto::api::v1::{
    ErrorCode, FindCoordinatorRequest, OffsetCommitPartition, OffsetCommitRequest,
    OffsetCommitTopic,
};
use strata_tests::broker_process::{free_port, workspace_binary, BrokerOptions, BrokerProcess};

const TOPIC: &str = "t";

/// `GET path` on the admin listener, reading up to 4 MiB.
fn get(admin: &str, path: &str) -> Answer {
    probe::get_within(admin, path, 4 << 20)
        .unwrap_or_else(|error| panic!("GET {path} on {admin}: {error}"))
}

/// Polls `/readyz` until it answers 200 (bounded by [`WAIT`]).
fn wait_ready(admin: &str) -> Answer {
    let started = Instant::now();
    loop {
        let answer = get(admin, "/readyz");
        if answer.status == 200 || started.elapsed() > WAIT {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn probe_ready(admin: &str) -> std::process::Output {
    Command::new(workspace_binary("strata-broker"))
        .args(["probe", "--ready", "--admin-address", admin])
        .output()
        .expect("run strata-broker probe")
}

/// The value of the sample line `series` (name and labels exactly) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Checks `text` against the Prometheus text format and Strata's naming rules: every line
/// is a `# HELP`, a `# TYPE` or a sample `name{labels} value`; every sample belongs to a
/// family typed before it; names start with `strata_`; counters end in `_total`; every
/// `_seconds` family is a histogram with `_bucket`, `_sum` and `_count` samples.
fn check_exposition(text: &str) {
    use std::collections::BTreeMap;
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples: Vec<String> = Vec::new();
    for line in text.lines().filter(|line| !line.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "{line}"
            );
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment {line}");
        let (series, value) = line.rsplit_once(' ').expect("sample value");
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "{line}"
        );
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
            "{line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line}"
            );
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|family| types.get(*family).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "{line}: no TYPE before it");
        samples.push(name.to_owned());
    }
    for (family, kind) in &types {
        assert!(family.starts_with("strata_"), "{family}");
        if kind == "counter" {
            assert!(family.ends_with("_total"), "counter {family}");
        }
        if family.ends_with("_seconds") {
            assert_eq!(kind, "histogram", "{family}");
            for suffix in ["_bucket", "_sum", "_count"] {
                assert!(
                    samples.contains(&format!("{family}{suffix}")),
                    "{family}{suffix}"
                );
            }
        }
    }
}

/// Commits `offset` of partition 0 of [`TOPIC`] for `group` as an administrative commit
/// (no member), asking again while `__consumer_offsets` is created and loaded.
async fn commit_offset(broker: &BrokerProcess, group: &str, offset: i64) {
    let channel = tonic::transport::Channel::from_shared(broker.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut groups = GroupApiClient::new(channel);
    let request = OffsetCommitRequest {
        group_id: group.to_owned(),
        member_id: String::new(),
        member_epoch: -1,
        topics: vec![OffsetCommitTopic {
            topic: TOPIC.to_owned(),
            partitions: vec![OffsetCommitPartition {
                partition: 0,
                offset,
                leader_epoch: -1,
                metadata: String::new(),
            }],
        }],
    };
    let started = Instant::now();
    loop {
        let response = bounded("OffsetCommit", groups.offset_commit(request.clone()))
            .await
            .unwrap()
            .into_inner();
        let error = response.error.as_ref().map_or(0, |error| error.code);
        if error == ErrorCode::None as i32 {
            let partition_error = &response.topics[0].partitions[0].error;
            assert_eq!(
                partition_error.as_ref().map_or(0, |error| error.code),
                ErrorCode::None as i32,
                "{response:?}"
            );
            return;
        }
        assert!(started.elapsed() < WAIT, "OffsetCommit: {response:?}");
        if error == ErrorCode::NotCoordinator as i32 {
            // The first FindCoordinator creates __consumer_offsets.
            let request = FindCoordinatorRequest {
                group_id: group.to_owned(),
            };
            bounded("FindCoordinator", groups.find_coordinator(request))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_probe_of_a_running_broker() {
    let dir = tempfile::tempdir().unwrap();
    let admin = format!("127.0.0.1:{}", free_port().unwrap());
    // One partition of __consumer_offsets besides the topic's one: 2 partitions here.
    let broker = start_broker(
        dir.path(),
        &["--admin-listen", &admin, "--offsets-topic-partitions", "1"],
    );

    let health = tokio::task::block_in_place(|| get(&admin, "/healthz"));
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(health.body, r#"{"status":"ok"}"#);
    let ready = tokio::task::block_in_place(|| wait_ready(&admin));
    assert_eq!(
        ready,
        Answer {
            status: 200,
            body: r#"{"status":"ready"}"#.to_owned()
        }
    );

    let mut client = connect(&broker).await;
    create_topic(&mut client, TOPIC, 1, &[]).await;
    // 3 requests of 4, 4 and 2 records: 10 records in.
    for values in [
        &["a", "b", "c", "d"][..],
        &["e", "f", "g", "h"],
        &["i", "j"],
    ] {
        produce_ok(&mut client, TOPIC, 0, values_batch(values)).await;
    }

    // An administrative commit of group "g" at offset 4 of the 10: lag 6.
    commit_offset(&broker, "g", 4).await;

    let metrics = tokio::task::block_in_place(|| get(&admin, "/metrics"));
    assert_eq!(metrics.status, 200);
    let text = metrics.body;
    check_exposition(&text);
    assert_eq!(
        sample(&text, "strata_records_in_total{topic=\"t\"}"),
        Some(10.0),
        "{text}"
    );
    assert!(
        sample(&text, "strata_bytes_in_total{topic=\"t\"}").is_some_and(|bytes| bytes > 0.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "strata_request_duration_seconds_count{rpc=\"produce\"}"
        ),
        Some(3.0),
        "{text}"
    );
    for bucket in ["0.0005", "0.01", "1", "10", "+Inf"] {
        let series =
            format!("strata_request_duration_seconds_bucket{{rpc=\"produce\",le=\"{bucket}\"}}");
        assert!(
            sample(&text, &series).is_some(),
            "{series} missing:\n{text}"
        );
    }
    assert_eq!(
        sample(
            &text,
            "strata_request_duration_seconds_bucket{rpc=\"produce\",le=\"+Inf\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, "strata_requests_total{rpc=\"produce\",code=\"OK\"}"),
        Some(3.0),
        "{text}"
    );
    // A unary call, timed by the server's layer.
    assert!(
        sample(
            &text,
            "strata_requests_total{rpc=\"create_topics\",code=\"OK\"}"
        )
        .is_some_and(|count| count >= 1.0),
        "{text}"
    );
    for (series, value) in [
        ("strata_partitions", 2.0),
        ("strata_leader_partitions", 2.0),
        ("strata_under_replicated_partitions", 0.0),
        ("strata_under_min_isr_partitions", 0.0),
        ("strata_controller_active", 1.0),
        ("strata_cluster_brokers", 1.0),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series}:\n{text}");
    }
    assert!(
        sample(&text, "strata_log_size_bytes{topic=\"t\"}").is_some_and(|bytes| bytes > 0.0),
        "{text}"
    );
    assert!(text.contains("strata_build_info{version=\""), "{text}");
    // Storage and leadership series: the produce was fsynced (`flush = always`), the
    // broker took the leadership of both partitions, and its disk has room.
    assert!(
        sample(&text, "strata_fsync_duration_seconds_count").is_some_and(|count| count >= 1.0),
        "{text}"
    );
    assert!(
        sample(&text, "strata_leader_elections_total").is_some_and(|count| count >= 2.0),
        "{text}"
    );
    assert!(
        sample(&text, "strata_disk_free_bytes").is_some_and(|bytes| bytes > 0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "strata_consumer_group_lag_max{group=\"g\"}"),
        Some(6.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "strata_consumer_group_lag_sum{group=\"g\"}"),
        Some(6.0),
        "{text}"
    );
    assert!(
        !text.contains("strata_consumer_group_lag{"),
        "per-partition series without metrics_per_partition:\n{text}"
    );

    let output = tokio::task::block_in_place(|| probe_ready(&admin));
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with("ready: "),
        "{output:?}"
    );
    drop(broker);
}

/// `metrics_per_partition` adds the lag of each partition of a group, labelled by group,
/// topic and partition (off by default: labels stay at most per topic).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_partition_lag_only_with_metrics_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let admin = format!("127.0.0.1:{}", free_port().unwrap());
    let broker = start_broker(
        dir.path(),
        &[
            "--admin-listen",
            &admin,
            "--offsets-topic-partitions",
            "1",
            "--metrics-per-partition",
            "true",
        ],
    );
    tokio::task::block_in_place(|| wait_ready(&admin));
    let mut client = connect(&broker).await;
    create_topic(&mut client, TOPIC, 1, &[]).await;
    produce_ok(
        &mut client,
        TOPIC,
        0,
        values_batch(&["a", "b", "c", "d", "e"]),
    )
    .await;
    // Committed at 2 of 5: lag 3.
    commit_offset(&broker, "g", 2).await;
    let text = tokio::task::block_in_place(|| get(&admin, "/metrics")).body;
    check_exposition(&text);
    assert_eq!(
        sample(
            &text,
            "strata_consumer_group_lag{group=\"g\",topic=\"t\",partition=\"0\"}"
        ),
        Some(3.0),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_shutting_down_from_the_first_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let admin = format!("127.0.0.1:{}", free_port().unwrap());
    // A connection that never sends the HTTP/2 preface holds the shutdown open (the broker
    // waits for its connections within the grace period), so the shutting-down broker
    // can be asked at leisure.
    let broker = start_broker(
        dir.path(),
        &[
            "--admin-listen",
            &admin,
            "--handshake-timeout-ms",
            "10m",
            "--shutdown-grace-ms",
            "10m",
        ],
    );
    let ready = tokio::task::block_in_place(|| wait_ready(&admin));
    assert_eq!(ready.status, 200, "{ready:?}");
    let held = std::net::TcpStream::connect(broker.address()).unwrap();
    let pid = libc::pid_t::try_from(broker.pid().unwrap()).unwrap();
    // SAFETY: kill takes two integers by value; the pid is our own running child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let answer = tokio::task::block_in_place(|| {
        let started = Instant::now();
        loop {
            let answer = get(&admin, "/readyz");
            if answer.status != 200 || started.elapsed() > WAIT {
                return answer;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    assert_eq!(
        answer,
        Answer {
            status: 503,
            body: r#"{"status":"shutting_down","reasons":["shutdown in progress"]}"#.to_owned()
        }
    );
    // Still alive: liveness does not follow readiness.
    let health = tokio::task::block_in_place(|| get(&admin, "/healthz"));
    assert_eq!(health.status, 200);
    drop(held);
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_booting_without_a_controller_quorum() {
    let dir = tempfile::tempdir().unwrap();
    let admin = format!("127.0.0.1:{}", free_port().unwrap());
    let own = format!("127.0.0.1:{}", free_port().unwrap());
    // Voters 2 and 3 never start: no controller leader can be elected.
    let voters = format!(
        "1@{own},2@127.0.0.1:{},3@127.0.0.1:{}",
        free_port().unwrap(),
        free_port().unwrap()
    );
    let broker = tokio::task::block_in_place(|| {
        BrokerProcess::start_with_options(
            dir.path(),
            BrokerOptions {
                extra_args: ["--admin-listen", &admin, "--controller-voters", &voters]
                    .map(str::to_owned)
                    .to_vec(),
                listen: Some(own.parse().unwrap()),
                // Unreachable voters are expected: keep their lines out of the test output.
                log_filter: Some("off".to_owned()),
                ..BrokerOptions::default()
            },
        )
    })
    .unwrap();
    let answer = tokio::task::block_in_place(|| get(&admin, "/readyz"));
    assert_eq!(
        answer,
        Answer {
            status: 503,
            body: r#"{"status":"booting","reasons":["not registered with the controller","no controller leader known"]}"#
                .to_owned()
        }
    );
    let output = tokio::task::block_in_place(|| probe_ready(&admin));
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).starts_with("not ready: "),
        "{output:?}"
    );
    drop(broker);
}

#[test]
fn probe_against_a_closed_port_exits_1() {
    let admin = format!("127.0.0.1:{}", free_port().unwrap());
    let output = probe_ready(&admin);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("not ready: cannot connect to"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_taken_admin_port_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = taken.local_addr().unwrap().to_string();
    let grpc = format!("127.0.0.1:{}", free_port().unwrap());
    let data = dir.path().join("data");
    let output = Command::new(workspace_binary("strata-broker"))
        .args(["--listen", &grpc, "--admin-listen", &admin, "--data-dir"])
        .arg(&data)
        .env_remove("STRATA_CONFIG")
        .output()
        .expect("run strata-broker");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "admin listener (--admin-listen): cannot listen on {admin}: address in use"
        )),
        "{stderr}"
    );
    assert!(!data.exists(), "the data directory was created");
}
