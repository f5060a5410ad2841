//! The command line, as clap derive types (the grammar users read is docs/CLI.md).
//!
//! Global flags follow the precedence flag > environment > default (profiles come later).
//! Values with a grammar of their own (`-o`, `--time`, durations, `k=v` pairs) are parsed
//! here through `value_parser`, so a malformed one is a clap usage error with exit code 2.
//! Each subcommand's `after_help` carries two or three examples that work when pasted.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::commands::BenchCommand;
pub use crate::dlt_args::{DltCommand, DltReplayArgs, ReplayTo};
use crate::duration::parse_duration_arg;
use crate::format::tokens_help;
use crate::offset_spec::OffsetPart;
use crate::output::OutputFormat;
use crate::reassignment_file::{parse_reassignment_file_arg, ReassignmentFile};
use crate::seek_target::SeekTarget;
use crate::timestamp::{now_ms, parse_timestamp};

/// The port of a broker address given without one: the broker's default gRPC port.
pub const DEFAULT_BROKER_PORT: u16 = 7070;

/// Produce, consume and administer a Strata cluster.
#[derive(Debug, Parser)]
#[command(name = "strata", version, propagate_version = true)]
#[command(after_help = "Examples:
  strata topic create orders -p 6
  printf 'k1 v1\\nk2 v2\\n' | strata produce orders -f '%k %v\\n'
  strata consume orders -o start -n 10 -f '%p@%o %k=%v\\n'
  strata consume orders -o beginning -c 10 -e      (kcat's words)
  strata group describe billing                    (per-partition lag)
  strata -X list

Environment: STRATA_BROKERS, STRATA_FORMAT, STRATA_TIMEOUT; NO_COLOR turns colour off.
Exit codes: 0 ok, 1 failed (also partly), 2 usage error, 130 a second Ctrl-C.")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Left out only with `-X list`, which needs no command.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags every command accepts.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Seed brokers, host[:port][,host[:port]...]; the port defaults to 7070
    #[arg(
        short = 'b',
        long,
        env = "STRATA_BROKERS",
        default_value = "127.0.0.1:7070",
        value_delimiter = ',',
        value_parser = parse_broker,
        global = true,
        value_name = "HOST[:PORT]"
    )]
    pub brokers: Vec<String>,
    /// Output of listings, reports and errors
    #[arg(long, env = "STRATA_FORMAT", value_enum, default_value_t = OutputFormat::Text, global = true)]
    pub format: OutputFormat,
    /// Client setting with its Kafka name, e.g. -X linger.ms=10 (repeatable); -X list shows them
    #[arg(short = 'X', value_name = "KEY=VALUE|list", value_parser = parse_client_setting,
          global = true)]
    pub client_settings: Vec<ClientSettingArg>,
    /// Deadline for admin requests (500ms, 30s, 2m)
    #[arg(long, env = "STRATA_TIMEOUT", default_value = "10s", value_parser = parse_duration_arg,
          global = true, value_name = "DURATION")]
    pub timeout: Duration,
    /// Debug logs on stderr (-vv for more); RUST_LOG overrides
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
}

impl GlobalArgs {
    /// The `-X KEY=VALUE` settings, in the order given.
    pub fn settings(&self) -> Vec<(String, String)> {
        self.client_settings
            .iter()
            .filter_map(|setting| match setting {
                ClientSettingArg::Set(key, value) => Some((key.clone(), value.clone())),
                ClientSettingArg::List => None,
            })
            .collect()
    }

    /// Whether `-X list` was given: print the settings and do nothing else.
    pub fn lists_settings(&self) -> bool {
        self.client_settings.contains(&ClientSettingArg::List)
    }
}

