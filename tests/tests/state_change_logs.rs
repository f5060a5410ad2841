//! The state changes an operator follows in the log, with `--log-format json`, through a
//! real one-node broker: each is one JSON object on one line, with a stable message and
//! its fields (`docs/OPERATIONS.md`, "Logs"):
//!
//! - `leading the partition` (a leader elected here): `topic`, `partition`,
//!   `leader_epoch`;
//! - `retention deleted segments`: `dir`, `segments`, `bytes`, `log_start_offset`;
//! - `opened logs` (the recovery report of every start): `partitions`, `offline`,
//!   `previous` (`New`, `Clean` or `Crashed`).
//!
//! ISR changes and fencing need several brokers; their lines are listed in the same
//! section. Timing decides nothing: waits only bound how long the broker may take.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{connect, create_topic, kill, produce_ok, restart, values_batch, WAIT};
use serde_json::Value;
use strata_tests::broker_process::{BrokerOptions, BrokerProcess};

const TOPIC: &str = "logged";

/// Every line of the broker's log, each parsed as one JSON object (a line that is not
/// one fails the test).
fn json_lines(log: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("not one JSON object ({error}): {line}"));
            assert!(value.is_object(), "{line}");
            assert!(value["broker_id"].is_number(), "no broker_id: {line}");
            value
        })
        .collect()
}

/// Waits until the log has an event with `message` whose fields satisfy `wanted`, and
/// returns it.
fn wait_for_event(log: &Path, message: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let events = json_lines(log);
        let found = events
            .into_iter()
            .find(|event| event["fields"]["message"] == message && wanted(&event["fields"]));
        if let Some(event) = found {
            for key in ["timestamp", "level", "target"] {
                assert!(event.get(key).is_some(), "{key} missing: {event}");
            }
            return event;
        }
        assert!(
            started.elapsed() < WAIT,
            "no {message:?} line after {WAIT:?}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_retention_and_recovery_are_one_json_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let log = dir.path().join("broker.log");
    let options = BrokerOptions {
        extra_args: [
            "--log-format",
            "json",
            "--retention-check-interval-ms",
            "100",
        ]
        .map(str::to_owned)
        .to_vec(),
        log_file: Some(log.clone()),
        log_filter: Some("info,openraft=off".to_owned()),
        ..BrokerOptions::default()
    };
    let mut broker =
        tokio::task::block_in_place(|| BrokerProcess::start_with_options(&data, options)).unwrap();
    let opened = tokio::task::block_in_place(|| {
        wait_for_event(&log, "opened logs", |fields| fields["previous"] == "New")
    });
    assert_eq!(opened["level"], "INFO", "{opened}");

    let mut client = connect(&broker).await;
    create_topic(
        &mut client,
        TOPIC,
        1,
        &[("segment_bytes", "1024"), ("retention_bytes", "2048")],
    )
    .await;
    let leading = tokio::task::block_in_place(|| {
        wait_for_event(&log, "leading the partition", |fields| {
            fields["topic"] == TOPIC && fields["partition"] == 0
        })
    });
    assert!(leading["fields"]["leader_epoch"].is_number(), "{leading}");

    // About 600 B a batch: a segment of 1 KiB rolls every two batches, and retention
    // keeps about 2 KiB.
    let value = "v".repeat(600);
    for _ in 0..12 {
        produce_ok(&mut client, TOPIC, 0, values_batch(&[value.as_str()])).await;
    }
    let deleted = tokio::task::block_in_place(|| {
        wait_for_event(&log, "retention deleted segments", |fields| {
            fields["dir"]
                .as_str()
                .is_some_and(|dir| dir.ends_with(&format!("{TOPIC}-0")))
        })
    });
    for key in ["segments", "bytes", "log_start_offset"] {
        assert!(deleted["fields"][key].is_number(), "{key}: {deleted}");
    }

    kill(&mut broker);
    restart(&mut broker);
    let recovered = tokio::task::block_in_place(|| {
        wait_for_event(&log, "opened logs", |fields| {
            fields["previous"] == "Crashed"
        })
    });
    assert!(recovered["fields"]["partitions"].is_number(), "{recovered}");
    // Every line the broker wrote, across both runs, was one JSON object.
    assert!(json_lines(&log).len() > 4);
    drop(broker);
}
