//! The metadata state machine: [`apply`] one [`MetadataRecord`] to a [`MetadataImage`].
//!
//! This is the part that a replicated log (openraft, later) drives unchanged: it is pure
//! and deterministic — no clock, no randomness, no I/O, no knowledge of which broker runs
//! it — so every replica that applies the same records at the same offsets holds the same
//! image.
//!
//! Contract: `apply` either applies the whole record and sets `version = offset + 1`, or
//! returns [`ControllerError::InvalidRecord`] and leaves the image untouched. It checks
//! that the record fits the state (the invariants listed in `image.rs`), not policy:
//! naming rules for user topics, partition limits and config values are the controller's
//! business before it writes a record, so a policy change never makes an old log
//! unreplayable. Offsets must not go backwards; gaps are allowed because a Raft log also
//! holds entries that are not metadata records (blank and membership entries).

use std::collections::BTreeSet;

use strata_proto::types::{BrokerId, TopicName};

use super::error::ControllerError;
use super::image::{BrokerInfo, MetadataImage, PartitionImage, TopicImage};
use super::metadata_record::MetadataRecord;

/// Length of a topic id in hex digits (a 128-bit id, like Kafka's topic UUIDs).
pub const TOPIC_ID_HEX_DIGITS: usize = 32;

/// Applies `record`, stored at `offset` in the metadata log, to `image`. See the module docs.
pub fn apply(
    image: &mut MetadataImage,
    record: &MetadataRecord,
    offset: i64,
) -> Result<(), ControllerError> {
    if offset < image.version {
        return Err(ControllerError::invalid_record(format!(
            "{} at offset {offset} is below the image version {}",
            record.kind(),
            image.version
        )));
    }
    let version = offset.checked_add(1).ok_or_else(|| {
        ControllerError::invalid_record(format!("offset {offset} leaves no next version"))
    })?;
    apply_change(image, record).map_err(|reason| {
        ControllerError::invalid_record(format!("{} at offset {offset}: {reason}", record.kind()))
    })?;
    image.version = version;
    Ok(())
}

/// Checks first, then mutates, so an error leaves `image` as it was.
fn apply_change(image: &mut MetadataImage, record: &MetadataRecord) -> Result<(), String> {
    match record {
        MetadataRecord::SetClusterId { cluster_id } => set_cluster_id(image, cluster_id),
        MetadataRecord::RegisterBroker {
            broker_id,
            address,
            rack,
            incarnation,
            external_address,
        } => register_broker(
            image,
            BrokerInfo {
                id: BrokerId(*broker_id),
                address: address.clone(),
                rack: rack.clone(),
                incarnation: *incarnation,
                fenced: false,
                external_address: external_address.clone(),
            },
        ),
        MetadataRecord::CreateTopic {
            topic_id,
            name,
            configs,
        } => {
            check_topic_id(topic_id)?;
            TopicName::new(name).map_err(|error| error.to_string())?;
            if image.topics.contains_key(name) {
                return Err(format!("topic {name:?} already exists"));
            }
            if image.topic_by_id(topic_id).is_some() {
                return Err(format!("topic id {topic_id} is already in use"));
            }
            let topic = TopicImage {
                id: topic_id.clone(),
                name: name.clone(),
                configs: configs.clone(),
                partitions: Default::default(),
            };
            image.topics.insert(name.clone(), topic);
            Ok(())
        }
        MetadataRecord::CreatePartition {
            topic_id,
            partition,
            replicas,
            leader,
            leader_epoch,
            isr,
        } => {
            let leader = (*leader != -1).then_some(BrokerId(*leader));
            let next = PartitionImage {
                replicas: broker_ids(replicas),
                leader,
                leader_epoch: *leader_epoch,
                isr: broker_ids(isr),
                partition_epoch: 0,
            };
            create_partition(image, topic_id, *partition, next)
        }
        MetadataRecord::ChangePartition {
            topic_id,
            partition,
            leader,
            leader_epoch,
            isr,
            partition_epoch,
            replicas,
        } => {
            let change = PartitionChange {
                replicas: replicas.as_deref().map(broker_ids),
                leader: leader.map(BrokerId),
                leader_epoch: *leader_epoch,
                isr: broker_ids(isr),
                partition_epoch: *partition_epoch,
            };
            change_partition(image, topic_id, *partition, change)
        }
        MetadataRecord::FenceBroker {
            broker_id,
            incarnation,
        } => set_fenced(image, *broker_id, *incarnation, true),
        MetadataRecord::UnfenceBroker {
            broker_id,
            incarnation,
        } => set_fenced(image, *broker_id, *incarnation, false),
        MetadataRecord::AllocateProducerIds { first_id, count } => {
            if *first_id != image.next_producer_id {
                return Err(format!(
                    "block starts at {first_id}, but the next free producer id is {}",
                    image.next_producer_id
                ));
            }
            if *count <= 0 {
                return Err(format!("block size {count} is not positive"));
            }
            image.next_producer_id = first_id
                .checked_add(*count)
                .ok_or_else(|| format!("block [{first_id}, +{count}) overflows i64"))?;
            Ok(())
        }
        MetadataRecord::AlterConfig {
            topic_id,
            set,
            delete,
        } => {
            let topic = topic_by_id_mut(image, topic_id)?;
            if let Some(key) = delete.iter().find(|key| set.contains_key(*key)) {
                return Err(format!("config {key} is both set and deleted"));
            }
            for key in delete {
                topic.configs.remove(key);
            }
            topic
                .configs
                .extend(set.iter().map(|(key, value)| (key.clone(), value.clone())));
            Ok(())
        }
        MetadataRecord::DeleteTopic { topic_id } => {
            let name = topic_by_id_mut(image, topic_id)?.name.clone();
            image.topics.remove(&name);
            Ok(())
        }
    }
}