/// One `-X` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientSettingArg {
    /// `-X KEY=VALUE`: a producer or consumer setting by its Kafka name.
    Set(String, String),
    /// `-X list`, as in kcat: print the settings the client accepts.
    List,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, describe, alter and delete topics
    #[command(subcommand)]
    Topic(TopicCommand),
    /// List topics (same as `topic list`)
    Topics,
    /// Produce records from files, stdin or values
    #[command(after_help = produce_help())]
    Produce(ProduceArgs),
    /// Consume records as JSON lines or a custom format
    #[command(after_help = consume_help())]
    Consume(ConsumeArgs),
    /// Start and end offsets of each partition, or the first offset at a time
    #[command(after_help = "Examples:
  strata offsets orders
  strata offsets orders --time 2024-01-01
  strata offsets orders --time -1h --format json")]
    Offsets(OffsetsArgs),
    /// Consumer groups: list, describe with lag, move committed offsets, delete
    #[command(subcommand)]
    Group(GroupCommand),
    /// List consumer groups (same as `group list`)
    #[command(after_help = "Examples:
  strata groups
  strata groups --format json")]
    Groups,
    /// Cluster-wide information
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Partition leadership and replica placement
    #[command(subcommand)]
    Partition(PartitionCommand),
    /// Dead-letter topics of consumer groups with a retry policy
    #[command(subcommand)]
    Dlt(DltCommand),
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
    /// Print a shell completion script on stdout
    #[command(
        visible_alias = "completion",
        after_help = "Examples:
  strata completions bash > ~/.local/share/bash-completion/completions/strata
  strata completions zsh > ~/.zfunc/_strata      (with fpath+=(~/.zfunc) in ~/.zshrc)
  strata completions fish > ~/.config/fish/completions/strata.fish"
    )]
    Completions {
        /// The shell to write the script for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout
    #[command(after_help = "Examples:
  strata man > strata.1 && man ./strata.1
  strata man | gzip > /usr/local/share/man/man1/strata.1.gz")]
    Man,
}

