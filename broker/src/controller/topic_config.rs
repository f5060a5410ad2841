//! Topic configs: the keys Strata knows, how their values are checked, and how a topic's
//! overrides combine with the broker's defaults into the settings its partition logs use.
//!
//! Keys have a Strata name (`retention_ms`) and, where Kafka has the setting, Kafka's
//! dotted name as an alias (`retention.ms`). [`TopicConfig::normalize`] accepts either and
//! stores the Strata name with a canonical value; everything it refuses is
//! [`ControllerError::InvalidConfig`] naming the key, the value and the rule
//! (`docs/RELIABILITY.md`, hostile input 33), so a bad config never reaches the metadata log.
//!
//! | key | alias | value |
//! |---|---|---|
//! | `retention_ms` | `retention.ms` | -1 (infinite) or ≥ 0 |
//! | `retention_bytes` | `retention.bytes` | -1 (infinite) or ≥ 0 |
//! | `segment_bytes` | `segment.bytes` | 1024 ..= 2^31 - 1 |
//! | `segment_ms` | `segment.ms` | ≥ 1 |
//! | `flush` | — | `always` or `interval:<ms>` |
//! | `cleanup_policy` | `cleanup.policy` | `delete` (default), `compact` or `compact,delete` |
//! | `delete_retention_ms` | `delete.retention.ms` | ≥ 0 (default 86400000: a tombstone's life after its segment was cleaned) |
//! | `min_cleanable_dirty_ratio` | `min.cleanable.dirty.ratio` | 0 ..= 1, at most 6 decimals (default 0.5) |
//! | `message_max_bytes` | `max.message.bytes` | 1 ..= the broker's `message_max_bytes` |
//! | `unclean_leader_election_enable` | `unclean.leader.election.enable` | `true` or `false` (default `false`) |
//! | `min_insync_replicas` | `min.insync.replicas` | 1 ..= the topic's replication factor (default 2 when RF ≥ 3, else 1) |
//! | `delivery_delay_enabled` | `delivery.delay.enabled` | `true` or `false` (default `false`) |
//! | `delivery_delay_max_ms` | `delivery.delay.max.ms` | 1000 ..= 31536000000 (default 604800000, 7 days) |
//!
//! `delivery_delay_enabled` and `delivery_delay_max_ms` are read by clients, not by the
//! log: a producer of `strata-client` refuses a record with a due time
//! (`Record::deliver_at`) to a topic without `delivery_delay_enabled=true`, or whose
//! due time is more than `delivery_delay_max_ms` away from its clock, in either
//! direction (`docs/DELAYED_DELIVERY.md`). The broker stores records with a due time
//! like any other.
//!
//! `unclean_leader_election_enable` lets the controller elect a live replica outside the
//! ISR when no ISR member is alive (`election.rs`): the partition comes back sooner but
//! loses the acknowledged records that replica never received. It has no broker-wide
//! setting: the default is Kafka's, `false`.
//!
//! `min_insync_replicas` is the ISR size below which the partition leader refuses
//! `acks=all` writes with `NOT_ENOUGH_REPLICAS` (`replication/leader.rs`). Unset, it
//! depends on each partition's replication factor: 2 when RF ≥ 3, else 1
//! ([`MinInsyncReplicas::for_replication_factor`]), so an RF-3 topic acknowledges an
//! `acks=all` write only once two brokers hold it, and RF 1 and 2 keep working with one
//! broker down. Kafka's default is 1; Strata follows its replication contract instead.
//! A value above the topic's replication factor is refused on create and alter
//! ([`TopicConfig::check_replication_factor`]): Kafka accepts it and then refuses every
//! `acks=all` write to the topic, which is a config that can never work. Reassigning
//! a partition to fewer replicas does not re-check it; a leader whose ISR cannot reach
//! the minimum refuses `acks=all` writes as for any ISR too small.
//!
//! `cleanup_policy` containing `compact` hands the topic's sealed segments to the log
//! cleaner (`log/cleaner.rs`: the newest record per key is kept, tombstones go
//! `delete_retention_ms` after their segment was first cleaned) and makes produce refuse
//! records without a key (`KeyRequired`, Kafka's INVALID_RECORD). Retention deletes
//! segments only when the policy contains `delete`.
//!
//! Labels (`strata.retry.*`, `topic_labels.rs`) are accepted next to these keys: stored
//! verbatim, listed by describe after the settings, never applied to the log.
//!
//! A setting the broker cannot honour is refused, never stored and shown as if it were:
//! - a `message_max_bytes` above the broker's: the broker's value sizes the transport's
//!   decode limit (a request a little larger ends the whole produce stream), and batches
//!   above it are refused anyway.
//!
//! A metadata log written before these rules may still hold such a value. It is read and
//! kept, but not applied: [`TopicConfig::effective`] uses the broker's value in its place,
//! and [`TopicConfig::ignored_overrides`] lists it so that opening the controller can log
//! a warning per topic.
//!
//! `message_max_bytes` is enforced by the produce path: `Node::produce` checks each batch
//! (and each record) against the smaller of the topic's effective value and the
//! broker's. The log's own `batch_bytes_max` is a storage sanity bound and stays at the
//! broker's value, so lowering the topic limit can never make batches already stored
//! look damaged.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

