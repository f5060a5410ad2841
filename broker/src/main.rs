//! `strata-broker`: with no subcommand, runs a broker (by default a complete one-node
//! cluster: node 1, gRPC on 127.0.0.1:7070, data in ./strata-data). `dump-log` prints
//! segments. Settings: flags > `STRATA_…` env > `--config` TOML > defaults;
//! `--print-config` shows the merged result. `probe --ready` asks a running broker's
//! admin listener whether it is ready (exit 0) or not (exit 1), for container health
//! checks.
//!
//! The admin HTTP listener (`--admin-listen`, default 127.0.0.1:7080: `/healthz`,
//! `/readyz`, `/metrics`) is bound with the gRPC address and serves from before the data
//! directory is opened, so `/readyz` answers `booting` during recovery; the first
//! shutdown signal turns it to `shutting_down`.
//!
//! An external gRPC listener (`--external-listen`, off by default) serves the client
//! services to clients outside the brokers' network; metadata asked for there names every
//! broker at its `--external-advertised-address`. Other brokers and the controller quorum
//! use the internal listener only: replication and controller calls on the external one
//! are answered UNIMPLEMENTED.
//!
//! Start-up takes the listen addresses (resolving a host name, binding the port) before
//! it opens the data directory: a taken port or an unknown host stops the start with
//! one line that names the address, and leaves the data directory as it was. Connections
//! are accepted only once the logs are open and recovered.
//!
//! Signals, once the broker serves (before that a signal ends the process, and the next
//! start recovers):
//!
//! - The first SIGTERM or SIGINT closes the listener, sends every connection an HTTP/2
//!   GOAWAY and refuses new produce (`BROKER_NOT_AVAILABLE`). Produce streams stop
//!   reading, answer every request they have read (its commit finishes), then end with
//!   UNAVAILABLE "broker is shutting down; reconnect"; fetch sessions end at once the
//!   same way, and a long-poll fetch returns what it has. Clients reconnect when the
//!   broker is back.
//! - When every connection has closed, or once `shutdown_grace_ms` (default 25 s) has
//!   passed since the signal with some still open (those are cut when the process
//!   exits), the broker flushes and checkpoints every log, writes the clean-shutdown
//!   marker and exits 0. The controlled shutdown and the drain share that one deadline
//!   (`node::shutdown_budget`).
//! - A second SIGTERM or SIGINT at any point after the first exits at once with status
//!   130, without the marker: the next start runs a recovery scan, which keeps every
//!   acknowledged record.
//! - A fatal storage error (a failed fsync) exits with status 70 without the marker.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use strata_broker::admin::{self, AdminState};
use strata_broker::node::config::{BrokerSettings, HostPort, LogFormat, LogIo, ServeArgs};
use strata_broker::node::descriptors::{self, DescriptorBudget};
use strata_broker::node::shutdown_budget::ShutdownBudget;
use strata_broker::node::{GroupCoordinator, GroupSettings, Limits, Node, NodeConfig};
use strata_broker::service::connections::ConnectionSettings;

/// The Strata broker.
#[derive(Debug, Parser)]
#[command(
    name = "strata-broker",
    version,
    about = "The Strata broker. With no subcommand it serves: a one-node cluster on 127.0.0.1:7070 with data in ./strata-data.",
    after_help = "Examples:\n  strata-broker\n  strata-broker --data-dir /var/lib/strata --listen 0.0.0.0:7070 --flush interval:1000\n  strata-broker --print-config --config strata.toml\n  strata-broker dump-log strata-data/orders-0 --records\n  strata-broker probe --ready --admin-address 127.0.0.1:7080"
)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the batches of a segment file or of every segment in a partition directory,
    /// checking each batch's framing and CRC (like Kafka's kafka-dump-log). Given the
    /// controller directory it prints the cluster metadata's Raft log and snapshot:
    /// `dump-log <data>/controller --records`.
    DumpLog(strata_broker::dump::DumpLogArgs),
    /// Ask a running broker's admin listener for `/readyz`: exit 0 when it answers 200
    /// (ready), 1 otherwise (booting, shutting down, unreachable). For container health
    /// checks without curl: `strata-broker probe --ready`.
    Probe(ProbeArgs),
}

