//! The JSON admin API (`GET /v1/…`) of real brokers: every endpoint answers with the
//! shape of its `strata_proto::views` struct, with the same field names as the CLI's
//! `--format json` for the same object; unknown topics and groups are 404, bad query
//! parameters 400, the records peek 403 when `--admin-peek false`; on three brokers one
//! broker's API shows the offsets and records of partitions led by the others and the
//! groups they coordinate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use strata_proto::views::{
    BrokerView, ClusterHealthView, ClusterView, GroupListingView, GroupView, PartitionView,
    RecordsPeekView, TopicListingView, TopicView,
};
use strata_tests::admin_api::{admin_address, field_paths, get_json, get_ok, get_until};
use strata_tests::cli_runner::{json_of, strata, text};
use strata_tests::cluster::{Cluster, ClusterOptions};

fn start(nodes: u8, extra_args: &[&str]) -> Cluster {
    let mut options = ClusterOptions::new(nodes);
    options.extra_args = extra_args.iter().map(|arg| (*arg).to_owned()).collect();
    tokio::task::block_in_place(|| Cluster::start(options)).expect("start the cluster")
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// `strata ARGS` against node 1 that must succeed.
fn cli_ok(cluster: &Cluster, args: &[&str], input: &str) -> String {
    let output = strata(cluster, 1, args, input);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Waits until the cluster is healthy by the API (brokers registered, leaders elected).
fn wait_healthy(admin: &str) -> ClusterHealthView {
    let (_, body) = get_until(admin, "/v1/cluster/health", |status, _| status == 200);
    serde_json::from_value(body).unwrap()
}

fn assert_error(admin: &str, path: &str, status: u16, code: &str) {
    let (answered, body) = blocking(|| get_json(admin, path));
    assert_eq!(answered, status, "GET {path}: {body}");
    assert_eq!(body["error"]["code"], code, "GET {path}: {body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_broker_answers_every_endpoint_with_the_cli_field_names() {
    let cluster = start(1, &["--offsets-topic-partitions", "1"]);
    let admin = blocking(|| admin_address(&cluster, 1));
    cli_ok(
        &cluster,
        &["topic", "create", "orders", "-p", "2", "-r", "1"],
        "",
    );
    cli_ok(&cluster, &["produce", "orders", "-p", "0"], "a\nb\nc\n");
    cli_ok(
        &cluster,
        &["consume", "orders", "-g", "audit", "-n", "3", "-f", "%v\\n"],
        "",
    );
    let health = blocking(|| wait_healthy(&admin));
    assert!(health.healthy && health.reasons.is_empty(), "{health:?}");
    assert_eq!(health.all_nodes, [1]);

    let view: ClusterView = blocking(|| get_ok(&admin, "/v1/cluster"));
    assert_eq!(view.controller_id, Some(1));
    assert_eq!(view.topic_count, 1);
    assert_eq!(view.version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    let brokers: Vec<BrokerView> = blocking(|| get_ok(&admin, "/v1/brokers"));
    assert_eq!(brokers.len(), 1);
    assert_eq!((brokers[0].node_id, brokers[0].state.as_str()), (1, "live"));

    let topics: Vec<TopicListingView> = blocking(|| get_ok(&admin, "/v1/topics"));
    assert_eq!(
        topics,
        [TopicListingView {
            name: "orders".into(),
            partitions: 2,
            replicas: 1
        }]
    );
    let topic: TopicView = blocking(|| get_ok(&admin, "/v1/topics/orders"));
    assert_eq!((topic.partition_count, topic.replication_factor), (2, 1));
    assert!(
        topic.configs.iter().any(|c| c.key == "retention_ms"),
        "{topic:?}"
    );
    assert!(topic
        .configs
        .iter()
        .all(|c| ["DEFAULT", "BROKER", "TOPIC"].contains(&c.source.as_str())));
    let partitions: Vec<PartitionView> =
        blocking(|| get_ok(&admin, "/v1/topics/orders/partitions"));
    assert_eq!(partitions, topic.partitions);
    assert_eq!(partitions[0].leader, Some(1));
    assert_eq!(partitions[0].isr, [1]);
    assert_eq!(
        (partitions[0].log_start_offset, partitions[0].high_watermark),
        (Some(0), Some(3))
    );
    assert_eq!(partitions[1].high_watermark, Some(0));

    let peek: RecordsPeekView =
        blocking(|| get_ok(&admin, "/v1/topics/orders/records?partition=0&limit=2"));
    let seen: Vec<(i64, Option<&str>)> = peek
        .records
        .iter()
        .map(|record| (record.offset, record.value.as_deref()))
        .collect();
    assert_eq!(seen, [(1, Some("b")), (2, Some("c"))]);
    assert_eq!(peek.high_watermark, 3);
    let empty: RecordsPeekView =
        blocking(|| get_ok(&admin, "/v1/topics/orders/records?partition=1"));
    assert!(empty.records.is_empty());

    let groups: Vec<GroupListingView> = blocking(|| get_ok(&admin, "/v1/groups"));
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(
        (groups[0].group.as_str(), groups[0].coordinator),
        ("audit", 1)
    );
    let group: GroupView = blocking(|| get_ok(&admin, "/v1/groups/audit"));
    let p0 = group.partitions.iter().find(|p| p.partition == 0).unwrap();
    assert_eq!(
        (p0.current_offset, p0.log_end_offset, p0.lag),
        (Some(3), Some(3), Some(0)),
        "{group:?}"
    );

    // The same objects, asked of the CLI: the same field names.
    let same_fields = |api: &str, cli: &[&str], pick: fn(Value) -> Value| {
        let (_, api_json) = blocking(|| get_json(&admin, api));
        let cli_json = pick(json_of(&strata(&cluster, 1, cli, "")));
        let (api_fields, cli_fields) = (field_paths(&api_json), field_paths(&cli_json));
        assert!(!cli_fields.is_empty(), "{cli:?}");
        assert_eq!(api_fields, cli_fields, "{api} and {cli:?}");
    };
    let whole = |value: Value| value;
    let first = |value: Value| value[0].clone();
    same_fields(
        "/v1/topics/orders",
        &["topic", "describe", "orders", "--format", "json"],
        whole,
    );
    same_fields("/v1/topics", &["topic", "list", "--format", "json"], whole);
    same_fields("/v1/groups", &["group", "list", "--format", "json"], whole);
    same_fields(
        "/v1/groups/audit",
        &["group", "describe", "audit", "--format", "json"],
        first,
    );
    // `cluster info`: the same, except the version the API adds.
    let (_, mut api_cluster) = blocking(|| get_json(&admin, "/v1/cluster"));
    api_cluster.as_object_mut().unwrap().remove("version");
    let cli_cluster = json_of(&strata(
        &cluster,
        1,
        &["cluster", "info", "--format", "json"],
        "",
    ));
    assert_eq!(field_paths(&api_cluster), field_paths(&cli_cluster));
    // A peeked record has the fields of a record `strata consume` prints as JSON.
    let consumed = cli_ok(
        &cluster,
        &["consume", "orders", "-p", "0", "-o", "2", "-n", "1"],
        "",
    );
    let consumed: Value = serde_json::from_str(consumed.trim()).unwrap();
    let (_, peeked) =
        blocking(|| get_json(&admin, "/v1/topics/orders/records?partition=0&limit=1"));
    assert_eq!(field_paths(&peeked["records"][0]), field_paths(&consumed));

    assert_error(&admin, "/v1/topics/nope", 404, "UNKNOWN_TOPIC_OR_PARTITION");
    assert_error(
        &admin,
        "/v1/topics/nope/partitions",
        404,
        "UNKNOWN_TOPIC_OR_PARTITION",
    );
    assert_error(
        &admin,
        "/v1/topics/nope/records?partition=0",
        404,
        "UNKNOWN_TOPIC_OR_PARTITION",
    );
    assert_error(
        &admin,
        "/v1/topics/orders/records?partition=9",
        404,
        "UNKNOWN_TOPIC_OR_PARTITION",
    );
    assert_error(&admin, "/v1/groups/nope", 404, "GROUP_ID_NOT_FOUND");
    assert_error(&admin, "/v1/topics/orders/records", 400, "INVALID_REQUEST");
    assert_error(
        &admin,
        "/v1/topics/orders/records?partition=x",
        400,
        "INVALID_REQUEST",
    );
    assert_error(
        &admin,
        "/v1/topics/orders/records?partition=0&limit=0",
        400,
        "INVALID_REQUEST",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_records_peek_can_be_switched_off() {
    let cluster = start(1, &["--admin-peek", "false"]);
    let admin = blocking(|| admin_address(&cluster, 1));
    cli_ok(
        &cluster,
        &["topic", "create", "orders", "-p", "1", "-r", "1"],
        "",
    );
    cli_ok(&cluster, &["produce", "orders"], "secret\n");
    assert_error(
        &admin,
        "/v1/topics/orders/records?partition=0",
        403,
        "PEEK_DISABLED",
    );
    // Before the parameters are even looked at.
    assert_error(&admin, "/v1/topics/orders/records", 403, "PEEK_DISABLED");
    // No group was ever created here (no `__consumer_offsets`): unknown, not unavailable.
    assert_error(&admin, "/v1/groups/nope", 404, "GROUP_ID_NOT_FOUND");
    // The rest of the API still answers.
    let topic: TopicView = blocking(|| get_ok(&admin, "/v1/topics/orders"));
    assert_eq!(topic.partitions[0].high_watermark, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_three_brokers_one_api_shows_what_the_others_lead_and_coordinate() {
    let cluster = start(3, &["--offsets-topic-partitions", "3"]);
    // Every broker registered before an RF-3 topic is created (a broker still starting
    // is not counted among the live ones).
    strata_tests::quorum_watch::formed(&cluster)
        .await
        .expect("the three brokers form a cluster");
    let admins: Vec<String> = (1..=3)
        .map(|node| blocking(|| admin_address(&cluster, node)))
        .collect();
    cli_ok(
        &cluster,
        &["topic", "create", "orders", "-p", "3", "-r", "3"],
        "",
    );
    for partition in ["0", "1", "2"] {
        cli_ok(
            &cluster,
            &["produce", "orders", "-p", partition],
            &format!("x{partition}\ny{partition}\n"),
        );
    }
    for group in ["g1", "g2", "g3", "g4"] {
        cli_ok(
            &cluster,
            &["consume", "orders", "-g", group, "-n", "6", "-f", "%v\\n"],
            "",
        );
    }
    let health = blocking(|| wait_healthy(&admins[0]));
    assert_eq!(health.all_nodes, [1, 2, 3]);

    // Every partition's offsets, whichever broker leads it, from broker 1 alone.
    let partitions: Vec<PartitionView> =
        blocking(|| get_ok(&admins[0], "/v1/topics/orders/partitions"));
    assert_eq!(partitions.len(), 3);
    for partition in &partitions {
        assert_eq!(partition.replicas.len(), 3, "{partition:?}");
        assert_eq!(partition.high_watermark, Some(2), "{partition:?}");
    }
    // Records of a partition led by another broker.
    let elsewhere = partitions
        .iter()
        .find(|partition| partition.leader != Some(1))
        .expect("with three partitions and three brokers, some are led elsewhere");
    let peek: RecordsPeekView = blocking(|| {
        get_ok(
            &admins[0],
            &format!(
                "/v1/topics/orders/records?partition={}",
                elsewhere.partition
            ),
        )
    });
    let values: Vec<Option<String>> = peek.records.into_iter().map(|r| r.value).collect();
    let p = elsewhere.partition;
    assert_eq!(values, [Some(format!("x{p}")), Some(format!("y{p}"))]);

    // Every broker lists all four groups, and describes each, wherever it is coordinated.
    for admin in &admins {
        let groups: Vec<GroupListingView> = blocking(|| get_ok(admin, "/v1/groups"));
        let names: Vec<&str> = groups.iter().map(|group| group.group.as_str()).collect();
        assert_eq!(names, ["g1", "g2", "g3", "g4"], "{admin}");
        for listed in &groups {
            let group: GroupView =
                blocking(|| get_ok(admin, &format!("/v1/groups/{}", listed.group)));
            assert_eq!(group.coordinator, listed.coordinator);
            assert_eq!(group.total_lag, Some(0), "{group:?}");
            assert!(
                group
                    .partitions
                    .iter()
                    .all(|p| p.log_start_offset == Some(0)),
                "{group:?}"
            );
        }
    }
}
