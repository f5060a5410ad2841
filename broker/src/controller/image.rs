//! [`MetadataImage`]: the cluster metadata at one version, the result of applying every
//! metadata record up to it.
//!
//! Images are values: the controller builds the next one from a clone of the current one
//! and publishes it as an `Arc<MetadataImage>`, so readers hold a consistent view for as
//! long as they like while mutations go on.
//!
//! Invariants (kept by [`state_machine::apply`](super::state_machine::apply)):
//! - `version` is the offset of the last applied record + 1 (0 for the empty image); it only
//!   grows.
//! - topic names and topic ids are unique; a topic's partitions are `0..n` without gaps.
//! - every replica, ISR member and leader is a registered broker; the ISR and the leader
//!   are among the replicas, and the leader (if any) is in the ISR.
//! - `next_producer_id` is the end of the last allocated producer-id block.
//!
//! The image is also the body of the metadata snapshot (`snapshot.rs`), as JSON; broker
//! ids are written as plain numbers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_proto::types::BrokerId;

/// The cluster metadata at one version. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MetadataImage {
    /// Offset of the last applied metadata record + 1.
    pub version: i64,
    /// `None` until the first controller start writes it.
    pub cluster_id: Option<String>,
    #[serde(with = "brokers_json")]
    pub brokers: BTreeMap<BrokerId, BrokerInfo>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicImage>,
    /// The end of the allocated producer-id range: the next block starts here.
    pub next_producer_id: i64,
}

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    #[serde(with = "broker_id_json")]
    pub id: BrokerId,
    /// Where clients reach it (`host:port`): its internal listener's advertised address,
    /// also used broker to broker.
    pub address: String,
    pub rack: Option<String>,
    /// Raised on every registration, i.e. on every start of the broker.
    pub incarnation: u64,
    /// Its lease lapsed or it shut down: it leads nothing until it heartbeats again.
    /// (Absent in snapshots written before the cluster build: false.)
    #[serde(default)]
    pub fenced: bool,
    /// Its external listener's advertised address, for clients outside its network
    /// (absent when it has no external listener, and in older snapshots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_address: Option<String>,
}

/// The listener a client request arrived on: it decides which of a broker's addresses
/// that client is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Listener {
    /// The gRPC listener (`listeners.grpc`), shared with other brokers.
    #[default]
    Internal,
    /// The listener for clients outside the brokers' network (`listeners.external`).
    External,
}

impl BrokerInfo {
    /// The address a client of `listener` should use for this broker: on the external
    /// listener its external address, or its internal one when it has none.
    pub fn address_for(&self, listener: Listener) -> &str {
        match (listener, &self.external_address) {
            (Listener::External, Some(external)) => external,
            _ => &self.address,
        }
    }
}

/// A topic: its id, name, explicit config overrides and partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    /// 32 lowercase hex digits; a re-created topic gets a new one.
    pub id: String,
    pub name: String,
    /// Only the overrides set on the topic, under Strata names
    /// (`topic_config::TopicConfig::effective` adds the defaults).
    pub configs: BTreeMap<String, String>,
    pub partitions: BTreeMap<i32, PartitionImage>,
}

impl TopicImage {
    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }

    /// The smallest replica count of its partitions (they differ only after a
    /// reassignment); 0 without partitions.
    pub fn replication_factor(&self) -> usize {
        self.partitions
            .values()
            .map(|partition| partition.replicas.len())
            .min()
            .unwrap_or(0)
    }

    /// Internal topics (`__` prefix) are created by the broker itself, never by users.
    pub fn is_internal(&self) -> bool {
        self.name.starts_with("__")
    }
}

/// One partition's replicas and leadership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    /// In preference order: the first replica is the preferred leader.
    #[serde(with = "broker_ids_json")]
    pub replicas: Vec<BrokerId>,
    #[serde(with = "optional_broker_id_json")]
    pub leader: Option<BrokerId>,
    pub leader_epoch: i32,
    #[serde(with = "broker_ids_json")]
    pub isr: Vec<BrokerId>,
    /// Raised on every change of leader or ISR; ISR change requests carry it as a fence.
    pub partition_epoch: i32,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionImage> {
        self.topic(topic)?.partitions.get(&partition)
    }

    /// Linear in the number of topics; replay calls it once per partition record, which is
    /// fine for the topic counts a one-node cluster holds.
    pub fn topic_by_id(&self, topic_id: &str) -> Option<&TopicImage> {
        self.topics.values().find(|topic| topic.id == topic_id)
    }

    pub fn broker(&self, id: BrokerId) -> Option<&BrokerInfo> {
        self.brokers.get(&id)
    }
}

