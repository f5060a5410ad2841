//! The machine's latency floors, measured in the same sitting as the scenarios, for the e2e
//! rows (the throughput limits are in `limits.rs`):
//!
//! - a loopback TCP round trip of a 1000-byte message between two processes (`sockperf
//!   ping-pong` at up to 10,000 messages/s, the e2e-10k row's record size and rate). An
//!   e2e record travels producer → broker → acknowledgement, and the broker's answer to the
//!   waiting consumer is one more hop, so this round trip's p99 is a floor under the e2e
//!   p99 before any broker or client work;
//! - a 4 KiB append followed by `fdatasync` on the data root (`fio`): the wait that
//!   `flush = always` adds before a batch is acknowledged.
//!
//! Both tools are Debian packages (`sockperf`, `fio`). A missing tool or a failed run is
//! recorded, never fatal.

use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::bail;
use serde_json::Value;

use super::broker::free_port;
use super::process::{on_path, run_captured, ChildProcess};

const ROUND_TRIP_SECONDS: u32 = 10;
const ROUND_TRIP_MESSAGE_BYTES: u32 = 1000;
const ROUND_TRIP_MESSAGES_PER_SEC: u32 = 10_000;
const FDATASYNC_SECONDS: u32 = 5;
const SERVER_START_ATTEMPTS: u32 = 50;

/// One latency floor: percentiles in microseconds, or why there are none.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LatencyLimit {
    pub command: String,
    /// `ok`, `skipped`, `not installed (…)` or `failed: …`.
    pub status: String,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
}

impl LatencyLimit {
    /// A floor that was not measured (`--skip-limits`).
    pub fn skipped() -> LatencyLimit {
        LatencyLimit {
            status: "skipped".to_owned(),
            ..LatencyLimit::default()
        }
    }

    fn from_run(command: String, run: anyhow::Result<[f64; 3]>) -> LatencyLimit {
        match run {
            Ok([p50, p99, p999]) => LatencyLimit {
                command,
                status: "ok".to_owned(),
                p50_us: Some(p50),
                p99_us: Some(p99),
                p999_us: Some(p999),
            },
            Err(error) => LatencyLimit {
                command,
                status: format!("failed: {error:#}"),
                ..LatencyLimit::default()
            },
        }
    }

    fn not_installed(command: String, package: &str) -> LatencyLimit {
        LatencyLimit {
            command,
            status: format!("not installed (apt-get install -y {package})"),
            ..LatencyLimit::default()
        }
    }

    /// The p99 in milliseconds, when measured.
    pub fn p99_ms(&self) -> Option<f64> {
        self.p99_us.map(|us| us / 1000.0)
    }

    /// `p50 0.12 ms, p99 0.62 ms` or the status, for progress lines.
    pub fn describe(&self) -> String {
        match (self.p50_us, self.p99_us) {
            (Some(p50), Some(p99)) => {
                format!("p50 {:.2} ms, p99 {:.2} ms", p50 / 1000.0, p99 / 1000.0)
            }
            _ => self.status.clone(),
        }
    }
}

/// Both floors of a sitting.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LatencyFloors {
    pub round_trip: LatencyLimit,
    pub fdatasync: LatencyLimit,
}

impl LatencyFloors {
    pub fn skipped() -> LatencyFloors {
        LatencyFloors {
            round_trip: LatencyLimit::skipped(),
            fdatasync: LatencyLimit::skipped(),
        }
    }

    /// The round trip (scratch files in `scratch_dir`), then the fdatasync on it.
    pub fn measure(scratch_dir: &Path) -> LatencyFloors {
        LatencyFloors {
            round_trip: round_trip(scratch_dir),
            fdatasync: fdatasync(scratch_dir),
        }
    }
}

/// The loopback round trip, `sockperf ping-pong` against a `sockperf server` process.
pub fn round_trip(scratch_dir: &Path) -> LatencyLimit {
    let command = format!(
        "sockperf sr --tcp -i 127.0.0.1 -p <port> & sockperf pp --tcp -i 127.0.0.1 -p <port> \
         -m {ROUND_TRIP_MESSAGE_BYTES} --mps {ROUND_TRIP_MESSAGES_PER_SEC} \
         -t {ROUND_TRIP_SECONDS} --full-rtt"
    );
    if !on_path("sockperf") {
        return LatencyLimit::not_installed(command, "sockperf");
    }
    LatencyLimit::from_run(command, round_trip_run(scratch_dir))
}