pub use crate::log::CleanupPolicy;
use crate::log::{DirtyRatio, FlushPolicy, LogConfig};

use super::error::ControllerError;
use super::topic_labels;

/// A topic config key Strata knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigKey {
    RetentionMs,
    RetentionBytes,
    SegmentBytes,
    SegmentMs,
    Flush,
    CleanupPolicy,
    MessageMaxBytes,
    UncleanLeaderElectionEnable,
    MinInsyncReplicas,
    DeleteRetentionMs,
    MinCleanableDirtyRatio,
    DeliveryDelayEnabled,
    DeliveryDelayMaxMs,
}

impl ConfigKey {
    pub const ALL: [ConfigKey; 13] = [
        ConfigKey::RetentionMs,
        ConfigKey::RetentionBytes,
        ConfigKey::SegmentBytes,
        ConfigKey::SegmentMs,
        ConfigKey::Flush,
        ConfigKey::CleanupPolicy,
        ConfigKey::MessageMaxBytes,
        ConfigKey::UncleanLeaderElectionEnable,
        ConfigKey::MinInsyncReplicas,
        ConfigKey::DeleteRetentionMs,
        ConfigKey::MinCleanableDirtyRatio,
        ConfigKey::DeliveryDelayEnabled,
        ConfigKey::DeliveryDelayMaxMs,
    ];