fn broker_ids(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().copied().map(BrokerId).collect()
}

fn set_cluster_id(image: &mut MetadataImage, cluster_id: &str) -> Result<(), String> {
    if cluster_id.is_empty() {
        return Err("the cluster id is empty".into());
    }
    match &image.cluster_id {
        Some(existing) if existing != cluster_id => Err(format!(
            "the cluster id is already {existing:?}; it never changes"
        )),
        _ => {
            image.cluster_id = Some(cluster_id.to_owned());
            Ok(())
        }
    }
}

fn register_broker(image: &mut MetadataImage, info: BrokerInfo) -> Result<(), String> {
    let broker_id = info.id.0;
    if broker_id < 0 {
        return Err(format!("broker id {broker_id} is negative"));
    }
    if info.address.is_empty() || info.external_address.as_deref() == Some("") {
        return Err(format!("broker {broker_id} has an empty address"));
    }
    if let Some(existing) = image.brokers.get(&info.id) {
        if info.incarnation <= existing.incarnation {
            return Err(format!(
                "broker {broker_id} incarnation {} does not follow {}",
                info.incarnation, existing.incarnation
            ));
        }
    }
    image.brokers.insert(info.id, info);
    Ok(())
}

/// Fences or unfences a registered broker at its current incarnation. Fencing a fenced
/// broker (or unfencing an unfenced one) is allowed and changes nothing.
fn set_fenced(
    image: &mut MetadataImage,
    broker_id: i32,
    incarnation: u64,
    fenced: bool,
) -> Result<(), String> {
    let broker = image
        .brokers
        .get_mut(&BrokerId(broker_id))
        .ok_or_else(|| format!("broker {broker_id} is not registered"))?;
    if broker.incarnation != incarnation {
        return Err(format!(
            "broker {broker_id} incarnation {incarnation} is not the registered one, {}",
            broker.incarnation
        ));
    }
    broker.fenced = fenced;
    Ok(())
}

fn check_topic_id(topic_id: &str) -> Result<(), String> {
    let well_formed = topic_id.len() == TOPIC_ID_HEX_DIGITS
        && topic_id
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
    if !well_formed {
        return Err(format!(
            "topic id {topic_id:?} is not {TOPIC_ID_HEX_DIGITS} lowercase hex digits"
        ));
    }
    if topic_id.bytes().all(|byte| byte == b'0') {
        return Err("the all-zero topic id is reserved".into());
    }
    Ok(())
}

