//! The controller's policy for new topics and partition counts (hostile inputs 24–25 of
//! `docs/RELIABILITY.md`).
//!
//! On top of the name rules of [`TopicName`] (`[a-zA-Z0-9._-]{1,249}`, not `.` or `..`):
//! - the `__` prefix is reserved for internal topics, which only the broker creates;
//! - `__cluster_metadata` is the metadata log itself and is never a topic;
//! - a name that equals an existing topic's after mapping `.` to `_` is refused (Kafka's
//!   rule: metric names cannot tell `a.b` from `a_b`).
//!
//! Partition counts are `1..=`[`PARTITIONS_MAX`]; a replication factor is `1..=` the
//! number of live (registered, unfenced) brokers; and no broker may end up hosting more partition replicas
//! than [`PartitionLimits::per_broker_max`], which the broker derives from the descriptors
//! and memory maps it may hold (`node/descriptors.rs`). These are policy, checked before a
//! record is written; the state machine does not re-check them on replay.

use std::collections::BTreeMap;

use strata_proto::types::{BrokerId, TopicName};

use super::error::ControllerError;
use super::image::MetadataImage;

/// The largest partition count a topic may have.
pub const PARTITIONS_MAX: i32 = 10_000;
/// Names starting with this are internal topics.
pub const INTERNAL_TOPIC_PREFIX: &str = "__";
/// The metadata log's topic name (its one partition lives in `__cluster_metadata-0/`).
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// How many partition replicas one broker may host, and why: what a creation that would
/// go past it is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLimits {
    pub per_broker_max: usize,
    /// Which limit sets `per_broker_max` and how an operator raises it (a sentence).
    pub per_broker_reason: String,
}

impl Default for PartitionLimits {
    /// No limit per broker (a controller that does not know its brokers' budgets).
    fn default() -> PartitionLimits {
        PartitionLimits {
            per_broker_max: usize::MAX,
            per_broker_reason: String::new(),
        }
    }
}

/// Who asks for a topic: users may not use the internal prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicOrigin {
    User,
    Internal,
}

/// Checks that `name` may be created next to the topics of `image`.
pub fn validate_new_topic_name(
    image: &MetadataImage,
    name: &str,
    origin: TopicOrigin,
) -> Result<TopicName, ControllerError> {
    let invalid = |reason: String| ControllerError::InvalidTopic {
        name: name.to_owned(),
        reason,
    };
    let topic = TopicName::new(name).map_err(|error| invalid(error.to_string()))?;
    if name == METADATA_TOPIC {
        return Err(invalid("the name of the metadata log is reserved".into()));
    }
    if origin == TopicOrigin::User && name.starts_with(INTERNAL_TOPIC_PREFIX) {
        return Err(invalid(format!(
            "the {INTERNAL_TOPIC_PREFIX:?} prefix is reserved for internal topics"
        )));
    }
    if image.topics.contains_key(name) {
        return Err(ControllerError::TopicAlreadyExists {
            name: name.to_owned(),
        });
    }
    let collision = collision_form(name);
    if let Some(existing) = image
        .topics
        .keys()
        .find(|existing| collision_form(existing) == collision)
    {
        return Err(invalid(format!(
            "collides with existing topic {existing:?} ('.' and '_' are interchangeable in metric names)"
        )));
    }
    Ok(topic)
}

fn collision_form(name: &str) -> String {
    name.replace('.', "_")
}

/// A partition count for a new topic or after adding partitions.
pub fn validate_partition_count(count: i32) -> Result<(), ControllerError> {
    if (1..=PARTITIONS_MAX).contains(&count) {
        Ok(())
    } else {
        Err(ControllerError::InvalidPartitions {
            reason: format!("{count} partitions requested; a topic has 1 to {PARTITIONS_MAX}"),
        })
    }
}

/// Checks that the brokers can host `added` new partitions (one list of replicas each)
/// next to the partitions of `image`: no broker may end up with more than
/// `limits.per_broker_max`. The error names the broker, the counts and the limit's reason.
pub fn validate_broker_partitions(
    image: &MetadataImage,
    added: &[Vec<BrokerId>],
    limits: &PartitionLimits,
) -> Result<(), ControllerError> {
    let mut adding: BTreeMap<BrokerId, usize> = BTreeMap::new();
    for broker in added.iter().flatten() {
        *adding.entry(*broker).or_default() += 1;
    }
    for (broker, new) in adding {
        let hosted = image
            .topics
            .values()
            .flat_map(|topic| topic.partitions.values())
            .filter(|partition| partition.replicas.contains(&broker))
            .count();
        if hosted.saturating_add(new) > limits.per_broker_max {
            return Err(ControllerError::InvalidPartitions {
                reason: format!(
                    "broker {broker} hosts {hosted} partitions and would host {} with these \
                     {new}, above its limit of {} partitions per broker: {}",
                    hosted + new,
                    limits.per_broker_max,
                    limits.per_broker_reason
                ),
            });
        }
    }
    Ok(())
}