    /// The Strata name, under which the key is stored.
    pub fn name(self) -> &'static str {
        match self {
            ConfigKey::RetentionMs => "retention_ms",
            ConfigKey::RetentionBytes => "retention_bytes",
            ConfigKey::SegmentBytes => "segment_bytes",
            ConfigKey::SegmentMs => "segment_ms",
            ConfigKey::Flush => "flush",
            ConfigKey::CleanupPolicy => "cleanup_policy",
            ConfigKey::MessageMaxBytes => "message_max_bytes",
            ConfigKey::UncleanLeaderElectionEnable => "unclean_leader_election_enable",
            ConfigKey::MinInsyncReplicas => "min_insync_replicas",
            ConfigKey::DeleteRetentionMs => "delete_retention_ms",
            ConfigKey::MinCleanableDirtyRatio => "min_cleanable_dirty_ratio",
            ConfigKey::DeliveryDelayEnabled => "delivery_delay_enabled",
            ConfigKey::DeliveryDelayMaxMs => "delivery_delay_max_ms",
        }
    }

    /// Kafka's name for the same setting, accepted as an alias.
    pub fn kafka_name(self) -> Option<&'static str> {
        match self {
            ConfigKey::RetentionMs => Some("retention.ms"),
            ConfigKey::RetentionBytes => Some("retention.bytes"),
            ConfigKey::SegmentBytes => Some("segment.bytes"),
            ConfigKey::SegmentMs => Some("segment.ms"),
            ConfigKey::Flush => None,
            ConfigKey::CleanupPolicy => Some("cleanup.policy"),
            ConfigKey::MessageMaxBytes => Some("max.message.bytes"),
            ConfigKey::UncleanLeaderElectionEnable => Some("unclean.leader.election.enable"),
            ConfigKey::MinInsyncReplicas => Some("min.insync.replicas"),
            ConfigKey::DeleteRetentionMs => Some("delete.retention.ms"),
            ConfigKey::MinCleanableDirtyRatio => Some("min.cleanable.dirty.ratio"),
            ConfigKey::DeliveryDelayEnabled => Some("delivery.delay.enabled"),
            ConfigKey::DeliveryDelayMaxMs => Some("delivery.delay.max.ms"),
        }
    }

    /// Looks a key up by its Strata or Kafka name.
    pub fn parse(key: &str) -> Result<ConfigKey, ControllerError> {
        ConfigKey::ALL
            .into_iter()
            .find(|known| known.name() == key || known.kafka_name() == Some(key))
            .ok_or_else(|| ControllerError::InvalidConfig {
                key: key.to_owned(),
                value: String::new(),
                reason: "unknown topic config key".into(),
            })
    }

    /// Checks `value` for this key on a broker with `defaults`; returns it typed.
    fn parse_value(
        self,
        value: &str,
        defaults: &BrokerDefaults,
    ) -> Result<TypedValue, ControllerError> {
        let invalid = |reason: String| ControllerError::InvalidConfig {
            key: self.name().to_owned(),
            value: value.to_owned(),
            reason,
        };
        let integer = |min: i64, max: i64, rule: &str| {
            let number: i64 = value
                .parse()
                .map_err(|_| invalid(format!("not an integer; expected {rule}")))?;
            if (min..=max).contains(&number) {
                Ok(TypedValue::Integer(number))
            } else {
                Err(invalid(format!("out of range; expected {rule}")))
            }
        };
        let i32_max = i64::from(i32::MAX);
        match self {
            ConfigKey::RetentionMs | ConfigKey::RetentionBytes => {
                integer(-1, i64::MAX, "-1 (infinite) or a number ≥ 0")
            }
            ConfigKey::SegmentBytes => integer(SEGMENT_BYTES_MIN, i32_max, "1024 ..= 2147483647"),
            ConfigKey::SegmentMs => integer(1, i64::MAX, "a number ≥ 1"),
            ConfigKey::DeleteRetentionMs => integer(0, i64::MAX, "a number ≥ 0"),
            ConfigKey::MinCleanableDirtyRatio => DirtyRatio::from_str(value)
                .map(TypedValue::Ratio)
                .map_err(invalid),
            ConfigKey::MessageMaxBytes => {
                let broker_max = i64::from(defaults.message_max_bytes);
                let rule = format!(
                    "1 ..= {broker_max}: a topic's limit cannot exceed the broker's \
                     message_max_bytes ({broker_max}), the largest batch its transport accepts"
                );
                integer(1, broker_max, &rule)
            }
            ConfigKey::Flush => FlushPolicy::from_str(value)
                .map(TypedValue::Flush)
                .map_err(|error| invalid(error.to_string())),
            ConfigKey::CleanupPolicy => CleanupPolicy::from_str(value)
                .map(TypedValue::Cleanup)
                .map_err(invalid),
            ConfigKey::UncleanLeaderElectionEnable | ConfigKey::DeliveryDelayEnabled => {
                match value.to_ascii_lowercase().as_str() {
                    "true" => Ok(TypedValue::Bool(true)),
                    "false" => Ok(TypedValue::Bool(false)),
                    _ => Err(invalid("expected true or false".into())),
                }
            }
            ConfigKey::DeliveryDelayMaxMs => integer(
                DELIVERY_DELAY_MAX_MS_MIN,
                DELIVERY_DELAY_MAX_MS_LIMIT,
                "1000 ..= 31536000000 (1 s to 365 days)",
            ),
            ConfigKey::MinInsyncReplicas => {
                let number = integer(1, i32_max, "a number ≥ 1")?.integer();
                let replicas = usize::try_from(number).unwrap_or(usize::MAX);
                Ok(TypedValue::MinInsync(MinInsyncReplicas::Set(replicas)))
            }
        }
    }
}

/// `unclean_leader_election_enable` of a topic without the override (Kafka's default).
pub const UNCLEAN_LEADER_ELECTION_ENABLE_DEFAULT: bool = false;

/// `delivery_delay_max_ms` of a topic without the override: 7 days, the default
/// retention, so a record is not deleted before it is due unless retention is lowered.
pub const DELIVERY_DELAY_MAX_MS_DEFAULT: i64 = 7 * 24 * 3600 * 1000;
/// The smallest and largest `delivery_delay_max_ms` accepted.
const DELIVERY_DELAY_MAX_MS_MIN: i64 = 1000;
const DELIVERY_DELAY_MAX_MS_LIMIT: i64 = 365 * 24 * 3600 * 1000;

