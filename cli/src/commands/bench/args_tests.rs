//! Flags and defaults of `strata bench`, parsed through the whole CLI definition.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use clap::Parser as _;

use super::*;
use crate::args::{Cli, Command};

fn spec(args: &[&str]) -> BenchSpec {
    let mut argv = vec!["strata", "bench"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let Some(Command::Bench(command)) = cli.command else {
        panic!("not bench");
    };
    BenchSpec::try_from(command).unwrap()
}

fn usage_error(args: &[&str]) -> clap::Error {
    let mut argv = vec!["strata", "bench"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).expect_err("expected a usage error")
}

#[test]
fn produce_defaults_are_the_documented_ones() {
    let spec = spec(&["produce"]);
    assert_eq!(spec.mode, Mode::Produce);
    assert_eq!(spec.run.topic, DEFAULT_TOPIC);
    assert!(!spec.run.create);
    assert_eq!(spec.stop(), Stop::Duration(Duration::from_secs(60)));
    assert_eq!(spec.warmup(), Duration::from_secs(10));
    let producer = spec.producer.unwrap();
    assert_eq!(producer.record_size, 1024);
    assert_eq!(producer.keys, Keys::None);
    assert_eq!(producer.rate, Rate::Unlimited);
    assert_eq!(producer.producers, 1);
    assert_eq!(producer.acks, AcksArg::All);
    assert_eq!(producer.linger, Duration::from_millis(5));
    assert_eq!(producer.batch_size, 16_384);
    assert_eq!(producer.compression, CompressionArg::None);
    assert_eq!(producer.window, None);
    assert_eq!(spec.consumers, 0);
}

#[test]
fn consume_has_no_warmup_and_no_producer_flags() {
    let spec = spec(&["consume", "--consumers", "3", "--records", "1000"]);
    assert_eq!(spec.mode, Mode::Consume);
    assert_eq!(spec.warmup(), Duration::ZERO);
    assert_eq!(spec.stop(), Stop::Records(1000));
    assert_eq!(spec.consumers, 3);
    assert!(spec.producer.is_none());
    assert!(usage_error(&["consume", "--rate", "10"]).exit_code() == 2);
}

#[test]
fn e2e_takes_every_flag() {
    let spec = spec(&[
        "e2e",
        "--topic",
        "t",
        "--create",
        "-p",
        "1",
        "-r",
        "1",
        "--duration",
        "30s",
        "--warmup",
        "2s",
        "--record-size",
        "1KiB",
        "--keys",
        "100",
        "--rate",
        "10000",
        "--producers",
        "2",
        "--consumers",
        "2",
        "--acks",
        "1",
        "--linger",
        "0ms",
        "--batch-size",
        "64KiB",
        "-z",
        "lz4",
        "--drain",
        "3s",
        "--hgrm",
        "out.hgrm",
        "--csv",
        "out.csv",
        "--window",
        "500",
    ]);
    assert_eq!(spec.mode, Mode::EndToEnd);
    assert_eq!((spec.run.partitions, spec.run.replicas), (Some(1), Some(1)));
    assert_eq!(spec.stop(), Stop::Duration(Duration::from_secs(30)));
    assert_eq!(spec.warmup(), Duration::from_secs(2));
    assert_eq!(spec.drain, Duration::from_secs(3));
    assert_eq!(spec.consumers, 2);
    assert!(spec.run.hgrm.is_some() && spec.run.csv.is_some());
    let producer = spec.producer.unwrap();
    assert_eq!(producer.record_size, 1024);
    assert_eq!(producer.keys, Keys::Distinct(100));
    assert_eq!(producer.rate, Rate::PerSecond(10_000.0));
    assert_eq!(producer.producers, 2);
    assert_eq!(producer.acks, AcksArg::Leader);
    assert_eq!(producer.linger, Duration::ZERO);
    assert_eq!(producer.batch_size, 64 << 10);
    assert_eq!(producer.compression, CompressionArg::Lz4);
    assert_eq!(producer.window, Some(500));
}

#[test]
fn rate_minus_one_is_unlimited() {
    let producer = spec(&["produce", "--rate", "-1"]).producer.unwrap();
    assert_eq!(producer.rate, Rate::Unlimited);
    assert_eq!(producer.rate.as_number(), -1.0);
    let producer = spec(&["produce", "--rate", "2.5"]).producer.unwrap();
    assert_eq!(producer.rate, Rate::PerSecond(2.5));
}

#[test]
fn global_flags_reach_the_bench() {
    let cli = Cli::try_parse_from([
        "strata",
        "bench",
        "produce",
        "-X",
        "linger.ms=1",
        "--format",
        "json",
    ])
    .unwrap();
    assert_eq!(cli.global.settings(), [("linger.ms".into(), "1".into())]);
    assert_eq!(cli.global.format, crate::output::OutputFormat::Json);
}

#[test]
fn bad_values_are_usage_errors() {
    for args in [
        &["produce", "--records", "5", "--duration", "1s"][..],
        &["produce", "-p", "3"],
        &["produce", "--rate", "0"],
        &["produce", "--rate", "-2"],
        &["produce", "--keys", "some"],
        &["produce", "--keys", "0"],
        &["produce", "--record-size", "0"],
        &["produce", "--record-size", "1KB"],
        &["produce", "--duration", "10"],
        &["produce", "--producers", "0"],
        &["produce", "--acks", "2"],
        &["e2e", "--consumers", "0"],
        &["nope"],
    ] {
        assert_eq!(usage_error(args).exit_code(), 2, "{args:?}");
    }
}

#[test]
fn sizes_take_binary_units() {
    assert_eq!(parse_size_arg("100"), Ok(100));
    assert_eq!(parse_size_arg("16KiB"), Ok(16 << 10));
    assert_eq!(parse_size_arg("1MiB"), Ok(1 << 20));
    assert_eq!(parse_size_arg("2GiB"), Ok(2 << 30));
    assert!(parse_size_arg("1.5KiB").is_err());
    assert!(parse_size_arg("KiB").is_err());
}

#[test]
fn a_cluster_run_takes_several_brokers_kafkas_replication_factor_and_acks() {
    let argv = [
        "strata",
        "-b",
        "127.0.0.1,127.0.0.2:7070,127.0.0.3",
        "bench",
        "produce",
        "--create",
        "--replication-factor",
        "3",
        "--acks",
        "all",
    ];
    let cli = Cli::try_parse_from(argv).unwrap();
    assert_eq!(
        cli.global.brokers,
        ["127.0.0.1:7070", "127.0.0.2:7070", "127.0.0.3:7070"]
    );
    let Some(Command::Bench(command)) = cli.command else {
        panic!("not bench");
    };
    let produce = BenchSpec::try_from(command).unwrap();
    assert_eq!(produce.run.replicas, Some(3));
    assert_eq!(produce.producer.unwrap().acks, AcksArg::All);
    assert_eq!(spec(&["e2e", "--create", "-r", "3"]).run.replicas, Some(3));
    // Like -p, the replication factor only shapes a topic the bench creates.
    assert_eq!(
        usage_error(&["produce", "--replication-factor", "3"]).exit_code(),
        2
    );
}

#[test]
fn consume_group_takes_its_members_and_defaults_to_one() {
    let plain = spec(&["consume"]);
    assert_eq!(
        plain.group, None,
        "without --group, consume assigns as before"
    );
    assert_eq!(plain.consumers, 1);
    let one = spec(&["consume", "--group", "bench-1"]);
    assert_eq!(
        one.group,
        Some(GroupSpec {
            id: "bench-1".to_owned(),
            members: 1
        })
    );
    assert_eq!(one.consumers, 1);
    let four = spec(&["consume", "--group", "bench-4", "--members", "4"]);
    assert_eq!(four.group.as_ref().map(|group| group.members), Some(4));
    assert_eq!(four.consumers, 4, "the parameters count the members");
    let most = MAX_GROUP_MEMBERS.to_string();
    let bound = spec(&["consume", "--group", "g", "--members", &most]);
    assert_eq!(bound.consumers, MAX_GROUP_MEMBERS);
}

#[test]
fn consume_group_flags_are_checked() {
    let message = |args: &[&str]| usage_error(args).to_string();
    let without_group = message(&["consume", "--members", "2"]);
    assert!(
        without_group.contains("--group"),
        "--members without --group names --group: {without_group}"
    );
    let zero = message(&["consume", "--group", "g", "--members", "0"]);
    assert!(zero.contains("--members"), "{zero}");
    let too_many = (MAX_GROUP_MEMBERS + 1).to_string();
    let above = message(&["consume", "--group", "g", "--members", &too_many]);
    assert!(
        above.contains(&format!("1..={MAX_GROUP_MEMBERS}")),
        "{above}"
    );
    let both = message(&["consume", "--group", "g", "--consumers", "2"]);
    assert!(
        both.contains("--consumers") && both.contains("--group"),
        "--consumers splits partitions by hand, the group assigns them: {both}"
    );
    assert!(message(&["consume", "--group", ""]).contains("must not be empty"));
    assert!(message(&["consume", "--group", " g"]).contains("blanks"));
    assert_eq!(
        usage_error(&["e2e", "--group", "g"]).exit_code(),
        2,
        "groups are for consume only"
    );
}
