//! The arguments of `strata dlt` (docs/CLI.md, "Dead-letter topics"): `list` and
//! `replay`. Kept apart from `args.rs` so each file stays one concept.

use clap::{Args, Subcommand};

use crate::args::parse_key_value;
use crate::offset_spec::{OffsetPart, OffsetSpec};
use crate::timestamp::now_ms;

#[derive(Debug, Subcommand)]
pub enum DltCommand {
    /// List dead-letter topics: DLT SOURCE GROUP ERROR-TYPE RECORDS
    #[command(after_help = "Examples:
  strata dlt list
  strata dlt list orders --format json

The client library creates <topic>.<group>.dlt for a group consumer with a retry policy
(docs/RETRY.md); this lists those topics (found by their strata.retry.* labels) and
counts their records by the strata.error.type header. Each topic is read once to
count. Read the records with: strata consume orders.billing.dlt -o start -e -f '%k %h\\n'")]
    List {
        /// Only the dead-letter topics of this source topic
        topic: Option<String>,
    },
    /// Replay dead-lettered records; a dry run unless --execute
    #[command(after_help = "Examples:
  strata dlt replay orders.billing.dlt                       (prints the plan only)
  strata dlt replay orders.billing.dlt --execute             (to orders.billing.retry.0)
  strata dlt replay orders.billing.dlt --where strata.error.type=billing::Declined -n 100 --execute
  strata dlt replay orders.billing.dlt --to source --yes --execute

--to retry (default): the group's first retry topic, so only the failing group sees the
records again, due at once with every attempt. --to source: the source topic, which every
group reading it consumes again; refused without --yes. --to TOPIC: any existing topic.
Records keep their key, value, headers and partition number and gain strata.replay.count
and strata.replay.from. The progress is committed under the group
strata-dlt-replay.<dlt topic> once the target acknowledged the records (acks=all), so a
second run does not resend them; -o never starts before that progress. Records passed over
by --where are not offered again either. -o: start (default), N, N:M (M exclusive), :M or
@T (unix ms, 2024-01-01, RFC 3339, -1h).")]
    Replay(DltReplayArgs),
}

/// `strata dlt replay`.
#[derive(Debug, Args)]
pub struct DltReplayArgs {
    /// The dead-letter topic, e.g. orders.billing.dlt
    pub topic: String,
    /// Where to: retry (the group's first retry topic), source, or a topic name
    #[arg(long, value_name = "retry|source|TOPIC", default_value = "retry", value_parser = parse_replay_to)]
    pub to: ReplayTo,
    /// Which records of each partition: start, N, N:M, :M or @T
    #[arg(short = 'o', long = "offset", value_name = "OFFSET", value_parser = parse_replay_offset,
          allow_hyphen_values = true)]
    pub offset: Option<OffsetSpec>,
    /// Replay at most N records in all
    #[arg(short = 'n', long = "num", value_name = "N")]
    pub max_records: Option<u64>,
    /// Only records whose header KEY has VALUE (repeatable: all must hold)
    #[arg(long = "where", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub filters: Vec<(String, String)>,
    /// Replay; without it nothing is produced or committed
    #[arg(long)]
    pub execute: bool,
    /// Confirm --to source (every group reading the source topic sees the records)
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
}

/// `--to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayTo {
    Retry,
    Source,
    Topic(String),
}

fn parse_replay_to(input: &str) -> Result<ReplayTo, String> {
    match input {
        "" => Err("expected retry, source or a topic name".to_owned()),
        "retry" => Ok(ReplayTo::Retry),
        "source" => Ok(ReplayTo::Source),
        topic => Ok(ReplayTo::Topic(topic.to_owned())),
    }
}

fn parse_replay_offset(input: &str) -> Result<OffsetSpec, String> {
    let part = OffsetPart::parse(input, now_ms()).map_err(|error| error.reason)?;
    OffsetSpec::combine(&[part]).map_err(|error| error.reason)
}
