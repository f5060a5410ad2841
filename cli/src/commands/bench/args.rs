//! The flags of `strata bench produce|consume|e2e`, and [`BenchSpec`],
//! the one shape the three subcommands are normalised into before anything runs.
//!
//! Producer settings default to the client library's documented defaults (acks=all,
//! linger.ms=5, batch.size=16384, no compression) and are always passed to the producer
//! explicitly, so the parameter line states exactly what was used. `-X` (global) wins
//! over these flags, as it is applied last; [`BenchSpec::effective_producer`] folds it in.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::args::{AcksArg, CompressionArg};
use crate::duration::parse_duration_arg;

/// The topic used when `--topic` is left out.
pub const DEFAULT_TOPIC: &str = "strata-bench";
/// Partitions of a topic created with `--create` and no `-p`.
pub const DEFAULT_PARTITIONS: i32 = 6;
/// The replication factor asked for when `-r` is left out; capped by the broker count.
pub const DEFAULT_REPLICATION_FACTOR: i32 = 3;
/// Measured run time when neither `--records` nor `--duration` is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(60);
/// Warm-up of `produce` and `e2e`; `consume` reads a finished backlog and has none.
pub const DEFAULT_WARMUP: Duration = Duration::from_secs(10);
/// `consume --group --members N` at most: each member is a client of its own (a connection
/// and a heartbeat task), all in this one process.
pub const MAX_GROUP_MEMBERS: u16 = 64;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Producer throughput and publish latency (like kafka-producer-perf-test)
    #[command(after_help = "Examples:
  strata bench produce --create -p 6 -r 1 --records 50000000 --record-size 100 --acks 1 --warmup 0s
  strata bench produce --duration 30s --rate 10000 --format json > produce.json
  strata bench produce --producers 3 --acks all --linger 10ms --batch-size 64KiB -X max.in.flight.requests.per.connection=5
  strata bench produce -b 127.0.0.1,127.0.0.2,127.0.0.3 --create -p 6 -r 3 --acks all --record-size 1000

Prints one parameter line and a progress line every 5 s on stderr, then Kafka's summary on
stdout: 'N records sent, X records/sec (Y MB/sec), A ms avg latency, M ms max latency,
P50 ms 50th, P95 ms 95th, P99 ms 99th, P999 ms 99.9th.' MB = 2^20 bytes of record values.
Latency runs from the send (with --rate: the intended send time) to the acknowledgement.
Exits 1 if any record failed.")]
    Produce(ProduceBenchArgs),
    /// Consumer throughput over an existing backlog (like kafka-consumer-perf-test)
    #[command(after_help = "Examples:
  strata bench consume --records 50000000
  strata bench consume --consumers 3 --topic orders
  strata bench consume --duration 30s --format json
  strata bench consume --group bench-1 --members 4

Reads from the earliest offset up to the end offsets seen at start (or --records N, or
--duration), with the partitions split across --consumers. With --group G, --members N
consumers (default 1) join group G instead, the group's coordinator assigns them the
partitions, each starts at the group's committed offset (the log start where none is),
and they commit automatically; the rebalance time is the time until the partitions are
spread evenly over the members. Ends with consumer-perf-test's CSV header and row on
stdout (with --group, also a line with the rebalance time, the redelivered records and
the committed offsets). Exits 1 if a fetch failed.")]
    Consume(ConsumeBenchArgs),
    /// Produce and consume together: publish and end-to-end latency (like OMB)
    #[command(after_help = "Examples:
  strata bench e2e --create -p 1 -r 1 --rate 10000 --record-size 1000 --acks 1 --duration 30s
  strata bench e2e --rate 1000 --hgrm e2e.hgrm
  strata bench e2e --producers 2 --consumers 2 --format json > e2e.json

Consumers start at the end offsets seen before producing starts. Each record carries its
send time in the header strata.bench.ts (microseconds on this process's monotonic clock),
so end-to-end latency needs no clock sync. Prints two summaries, publish (send -> ack) and
end-to-end (send -> receipt). Exits 1 if any record failed or was not received within
--drain after the last send. --hgrm e2e.hgrm writes end-to-end latency there and publish
latency to e2e.publish.hgrm.")]
    E2e(E2eBenchArgs),
    /// Delayed delivery: how late records sent with deliver_after arrive
    #[command(after_help = "Examples:
  strata bench delay --create --rate 1000 --duration 30s --delay 2s
  strata bench delay --assign --format json

One producer sends --rate records/s for --duration, each with deliver_after(--delay), to a
topic with delivery.delay.enabled=true (--create makes one); a consumer in the same process
(a new group's member, or with --assign every partition by hand) reads them. Prints the
lateness (consumption time - due time) at p50, p99, p99.9 and max. Exits 1 if a record
came before its due time, failed, or was not received within --drain.")]
    Delay(super::delay::DelayBenchArgs),
}

/// `bench produce`.
#[derive(Debug, Args)]
pub struct ProduceBenchArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub producer: ProducerArgs,
}

