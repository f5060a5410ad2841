//! `strata-broker`: with no subcommand, runs a broker (by default a complete one-node
//! cluster: node 1, gRPC on 127.0.0.1:7070, data in ./strata-data). `dump-log` prints
//! segments. Settings: flags > `STRATA_…` env > `--config` TOML > defaults;
//! `--print-config` shows the merged result.
//!
//! Signals: the first SIGTERM/SIGINT stops accepting requests, finishes in-flight ones,
//! flushes and checkpoints every log and writes the clean-shutdown marker, then exits 0.
//! A second signal exits at once (the next start runs a recovery scan). A fatal storage
//! error (failed fsync) exits with status 70 without the marker.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use strata_broker::node::config::{BrokerSettings, LogFormat, LogIo, ServeArgs};
use strata_broker::node::{Limits, Node, NodeConfig};

/// The Strata broker.
#[derive(Debug, Parser)]
#[command(
    name = "strata-broker",
    version,
    about = "The Strata broker. With no subcommand it serves: a one-node cluster on 127.0.0.1:7070 with data in ./strata-data.",
    after_help = "Examples:\n  strata-broker\n  strata-broker --data-dir /var/lib/strata --listen 0.0.0.0:7070 --flush interval:1000\n  strata-broker --print-config --config strata.toml\n  strata-broker dump-log strata-data/orders-0 --records"
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
    /// checking each batch's framing and CRC (like Kafka's kafka-dump-log). Works on the
    /// metadata log too: `dump-log <data>/__cluster_metadata-0 --records`.
    DumpLog(strata_broker::dump::DumpLogArgs),
}

/// Exit status after a fatal storage error (EX_SOFTWARE).
const EXIT_FATAL: u8 = 70;

fn main() -> ExitCode {
    keep_freed_memory();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    if let Some(Command::DumpLog(args)) = &cli.command {
        return strata_broker::dump::run(args);
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
    init_tracing(settings.log_format);
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
    match runtime.block_on(run(settings)) {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn node_config(settings: &BrokerSettings) -> NodeConfig {
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
    }
}

async fn run(settings: BrokerSettings) -> anyhow::Result<ExitCode> {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %settings.to_annotated_toml().replace('\n', "; "),
        "starting strata-broker"
    );
    let config = node_config(&settings);
    let node = tokio::task::spawn_blocking(move || Node::open(config)).await??;
    let listener = strata_broker::service::bind(settings.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, data_dir = %settings.data_dir.display(), "broker ready");

    let (stop_sender, stop_receiver) = tokio::sync::oneshot::channel::<()>();
    let fatal_node = Arc::clone(&node);
    let stopper = tokio::spawn(async move {
        let reason = tokio::select! {
            signal = first_signal() => Stop::Signal(signal),
            reason = fatal_node.fatal_error() => Stop::Fatal(reason),
        };
        let _ = stop_sender.send(());
        reason
    });
    strata_broker::service::serve(Arc::clone(&node), listener, async {
        let _ = stop_receiver.await;
    })
    .await?;
    match stopper.await? {
        Stop::Fatal(reason) => {
            tracing::error!(%reason, "stopping after a fatal storage error, without the clean-shutdown marker");
            Ok(ExitCode::from(EXIT_FATAL))
        }
        Stop::Signal(signal) => {
            tracing::info!(signal, "shutting down");
            tokio::spawn(async {
                let second = first_signal().await;
                tracing::warn!(signal = second, "second signal: exiting at once");
                std::process::exit(130);
            });
            tokio::task::spawn_blocking(move || node.shutdown()).await??;
            tracing::info!("clean shutdown complete");
            Ok(ExitCode::SUCCESS)
        }
    }
}

enum Stop {
    Signal(&'static str),
    Fatal(String),
}

/// The name of the first SIGTERM or SIGINT.
async fn first_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    match (terminate, interrupt) {
        (Ok(mut terminate), Ok(mut interrupt)) => tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        },
        _ => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// Keeps freed memory in glibc's malloc instead of handing it back to the kernel.
///
/// HTTP/2 frames of up to 1 MiB are kept as they arrive (produce batches until they are
/// written, fetched batches until they are consumed), so each frame's buffer is a fresh
/// allocation of about 1 MiB. By default glibc serves those with `mmap` and returns
/// freed memory at once, and every page of every frame is then faulted in anew: 125,000
/// to 350,000 page faults while a consumer read 2.5 GB, about a third of its CPU on a
/// VM whose first touch of a page costs 4 µs (`docs/BENCHMARKS.md` item 16). With these
/// settings freed buffers are reused, and the process keeps its peak heap.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // 32 MiB is the largest mmap threshold glibc accepts; 1 GiB may sit free on the heap.
    for (parameter, value) in [
        (libc::M_MMAP_THRESHOLD, 32 << 20),
        (libc::M_TRIM_THRESHOLD, 1 << 30),
    ] {
        // SAFETY: mallopt takes two integers by value and changes only malloc's tuning.
        unsafe { libc::mallopt(parameter, value) };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}