fn round_trip_run(scratch_dir: &Path) -> anyhow::Result<[f64; 3]> {
    let port = free_port()?;
    let mut server = Command::new("sockperf");
    server.args(["sr", "--tcp", "-i", "127.0.0.1", "-p", &port.to_string()]);
    let mut server = ChildProcess::spawn(
        server,
        "sockperf server",
        &scratch_dir.join("sockperf-server"),
    )?;
    let result = (|| {
        wait_listening(port, &mut server)?;
        let mut client = Command::new("sockperf");
        client.args([
            "pp",
            "--tcp",
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            &ROUND_TRIP_MESSAGE_BYTES.to_string(),
            "--mps",
            &ROUND_TRIP_MESSAGES_PER_SEC.to_string(),
            "-t",
            &ROUND_TRIP_SECONDS.to_string(),
            "--full-rtt",
        ]);
        let deadline = Duration::from_secs(u64::from(ROUND_TRIP_SECONDS) + 30);
        let finished = run_captured(client, "sockperf-client", scratch_dir, deadline)?;
        // sockperf prints its report on stdout or stderr depending on the version.
        let output = format!("{}\n{}", finished.stdout, finished.stderr);
        match sockperf_percentiles(&output) {
            Some(percentiles) => Ok(percentiles),
            None => bail!("sockperf printed no percentiles: {}", output.trim()),
        }
    })();
    let _ = server.stop(Duration::from_secs(5));
    result
}

/// Waits until the server accepts connections (a probe connection is harmless: the
/// sockperf server serves any number of clients).
fn wait_listening(port: u16, server: &mut ChildProcess) -> anyhow::Result<()> {
    for _ in 0..SERVER_START_ATTEMPTS {
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = server.try_status()? {
            bail!("sockperf server exited: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("sockperf server did not listen on 127.0.0.1:{port}")
}

/// p50, p99 and p99.9 in microseconds from sockperf's `---> percentile 99.000 =  615.043`
/// lines.
fn sockperf_percentiles(output: &str) -> Option<[f64; 3]> {
    let percentile = |wanted: &str| {
        output.lines().find_map(|line| {
            let (name, value) = line.split_once("percentile")?.1.split_once('=')?;
            (name.trim() == wanted)
                .then(|| value.trim().parse::<f64>().ok())
                .flatten()
        })
    };
    Some([
        percentile("50.000")?,
        percentile("99.000")?,
        percentile("99.900")?,
    ])
}

/// 4 KiB sequential writes, each followed by `fdatasync`, on `data_root` with `fio`.
pub fn fdatasync(data_root: &Path) -> LatencyLimit {
    let file = data_root.join(format!("strata-fdatasync-{}", std::process::id()));
    let args = [
        "--name=fdatasync".to_owned(),
        format!("--filename={}", file.display()),
        "--size=64M".to_owned(),
        "--rw=write".to_owned(),
        "--bs=4k".to_owned(),
        "--ioengine=psync".to_owned(),
        "--fdatasync=1".to_owned(),
        format!("--runtime={FDATASYNC_SECONDS}"),
        "--time_based".to_owned(),
        "--output-format=json".to_owned(),
    ];
    let command = format!("fio {}", args.join(" "));
    if !on_path("fio") {
        return LatencyLimit::not_installed(command, "fio");
    }
    let run = (|| {
        let mut fio = Command::new("fio");
        fio.args(&args);
        let deadline = Duration::from_secs(u64::from(FDATASYNC_SECONDS) + 60);
        let finished = run_captured(fio, "fio-fdatasync", data_root, deadline)?;
        let report: Value = serde_json::from_str(&finished.stdout)
            .map_err(|error| anyhow::anyhow!("fio gave no JSON ({error}): {}", finished.stderr))?;
        match fio_sync_percentiles(&report) {
            Some(percentiles) => Ok(percentiles),
            None => bail!("fio's report has no fdatasync percentiles"),
        }
    })();
    let _ = std::fs::remove_file(&file);
    LatencyLimit::from_run(command, run)
}

/// p50, p99 and p99.9 of the fdatasync calls, in microseconds, from fio's JSON
/// (`jobs[0].sync.lat_ns.percentile`).
fn fio_sync_percentiles(report: &Value) -> Option<[f64; 3]> {
    let percentiles = &report["jobs"][0]["sync"]["lat_ns"]["percentile"];
    let micros = |key: &str| percentiles[key].as_f64().map(|ns| ns / 1000.0);
    Some([
        micros("50.000000")?,
        micros("99.000000")?,
        micros("99.900000")?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockperf_percentiles_are_read_from_its_report() {
        let output = "sockperf: ---> <MAX> observation = 23652.603\n\
                      sockperf: ---> percentile 99.999 = 23652.603\n\
                      sockperf: ---> percentile 99.900 = 1482.116\n\
                      sockperf: ---> percentile 99.000 =  615.043\n\
                      sockperf: ---> percentile 50.000 =  119.051\n";
        assert_eq!(
            sockperf_percentiles(output),
            Some([119.051, 615.043, 1482.116])
        );
        assert_eq!(sockperf_percentiles("sockperf: Test ended\n"), None);
    }

    #[test]
    fn fio_sync_percentiles_are_read_in_microseconds() {
        let report = serde_json::json!({"jobs": [{"sync": {"lat_ns": {"percentile": {
            "50.000000": 301056, "99.000000": 741376, "99.900000": 1662976
        }}}}]});
        assert_eq!(
            fio_sync_percentiles(&report),
            Some([301.056, 741.376, 1662.976])
        );
        assert_eq!(fio_sync_percentiles(&serde_json::json!({})), None);
    }
}
