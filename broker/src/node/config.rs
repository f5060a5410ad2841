//! `strata-broker` settings. Precedence: command-line flags > environment variables
//! (`STRATA_…`) > TOML file (`--config`) > built-in defaults (`docs/OPERATIONS.md`).
//! Every value remembers where it came from, for `--print-config` and the start-up log.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::parser::ValueSource;
use clap::ArgMatches;
use serde::Deserialize;

use crate::log::FlushPolicy;

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
    /// Address given to clients in metadata (default: the listen address as written). A
    /// host name here is not resolved by the broker: clients resolve it.
    #[arg(long, env = "STRATA_ADVERTISED__GRPC", value_name = "HOST:PORT")]
    pub advertised_address: Option<String>,
    /// Controller voters, `id@host:port,…`. Only this node alone is supported for now.
    #[arg(long, env = "STRATA_CONTROLLER_VOTERS")]
    pub controller_voters: Option<String>,
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
    /// How long the first SIGTERM/SIGINT waits for clients to close their connections
    /// before the broker stops serving anyway and closes its logs, in milliseconds or a
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileListeners {
    grpc: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAdvertised {
    grpc: Option<String>,
}

/// The TOML file: the same keys as the flags, with `listeners.grpc` and `advertised.grpc`.
/// Sizes and durations may be integers (bytes, milliseconds) or strings with a unit.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    node_id: Option<i32>,
    data_dir: Option<PathBuf>,
    listeners: Option<FileListeners>,
    advertised: Option<FileAdvertised>,
    controller_voters: Option<String>,
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
}

