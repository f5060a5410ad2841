//! `strata dlt replay <dlt> [--to retry|source|TOPIC] [-o ..] [-n N] [--where k=v]
//! [--execute] [--yes]` (docs/CLI.md, "Dead-letter topics"; docs/RETRY.md, "Replay"):
//! [`DeadLetters::replay`] with the plan or the outcome printed.
//!
//! A dry run unless `--execute`, like `group seek`. The result goes to stdout: a summary
//! (`DLT TARGET WOULD-REPLAY|REPLAYED EXAMINED PROGRESS-GROUP`), the records by
//! `strata.error.type`,
//! and a sample; with `--format json` one object. The dry-run note and the `--to source`
//! warning go to stderr. `--to source` without `--yes` is refused before anything is
//! read (exit 2, `CONFIRMATION_REQUIRED`); a topic that is not a dead-letter topic exits
//! 1 with `NOT_A_DEAD_LETTER_TOPIC`.

use std::collections::BTreeMap;

use serde::Serialize;
use strata_client::{DeadLetters, Replay, ReplayError, ReplayReport, ReplayStart, ReplayTarget};

use super::Context;
use crate::args::{DltReplayArgs, ReplayTo};
use crate::exit::{CliError, ExitStatus};
use crate::offset_spec::{OffsetSpec, StartPosition, StopPosition};
use crate::output::{status, OutputFormat};
use crate::table::{cell, section, Table};

/// `--format json`.
#[derive(Debug, Serialize)]
struct ReplayView {
    dlt: String,
    target: String,
    executed: bool,
    progress_group: String,
    examined: u64,
    records: u64,
    by_error_type: BTreeMap<String, u64>,
    sample: Vec<SampleView>,
}

#[derive(Debug, Serialize)]
struct SampleView {
    partition: i32,
    offset: i64,
    key: Option<String>,
    error_type: String,
    error_message: Option<String>,
}

pub async fn run(context: &mut Context, args: DltReplayArgs) -> Result<ExitStatus, CliError> {
    let replay = build(&args)?;
    if args.to == ReplayTo::Source {
        if !args.yes {
            return Err(CliError {
                exit: ExitStatus::Usage,
                ..CliError::failure(
                    "CONFIRMATION_REQUIRED",
                    "refusing to replay into the source topic without --yes: every group \
                     reading it would consume the records again; nothing was replayed",
                )
            }
            .with_hint(
                "use --to retry (the default) to reach only the failing group, or add --yes",
            ));
        }
        status!("warning: --to source: every group reading the source topic consumes these records again");
    }
    let dead_letters = DeadLetters::of_topic(&context.client, &args.topic)
        .await
        .map_err(|error| replay_error(error, &args.topic))?;
    let report = dead_letters
        .replay(&replay)
        .await
        .map_err(|error| replay_error(error, &args.topic))?;
    match context.format() {
        OutputFormat::Json => context.print_json(&view(report.clone()))?,
        OutputFormat::Text => context.print(&render(&report))?,
    }
    if report.executed {
        status!(
            "replayed {} records to {}; progress committed under group {}",
            report.matched,
            report.target,
            report.progress_group
        );
    } else {
        status!("(dry run: add --execute to replay)");
    }
    Ok(ExitStatus::Success)
}

/// The library's [`Replay`] for the flags; `-o` forms a replay cannot use are usage
/// errors.
fn build(args: &DltReplayArgs) -> Result<Replay, CliError> {
    let mut replay = Replay::new().to(match &args.to {
        ReplayTo::Retry => ReplayTarget::Retry,
        ReplayTo::Source => ReplayTarget::Source,
        ReplayTo::Topic(topic) => ReplayTarget::Topic(topic.clone()),
    });
    if args.yes {
        replay = replay.confirm_every_group();
    }
    if let Some(OffsetSpec { start, stop }) = args.offset {
        replay = replay.start(match start {
            StartPosition::Start => ReplayStart::Start,
            StartPosition::Offset(offset) => ReplayStart::Offset(offset),
            StartPosition::Time(time_ms) => ReplayStart::Time(time_ms),
            StartPosition::End | StartPosition::Tail(_) | StartPosition::AfterStart(_) => {
                return Err(CliError::usage(
                    "-o for a replay starts at start, N or @T (end, -N and +N are not supported)",
                ))
            }
        });
        match stop {
            StopPosition::Follow | StopPosition::End => {}
            StopPosition::Offset(offset) => replay = replay.stop_offset(offset),
            StopPosition::Time(_) => {
                return Err(CliError::usage(
                    "-o for a replay stops at an offset (N:M) or the end, not at a time",
                ))
            }
        }
    }
    if let Some(records) = args.max_records {
        replay = replay.max_records(records);
    }
    for (key, value) in &args.filters {
        replay = replay.filter(key.clone(), value.clone());
    }
    if args.execute {
        replay = replay.execute();
    }
    Ok(replay)
}