/// `min_insync_replicas` of a topic: set on it, or the default that depends on the
/// replication factor of each partition (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinInsyncReplicas {
    /// Set on the topic (≥ 1).
    Set(usize),
    /// Not set: 2 when the partition's replication factor is ≥ 3, else 1.
    ByReplicationFactor,
}

impl MinInsyncReplicas {
    /// The minimum ISR size of a partition with `replication_factor` replicas.
    pub fn for_replication_factor(self, replication_factor: usize) -> usize {
        match self {
            MinInsyncReplicas::Set(replicas) => replicas,
            MinInsyncReplicas::ByReplicationFactor if replication_factor >= 3 => 2,
            MinInsyncReplicas::ByReplicationFactor => 1,
        }
    }
}

impl fmt::Display for MinInsyncReplicas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MinInsyncReplicas::Set(replicas) => write!(f, "{replicas}"),
            MinInsyncReplicas::ByReplicationFactor => {
                f.write_str("2 when the replication factor is ≥ 3, else 1")
            }
        }
    }
}

/// The smallest `segment_bytes` accepted: small enough for tests that roll often, large
/// enough to hold a batch header and a record.
pub const SEGMENT_BYTES_MIN: i64 = 1024;

/// A checked config value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypedValue {
    Integer(i64),
    Flush(FlushPolicy),
    Cleanup(CleanupPolicy),
    Bool(bool),
    MinInsync(MinInsyncReplicas),
    Ratio(DirtyRatio),
}

impl TypedValue {
    /// The number of an integer-valued key (every key but `flush`, `cleanup_policy`,
    /// `unclean_leader_election_enable`, `delivery_delay_enabled`, `min_insync_replicas`
    /// and `min_cleanable_dirty_ratio`).
    fn integer(self) -> i64 {
        match self {
            TypedValue::Integer(number) => number,
            TypedValue::Flush(_)
            | TypedValue::Cleanup(_)
            | TypedValue::Bool(_)
            | TypedValue::MinInsync(_)
            | TypedValue::Ratio(_) => 0,
        }
    }
}

impl fmt::Display for TypedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypedValue::Integer(number) => write!(f, "{number}"),
            TypedValue::Flush(flush) => write!(f, "{flush}"),
            TypedValue::Cleanup(policy) => write!(f, "{policy}"),
            TypedValue::Bool(flag) => write!(f, "{flag}"),
            TypedValue::MinInsync(replicas) => write!(f, "{replicas}"),
            TypedValue::Ratio(ratio) => write!(f, "{ratio}"),
        }
    }
}

/// The broker-level defaults a topic falls back to for every key it does not override,
/// plus the defaults of topic creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerDefaults {
    pub flush: FlushPolicy,
    pub segment_bytes: i64,
    pub segment_ms: i64,
    /// -1 = infinite.
    pub retention_ms: i64,
    /// -1 = infinite.
    pub retention_bytes: i64,
    pub cleanup_policy: CleanupPolicy,
    pub delete_retention_ms: i64,
    pub min_cleanable_dirty_ratio: DirtyRatio,
    pub message_max_bytes: i32,
    /// Partitions of a topic created without a count.
    pub default_partitions: i32,
    /// Replication factor of a topic created without one.
    pub default_replication_factor: i32,
}

impl Default for BrokerDefaults {
    /// Kafka's defaults, except `flush = always`: fsync before the high watermark moves,
    /// where Kafka relies on the page cache.
    fn default() -> BrokerDefaults {
        BrokerDefaults {
            flush: FlushPolicy::Always,
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: crate::log::config::DELETE_RETENTION_MS_DEFAULT as i64,
            min_cleanable_dirty_ratio: DirtyRatio::default(),
            message_max_bytes: 1 << 20,
            default_partitions: 1,
            default_replication_factor: 1,
        }
    }
}

