#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::*;
use crate::service::request_metrics;

/// Renders what `record` sends to a fresh recorder (not the process-wide one).
fn render(record: impl FnOnce()) -> String {
    let recorder = local_recorder().unwrap();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        describe();
        publish_build_info();
        record();
    });
    handle.render()
}

#[test]
fn counters_render_per_topic_with_their_totals() {
    let text = render(|| {
        request_metrics::produced("t", 100, 3);
        request_metrics::produced("t", 50, 2);
        request_metrics::produced("other", 10, 1);
    });
    assert!(
        text.contains("strata_records_in_total{topic=\"t\"} 5\n"),
        "{text}"
    );
    assert!(
        text.contains("strata_bytes_in_total{topic=\"t\"} 150\n"),
        "{text}"
    );
    assert!(
        text.contains("strata_records_in_total{topic=\"other\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE strata_records_in_total counter"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "strata_build_info{{version=\"{}\",git_sha=\"{GIT_SHA}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
}

#[test]
fn request_durations_are_histograms_with_the_reference_buckets() {
    let text = render(|| {
        request_metrics::record_request("produce", "OK", Duration::from_micros(300));
        request_metrics::record_request("produce", "NOT_LEADER", Duration::from_millis(20));
    });
    assert!(
        text.contains("# TYPE strata_request_duration_seconds histogram"),
        "{text}"
    );
    for bucket in DURATION_BUCKETS_SECONDS {
        let line =
            format!("strata_request_duration_seconds_bucket{{rpc=\"produce\",le=\"{bucket}\"}}");
        assert!(text.contains(&line), "{line} missing in {text}");
    }
    assert!(
        text.contains("strata_request_duration_seconds_bucket{rpc=\"produce\",le=\"0.0005\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("strata_request_duration_seconds_bucket{rpc=\"produce\",le=\"0.025\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("strata_request_duration_seconds_count{rpc=\"produce\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("strata_requests_total{rpc=\"produce\",code=\"NOT_LEADER\"} 1\n"),
        "{text}"
    );
}

#[test]
fn node_gauges_render_as_gauges() {
    let gauges = NodeGauges {
        partitions: 4,
        leader_partitions: 3,
        under_replicated_partitions: 1,
        under_min_isr_partitions: 0,
        leaderless_partitions: 0,
        controller_active: true,
        cluster_brokers: 3,
        log_size_bytes: BTreeMap::from([("t".to_owned(), 4096)]),
        disk_free_bytes: Some(1 << 30),
    };
    let text = render(|| gauges.publish());
    for line in [
        "strata_partitions 4\n",
        "strata_leader_partitions 3\n",
        "strata_under_replicated_partitions 1\n",
        "strata_under_min_isr_partitions 0\n",
        "strata_controller_active 1\n",
        "strata_cluster_brokers 3\n",
        "strata_log_size_bytes{topic=\"t\"} 4096\n",
        "strata_disk_free_bytes 1073741824\n",
        "# TYPE strata_partitions gauge",
    ] {
        assert!(text.contains(line), "{line:?} missing in {text}");
    }
}

#[test]
fn group_lag_is_the_max_and_sum_of_known_partition_lags() {
    let lags = group_lags([
        ("g", Some(5)),
        ("g", Some(2)),
        ("g", None),
        ("h", Some(0)),
        ("unknown", None),
    ]);
    assert_eq!(
        lags,
        BTreeMap::from([
            ("g".to_owned(), GroupLag { max: 5, sum: 7 }),
            ("h".to_owned(), GroupLag { max: 0, sum: 0 }),
        ])
    );
}

#[tokio::test]
async fn the_gauges_of_a_one_node_broker_count_its_partitions_and_log_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let node = crate::node::test_node::node_with_topic(dir.path(), "t").await;
    let gauges = NodeGauges::of(&node);
    assert_eq!(gauges.partitions, 1);
    assert_eq!(gauges.leader_partitions, 1);
    assert_eq!(gauges.under_replicated_partitions, 0);
    assert_eq!(gauges.under_min_isr_partitions, 0);
    assert_eq!(gauges.leaderless_partitions, 0);
    assert!(gauges.controller_active);
    assert_eq!(gauges.cluster_brokers, 1);
    assert!(gauges.log_size_bytes.contains_key("t"), "{gauges:?}");
    assert!(
        gauges.disk_free_bytes.is_some_and(|bytes| bytes > 0),
        "{gauges:?}"
    );
    node.shutdown().unwrap();
}

#[test]
fn the_git_sha_is_a_commit_or_unknown() {
    assert!(
        GIT_SHA == "unknown" || GIT_SHA.chars().all(|c| c.is_ascii_hexdigit()),
        "{GIT_SHA}"
    );
}

#[test]
fn fsyncs_recovery_cuts_and_damage_are_recorded_by_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(dir.path().join("f")).unwrap();
    let text = render(|| {
        crate::log::durable::sync_file(&file, &dir.path().join("f")).unwrap();
        crate::log::durable::sync_dir(dir.path()).unwrap();
        crate::log::metrics::recovery_truncated(17);
        crate::log::metrics::corruption_detected(&crate::log::LogError::Corruption {
            path: dir.path().join("f"),
            position: 0,
            reason: "crc".into(),
        });
    });
    for line in [
        "# TYPE strata_fsync_duration_seconds histogram",
        "strata_fsync_duration_seconds_count 2\n",
        "strata_log_recovery_truncated_bytes_total 17\n",
        "strata_log_corruption_detected_total{kind=\"bad_batch\"} 1\n",
    ] {
        assert!(text.contains(line), "{line:?} missing in {text}");
    }
}
