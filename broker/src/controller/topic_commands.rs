//! Topic operations as metadata records: checks a request against the current image and
//! returns the records that carry it out, or the typed error that refuses it.
//!
//! Pure functions of (image, request): the active controller (`quorum/active.rs`) supplies
//! the random parts (topic id, assignment start), applies the records to a copy of the
//! image, and writes them as one Raft entry. A refused request therefore writes nothing.

use std::collections::BTreeMap;

use strata_proto::types::BrokerId;

use super::assignment::{
    assign_replicas, balanced_start, walk_order, AssignmentRequest, PlacementBroker,
};
use super::error::ControllerError;
use super::image::{MetadataImage, TopicImage};
use super::metadata_record::MetadataRecord;
use super::topic_config::{BrokerDefaults, ConfigKey, TopicConfig};
use super::topic_validation::{
    validate_broker_partitions, validate_new_topic_name, validate_partition_count,
    validate_replication_factor, PartitionLimits, TopicOrigin,
};

/// A topic to create. `None` takes the broker default.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct NewTopic {
    pub name: String,
    pub partitions: Option<i32>,
    pub replication_factor: Option<i32>,
    /// Overrides, under Strata or Kafka names.
    pub configs: BTreeMap<String, String>,
}

/// One config override changed by `alter_configs`; `None` = not set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    let brokers = placement_brokers(image);
    validate_replication_factor(replication_factor, brokers.len())?;
    let configs = TopicConfig::normalize(&spec.configs, context.defaults)?;
    let replicas = usize::try_from(replication_factor).unwrap_or(0);
    TopicConfig::check_replication_factor(&configs, replicas)?;
    let request = AssignmentRequest {
        first_partition: 0,
        partition_count: partitions,
        replication_factor,
        start_index: balanced_start(&brokers, &replicas_held(image), context.assignment_start),
    };
    let assignment = assign_replicas(&brokers, &request)?;
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
    TopicConfig::check_replication_factor(&set, topic.replication_factor())?;
    let mut deleted = Vec::new();
    for raw_key in delete {
        let key = if super::topic_labels::is_label(raw_key) {
            raw_key.clone()
        } else {
            ConfigKey::parse(raw_key)?.name().to_owned()
        };
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
    if topic.is_internal() {
        // A group's partition of __consumer_offsets is a hash modulo the count: more
        // partitions would move every group away from its committed offsets.
        return Err(ControllerError::InvalidPartitions {
            reason: format!("{name} is an internal topic; its partition count is fixed"),
        });
    }
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
    let brokers = placement_brokers(image);
    validate_replication_factor(replication_factor, brokers.len())?;
    // Continue the topic's original walk so the whole topic stays balanced (exactly, while
    // the live brokers are the same as when it was created).
    let leader_of_first = first.and_then(|partition| partition.replicas.first());
    let start_index = leader_of_first
        .and_then(|leader| walk_order(&brokers).iter().position(|id| id == leader))
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

/// The brokers new replicas may go to: registered and not fenced, in id order. A fenced
/// broker is down or shutting down; a replica placed there could not lead or follow.
fn placement_brokers(image: &MetadataImage) -> Vec<PlacementBroker> {
    image
        .brokers
        .values()
        .filter(|broker| !broker.fenced)
        .map(|broker| PlacementBroker {
            id: broker.id,
            rack: broker.rack.clone(),
        })
        .collect()
}

/// How many partition replicas each broker holds now, for [`balanced_start`].
fn replicas_held(image: &MetadataImage) -> BTreeMap<BrokerId, usize> {
    let mut held = BTreeMap::new();
    let replicas = image
        .topics
        .values()
        .flat_map(|topic| topic.partitions.values())
        .flat_map(|partition| partition.replicas.iter());
    for broker in replicas {
        *held.entry(*broker).or_insert(0) += 1;
    }
    held
}

/// New partitions start with the first replica as leader at epoch 0 and an ISR of the
/// leader ALONE, not every replica: replication between brokers is not built yet, so a
/// follower holds none of the partition's records and must not count as in sync (it would
/// count toward `min.insync.replicas` and could be elected, losing every acknowledged
/// record). The replication issue adds followers to the ISR once they have caught up to
/// the high watermark, as Kafka does.
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
                isr: replicas.first().copied().into_iter().collect(),
                replicas,
            }
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::controller::state_machine::apply;

    /// Brokers 1..=`count`, the ones in `fenced` fenced.
    fn brokers(count: i32, fenced: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in 1..=count {
            let register = MetadataRecord::RegisterBroker {
                broker_id: id,
                address: format!("127.0.0.1:{}", 7000 + id),
                rack: None,
                incarnation: 1,
                external_address: None,
            };
            let offset = image.version;
            apply(&mut image, &register, offset).unwrap();
            if fenced.contains(&id) {
                let fence = MetadataRecord::FenceBroker {
                    broker_id: id,
                    incarnation: 1,
                };
                let offset = image.version;
                apply(&mut image, &fence, offset).unwrap();
            }
        }
        image
    }

    fn create(
        image: &mut MetadataImage,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        topic_id: &str,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        let spec = NewTopic {
            name: name.into(),
            partitions: Some(partitions),
            replication_factor: Some(replication_factor),
            configs: BTreeMap::new(),
        };
        let context = CreationContext {
            origin: TopicOrigin::User,
            defaults: &BrokerDefaults::default(),
            topic_id,
            assignment_start: 0,
            limits: &PartitionLimits::default(),
        };
        let records = create_topic(image, &spec, context)?;
        for record in &records {
            let offset = image.version;
            apply(image, record, offset).unwrap();
        }
        Ok(records)
    }

    #[test]
    fn internal_topics_keep_their_partition_count() {
        let mut image = brokers(1, &[]);
        let spec = NewTopic {
            name: "__consumer_offsets".into(),
            partitions: Some(2),
            replication_factor: Some(1),
            configs: BTreeMap::new(),
        };
        let context = CreationContext {
            origin: TopicOrigin::Internal,
            defaults: &BrokerDefaults::default(),
            topic_id: "00000000000000000000000000000001",
            assignment_start: 0,
            limits: &PartitionLimits::default(),
        };
        for record in create_topic(&image, &spec, context).unwrap() {
            let offset = image.version;
            apply(&mut image, &record, offset).unwrap();
        }
        let refused =
            create_partitions(&image, "__consumer_offsets", 3, &PartitionLimits::default())
                .unwrap_err();
        assert!(
            matches!(refused, ControllerError::InvalidPartitions { .. }),
            "{refused}"
        );
    }

    #[test]
    fn new_partitions_go_to_live_brokers_with_the_leader_alone_in_the_isr() {
        let mut image = brokers(3, &[2]);
        create(
            &mut image,
            "orders",
            4,
            2,
            "0123456789abcdef0123456789abcdef",
        )
        .unwrap();
        for partition in image.topic("orders").unwrap().partitions.values() {
            assert!(!partition.replicas.contains(&BrokerId(2)), "{partition:?}");
            assert_eq!(partition.replicas.len(), 2);
            assert_eq!(partition.leader, partition.replicas.first().copied());
            assert_eq!(partition.isr, [partition.replicas[0]]);
        }
        let grown = create_partitions(&image, "orders", 6, &PartitionLimits::default()).unwrap();
        for record in &grown {
            let MetadataRecord::CreatePartition { replicas, isr, .. } = record else {
                panic!("{record:?}");
            };
            assert!(!replicas.contains(&2));
            assert_eq!(isr, &replicas[..1]);
        }
    }

    #[test]
    fn a_replication_factor_above_the_live_brokers_names_both_numbers() {
        let mut image = brokers(4, &[4]);
        let error = create(
            &mut image,
            "orders",
            1,
            4,
            "0123456789abcdef0123456789abcdef",
        )
        .unwrap_err();
        assert_eq!(error.code_name(), "INVALID_REPLICATION_FACTOR");
        assert!(
            error
                .to_string()
                .contains("replication factor 4 is larger than the 3 live brokers"),
            "{error}"
        );
    }

    /// `min_insync_replicas` above the replication factor could never be met: refused on
    /// create and on alter with INVALID_CONFIG, writing nothing.
    #[test]
    fn min_insync_replicas_above_the_replication_factor_is_refused_on_create_and_alter() {
        let mut image = brokers(3, &[]);
        let defaults = BrokerDefaults::default();
        let min_insync =
            |value: &str| BTreeMap::from([("min.insync.replicas".into(), value.into())]);
        let context = CreationContext {
            origin: TopicOrigin::User,
            defaults: &defaults,
            topic_id: "0123456789abcdef0123456789abcdef",
            assignment_start: 0,
            limits: &PartitionLimits::default(),
        };
        let mut spec = NewTopic {
            name: "orders".into(),
            partitions: Some(2),
            replication_factor: Some(2),
            configs: min_insync("3"),
        };
        let error = create_topic(&image, &spec, context).unwrap_err();
        assert_eq!(error.code_name(), "INVALID_CONFIG", "{error}");
        assert!(
            error.to_string().contains("replication factor (2)"),
            "{error}"
        );
        spec.replication_factor = Some(3);
        for record in create_topic(&image, &spec, context).unwrap() {
            let offset = image.version;
            apply(&mut image, &record, offset).unwrap();
        }
        let stored = &image.topic("orders").unwrap().configs;
        assert_eq!(
            stored.get("min_insync_replicas").map(String::as_str),
            Some("3")
        );

        let error = alter_configs(&image, "orders", &min_insync("4"), &[], &defaults).unwrap_err();
        assert_eq!(error.code_name(), "INVALID_CONFIG", "{error}");
        let (changes, records) =
            alter_configs(&image, "orders", &min_insync("1"), &[], &defaults).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            changes,
            [ConfigChange {
                key: "min_insync_replicas".into(),
                old: Some("3".into()),
                new: Some("1".into()),
            }]
        );
    }

    #[test]
    fn a_new_topic_starts_on_the_least_loaded_broker() {
        let mut image = brokers(3, &[]);
        create(&mut image, "a", 1, 1, "0123456789abcdef0123456789abcdef").unwrap();
        create(&mut image, "b", 1, 1, "fedcba9876543210fedcba9876543210").unwrap();
        create(&mut image, "c", 1, 1, "00112233445566778899aabbccddeeff").unwrap();
        let leaders: Vec<i32> = ["a", "b", "c"]
            .iter()
            .map(|name| image.partition(name, 0).unwrap().replicas[0].0)
            .collect();
        assert_eq!(
            leaders,
            [1, 2, 3],
            "the same rotation each time, yet spread"
        );
    }
}