fn topic_by_id_mut<'a>(
    image: &'a mut MetadataImage,
    topic_id: &str,
) -> Result<&'a mut TopicImage, String> {
    image
        .topics
        .values_mut()
        .find(|topic| topic.id == topic_id)
        .ok_or_else(|| format!("no topic has id {topic_id}"))
}

fn create_partition(
    image: &mut MetadataImage,
    topic_id: &str,
    partition: i32,
    next: PartitionImage,
) -> Result<(), String> {
    check_replicas(image, &next.replicas)?;
    check_leadership(&next.replicas, next.leader, &next.isr)?;
    if next.leader_epoch < 0 {
        return Err(format!("leader epoch {} is negative", next.leader_epoch));
    }
    let topic = topic_by_id_mut(image, topic_id)?;
    if partition != topic.partition_count() {
        return Err(format!(
            "topic {} has {} partitions; the next one is {}, not {partition}",
            topic.name,
            topic.partition_count(),
            topic.partition_count()
        ));
    }
    topic.partitions.insert(partition, next);
    Ok(())
}

/// The new state carried by a `ChangePartition` record.
struct PartitionChange {
    /// `None`: the replica list stays.
    replicas: Option<Vec<BrokerId>>,
    leader: Option<BrokerId>,
    leader_epoch: i32,
    isr: Vec<BrokerId>,
    partition_epoch: i32,
}

fn change_partition(
    image: &mut MetadataImage,
    topic_id: &str,
    partition: i32,
    change: PartitionChange,
) -> Result<(), String> {
    if let Some(replicas) = &change.replicas {
        check_replicas(image, replicas)?;
    }
    let topic = topic_by_id_mut(image, topic_id)?;
    let name = topic.name.clone();
    let current = topic
        .partitions
        .get_mut(&partition)
        .ok_or_else(|| format!("topic {name} has no partition {partition}"))?;
    let replicas = change.replicas.as_ref().unwrap_or(&current.replicas);
    check_leadership(replicas, change.leader, &change.isr)?;
    if change.partition_epoch <= current.partition_epoch {
        return Err(format!(
            "partition epoch {} does not follow {}",
            change.partition_epoch, current.partition_epoch
        ));
    }
    let leader_changed = change.leader != current.leader;
    let epoch_ok = if leader_changed {
        change.leader_epoch > current.leader_epoch
    } else {
        change.leader_epoch >= current.leader_epoch
    };
    if !epoch_ok {
        return Err(format!(
            "leader epoch {} after {} (leader changed: {leader_changed})",
            change.leader_epoch, current.leader_epoch
        ));
    }
    if let Some(replicas) = change.replicas {
        current.replicas = replicas;
    }
    current.leader = change.leader;
    current.leader_epoch = change.leader_epoch;
    current.isr = change.isr;
    current.partition_epoch = change.partition_epoch;
    Ok(())
}

/// Replicas: at least one, no broker twice, every one registered.
fn check_replicas(image: &MetadataImage, replicas: &[BrokerId]) -> Result<(), String> {
    if replicas.is_empty() {
        return Err("a partition needs at least one replica".into());
    }
    let distinct: BTreeSet<_> = replicas.iter().collect();
    if distinct.len() != replicas.len() {
        return Err(format!("replicas {replicas:?} name a broker twice"));
    }
    if let Some(unknown) = replicas.iter().find(|id| !image.brokers.contains_key(id)) {
        return Err(format!("replica {unknown} is not a registered broker"));
    }
    Ok(())
}

/// The ISR is a duplicate-free subset of the replicas; the leader, if any, is in the ISR.
fn check_leadership(
    replicas: &[BrokerId],
    leader: Option<BrokerId>,
    isr: &[BrokerId],
) -> Result<(), String> {
    let distinct: BTreeSet<_> = isr.iter().collect();
    if distinct.len() != isr.len() {
        return Err(format!("ISR {isr:?} names a broker twice"));
    }
    if let Some(outsider) = isr.iter().find(|id| !replicas.contains(id)) {
        return Err(format!("ISR member {outsider} is not a replica"));
    }
    match leader {
        Some(leader) if !isr.contains(&leader) => {
            Err(format!("leader {leader} is not in the ISR {isr:?}"))
        }
        _ => Ok(()),
    }
}
