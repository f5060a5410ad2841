//! The command line, as clap derive types (the grammar users read is docs/CLI.md).
//!
//! Global flags follow the precedence flag > environment > default (profiles come later).
//! Values with a grammar of their own (`-o`, `--time`, durations, `k=v` pairs) are parsed
//! here through `value_parser`, so a malformed one is a clap usage error with exit code 2.
//! Each subcommand's `after_help` carries two or three examples that work when pasted.

use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::commands::BenchCommand;
use crate::duration::parse_duration_arg;
use crate::offset_spec::OffsetSpec;
use crate::output::OutputFormat;
use crate::timestamp::{now_ms, parse_timestamp};

/// Produce, consume and administer a Strata cluster.
#[derive(Debug, Parser)]
#[command(name = "strata", version, propagate_version = true)]
#[command(after_help = "Examples:
  strata topic create orders -p 6
  printf 'k1 v1\\nk2 v2\\n' | strata produce orders -f '%k %v\\n'
  strata consume orders -o start -n 10 -f '%p@%o %k=%v\\n'")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Seed brokers, host:port[,host:port...]
    #[arg(
        short = 'b',
        long,
        env = "STRATA_BROKERS",
        default_value = "127.0.0.1:7070",
        value_delimiter = ',',
        global = true,
        value_name = "HOST:PORT"
    )]
    pub brokers: Vec<String>,
    /// Output of listings, reports and errors
    #[arg(long, env = "STRATA_FORMAT", value_enum, default_value_t = OutputFormat::Text, global = true)]
    pub format: OutputFormat,
    /// Client setting with its Kafka name, e.g. -X linger.ms=10 (repeatable)
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_key_value, global = true)]
    pub client_settings: Vec<(String, String)>,
    /// Deadline for admin requests (500ms, 30s, 2m)
    #[arg(long, env = "STRATA_TIMEOUT", default_value = "10s", value_parser = parse_duration_arg,
          global = true, value_name = "DURATION")]
    pub timeout: Duration,
    /// Debug logs on stderr (-vv for more); RUST_LOG overrides
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, describe, alter and delete topics
    #[command(subcommand)]
    Topic(TopicCommand),
    /// List topics (same as `topic list`)
    Topics,
    /// Produce records from stdin lines or arguments
    #[command(after_help = "Examples:
  echo hello | strata produce orders
  printf 'k1 v1\\nk2 v2\\n' | strata produce orders -f '%k %v\\n' -H source=cli
  strata produce orders -k user-7 '{\"id\":7}' '{\"id\":8}'

Input: one record per stdin line by default (format '%v\\n'); -f cuts keys, headers and
partitions out of each line with the tokens of consume -f (%k %v %K %V %h %p %d).
Delivery reports, one per record ('Produced to partition 2 at offset 41 with timestamp
1700000000000.'), are metadata and go to stderr in text mode; with --format json they are
the result and go to stdout as JSON lines {\"topic\",\"partition\",\"offset\",\"timestamp\"}.
-q turns them off. Exits 1 if any record was not delivered.")]
    Produce(ProduceArgs),
    /// Consume records as JSON lines or a custom format
    #[command(after_help = "Examples:
  strata consume orders -o start -n 10
  strata consume orders -o -5 -e -f '%p@%o %k=%v\\n'
  strata consume orders -o @-15m: -p 0,2 | jq .value

-o: start | end | N | N: | -N (last N per partition) | +N | :M | N:M (M exclusive) |
...:end | @T | @T: | @T1:T2 | @:T, with T unix ms, 2024-01-01, RFC 3339 or -15m.
Without -n, :end or -e, follows the log until Ctrl-C (then exits 0).
-f tokens: %t %p %o %k %K %v %V %h %H %d %d{rfc3339} %e %[ %] %% \\n \\t \\\\")]
    Consume(ConsumeArgs),
    /// Start and end offsets of each partition, or the first offset at a time
    #[command(after_help = "Examples:
  strata offsets orders
  strata offsets orders --time 2024-01-01
  strata offsets orders --time -1h --format json")]
    Offsets(OffsetsArgs),
    /// Cluster-wide information
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Benchmark producing, consuming, and end-to-end latency
    #[command(
        subcommand,
        after_help = "Examples:
  strata bench produce --create -p 6 -r 1 --records 50000000 --record-size 100 --acks 1
  strata bench consume --records 50000000
  strata bench e2e --rate 1000 --duration 60s --format json > e2e.json

Output follows kafka-producer-perf-test, kafka-consumer-perf-test and OMB; docs/CLI.md
describes the flags and docs/BENCHMARKS.md the measured figures."
    )]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create one or more topics
    #[command(after_help = "Examples:
  strata topic create orders
  strata topic create orders payments -p 6 -r 1 -c retention_ms=604800000
  strata topic create orders -p 3 --dry-run")]
    Create {
        /// Topics to create
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// Number of partitions (broker default when left out)
        #[arg(short = 'p', long, value_parser = clap::value_parser!(i32).range(1..))]
        partitions: Option<i32>,
        /// Replication factor (broker default when left out)
        #[arg(short = 'r', long, value_parser = clap::value_parser!(i32).range(1..))]
        replicas: Option<i32>,
        /// Topic config KEY=VALUE (repeatable); Kafka's dotted names are accepted
        #[arg(short = 'c', long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        /// Validate only; create nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// List topics: NAME PARTITIONS REPLICAS
    #[command(after_help = "Examples:
  strata topic list
  strata topic list --format json | jq -r '.[].name'")]
    List,
    /// Describe a topic: summary, configs and partitions
    #[command(after_help = "Examples:
  strata topic describe orders
  strata topic describe orders -p
  strata topic describe orders --format json")]
    Describe {
        /// Topic to describe
        name: String,
        /// Print only the partitions section
        #[arg(short = 'p', long = "print-partitions")]
        partitions_only: bool,
    },
    /// Delete topics and all their records
    #[command(after_help = "Examples:
  strata topic delete orders
  strata topic delete orders payments -y

Asks for confirmation on a terminal; without a terminal (scripts, CI) -y is required.")]
    Delete {
        /// Topics to delete
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// Do not ask for confirmation
        #[arg(short = 'y', long = "yes")]
        yes: bool,
    },
    /// Set or remove topic configs
    #[command(after_help = "Examples:
  strata topic alter-config orders --set retention_ms=86400000
  strata topic alter-config orders --set cleanup_policy=compact --delete retention_bytes")]
    AlterConfig {
        /// Topic to change
        name: String,
        /// KEY=VALUE to set (repeatable)
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// KEY to reset to its default (repeatable)
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Add partitions to a topic (keys then map to different partitions)
    #[command(after_help = "Examples:
  strata topic add-partitions orders -n 3")]
    AddPartitions {
        /// Topic to grow
        name: String,
        /// How many partitions to add
        #[arg(short = 'n', long = "num", value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
        count: i32,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Brokers, cluster id, controller id and topic count
    #[command(after_help = "Examples:
  strata cluster info
  strata cluster info --format json
  STRATA_BROKERS=10.0.0.5:7070 strata cluster info")]
    Info,
}

/// `--acks`: how many replicas must have a record before it counts as delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AcksArg {
    All,
    #[value(name = "1")]
    Leader,
    #[value(name = "0")]
    None,
}

/// `-z`: batch compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    None,
    Lz4,
    Zstd,
}

