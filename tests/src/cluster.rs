//! [`Cluster`]: several real `strata-broker` processes on one Linux machine, each on its
//! own loopback address, with crashes, pauses, clean stops, restarts and network
//! partitions per node (docs/TESTING.md, "Clusters").
//!
//! Node `i` is broker id `i` and listens on `127.0.0.i:<port>`; every node of a cluster
//! uses the same port, picked per cluster so parallel tests do not collide (Linux routes
//! all of 127.0.0.0/8 to loopback, so the addresses need no setup). Each node has its own
//! data directory and log file under one temporary directory. When the cluster has more
//! than one node, every broker gets `--controller-voters 1@127.0.0.1:<port>,…` (combined
//! mode: each broker is a voter, at its own gRPC address); [`ControllerVoters`] changes
//! that.
//!
//! Partitions ([`Cluster::cut`], [`Cluster::isolate`]) are iptables rules
//! ([`crate::firewall`]): they need root, and they only separate brokers because each
//! broker binds the source address of its broker-to-broker connections to its own listen
//! IP. The test's own clients connect from 127.0.0.1, node 1's address, so a cut between
//! node 1 and node `b` also cuts the test's clients off from `b`; a test that must keep
//! its clients out of every partition starts its nodes at 127.0.0.2
//! ([`ClusterOptions::first_node`]).
//!
//! The process methods block (a restart waits until the broker listens, a SIGTERM until
//! it exits, both bounded); async tests call them through `tokio::task::block_in_place`.
//! Dropping the cluster kills every broker it started (by PID), removes its iptables
//! rules, and, when the test is panicking, prints the end of every node's log.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use anyhow::{bail, Context};
use strata_client::{Client, ClientBuilder};

use crate::broker_process::{BrokerOptions, BrokerProcess};
use crate::firewall::{Firewall, FirewallError};

/// Log lines of each node printed when a test panics with the cluster alive.
const LOG_TAIL_LINES: usize = 30;

/// Who gets `--controller-voters`, and whom it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControllerVoters {
    /// Every node is a voter, named to every node, when there is more than one node; a
    /// single node gets no flag (it is a one-node cluster by default).
    WhenSeveralNodes,
    /// Every node is a voter, named to every node, also when there is only one.
    All,
    /// The first `n` nodes are voters, named to every node (brokers 1–3 of 5).
    First(u8),
    /// No flag: every node is a one-node cluster of its own.
    None,
}

/// How to start a [`Cluster`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// How many brokers.
    pub nodes: u8,
    /// Id and last address byte of the first node (the others follow): 1 puts node 1 on
    /// 127.0.0.1.
    pub first_node: u8,
    pub controller_voters: ControllerVoters,
    /// Flags given to every broker, after the ones the cluster sets.
    pub extra_args: Vec<String>,
    /// `RUST_LOG` of the brokers; their logs go to files ([`Cluster::log`]).
    pub log_filter: String,
}

impl ClusterOptions {
    /// `nodes` brokers on 127.0.0.1, 127.0.0.2, …, voters when more than one, logging at
    /// `info` (openraft at `warn`: its `info` is a line per vote and heartbeat).
    pub fn new(nodes: u8) -> ClusterOptions {
        ClusterOptions {
            nodes,
            first_node: 1,
            controller_voters: ControllerVoters::WhenSeveralNodes,
            extra_args: Vec::new(),
            log_filter: "info,openraft=off".to_owned(),
        }
    }
}

/// Running brokers and the links between them; see the module documentation.
#[derive(Debug)]
pub struct Cluster {
    /// Node `first_node + k` is `brokers[k]`. Declared first: dropped (killed) first.
    brokers: Vec<BrokerProcess>,
    first_node: u8,
    port: u16,
    voters_flag: Option<String>,
    firewall: Firewall,
    /// Said once per cluster: a cut involving 127.0.0.1 also cuts the test's clients.
    warned_about_client_source: bool,
    /// Holds every node's data directory and log; removed last.
    directory: tempfile::TempDir,
}

/// The loopback address of node `node`.
pub fn node_ip(node: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, node)
}

impl Cluster {
    /// Starts every node and waits until each accepts connections (bounded). A node that
    /// fails to start fails the whole start; the ones already up are killed.
    pub fn start(options: ClusterOptions) -> anyhow::Result<Cluster> {
        if options.nodes == 0 || options.first_node == 0 {
            bail!("a cluster has nodes 1 and up, not {options:?}");
        }
        let last_node = options
            .first_node
            .checked_add(options.nodes - 1)
            .filter(|last| *last < 255)
            .context("node addresses past 127.0.0.254")?;
        let nodes: Vec<u8> = (options.first_node..=last_node).collect();
        let ips: Vec<IpAddr> = nodes.iter().map(|node| node_ip(*node).into()).collect();
        let port = shared_free_port(&ips)?;
        let voters_flag = voters_flag(options.controller_voters, &nodes, port);
        let directory = tempfile::Builder::new()
            .prefix("strata-cluster-")
            .tempdir()
            .context("create the cluster's directory")?;
        let mut cluster = Cluster {
            brokers: Vec::with_capacity(nodes.len()),
            first_node: options.first_node,
            port,
            voters_flag,
            firewall: Firewall::new(&[port]),
            warned_about_client_source: false,
            directory,
        };
        for node in nodes {
            let broker = cluster.start_node(node, &options)?;
            cluster.brokers.push(broker);
        }
        Ok(cluster)
    }

