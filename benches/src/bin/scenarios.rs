//! `scenarios`: runs Strata's end-to-end benchmark table against fresh release brokers and
//! prints it as markdown next to the machine's raw limits; writes everything as JSON.
//!
//! ```sh
//! cargo build --release -p strata-broker -p strata-cli
//! cargo run --release -p strata-benches --bin scenarios -- --quick
//! cargo run --release -p strata-benches --bin scenarios -- --only e2e-10k --out e2e.json
//! cargo run --release -p strata-benches --bin scenarios -- --plan replication --skip-limits
//! ```
//!
//! It builds nothing: `strata-broker` and `strata` must sit next to this executable (in
//! `target/release`). Progress goes to stderr, the markdown report to stdout. The work is
//! in `strata_benches::scenarios`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Parser;
use strata_benches::scenarios::broker::BrokerOptions;
use strata_benches::scenarios::checks;
use strata_benches::scenarios::cleanup;
use strata_benches::scenarios::environment::Environment;
use strata_benches::scenarios::interrupt;
use strata_benches::scenarios::latency::LatencyFloors;
use strata_benches::scenarios::limits;
use strata_benches::scenarios::plan::{self, Timing};
use strata_benches::scenarios::prefault;
use strata_benches::scenarios::replication::ReplicationSummary;
use strata_benches::scenarios::report::Report;
use strata_benches::scenarios::runner::{self, Reference, RunConfig};
use strata_benches::scenarios::warm::PageCacheFill;

/// Strata's scenario runner: Kreps' 2014 Kafka benchmark scenarios on one node, Iggy's
/// shape, issue 4's acceptance rows and RF 3 on a three-broker cluster, each with
/// flush=interval and flush=always.
#[derive(Debug, Parser)]
#[command(name = "scenarios")]
struct Args {
    /// 5 s runs after 1 s of warm-up instead of 20 s after 5 s.
    #[arg(long)]
    quick: bool,
    /// Where to write the JSON report (default: target/scenarios.json).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Run only these scenarios (repeatable or comma-separated), e.g. kreps-1p,e2e-10k.
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    only: Vec<String>,
    /// Run a named set of scenarios meant for one sitting (with --only: both):
    /// `replication` = produce-1k-rf1-acks1, produce-1k-rf3-acksall and
    /// e2e-10k-rf3-acksall on a three-broker cluster on 127.0.0.1–3, each flush mode.
    #[arg(long, value_name = "PLAN")]
    plan: Option<String>,
    /// Directory for the brokers' temporary data dirs and dd's file (default: the system
    /// temp dir). It decides which disk is measured.
    #[arg(long, value_name = "DIR")]
    data_root: Option<PathBuf>,
    /// Skip the iperf3 and dd measurements (ratios are then left out).
    #[arg(long)]
    skip_limits: bool,
    /// Touch the machine's free memory once before measuring (for VMs that back guest
    /// memory lazily, where the first write to a page is ~10× slower; see
    /// docs/BENCHMARKS.md). The report says whether it was done.
    #[arg(long)]
    prefault_memory: bool,
    /// Keep the page cache full (of clean pages read from a sparse file) before measuring
    /// and before every session, as on a broker host that has been running: new pages then
    /// come from reclaim instead of from a lazily backing host. See docs/BENCHMARKS.md,
    /// item 27. The report says whether it was done.
    #[arg(long)]
    warm_page_cache: bool,
    /// Directory holding strata-broker and strata (default: this executable's directory).
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// The brokers' `--log-io`: `buffered` (the page cache, the default) or `direct`.
    #[arg(long, value_name = "IO", default_value = "buffered", value_parser = ["buffered", "direct"])]
    log_io: String,
    /// The brokers' `--worker-threads` (default: the broker's own, one per core).
    #[arg(long, value_name = "N")]
    broker_worker_threads: Option<usize>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("scenarios: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    interrupt::install();
    let sessions = plan::select(&args.only, args.plan.as_deref())?;
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => own_dir()?,
    };
    let strata = required_binary(&bin_dir, "strata")?;
    let broker = required_binary(&bin_dir, "strata-broker")?;
    let data_root = args.data_root.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&data_root)
        .with_context(|| format!("creating {}", data_root.display()))?;
    // target/release/scenarios: the target dir is two levels up, the workspace three.
    let target_dir = bin_dir
        .parent()
        .map_or_else(|| bin_dir.clone(), Path::to_path_buf);
    let workspace = target_dir
        .parent()
        .map_or_else(|| target_dir.clone(), Path::to_path_buf);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| target_dir.join("scenarios.json"));

    let mut environment = Environment::probe(&workspace, &strata, &data_root);
    if args.prefault_memory {
        eprintln!("scenarios: touching free memory once (--prefault-memory) …");
        let prefault = prefault::prefault()?;
        eprintln!("scenarios: {}", prefault.describe());
        environment.prefault = Some(prefault.describe());
    }
    let mut fill = if args.warm_page_cache {
        Some(PageCacheFill::create(&data_root)?)
    } else {
        None
    };
    top_up(&mut fill, "before measuring");
    let (iperf3, disk, latency) = measure_limits(&data_root, args.skip_limits)?;
    let config = RunConfig {
        strata,
        broker,
        data_root,
        timing: Timing::new(args.quick, environment.memory_bytes()),
        broker_options: BrokerOptions {
            log_io: args.log_io.clone(),
            worker_threads: args.broker_worker_threads,
        },
    };
    let reference = Reference::new(&iperf3, &disk, &latency);
    let mut records = Vec::new();
    for session in &sessions {
        for &flush in session.flushes {
            if !interrupt::requested() {
                top_up(
                    &mut fill,
                    &format!("before {}-{}", session.name, flush.name()),
                );
                records.push(runner::run_session(&config, session, flush, reference));
            }
        }
    }
    if let Some(fill) = fill {
        environment.page_cache_fill = Some(fill.describe());
    }
    let replication = ReplicationSummary::new(&records);
    let report = Report {
        tool: "strata-scenarios",
        quick: args.quick,
        broker_options: config.broker_options.clone(),
        interrupted: interrupt::requested(),
        timing: config.timing,
        environment,
        checks: checks::checks(&records, reference),
        iperf3,
        dd: disk.dd,
        page_cache_write: disk.page_cache_write,
        latency,
        disk_read: disk.disk_read,
        sessions: records,
        replication,
    };
    println!("{}", report.markdown());
    let json = serde_json::to_string_pretty(&report).context("encoding the JSON report")?;
    std::fs::write(&out, json + "\n").with_context(|| format!("writing {}", out.display()))?;
    for line in report.replication.ratio_lines() {
        eprintln!("scenarios: {line}");
    }
    eprintln!("scenarios: JSON report in {}", out.display());
    Ok(())
}

