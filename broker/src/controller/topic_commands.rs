//! Topic operations as metadata records: checks a request against the current image and
//! returns the records that carry it out, or the typed error that refuses it.
//!
//! Pure functions of (image, request): the controller (`controller.rs`) supplies the
//! random parts (topic id, assignment start), applies the records to a copy of the image,
//! appends them as one batch and publishes the result. A refused request therefore writes
//! nothing.

use std::collections::BTreeMap;

use strata_proto::types::BrokerId;

use super::assignment::{assign_replicas, AssignmentRequest, PlacementBroker};
use super::error::ControllerError;
use super::image::{MetadataImage, TopicImage};
use super::metadata_record::MetadataRecord;
use super::topic_config::{BrokerDefaults, ConfigKey, TopicConfig};
use super::topic_validation::{
    validate_broker_partitions, validate_new_topic_name, validate_partition_count,
    validate_replication_factor, PartitionLimits, TopicOrigin,
};

/// A topic to create. `None` takes the broker default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewTopic {
    pub name: String,
    pub partitions: Option<i32>,
    pub replication_factor: Option<i32>,
    /// Overrides, under Strata or Kafka names.
    pub configs: BTreeMap<String, String>,
}

/// One config override changed by `alter_configs`; `None` = not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChange {
    pub key: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// The parts of a topic creation the controller decides.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CreationContext<'a> {
    pub origin: TopicOrigin,
    pub defaults: &'a BrokerDefaults,
    pub topic_id: &'a str,
    pub assignment_start: usize,
    pub limits: &'a PartitionLimits,
}

pub(crate) fn create_topic(
    image: &MetadataImage,
    spec: &NewTopic,
    context: CreationContext<'_>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    validate_new_topic_name(image, &spec.name, context.origin)?;
    let partitions = spec
        .partitions
        .unwrap_or(context.defaults.default_partitions);
    validate_partition_count(partitions)?;
    let replication_factor = spec
        .replication_factor
        .unwrap_or(context.defaults.default_replication_factor);
    validate_replication_factor(replication_factor, image.brokers.len())?;
    let configs = TopicConfig::normalize(&spec.configs, context.defaults)?;
    let request = AssignmentRequest {
        first_partition: 0,
        partition_count: partitions,
        replication_factor,
        start_index: context.assignment_start,
    };
    let assignment = assign_replicas(&placement_brokers(image), &request)?;
    validate_broker_partitions(image, &assignment, context.limits)?;
    let mut records = vec![MetadataRecord::CreateTopic {
        topic_id: context.topic_id.to_owned(),
        name: spec.name.clone(),
        configs,
    }];
    records.extend(partition_records(context.topic_id, 0, assignment));
    Ok(records)
}

pub(crate) fn delete_topic(
    image: &MetadataImage,
    name: &str,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let topic = existing_topic(image, name)?;
    if topic.is_internal() {
        return Err(ControllerError::InvalidTopic {
            name: name.to_owned(),
            reason: "internal topics cannot be deleted".into(),
        });
    }
    Ok(vec![MetadataRecord::DeleteTopic {
        topic_id: topic.id.clone(),
    }])
}

/// Records and the list of changes; both empty when nothing would change. `set` is
/// checked against the rules of a broker with `defaults`.
pub(crate) fn alter_configs(
    image: &MetadataImage,
    name: &str,
    set: &BTreeMap<String, String>,
    delete: &[String],
    defaults: &BrokerDefaults,
) -> Result<(Vec<ConfigChange>, Vec<MetadataRecord>), ControllerError> {
    let topic = existing_topic(image, name)?;
    let set = TopicConfig::normalize(set, defaults)?;
    let mut deleted = Vec::new();
    for raw_key in delete {
        let key = ConfigKey::parse(raw_key)?.name().to_owned();
        if set.contains_key(&key) {
            return Err(ControllerError::InvalidConfig {
                key,
                value: String::new(),
                reason: "the key is both set and deleted".into(),
            });
        }
        if topic.configs.contains_key(&key) && !deleted.contains(&key) {
            deleted.push(key);
        }
    }
    let mut changes = Vec::new();
    let mut changed_set = BTreeMap::new();
    for (key, value) in set {
        let old = topic.configs.get(&key).cloned();
        if old.as_ref() != Some(&value) {
            changes.push(ConfigChange {
                key: key.clone(),
                old,
                new: Some(value.clone()),
            });
            changed_set.insert(key, value);
        }
    }
    for key in &deleted {
        changes.push(ConfigChange {
            key: key.clone(),
            old: topic.configs.get(key).cloned(),
            new: None,
        });
    }
    changes.sort_by(|a, b| a.key.cmp(&b.key));
    if changes.is_empty() {
        return Ok((changes, Vec::new()));
    }
    let record = MetadataRecord::AlterConfig {
        topic_id: topic.id.clone(),
        set: changed_set,
        delete: deleted,
    };
    Ok((changes, vec![record]))
}

pub(crate) fn create_partitions(
    image: &MetadataImage,
    name: &str,
    total_count: i32,
    limits: &PartitionLimits,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let topic = existing_topic(image, name)?;
    let current = topic.partition_count();
    if total_count <= current {
        let reason = if total_count == current {
            format!("topic {name} already has {current} partitions")
        } else {
            format!("topic {name} has {current} partitions; they can only be increased, not to {total_count}")
        };
        return Err(ControllerError::InvalidPartitions { reason });
    }
    validate_partition_count(total_count)?;
    let first = topic.partitions.get(&0);
    let replication_factor = first.map_or(1, |partition| partition.replicas.len());
    let replication_factor = i32::try_from(replication_factor).unwrap_or(i32::MAX);
    validate_replication_factor(replication_factor, image.brokers.len())?;
    // Continue the topic's original walk so the whole topic stays balanced.
    let brokers = placement_brokers(image);
    let leader_of_first = first.and_then(|partition| partition.replicas.first());
    let start_index = leader_of_first
        .and_then(|leader| brokers.iter().position(|broker| broker.id == *leader))
        .unwrap_or(0);
    let request = AssignmentRequest {
        first_partition: current,
        partition_count: total_count - current,
        replication_factor,
        start_index,
    };
    let assignment = assign_replicas(&brokers, &request)?;
    validate_broker_partitions(image, &assignment, limits)?;
    Ok(partition_records(&topic.id, current, assignment).collect())
}

fn existing_topic<'a>(
    image: &'a MetadataImage,
    name: &str,
) -> Result<&'a TopicImage, ControllerError> {
    image
        .topic(name)
        .ok_or_else(|| ControllerError::UnknownTopic {
            name: name.to_owned(),
        })
}

/// Registered brokers in id order (the image's `BTreeMap` order).
fn placement_brokers(image: &MetadataImage) -> Vec<PlacementBroker> {
    image
        .brokers
        .values()
        .map(|broker| PlacementBroker {
            id: broker.id,
            rack: broker.rack.clone(),
        })
        .collect()
}

/// New partitions start with the first replica as leader at epoch 0 and a full ISR.
fn partition_records<'a>(
    topic_id: &'a str,
    first_partition: i32,
    assignment: Vec<Vec<BrokerId>>,
) -> impl Iterator<Item = MetadataRecord> + 'a {
    (first_partition..)
        .zip(assignment)
        .map(move |(partition, replicas)| {
            let replicas: Vec<i32> = replicas.iter().map(|id| id.0).collect();
            MetadataRecord::CreatePartition {
                topic_id: topic_id.to_owned(),
                partition,
                leader: replicas.first().copied().unwrap_or(-1),
                leader_epoch: 0,
                isr: replicas.clone(),
                replicas,
            }
        })
}