    fn start_node(&self, node: u8, options: &ClusterOptions) -> anyhow::Result<BrokerProcess> {
        let node_directory = self.directory.path().join(format!("node-{node}"));
        let data_dir = node_directory.join("data");
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("create {}", data_dir.display()))?;
        let mut extra_args = vec!["--node-id".to_owned(), node.to_string()];
        if let Some(voters) = &self.voters_flag {
            extra_args.extend(["--controller-voters".to_owned(), voters.clone()]);
        }
        extra_args.extend(options.extra_args.iter().cloned());
        let broker_options = BrokerOptions {
            extra_args,
            listen: Some(SocketAddr::new(node_ip(node).into(), self.port)),
            log_file: Some(node_directory.join("broker.log")),
            log_filter: Some(options.log_filter.clone()),
            ..BrokerOptions::default()
        };
        BrokerProcess::start_with_options(&data_dir, broker_options).with_context(|| {
            let log = node_directory.join("broker.log");
            format!(
                "start node {node}; its log:\n{}",
                log_tail(&log, LOG_TAIL_LINES)
            )
        })
    }

    /// The node numbers, in order.
    pub fn nodes(&self) -> Vec<u8> {
        (0..self.brokers.len())
            .filter_map(|k| u8::try_from(k).ok())
            .map(|k| self.first_node + k)
            .collect()
    }

    /// The port every node listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `--controller-voters` value the brokers get, if any.
    pub fn voters_flag(&self) -> Option<&str> {
        self.voters_flag.as_deref()
    }

    pub fn broker(&self, node: u8) -> &BrokerProcess {
        let index = self.index(node);
        &self.brokers[index]
    }

    pub fn broker_mut(&mut self, node: u8) -> &mut BrokerProcess {
        let index = self.index(node);
        &mut self.brokers[index]
    }

    fn index(&self, node: u8) -> usize {
        let index = usize::from(node.wrapping_sub(self.first_node));
        if node < self.first_node || index >= self.brokers.len() {
            panic!("no node {node} in this cluster (nodes {:?})", self.nodes());
        }
        index
    }

    /// `127.0.0.<node>:<port>`.
    pub fn address(&self, node: u8) -> SocketAddr {
        self.broker(node).address()
    }

    /// The addresses of every node, as bootstrap servers.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.brokers.iter().map(BrokerProcess::address).collect()
    }

    pub fn pid(&self, node: u8) -> Option<u32> {
        self.broker(node).pid()
    }

    /// Started and not killed or stopped since (a paused node is running).
    pub fn is_running(&self, node: u8) -> bool {
        self.broker(node).is_running()
    }

    pub fn is_paused(&self, node: u8) -> bool {
        self.broker(node).is_paused()
    }

    pub fn data_dir(&self, node: u8) -> &Path {
        self.broker(node).data_dir()
    }

    /// The node's log file: its stderr, appended across restarts.
    pub fn log_path(&self, node: u8) -> PathBuf {
        self.directory
            .path()
            .join(format!("node-{node}"))
            .join("broker.log")
    }

    /// Everything the node has logged so far, across restarts.
    pub fn log(&self, node: u8) -> String {
        std::fs::read(self.log_path(node))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// SIGKILL and reap: a crash.
    pub fn kill(&mut self, node: u8) -> anyhow::Result<ExitStatus> {
        self.broker_mut(node).kill()
    }

    /// SIGSTOP: the node stops where it is, its connections stay open and unanswered.
    pub fn pause(&mut self, node: u8) -> anyhow::Result<()> {
        self.broker_mut(node).pause()
    }

    /// SIGCONT.
    pub fn resume(&mut self, node: u8) -> anyhow::Result<()> {
        self.broker_mut(node).resume()
    }

    /// SIGTERM, and the exit status; fails if the node is still running 30 s later (it
    /// is SIGKILLed then).
    pub fn terminate(&mut self, node: u8) -> anyhow::Result<ExitStatus> {
        self.broker_mut(node).terminate()
    }

    /// Starts a stopped node again: same data directory, address and flags. Waits until
    /// it listens, whatever links are cut.
    pub fn restart(&mut self, node: u8) -> anyhow::Result<()> {
        let log = self.log_path(node);
        self.broker_mut(node).restart().with_context(|| {
            format!(
                "restart node {node}; its log:\n{}",
                log_tail(&log, LOG_TAIL_LINES)
            )
        })
    }

    /// Drops all traffic between nodes `a` and `b`, both ways, until [`Cluster::heal`].
    /// [`FirewallError::Unavailable`] means the test should skip its partition cases and
    /// say so ([`crate::firewall::skip_unless_available`]).
    pub fn cut(&mut self, a: u8, b: u8) -> Result<(), FirewallError> {
        self.index(a);
        self.index(b);
        if a == b {
            return Ok(());
        }
        if (a == 1 || b == 1) && !self.warned_about_client_source {
            self.warned_about_client_source = true;
            eprintln!(
                "cluster: cutting a link of node 1 (127.0.0.1): the test's own clients \
                 connect from 127.0.0.1 too, so they are cut off the same way"
            );
        }
        self.firewall.cut(node_ip(a), node_ip(b))
    }

    /// Restores the link between nodes `a` and `b`.
    pub fn heal(&mut self, a: u8, b: u8) -> Result<(), FirewallError> {
        self.firewall.heal(node_ip(a), node_ip(b))
    }

    /// Restores every link.
    pub fn heal_all(&mut self) -> Result<(), FirewallError> {
        self.firewall.heal_all()
    }

    /// Cuts node `node` off from every other node.
    pub fn isolate(&mut self, node: u8) -> Result<(), FirewallError> {
        for other in self.nodes() {
            if other != node {
                self.cut(node, other)?;
            }
        }
        Ok(())
    }

    /// The comment on this cluster's iptables rules (`iptables -S INPUT | grep <it>`).
    pub fn firewall_comment(&self) -> &str {
        self.firewall.comment()
    }

    /// A client builder whose bootstrap servers are `nodes`.
    pub fn client_builder(&self, nodes: &[u8]) -> ClientBuilder {
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| self.address(*node).to_string())
            .collect();
        Client::builder().brokers(addresses)
    }

    /// A client that bootstraps from node `node` only.
    pub async fn client(&self, node: u8) -> anyhow::Result<Client> {
        self.client_builder(&[node])
            .build()
            .await
            .with_context(|| format!("connect a client to node {node}"))
    }

    /// A client that bootstraps from every node.
    pub async fn bootstrap_client(&self) -> anyhow::Result<Client> {
        self.client_builder(&self.nodes())
            .build()
            .await
            .context("connect a client to the cluster")
    }
}