/// `BrokerId` has no serde support (strata-proto stays free of it); these write it as the
/// plain number it wraps.
mod broker_id_json {
    use serde::{Deserialize, Deserializer, Serializer};
    use strata_proto::types::BrokerId;

    pub fn serialize<S: Serializer>(id: &BrokerId, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i32(id.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BrokerId, D::Error> {
        i32::deserialize(deserializer).map(BrokerId)
    }
}

mod optional_broker_id_json {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use strata_proto::types::BrokerId;

    pub fn serialize<S: Serializer>(
        id: &Option<BrokerId>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        id.map(|id| id.0).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<BrokerId>, D::Error> {
        Option::<i32>::deserialize(deserializer).map(|id| id.map(BrokerId))
    }
}

mod broker_ids_json {
    use serde::{Deserialize, Deserializer, Serializer};
    use strata_proto::types::BrokerId;

    pub fn serialize<S: Serializer>(ids: &[BrokerId], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(ids.iter().map(|id| id.0))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<BrokerId>, D::Error> {
        Vec::<i32>::deserialize(deserializer).map(|ids| ids.into_iter().map(BrokerId).collect())
    }
}

/// Brokers are written as a list (each entry carries its id) rather than a map with
/// string keys.
mod brokers_json {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};
    use strata_proto::types::BrokerId;

    use super::BrokerInfo;

    pub fn serialize<S: Serializer>(
        brokers: &BTreeMap<BrokerId, BrokerInfo>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(brokers.values())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<BrokerId, BrokerInfo>, D::Error> {
        let brokers = Vec::<BrokerInfo>::deserialize(deserializer)?;
        Ok(brokers
            .into_iter()
            .map(|broker| (broker.id, broker))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn sample() -> MetadataImage {
        let partition = PartitionImage {
            replicas: vec![BrokerId(1), BrokerId(2)],
            leader: Some(BrokerId(1)),
            leader_epoch: 3,
            isr: vec![BrokerId(1)],
            partition_epoch: 4,
        };
        let topic = TopicImage {
            id: "0123456789abcdef0123456789abcdef".into(),
            name: "orders".into(),
            configs: BTreeMap::from([("retention_ms".into(), "1000".into())]),
            partitions: BTreeMap::from([(0, partition)]),
        };
        MetadataImage {
            version: 7,
            cluster_id: Some("c".into()),
            brokers: [1, 2]
                .into_iter()
                .map(|id| {
                    let info = BrokerInfo {
                        id: BrokerId(id),
                        address: format!("127.0.0.1:{}", 7070 + id),
                        rack: None,
                        incarnation: 1,
                        fenced: false,
                        external_address: None,
                    };
                    (BrokerId(id), info)
                })
                .collect(),
            topics: BTreeMap::from([("orders".into(), topic)]),
            next_producer_id: 1000,
        }
    }

    #[test]
    fn a_client_of_the_external_listener_gets_the_external_address_or_else_the_internal_one() {
        let mut image = sample();
        let with_external = image.brokers.get_mut(&BrokerId(1)).unwrap();
        with_external.external_address = Some("203.0.113.1:17070".into());
        let with = &image.brokers[&BrokerId(1)];
        let without = &image.brokers[&BrokerId(2)];
        assert_eq!(with.address_for(Listener::External), "203.0.113.1:17070");
        assert_eq!(with.address_for(Listener::Internal), "127.0.0.1:7071");
        assert_eq!(without.address_for(Listener::External), "127.0.0.1:7072");
        assert_eq!(without.address_for(Listener::Internal), "127.0.0.1:7072");
        // Written only when set: snapshots of clusters without external listeners keep
        // their old shape, and old snapshots read back with none.
        let json = serde_json::to_string(&image).unwrap();
        assert_eq!(json.matches("external_address").count(), 1, "{json}");
        assert_eq!(serde_json::from_str::<MetadataImage>(&json).unwrap(), image);
    }

    #[test]
    fn image_round_trips_through_json_with_plain_broker_ids() {
        let image = sample();
        let json = serde_json::to_string(&image).unwrap();
        assert!(json.contains(r#""replicas":[1,2],"leader":1"#), "{json}");
        let back: MetadataImage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, image);
    }

    #[test]
    fn query_helpers_find_topics_and_partitions() {
        let image = sample();
        assert_eq!(image.topic("orders").unwrap().partition_count(), 1);
        assert_eq!(image.partition("orders", 0).unwrap().leader_epoch, 3);
        assert!(image.partition("orders", 1).is_none());
        assert!(image.partition("nope", 0).is_none());
        let by_id = image.topic_by_id("0123456789abcdef0123456789abcdef");
        assert_eq!(by_id.unwrap().name, "orders");
        assert!(image.broker(BrokerId(2)).is_some());
        assert!(!image.topic("orders").unwrap().is_internal());
    }
}
