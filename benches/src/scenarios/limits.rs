//! The machine's raw limits, measured in the same sitting as the scenarios: loopback TCP
//! with one `iperf3` stream; on the data root (the disk the brokers write to), sequential
//! writes with `dd … conv=fdatasync`, the same files read back with `O_DIRECT`, and `dd`
//! into the page cache without a sync.
//!
//! Units: MiB/s (2^20 bytes), like the bench's MB/s, so ratios compare like with like.
//! A missing tool or a failed run is recorded, never fatal.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::Value;

use super::broker::free_port;
use super::process::{on_path, run_captured, ChildProcess};

const MIB: f64 = (1u64 << 20) as f64;
const DD_RUNS: usize = 3;
const DD_COUNT_MIB: u32 = 2048;
const IPERF3_SECONDS: u32 = 10;
const IPERF3_CONNECT_ATTEMPTS: u32 = 50;

/// One limit: its figure, or why there is none.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Limit {
    pub command: String,
    /// `ok`, `not installed` or `failed: …`.
    pub status: String,
    /// Every run, MiB/s.
    pub runs_mib_per_sec: Vec<f64>,
    /// The median run, MiB/s.
    pub mib_per_sec: Option<f64>,
}

impl Limit {
    fn from_runs(command: String, runs: anyhow::Result<Vec<f64>>) -> Limit {
        match runs {
            Ok(runs) => Limit {
                command,
                status: "ok".to_owned(),
                mib_per_sec: median(&runs),
                runs_mib_per_sec: runs,
            },
            Err(error) => Limit::without_figure(command, format!("failed: {error:#}")),
        }
    }

    fn without_figure(command: String, status: String) -> Limit {
        Limit {
            command,
            status,
            runs_mib_per_sec: Vec::new(),
            mib_per_sec: None,
        }
    }
}

impl Limit {
    /// A limit that was not measured (`--skip-limits`).
    pub fn skipped() -> Limit {
        Limit::without_figure(String::new(), "skipped".to_owned())
    }
}

/// `1234 MiB/s (runs …)` or the status, for progress lines.
pub fn describe(limit: &Limit) -> String {
    match limit.mib_per_sec {
        Some(figure) => format!("{figure:.0} MiB/s (runs {:.0?})", limit.runs_mib_per_sec),
        None => limit.status.clone(),
    }
}

/// Loopback TCP, one stream, `IPERF3_SECONDS` long.
pub fn iperf3(scratch_dir: &Path) -> Limit {
    let command = format!("iperf3 -s -1 -B 127.0.0.1 & iperf3 -c 127.0.0.1 -t {IPERF3_SECONDS} -J");
    if !on_path("iperf3") {
        return Limit::without_figure(
            command,
            "not installed (apt-get install -y iperf3)".to_owned(),
        );
    }
    Limit::from_runs(command, iperf3_run(scratch_dir).map(|figure| vec![figure]))
}