fn produce_help() -> String {
    format!(
        "Examples:
  echo hello | strata produce orders
  strata produce orders big.txt                  (one record per line)
  printf 'k1 v1\\nk2 v2\\n' | strata produce orders -f '%k %v\\n' -H source=cli
  strata produce orders -f '%v' photo.jpg        (the whole file is one record, as in kcat)
  strata produce orders -k user-7 --value '{{\"id\":7}}' --value '{{\"id\":8}}'

Input: the FILEs in order, or stdin when none is given (- names stdin among files), cut into
records by -f (default '%v\\n': one record per line). Tokens -f reads:
{}
Prints one summary line on stderr: records, bytes (keys and values), seconds, errors.
-v adds one report per record ('Produced to partition 2 at offset 41 with timestamp
1700000000000.'). With --format json the reports are the result, JSON lines on stdout
{{\"topic\",\"partition\",\"offset\",\"timestamp\"}}, and the summary is a JSON object on stderr.
-q prints errors only. The first Ctrl-C stops reading input and says how many records it
waits for; a second one exits at once (status 130). Exits 1 if any record was not delivered.",
        tokens_help(true)
    )
}

fn consume_help() -> String {
    format!(
        "Examples:
  strata consume orders -o start -n 10
  strata consume orders -o beginning -c 10 -e     (kcat's words)
  strata consume orders -o -5 -e -f '%p@%o %k=%v\\n'
  strata consume orders -o @-15m: -p 0,2 | jq .value
  strata consume orders -o s@1700000000000 -o e@1700000060000
  strata consume orders -g billing               (shares the partitions with billing's members)

-o, where each partition starts and stops:
  start, beginning, earliest    the first record kept
  end, latest                   only records produced from now on
  N, N:                         offset N (inclusive)
  -N                            the last N records of each partition
  +N                            N records after the first one kept
  :M, N:M                       stop before offset M (exclusive)
  ...:end                       stop at the end seen when the command started (as -e)
  @T, @T:, s@T                  from the first record with a timestamp at or after T
  @T1:T2, @:T, e@T              stop at the first record with a timestamp at or after T2, T
  stored                        refused: with -g the committed offset is always the start
T is unix ms, a date (2024-01-01), RFC 3339 or relative (-15m). Two -o may give a start and
a stop: -o s@A -o e@B. Without -n, :end or -e, follows the log until Ctrl-C (exit 0).

-g GROUP joins the consumer group: the group assigns the partitions, each starts at the
group's committed offset, and -o (default start) applies only where nothing is committed.
Offsets are committed after records are flushed to stdout, every 5 s and on exit. Ctrl-C
commits, leaves the group and exits 0; a second Ctrl-C exits 130 at once. With -g, -p, +N
and stops (:M, :end, -e) are refused; -n bounds the run.

-f tokens (kcat's %s, %S, %T are %v, %V, %d here):
{}",
        tokens_help(false)
    )
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
        #[arg(short = 'r', long, visible_alias = "replication-factor",
              value_parser = clap::value_parser!(i32).range(1..))]
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
  strata topic alter-config orders --set retention_bytes=1073741824 --delete retention_ms
  strata topic alter-config orders --set min_insync_replicas=2

Keys: retention_ms, retention_bytes, flush (always | interval:MS), min_insync_replicas (1 ..= the
replication factor; default 2 when it is 3 or more, else 1), cleanup_policy (delete | compact |
compact,delete), delete_retention_ms, min_cleanable_dirty_ratio (0 ..= 1); Kafka's dotted names
are accepted. A compacted topic refuses records without a key.")]
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
    #[command(
        group(ArgGroup::new("growth").required(true).args(["count", "total"])),
        after_help = "Examples:
  strata topic add-partitions orders -n 3         (3 more partitions)
  strata topic add-partitions orders --total 12   (12 in all, as Kafka's --partitions 12)"
    )]
    AddPartitions {
        /// Topic to grow
        name: String,
        /// How many partitions to add
        #[arg(short = 'n', long = "num", value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
        count: Option<i32>,
        /// How many partitions the topic has afterwards; more than it has now
        #[arg(long = "total", value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
        total: Option<i32>,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List groups: GROUP STATE MEMBERS COORDINATOR
    #[command(after_help = "Examples:
  strata group list
  strata groups --format json | jq -r '.[] | select(.members == 0) | .group'

Each broker reports the groups it coordinates; the list merges every broker's answer. A
broker that cannot answer is reported on stderr and the command exits 1.")]
    List,
    /// Describe groups: members, and per partition committed offset, log end and lag
    #[command(after_help = "Examples:
  strata group describe billing
  strata group describe billing --format json | jq '.total_lag'

CURRENT-OFFSET is the committed offset (the next one the group reads; - when nothing is
committed), LOG-END-OFFSET the high watermark, LAG their difference (the whole partition
when nothing is committed). The coordinator computes the lag.")]
    Describe {
        /// Groups to describe
        #[arg(required = true, value_name = "GROUP", value_parser = parse_group_id)]
        groups: Vec<String>,
    },
    /// Move a group's committed offsets; a dry run unless --execute
    #[command(
        group(ArgGroup::new("target").required(true).args(["to", "shift_by"])),
        after_help = "Examples:
  strata group seek billing --to start                   (prints the plan only)
  strata group seek billing --to @2024-05-01 --topics orders --execute
  strata group seek billing --to 1000 --topics orders,audit --execute
  strata group seek billing --shift-by -50 --execute

--to: start (earliest), end (latest), an offset N, or @T, the first record at or after T
(unix ms, 2024-01-01, RFC 3339, -1h). Offsets outside a partition's log are moved to its
nearest end. Without --topics, the partitions the group has committed offsets for. Prints
GROUP TOPIC PARTITION CURRENT-OFFSET NEW-OFFSET. --execute is refused while the group has
live members (NON_EMPTY_GROUP): stop them first, as with Kafka's --reset-offsets."
    )]
    Seek(GroupSeekArgs),
    /// Delete groups without live members, with their committed offsets
    #[command(after_help = "Examples:
  strata group delete billing
  strata group delete billing old-reports -y

Asks for confirmation on a terminal; without a terminal (scripts, CI) -y is required. A group
with live members is refused (NON_EMPTY_GROUP) and the command exits 1.")]
    Delete {
        /// Groups to delete
        #[arg(required = true, value_name = "GROUP", value_parser = parse_group_id)]
        groups: Vec<String>,
        /// Do not ask for confirmation
        #[arg(short = 'y', long = "yes")]
        yes: bool,
    },
}

/// `strata group seek`.
#[derive(Debug, Args)]
pub struct GroupSeekArgs {
    /// The group whose offsets to move
    #[arg(value_parser = parse_group_id)]
    pub group: String,
    /// Where to: start, end, N or @T
    #[arg(long, value_name = "start|end|N|@T", value_parser = parse_seek_target_arg,
          allow_hyphen_values = true)]
    pub to: Option<SeekTarget>,
    /// Move each committed offset by N (negative: back), within the log's bounds
    #[arg(long, value_name = "±N", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// Only these topics, every partition of each (comma separated)
    #[arg(long, value_delimiter = ',', value_name = "TOPIC,TOPIC")]
    pub topics: Vec<String>,
    /// Apply the plan; without it nothing changes
    #[arg(long)]
    pub execute: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Brokers (live or fenced) and the controller quorum: leader, term, voters and lag
    #[command(after_help = "Examples:
  strata cluster info
  strata cluster info --format json | jq '.voters[] | select(.lag > 0)'
  STRATA_BROKERS=10.0.0.5:7070 strata cluster info

The broker that answers reports what it knows: only the controller leader knows the other
voters' MATCHED-INDEX and LAG; elsewhere they print as -.")]
    Info,
}

