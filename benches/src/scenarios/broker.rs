//! A fresh release `strata-broker` for one session: a new run directory under the data
//! root (the broker's data in `data/`, its log in `broker.err`, the bench outputs next to
//! it), a free port on 127.0.0.1, the session's `--flush` policy.
//!
//! Lifecycle: [`BrokerProcess::start`] returns once the port accepts connections;
//! [`BrokerProcess::stop`] sends SIGTERM to the PID, waits a bounded time (SIGKILL after)
//! and deletes the run directory. `Drop` does the same without the grace period, so an
//! error half-way through a session leaves neither a process nor a directory behind.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};

use super::plan::Flush;
use super::process::{cpu_seconds, ChildProcess};

/// Ports a developer's own broker may be using; never taken by the runner.
const RESERVED_PORTS: [u16; 2] = [7070, 17070];
/// How long a broker may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a clean shutdown (flush and checkpoint every log) may take.
const STOP_GRACE: Duration = Duration::from_secs(60);

/// A running broker and the directory it owns.
#[derive(Debug)]
pub struct BrokerProcess {
    child: Option<ChildProcess>,
    address: SocketAddr,
    run_dir: PathBuf,
}

/// The broker settings a run chooses, the same for every session.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BrokerOptions {
    /// `--log-io`: `buffered` or `direct`.
    pub log_io: String,
    /// `--worker-threads`; `None` leaves the broker's default (one per core).
    pub worker_threads: Option<usize>,
}

impl BrokerOptions {
    /// The broker flags these options give, beside the data directory, listener and flush.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["--log-io".to_owned(), self.log_io.clone()];
        if let Some(threads) = self.worker_threads {
            args.extend(["--worker-threads".to_owned(), threads.to_string()]);
        }
        args
    }
}

impl BrokerProcess {
    /// Starts `binary` on a new directory under `data_root` and waits until it listens.
    pub fn start(
        binary: &Path,
        data_root: &Path,
        label: &str,
        flush: Flush,
        options: &BrokerOptions,
    ) -> anyhow::Result<Self> {
        let run_dir = new_run_dir(data_root, label)?;
        let mut broker = BrokerProcess {
            child: None,
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?)),
            run_dir,
        };
        let mut command = Command::new(binary);
        command
            .arg("--data-dir")
            .arg(broker.run_dir.join("data"))
            .arg("--listen")
            .arg(broker.address.to_string())
            .arg("--flush")
            .arg(flush.broker_arg())
            .args(options.args())
            .env("RUST_LOG", "warn");
        let child = ChildProcess::spawn(command, "strata-broker", &broker.run_dir.join("broker"))?;
        broker.child = Some(child);
        broker.wait_listening()?;
        Ok(broker)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Where bench outputs of this session go; deleted with the broker's data.
    pub fn scratch_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The broker's user + system CPU time so far, in seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let child = self.child.as_ref().context("the broker is not running")?;
        cpu_seconds(child.pid())
    }

    /// An error with the tail of the broker's log when it is no longer running.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        let child = self.child.as_mut().context("the broker is not running")?;
        match child.try_status()? {
            None => Ok(()),
            Some(status) => bail!(
                "strata-broker exited with {status}; its log: {}",
                child.stderr_tail(5).replace('\n', " | ")
            ),
        }
    }

    /// Stops the broker by PID (SIGTERM, bounded wait, SIGKILL) and deletes its directory.
    /// Returns how the broker exited.
    pub fn stop(mut self) -> anyhow::Result<String> {
        let status = match self.child.as_mut() {
            Some(child) => child.stop(STOP_GRACE)?.to_string(),
            None => "not started".to_owned(),
        };
        self.child = None;
        self.remove_run_dir()?;
        Ok(status)
    }

    fn wait_listening(&mut self) -> anyhow::Result<()> {
        let start = Instant::now();
        while start.elapsed() < START_TIMEOUT {
            let child = self.child.as_mut().context("the broker is not running")?;
            if let Some(status) = child.try_status()? {
                bail!(
                    "strata-broker exited with {status} before listening; its log:\n{}",
                    child.stderr_tail(20)
                );
            }
            if TcpStream::connect_timeout(&self.address, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "strata-broker did not listen on {} within {START_TIMEOUT:?}",
            self.address
        )
    }

    /// Deletes the session's data gently (`cleanup.rs`), so the next session's first
    /// step does not meet the host reclaiming gigabytes at once.
    fn remove_run_dir(&self) -> anyhow::Result<()> {
        super::cleanup::remove_dir_gently(&self.run_dir)
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        // Dropping the child kills and reaps it.
        self.child = None;
        if let Err(error) = self.remove_run_dir() {
            eprintln!("scenarios: {error:#}");
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago and is not a reserved one.
pub fn free_port() -> anyhow::Result<u16> {
    for _ in 0..16 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context("binding 127.0.0.1:0 to find a free port")?;
        let port = listener.local_addr()?.port();
        if !RESERVED_PORTS.contains(&port) {
            return Ok(port);
        }
    }
    bail!("no free port on 127.0.0.1 outside {RESERVED_PORTS:?}")
}

fn new_run_dir(data_root: &Path, label: &str) -> anyhow::Result<PathBuf> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    let dir = data_root.join(format!(
        "strata-scenario-{label}-{}-{nanos:09}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_threads_are_passed_only_when_chosen() {
        let mut options = BrokerOptions {
            log_io: "direct".to_owned(),
            worker_threads: None,
        };
        assert_eq!(options.args(), ["--log-io", "direct"]);
        options.worker_threads = Some(1);
        assert_eq!(
            options.args(),
            ["--log-io", "direct", "--worker-threads", "1"]
        );
    }
}