/// A size or a duration as given: a TOML integer, or text (a flag, a variable, a TOML
/// string) that may carry a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Given {
    Integer(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for Given {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Given, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Given;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter
                    .write_str("an integer or a string with a unit, such as \"1MiB\" or \"30s\"")
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Given, E> {
                Ok(Given::Integer(value))
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Given, E> {
                i64::try_from(value)
                    .map(Given::Integer)
                    .map_err(|_| E::custom(format!("{value} is too large")))
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Given, E> {
                Ok(Given::Text(value.to_owned()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Units of sizes: with an `i`, powers of 1024; without, powers of 1000 (case is ignored).
const SIZE_UNITS: [(&str, u64); 9] = [
    ("B", 1),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

/// Units of durations, in milliseconds (`m` is minutes).
const DURATION_UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

const SIZE_EXPECTED: &str =
    "expected bytes or a size with a unit, such as 1048576, 1MiB or 1MB (KiB, MiB, GiB, TiB \
     count in 1024s; KB, MB, GB, TB in 1000s)";

const DURATION_EXPECTED: &str =
    "expected milliseconds or a duration with a unit, such as 30000, 500ms, 30s, 10m, 1h or 7d";

/// A whole number followed by one of `units` (or none: the number as is), e.g. `1MiB`,
/// `1 MiB`, `30s`.
fn parse_with_units(text: &str, units: &[(&str, u64)], expected: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let unit = unit.trim_start();
    let wrong = || format!("{expected}, not {text:?}");
    let number: u64 = number.parse().map_err(|_| wrong())?;
    let factor = if unit.is_empty() {
        1
    } else {
        units
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit))
            .map(|(_, factor)| *factor)
            .ok_or_else(wrong)?
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

impl Given {
    /// A count of bytes or milliseconds (`units`): a non-negative integer or text.
    fn unsigned(&self, units: &[(&str, u64)], expected: &str) -> Result<u64, String> {
        match self {
            Given::Integer(value) => {
                u64::try_from(*value).map_err(|_| format!("{expected}, not {value}"))
            }
            Given::Text(text) => parse_with_units(text, units, expected),
        }
    }

    /// Like [`Given::unsigned`], but a negative integer (-1: unlimited) is kept as is,
    /// for the caller to check.
    fn signed(&self, units: &[(&str, u64)], expected: &str) -> Result<i64, String> {
        let negative = match self {
            Given::Integer(value) => Some(*value).filter(|value| *value < 0),
            Given::Text(text) => text
                .trim()
                .starts_with('-')
                .then(|| {
                    text.trim()
                        .parse::<i64>()
                        .map_err(|_| format!("{expected}, not {text:?}"))
                })
                .transpose()?,
        };
        match negative {
            Some(value) => Ok(value),
            None => {
                let value = self.unsigned(units, expected)?;
                i64::try_from(value).map_err(|_| format!("{value} is too large"))
            }
        }
    }

    fn bytes(&self) -> Result<u64, String> {
        self.unsigned(&SIZE_UNITS, SIZE_EXPECTED)
    }

    fn bytes_or_unlimited(&self) -> Result<i64, String> {
        self.signed(
            &SIZE_UNITS,
            &format!("{SIZE_EXPECTED}, or -1 for unlimited"),
        )
    }

    fn millis(&self) -> Result<u64, String> {
        self.unsigned(&DURATION_UNITS, DURATION_EXPECTED)
    }

    fn millis_or_unlimited(&self) -> Result<i64, String> {
        self.signed(
            &DURATION_UNITS,
            &format!("{DURATION_EXPECTED}, or -1 for unlimited"),
        )
    }
}

/// A listen or advertised address, `host:port`: the host is a name (`localhost`), an IPv4
/// address, or an IPv6 address in brackets (`[::1]:7070`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    host: String,
    port: u16,
}

impl HostPort {
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address itself when the host is an IP address (no lookup).
    pub fn ip_address(&self) -> Option<SocketAddr> {
        let ip: std::net::IpAddr = self.host.parse().ok()?;
        Some(SocketAddr::new(ip, self.port))
    }

    /// The address to listen on: the host's first IPv4 address, or its first address if it
    /// has no IPv4 one. A name is looked up (`/etc/hosts`, DNS); the error names it.
    pub async fn resolve(&self) -> Result<SocketAddr, ResolveError> {
        if let Some(address) = self.ip_address() {
            return Ok(address);
        }
        let failed = |reason: String| ResolveError {
            address: self.clone(),
            reason,
        };
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|error| failed(error.to_string()))?
            .collect();
        addresses
            .iter()
            .find(|address| address.is_ipv4())
            .or(addresses.first())
            .copied()
            .ok_or_else(|| failed("it has no address".to_owned()))
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for HostPort {
    type Err = String;
    fn from_str(text: &str) -> Result<HostPort, String> {
        let wrong = |why: &str| {
            format!("expected HOST:PORT (such as 127.0.0.1:7070, localhost:7070 or [::1]:7070), not {text:?}: {why}")
        };
        if text.contains("://") {
            return Err(wrong("give no scheme"));
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, port) = rest
                .split_once("]:")
                .ok_or_else(|| wrong("no ]:PORT after an IPv6 address"))?;
            host.parse::<std::net::Ipv6Addr>()
                .map_err(|_| wrong("not an IPv6 address in the brackets"))?;
            (host, port)
        } else {
            let (host, port) = text.rsplit_once(':').ok_or_else(|| wrong("no port"))?;
            if host.contains(':') {
                return Err(wrong("an IPv6 address needs brackets"));
            }
            (host, port)
        };
        let valid_name = |host: &str| {
            host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
        };
        if host.is_empty() || host.len() > 253 || !(host.contains(':') || valid_name(host)) {
            return Err(wrong("not a host name or an IP address"));
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| wrong("not a port number"))?;
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

/// A listen address whose host name did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve {} (listen address {address}): {reason}", .address.host)]
pub struct ResolveError {
    pub address: HostPort,
    pub reason: String,
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
    pub advertised_address: String,
    pub controller_voters: String,
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
    sources: BTreeMap<&'static str, Source>,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_choice(
            text,
            &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        )
    }
}

/// The value named `text` among `choices`, or an error that lists the names.
fn parse_choice<T: Copy>(text: &str, choices: &[(&str, T)]) -> Result<T, String> {
    match choices.iter().find(|(name, _)| *name == text) {
        Some((_, value)) => Ok(*value),
        None => {
            let names: Vec<String> = choices
                .iter()
                .map(|(name, _)| format!("{name:?}"))
                .collect();
            Err(format!("expected {}, not {text:?}", names.join(" or ")))
        }
    }
}

/// How partition logs reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogIo {
    /// Through the page cache (Kafka's way).
    Buffered,
    /// With `O_DIRECT`, past the page cache.
    Direct,
}

impl LogIo {
    const NAMES: [(&'static str, LogIo); 2] =
        [("buffered", LogIo::Buffered), ("direct", LogIo::Direct)];

    pub fn name(self) -> &'static str {
        match self {
            LogIo::Buffered => "buffered",
            LogIo::Direct => "direct",
        }
    }
}

impl FromStr for LogIo {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_choice(text, &LogIo::NAMES)
    }
}

/// Picks flag/env (told apart by clap's value source), then file, then default.
struct Merger<'a> {
    matches: &'a ArgMatches,
    sources: BTreeMap<&'static str, Source>,
}

impl Merger<'_> {
    fn pick<T>(
        &mut self,
        key: &'static str,
        arg_id: &str,
        cli: Option<T>,
        file: Option<T>,
        default: T,
    ) -> T {
        let (value, source) = match (cli, file) {
            (Some(value), _) => {
                let source = match self.matches.value_source(arg_id) {
                    Some(ValueSource::EnvVariable) => Source::Env,
                    _ => Source::Flag,
                };
                (value, source)
            }
            (None, Some(value)) => (value, Source::File),
            (None, None) => (default, Source::Default),
        };
        self.sources.insert(key, source);
        value
    }

    fn source_name(&self, key: &'static str) -> &'static str {
        self.sources
            .get(key)
            .map_or("default", |source| source.name())
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|error| ConfigError::ParseFile {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })
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
        let listen_text = merger.pick(
            "listeners.grpc",
            "listen",
            args.listen.clone(),
            file.listeners.and_then(|l| l.grpc),
            "127.0.0.1:7070".to_owned(),
        );
        let listen: HostPort = listen_text.parse().map_err(|reason| ConfigError::Invalid {
            key: "listeners.grpc",
            source_name: merger.source_name("listeners.grpc"),
            reason,
        })?;
        let advertised_address = merger.pick(
            "advertised.grpc",
            "advertised_address",
            args.advertised_address.clone(),
            file.advertised.and_then(|a| a.grpc),
            listen.to_string(),
        );
        if let Err(reason) = advertised_address.parse::<HostPort>() {
            return Err(ConfigError::Invalid {
                key: "advertised.grpc",
                source_name: merger.source_name("advertised.grpc"),
                reason,
            });
        }
        let controller_voters = merger.pick(
            "controller_voters",
            "controller_voters",
            args.controller_voters.clone(),
            file.controller_voters,
            format!("{node_id}@{advertised_address}"),
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
            Given::Integer(30_000),
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
        let voters: Vec<&str> = controller_voters
            .split(',')
            .filter(|voter| !voter.is_empty())
            .collect();
        if voters.len() != 1
            || !voters
                .iter()
                .all(|voter| voter.starts_with(&format!("{node_id}@")))
        {
            return Err(invalid(
                &merger,
                "controller_voters",
                format!("only a one-node cluster (\"{node_id}@<address>\") is supported for now, not {controller_voters:?}"),
            ));
        }
        Ok(BrokerSettings {
            node_id,
            data_dir,
            listen,
            advertised_address,
            controller_voters,
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
            sources: merger.sources,
        })
    }

    /// The merged configuration as TOML, each value followed by its source.
    pub fn to_annotated_toml(&self) -> String {
        let source = |key: &str| {
            self.sources
                .get(key)
                .map_or("default", |source| source.name())
        };
        let mut out = String::new();
        let mut line = |key: &str, value: String| {
            let _ = writeln!(out, "{key} = {value} # {}", source(key));
        };
        line("node_id", self.node_id.to_string());
        line(
            "data_dir",
            format!("{:?}", self.data_dir.display().to_string()),
        );
        line("controller_voters", format!("{:?}", self.controller_voters));
        line("flush", format!("{:?}", self.flush.to_string()));
        line("segment_bytes", self.segment_bytes.to_string());
        line("retention_ms", self.retention_ms.to_string());
        line("retention_bytes", self.retention_bytes.to_string());
        line(
            "retention_check_interval_ms",
            self.retention_check_interval_ms.to_string(),
        );
        line("message_max_bytes", self.message_max_bytes.to_string());
        line("log_io", format!("{:?}", self.log_io.name()));
        line("worker_threads", self.worker_threads.to_string());
        line(
            "log_format",
            format!(
                "{:?}",
                if self.log_format == LogFormat::Json {
                    "json"
                } else {
                    "text"
                }
            ),
        );
        line("shutdown_grace_ms", self.shutdown_grace_ms.to_string());
        line(
            "max_connections_per_ip",
            self.max_connections_per_ip.to_string(),
        );
        line("max_streams_per_ip", self.max_streams_per_ip.to_string());
        line(
            "handshake_timeout_ms",
            self.handshake_timeout_ms.to_string(),
        );
        line(
            "connections_max_idle_ms",
            self.connections_max_idle_ms.to_string(),
        );
        let _ = writeln!(
            out,
            "\n[listeners]\ngrpc = {:?} # {}",
            self.listen.to_string(),
            source("listeners.grpc")
        );
        let _ = writeln!(
            out,
            "\n[advertised]\ngrpc = {:?} # {}",
            self.advertised_address,
            source("advertised.grpc")
        );
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use clap::{Args as _, FromArgMatches as _};

    use super::*;

    fn load(flags: &[&str], file: Option<&str>) -> Result<BrokerSettings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let mut argv = vec!["strata-broker".to_owned()];
        argv.extend(flags.iter().map(|flag| (*flag).to_owned()));
        if let Some(text) = file {
            let path = dir.path().join("broker.toml");
            std::fs::write(&path, text).unwrap();
            argv.push("--config".to_owned());
            argv.push(path.display().to_string());
        }
        let matches = ServeArgs::augment_args(clap::Command::new("strata-broker"))
            .try_get_matches_from(argv)
            .unwrap();
        let args = ServeArgs::from_arg_matches(&matches).unwrap();
        BrokerSettings::load(&args, &matches)
    }

    #[test]
    fn log_io_defaults_to_buffered_and_is_taken_from_a_flag_or_the_file() {
        assert_eq!(load(&[], None).unwrap().log_io, LogIo::Buffered);
        let settings = load(&["--log-io", "direct"], None).unwrap();
        assert_eq!(settings.log_io, LogIo::Direct);
        assert!(settings
            .to_annotated_toml()
            .contains("log_io = \"direct\" # flag"));
        assert_eq!(
            load(&[], Some("log_io = \"direct\"\n")).unwrap().log_io,
            LogIo::Direct
        );
    }

    #[test]
    fn retention_check_interval_defaults_to_a_minute_and_zero_is_refused() {
        assert_eq!(load(&[], None).unwrap().retention_check_interval_ms, 60_000);
        let settings = load(&["--retention-check-interval-ms", "500"], None).unwrap();
        assert_eq!(settings.retention_check_interval_ms, 500);
        assert!(settings
            .to_annotated_toml()
            .contains("retention_check_interval_ms = 500 # flag"));
        assert_eq!(
            load(&[], Some("retention_check_interval_ms = 2000\n"))
                .unwrap()
                .retention_check_interval_ms,
            2000
        );
        let error = load(&["--retention-check-interval-ms", "0"], None).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("retention_check_interval_ms (from flag)"),
            "{error}"
        );
    }

    #[test]
    fn choices_parse_by_name_and_a_wrong_one_lists_them() {
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!(
            "xml".parse::<LogFormat>(),
            Err("expected \"text\" or \"json\", not \"xml\"".to_owned())
        );
        assert_eq!("direct".parse::<LogIo>(), Ok(LogIo::Direct));
        for (name, io) in LogIo::NAMES {
            assert_eq!(io.name(), name);
        }
    }

    #[test]
    fn worker_threads_default_to_one_per_core_and_zero_is_refused() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(load(&[], None).unwrap().worker_threads, cores);
        let settings = load(&["--worker-threads", "1"], None).unwrap();
        assert_eq!(settings.worker_threads, 1);
        assert!(settings
            .to_annotated_toml()
            .contains("worker_threads = 1 # flag"));
        assert_eq!(
            load(&[], Some("worker_threads = 3\n"))
                .unwrap()
                .worker_threads,
            3
        );
        let error = load(&[], Some("worker_threads = 0\n")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "worker_threads (from file): must be between 1 and 1024"
        );
    }

    #[test]
    fn shutdown_grace_defaults_to_30_s_and_comes_from_a_flag_or_the_file() {
        let settings = load(&[], None).unwrap();
        assert_eq!(settings.shutdown_grace_ms, 30_000);
        assert!(settings
            .to_annotated_toml()
            .contains("shutdown_grace_ms = 30000 # default"));
        let settings = load(&["--shutdown-grace-ms", "0"], None).unwrap();
        assert_eq!(settings.shutdown_grace_ms, 0);
        assert!(settings
            .to_annotated_toml()
            .contains("shutdown_grace_ms = 0 # flag"));
        let from_file = load(&[], Some("shutdown_grace_ms = 5000\n")).unwrap();
        assert_eq!(from_file.shutdown_grace_ms, 5000);
        let error = load(&[], Some("shutdown_grace_ms = 3600001\n")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "shutdown_grace_ms (from file): must be between 0 and 3600000"
        );
    }

    #[test]
    fn connection_limits_have_kafka_like_defaults_and_come_from_flag_env_or_file() {
        let settings = load(&[], None).unwrap();
        assert_eq!(
            (
                settings.max_connections_per_ip,
                settings.max_streams_per_ip,
                settings.handshake_timeout_ms,
                settings.connections_max_idle_ms
            ),
            (256, 1024, 10_000, 600_000)
        );
        let printed = settings.to_annotated_toml();
        assert!(printed.contains("max_connections_per_ip = 256 # default"));
        assert!(printed.contains("connections_max_idle_ms = 600000 # default"));
        let settings = load(
            &[
                "--max-connections-per-ip",
                "8",
                "--max-streams-per-ip",
                "16",
                "--handshake-timeout-ms",
                "500",
            ],
            Some("connections_max_idle_ms = 2000\n"),
        )
        .unwrap();
        assert_eq!(settings.max_connections_per_ip, 8);
        assert_eq!(settings.max_streams_per_ip, 16);
        assert_eq!(settings.handshake_timeout_ms, 500);
        assert_eq!(settings.connections_max_idle_ms, 2000);
        assert!(settings
            .to_annotated_toml()
            .contains("connections_max_idle_ms = 2000 # file"));
        let error = load(&["--max-connections-per-ip", "0"], None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "max_connections_per_ip (from flag): must be between 1 and 1000000"
        );
        let error = load(&[], Some("handshake_timeout_ms = 0\n")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "handshake_timeout_ms (from file): must be between 1 and 604800000"
        );
    }

    #[test]
    fn sizes_take_1024_based_and_1000_based_units_and_plain_bytes() {
        let bytes = |text: &str| parse_with_units(text, &SIZE_UNITS, SIZE_EXPECTED);
        for (text, expected) in [
            ("1048576", 1 << 20),
            ("0", 0),
            ("1B", 1),
            ("1KiB", 1 << 10),
            ("1MiB", 1 << 20),
            ("4MiB", 4 << 20),
            ("1GiB", 1 << 30),
            ("10GiB", 10 << 30),
            ("1TiB", 1 << 40),
            ("1KB", 1_000),
            ("1MB", 1_000_000),
            ("512MB", 512_000_000),
            ("1GB", 1_000_000_000),
            ("1 MiB", 1 << 20),
            ("1mib", 1 << 20),
            (" 2kb ", 2_000),
        ] {
            assert_eq!(bytes(text), Ok(expected), "{text:?}");
        }
        for text in ["", "MiB", "1.5MiB", "1XB", "1M", "1 M iB", "-1MiB", "0x10"] {
            let error = bytes(text).unwrap_err();
            assert!(
                error.starts_with("expected bytes or a size"),
                "{text:?}: {error}"
            );
            assert!(error.ends_with(&format!("not {text:?}")), "{error}");
        }
        assert_eq!(
            bytes("20000000TiB"),
            Err("\"20000000TiB\" is too large".to_owned())
        );
    }

    #[test]
    fn durations_take_units_and_plain_milliseconds() {
        let millis = |text: &str| parse_with_units(text, &DURATION_UNITS, DURATION_EXPECTED);
        for (text, expected) in [
            ("30000", 30_000),
            ("500ms", 500),
            ("30s", 30_000),
            ("10m", 600_000),
            ("1h", 3_600_000),
            ("7d", 604_800_000),
        ] {
            assert_eq!(millis(text), Ok(expected), "{text:?}");
        }
        assert!(millis("1w")
            .unwrap_err()
            .starts_with("expected milliseconds"));
        assert!(millis("1.5s").is_err());
    }

    #[test]
    fn sizes_and_durations_with_units_come_from_a_flag_or_the_file() {
        let settings = load(
            &[
                "--segment-bytes",
                "1MiB",
                "--retention-ms",
                "-1",
                "--shutdown-grace-ms",
                "5s",
            ],
            Some(
                "retention_bytes = \"10GiB\"\nmessage_max_bytes = \"4MiB\"\n\
                 connections_max_idle_ms = 60000\nretention_check_interval_ms = \"1m\"\n",
            ),
        )
        .unwrap();
        assert_eq!(settings.segment_bytes, 1 << 20);
        assert_eq!(settings.retention_ms, -1);
        assert_eq!(settings.shutdown_grace_ms, 5_000);
        assert_eq!(settings.retention_bytes, 10 << 30);
        assert_eq!(settings.message_max_bytes, 4 << 20);
        assert_eq!(settings.connections_max_idle_ms, 60_000);
        assert_eq!(settings.retention_check_interval_ms, 60_000);
        let printed = settings.to_annotated_toml();
        assert!(
            printed.contains("segment_bytes = 1048576 # flag"),
            "{printed}"
        );
        assert!(printed.contains("retention_bytes = 10737418240 # file"));

        let settings = load(
            &["--retention-bytes", "-1"],
            Some("retention_ms = \"7d\"\n"),
        );
        let settings = settings.unwrap();
        assert_eq!(
            (settings.retention_bytes, settings.retention_ms),
            (-1, 604_800_000)
        );
        let settings = load(&[], Some("retention_bytes = -1\nsegment_bytes = 2048\n")).unwrap();
        assert_eq!(
            (settings.retention_bytes, settings.segment_bytes),
            (-1, 2048)
        );
    }

    #[test]
    fn a_bad_size_or_duration_is_refused_naming_its_source() {
        let error = load(&["--segment-bytes", "1XB"], None).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("segment_bytes (from flag): expected bytes or a size with a unit"),
            "{error}"
        );
        let error = load(&[], Some("message_max_bytes = \"1.5MiB\"\n")).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("message_max_bytes (from file): expected"),
            "{error}"
        );
        let error = load(&[], Some("segment_bytes = -5\n")).unwrap_err();
        assert!(
            error.to_string().starts_with("segment_bytes (from file)"),
            "{error}"
        );
        let error = load(&[], Some("retention_bytes = -2\n")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "retention_bytes (from file): must be ≥ 0, or -1 for unlimited"
        );
        let error = load(&["--retention-ms=-1s"], None).unwrap_err();
        assert!(
            error.to_string().starts_with("retention_ms (from flag)"),
            "{error}"
        );
        let error = load(&[], Some("shutdown_grace_ms = \"2h\"\n")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "shutdown_grace_ms (from file): must be between 0 and 3600000"
        );
        // Range checks apply to the value with its unit resolved.
        let error = load(&["--segment-bytes", "2GiB"], None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "segment_bytes (from flag): must be between 1024 and 2147483647"
        );
        let error = load(&[], Some("segment_bytes = true\n")).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("an integer or a string with a unit"),
            "{error}"
        );
    }

    #[test]
    fn host_ports_take_names_and_ip_addresses() {
        for (text, host, port) in [
            ("localhost:7070", "localhost", 7070),
            ("broker-1:7070", "broker-1", 7070),
            ("kafka.example.com:9092", "kafka.example.com", 9092),
            ("127.0.0.1:0", "127.0.0.1", 0),
            ("0.0.0.0:7070", "0.0.0.0", 7070),
            ("[::1]:7070", "::1", 7070),
        ] {
            let parsed: HostPort = text.parse().unwrap();
            assert_eq!((parsed.host(), parsed.port()), (host, port), "{text}");
            assert_eq!(parsed.to_string(), text);
        }
        assert_eq!(
            "[::1]:7070".parse::<HostPort>().unwrap().ip_address(),
            Some("[::1]:7070".parse().unwrap())
        );
        assert_eq!(
            "localhost:7070".parse::<HostPort>().unwrap().ip_address(),
            None
        );
        for (text, why) in [
            ("localhost", "no port"),
            ("localhost:", "not a port number"),
            ("localhost:70000", "not a port number"),
            (":7070", "not a host name or an IP address"),
            ("bad host:7070", "not a host name or an IP address"),
            ("http://localhost:7070", "give no scheme"),
            ("::1:7070", "an IPv6 address needs brackets"),
            ("[::1]7070", "no ]:PORT after an IPv6 address"),
            ("[local]:7070", "not an IPv6 address in the brackets"),
        ] {
            let error = text.parse::<HostPort>().unwrap_err();
            assert!(
                error.starts_with("expected HOST:PORT") && error.ends_with(why),
                "{text}: {error}"
            );
        }
    }

    #[tokio::test]
    async fn a_listen_host_name_resolves_to_an_ipv4_address_and_an_unknown_one_is_named() {
        let localhost: HostPort = "localhost:7070".parse().unwrap();
        assert_eq!(
            localhost.resolve().await.unwrap(),
            "127.0.0.1:7070".parse::<SocketAddr>().unwrap()
        );
        let ip: HostPort = "127.0.0.1:7071".parse().unwrap();
        assert_eq!(ip.resolve().await.unwrap().port(), 7071);
        // `.invalid` never resolves (RFC 2606).
        let unknown: HostPort = "no-such-host.invalid:7070".parse().unwrap();
        let error = unknown.resolve().await.unwrap_err().to_string();
        assert!(
            error.starts_with(
                "cannot resolve no-such-host.invalid (listen address no-such-host.invalid:7070): "
            ),
            "{error}"
        );
    }

    #[test]
    fn listen_and_advertised_addresses_take_host_names_from_a_flag_or_the_file() {
        let settings = load(&["--listen", "localhost:7071"], None).unwrap();
        assert_eq!(settings.listen.to_string(), "localhost:7071");
        assert_eq!(settings.advertised_address, "localhost:7071");
        assert_eq!(settings.controller_voters, "1@localhost:7071");
        let printed = settings.to_annotated_toml();
        assert!(
            printed.contains("grpc = \"localhost:7071\" # flag"),
            "{printed}"
        );
        let settings = load(
            &[],
            Some("[listeners]\ngrpc = \"0.0.0.0:7070\"\n[advertised]\ngrpc = \"broker-1:7070\"\n"),
        )
        .unwrap();
        assert_eq!(settings.listen.to_string(), "0.0.0.0:7070");
        assert_eq!(settings.advertised_address, "broker-1:7070");
        let error = load(&["--listen", "7070"], None).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("listeners.grpc (from flag): expected HOST:PORT"),
            "{error}"
        );
        let error = load(&[], Some("[advertised]\ngrpc = \"broker 1\"\n")).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("advertised.grpc (from file): expected HOST:PORT"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused() {
        let error = load(&[], Some("segment_size = 1024\n")).unwrap_err();
        assert!(
            matches!(&error, ConfigError::ParseFile { reason, .. } if reason.contains("unknown field `segment_size`")),
            "{error}"
        );
        let error = load(&[], Some("[listeners]\nadmin = \"127.0.0.1:7080\"\n")).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `admin`"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_log_io_is_refused_naming_its_source() {
        let error = load(&[], Some("log_io = \"mmap\"\n")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "log_io (from file): expected \"buffered\" or \"direct\", not \"mmap\""
        );
    }
}