/// `bench consume`.
#[derive(Debug, Args)]
pub struct ConsumeBenchArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Parallel consumers, each with its own connection, splitting the partitions
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..),
          conflicts_with = "group")]
    pub consumers: u16,
    /// Consume as members of this consumer group: its coordinator assigns the partitions,
    /// and the members start at its committed offsets and commit automatically
    #[arg(long, value_name = "GROUP", value_parser = parse_group_arg)]
    pub group: Option<String>,
    /// Members of --group in this process, each with its own connection [default: 1]
    #[arg(long, value_name = "N", requires = "group",
          value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_GROUP_MEMBERS)))]
    pub members: Option<u16>,
}

/// `bench e2e`.
#[derive(Debug, Args)]
pub struct E2eBenchArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub producer: ProducerArgs,
    /// Parallel consumers, each with its own connection, splitting the partitions
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub consumers: u16,
    /// How long to wait for the last records after the last send before counting them missing
    #[arg(long, default_value = "10s", value_parser = parse_duration_arg, value_name = "DURATION")]
    pub drain: Duration,
}

/// Flags of every bench subcommand.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Topic to use
    #[arg(long, default_value = DEFAULT_TOPIC)]
    pub topic: String,
    /// Create the topic first if it does not exist
    #[arg(long)]
    pub create: bool,
    /// Partitions of a created topic [default: 6]
    #[arg(short = 'p', long, requires = "create", value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: Option<i32>,
    /// Replication factor of a created topic [default: 3, at most the broker count]
    #[arg(short = 'r', long = "replicas", visible_alias = "replication-factor",
          requires = "create", value_parser = clap::value_parser!(i32).range(1..))]
    pub replicas: Option<i32>,
    /// Stop after N records in total
    #[arg(long, conflicts_with = "duration", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub records: Option<u64>,
    /// Measured time, after the warm-up [default: 60s]
    #[arg(long, value_parser = parse_duration_arg, value_name = "DURATION")]
    pub duration: Option<Duration>,
    /// Time at the start left out of the summary and histograms, kept in the series
    /// [default: 10s; consume: 0s]
    #[arg(long, value_parser = parse_duration_arg, value_name = "DURATION")]
    pub warmup: Option<Duration>,
    /// Also write the HdrHistogram percentile distribution (microseconds shown as ms) here
    #[arg(long, value_name = "FILE")]
    pub hgrm: Option<PathBuf>,
    /// Also write consumer-perf-test's CSV header and summary row here
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
}

/// Flags of the producing side (`produce`, `e2e`).
#[derive(Debug, Clone, Args)]
pub struct ProducerArgs {
    /// Value size in bytes, random and incompressible (KiB and MiB accepted)
    #[arg(long, default_value = "1024", value_parser = parse_size_arg, value_name = "BYTES")]
    pub record_size: usize,
    /// Keys: none, random (8 random bytes each), or N distinct keys round-robin
    #[arg(long, default_value = "none", value_parser = parse_keys_arg, value_name = "none|random|N")]
    pub keys: Keys,
    /// Target records/s over all producers; -1 = as fast as possible
    #[arg(long, default_value = "-1", allow_hyphen_values = true, value_parser = parse_rate_arg,
          value_name = "RECORDS_PER_SEC")]
    pub rate: Rate,
    /// Parallel producers, each with its own connection
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub producers: u16,
    /// Replicas that must acknowledge
    #[arg(long, value_enum, default_value = "all")]
    pub acks: AcksArg,
    /// How long a batch waits to fill up (linger.ms)
    #[arg(long, default_value = "5ms", value_parser = parse_duration_arg, value_name = "DURATION")]
    pub linger: Duration,
    /// Batch size cap per partition in bytes (batch.size; KiB and MiB accepted)
    #[arg(long, default_value = "16384", value_parser = parse_size_arg, value_name = "BYTES")]
    pub batch_size: usize,
    /// Batch compression
    #[arg(short = 'z', long, value_enum, default_value = "none")]
    pub compression: CompressionArg,
    /// Deliveries outstanding per producer at most [default: what buffer.memory holds]
    #[arg(long, value_name = "RECORDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub window: Option<u64>,
}

/// `--keys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    None,
    Random,
    Distinct(u64),
}

impl std::fmt::Display for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Keys::None => f.write_str("none"),
            Keys::Random => f.write_str("random"),
            Keys::Distinct(count) => write!(f, "{count}"),
        }
    }
}

/// `--rate`: records/s over all producers, or unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    Unlimited,
    PerSecond(f64),
}

