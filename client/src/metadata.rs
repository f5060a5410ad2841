//! [`MetadataCache`]: what the client knows about brokers, topics and partition leaders.
//!
//! The cache is filled from `Metadata` responses and read by every routing decision
//! (which broker leads `orders/3`?). It is refreshed on demand: when a topic is first used,
//! and after `NOT_LEADER`, `UNKNOWN_TOPIC_OR_PARTITION`, a fenced epoch or a lost
//! connection ([`Error::needs_metadata_refresh`](crate::Error::needs_metadata_refresh)).
//! Refreshes are serialised so that a burst of failures costs one round trip.
//!
//! Invariant: a topic is present only with the partitions of its last successful answer;
//! a topic the broker called unknown is removed, never kept half-known.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use strata_proto::api::v1 as wire;

/// A broker as advertised in metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerNode {
    pub node_id: i32,
    /// `host:port` of its gRPC listener.
    pub address: String,
    pub rack: String,
}

/// One partition's routing facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartitionEntry {
    /// -1 when the partition has no leader.
    pub(crate) leader: i32,
    pub(crate) leader_epoch: i32,
    pub(crate) replicas: Vec<i32>,
    pub(crate) isr: Vec<i32>,
}

/// Where to send requests for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leader {
    pub(crate) broker_id: i32,
    pub(crate) address: String,
    pub(crate) leader_epoch: i32,
}

#[derive(Debug, Default)]
struct Snapshot {
    cluster_id: String,
    /// The controller's metadata version of the last answer applied.
    metadata_version: i64,
    controller_id: i32,
    brokers: BTreeMap<i32, BrokerNode>,
    topics: HashMap<String, BTreeMap<i32, PartitionEntry>>,
}

/// The client's view of the cluster; cheap to read, replaced piecewise by refreshes.
#[derive(Debug, Default)]
pub(crate) struct MetadataCache {
    snapshot: RwLock<Snapshot>,
    /// Bumped by every `apply`, so readers can cache what they derived from a snapshot.
    version: std::sync::atomic::AtomicU64,
    /// Held while a refresh is in flight, so concurrent callers queue behind one request.
    pub(crate) refresh_lock: tokio::sync::Mutex<()>,
}

impl MetadataCache {
    /// Merges one `Metadata` answer. `all_topics` says the request named no topics, so
    /// topics missing from the answer no longer exist. An answer from an older metadata
    /// version of the same cluster than one already applied (a broker that is behind, or
    /// cut off from the controller) is ignored: routing never goes back to an old leader.
    pub(crate) fn apply(&self, response: &wire::MetadataResponse, all_topics: bool) {
        let mut snapshot = self
            .snapshot
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if response.cluster_id == snapshot.cluster_id
            && response.metadata_version < snapshot.metadata_version
        {
            tracing::debug!(
                version = response.metadata_version,
                applied = snapshot.metadata_version,
                "metadata: ignoring an answer older than the one applied"
            );
            return;
        }
        snapshot.metadata_version = response.metadata_version;
        // Bumped under the write lock: a reader that saw the new version reads the new
        // snapshot (or a later one).
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        snapshot.cluster_id.clone_from(&response.cluster_id);
        snapshot.controller_id = response.controller_id;
        if !response.brokers.is_empty() {
            snapshot.brokers = response
                .brokers
                .iter()
                .map(|broker| {
                    let node = BrokerNode {
                        node_id: broker.node_id,
                        address: broker.address.clone(),
                        rack: broker.rack.clone(),
                    };
                    (broker.node_id, node)
                })
                .collect();
        }
        if all_topics {
            snapshot.topics.clear();
        }
        for topic in &response.topics {
            let unknown = topic.error.as_ref().is_some_and(|error| !error.is_none());
            if unknown || topic.name.is_empty() {
                snapshot.topics.remove(&topic.name);
                continue;
            }
            let partitions = topic
                .partitions
                .iter()
                .filter(|partition| partition.partition >= 0)
                .map(|partition| {
                    let entry = PartitionEntry {
                        leader: partition.leader,
                        leader_epoch: partition.leader_epoch,
                        replicas: partition.replicas.clone(),
                        isr: partition.isr.clone(),
                    };
                    (partition.partition, entry)
                })
                .collect();
            snapshot.topics.insert(topic.name.clone(), partitions);
        }
    }