impl Drop for Cluster {
    /// The brokers (killed by their own `Drop`), the firewall (rules deleted) and the
    /// directory go after this; here only the logs, for a failing test.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for node in self.nodes() {
            eprintln!(
                "--- node {node} ({}), last {LOG_TAIL_LINES} lines of {} ---\n{}",
                self.address(node),
                self.log_path(node).display(),
                log_tail(&self.log_path(node), LOG_TAIL_LINES)
            );
        }
    }
}

/// `1@127.0.0.1:7070,2@127.0.0.2:7070,…` for the voters `setting` picks among `nodes`.
fn voters_flag(setting: ControllerVoters, nodes: &[u8], port: u16) -> Option<String> {
    let voters = match setting {
        ControllerVoters::WhenSeveralNodes if nodes.len() > 1 => nodes,
        ControllerVoters::WhenSeveralNodes | ControllerVoters::None => return None,
        ControllerVoters::All => nodes,
        ControllerVoters::First(count) => &nodes[..usize::from(count).min(nodes.len())],
    };
    let voters: Vec<String> = voters
        .iter()
        .map(|node| format!("{node}@{}", SocketAddr::new(node_ip(*node).into(), port)))
        .collect();
    Some(voters.join(","))
}

/// A port free on every one of `ips`, below the kernel's ephemeral range when it can be:
/// there no outgoing connection takes it while a node is down for a restart.
fn shared_free_port(ips: &[IpAddr]) -> anyhow::Result<u16> {
    let ephemeral_first = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let candidates = 10_000..ephemeral_first.max(10_001);
    for _attempt in 0..200 {
        let port = rand::random::<u16>() % (candidates.end - candidates.start) + candidates.start;
        // Bound at once on every address, so none of them is checked after being freed.
        let bound: Result<Vec<TcpListener>, _> = ips
            .iter()
            .map(|ip| TcpListener::bind(SocketAddr::new(*ip, port)))
            .collect();
        if bound.is_ok() {
            return Ok(port);
        }
    }
    bail!("found no port free on all of {ips:?} in 200 attempts")
}

/// The last `lines` lines of the file at `path`, or why it cannot be read.
fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(error) => format!("(cannot read {}: {error})", path.display()),
    }
}
