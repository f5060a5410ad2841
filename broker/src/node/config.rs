//! `strata-broker` settings. Precedence: command-line flags > environment variables
//! (`STRATA_…`) > TOML file (`--config`) > built-in defaults (`docs/OPERATIONS.md`).
//! Every value remembers where it came from, for `--print-config` and the start-up log.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::ArgMatches;
use serde::Deserialize;

use crate::controller::quorum::Voters;
use crate::log::FlushPolicy;

mod annotated;
mod choices;
mod given;
mod host_port;
mod listeners;
mod merger;

pub use choices::{LogFormat, LogIo};
use given::Given;
pub use host_port::{HostPort, ResolveError};
use listeners::{FileAdvertised, FileListeners};
use merger::{read_file, Merger};

/// Flags of the broker (also readable from `STRATA_…` variables).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file; a file named here must exist.
    #[arg(long, env = "STRATA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the merged configuration with the source of every value, then exit.
    #[arg(long)]
    pub print_config: bool,
    /// This broker's id.
    #[arg(long, env = "STRATA_NODE_ID")]
    pub node_id: Option<i32>,
    /// Directory holding the partition logs and the metadata log.
    #[arg(long, env = "STRATA_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// gRPC listen address. The host may be a name (`localhost:7070`), resolved once at
    /// start; the broker listens on its first IPv4 address (else its first address).
    #[arg(long, env = "STRATA_LISTENERS__GRPC", value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// A second gRPC listener for clients outside the brokers' network (containers
    /// reached from their host, a NAT): the same client services, but metadata asked for
    /// here names every broker at its external advertised address. Default: none.
    #[arg(long, env = "STRATA_LISTENERS__EXTERNAL", value_name = "HOST:PORT")]
    pub external_listen: Option<String>,
    /// Admin HTTP listen address (`/healthz`, `/readyz`, `/metrics`); it has no
    /// authentication, so keep it on loopback or a private network. Port 0 takes a free
    /// port (logged at start).
    #[arg(long, env = "STRATA_LISTENERS__ADMIN", value_name = "HOST:PORT")]
    pub admin_listen: Option<String>,
    /// Address given to clients in metadata (default: the listen address as written). A
    /// host name here is not resolved by the broker: clients resolve it.
    #[arg(long, env = "STRATA_ADVERTISED__GRPC", value_name = "HOST:PORT")]
    pub advertised_address: Option<String>,
    /// Address given in metadata to clients of the external listener (default: the
    /// external listen address as written).
    #[arg(long, env = "STRATA_ADVERTISED__EXTERNAL", value_name = "HOST:PORT")]
    pub external_advertised_address: Option<String>,
    /// Controller voters, `id@host:port,…` (each a broker's own gRPC listener): every
    /// broker of the cluster is given the same list, which must name it. Default: this
    /// broker alone (a one-node cluster).
    #[arg(long, env = "STRATA_CONTROLLER_VOTERS", value_name = "ID@HOST:PORT,…")]
    pub controller_voters: Option<String>,
    /// This broker's rack (Kafka's `broker.rack`): replicas of a partition are spread
    /// over racks when racks are set.
    #[arg(long, env = "STRATA_RACK")]
    pub rack: Option<String>,
    /// How often this broker heartbeats to the active controller, in milliseconds or a
    /// duration (Kafka's `broker.heartbeat.interval.ms`).
    #[arg(long, env = "STRATA_BROKER_HEARTBEAT_INTERVAL_MS", value_name = "MS")]
    pub broker_heartbeat_interval_ms: Option<String>,
    /// How long a broker stays live without heartbeats before the controller fences it
    /// and moves its leadership (Kafka's `broker.session.timeout.ms`).
    #[arg(long, env = "STRATA_BROKER_SESSION_TIMEOUT_MS", value_name = "MS")]
    pub broker_session_timeout_ms: Option<String>,
    /// How long a follower may go without catching up to its leader's log end before
    /// the leader proposes it out of the ISR, in milliseconds or a duration (Kafka's
    /// `replica.lag.time.max.ms`).
    #[arg(long, env = "STRATA_REPLICA_LAG_TIME_MAX_MS", value_name = "MS")]
    pub replica_lag_time_max_ms: Option<String>,
    /// Partitions of `__consumer_offsets` when the first group creates it (Kafka's
    /// `offsets.topic.num.partitions`); default min(50, 10 × live brokers).
    #[arg(long, env = "STRATA_OFFSETS_TOPIC_PARTITIONS", value_name = "N")]
    pub offsets_topic_partitions: Option<i32>,
    /// A group member without a heartbeat for this long is expelled, in milliseconds or a
    /// duration (Kafka's `group.consumer.session.timeout.ms`, 45 s).
    #[arg(long, env = "STRATA_GROUP_SESSION_TIMEOUT_MS", value_name = "MS")]
    pub group_session_timeout_ms: Option<String>,
    /// How often group members are told to heartbeat (Kafka's
    /// `group.consumer.heartbeat.interval.ms`, 5 s).
    #[arg(long, env = "STRATA_GROUP_HEARTBEAT_INTERVAL_MS", value_name = "MS")]
    pub group_heartbeat_interval_ms: Option<String>,
    /// Default flush policy: `always` or `interval:<ms>`.
    #[arg(long, env = "STRATA_FLUSH")]
    pub flush: Option<String>,
    /// Default segment size: bytes, or a size with a unit (`1GiB`, `512MB`).
    #[arg(long, env = "STRATA_SEGMENT_BYTES", value_name = "SIZE")]
    pub segment_bytes: Option<String>,
    /// Default retention: milliseconds or a duration (`7d`), -1 for unlimited.
    #[arg(
        long,
        env = "STRATA_RETENTION_MS",
        allow_negative_numbers = true,
        value_name = "MS"
    )]
    pub retention_ms: Option<String>,
    /// Default retention per partition: bytes or a size (`10GiB`), -1 for unlimited.
    #[arg(
        long,
        env = "STRATA_RETENTION_BYTES",
        allow_negative_numbers = true,
        value_name = "SIZE"
    )]
    pub retention_bytes: Option<String>,
    /// How often retention looks for segments to delete, in milliseconds or a duration
    /// (`1m`) (Kafka's `log.retention.check.interval.ms`).
    #[arg(long, env = "STRATA_RETENTION_CHECK_INTERVAL_MS", value_name = "MS")]
    pub retention_check_interval_ms: Option<String>,
    /// Largest record batch accepted: bytes or a size (`4MiB`).
    #[arg(long, env = "STRATA_MESSAGE_MAX_BYTES", value_name = "SIZE")]
    pub message_max_bytes: Option<String>,
    /// How partition logs are written and read: `buffered` (through the page cache) or
    /// `direct` (`O_DIRECT`, past it; see docs/ARCHITECTURE.md "Direct I/O").
    #[arg(long, env = "STRATA_LOG_IO")]
    pub log_io: Option<String>,
    /// Threads that serve requests (the async runtime's workers); default one per core.
    #[arg(long, env = "STRATA_WORKER_THREADS", value_name = "N")]
    pub worker_threads: Option<usize>,
    /// Log output: `text` or `json`.
    #[arg(long, env = "STRATA_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// The budget of a clean shutdown, from the first SIGTERM/SIGINT: the controlled
    /// shutdown and the wait for clients to close their connections both fit in it, then
    /// the broker stops serving anyway and closes its logs; in milliseconds or a
    /// duration (`30s`).
    #[arg(long, env = "STRATA_SHUTDOWN_GRACE_MS", value_name = "MS")]
    pub shutdown_grace_ms: Option<String>,
    /// Most connections one client address may have open; more are closed at once
    /// (Kafka's `max.connections.per.ip`).
    #[arg(long, env = "STRATA_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// Most calls (gRPC streams) one client address may have open across its
    /// connections; more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "STRATA_MAX_STREAMS_PER_IP", value_name = "N")]
    pub max_streams_per_ip: Option<usize>,
    /// How long a new connection may take to send the HTTP/2 preface before it is
    /// closed, in milliseconds or a duration (`10s`).
    #[arg(long, env = "STRATA_HANDSHAKE_TIMEOUT_MS", value_name = "MS")]
    pub handshake_timeout_ms: Option<String>,
    /// How long a connection may stay open with no call open before it is closed, in
    /// milliseconds or a duration (`10m`) (Kafka's `connections.max.idle.ms`).
    #[arg(long, env = "STRATA_CONNECTIONS_MAX_IDLE_MS", value_name = "MS")]
    pub connections_max_idle_ms: Option<String>,
    /// Whether the admin API may show records (`GET /v1/topics/{topic}/records` and the
    /// page's peek): `true` (default) or `false`.
    #[arg(long, env = "STRATA_ADMIN_PEEK", value_name = "BOOL")]
    pub admin_peek: Option<bool>,
    /// Whether `/metrics` also has per-partition series (consumer lag per group, topic
    /// and partition): `false` (default) or `true`. Off, every label is at most per topic.
    #[arg(long, env = "STRATA_METRICS_PER_PARTITION", value_name = "BOOL")]
    pub metrics_per_partition: Option<bool>,
}