impl BrokerDefaults {
    /// The defaults of a broker whose partition logs are configured by `log` and whose
    /// produce path accepts batches up to `message_max_bytes`.
    pub fn from_log_config(log: &LogConfig, message_max_bytes: usize) -> BrokerDefaults {
        let defaults = BrokerDefaults::default();
        let signed =
            |value: Option<u64>| value.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX));
        BrokerDefaults {
            flush: log.flush,
            segment_bytes: i64::try_from(log.segment_bytes).unwrap_or(i64::MAX),
            segment_ms: log
                .segment_ms
                .map_or(i64::MAX, |ms| i64::try_from(ms).unwrap_or(i64::MAX)),
            retention_ms: signed(log.retention_ms),
            retention_bytes: signed(log.retention_bytes),
            cleanup_policy: log.cleanup_policy,
            delete_retention_ms: i64::try_from(log.delete_retention_ms).unwrap_or(i64::MAX),
            min_cleanable_dirty_ratio: log.min_cleanable_dirty_ratio,
            message_max_bytes: i32::try_from(message_max_bytes).unwrap_or(i32::MAX),
            ..defaults
        }
    }

    fn value(&self, key: ConfigKey) -> TypedValue {
        match key {
            ConfigKey::RetentionMs => TypedValue::Integer(self.retention_ms),
            ConfigKey::RetentionBytes => TypedValue::Integer(self.retention_bytes),
            ConfigKey::SegmentBytes => TypedValue::Integer(self.segment_bytes),
            ConfigKey::SegmentMs => TypedValue::Integer(self.segment_ms),
            ConfigKey::Flush => TypedValue::Flush(self.flush),
            ConfigKey::CleanupPolicy => TypedValue::Cleanup(self.cleanup_policy),
            ConfigKey::MessageMaxBytes => TypedValue::Integer(i64::from(self.message_max_bytes)),
            ConfigKey::UncleanLeaderElectionEnable => {
                TypedValue::Bool(UNCLEAN_LEADER_ELECTION_ENABLE_DEFAULT)
            }
            ConfigKey::DeliveryDelayEnabled => TypedValue::Bool(false),
            ConfigKey::DeliveryDelayMaxMs => TypedValue::Integer(DELIVERY_DELAY_MAX_MS_DEFAULT),
            ConfigKey::MinInsyncReplicas => {
                TypedValue::MinInsync(MinInsyncReplicas::ByReplicationFactor)
            }
            ConfigKey::DeleteRetentionMs => TypedValue::Integer(self.delete_retention_ms),
            ConfigKey::MinCleanableDirtyRatio => TypedValue::Ratio(self.min_cleanable_dirty_ratio),
        }
    }
}

/// Where an effective config value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigValueSource {
    /// Strata's built-in default.
    Default,
    /// The broker's configuration, where it differs from the built-in default.
    Broker,
    /// An override set on the topic.
    Topic,
}

/// One effective value and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigValue<T> {
    pub value: T,
    pub source: ConfigValueSource,
}

/// Every setting of a topic after defaults are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveTopicConfig {
    pub retention_ms: ConfigValue<i64>,
    pub retention_bytes: ConfigValue<i64>,
    pub segment_bytes: ConfigValue<i64>,
    pub segment_ms: ConfigValue<i64>,
    pub flush: ConfigValue<FlushPolicy>,
    pub cleanup_policy: ConfigValue<CleanupPolicy>,
    pub message_max_bytes: ConfigValue<i32>,
    pub unclean_leader_election_enable: ConfigValue<bool>,
    pub min_insync_replicas: ConfigValue<MinInsyncReplicas>,
    pub delete_retention_ms: ConfigValue<i64>,
    pub min_cleanable_dirty_ratio: ConfigValue<DirtyRatio>,
    /// Read by clients only (`Record::deliver_at`); see the module docs.
    pub delivery_delay_enabled: ConfigValue<bool>,
    pub delivery_delay_max_ms: ConfigValue<i64>,
    /// The topic's labels (`topic_labels.rs`): stored and shown, never applied.
    pub labels: BTreeMap<String, String>,
}

/// Topic config validation and resolution; see the module docs.
#[derive(Debug)]
pub struct TopicConfig;

impl TopicConfig {
    /// Checks raw overrides (Strata or Kafka names) against the rules of a broker with
    /// `defaults` and returns them under Strata names with canonical values. Two spellings
    /// of one key in the same request are refused.
    pub fn normalize(
        raw: &BTreeMap<String, String>,
        defaults: &BrokerDefaults,
    ) -> Result<BTreeMap<String, String>, ControllerError> {
        let mut normalized = BTreeMap::new();
        for (key, value) in raw {
            if topic_labels::is_label(key) {
                topic_labels::check_label(key, value)?;
                normalized.insert(key.clone(), value.clone());
                continue;
            }
            let known = ConfigKey::parse(key).map_err(|_| ControllerError::InvalidConfig {
                key: key.clone(),
                value: value.clone(),
                reason: "unknown topic config key".into(),
            })?;
            let canonical = known.parse_value(value, defaults)?.to_string();
            if normalized
                .insert(known.name().to_owned(), canonical)
                .is_some()
            {
                return Err(ControllerError::InvalidConfig {
                    key: key.clone(),
                    value: value.clone(),
                    reason: format!("{} is given twice (under two names)", known.name()),
                });
            }
        }
        Ok(normalized)
    }

