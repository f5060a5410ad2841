//! One release `strata-broker` process of a session: its directory (the data in `data/`,
//! its log in `broker.err`), its listener and the session's `--flush` policy; alone, or
//! as one node of a cluster ([`NodeLaunch`]). [`super::deployment`] owns the session's
//! run directory and decides where each node lives.
//!
//! Lifecycle: [`BrokerProcess::start`] returns once the port accepts connections;
//! [`BrokerProcess::stop`] sends SIGTERM to the PID and waits a bounded time (SIGKILL
//! after). `Drop` kills and reaps a broker still running, so an error half-way through a
//! session leaves no process behind.

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
/// The lowest port [`shared_free_port`] tries.
const PORT_CANDIDATES_FIRST: u16 = 10_000;

/// A running broker.
#[derive(Debug)]
pub struct BrokerProcess {
    child: Option<ChildProcess>,
    address: SocketAddr,
}

/// Where one broker lives and whom it forms a cluster with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLaunch {
    /// Its own directory: `data/` and `broker.out`/`broker.err` go in it.
    pub dir: PathBuf,
    pub address: SocketAddr,
    /// `--node-id` and `--controller-voters`; `None` for a one-node cluster on the
    /// broker's defaults.
    pub membership: Option<Membership>,
}

/// A node's place in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub node_id: u32,
    /// `1@127.0.0.1:P,2@127.0.0.2:P,…`, the same for every node.
    pub controller_voters: String,
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
    /// Starts `binary` as `node` and waits until it listens.
    pub fn start(
        binary: &Path,
        node: &NodeLaunch,
        flush: Flush,
        options: &BrokerOptions,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&node.dir)
            .with_context(|| format!("creating {}", node.dir.display()))?;
        let mut broker = BrokerProcess {
            child: None,
            address: node.address,
        };
        let mut command = Command::new(binary);
        command
            .arg("--data-dir")
            .arg(node.dir.join("data"))
            .arg("--listen")
            .arg(node.address.to_string())
            .arg("--flush")
            .arg(flush.broker_arg())
            .args(options.args())
            // Every broker of a deployment on one machine: a free admin port each.
            .env("STRATA_LISTENERS__ADMIN", "127.0.0.1:0")
            .env("RUST_LOG", "warn");
        if let Some(membership) = &node.membership {
            command
                .arg("--node-id")
                .arg(membership.node_id.to_string())
                .arg("--controller-voters")
                .arg(&membership.controller_voters);
        }
        let child = ChildProcess::spawn(command, "strata-broker", &node.dir.join("broker"))?;
        broker.child = Some(child);
        broker.wait_listening()?;
        Ok(broker)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
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

    /// Stops the broker by PID (SIGTERM, bounded wait, SIGKILL). Returns how it exited.
    pub fn stop(&mut self) -> anyhow::Result<String> {
        let status = match self.child.as_mut() {
            Some(child) => child.stop(STOP_GRACE)?.to_string(),
            None => "not started".to_owned(),
        };
        self.child = None;
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

/// A port free on every one of `ips` at once and not a reserved one, below the kernel's
/// ephemeral range when it can be: there no outgoing connection of a broker (to a peer, on
/// another loopback address) takes it while the cluster starts.
pub fn shared_free_port(ips: &[Ipv4Addr]) -> anyhow::Result<u16> {
    let ephemeral_first = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768)
        .max(PORT_CANDIDATES_FIRST + 1);
    let span = u64::from(ephemeral_first - PORT_CANDIDATES_FIRST);
    let mut seed = u64::from(std::process::id())
        ^ SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    for _ in 0..200 {
        // Knuth's MMIX LCG: spreads the tries, so parallel runners rarely pick alike.
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let port = PORT_CANDIDATES_FIRST + u16::try_from((seed >> 33) % span).unwrap_or(0);
        if RESERVED_PORTS.contains(&port) {
            continue;
        }
        // Bound at once on every address, so none is checked after another was freed.
        let bound: Result<Vec<TcpListener>, _> = ips
            .iter()
            .map(|ip| TcpListener::bind(SocketAddr::from((*ip, port))))
            .collect();
        if bound.is_ok() {
            return Ok(port);
        }
    }
    bail!("found no port free on all of {ips:?} in 200 attempts")
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

    #[test]
    fn a_shared_port_is_free_on_all_three_loopback_addresses() {
        let ips = [
            Ipv4Addr::new(127, 0, 0, 1),
            Ipv4Addr::new(127, 0, 0, 2),
            Ipv4Addr::new(127, 0, 0, 3),
        ];
        let port = shared_free_port(&ips).unwrap_or_default();
        assert!(port >= PORT_CANDIDATES_FIRST && !RESERVED_PORTS.contains(&port));
        for ip in ips {
            assert!(TcpListener::bind((ip, port)).is_ok(), "{ip}:{port}");
        }
    }
}