/// The default `shutdown_grace_ms`: 25 s, so that a whole stop, closing the logs included,
/// fits the 30 s that Kubernetes (`terminationGracePeriodSeconds`) and the compose file
/// (`stop_grace_period`) give a process before SIGKILL.
pub const SHUTDOWN_GRACE_MS_DEFAULT: i64 = 25_000;

/// The TOML file: the same keys as the flags, with `listeners.grpc`, `listeners.external`,
/// `listeners.admin`, `advertised.grpc` and `advertised.external`.
/// Sizes and durations may be integers (bytes, milliseconds) or strings with a unit.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    node_id: Option<i32>,
    data_dir: Option<PathBuf>,
    listeners: Option<FileListeners>,
    advertised: Option<FileAdvertised>,
    controller_voters: Option<String>,
    rack: Option<String>,
    broker_heartbeat_interval_ms: Option<Given>,
    broker_session_timeout_ms: Option<Given>,
    replica_lag_time_max_ms: Option<Given>,
    offsets_topic_partitions: Option<i32>,
    group_session_timeout_ms: Option<Given>,
    group_heartbeat_interval_ms: Option<Given>,
    flush: Option<String>,
    segment_bytes: Option<Given>,
    retention_ms: Option<Given>,
    retention_bytes: Option<Given>,
    retention_check_interval_ms: Option<Given>,
    message_max_bytes: Option<Given>,
    log_io: Option<String>,
    worker_threads: Option<usize>,
    log_format: Option<String>,
    shutdown_grace_ms: Option<Given>,
    max_connections_per_ip: Option<usize>,
    max_streams_per_ip: Option<usize>,
    handshake_timeout_ms: Option<Given>,
    connections_max_idle_ms: Option<Given>,
    admin_peek: Option<bool>,
    metrics_per_partition: Option<bool>,
}

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    File,
    Default,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Env => "env",
            Source::File => "file",
            Source::Default => "default",
        }
    }
}

