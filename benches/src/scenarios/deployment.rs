//! The brokers of one session under one flush mode: a new run directory under the data
//! root, and one release `strata-broker` in it ([`Topology::SingleBroker`]) or three on
//! 127.0.0.1, 127.0.0.2 and 127.0.0.3 sharing one port ([`Topology::Cluster`]), every one
//! a voter of the controller quorum, as in the README's "Run a cluster".
//!
//! Layout: a single broker keeps its data in `<run dir>/data` and its log in
//! `<run dir>/broker.err`; node N of a cluster the same under `<run dir>/node-N/`. Bench
//! outputs go in the run directory.
//!
//! Lifecycle: [`Deployment::start`] returns once every broker listens (a cluster is not
//! formed yet: see [`super::readiness`]). [`Deployment::stop`] sends SIGTERM to every
//! broker's PID at once, waits a bounded time for each (SIGKILL after) and deletes the run
//! directory. `Drop` kills the brokers still running and deletes the directory, so an
//! error half-way through a session leaves neither a process nor a directory behind.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use super::broker::NodeLaunch;
use super::broker::{free_port, shared_free_port, BrokerOptions, BrokerProcess, Membership};
use super::plan::{Flush, Topology};

/// The running brokers of a session and the directory they live in.
#[derive(Debug)]
pub struct Deployment {
    topology: Topology,
    /// In node order: node N is `brokers[N - 1]`.
    brokers: Vec<BrokerProcess>,
    run_dir: PathBuf,
}

impl Deployment {
    /// Starts the brokers of `topology` on a new directory under `data_root`, one after
    /// the other, and returns once each of them listens.
    pub fn start(
        binary: &Path,
        data_root: &Path,
        label: &str,
        topology: Topology,
        flush: Flush,
        options: &BrokerOptions,
    ) -> anyhow::Result<Deployment> {
        let mut deployment = Deployment {
            topology,
            brokers: Vec::new(),
            run_dir: new_run_dir(data_root, label)?,
        };
        let port = match topology {
            Topology::SingleBroker => free_port()?,
            Topology::Cluster => shared_free_port(&node_ips(topology))?,
        };
        for (index, node) in node_launches(&deployment.run_dir, topology, port)
            .iter()
            .enumerate()
        {
            let broker = BrokerProcess::start(binary, node, flush, options)
                .with_context(|| format!("starting node {} of {}", index + 1, label))?;
            deployment.brokers.push(broker);
        }
        Ok(deployment)
    }

    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// Every broker's address, in node order.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.brokers.iter().map(BrokerProcess::address).collect()
    }

    /// The `-b` list for `strata`: every broker, comma-separated.
    pub fn bootstrap(&self) -> String {
        bootstrap(&self.addresses())
    }

    /// Where bench outputs of this session go; deleted with the brokers' data.
    pub fn scratch_dir(&self) -> &Path {
        &self.run_dir
    }

    /// User + system CPU time of all the brokers so far, in seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        self.brokers.iter().map(BrokerProcess::cpu_seconds).sum()
    }

    /// An error naming the first broker that is no longer running, with its log's tail.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        let several = self.brokers.len() > 1;
        for (index, broker) in self.brokers.iter_mut().enumerate() {
            let checked = broker.check_running();
            if several {
                checked.with_context(|| format!("node {}", index + 1))?;
            } else {
                checked?;
            }
        }
        Ok(())
    }

    /// Stops every broker by its PID, all at once (so no broker of a cluster waits for
    /// peers that are already gone), and deletes the run directory. Returns how each
    /// exited: `exit status: 0`, or `node 1: exit status: 0; node 2: …` for a cluster.
    pub fn stop(mut self) -> anyhow::Result<String> {
        let mut brokers = std::mem::take(&mut self.brokers);
        let statuses: Vec<String> = std::thread::scope(|scope| {
            let stopping: Vec<_> = brokers
                .iter_mut()
                .map(|broker| scope.spawn(move || broker.stop()))
                .collect();
            stopping
                .into_iter()
                .map(|stop| match stop.join() {
                    Ok(Ok(status)) => status,
                    Ok(Err(error)) => format!("stop failed: {error:#}"),
                    Err(_) => "stop failed: the stopping thread panicked".to_owned(),
                })
                .collect()
        });
        drop(brokers);
        super::cleanup::remove_dir_gently(&self.run_dir)?;
        Ok(match statuses.as_slice() {
            [status] => status.clone(),
            _ => statuses
                .iter()
                .enumerate()
                .map(|(index, status)| format!("node {}: {status}", index + 1))
                .collect::<Vec<_>>()
                .join("; "),
        })
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        // Dropping a broker kills and reaps its process.
        self.brokers.clear();
        // Deletes the session's data gently (`cleanup.rs`), so the next session's first
        // step does not meet the host reclaiming gigabytes at once.
        if let Err(error) = super::cleanup::remove_dir_gently(&self.run_dir) {
            eprintln!("scenarios: {error:#}");
        }
    }
}