#[derive(Debug, Subcommand)]
pub enum PartitionCommand {
    /// Move leadership to each partition's preferred replica (Kafka's preferred election)
    #[command(
        group(ArgGroup::new("selection").required(true).args(["topic", "all_topics"])),
        after_help = "Examples:
  strata partition elect-leader --all-topics
  strata partition elect-leader --topic orders
  strata partition elect-leader --topic orders --partition 0,2 --format json

The preferred replica is the first in the partition's replica list. STATUS is ELECTED when
leadership moved, ELECTION_NOT_NEEDED when the preferred replica already leads, otherwise
the error (PREFERRED_LEADER_NOT_AVAILABLE: it is fenced or not in the ISR). Exits 1 only
when a partition failed; ELECTION_NOT_NEEDED is not a failure."
    )]
    ElectLeader(ElectLeaderArgs),
    /// Give partitions new replica lists, preferred leader first
    #[command(
        group(ArgGroup::new("source").required(true).args(["topic", "reassignment_json_file"])),
        after_help = "Examples:
  strata partition reassign --topic orders --partition 0 --replicas 2,3 --dry-run
  strata partition reassign --topic orders --partition 0 --replicas 2,3
  strata partition reassign --reassignment-json-file plan.json

The file (Kafka's shape; \"version\" and \"log_dirs\" may be present and are ignored):
  {\"partitions\":[{\"topic\":\"orders\",\"partition\":0,\"replicas\":[2,3]}]}
Prints CURRENT-REPLICAS and TARGET-REPLICAS with the LEADER and ISR after the change. All
or nothing: if the controller refuses one partition (an unknown broker id is
INVALID_REPLICA_ASSIGNMENT), nothing changes and the command exits 1."
    )]
    Reassign(ReassignArgs),
}

/// `--election-type`: Kafka's flag; only preferred elections exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ElectionTypeArg {
    Preferred,
}

/// `strata partition elect-leader`.
#[derive(Debug, Args)]
pub struct ElectLeaderArgs {
    /// Only this topic
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
    /// Only these partitions of --topic (comma separated or repeated)
    #[arg(long = "partition", value_delimiter = ',', value_name = "P,P", requires = "topic",
          conflicts_with = "all_topics",
          value_parser = clap::value_parser!(i32).range(0..))]
    pub partitions: Vec<i32>,
    /// Every partition of every topic
    #[arg(long, visible_alias = "all-topic-partitions")]
    pub all_topics: bool,
    /// Kafka's flag, accepted for habit: the only election is preferred
    #[arg(long, value_enum, default_value = "preferred")]
    pub election_type: ElectionTypeArg,
}