/// iperf3 then the disk's limits, in a scratch dir under the data root that is deleted
/// afterwards.
fn measure_limits(
    data_root: &Path,
    skip: bool,
) -> anyhow::Result<(limits::Limit, limits::DiskLimits, LatencyFloors)> {
    if skip {
        return Ok((
            limits::Limit::skipped(),
            limits::DiskLimits::skipped(),
            LatencyFloors::skipped(),
        ));
    }
    let scratch = data_root.join(format!("strata-scenarios-limits-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    eprintln!("scenarios: iperf3 on 127.0.0.1 …");
    let iperf3 = limits::iperf3(&scratch);
    eprintln!("scenarios: iperf3: {}", limits::describe(&iperf3));
    eprintln!("scenarios: dd to {} …", scratch.display());
    let disk = limits::disk(&scratch);
    eprintln!("scenarios: dd, fdatasync: {}", limits::describe(&disk.dd));
    eprintln!(
        "scenarios: dd, O_DIRECT read: {}",
        limits::describe(&disk.disk_read)
    );
    eprintln!(
        "scenarios: dd, page cache: {}",
        limits::describe(&disk.page_cache_write)
    );
    eprintln!("scenarios: latency floors (sockperf round trip, fio fdatasync) …");
    let latency = LatencyFloors::measure(&scratch);
    eprintln!(
        "scenarios: round trip: {}; fdatasync: {}",
        latency.round_trip.describe(),
        latency.fdatasync.describe()
    );
    cleanup::remove_dir_gently(&scratch)?;
    Ok((iperf3, disk, latency))
}

/// Tops the page cache up when `--warm-page-cache` asked for it. A failure is reported and
/// the sitting goes on (its report then says how much was read).
fn top_up(fill: &mut Option<PageCacheFill>, when: &str) {
    if let Some(fill) = fill {
        match fill.top_up() {
            Ok(top_up) => eprintln!("scenarios: page cache {when}: {}", top_up.describe()),
            Err(error) => eprintln!("scenarios: page cache {when}: {error:#}"),
        }
    }
}

fn own_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this executable")?;
    exe.parent()
        .map(Path::to_path_buf)
        .context("this executable has no parent directory")
}

fn required_binary(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} is missing; build it first with\n  cargo build --release -p strata-broker -p strata-cli",
            path.display()
        );
    }
    Ok(path)
}