#[derive(Debug, clap::Args)]
struct ProbeArgs {
    /// Check readiness (`GET /readyz`).
    #[arg(long, required = true)]
    ready: bool,
    /// The admin listener to ask (default: this broker's `--admin-listen`, from the same
    /// flags, `STRATA_…` variables and `--config` file as the broker; a wildcard host is
    /// asked on loopback).
    #[arg(long, value_name = "HOST:PORT")]
    admin_address: Option<String>,
}

/// Exit status after a fatal storage error (EX_SOFTWARE).
const EXIT_FATAL: u8 = 70;

/// Exit status after a second SIGTERM or SIGINT (128 + SIGINT, as shells report Ctrl-C).
const EXIT_SECOND_SIGNAL: i32 = 130;
/// The longest a SIGTERM waits for the controller to move leadership away (bounded also by
/// half the shutdown grace; the drain that follows gets what is left of the grace).
const CONTROLLED_SHUTDOWN_MAX: Duration = Duration::from_secs(15);

/// How long the runtime's leftover tasks get once `run` has returned.
const RUNTIME_STOP_MAX: Duration = Duration::from_millis(500);

fn main() -> ExitCode {
    keep_freed_memory();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    match &cli.command {
        Some(Command::DumpLog(args)) => return strata_broker::dump::run(args),
        Some(Command::Probe(args)) => return probe(args, &cli.serve, &matches),
        None => {}
    }
    let settings = match BrokerSettings::load(&cli.serve, &matches) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("strata-broker: {error}");
            return ExitCode::from(2);
        }
    };
    if cli.serve.print_config {
        print!("{}", settings.to_annotated_toml());
        return ExitCode::SUCCESS;
    }
    init_tracing(settings.log_format, settings.node_id);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.worker_threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("strata-broker: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Before the data directory is opened: a start that cannot listen leaves it alone.
    let reserved = match runtime.block_on(Reserved::bind(&settings.listen)) {
        Ok(reserved) => reserved,
        Err(error) => {
            eprintln!("strata-broker: {error}");
            return ExitCode::FAILURE;
        }
    };
    let external = match &settings.external_listen {
        Some(address) => match runtime.block_on(Reserved::bind(address)) {
            Ok(reserved) => Some(reserved),
            Err(error) => {
                eprintln!("strata-broker: external listener (--external-listen): {error}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    // Listening needs the runtime's reactor: inside `block_on`.
    let admin_listener =
        match runtime.block_on(async { Reserved::bind(&settings.admin_listen).await?.listen() }) {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("strata-broker: admin listener (--admin-listen): {error}");
                return ExitCode::FAILURE;
            }
        };
    let reserved = ReservedListeners {
        internal: reserved,
        external,
    };
    let code = match runtime.block_on(run(settings, reserved, admin_listener)) {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    };
    // The logs are closed (or left for recovery) by now: whatever still runs on the
    // runtime, a blocking task included, is not waited for. Dropping the runtime waits
    // for every blocking task, and once kept a stopped broker alive for seconds after
    // "clean shutdown complete", past its supervisor's limit.
    runtime.shutdown_timeout(RUNTIME_STOP_MAX);
    code
}

/// The log filter without `RUST_LOG`. openraft's own lines are left out (it logs every
/// failed Raft RPC as an error, once a second per unreachable voter); the broker logs the
/// controller's state changes itself: leader elected, voter unreachable and back,
/// registration, fencing. `RUST_LOG=info,openraft=info` brings them back.
const DEFAULT_LOG_FILTER: &str = "info,openraft=off";

fn init_tracing(format: LogFormat, broker_id: i32) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    // Colour only on a terminal, and never when NO_COLOR is set to anything non-empty
    // (https://no-color.org).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Json => builder
            .json()
            .event_format(WithBrokerId {
                inner: tracing_subscriber::fmt::format().json(),
                broker_id,
            })
            .init(),
        LogFormat::Text => builder.init(),
    }
}

/// tracing-subscriber's JSON lines with `"broker_id"` first in every object, so that the
/// lines of several brokers can be told apart once shipped to one place.
struct WithBrokerId<F> {
    inner: F,
    broker_id: i32,
}

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for WithBrokerId<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        context: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.inner.format_event(
            context,
            tracing_subscriber::fmt::format::Writer::new(&mut line),
            event,
        )?;
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{\"broker_id\":{},{rest}", self.broker_id),
            None => writer.write_str(&line),
        }
    }
}