/// `strata partition reassign`.
#[derive(Debug, Args)]
pub struct ReassignArgs {
    /// Topic of the partition to reassign
    #[arg(long, value_name = "TOPIC", requires_all = ["partition", "replicas"])]
    pub topic: Option<String>,
    /// The partition to reassign
    #[arg(long, value_name = "P", requires = "topic",
          value_parser = clap::value_parser!(i32).range(0..))]
    pub partition: Option<i32>,
    /// The new replica list, preferred leader first (comma separated broker ids)
    #[arg(long, value_delimiter = ',', value_name = "ID,ID", requires = "topic",
          value_parser = clap::value_parser!(i32).range(0..))]
    pub replicas: Vec<i32>,
    /// Read the reassignments from a JSON file (shape below)
    #[arg(long, value_name = "FILE", value_parser = parse_reassignment_file_arg)]
    pub reassignment_json_file: Option<ReassignmentFile>,
    /// Check and print what would change; change nothing
    #[arg(long)]
    pub dry_run: bool,
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
    /// Files to read records from, in order; - is stdin (the default without files)
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// A value to send instead of reading input (repeatable)
    #[arg(long = "value", value_name = "VALUE", conflicts_with = "files")]
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
    /// Input format (default '%v\n': one record per line); tokens below
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
    /// Print errors only: no summary, no reports
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `strata consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to read
    pub topic: String,
    /// Where to start and stop in each partition (forms below; two -o: a start and a stop)
    #[arg(short = 'o', long = "offset", value_name = "SPEC", value_parser = parse_offset_arg,
          allow_hyphen_values = true, action = ArgAction::Append)]
    pub offset: Vec<OffsetPart>,
    /// Only these partitions (comma separated)
    #[arg(
        short = 'p',
        long = "partitions",
        value_delimiter = ',',
        value_name = "P,P"
    )]
    pub partitions: Vec<i32>,
    /// Stop after N records in total (-c as in kcat)
    #[arg(
        short = 'n',
        visible_short_alias = 'c',
        long = "num",
        visible_alias = "count",
        value_name = "N"
    )]
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
    /// Join this consumer group; -o then applies only where it has no committed offset
    #[arg(short = 'g', long, value_parser = parse_group_id)]
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

/// `-X KEY=VALUE`, or `-X list`.
fn parse_client_setting(input: &str) -> Result<ClientSettingArg, String> {
    if input == "list" {
        return Ok(ClientSettingArg::List);
    }
    let (key, value) = parse_key_value(input).map_err(|e| format!("{e}, or list"))?;
    Ok(ClientSettingArg::Set(key, value))
}

/// A broker address: `host`, `host:port`, `[v6]`, `[v6]:port` or a URL. Without a port it
/// gets [`DEFAULT_BROKER_PORT`], as kcat gives `-b host` Kafka's 9092.
pub fn parse_broker(input: &str) -> Result<String, String> {
    let address = input.trim();
    if address.contains("://") {
        return Ok(address.to_owned()); // a URL: the client takes it as it is
    }
    let port = match address.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((_, "")) => None,
            Some((_, after)) => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| format!("{address:?}: expected [IPv6] or [IPv6]:PORT"))?,
            ),
            None => return Err(format!("{address:?}: missing ] after the IPv6 address")),
        },
        None => match address.split(':').collect::<Vec<_>>().as_slice() {
            [""] => return Err("empty broker address".to_owned()),
            [_] => None,
            ["", _] => return Err(format!("{address:?}: the host is missing")),
            [_, port] => Some(*port),
            _ => {
                return Err(format!(
                    "{address:?}: write IPv6 addresses in brackets, [::1]:7070"
                ))
            }
        },
    };
    match port {
        None => Ok(format!("{address}:{DEFAULT_BROKER_PORT}")),
        Some(port) if port.parse::<u16>().is_ok() => Ok(address.to_owned()),
        Some(port) => Err(format!(
            "{address:?}: port {port:?} is not a number from 0 to 65535"
        )),
    }
}

/// A group id: not empty (the broker's rule; its length limit is the broker's to tell).
pub fn parse_group_id(input: &str) -> Result<String, String> {
    if input.is_empty() {
        return Err("the group id is empty".to_owned());
    }
    Ok(input.to_owned())
}

fn parse_seek_target_arg(input: &str) -> Result<SeekTarget, String> {
    SeekTarget::parse(input, now_ms())
}

fn parse_offset_arg(input: &str) -> Result<OffsetPart, String> {
    OffsetPart::parse(input, now_ms()).map_err(|e| e.reason)
}

fn parse_time_arg(input: &str) -> Result<i64, String> {
    parse_timestamp(input, now_ms()).map_err(|e| e.to_string())
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