/// The loopback address of each node: 127.0.0.N for node N.
fn node_ips(topology: Topology) -> Vec<Ipv4Addr> {
    (1..=topology.brokers())
        .map(|node| Ipv4Addr::new(127, 0, 0, node))
        .collect()
}

/// Where each broker of `topology` lives, listening on `port`.
pub fn node_launches(run_dir: &Path, topology: Topology, port: u16) -> Vec<NodeLaunch> {
    let ips = node_ips(topology);
    match topology {
        Topology::SingleBroker => ips
            .into_iter()
            .map(|ip| NodeLaunch {
                dir: run_dir.to_path_buf(),
                address: SocketAddr::from((ip, port)),
                membership: None,
            })
            .collect(),
        Topology::Cluster => {
            let voters: Vec<String> = (1u32..)
                .zip(&ips)
                .map(|(node, ip)| format!("{node}@{}", SocketAddr::from((*ip, port))))
                .collect();
            let controller_voters = voters.join(",");
            (1u32..)
                .zip(ips)
                .map(|(node, ip)| NodeLaunch {
                    dir: run_dir.join(format!("node-{node}")),
                    address: SocketAddr::from((ip, port)),
                    membership: Some(Membership {
                        node_id: node,
                        controller_voters: controller_voters.clone(),
                    }),
                })
                .collect()
        }
    }
}

/// `127.0.0.1:P,127.0.0.2:P,…`.
pub fn bootstrap(addresses: &[SocketAddr]) -> String {
    addresses
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(",")
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
    fn a_single_broker_lives_in_the_run_dir_on_its_defaults() {
        let nodes = node_launches(Path::new("/run"), Topology::SingleBroker, 9000);
        assert_eq!(
            nodes,
            [NodeLaunch {
                dir: PathBuf::from("/run"),
                address: SocketAddr::from(([127, 0, 0, 1], 9000)),
                membership: None,
            }]
        );
    }

    #[test]
    fn cluster_nodes_share_one_port_and_one_voter_list() {
        let nodes = node_launches(Path::new("/run"), Topology::Cluster, 9000);
        let voters = "1@127.0.0.1:9000,2@127.0.0.2:9000,3@127.0.0.3:9000";
        assert_eq!(nodes.len(), 3);
        for (node, launch) in (1u32..).zip(&nodes) {
            assert_eq!(launch.dir, PathBuf::from(format!("/run/node-{node}")));
            assert_eq!(launch.address.to_string(), format!("127.0.0.{node}:9000"));
            assert_eq!(
                launch.membership,
                Some(Membership {
                    node_id: node,
                    controller_voters: voters.to_owned(),
                })
            );
        }
        let addresses: Vec<SocketAddr> = nodes.iter().map(|node| node.address).collect();
        assert_eq!(
            bootstrap(&addresses),
            "127.0.0.1:9000,127.0.0.2:9000,127.0.0.3:9000"
        );
    }
}