fn node_config(
    settings: &BrokerSettings,
    descriptor_budget: DescriptorBudget,
    local_ip: Option<std::net::IpAddr>,
) -> NodeConfig {
    let log_defaults = strata_broker::log::LogConfig {
        segment_bytes: settings.segment_bytes,
        retention_ms: u64::try_from(settings.retention_ms).ok(),
        retention_bytes: u64::try_from(settings.retention_bytes).ok(),
        flush: settings.flush,
        batch_bytes_max: settings.message_max_bytes.max(16 << 20),
        direct_io: settings.log_io == LogIo::Direct,
        ..strata_broker::log::LogConfig::default()
    };
    let limits = Limits {
        message_max_bytes: settings.message_max_bytes,
        ..Limits::default()
    };
    NodeConfig {
        node_id: strata_proto::types::BrokerId(settings.node_id),
        advertised_address: settings.advertised_address.clone(),
        external_advertised_address: settings.external_advertised_address.clone(),
        data_dir: settings.data_dir.clone(),
        topic_defaults: strata_broker::controller::BrokerDefaults::from_log_config(
            &log_defaults,
            settings.message_max_bytes,
        ),
        log_defaults,
        limits,
        retention_check_interval: std::time::Duration::from_millis(
            settings.retention_check_interval_ms,
        ),
        descriptor_budget,
        voters: settings.controller_voters.clone(),
        rack: settings.rack.clone(),
        local_ip,
        heartbeat_interval: Duration::from_millis(settings.broker_heartbeat_interval_ms),
        session_timeout: Duration::from_millis(settings.broker_session_timeout_ms),
        replica_lag_max: Duration::from_millis(settings.replica_lag_time_max_ms),
    }
}

fn group_settings(settings: &BrokerSettings) -> GroupSettings {
    GroupSettings {
        group: strata_broker::group::GroupConfig {
            session_timeout: Duration::from_millis(settings.group_session_timeout_ms),
            heartbeat_interval: Duration::from_millis(settings.group_heartbeat_interval_ms),
            ..strata_broker::group::GroupConfig::default()
        },
        offsets_topic_partitions: settings.offsets_topic_partitions,
        ..GroupSettings::default()
    }
}

/// The listen address, bound but not listening yet: the port is taken (a second broker
/// on it fails at once), while connection attempts are refused until the broker serves.
struct Reserved {
    socket: tokio::net::TcpSocket,
    /// How the address is named in messages: `127.0.0.1:7070`, or
    /// `localhost:7070 (127.0.0.1:7070)` for a host name.
    shown: String,
}

/// The gRPC listen addresses, bound before the data directory is opened.
struct ReservedListeners {
    internal: Reserved,
    external: Option<Reserved>,
}

/// A listen address the broker cannot take.
#[derive(Debug, thiserror::Error)]
enum ListenError {
    #[error(transparent)]
    Resolve(#[from] strata_broker::node::config::ResolveError),
    #[error("cannot listen on {shown}: {}", describe_listen_error(.source))]
    Bind {
        shown: String,
        source: std::io::Error,
    },
}

fn describe_listen_error(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::AddrInUse => "address in use (is another broker running?)".into(),
        std::io::ErrorKind::AddrNotAvailable => {
            "address not available (no network interface of this host has it)".into()
        }
        std::io::ErrorKind::PermissionDenied => {
            format!("{error} (ports below 1024 need privileges)")
        }
        _ => error.to_string(),
    }
}