/// Most request-serving threads a broker may be given (tokio's own limit is far higher;
/// more than this is a typo, not a machine).
const WORKER_THREADS_MAX: usize = 1024;

/// Longest retention check interval accepted: a week (longer is a typo).
const RETENTION_CHECK_INTERVAL_MS_MAX: u64 = 7 * 24 * 3_600_000;

/// Longest shutdown grace period accepted: an hour (longer is a typo; orchestrators
/// give a stopping container seconds to minutes).
const SHUTDOWN_GRACE_MS_MAX: u64 = 3_600_000;

/// Longest replica lag limit accepted: an hour (longer is a typo; a follower that far
/// behind would hold `acks=all` writes for that long).
const REPLICA_LAG_TIME_MAX_MS_MAX: u64 = 3_600_000;

/// Longest group session timeout or heartbeat interval accepted: an hour (Kafka's
/// largest session timeout is 30 minutes by default).
const GROUP_TIMEOUT_MS_MAX: u64 = 3_600_000;

/// Largest per-address connection or call cap accepted (more is a typo).
const PER_IP_MAX: usize = 1_000_000;

/// Longest handshake or idle timeout accepted: a week (longer is a typo).
const CONNECTION_TIMEOUT_MS_MAX: u64 = 7 * 24 * 3_600_000;

/// A bad setting, naming its source.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {reason}")]
    ParseFile { path: PathBuf, reason: String },
    #[error("{key} (from {source_name}): {reason}")]
    Invalid {
        key: &'static str,
        source_name: &'static str,
        reason: String,
    },
}

