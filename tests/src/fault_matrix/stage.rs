//! [`Stage`]: what a row's fault schedule works with — the cluster, the history, the
//! client links that can be cut — and the steps every schedule shares: marks from which
//! unavailability is measured, and settling after a fault (every partition acknowledges
//! again after the mark, every ISR is full again).
//!
//! The cluster's process methods block (a restart waits until the broker listens); they
//! run under `block_in_place`, so the clients' tasks go on meanwhile.

use std::time::Duration;

use anyhow::bail;

use super::setup::{all_full, leader_of, topology, WAIT};
use super::unavailability::first_fresh_acks;
use crate::cluster::{node_ip, Cluster};
use crate::firewall::Firewall;
use crate::history::{Event, Recorder, TopicPartition};
use crate::wait::wait_for;

/// The address the test's clients connect from.
pub const CLIENT_NODE: u8 = 1;
/// The description prefix of the history entries from which unavailability is measured.
pub const MEASURE_MARK: &str = "unavailability measured from here:";

/// One point from which unavailability is measured: the fault, or the heal when the row
/// says so.
#[derive(Debug, Clone)]
pub struct Mark {
    pub at: Duration,
    pub what: String,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Stage<'a> {
    pub cluster: &'a mut Cluster,
    pub recorder: &'a Recorder,
    pub topic: &'a str,
    pub partitions: i32,
    /// The ISR lag bound the brokers run with.
    pub replica_lag: Duration,
    /// Cuts between the test's clients (127.0.0.1) and one broker.
    client_links: Firewall,
    pub marks: Vec<Mark>,
    /// Broken promises of the row beyond the history (a refused clean stop, an unclean
    /// election seen) and liveness failures.
    pub failures: Vec<String>,
    /// Faults injected.
    pub faults: usize,
}

impl<'a> Stage<'a> {
    pub fn new(
        cluster: &'a mut Cluster,
        recorder: &'a Recorder,
        topic: &'a str,
        partitions: i32,
        replica_lag: Duration,
    ) -> Stage<'a> {
        let client_links = Firewall::new(&[cluster.port()]);
        Stage {
            cluster,
            recorder,
            topic,
            partitions,
            replica_lag,
            client_links,
            marks: Vec::new(),
            failures: Vec::new(),
            faults: 0,
        }
    }

    /// Records a fault step for the reader of the history.
    pub fn note(&self, description: String) {
        self.recorder
            .record("nemesis", Event::Nemesis { description });
    }

    /// Records the point from which this fault's unavailability is measured.
    pub fn measure_from(&mut self, what: String) {
        let at = self.recorder.elapsed();
        self.note(format!("{MEASURE_MARK} {what}"));
        self.marks.push(Mark { at, what });
    }

    pub fn topic_partitions(&self) -> Vec<TopicPartition> {
        (0..self.partitions)
            .map(|partition| TopicPartition::new(self.topic, partition))
            .collect()
    }

    /// The current leader of `partition`, asking the nodes not in `skip`.
    pub async fn leader(&self, partition: i32, skip: &[u8]) -> anyhow::Result<u8> {
        leader_of(self.cluster, self.topic, partition, skip).await
    }

    /// The followers of `partition` under `leader`.
    pub fn followers(&self, leader: u8) -> Vec<u8> {
        self.cluster
            .nodes()
            .into_iter()
            .filter(|node| *node != leader)
            .collect()
    }

    pub fn kill(&mut self, node: u8) -> anyhow::Result<()> {
        let status = tokio::task::block_in_place(|| self.cluster.kill(node))?;
        self.note(format!("SIGKILL node {node} ({status})"));
        Ok(())
    }

    pub fn restart(&mut self, node: u8) -> anyhow::Result<()> {
        tokio::task::block_in_place(|| self.cluster.restart(node))?;
        self.note(format!("restarted node {node}"));
        Ok(())
    }

    pub fn pause(&mut self, node: u8) -> anyhow::Result<()> {
        tokio::task::block_in_place(|| self.cluster.pause(node))?;
        self.note(format!("SIGSTOP node {node}"));
        Ok(())
    }

    pub fn resume(&mut self, node: u8) -> anyhow::Result<()> {
        tokio::task::block_in_place(|| self.cluster.resume(node))?;
        self.note(format!("SIGCONT node {node}"));
        Ok(())
    }

    /// Cuts the test's clients off from `node` (both ways), or heals that cut.
    pub fn cut_clients(&mut self, node: u8, cut: bool) -> anyhow::Result<()> {
        let (client, broker) = (node_ip(CLIENT_NODE), node_ip(node));
        if cut {
            self.client_links.cut(client, broker)?;
            self.note(format!("cut the clients off from node {node}"));
        } else {
            self.client_links.heal(client, broker)?;
            self.note(format!("healed the clients' link to node {node}"));
        }
        Ok(())
    }

    /// Heals every cut, between brokers and to the clients.
    pub fn heal_all(&mut self) -> anyhow::Result<()> {
        self.cluster.heal_all()?;
        self.client_links.heal_all()?;
        self.note("healed every link".to_owned());
        Ok(())
    }

    /// After a fault: every stopped node restarted, every paused one continued, every
    /// link healed; then waits until every partition has an acknowledgement after the last
    /// mark and every ISR is full on the latest epoch's view.
    pub async fn settle(&mut self) -> anyhow::Result<()> {
        for node in self.cluster.nodes() {
            if self.cluster.is_paused(node) {
                self.resume(node)?;
            } else if !self.cluster.is_running(node) {
                self.restart(node)?;
            }
        }
        self.heal_all()?;
        let since = self.marks.last().map_or(Duration::ZERO, |mark| mark.at);
        let partitions = self.topic_partitions();
        let recorder = self.recorder;
        wait_for(
            "every partition acknowledges a send made after the fault",
            WAIT,
            || {
                let first = first_fresh_acks(&recorder.entries(), since);
                let waiting: Vec<_> = partitions
                    .iter()
                    .filter(|partition| !first.contains_key(*partition))
                    .cloned()
                    .collect();
                async move {
                    if waiting.is_empty() {
                        Ok(())
                    } else {
                        bail!("no acknowledgement yet on {waiting:?}")
                    }
                }
            },
        )
        .await?;
        let (cluster, topic) = (&*self.cluster, self.topic);
        wait_for("every ISR is full again", WAIT, || async move {
            let view = topology(cluster, topic, &[]).await?;
            if all_full(&view) {
                Ok(())
            } else {
                bail!("not yet: {view:?}")
            }
        })
        .await?;
        self.note("settled: every partition acknowledges, every ISR is full".to_owned());
        Ok(())
    }

    /// Sleeps `duration` (the clients go on).
    pub async fn hold(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}