impl Reserved {
    /// Resolves `address` and binds its port, with `SO_REUSEADDR` as any server does (a
    /// restart is not refused because of the previous run's closed connections).
    async fn bind(address: &HostPort) -> Result<Reserved, ListenError> {
        let resolved = address.resolve().await?;
        let shown = if address.ip_address().is_some() {
            resolved.to_string()
        } else {
            format!("{address} ({resolved})")
        };
        let bind = || {
            let socket = if resolved.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.bind(resolved)?;
            Ok(socket)
        };
        match bind() {
            Ok(socket) => Ok(Reserved { socket, shown }),
            Err(source) => Err(ListenError::Bind { shown, source }),
        }
    }

    /// Starts listening: from here connections are accepted (served once `serve` runs).
    fn listen(self) -> Result<tokio::net::TcpListener, ListenError> {
        // The backlog tokio's own `TcpListener::bind` uses.
        self.socket
            .listen(1024)
            .map_err(|source| ListenError::Bind {
                shown: self.shown,
                source,
            })
    }
}

async fn run(
    settings: BrokerSettings,
    reserved: ReservedListeners,
    admin_listener: tokio::net::TcpListener,
) -> anyhow::Result<ExitCode> {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %settings.to_annotated_toml().replace('\n', "; "),
        "starting strata-broker"
    );
    let admin_address = admin_listener.local_addr()?;
    let admin = start_admin(admin_listener);
    admin.set_peek_enabled(settings.admin_peek);
    admin.set_per_partition_metrics(settings.metrics_per_partition);
    tracing::info!(admin = %admin_address, "admin listener serving /healthz, /readyz, /metrics");
    let descriptor_budget =
        descriptors::budget_at_start(&settings.data_dir, settings.log_io == LogIo::Direct)?;
    // Broker-to-broker connections leave from the listener's address (none for a
    // wildcard listener), so a cut between two brokers' addresses cuts their traffic.
    let local_ip = reserved
        .internal
        .socket
        .local_addr()
        .ok()
        .map(|address| address.ip())
        .filter(|ip| !ip.is_unspecified());
    let config = node_config(&settings, descriptor_budget, local_ip);
    // Until `Signals::listen`, a signal ends the process at once (its default action):
    // recovery is safe to interrupt, and runs again at the next start.
    let node = Node::start(config).await?;
    // Before the port accepts connections: whoever can connect can count on the
    // shutdown below.
    let mut signals = Signals::listen()?;
    // Another process could only take the port in between if it, too, bound it with
    // SO_REUSEADDR without listening yet; the error then still names the address.
    let listener = reserved.internal.listen()?;
    let external = reserved.external.map(Reserved::listen).transpose()?;
    admin.lifecycle().listeners_bound();
    let external_address = match &external {
        Some(external) => Some(external.local_addr()?),
        None => None,
    };
    tracing::info!(listen = %listener.local_addr()?, external = ?external_address, admin = %admin_address, data_dir = %settings.data_dir.display(), "broker ready");

    let groups = GroupCoordinator::start(Arc::clone(&node), group_settings(&settings));
    admin.started(Arc::clone(&node), Arc::clone(&groups));
    let stopping = Arc::clone(&node);
    tokio::spawn(return_idle_memory());
    let mut server = Box::pin(strata_broker::service::serve(
        strata_broker::service::Serving {
            node: Arc::clone(&node),
            groups,
            admin: Arc::clone(&admin),
        },
        strata_broker::service::Listeners {
            internal: listener,
            external,
        },
        connection_settings(&settings),
        async move { stopping.stopping().await },
    ));
    let signal = tokio::select! {
        served = &mut server => {
            served?;
            anyhow::bail!("the gRPC server stopped without being asked to");
        }
        reason = node.fatal_error() => return Ok(fatal_exit(&reason)),
        signal = signals.next() => signal,
    };
    // The first step of a shutdown: orchestrators stop sending traffic here.
    admin.lifecycle().shutting_down();
    let grace = Duration::from_millis(settings.shutdown_grace_ms);
    let budget = ShutdownBudget::start(Instant::now(), grace, CONTROLLED_SHUTDOWN_MAX);
    tracing::info!(
        signal,
        grace_ms = settings.shutdown_grace_ms,
        "shutting down: no new connections or produce, streams told to reconnect; a second signal exits at once"
    );
    tokio::spawn(exit_on_second_signal(signals));
    // Controlled shutdown: the controller moves leadership of this broker's partitions to
    // other in-sync replicas (and then fences it) while this broker still serves.
    if node.quorum().leave(budget.leave_by()).await {
        tracing::info!("controlled shutdown done: this broker leads nothing that could move");
    } else {
        tracing::warn!("controlled shutdown did not finish in time; closing anyway");
    }
    node.begin_shutdown();
    // This voter leaves the controller quorum before the connections drain: its listener
    // now refuses new connections, so the other voters' requests and heartbeats cannot
    // reach it. Left running, it once won an election in that state and, as a leader that
    // nobody could reach, kept the other brokers from renewing their leases until it
    // exited; stopped, the others elect a leader among themselves.
    node.quorum().shutdown().await;
    tokio::select! {
        served = tokio::time::timeout(budget.drain_within(Instant::now()), &mut server) => match served {
            Ok(Ok(())) => tracing::info!("every connection closed"),
            Ok(Err(error)) => tracing::warn!(%error, "the gRPC server failed while draining"),
            Err(_) => tracing::warn!(grace_ms = settings.shutdown_grace_ms, "connections still open after the grace period; closing the logs anyway"),
        },
        reason = node.fatal_error() => return Ok(fatal_exit(&reason)),
    }
    // No longer waited for: connections still open are cut when the process exits.
    drop(server);
    tokio::task::spawn_blocking(move || node.shutdown()).await??;
    tracing::info!("clean shutdown complete");
    Ok(ExitCode::SUCCESS)
}