/// The merged settings of one broker.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    pub node_id: i32,
    pub data_dir: PathBuf,
    /// Resolved at start ([`HostPort::resolve`]).
    pub listen: HostPort,
    /// The admin HTTP listener (`crate::admin`), resolved at start.
    pub admin_listen: HostPort,
    pub advertised_address: String,
    /// The external gRPC listener, if any (`listeners.rs`), resolved at start.
    pub external_listen: Option<HostPort>,
    /// What clients of the external listener are told (set exactly when it is).
    pub external_advertised_address: Option<String>,
    pub controller_voters: Voters,
    pub rack: Option<String>,
    pub broker_heartbeat_interval_ms: u64,
    pub broker_session_timeout_ms: u64,
    /// How long an ISR follower may lag before its leader proposes it out.
    pub replica_lag_time_max_ms: u64,
    /// `None`: min(50, 10 × live brokers) (`node/groups.rs`).
    pub offsets_topic_partitions: Option<i32>,
    pub group_session_timeout_ms: u64,
    pub group_heartbeat_interval_ms: u64,
    pub flush: FlushPolicy,
    pub segment_bytes: u64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub retention_check_interval_ms: u64,
    pub message_max_bytes: usize,
    pub log_io: LogIo,
    pub worker_threads: usize,
    pub log_format: LogFormat,
    /// How long a shutdown waits for connections to close (see `main.rs`).
    pub shutdown_grace_ms: u64,
    /// Listener limits per client address, and connection timeouts
    /// (`service::connections`).
    pub max_connections_per_ip: usize,
    pub max_streams_per_ip: usize,
    pub handshake_timeout_ms: u64,
    pub connections_max_idle_ms: u64,
    /// Whether the admin API shows records (`crate::admin::api::records`).
    pub admin_peek: bool,
    /// Whether `/metrics` has per-partition series (`crate::admin::metrics`).
    pub metrics_per_partition: bool,
    sources: BTreeMap<&'static str, Source>,
}

