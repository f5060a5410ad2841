//! The wording of every line people grep for, and the shape of the JSON document.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use super::*;
use crate::commands::bench::stats::Latencies;

fn latency(avg: f64, max: f64, p50: f64, p95: f64, p99: f64, p999: f64) -> LatencySummary {
    LatencySummary {
        count: 1,
        avg,
        p50,
        p95,
        p99,
        p999,
        max,
    }
}

/// 10 000 000 records of 100 bytes in 20.0722 s.
fn kafka_example() -> SideSummary {
    SideSummary {
        totals: Totals {
            records: 10_000_000,
            value_bytes: 1_000_000_000,
            wire_bytes: 1_090_000_000,
            errors: 0,
        },
        elapsed_s: 10_000_000.0 / 498_201.3,
        latency: Some(latency(3.02, 88.1, 2.1, 6.4, 12.3, 31.0)),
    }
}

#[test]
fn the_summary_reads_like_kafkas_with_sub_millisecond_precision() {
    assert_eq!(
        summary_line(Verb::Sent, &kafka_example()),
        "10000000 records sent, 498201.3 records/sec (47.51 MB/sec), 3.02 ms avg latency, \
         88.10 ms max latency, 2.10 ms 50th, 6.40 ms 95th, 12.30 ms 99th, 31.00 ms 99.9th."
    );
    let without_latency = SideSummary {
        latency: None,
        ..kafka_example()
    };
    assert_eq!(
        summary_line(Verb::Received, &without_latency),
        "10000000 records received, 498201.3 records/sec (47.51 MB/sec)."
    );
}

#[test]
fn the_progress_line_reads_like_kafkas() {
    let delta = Totals {
        records: 2_512_384,
        value_bytes: 2_512_384 * 100,
        wire_bytes: 0,
        errors: 0,
    };
    let interval = latency(3.1, 41.2, 0.0, 0.0, 0.0, 0.0);
    assert_eq!(
        interval_line(5.0, Verb::Sent, delta, 5.0, Some(&interval)),
        "5.0 s: 2512384 records sent, 502476.8 records/sec (47.92 MB/sec), 3.1 ms avg latency, \
         41.2 ms max latency."
    );
    assert_eq!(
        interval_line(10.0, Verb::Received, Totals::default(), 5.0, None),
        "10.0 s: 0 records received, 0.0 records/sec (0.00 MB/sec)."
    );
}

#[test]
fn mb_is_two_to_the_twentieth_bytes_of_values() {
    assert_eq!(mib(1 << 20), 1.0);
    // Kreps's 821,557 records/s of 100 bytes = 78.3 MB/s.
    assert!((mib(821_557 * 100) - 78.35).abs() < 0.01);
}

#[test]
fn delay_and_error_lines() {
    assert_eq!(
        send_delay_line(&latency(0.02, 1.5, 0.01, 0.03, 0.1, 0.3)),
        "send delay: 0.02 ms avg, 1.50 ms max, 0.01 ms 50th, 0.03 ms 95th, 0.10 ms 99th, \
         0.30 ms 99.9th."
    );
    assert_eq!(errors_line(0, None), "0 errors.");
    assert_eq!(errors_line(2, Some(5)), "2 errors, 5 missing.");
}

#[test]
fn consumer_perf_csv_has_kafkas_columns() {
    let side = SideSummary {
        totals: Totals {
            records: 1_000_000,
            value_bytes: 100 << 20,
            wire_bytes: 0,
            errors: 0,
        },
        elapsed_s: 2.0,
        latency: None,
    };
    let csv = consumer_perf_csv(1_700_000_000_000, &side, 0);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], CONSUMER_PERF_HEADER);
    assert_eq!(
        lines[1],
        "2023-11-14 22:13:20:000, 2023-11-14 22:13:22:000, 100.0000, 50.0000, 1000000, \
         500000.0000, 0, 2000, 50.0000, 500000.0000"
    );
    assert_eq!(lines[0].split(", ").count(), lines[1].split(", ").count());
}

#[test]
fn with_a_group_the_fetch_time_leaves_out_the_rebalance() {
    let side = SideSummary {
        totals: Totals {
            records: 1_000_000,
            value_bytes: 100 << 20,
            wire_bytes: 0,
            errors: 0,
        },
        elapsed_s: 2.0,
        latency: None,
    };
    let csv = consumer_perf_csv(1_700_000_000_000, &side, 400);
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(", ").collect();
    // rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
    assert_eq!(row[6..], ["400", "1600", "62.5000", "625000.0000"]);
    // A rebalance longer than the measured time leaves no fetch time, and no rate.
    let csv = consumer_perf_csv(1_700_000_000_000, &side, 5000);
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(", ").collect();
    assert_eq!(row[6..], ["2000", "0", "0.0000", "0.0000"]);
}