fn replay_error(error: ReplayError, topic: &str) -> CliError {
    let hint = match &error {
        ReplayError::NotDeadLetterTopic { .. } => {
            Some("strata dlt list shows the dead-letter topics".to_owned())
        }
        ReplayError::NoRetryTopic { .. } => {
            Some("replay with --to source --yes, or --to TOPIC".to_owned())
        }
        _ => None,
    };
    let exit = match error {
        ReplayError::ConfirmationRequired { .. } => ExitStatus::Usage,
        _ => ExitStatus::Failure,
    };
    let error = CliError {
        exit,
        ..CliError::failure(error.code_name(), &error).retriable(error.is_retriable())
    }
    .context(format!("replaying {topic}"));
    match hint {
        Some(hint) => error.with_hint(hint),
        None => error,
    }
}

fn render(report: &ReplayReport) -> String {
    let mut summary = Table::key_value();
    summary
        .row(["DLT", report.dlt.as_str()])
        .row(["TARGET", report.target.as_str()])
        .row([
            if report.executed {
                "REPLAYED"
            } else {
                "WOULD-REPLAY"
            }
            .to_owned(),
            report.matched.to_string(),
        ])
        .row(["EXAMINED".to_owned(), report.examined.to_string()])
        .row(["PROGRESS-GROUP", report.progress_group.as_str()]);
    let mut by_type = Table::new(["ERROR-TYPE", "RECORDS"]);
    for (error_type, records) in &report.by_error_type {
        by_type.row([error_type.clone(), records.to_string()]);
    }
    let mut sample = Table::new(["PARTITION", "OFFSET", "KEY", "ERROR-TYPE", "ERROR-MESSAGE"]);
    for record in &report.sample {
        sample.row([
            record.partition.to_string(),
            record.offset.to_string(),
            cell(record.key.as_deref()),
            record.error_type.clone(),
            cell(record.error_message.as_deref()),
        ]);
    }
    format!(
        "{}{summary}\n{}{by_type}\n{}{sample}",
        section("SUMMARY"),
        section("BY ERROR TYPE"),
        section("SAMPLE")
    )
}

fn view(report: ReplayReport) -> ReplayView {
    ReplayView {
        dlt: report.dlt,
        target: report.target,
        executed: report.executed,
        progress_group: report.progress_group,
        examined: report.examined,
        records: report.matched,
        by_error_type: report.by_error_type,
        sample: report
            .sample
            .into_iter()
            .map(|record| SampleView {
                partition: record.partition,
                offset: record.offset,
                key: record.key,
                error_type: record.error_type,
                error_message: record.error_message,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use clap::Parser;
    use strata_client::{Replay, ReplayStart, ReplayTarget};

    use super::build;
    use crate::args::{Cli, Command, DltCommand, DltReplayArgs};

    fn replay_args(args: &[&str]) -> DltReplayArgs {
        let argv = ["strata", "dlt", "replay", "orders.billing.dlt"];
        let cli = Cli::try_parse_from(argv.iter().chain(args)).unwrap();
        match cli.command {
            Some(Command::Dlt(DltCommand::Replay(args))) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_become_the_library_replay() {
        assert_eq!(build(&replay_args(&[])).unwrap(), Replay::new());
        let args = replay_args(&[
            "--to",
            "audit",
            "-o",
            "3:9",
            "-n",
            "2",
            "--where",
            "strata.error.type=a::B",
            "--where",
            "k=v=w",
            "--execute",
        ]);
        let expected = Replay::new()
            .to(ReplayTarget::Topic("audit".to_owned()))
            .start(ReplayStart::Offset(3))
            .stop_offset(9)
            .max_records(2)
            .filter("strata.error.type", "a::B")
            .filter("k", "v=w")
            .execute();
        assert_eq!(build(&args).unwrap(), expected);
        let args = replay_args(&["--to", "source", "-y", "-o", "@1700000000000"]);
        let expected = Replay::new()
            .to(ReplayTarget::Source)
            .confirm_every_group()
            .start(ReplayStart::Time(1_700_000_000_000));
        assert_eq!(build(&args).unwrap(), expected);
    }

    #[test]
    fn offsets_a_replay_cannot_use_are_usage_errors() {
        for offset in ["end", "-5", "+5", "@1700000000000:1700000001000"] {
            let error = build(&replay_args(&["-o", offset])).err();
            assert_eq!(error.map(|e| e.exit.code()), Some(2), "{offset}");
        }
    }
}