impl BrokerSettings {
    /// Merges `args` (parsed from `matches`) with the file and the defaults.
    pub fn load(args: &ServeArgs, matches: &ArgMatches) -> Result<BrokerSettings, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let mut merger = Merger {
            matches,
            sources: BTreeMap::new(),
        };
        let node_id = merger.pick("node_id", "node_id", args.node_id, file.node_id, 1);
        let data_dir = merger.pick(
            "data_dir",
            "data_dir",
            args.data_dir.clone(),
            file.data_dir,
            PathBuf::from("./strata-data"),
        );
        let listeners = listeners::pick(
            &mut merger,
            args,
            file.listeners.unwrap_or_default(),
            file.advertised.unwrap_or_default(),
        )?;
        let advertised_address = listeners.advertised_address;
        let controller_voters = merger.pick(
            "controller_voters",
            "controller_voters",
            args.controller_voters.clone(),
            file.controller_voters,
            format!("{node_id}@{advertised_address}"),
        );
        let rack = merger.pick(
            "rack",
            "rack",
            args.rack.clone().map(Some),
            file.rack.map(Some),
            None,
        );
        let broker_heartbeat_interval_ms = merger.pick(
            "broker_heartbeat_interval_ms",
            "broker_heartbeat_interval_ms",
            args.broker_heartbeat_interval_ms.clone().map(Given::Text),
            file.broker_heartbeat_interval_ms,
            Given::Integer(2_000),
        );
        let broker_session_timeout_ms = merger.pick(
            "broker_session_timeout_ms",
            "broker_session_timeout_ms",
            args.broker_session_timeout_ms.clone().map(Given::Text),
            file.broker_session_timeout_ms,
            Given::Integer(9_000),
        );
        let replica_lag_time_max_ms = merger.pick(
            "replica_lag_time_max_ms",
            "replica_lag_time_max_ms",
            args.replica_lag_time_max_ms.clone().map(Given::Text),
            file.replica_lag_time_max_ms,
            Given::Integer(10_000),
        );
        let offsets_topic_partitions = merger.pick(
            "offsets_topic_partitions",
            "offsets_topic_partitions",
            args.offsets_topic_partitions.map(Some),
            file.offsets_topic_partitions.map(Some),
            None,
        );
        let group_session_timeout_ms = merger.pick(
            "group_session_timeout_ms",
            "group_session_timeout_ms",
            args.group_session_timeout_ms.clone().map(Given::Text),
            file.group_session_timeout_ms,
            Given::Integer(45_000),
        );
        let group_heartbeat_interval_ms = merger.pick(
            "group_heartbeat_interval_ms",
            "group_heartbeat_interval_ms",
            args.group_heartbeat_interval_ms.clone().map(Given::Text),
            file.group_heartbeat_interval_ms,
            Given::Integer(5_000),
        );
        let flush_text = merger.pick(
            "flush",
            "flush",
            args.flush.clone(),
            file.flush,
            "always".to_owned(),
        );
        let segment_bytes = merger.pick(
            "segment_bytes",
            "segment_bytes",
            args.segment_bytes.clone().map(Given::Text),
            file.segment_bytes,
            Given::Integer(1 << 30),
        );
        let retention_ms = merger.pick(
            "retention_ms",
            "retention_ms",
            args.retention_ms.clone().map(Given::Text),
            file.retention_ms,
            Given::Integer(7 * 24 * 3_600_000),
        );
        let retention_bytes = merger.pick(
            "retention_bytes",
            "retention_bytes",
            args.retention_bytes.clone().map(Given::Text),
            file.retention_bytes,
            Given::Integer(-1),
        );
        let retention_check_interval_ms = merger.pick(
            "retention_check_interval_ms",
            "retention_check_interval_ms",
            args.retention_check_interval_ms.clone().map(Given::Text),
            file.retention_check_interval_ms,
            Given::Integer(60_000),
        );
        let message_max_bytes = merger.pick(
            "message_max_bytes",
            "message_max_bytes",
            args.message_max_bytes.clone().map(Given::Text),
            file.message_max_bytes,
            Given::Integer(1 << 20),
        );
        let log_io_text = merger.pick(
            "log_io",
            "log_io",
            args.log_io.clone(),
            file.log_io,
            "buffered".to_owned(),
        );
        let worker_threads = merger.pick(
            "worker_threads",
            "worker_threads",
            args.worker_threads,
            file.worker_threads,
            std::thread::available_parallelism().map_or(1, usize::from),
        );
        let log_format_text = merger.pick(
            "log_format",
            "log_format",
            args.log_format.clone(),
            file.log_format,
            "text".to_owned(),
        );
        let shutdown_grace_ms = merger.pick(
            "shutdown_grace_ms",
            "shutdown_grace_ms",
            args.shutdown_grace_ms.clone().map(Given::Text),
            file.shutdown_grace_ms,
            Given::Integer(SHUTDOWN_GRACE_MS_DEFAULT),
        );
        let max_connections_per_ip = merger.pick(
            "max_connections_per_ip",
            "max_connections_per_ip",
            args.max_connections_per_ip,
            file.max_connections_per_ip,
            256,
        );
        let max_streams_per_ip = merger.pick(
            "max_streams_per_ip",
            "max_streams_per_ip",
            args.max_streams_per_ip,
            file.max_streams_per_ip,
            1024,
        );
        let handshake_timeout_ms = merger.pick(
            "handshake_timeout_ms",
            "handshake_timeout_ms",
            args.handshake_timeout_ms.clone().map(Given::Text),
            file.handshake_timeout_ms,
            Given::Integer(10_000),
        );
        let connections_max_idle_ms = merger.pick(
            "connections_max_idle_ms",
            "connections_max_idle_ms",
            args.connections_max_idle_ms.clone().map(Given::Text),
            file.connections_max_idle_ms,
            Given::Integer(600_000),
        );
        let admin_peek = merger.pick(
            "admin_peek",
            "admin_peek",
            args.admin_peek,
            file.admin_peek,
            true,
        );
        let metrics_per_partition = merger.pick(
            "metrics_per_partition",
            "metrics_per_partition",
            args.metrics_per_partition,
            file.metrics_per_partition,
            false,
        );

