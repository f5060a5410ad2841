//! Unit tests for the clap definitions: defaults, environment, and usage errors (exit 2).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::CommandFactory;

use super::*;
use crate::offset_spec::{StartPosition, StopPosition};

fn parse(args: &[&str]) -> Cli {
    let mut argv = vec!["strata"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn usage_error(args: &[&str]) -> clap::Error {
    let mut argv = vec!["strata"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).expect_err("expected a usage error")
}

#[test]
fn the_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn global_defaults() {
    // The environment of the test process may set STRATA_*; only check what flags decide.
    let cli = parse(&[
        "-b",
        "a:1,b:2",
        "--timeout",
        "250ms",
        "-vv",
        "topic",
        "list",
    ]);
    assert_eq!(cli.global.brokers, ["a:1", "b:2"]);
    assert_eq!(cli.global.timeout, Duration::from_millis(250));
    assert_eq!(cli.global.verbose, 2);
    assert!(matches!(cli.command, Command::Topic(TopicCommand::List)));
}

#[test]
fn global_flags_work_after_the_subcommand() {
    let cli = parse(&[
        "topics",
        "--format",
        "json",
        "-X",
        "linger.ms=10",
        "-X",
        "acks=1",
    ]);
    assert_eq!(cli.global.format, OutputFormat::Json);
    assert_eq!(
        cli.global.client_settings,
        [
            ("linger.ms".into(), "10".into()),
            ("acks".into(), "1".into())
        ]
    );
}

#[test]
fn topic_create_flags() {
    let cli = parse(&[
        "topic",
        "create",
        "a",
        "b",
        "-p",
        "6",
        "-r",
        "1",
        "-c",
        "retention.ms=5",
        "--dry-run",
    ]);
    let Command::Topic(TopicCommand::Create {
        names,
        partitions,
        replicas,
        configs,
        dry_run,
    }) = cli.command
    else {
        panic!("not topic create");
    };
    assert_eq!(names, ["a", "b"]);
    assert_eq!((partitions, replicas, dry_run), (Some(6), Some(1), true));
    assert_eq!(configs, [("retention.ms".into(), "5".into())]);
}

#[test]
fn produce_flags() {
    let cli = parse(&[
        "produce", "t", "v1", "v2", "-k", "key", "-H", "a=b=c", "-p", "2", "-Z", "--acks", "1",
        "-z", "zstd", "-q",
    ]);
    let Command::Produce(produce) = cli.command else {
        panic!("not produce")
    };
    assert_eq!(produce.values, ["v1", "v2"]);
    assert_eq!(produce.headers, [("a".into(), "b=c".into())]);
    assert_eq!(produce.acks, AcksArg::Leader);
    assert_eq!(produce.compression, CompressionArg::Zstd);
    assert!(produce.tombstone && produce.quiet);
    assert_eq!(produce.partition, Some(2));
}

#[test]
fn consume_accepts_negative_and_time_offsets() {
    let cli = parse(&["consume", "t", "-o", "-5", "-p", "0,2", "-n", "3", "-e"]);
    let Command::Consume(consume) = cli.command else {
        panic!("not consume")
    };
    let spec = consume.offset.unwrap();
    assert_eq!(spec.start, StartPosition::Tail(5));
    assert_eq!(spec.stop, StopPosition::Follow);
    assert_eq!(consume.partitions, [0, 2]);
    assert_eq!(consume.count, Some(3));
    assert!(consume.exit_at_end);

    let cli = parse(&["consume", "t", "-o", "@-15m:"]);
    let Command::Consume(consume) = cli.command else {
        panic!("not consume")
    };
    assert!(matches!(
        consume.offset.unwrap().start,
        StartPosition::Time(_)
    ));
}

#[test]
fn bad_values_are_usage_errors() {
    for args in [
        &["consume", "t", "-o", "beginning"][..],
        &["consume", "t", "-o", "10:5"],
        &["produce", "t", "-H", "novalue"],
        &["produce", "t", "--acks", "2"],
        &["--timeout", "10", "topics"],
        &["offsets", "t", "--time", "yesterday"],
        &["topic", "create"],
        &["topic", "nope"],
    ] {
        let error = usage_error(args);
        assert_eq!(error.exit_code(), 2, "{args:?}");
    }
}

#[test]
fn offsets_time_accepts_relative_times() {
    let cli = parse(&["offsets", "t", "--time", "-1h"]);
    let Command::Offsets(offsets) = cli.command else {
        panic!("not offsets")
    };
    assert!(offsets.time.is_some());
}

#[test]
fn every_subcommand_has_examples() {
    fn leaves(command: &clap::Command, out: &mut Vec<clap::Command>) {
        let children: Vec<_> = command
            .get_subcommands()
            .filter(|c| c.get_name() != "help")
            .collect();
        if children.is_empty() {
            out.push(command.clone());
        }
        for child in children {
            leaves(child, out);
        }
    }
    let mut all = Vec::new();
    leaves(&Cli::command(), &mut all);
    assert!(all.len() >= 10, "{}", all.len());
    let missing: Vec<_> = all
        .iter()
        .filter(|c| c.get_name() != "topics")
        .filter(|c| {
            !c.get_after_help()
                .is_some_and(|h| h.to_string().contains("Examples:"))
        })
        .map(|c| c.get_name().to_owned())
        .collect();
    assert!(missing.is_empty(), "no examples: {missing:?}");
}