/// Installs the metrics recorder and serves the admin listener until the process exits
/// (it answers `shutting_down` during a shutdown, so it is not stopped with gRPC).
fn start_admin(listener: tokio::net::TcpListener) -> Arc<AdminState> {
    let metrics = match admin::metrics::install() {
        Ok(handle) => Some(handle),
        Err(error) => {
            tracing::warn!(%error, "metrics are not recorded: /metrics answers 404");
            None
        }
    };
    if let Some(handle) = metrics.clone() {
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(admin::metrics::UPKEEP_INTERVAL);
            loop {
                interval.tick().await;
                handle.run_upkeep();
            }
        });
    }
    let state = AdminState::new(metrics);
    let serving = Arc::clone(&state);
    tokio::spawn(async move {
        if let Err(error) = admin::http::serve(listener, serving).await {
            tracing::error!(%error, "the admin listener stopped");
        }
    });
    state
}

/// `strata-broker probe --ready`: exit 0 when the admin listener answers `/readyz` with
/// 200, 1 otherwise, 2 for a bad configuration; one line either way.
fn probe(args: &ProbeArgs, serve: &ServeArgs, matches: &clap::ArgMatches) -> ExitCode {
    debug_assert!(args.ready, "clap requires --ready");
    let address = match &args.admin_address {
        Some(address) => address.clone(),
        None => match BrokerSettings::load(serve, matches) {
            Ok(settings) => settings.admin_listen.to_string(),
            Err(error) => {
                eprintln!("strata-broker probe: {error}");
                return ExitCode::from(2);
            }
        },
    };
    if address
        .parse::<HostPort>()
        .is_ok_and(|host_port| host_port.port() == 0)
    {
        eprintln!("strata-broker probe: the admin address {address} has port 0 (a port chosen at start); pass --admin-address");
        return ExitCode::from(2);
    }
    match admin::probe::get(&address, "/readyz") {
        Ok(answer) if answer.status == 200 => {
            println!("ready: {address} answered {}", answer.body);
            ExitCode::SUCCESS
        }
        Ok(answer) => {
            eprintln!(
                "not ready: {address} answered {} {}",
                answer.status, answer.body
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("not ready: {error}");
            ExitCode::FAILURE
        }
    }
}

fn connection_settings(settings: &BrokerSettings) -> ConnectionSettings {
    ConnectionSettings {
        max_connections_per_ip: settings.max_connections_per_ip,
        max_streams_per_ip: settings.max_streams_per_ip,
        handshake_timeout: Duration::from_millis(settings.handshake_timeout_ms),
        idle_timeout: Duration::from_millis(settings.connections_max_idle_ms),
    }
}

fn fatal_exit(reason: &str) -> ExitCode {
    tracing::error!(%reason, "stopping after a fatal storage error, without the clean-shutdown marker");
    ExitCode::from(EXIT_FATAL)
}

/// Waits for a second SIGTERM or SIGINT and exits at once with status 130, without the
/// clean-shutdown marker: the next start runs a recovery scan.
async fn exit_on_second_signal(mut signals: Signals) {
    let signal = signals.next().await;
    tracing::warn!(
        signal,
        "second signal: exiting at once; the next start runs recovery"
    );
    std::process::exit(EXIT_SECOND_SIGNAL);
}

/// SIGTERM and SIGINT, listened to once for the whole run, so a second signal that
/// arrives while the first is being handled is not missed.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// The name of the next SIGTERM or SIGINT.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// Keeps freed memory in glibc's malloc for reuse while the broker is busy; see
/// [`return_idle_memory`] for when it goes back.
///
/// HTTP/2 frames of up to 1 MiB are kept as they arrive (produce batches until they are
/// written, fetched batches until they are consumed), so each frame's buffer is a fresh
/// allocation of about 1 MiB. By default glibc serves those with `mmap` and returns
/// freed memory at once, and every page of every frame is then faulted in anew: 125,000
/// to 350,000 page faults while a consumer read 2.5 GB, about a third of its CPU on a
/// VM whose first touch of a page costs 4 µs (`docs/bench/history.md` item 16). With these
/// settings freed buffers are reused, and up to `M_TRIM_THRESHOLD` of free memory stays
/// at the top of the heap while traffic flows.
///
/// One malloc arena for every thread: `malloc_trim` gives back the free top of the main
/// arena only, and the per-thread arenas glibc adds otherwise (up to 8 per core) kept
/// the top of their heaps, tens of MB each after a burst, for good (issue 18 row 11).
/// Small allocations still come from each thread's cache without the arena's lock.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // 32 MiB is the largest mmap threshold glibc accepts.
    for (parameter, value) in [
        (libc::M_ARENA_MAX, 1),
        (libc::M_MMAP_THRESHOLD, 32 << 20),
        (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
    ] {
        // SAFETY: mallopt takes two integers by value and changes only malloc's tuning.
        unsafe { libc::mallopt(parameter, value) };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

/// Free memory glibc may keep at the top of its heap (it was 1 GiB: a burst of fetches
/// or decompressions then held hundreds of MB for good, issue 18 row 11).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD_BYTES: i32 = 64 << 20;

/// How often the broker looks whether it has been quiet.
const QUIET_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Fewer record bytes than this moved in one [`QUIET_CHECK_INTERVAL`] is quiet (an idle
/// consumer's long polls, a trickle of small batches).
const QUIET_RECORD_BYTES_MAX: u64 = 16 << 20;

/// Hands memory that malloc keeps free back to the kernel while the broker is quiet, so
/// that the memory of a burst (or of connections that closed) does not stay with the
/// process: every [`QUIET_CHECK_INTERVAL`] in which fewer than [`QUIET_RECORD_BYTES_MAX`]
/// record bytes moved, `malloc_trim(0)` releases the free pages of every malloc arena
/// (a few hundred microseconds when there is little to release). Under steady traffic
/// nothing is trimmed, and freed buffers are reused as [`keep_freed_memory`] intends.
async fn return_idle_memory() {
    let mut last_total = strata_broker::service::traffic::record_bytes_total();
    loop {
        tokio::time::sleep(QUIET_CHECK_INTERVAL).await;
        let total = strata_broker::service::traffic::record_bytes_total();
        let moved = total.saturating_sub(last_total);
        last_total = total;
        if moved < QUIET_RECORD_BYTES_MAX {
            // A failed task (a panic in malloc_trim) changes nothing worth reporting.
            let _ = tokio::task::spawn_blocking(trim_free_memory).await;
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_free_memory() {
    // SAFETY: malloc_trim takes an integer by value; it only releases free pages.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_free_memory() {}