    /// The stored overrides this broker does not apply, each as the error that would
    /// refuse it today: damaged values, and values written before a rule existed (a
    /// `message_max_bytes` above the broker's).
    pub fn ignored_overrides(
        overrides: &BTreeMap<String, String>,
        defaults: &BrokerDefaults,
    ) -> Vec<ControllerError> {
        overrides
            .iter()
            .filter_map(|(key, value)| {
                let known = ConfigKey::parse(key).ok()?;
                known.parse_value(value, defaults).err()
            })
            .collect()
    }

    /// The effective settings of a topic with `overrides` (as stored: Strata names). A
    /// stored override that this broker does not accept ([`TopicConfig::ignored_overrides`])
    /// is replaced by the broker's value rather than making the topic unusable.
    pub fn effective(
        overrides: &BTreeMap<String, String>,
        defaults: &BrokerDefaults,
    ) -> EffectiveTopicConfig {
        let resolve = |key| resolve(key, overrides, defaults);
        EffectiveTopicConfig {
            retention_ms: resolve(ConfigKey::RetentionMs).map(TypedValue::integer),
            retention_bytes: resolve(ConfigKey::RetentionBytes).map(TypedValue::integer),
            segment_bytes: resolve(ConfigKey::SegmentBytes).map(TypedValue::integer),
            segment_ms: resolve(ConfigKey::SegmentMs).map(TypedValue::integer),
            flush: resolve(ConfigKey::Flush).map(|value| match value {
                TypedValue::Flush(flush) => flush,
                _ => defaults.flush,
            }),
            cleanup_policy: resolve(ConfigKey::CleanupPolicy).map(|value| match value {
                TypedValue::Cleanup(policy) => policy,
                _ => defaults.cleanup_policy,
            }),
            message_max_bytes: resolve(ConfigKey::MessageMaxBytes)
                .map(|value| i32::try_from(value.integer()).unwrap_or(i32::MAX)),
            unclean_leader_election_enable: resolve(ConfigKey::UncleanLeaderElectionEnable).map(
                |value| match value {
                    TypedValue::Bool(flag) => flag,
                    _ => UNCLEAN_LEADER_ELECTION_ENABLE_DEFAULT,
                },
            ),
            min_insync_replicas: resolve(ConfigKey::MinInsyncReplicas).map(|value| match value {
                TypedValue::MinInsync(replicas) => replicas,
                _ => MinInsyncReplicas::ByReplicationFactor,
            }),
            delete_retention_ms: resolve(ConfigKey::DeleteRetentionMs).map(TypedValue::integer),
            min_cleanable_dirty_ratio: resolve(ConfigKey::MinCleanableDirtyRatio).map(|value| {
                match value {
                    TypedValue::Ratio(ratio) => ratio,
                    _ => defaults.min_cleanable_dirty_ratio,
                }
            }),
            delivery_delay_enabled: resolve(ConfigKey::DeliveryDelayEnabled)
                .map(|value| matches!(value, TypedValue::Bool(true))),
            delivery_delay_max_ms: resolve(ConfigKey::DeliveryDelayMaxMs).map(TypedValue::integer),
            labels: overrides
                .iter()
                .filter(|(key, _)| topic_labels::is_label(key))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        }
    }

    /// Refuses a `min_insync_replicas` in `overrides` (as [`TopicConfig::normalize`]
    /// returns them) above `replication_factor`, the smallest replication factor of the
    /// topic's partitions: no ISR could ever be that large, so every `acks=all` write
    /// would be refused.
    pub fn check_replication_factor(
        overrides: &BTreeMap<String, String>,
        replication_factor: usize,
    ) -> Result<(), ControllerError> {
        let key = ConfigKey::MinInsyncReplicas.name();
        let Some(value) = overrides.get(key) else {
            return Ok(());
        };
        let fits = value
            .parse::<usize>()
            .is_ok_and(|replicas| replicas <= replication_factor);
        if !fits {
            return Err(ControllerError::InvalidConfig {
                key: key.to_owned(),
                value: value.clone(),
                reason: format!(
                    "above the topic's replication factor ({replication_factor}): no ISR \
                     could reach it, so every acks=all write would be refused"
                ),
            });
        }
        Ok(())
    }
}

