//! Unit tests for the clap definitions: defaults, environment, and usage errors (exit 2).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::CommandFactory;

use super::*;
use crate::offset_spec::{OffsetSpec, StartPosition, StopPosition};
use crate::seek_target::SeekTarget;

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
    assert!(matches!(
        cli.command,
        Some(Command::Topic(TopicCommand::List))
    ));
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
        cli.global.settings(),
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
    let Some(Command::Topic(TopicCommand::Create {
        names,
        partitions,
        replicas,
        configs,
        dry_run,
    })) = cli.command
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
        "produce", "t", "a.txt", "-", "-k", "key", "-H", "a=b=c", "-p", "2", "-Z", "--acks", "1",
        "-z", "zstd", "-q",
    ]);
    let Some(Command::Produce(produce)) = cli.command else {
        panic!("not produce")
    };
    assert_eq!(
        produce.files,
        [
            std::path::PathBuf::from("a.txt"),
            std::path::PathBuf::from("-")
        ]
    );
    assert!(produce.values.is_empty());
    assert_eq!(produce.headers, [("a".into(), "b=c".into())]);
    assert_eq!(produce.acks, AcksArg::Leader);
    assert_eq!(produce.compression, CompressionArg::Zstd);
    assert!(produce.tombstone && produce.quiet);
    assert_eq!(produce.partition, Some(2));
}

#[test]
fn consume_accepts_negative_and_time_offsets() {
    let cli = parse(&["consume", "t", "-o", "-5", "-p", "0,2", "-n", "3", "-e"]);
    let Some(Command::Consume(consume)) = cli.command else {
        panic!("not consume")
    };
    let spec = OffsetSpec::combine(&consume.offset).unwrap();
    assert_eq!(spec.start, StartPosition::Tail(5));
    assert_eq!(spec.stop, StopPosition::Follow);
    assert_eq!(consume.partitions, [0, 2]);
    assert_eq!(consume.count, Some(3));
    assert!(consume.exit_at_end);

    let cli = parse(&["consume", "t", "-o", "@-15m:"]);
    let Some(Command::Consume(consume)) = cli.command else {
        panic!("not consume")
    };
    assert!(matches!(
        OffsetSpec::combine(&consume.offset).unwrap().start,
        StartPosition::Time(_)
    ));
}

#[test]
fn consume_takes_kcat_forms() {
    let cli = parse(&[
        "consume",
        "t",
        "-o",
        "beginning",
        "-c",
        "3",
        "-o",
        "e@1700000000000",
    ]);
    let Some(Command::Consume(consume)) = cli.command else {
        panic!("not consume")
    };
    assert_eq!(consume.count, Some(3), "-c is -n");
    let spec = OffsetSpec::combine(&consume.offset).unwrap();
    assert_eq!(spec.start, StartPosition::Start);
    assert_eq!(spec.stop, StopPosition::Time(1_700_000_000_000));
    for (word, start) in [
        ("earliest", StartPosition::Start),
        ("latest", StartPosition::End),
    ] {
        let cli = parse(&["consume", "t", "-o", word, "--count", "1"]);
        let Some(Command::Consume(consume)) = cli.command else {
            panic!("not consume")
        };
        assert_eq!(OffsetSpec::combine(&consume.offset).unwrap().start, start);
    }
    let stored = usage_error(&["consume", "t", "-o", "stored"]).to_string();
    assert!(stored.contains("what -g always does"), "{stored}");
}

#[test]
fn produce_values_are_a_flag_and_exclude_files() {
    let cli = parse(&["produce", "t", "--value", "v1", "--value", "v2"]);
    let Some(Command::Produce(produce)) = cli.command else {
        panic!("not produce")
    };
    assert_eq!(produce.values, ["v1", "v2"]);
    assert_eq!(
        usage_error(&["produce", "t", "f.txt", "--value", "v"]).exit_code(),
        2
    );
}

#[test]
fn brokers_without_a_port_get_7070() {
    let cli = parse(&["-b", "kafka1,10.0.0.5:9000,[::1],[::1]:7071", "topics"]);
    assert_eq!(
        cli.global.brokers,
        ["kafka1:7070", "10.0.0.5:9000", "[::1]:7070", "[::1]:7071"]
    );
    assert_eq!(parse_broker("http://h:1"), Ok("http://h:1".to_owned()));
    for bad in ["h:", "h:x", ":7070", "::1", "[::1", "[::1]x", "h:70000"] {
        assert!(parse_broker(bad).is_err(), "{bad}");
    }
}

#[test]
fn dash_x_list_needs_no_command() {
    let cli = parse(&["-X", "list"]);
    assert!(cli.global.lists_settings() && cli.command.is_none());
    let cli = parse(&["-X", "linger.ms=1", "-X", "list", "topics"]);
    assert!(cli.global.lists_settings());
    assert_eq!(cli.global.settings(), [("linger.ms".into(), "1".into())]);
    assert!(!parse(&["topics"]).global.lists_settings());
}