    /// A number that changes whenever the cached metadata may have changed.
    pub(crate) fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }

    /// How many partitions `topic` has, if known.
    pub(crate) fn partition_count(&self, topic: &str) -> Option<usize> {
        self.read(|snapshot| snapshot.topics.get(topic).map(BTreeMap::len))
    }

    /// The partition numbers of `topic`, if known.
    pub(crate) fn partitions(&self, topic: &str) -> Option<Vec<i32>> {
        self.read(|snapshot| {
            snapshot
                .topics
                .get(topic)
                .map(|partitions| partitions.keys().copied().collect())
        })
    }

    /// Partition numbers of `topic` that currently have a leader (for sticky choices).
    pub(crate) fn partitions_with_leader(&self, topic: &str) -> Vec<i32> {
        self.read(|snapshot| {
            snapshot
                .topics
                .get(topic)
                .map(|partitions| {
                    partitions
                        .iter()
                        .filter(|(_, entry)| entry.leader >= 0)
                        .map(|(partition, _)| *partition)
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    /// The leader of `topic/partition` and its address, if both are known.
    pub(crate) fn leader(&self, topic: &str, partition: i32) -> Option<Leader> {
        self.read(|snapshot| {
            let entry = snapshot.topics.get(topic)?.get(&partition)?;
            let broker = snapshot.brokers.get(&entry.leader)?;
            Some(Leader {
                broker_id: entry.leader,
                address: broker.address.clone(),
                leader_epoch: entry.leader_epoch,
            })
        })
    }

    /// Known broker addresses, lowest node id first.
    pub(crate) fn broker_addresses(&self) -> Vec<String> {
        self.read(|snapshot| {
            snapshot
                .brokers
                .values()
                .map(|broker| broker.address.clone())
                .collect()
        })
    }

    pub(crate) fn brokers(&self) -> Vec<BrokerNode> {
        self.read(|snapshot| snapshot.brokers.values().cloned().collect())
    }

    fn read<T>(&self, f: impl FnOnce(&Snapshot) -> T) -> T {
        let snapshot = self
            .snapshot
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_proto::api::v1::ErrorCode;

    fn response(topics: Vec<wire::TopicMetadata>) -> wire::MetadataResponse {
        wire::MetadataResponse {
            cluster_id: "c1".into(),
            controller_id: 1,
            brokers: vec![wire::BrokerInfo {
                node_id: 1,
                address: "127.0.0.1:7070".into(),
                rack: String::new(),
                fenced: false,
                incarnation: 1,
            }],
            topics,
            metadata_version: 3,
        }
    }

    fn topic(name: &str, leaders: &[i32]) -> wire::TopicMetadata {
        wire::TopicMetadata {
            name: name.into(),
            topic_id: bytes::Bytes::new(),
            partitions: leaders
                .iter()
                .enumerate()
                .map(|(index, leader)| wire::PartitionMetadata {
                    partition: index as i32,
                    leader: *leader,
                    leader_epoch: 4,
                    replicas: vec![1],
                    isr: vec![1],
                })
                .collect(),
            error: None,
        }
    }

    #[test]
    fn leaders_resolve_to_broker_addresses() {
        let cache = MetadataCache::default();
        cache.apply(&response(vec![topic("orders", &[1, -1])]), true);
        assert_eq!(cache.partition_count("orders"), Some(2));
        let leader = cache.leader("orders", 0);
        assert_eq!(
            leader.map(|leader| leader.address),
            Some("127.0.0.1:7070".to_owned())
        );
        assert_eq!(cache.leader("orders", 1), None);
        assert_eq!(cache.partitions_with_leader("orders"), vec![0]);
        assert_eq!(cache.partition_count("missing"), None);
    }

    #[test]
    fn an_answer_older_than_the_applied_one_is_ignored() {
        let cache = MetadataCache::default();
        let mut newer = response(vec![topic("orders", &[2])]);
        newer.metadata_version = 9;
        newer.brokers.push(wire::BrokerInfo {
            node_id: 2,
            address: "127.0.0.2:7070".into(),
            rack: String::new(),
            fenced: false,
            incarnation: 1,
        });
        cache.apply(&newer, true);
        // A broker cut off from the controller still names the old leader.
        cache.apply(&response(vec![topic("orders", &[1])]), true);
        assert_eq!(
            cache.leader("orders", 0).map(|leader| leader.broker_id),
            Some(2)
        );
        let mut other_cluster = response(vec![topic("orders", &[1])]);
        other_cluster.cluster_id = "c2".into();
        cache.apply(&other_cluster, true);
        assert_eq!(
            cache.leader("orders", 0).map(|leader| leader.broker_id),
            Some(1),
            "a new cluster (wiped and recreated) starts its versions again"
        );
    }

    #[test]
    fn unknown_topics_are_removed() {
        let cache = MetadataCache::default();
        cache.apply(&response(vec![topic("orders", &[1])]), true);
        let mut gone = topic("orders", &[]);
        gone.error = Some(wire::Error::new(ErrorCode::UnknownTopicOrPartition, "gone"));
        cache.apply(&response(vec![gone]), false);
        assert_eq!(cache.partition_count("orders"), None);
        cache.apply(&response(vec![topic("a", &[1])]), false);
        cache.apply(&response(vec![topic("b", &[1])]), true);
        assert_eq!(
            cache.partition_count("a"),
            None,
            "a full answer replaces the list"
        );
    }
}