fn iperf3_run(scratch_dir: &Path) -> anyhow::Result<f64> {
    let port = free_port()?.to_string();
    let mut server = Command::new("iperf3");
    server.args(["-s", "-1", "-B", "127.0.0.1", "-p", &port]);
    let mut server =
        ChildProcess::spawn(server, "iperf3 server", &scratch_dir.join("iperf3-server"))?;
    let mut last_error = None;
    // The server has no readiness signal (a probe connection would use up its one test),
    // so the client retries until the server accepts it.
    for _ in 0..IPERF3_CONNECT_ATTEMPTS {
        let mut client = Command::new("iperf3");
        client.args([
            "-c",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            &IPERF3_SECONDS.to_string(),
            "-J",
        ]);
        let deadline = Duration::from_secs(u64::from(IPERF3_SECONDS) + 30);
        let finished = run_captured(client, "iperf3-client", scratch_dir, deadline)?;
        let report: Option<Value> = serde_json::from_str(&finished.stdout).ok();
        if let Some(bits) = report.as_ref().and_then(received_bits_per_second) {
            let _ = server.stop(Duration::from_secs(5));
            return Ok(bits / 8.0 / MIB);
        }
        last_error = report
            .as_ref()
            .and_then(|report| report["error"].as_str().map(str::to_owned))
            .or_else(|| Some(finished.stderr.trim().to_owned()));
        if server.try_status()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = server.stop(Duration::from_secs(5));
    bail!(
        "iperf3 gave no throughput: {}",
        last_error.unwrap_or_default()
    )
}

/// `end.sum_received.bits_per_second`, else what the sender counted.
fn received_bits_per_second(report: &Value) -> Option<f64> {
    let end = &report["end"];
    end["sum_received"]["bits_per_second"]
        .as_f64()
        .or_else(|| end["sum_sent"]["bits_per_second"].as_f64())
}

/// The disk's and the page cache's limits, measured together on the data root.
#[derive(Debug, Clone)]
pub struct DiskLimits {
    /// `dd … conv=fdatasync`: sequential writes that reach the disk.
    pub dd: Limit,
    /// `dd` without a sync: how fast this machine fills new page-cache pages, the ceiling of
    /// a `flush = interval` log that keeps what it writes in the page cache.
    pub page_cache_write: Limit,
    /// `dd iflag=direct` of the fdatasync runs' files: how fast data that is not in the page
    /// cache comes back from the disk.
    pub disk_read: Limit,
}

impl DiskLimits {
    pub fn skipped() -> DiskLimits {
        DiskLimits {
            dd: Limit::skipped(),
            page_cache_write: Limit::skipped(),
            disk_read: Limit::skipped(),
        }
    }
}

/// `DD_RUNS` runs each of: 2 GiB with an fdatasync at the end, the same files read back
/// with `O_DIRECT`, and 2 GiB into the page cache without a sync. Every run writes a new
/// file and the files are deleted only at the end, so no run reuses the pages a previous
/// run freed a moment earlier (on VMs that hand freed memory back to the host, that reuse
/// is several times faster than a page the host must back again, and a broker that
/// appends never gets it).
pub fn disk(data_root: &Path) -> DiskLimits {
    let named = |kind: &str, run: &str| {
        data_root.join(format!("strata-ddtest-{}-{kind}-{run}", std::process::id()))
    };
    let file = |kind: &str, run: usize| named(kind, &run.to_string());
    let shown = |kind: &str| named(kind, "N").display().to_string();
    let dd_command = format!(
        "dd if=/dev/zero of={} bs=1M count={DD_COUNT_MIB} conv=fdatasync",
        shown("sync")
    );
    let read_command = format!("dd if={} of=/dev/null bs=1M iflag=direct", shown("sync"));
    let cache_command = format!(
        "dd if=/dev/zero of={} bs=1M count={DD_COUNT_MIB}",
        shown("cache")
    );
    if !on_path("dd") {
        let missing = |command: String| Limit::without_figure(command, "not installed".to_owned());
        return DiskLimits {
            dd: missing(dd_command),
            page_cache_write: missing(cache_command),
            disk_read: missing(read_command),
        };
    }
    let size = format!("count={DD_COUNT_MIB}");
    let runs = |kind: &str, args: &[&str]| -> anyhow::Result<Vec<f64>> {
        (0..DD_RUNS)
            .map(|run| {
                let path = file(kind, run);
                let mut with_file = args.to_vec();
                let of = format!("of={}", path.display());
                with_file.push(&of);
                dd_run(data_root, &with_file)
            })
            .collect()
    };
    let dd = Limit::from_runs(
        dd_command,
        runs("sync", &["if=/dev/zero", "bs=1M", &size, "conv=fdatasync"]),
    );
    let disk_read = Limit::from_runs(
        read_command,
        (0..DD_RUNS)
            .map(|run| {
                let input = format!("if={}", file("sync", run).display());
                dd_run(
                    data_root,
                    &[&input, "of=/dev/null", "bs=1M", "iflag=direct"],
                )
            })
            .collect(),
    );
    let page_cache_write = Limit::from_runs(
        cache_command,
        runs("cache", &["if=/dev/zero", "bs=1M", &size]),
    );
    for kind in ["sync", "cache"] {
        for run in 0..DD_RUNS {
            // Best effort, as the probes' own failures are: a file left behind is the
            // scratch directory's to remove.
            let _ = super::cleanup::remove_file_gently(&file(kind, run));
        }
    }
    DiskLimits {
        dd,
        page_cache_write,
        disk_read,
    }
}

fn dd_run(data_root: &Path, args: &[&str]) -> anyhow::Result<f64> {
    let mut command = Command::new("dd");
    command.args(args).env("LC_ALL", "C");
    let finished = run_captured(command, "dd", data_root, Duration::from_secs(600))?;
    if !finished.status.is_some_and(|status| status.success()) {
        bail!("dd failed: {}", finished.stderr.trim());
    }
    dd_mib_per_sec(&finished.stderr)
        .with_context(|| format!("cannot read dd's report {:?}", finished.stderr.trim()))
}

/// From `2147483648 bytes (2.1 GB, 2.0 GiB) copied, 1.53 s, 1.4 GB/s`: bytes / seconds.
pub fn dd_mib_per_sec(stderr: &str) -> Option<f64> {
    let line = stderr
        .lines()
        .rev()
        .find(|line| line.contains(" copied, "))?;
    let bytes: f64 = line.split_whitespace().next()?.parse().ok()?;
    let after = line.split(" copied, ").nth(1)?;
    let seconds: f64 = after.split_whitespace().next()?.parse().ok()?;
    (seconds > 0.0).then(|| bytes / seconds / MIB)
}

/// The median (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        length if length % 2 == 1 => sorted.get(middle).copied(),
        _ => Some((sorted.get(middle - 1)? + sorted.get(middle)?) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dd_report_is_read() {
        let stderr = "2048+0 records in\n2048+0 records out\n\
                      2147483648 bytes (2.1 GB, 2.0 GiB) copied, 2 s, 1.1 GB/s\n";
        assert_eq!(dd_mib_per_sec(stderr), Some(1024.0));
        assert_eq!(dd_mib_per_sec("dd: error"), None);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn iperf3_receiver_figure_is_preferred() {
        let report = serde_json::json!({"end": {
            "sum_sent": {"bits_per_second": 2.0}, "sum_received": {"bits_per_second": 1.0}}});
        assert_eq!(received_bits_per_second(&report), Some(1.0));
    }
}