#[test]
fn add_partitions_takes_a_count_or_a_total() {
    let cli = parse(&["topic", "add-partitions", "t", "--total", "12"]);
    let Some(Command::Topic(TopicCommand::AddPartitions { count, total, .. })) = cli.command else {
        panic!("not add-partitions")
    };
    assert_eq!((count, total), (None, Some(12)));
    let cli = parse(&["topic", "add-partitions", "t", "-n", "2"]);
    let Some(Command::Topic(TopicCommand::AddPartitions { count, total, .. })) = cli.command else {
        panic!("not add-partitions")
    };
    assert_eq!((count, total), (Some(2), None));
    for args in [
        &["topic", "add-partitions", "t"][..],
        &["topic", "add-partitions", "t", "-n", "2", "--total", "5"],
    ] {
        assert_eq!(usage_error(args).exit_code(), 2, "{args:?}");
    }
}

#[test]
fn completions_and_man_parse() {
    let cli = parse(&["completions", "bash"]);
    assert!(matches!(
        cli.command,
        Some(Command::Completions {
            shell: clap_complete::Shell::Bash
        })
    ));
    assert!(matches!(
        parse(&["completion", "zsh"]).command,
        Some(Command::Completions { .. })
    ));
    assert!(matches!(parse(&["man"]).command, Some(Command::Man)));
}

#[test]
fn every_format_token_is_explained_in_help() {
    let mut command = Cli::command();
    let consume = command
        .find_subcommand_mut("consume")
        .unwrap()
        .render_long_help()
        .to_string();
    for row in crate::format::TOKENS {
        assert!(consume.contains(row.token), "{} missing", row.token);
        assert!(consume.contains(row.meaning), "{} unexplained", row.token);
    }
    let produce = command
        .find_subcommand_mut("produce")
        .unwrap()
        .render_long_help()
        .to_string();
    for row in crate::format::TOKENS.iter().filter(|row| row.input) {
        assert!(produce.contains(row.meaning), "{} unexplained", row.token);
    }
}

#[test]
fn alter_config_help_lists_the_compaction_keys() {
    let mut command = Cli::command();
    let help = command
        .find_subcommand_mut("topic")
        .unwrap()
        .find_subcommand_mut("alter-config")
        .unwrap()
        .render_long_help()
        .to_string();
    for key in [
        "cleanup_policy",
        "delete_retention_ms",
        "min_cleanable_dirty_ratio",
    ] {
        assert!(help.contains(key), "{key}: {help}");
    }
    assert!(help.contains("refuses records without a key"), "{help}");
}

#[test]
fn bad_values_are_usage_errors() {
    for args in [
        &["consume", "t", "-o", "oldest"][..],
        &["consume", "t", "-o", "stored"],
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
    let Some(Command::Offsets(offsets)) = cli.command else {
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

#[test]
fn elect_leader_takes_a_topic_with_partitions_or_all_topics() {
    let cli = parse(&[
        "partition",
        "elect-leader",
        "--topic",
        "orders",
        "--partition",
        "0,2",
        "--partition",
        "5",
    ]);
    let Some(Command::Partition(PartitionCommand::ElectLeader(elect))) = cli.command else {
        panic!("not partition elect-leader")
    };
    assert_eq!(elect.topic.as_deref(), Some("orders"));
    assert_eq!(elect.partitions, [0, 2, 5]);
    assert!(!elect.all_topics);
    assert_eq!(elect.election_type, ElectionTypeArg::Preferred);

    for all in ["--all-topics", "--all-topic-partitions"] {
        let cli = parse(&[
            "partition",
            "elect-leader",
            all,
            "--election-type",
            "preferred",
        ]);
        let Some(Command::Partition(PartitionCommand::ElectLeader(elect))) = cli.command else {
            panic!("not partition elect-leader")
        };
        assert!(elect.all_topics && elect.topic.is_none(), "{all}");
    }
}

#[test]
fn elect_leader_needs_exactly_one_selection() {
    for args in [
        &["partition", "elect-leader"][..],
        &["partition", "elect-leader", "--topic", "t", "--all-topics"],
        &[
            "partition",
            "elect-leader",
            "--partition",
            "1",
            "--all-topics",
        ],
        &[
            "partition",
            "elect-leader",
            "--topic",
            "t",
            "--partition",
            "-1",
        ],
        &[
            "partition",
            "elect-leader",
            "--all-topics",
            "--election-type",
            "unclean",
        ],
    ] {
        assert_eq!(usage_error(args).exit_code(), 2, "{args:?}");
    }
}

#[test]
fn reassign_takes_flags_or_a_file() {
    let cli = parse(&[
        "partition",
        "reassign",
        "--topic",
        "orders",
        "--partition",
        "3",
        "--replicas",
        "2,3",
        "--dry-run",
    ]);
    let Some(Command::Partition(PartitionCommand::Reassign(reassign))) = cli.command else {
        panic!("not partition reassign")
    };
    assert_eq!(reassign.topic.as_deref(), Some("orders"));
    assert_eq!(reassign.partition, Some(3));
    assert_eq!(reassign.replicas, [2, 3]);
    assert!(reassign.dry_run && reassign.reassignment_json_file.is_none());

    let path = std::env::temp_dir().join(format!("strata-plan-{}.json", std::process::id()));
    std::fs::write(
        &path,
        r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[2,3]}]}"#,
    )
    .unwrap();
    let cli = parse(&[
        "partition",
        "reassign",
        "--reassignment-json-file",
        path.to_str().unwrap(),
    ]);
    std::fs::remove_file(&path).unwrap();
    let Some(Command::Partition(PartitionCommand::Reassign(reassign))) = cli.command else {
        panic!("not partition reassign")
    };
    let file = reassign.reassignment_json_file.unwrap();
    assert_eq!(file.partitions, [("t".to_owned(), 0, vec![2, 3])]);
    assert!(!reassign.dry_run);
}