/// The override of `key` if there is a valid one, else the broker's value.
fn resolve(
    key: ConfigKey,
    overrides: &BTreeMap<String, String>,
    defaults: &BrokerDefaults,
) -> ConfigValue<TypedValue> {
    if let Some(raw) = overrides.get(key.name()) {
        match key.parse_value(raw, defaults) {
            Ok(value) => {
                return ConfigValue {
                    value,
                    source: ConfigValueSource::Topic,
                }
            }
            // Warned about once per topic when the controller opens.
            Err(error) => tracing::debug!(%error, "ignoring a stored topic config"),
        }
    }
    let value = defaults.value(key);
    let source = if value == BrokerDefaults::default().value(key) {
        ConfigValueSource::Default
    } else {
        ConfigValueSource::Broker
    };
    ConfigValue { value, source }
}

impl<T> ConfigValue<T> {
    fn map<U>(self, convert: impl FnOnce(T) -> U) -> ConfigValue<U> {
        ConfigValue {
            value: convert(self.value),
            source: self.source,
        }
    }
}

impl EffectiveTopicConfig {
    /// Every setting as `(Strata key, value as text, source)`, in [`ConfigKey::ALL`]
    /// order, for describe-configs. `replication_factor` (the topic's) turns a default
    /// `min_insync_replicas` into its number.
    pub fn entries(&self, replication_factor: usize) -> Vec<(String, String, ConfigValueSource)> {
        fn entry<T: fmt::Display>(
            key: ConfigKey,
            value: &ConfigValue<T>,
        ) -> (String, String, ConfigValueSource) {
            (key.name().to_owned(), value.value.to_string(), value.source)
        }
        let mut entries = vec![
            entry(ConfigKey::RetentionMs, &self.retention_ms),
            entry(ConfigKey::RetentionBytes, &self.retention_bytes),
            entry(ConfigKey::SegmentBytes, &self.segment_bytes),
            entry(ConfigKey::SegmentMs, &self.segment_ms),
            entry(ConfigKey::Flush, &self.flush),
            entry(ConfigKey::CleanupPolicy, &self.cleanup_policy),
            entry(ConfigKey::MessageMaxBytes, &self.message_max_bytes),
            entry(
                ConfigKey::UncleanLeaderElectionEnable,
                &self.unclean_leader_election_enable,
            ),
            entry(
                ConfigKey::MinInsyncReplicas,
                &self
                    .min_insync_replicas
                    .map(|replicas| replicas.for_replication_factor(replication_factor)),
            ),
            entry(ConfigKey::DeleteRetentionMs, &self.delete_retention_ms),
            entry(
                ConfigKey::MinCleanableDirtyRatio,
                &self.min_cleanable_dirty_ratio,
            ),
            entry(
                ConfigKey::DeliveryDelayEnabled,
                &self.delivery_delay_enabled,
            ),
            entry(ConfigKey::DeliveryDelayMaxMs, &self.delivery_delay_max_ms),
        ];
        for key in topic_labels::LABEL_KEYS {
            if let Some(value) = self.labels.get(key) {
                entries.push((key.to_owned(), value.clone(), ConfigValueSource::Topic));
            }
        }
        entries
    }

    /// The partition-log settings of this topic: `base` (the broker's log config) with the
    /// topic's segment, retention, flush and cleanup settings. `-1` retention becomes
    /// `None`.
    pub fn to_log_config(&self, base: &LogConfig) -> LogConfig {
        let limit = |value: i64| u64::try_from(value).ok();
        LogConfig {
            segment_bytes: limit(self.segment_bytes.value).unwrap_or(base.segment_bytes),
            segment_ms: limit(self.segment_ms.value),
            retention_ms: limit(self.retention_ms.value),
            retention_bytes: limit(self.retention_bytes.value),
            flush: self.flush.value,
            cleanup_policy: self.cleanup_policy.value,
            delete_retention_ms: limit(self.delete_retention_ms.value)
                .unwrap_or(base.delete_retention_ms),
            min_cleanable_dirty_ratio: self.min_cleanable_dirty_ratio.value,
            ..base.clone()
        }
    }
}

#[cfg(test)]
#[path = "topic_config_tests.rs"]
mod tests;