/// `strata produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to produce to
    pub topic: String,
    /// Values to send instead of reading stdin
    pub values: Vec<String>,
    /// Key for every record
    #[arg(short = 'k', long)]
    pub key: Option<String>,
    /// Header KEY=VALUE for every record, split on the first '=' (repeatable)
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub headers: Vec<(String, String)>,
    /// Send every record to this partition instead of hashing the key
    #[arg(short = 'p', long)]
    pub partition: Option<i32>,
    /// Input format for stdin (default '%v\n')
    #[arg(short = 'f', long = "input-format", value_name = "FORMAT")]
    pub input_format: Option<String>,
    /// Send an empty value as null (a tombstone for compaction)
    #[arg(short = 'Z', long)]
    pub tombstone: bool,
    /// Replicas that must acknowledge
    #[arg(long, value_enum, default_value = "all")]
    pub acks: AcksArg,
    /// Batch compression
    #[arg(short = 'z', long, value_enum, default_value = "none")]
    pub compression: CompressionArg,
    /// Print no delivery reports
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `strata consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to read
    pub topic: String,
    /// Where to start and stop in each partition
    #[arg(short = 'o', long = "offset", value_name = "SPEC", value_parser = parse_offset_arg,
          allow_hyphen_values = true)]
    pub offset: Option<OffsetSpec>,
    /// Only these partitions (comma separated)
    #[arg(
        short = 'p',
        long = "partitions",
        value_delimiter = ',',
        value_name = "P,P"
    )]
    pub partitions: Vec<i32>,
    /// Stop after N records in total
    #[arg(short = 'n', long = "num", value_name = "N")]
    pub count: Option<u64>,
    /// Stop at the end offsets seen at start (like appending :end to -o)
    #[arg(short = 'e', long = "exit-at-end")]
    pub exit_at_end: bool,
    /// Output format; 'json' (the default) prints one JSON object per record
    #[arg(short = 'f', long = "output-format", value_name = "FORMAT")]
    pub output_format: Option<String>,
    /// Indent JSON output
    #[arg(long)]
    pub pretty: bool,
    /// JSON without the value, with value_size instead
    #[arg(long)]
    pub meta_only: bool,
    /// Consumer group (not supported yet)
    #[arg(short = 'g', long)]
    pub group: Option<String>,
}

/// `strata offsets`.
#[derive(Debug, Args)]
pub struct OffsetsArgs {
    /// Topic whose partitions to list
    pub topic: String,
    /// Show the first offset with a timestamp at or after T (unix ms, date, RFC 3339, -1h)
    #[arg(long, value_name = "T", value_parser = parse_time_arg, allow_hyphen_values = true)]
    pub time: Option<i64>,
}

/// `KEY=VALUE`, split on the first `=`; the key may not be empty.
pub fn parse_key_value(input: &str) -> Result<(String, String), String> {
    match input.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {input:?}")),
    }
}

fn parse_offset_arg(input: &str) -> Result<OffsetSpec, String> {
    OffsetSpec::parse(input, now_ms()).map_err(|e| e.reason)
}

fn parse_time_arg(input: &str) -> Result<i64, String> {
    parse_timestamp(input, now_ms()).map_err(|e| e.to_string())
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
