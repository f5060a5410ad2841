//! The values the admin API takes and returns, in Kafka's vocabulary and free of wire
//! types, so the CLI can print them and callers can match on them.

use std::collections::BTreeMap;

use strata_proto::api::v1 as wire;

pub use crate::metadata::BrokerNode;

/// A topic to create: `NewTopic::new("orders").partitions(6).config("retention_ms", "..")`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewTopic {
    pub name: String,
    /// 0: the broker default.
    pub partitions: i32,
    /// 0: the broker default.
    pub replication_factor: i32,
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    pub fn new(name: impl Into<String>) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions: 0,
            replication_factor: 0,
            configs: BTreeMap::new(),
        }
    }

    #[must_use]
    pub fn partitions(mut self, partitions: i32) -> NewTopic {
        self.partitions = partitions;
        self
    }

    #[must_use]
    pub fn replication_factor(mut self, replication_factor: i32) -> NewTopic {
        self.replication_factor = replication_factor;
        self
    }

    /// A topic config (`retention_ms`, or Kafka's dotted alias `retention.ms`).
    #[must_use]
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> NewTopic {
        self.configs.insert(key.into(), value.into());
        self
    }

    pub(crate) fn to_wire(&self) -> wire::TopicSpec {
        wire::TopicSpec {
            name: self.name.clone(),
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            configs: self
                .configs
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        }
    }
}

/// One line of `topic list`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicInfo {
    pub name: String,
    pub partitions: usize,
    /// Replicas of its first partition (all partitions share it at creation).
    pub replication_factor: usize,
}

/// Everything `topic describe` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicDescription {
    pub name: String,
    /// 16 bytes, as hex.
    pub topic_id: String,
    pub partitions: Vec<PartitionDescription>,
    pub configs: Vec<ConfigEntry>,
}

/// One partition of a described topic. Offsets are -1 when the broker did not report them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionDescription {
    pub partition: i32,
    /// -1 without a leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub log_end_offset: i64,
}

/// A topic config with where its value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigEntry {
    pub key: String,
    pub value: String,
    pub source: ConfigSource,
}

/// Where a config value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigSource {
    Default,
    Topic,
    Broker,
}

impl ConfigSource {
    /// `DEFAULT`, `TOPIC` or `BROKER`, as `topic describe` prints it.
    pub fn name(self) -> &'static str {
        match self {
            ConfigSource::Default => "DEFAULT",
            ConfigSource::Topic => "TOPIC",
            ConfigSource::Broker => "BROKER",
        }
    }

    pub(crate) fn from_wire(source: i32) -> ConfigSource {
        match wire::ConfigSource::try_from(source) {
            Ok(wire::ConfigSource::Topic) => ConfigSource::Topic,
            Ok(wire::ConfigSource::Broker) => ConfigSource::Broker,
            _ => ConfigSource::Default,
        }
    }
}

/// What an `alter_config` changed (or would change, with `validate_only`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigChange {
    pub key: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
}

impl ConfigChange {
    pub(crate) fn from_wire(change: &wire::ConfigChange) -> ConfigChange {
        ConfigChange {
            key: change.key.clone(),
            old_value: change.has_old_value.then(|| change.old_value.clone()),
            new_value: change.has_new_value.then(|| change.new_value.clone()),
        }
    }
}

/// Which offset `list_offsets` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end (the high watermark: the next offset to be written and read).
    Latest,
    /// The first offset whose timestamp is at or after this one (ms); -1 when none.
    Timestamp(i64),
}

/// `cluster info`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterInfo {
    pub cluster_id: String,
    pub controller_id: i32,
    pub brokers: Vec<BrokerNode>,
    pub topic_count: usize,
}

/// Lower-case hex of a topic id.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