/// A replication factor, against the number of live (registered, unfenced) brokers: new
/// replicas are placed only on those.
pub fn validate_replication_factor(
    replication_factor: i32,
    live_brokers: usize,
) -> Result<(), ControllerError> {
    let reason = match usize::try_from(replication_factor) {
        Ok(rf) if rf >= 1 && rf <= live_brokers => return Ok(()),
        Ok(rf) if rf >= 1 => {
            format!("replication factor {rf} is larger than the {live_brokers} live brokers")
        }
        _ => format!("replication factor {replication_factor} is below 1"),
    };
    Err(ControllerError::InvalidReplicationFactor { reason })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeMap;

    use super::*;
    use crate::controller::image::TopicImage;

    fn image_with(names: &[&str]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for (index, name) in names.iter().enumerate() {
            let topic = TopicImage {
                id: format!("{:032x}", index + 1),
                name: name.to_string(),
                configs: BTreeMap::new(),
                partitions: BTreeMap::new(),
            };
            image.topics.insert(name.to_string(), topic);
        }
        image
    }

    fn is_invalid_topic(result: Result<TopicName, ControllerError>) -> bool {
        matches!(result, Err(ControllerError::InvalidTopic { .. }))
    }

    #[test]
    fn hostile_names_are_invalid_topic() {
        let image = image_with(&["a_b"]);
        let long = "x".repeat(250);
        for name in [
            "", ".", "..", &long, "../x", "a/b", "a\0b", "tópico", "оrders", "__x", "a.b",
        ] {
            assert!(
                is_invalid_topic(validate_new_topic_name(&image, name, TopicOrigin::User)),
                "{name:?}"
            );
        }
        assert!(validate_new_topic_name(&image, &"x".repeat(249), TopicOrigin::User).is_ok());
    }

    #[test]
    fn internal_prefix_is_for_internal_topics_but_the_metadata_name_for_nobody() {
        let image = image_with(&[]);
        assert!(
            validate_new_topic_name(&image, "__consumer_offsets", TopicOrigin::Internal).is_ok()
        );
        assert!(is_invalid_topic(validate_new_topic_name(
            &image,
            METADATA_TOPIC,
            TopicOrigin::Internal
        )));
    }

    #[test]
    fn existing_name_is_already_exists_and_collision_is_invalid() {
        let image = image_with(&["orders", "a.b"]);
        assert!(matches!(
            validate_new_topic_name(&image, "orders", TopicOrigin::User),
            Err(ControllerError::TopicAlreadyExists { .. })
        ));
        assert!(is_invalid_topic(validate_new_topic_name(
            &image,
            "a_b",
            TopicOrigin::User
        )));
    }

    #[test]
    fn a_broker_cannot_be_given_more_partitions_than_its_limit() {
        let mut image = image_with(&["existing"]);
        let replicas = vec![BrokerId(1), BrokerId(2)];
        if let Some(topic) = image.topics.get_mut("existing") {
            for partition in 0..3 {
                topic.partitions.insert(
                    partition,
                    crate::controller::image::PartitionImage {
                        replicas: replicas.clone(),
                        leader: Some(BrokerId(1)),
                        leader_epoch: 0,
                        isr: replicas.clone(),
                        partition_epoch: 0,
                    },
                );
            }
        }
        let limits = PartitionLimits {
            per_broker_max: 5,
            per_broker_reason: "its open-files limit allows 5".into(),
        };
        let two = vec![vec![BrokerId(1)], vec![BrokerId(1)]];
        assert!(validate_broker_partitions(&image, &two, &limits).is_ok());
        let three = vec![
            vec![BrokerId(2)],
            vec![BrokerId(3)],
            vec![BrokerId(2)],
            vec![BrokerId(2)],
        ];
        let error = validate_broker_partitions(&image, &three, &limits).unwrap_err();
        assert_eq!(error.code_name(), "INVALID_PARTITIONS");
        assert_eq!(
            error.to_string(),
            "invalid partition count: broker 2 hosts 3 partitions and would host 6 with these \
             3, above its limit of 5 partitions per broker: its open-files limit allows 5"
        );
        assert!(validate_broker_partitions(&image, &three, &PartitionLimits::default()).is_ok());
    }

    #[test]
    fn partition_and_replication_limits() {
        for bad in [0, -1, PARTITIONS_MAX + 1, 1_000_000, i32::MIN] {
            assert!(validate_partition_count(bad).is_err(), "{bad}");
        }
        assert!(validate_partition_count(1).is_ok());
        assert!(validate_partition_count(PARTITIONS_MAX).is_ok());
        for (rf, brokers) in [(0, 1), (-1, 3), (2, 1), (4, 3), (1, 0)] {
            assert!(
                validate_replication_factor(rf, brokers).is_err(),
                "{rf} on {brokers}"
            );
        }
        assert!(validate_replication_factor(3, 3).is_ok());
    }
}