        let invalid =
            |merger: &Merger<'_>, key: &'static str, reason: String| ConfigError::Invalid {
                key,
                source_name: merger.source_name(key),
                reason,
            };
        let given = |merger: &Merger<'_>,
                     key: &'static str,
                     value: &Given,
                     parse: fn(&Given) -> Result<u64, String>| {
            parse(value).map_err(|reason| invalid(merger, key, reason))
        };
        let segment_bytes = given(&merger, "segment_bytes", &segment_bytes, Given::bytes)?;
        let message_max_bytes = usize::try_from(given(
            &merger,
            "message_max_bytes",
            &message_max_bytes,
            Given::bytes,
        )?)
        .unwrap_or(usize::MAX);
        let retention_bytes = retention_bytes
            .bytes_or_unlimited()
            .map_err(|reason| invalid(&merger, "retention_bytes", reason))?;
        let retention_ms = retention_ms
            .millis_or_unlimited()
            .map_err(|reason| invalid(&merger, "retention_ms", reason))?;
        let retention_check_interval_ms = given(
            &merger,
            "retention_check_interval_ms",
            &retention_check_interval_ms,
            Given::millis,
        )?;
        let shutdown_grace_ms = given(
            &merger,
            "shutdown_grace_ms",
            &shutdown_grace_ms,
            Given::millis,
        )?;
        let handshake_timeout_ms = given(
            &merger,
            "handshake_timeout_ms",
            &handshake_timeout_ms,
            Given::millis,
        )?;
        let connections_max_idle_ms = given(
            &merger,
            "connections_max_idle_ms",
            &connections_max_idle_ms,
            Given::millis,
        )?;
        let broker_heartbeat_interval_ms = given(
            &merger,
            "broker_heartbeat_interval_ms",
            &broker_heartbeat_interval_ms,
            Given::millis,
        )?;
        let broker_session_timeout_ms = given(
            &merger,
            "broker_session_timeout_ms",
            &broker_session_timeout_ms,
            Given::millis,
        )?;
        if !(10..=60_000).contains(&broker_heartbeat_interval_ms) {
            return Err(invalid(
                &merger,
                "broker_heartbeat_interval_ms",
                "must be between 10 and 60000".into(),
            ));
        }
        if broker_session_timeout_ms <= broker_heartbeat_interval_ms
            || broker_session_timeout_ms > 600_000
        {
            return Err(invalid(
                &merger,
                "broker_session_timeout_ms",
                format!("must be above broker_heartbeat_interval_ms ({broker_heartbeat_interval_ms}) and at most 600000"),
            ));
        }
        let replica_lag_time_max_ms = given(
            &merger,
            "replica_lag_time_max_ms",
            &replica_lag_time_max_ms,
            Given::millis,
        )?;
        if !(1..=REPLICA_LAG_TIME_MAX_MS_MAX).contains(&replica_lag_time_max_ms) {
            return Err(invalid(
                &merger,
                "replica_lag_time_max_ms",
                format!("must be between 1 and {REPLICA_LAG_TIME_MAX_MS_MAX}"),
            ));
        }
        let group_session_timeout_ms = given(
            &merger,
            "group_session_timeout_ms",
            &group_session_timeout_ms,
            Given::millis,
        )?;
        let group_heartbeat_interval_ms = given(
            &merger,
            "group_heartbeat_interval_ms",
            &group_heartbeat_interval_ms,
            Given::millis,
        )?;
        if !(1..=GROUP_TIMEOUT_MS_MAX).contains(&group_heartbeat_interval_ms) {
            return Err(invalid(
                &merger,
                "group_heartbeat_interval_ms",
                format!("must be between 1 and {GROUP_TIMEOUT_MS_MAX}"),
            ));
        }
        if group_session_timeout_ms <= group_heartbeat_interval_ms
            || group_session_timeout_ms > GROUP_TIMEOUT_MS_MAX
        {
            return Err(invalid(
                &merger,
                "group_session_timeout_ms",
                format!("must be above group_heartbeat_interval_ms ({group_heartbeat_interval_ms}) and at most {GROUP_TIMEOUT_MS_MAX}"),
            ));
        }
        if offsets_topic_partitions
            .is_some_and(|count| !(1..=crate::controller::PARTITIONS_MAX).contains(&count))
        {
            return Err(invalid(
                &merger,
                "offsets_topic_partitions",
                format!(
                    "must be between 1 and {}",
                    crate::controller::PARTITIONS_MAX
                ),
            ));
        }
        if rack.as_deref().is_some_and(|rack| rack.trim().is_empty()) {
            return Err(invalid(&merger, "rack", "must not be empty".into()));
        }
        let flush =
            flush_text
                .parse()
                .map_err(|error: crate::log::config::InvalidFlushPolicy| {
                    invalid(&merger, "flush", error.to_string())
                })?;
        let log_io = log_io_text
            .parse()
            .map_err(|reason| invalid(&merger, "log_io", reason))?;
        let log_format = log_format_text
            .parse()
            .map_err(|reason| invalid(&merger, "log_format", reason))?;
        if node_id < 0 {
            return Err(invalid(&merger, "node_id", "must be ≥ 0".into()));
        }
        if !(1..=WORKER_THREADS_MAX).contains(&worker_threads) {
            return Err(invalid(
                &merger,
                "worker_threads",
                format!("must be between 1 and {WORKER_THREADS_MAX}"),
            ));
        }
        if !(1024..=(1 << 31) - 1).contains(&segment_bytes) {
            return Err(invalid(
                &merger,
                "segment_bytes",
                "must be between 1024 and 2147483647".into(),
            ));
        }
        if retention_ms < -1 || retention_bytes < -1 {
            let key = if retention_ms < -1 {
                "retention_ms"
            } else {
                "retention_bytes"
            };
            return Err(invalid(
                &merger,
                key,
                "must be ≥ 0, or -1 for unlimited".into(),
            ));
        }
        if !(1..=RETENTION_CHECK_INTERVAL_MS_MAX).contains(&retention_check_interval_ms) {
            return Err(invalid(
                &merger,
                "retention_check_interval_ms",
                format!("must be between 1 and {RETENTION_CHECK_INTERVAL_MS_MAX}"),
            ));
        }
        if shutdown_grace_ms > SHUTDOWN_GRACE_MS_MAX {
            return Err(invalid(
                &merger,
                "shutdown_grace_ms",
                format!("must be between 0 and {SHUTDOWN_GRACE_MS_MAX}"),
            ));
        }
        for (key, value) in [
            ("max_connections_per_ip", max_connections_per_ip),
            ("max_streams_per_ip", max_streams_per_ip),
        ] {
            if !(1..=PER_IP_MAX).contains(&value) {
                return Err(invalid(
                    &merger,
                    key,
                    format!("must be between 1 and {PER_IP_MAX}"),
                ));
            }
        }
        for (key, value) in [
            ("handshake_timeout_ms", handshake_timeout_ms),
            ("connections_max_idle_ms", connections_max_idle_ms),
        ] {
            if !(1..=CONNECTION_TIMEOUT_MS_MAX).contains(&value) {
                return Err(invalid(
                    &merger,
                    key,
                    format!("must be between 1 and {CONNECTION_TIMEOUT_MS_MAX}"),
                ));
            }
        }
        if !(1024..=(64 << 20)).contains(&message_max_bytes) {
            return Err(invalid(
                &merger,
                "message_max_bytes",
                "must be between 1024 and 67108864".into(),
            ));
        }
        let controller_voters = Voters::parse(&controller_voters, node_id)
            .map_err(|error| invalid(&merger, "controller_voters", error.to_string()))?;
        Ok(BrokerSettings {
            node_id,
            data_dir,
            listen: listeners.listen,
            admin_listen: listeners.admin_listen,
            advertised_address,
            external_listen: listeners.external_listen,
            external_advertised_address: listeners.external_advertised_address,
            controller_voters,
            rack,
            broker_heartbeat_interval_ms,
            broker_session_timeout_ms,
            replica_lag_time_max_ms,
            offsets_topic_partitions,
            group_session_timeout_ms,
            group_heartbeat_interval_ms,
            flush,
            segment_bytes,
            retention_ms,
            retention_bytes,
            retention_check_interval_ms,
            message_max_bytes,
            log_io,
            worker_threads,
            log_format,
            shutdown_grace_ms,
            max_connections_per_ip,
            max_streams_per_ip,
            handshake_timeout_ms,
            connections_max_idle_ms,
            admin_peek,
            metrics_per_partition,
            sources: merger.sources,
        })
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
