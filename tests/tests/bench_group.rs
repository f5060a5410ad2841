//! `strata bench consume --group G --members N` against a real one-node broker (issue 21):
//! a backlog written by `strata bench produce` is read by three members of one group, and
//! the JSON report counts every record once across the members (their shares add up to
//! the backlog, none redelivered), with the group's committed offsets at the end offsets
//! afterwards. The text report has consumer-perf-test's CSV and the group line. A second
//! run in the same group finds nothing left and says how to start over; `--records N`
//! ends the run for every member at N; without `--group`, `--members` is a usage error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use serde_json::Value;
use strata_tests::broker_process::{workspace_binary, BrokerProcess};
use strata_tests::cli_runner::{run_bounded, text};

const TOPIC: &str = "bench-group";
const RECORDS: u64 = 12_000;

/// `strata -b <broker> ARGS`, bounded.
fn strata(broker: &BrokerProcess, args: &[&str]) -> Output {
    let mut command = Command::new(workspace_binary("strata"));
    command
        .arg("-b")
        .arg(broker.address().to_string())
        .args(["--timeout", "30s"])
        .args(args)
        .env_remove("STRATA_BROKERS")
        .env_remove("STRATA_FORMAT");
    run_bounded(command, "")
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

#[test]
fn group_members_share_the_backlog_and_count_each_record_once() {
    let data = tempfile::tempdir().unwrap();
    // Heartbeats every 200 ms, so partitions move between members while they read.
    let broker =
        BrokerProcess::start(data.path(), &["--group-heartbeat-interval-ms", "200"]).unwrap();
    let records = RECORDS.to_string();
    succeeded(&strata(
        &broker,
        &[
            "bench",
            "produce",
            "--topic",
            TOPIC,
            "--create",
            "-p",
            "6",
            "-r",
            "1",
            "--records",
            &records,
            "--record-size",
            "100",
            "--acks",
            "1",
            "--warmup",
            "0s",
        ],
    ));

    let report: Value = serde_json::from_str(&succeeded(&strata(
        &broker,
        &[
            "--format",
            "json",
            "bench",
            "consume",
            "--topic",
            TOPIC,
            "--group",
            "g3",
            "--members",
            "3",
        ],
    )))
    .unwrap();
    let params = &report["params"];
    assert_eq!(params["mode"], "consume");
    assert_eq!(params["group"], "g3");
    assert_eq!(params["members"], 3);
    assert_eq!(params["consumers"], 3);
    let summary = &report["summary"];
    assert_eq!(summary["records"], RECORDS, "{summary}");
    assert_eq!(summary["bytes"], RECORDS * 100);
    assert_eq!(summary["errors"], 0);
    assert!(summary["records_per_sec"].as_f64().unwrap() > 0.0);
    let group = &summary["group"];
    assert_eq!(group["group"], "g3");
    assert_eq!(group["members"], 3);
    let shares: Vec<u64> = group["member_records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|share| share.as_u64().unwrap())
        .collect();
    assert_eq!(shares.len(), 3);
    assert_eq!(
        shares.iter().sum::<u64>(),
        RECORDS,
        "every record counted by exactly one member: {group}"
    );
    assert_eq!(group["redelivered"], 0, "{group}");
    // Settled or not is a matter of timing; the key is always there.
    let rebalance = &group["rebalance_ms"];
    assert!(rebalance.is_null() || rebalance.as_f64().unwrap() >= 0.0);
    assert_eq!(group["committed_records"], RECORDS, "{group}");
    let partitions = group["partitions"].as_u64().unwrap();
    assert!((1..=6).contains(&partitions), "{group}");
    assert_eq!(group["partitions_committed_to_end"], partitions);

    // The same group again: everything is committed, nothing left to read.
    let again = strata(
        &broker,
        &["bench", "consume", "--topic", TOPIC, "--group", "g3"],
    );
    assert!(!again.status.success());
    let stderr = text(&again.stderr);
    assert!(
        stderr.contains("already committed every record")
            && stderr.contains("strata group delete g3"),
        "{stderr}"
    );

    // Text: consumer-perf-test's header and row, then the group line and the errors.
    let out = succeeded(&strata(
        &broker,
        &[
            "bench",
            "consume",
            "--topic",
            TOPIC,
            "--group",
            "g2",
            "--members",
            "2",
        ],
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("start.time, end.time, data.consumed.in.MB"));
    let row: Vec<&str> = lines[1].split(", ").collect();
    assert_eq!(row.len(), 10, "{out}");
    assert_eq!(row[4], records, "data.consumed.in.nMsg: {out}");
    assert!(lines[2].starts_with("group g2: 2 members, "), "{out}");
    assert!(lines[2].contains("0 redelivered"), "{out}");
    assert!(
        lines[2].ends_with(&format!(
            "committed {RECORDS} records, {partitions} of {partitions} partitions at their end offset."
        )),
        "{out}"
    );
    assert_eq!(lines[3], "0 errors.");

    // --records N stops every member once N records were counted, also the two of eight
    // members that own no partition of the six.
    let bounded: Value = serde_json::from_str(&succeeded(&strata(
        &broker,
        &[
            "--format",
            "json",
            "bench",
            "consume",
            "--topic",
            TOPIC,
            "--group",
            "g4",
            "--members",
            "8",
            "--records",
            "5000",
        ],
    )))
    .unwrap();
    assert_eq!(bounded["summary"]["records"], 5000, "{bounded}");
    assert_eq!(bounded["summary"]["errors"], 0);
    assert!(
        bounded["summary"]["group"]["committed_records"]
            .as_u64()
            .unwrap()
            >= 5000
    );

    // Without a group, --members has no meaning.
    let usage = strata(
        &broker,
        &["bench", "consume", "--topic", TOPIC, "--members", "2"],
    );
    assert_eq!(usage.status.code(), Some(2));
    assert!(text(&usage.stderr).contains("--group"));
}