#[test]
fn the_group_line_names_the_rebalance_redeliveries_and_commits() {
    let mut group = GroupSummary {
        group: "bench-1".to_owned(),
        members: 4,
        rebalance_ms: Some(31.3),
        redelivered: 0,
        partitions: 6,
        partitions_committed_to_end: 6,
        committed_records: 2_000_000,
        member_records: vec![700_000, 700_000, 300_000, 300_000],
    };
    assert_eq!(
        group_line(&group),
        "group bench-1: 4 members, assignment settled after 31.3 ms; records per member \
         700000/700000/300000/300000; 0 redelivered; \
         committed 2000000 records, 6 of 6 partitions at their end offset."
    );
    group.rebalance_ms = None;
    assert!(group_line(&group).contains("never settled"));
}

#[test]
fn the_hgrm_output_is_hdrhistograms_percentile_distribution() {
    let mut latencies = Latencies::new().unwrap();
    for micros in 1..=1000 {
        latencies.record(micros);
    }
    let text = percentile_distribution(latencies.histogram());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "       Value     Percentile TotalCount 1/(1-Percentile)"
    );
    assert_eq!(lines[1], "");
    assert_eq!(
        lines[2],
        "       0.001 0.000000000000          1           1.00"
    );
    let last_value = lines
        .iter()
        .rev()
        .find(|line| !line.starts_with('#'))
        .unwrap();
    assert!(
        last_value.ends_with("1.000000000000       1000"),
        "{last_value}"
    );
    assert!(text.contains("#[Max     =        1.000, Total count    =         1000]"));
    assert!(text.contains("SubBuckets     =         2048]"));
}

fn document() -> Document {
    let side = kafka_example();
    Document {
        tool: "strata-bench",
        version: "0.1.0",
        git_sha: None,
        started_at: "2026-01-01T12:00:00.000Z".to_owned(),
        env: Environment::detect(),
        params: Params {
            mode: "e2e",
            topic: "strata-bench".to_owned(),
            brokers: vec!["127.0.0.1:7070".to_owned()],
            partitions: 6,
            replication_factor: 1,
            isr_min: 1,
            flush: "always".to_owned(),
            records: None,
            duration_s: Some(60.0),
            warmup_s: 10.0,
            producers: 1,
            consumers: 1,
            record_size: Some(1024),
            keys: Some("none".to_owned()),
            rate: Some(-1.0),
            acks: Some("all".to_owned()),
            linger_ms: Some(5.0),
            batch_size: Some(16_384),
            compression: Some("none".to_owned()),
            window: Some(1000),
            drain_s: Some(10.0),
            group: None,
            members: None,
            client_settings: BTreeMap::new(),
        },
        series: Series {
            interval_s: 5,
            records_per_sec: vec![1.0, 2.0],
            mb_per_sec: vec![0.1, 0.2],
            publish_p99_ms: vec![Some(1.0), None],
            e2e_p99_ms: vec![Some(2.0), Some(3.0)],
            consume_records_per_sec: vec![1.0, 2.0],
        },
        summary: JsonSummary {
            records: side.totals.records,
            errors: 0,
            missing: Some(0),
            bytes: side.totals.value_bytes,
            wire_bytes: side.totals.wire_bytes,
            duration_s: side.elapsed_s,
            records_per_sec: side.records_per_sec(),
            mb_per_sec: side.mb_per_sec(),
            wire_mb_per_sec: side.wire_mb_per_sec(),
            publish_ms: side.latency,
            e2e_ms: side.latency,
            send_delay_ms: None,
            consumed: Some(JsonSide::of(&side)),
            records_total: side.totals.records,
            group: None,
        },
    }
}

#[test]
fn the_json_document_has_omb_testresults_shape() {
    let json = serde_json::to_value(document()).unwrap();
    for key in [
        "tool",
        "version",
        "git_sha",
        "started_at",
        "env",
        "params",
        "series",
        "summary",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    assert_eq!(json["tool"], "strata-bench");
    for key in ["hostname", "cpus", "memory_gb", "kernel"] {
        assert!(json["env"].get(key).is_some(), "missing env.{key}");
    }
    for key in [
        "mode",
        "record_size",
        "keys",
        "rate",
        "producers",
        "consumers",
        "partitions",
        "replication_factor",
        "acks",
        "flush",
        "linger_ms",
        "batch_size",
        "compression",
        "warmup_s",
        "duration_s",
    ] {
        assert!(json["params"].get(key).is_some(), "missing params.{key}");
    }
    let series = &json["series"];
    assert_eq!(series["interval_s"], 5);
    assert_eq!(series["publish_p99_ms"][1], serde_json::Value::Null);
    assert_eq!(series["e2e_p99_ms"].as_array().unwrap().len(), 2);
    let summary = &json["summary"];
    for key in [
        "records",
        "errors",
        "bytes",
        "wire_bytes",
        "records_per_sec",
        "mb_per_sec",
        "wire_mb_per_sec",
        "publish_ms",
        "e2e_ms",
    ] {
        assert!(summary.get(key).is_some(), "missing summary.{key}");
    }
    let publish = summary["publish_ms"].as_object().unwrap();
    let keys: Vec<&str> = publish.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 6);
    for key in ["avg", "p50", "p95", "p99", "p999", "max"] {
        assert!(publish.contains_key(key), "missing publish_ms.{key}");
    }
    assert_eq!(summary["publish_ms"]["p99"], 12.3);
    assert!((summary["mb_per_sec"].as_f64().unwrap() - 47.51).abs() < 0.01);
}