impl Rate {
    /// The JSON and parameter-line form: -1 for unlimited, as Kafka's `--throughput`.
    pub fn as_number(self) -> f64 {
        match self {
            Rate::Unlimited => -1.0,
            Rate::PerSecond(rate) => rate,
        }
    }
}

/// Which subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Produce,
    Consume,
    EndToEnd,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Produce => "produce",
            Mode::Consume => "consume",
            Mode::EndToEnd => "e2e",
        }
    }
}

/// When the run stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this many records in total (warm-up included).
    Records(u64),
    /// After the warm-up plus this long.
    Duration(Duration),
}

/// `consume --group G --members N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    pub id: String,
    pub members: u16,
}

/// The three subcommands in one shape.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    pub mode: Mode,
    pub run: RunArgs,
    /// `None` for `consume`.
    pub producer: Option<ProducerArgs>,
    /// 0 for `produce`; with a group, its member count.
    pub consumers: u16,
    pub drain: Duration,
    /// `consume --group`: the consumers are members of this group.
    pub group: Option<GroupSpec>,
}

/// `bench delay` is not a [`BenchSpec`]: it runs on its own (`delay.rs`), so the
/// conversion hands its flags back.
impl TryFrom<BenchCommand> for BenchSpec {
    type Error = super::delay::DelayBenchArgs;

    fn try_from(command: BenchCommand) -> Result<BenchSpec, Self::Error> {
        let (mode, run, producer, consumers, drain, group) = match command {
            BenchCommand::Produce(args) => (
                Mode::Produce,
                args.run,
                Some(args.producer),
                0,
                Duration::ZERO,
                None,
            ),
            BenchCommand::Consume(args) => {
                let group = args.group.map(|id| GroupSpec {
                    id,
                    members: args.members.unwrap_or(1),
                });
                let consumers = group.as_ref().map_or(args.consumers, |group| group.members);
                (
                    Mode::Consume,
                    args.run,
                    None,
                    consumers,
                    Duration::ZERO,
                    group,
                )
            }
            BenchCommand::E2e(args) => (
                Mode::EndToEnd,
                args.run,
                Some(args.producer),
                args.consumers,
                args.drain,
                None,
            ),
            BenchCommand::Delay(args) => return Err(args),
        };
        Ok(BenchSpec {
            mode,
            run,
            producer,
            consumers,
            drain,
            group,
        })
    }
}

impl BenchSpec {
    pub fn stop(&self) -> Stop {
        match self.run.records {
            Some(records) => Stop::Records(records),
            None => Stop::Duration(self.run.duration.unwrap_or(DEFAULT_DURATION)),
        }
    }

    pub fn warmup(&self) -> Duration {
        self.run.warmup.unwrap_or(match self.mode {
            Mode::Consume => Duration::ZERO,
            Mode::Produce | Mode::EndToEnd => DEFAULT_WARMUP,
        })
    }
}

/// Plain bytes or a number with `KiB`, `MiB` or `GiB` (docs/CLI.md, "Durations and sizes").
pub fn parse_size_arg(input: &str) -> Result<usize, String> {
    let trimmed = input.trim();
    let digits_len = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(digits_len);
    let multiplier: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use bytes, KiB, MiB or GiB)"
            ))
        }
    };
    let count: usize = digits
        .parse()
        .map_err(|_| format!("expected a size such as 1024 or 64KiB, got {input:?}"))?;
    let bytes = count
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size {input:?} is too large"))?;
    if bytes == 0 {
        return Err("size must be above zero".to_owned());
    }
    Ok(bytes)
}

/// A group id: not empty, no surrounding blanks (the coordinator refuses an empty one).
fn parse_group_arg(input: &str) -> Result<String, String> {
    if input.is_empty() {
        return Err("the group id must not be empty".to_owned());
    }
    if input.trim() != input {
        return Err(format!(
            "the group id {input:?} starts or ends with blanks; quote it without them"
        ));
    }
    Ok(input.to_owned())
}

fn parse_keys_arg(input: &str) -> Result<Keys, String> {
    match input {
        "none" => Ok(Keys::None),
        "random" => Ok(Keys::Random),
        count => match count.parse::<u64>() {
            Ok(count) if count > 0 => Ok(Keys::Distinct(count)),
            _ => Err(format!(
                "expected none, random or a number of distinct keys, got {input:?}"
            )),
        },
    }
}

fn parse_rate_arg(input: &str) -> Result<Rate, String> {
    let rate: f64 = input
        .parse()
        .map_err(|_| format!("expected records per second or -1, got {input:?}"))?;
    if rate == -1.0 {
        Ok(Rate::Unlimited)
    } else if rate.is_finite() && rate > 0.0 {
        Ok(Rate::PerSecond(rate))
    } else {
        Err(format!(
            "rate must be above zero, or -1 for unlimited, not {input}"
        ))
    }
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