#[test]
fn reassign_refuses_half_given_or_mixed_sources() {
    for args in [
        &["partition", "reassign"][..],
        &["partition", "reassign", "--topic", "t", "--partition", "0"],
        &["partition", "reassign", "--topic", "t", "--replicas", "1"],
        &[
            "partition",
            "reassign",
            "--partition",
            "0",
            "--replicas",
            "1",
        ],
        &[
            "partition",
            "reassign",
            "--topic",
            "t",
            "--partition",
            "0",
            "--replicas",
            "1,x",
        ],
        &[
            "partition",
            "reassign",
            "--topic",
            "t",
            "--partition",
            "0",
            "--replicas",
            "1",
            "--reassignment-json-file",
            "plan.json",
        ],
        &[
            "partition",
            "reassign",
            "--reassignment-json-file",
            "/nonexistent/plan.json",
        ],
    ] {
        assert_eq!(usage_error(args).exit_code(), 2, "{args:?}");
    }
}

#[test]
fn cluster_and_partition_help_explain_their_output() {
    let mut command = Cli::command();
    let partition = command.find_subcommand_mut("partition").unwrap();
    let reassign = partition
        .find_subcommand_mut("reassign")
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(
        reassign.contains(r#"{"partitions":[{"topic":"orders","partition":0,"replicas":[2,3]}]}"#),
        "{reassign}"
    );
    let elect = partition
        .find_subcommand_mut("elect-leader")
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(
        elect.contains("ELECTION_NOT_NEEDED is not a failure"),
        "{elect}"
    );
}

#[test]
fn group_commands_parse() {
    let cli = parse(&["group", "list"]);
    assert!(matches!(
        cli.command,
        Some(Command::Group(GroupCommand::List))
    ));
    assert!(matches!(parse(&["groups"]).command, Some(Command::Groups)));
    let cli = parse(&["group", "describe", "billing", "audit"]);
    match cli.command {
        Some(Command::Group(GroupCommand::Describe { groups })) => {
            assert_eq!(groups, ["billing", "audit"]);
        }
        other => panic!("{other:?}"),
    }
    let cli = parse(&["group", "delete", "billing", "-y"]);
    assert!(matches!(
        cli.command,
        Some(Command::Group(GroupCommand::Delete { yes: true, .. }))
    ));
}

#[test]
fn group_seek_is_a_dry_run_unless_execute() {
    let seek = |args: &[&str]| match parse(args).command {
        Some(Command::Group(GroupCommand::Seek(seek))) => seek,
        other => panic!("{other:?}"),
    };
    let args = seek(&["group", "seek", "billing", "--to", "start"]);
    assert_eq!(args.group, "billing");
    assert_eq!(args.to, Some(SeekTarget::Start));
    assert!(!args.execute);
    assert!(args.topics.is_empty());
    let args = seek(&[
        "group",
        "seek",
        "billing",
        "--to",
        "@-1h",
        "--topics",
        "orders,audit",
        "--execute",
    ]);
    assert!(matches!(args.to, Some(SeekTarget::Time(_))));
    assert_eq!(args.topics, ["orders", "audit"]);
    assert!(args.execute);
    assert_eq!(
        seek(&["group", "seek", "g", "--to", "1000"]).to,
        Some(SeekTarget::Offset(1000))
    );
    assert_eq!(
        seek(&["group", "seek", "g", "--shift-by", "-50"]).shift_by,
        Some(-50)
    );
}

#[test]
fn group_usage_errors_exit_2() {
    for args in [
        &["group", "seek", "billing"][..],
        &[
            "group",
            "seek",
            "billing",
            "--to",
            "start",
            "--shift-by",
            "1",
        ],
        &["group", "seek", "billing", "--to", "yesterday"],
        &["group", "seek", "", "--to", "end"],
        &["group", "describe"],
        &["group", "describe", ""],
        &["group", "delete"],
        &["consume", "orders", "-g", ""],
    ] {
        let error = usage_error(args);
        assert_eq!(error.exit_code(), 2, "{args:?}");
    }
    let error = usage_error(&["group", "seek", "g", "--to", "soon"]);
    assert!(error.to_string().contains("start, end"), "{error}");
}

#[test]
fn consume_takes_a_group() {
    let cli = parse(&["consume", "orders", "-g", "billing"]);
    match cli.command {
        Some(Command::Consume(args)) => assert_eq!(args.group.as_deref(), Some("billing")),
        other => panic!("{other:?}"),
    }
}
