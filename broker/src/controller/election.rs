//! Leadership decisions: which broker leads each partition, and which brokers are in its
//! ISR, after a broker is fenced, comes back, restarts, shuts down, or an operator asks for
//! the preferred leaders or a new replica list.
//!
//! Pure functions of the [`MetadataImage`]: each returns the records to write as ONE
//! atomic batch (an empty `Vec` means there is nothing to do), and the active controller
//! writes them. Nothing here reads a clock or knows which broker runs it.
//!
//! Rules, Kafka's (KRaft's `PartitionChangeBuilder`):
//! - A leader is chosen from the ISR members that are registered and not fenced, in replica
//!   order (the first replica is the preferred leader). Only when no such member exists and
//!   the topic sets `unclean_leader_election_enable=true` may a live replica outside the
//!   ISR lead; the ISR then becomes that leader alone, since nobody else is known to hold
//!   what it holds.
//! - The leader epoch goes up by one whenever the leader changes (also to or from none);
//!   the partition epoch goes up by one on every `ChangePartition`.
//! - An ISR never becomes empty: when the last ISR member is fenced it stays in the ISR,
//!   with no leader, so that it can lead again when it returns (the last-known-leader
//!   rule). Electing anyone else would lose acknowledged records.
//! - One batch changes a partition at most once, so the partition epochs in it follow the
//!   image's.

use std::collections::BTreeSet;

use strata_proto::types::BrokerId;

use super::error::ControllerError;
use super::image::{MetadataImage, PartitionImage, TopicImage};
use super::metadata_record::MetadataRecord;
use super::topic_config::{BrokerDefaults, TopicConfig};

/// The result of a preferred-leader election for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionOutcome {
    pub topic: String,
    /// -1 for a `(topic, None)` selection naming an unknown topic.
    pub partition: i32,
    /// The leader and its leader epoch after the election, or why there was none.
    pub result: Result<(BrokerId, i32), ElectionRefusal>,
}

/// Why a preferred-leader election did not change a partition's leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionRefusal {
    UnknownTopicOrPartition,
    /// The preferred replica already leads.
    NotNeeded,
    /// The preferred replica is fenced, unregistered, or not in the ISR.
    PreferredNotAvailable,
}

/// One partition of a reassignment: its replicas before and after, and the leadership it
/// ends up with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassignmentOutcome {
    pub topic: String,
    pub partition: i32,
    pub current_replicas: Vec<BrokerId>,
    pub target_replicas: Vec<BrokerId>,
    pub leader: Option<BrokerId>,
    pub isr: Vec<BrokerId>,
}

/// Fences `broker`: a `FenceBroker` record, then for each partition whose ISR holds it a
/// new leader (if it led) from the other live ISR members, and an ISR without it (unless it
/// is the last member). Empty for an unknown or already fenced broker.
pub fn fence(image: &MetadataImage, broker: BrokerId) -> Vec<MetadataRecord> {
    let Some(info) = image.broker(broker).filter(|info| !info.fenced) else {
        return Vec::new();
    };
    let live = |id: BrokerId| id != broker && is_live(image, id);
    let mut records = vec![MetadataRecord::FenceBroker {
        broker_id: broker.0,
        incarnation: info.incarnation,
    }];
    for (topic, number, partition) in partitions(image) {
        if !partition.isr.contains(&broker) {
            continue;
        }
        let others: Vec<BrokerId> = without(&partition.isr, broker);
        let isr = if others.is_empty() {
            partition.isr.clone()
        } else {
            others
        };
        let (leader, isr) = match partition.leader {
            Some(leader) if leader != broker => (Some(leader), isr),
            _ => elect(topic, partition, &isr, live),
        };
        if leader != partition.leader || isr != partition.isr {
            records.push(change(topic, number, partition, leader, &isr, None));
        }
    }
    records
}

/// Unfences `broker` at `incarnation`: an `UnfenceBroker` record, then a leader for every
/// leaderless partition it is a replica of (itself, when it is in the ISR and first among
/// the live members). Empty when the broker is unknown, not fenced, or registered with
/// another incarnation (the state machine would refuse the record; the caller reports
/// the stale incarnation).
pub fn unfence(image: &MetadataImage, broker: BrokerId, incarnation: u64) -> Vec<MetadataRecord> {
    let registered = image.broker(broker);
    if !registered.is_some_and(|info| info.fenced && info.incarnation == incarnation) {
        return Vec::new();
    }
    let live = |id: BrokerId| id == broker || is_live(image, id);
    let mut records = vec![MetadataRecord::UnfenceBroker {
        broker_id: broker.0,
        incarnation,
    }];
    for (topic, number, partition) in partitions(image) {
        if partition.leader.is_some() || !partition.replicas.contains(&broker) {
            continue;
        }
        let (leader, isr) = elect(topic, partition, &partition.isr, live);
        if leader.is_some() {
            records.push(change(topic, number, partition, leader, &isr, None));
        }
    }
    records
}

/// A broker that registers again, as a new process (a restart that was not a controlled
/// shutdown; the lease of the old process may not even have lapsed), leaves the ISR of every
/// partition that has another live ISR member, and the first such member (in replica
/// order) takes over the partitions it led. The new process cannot vouch for what the old
/// one acknowledged: unflushed records can be lost in a crash, and a damaged segment is cut
/// back to its last good batch before the replica fetches again (KIP-903's rule that a
/// replica's new incarnation must earn its ISR place with its own fetches; KRaft fences a
/// re-registering broker for the same reason). It rejoins once the leader sees it caught up.
/// Where it is the only live ISR member nothing changes (the last-known-leader rule, as in
/// [`fence`]). Empty for a broker that is not registered.
pub fn restarted(image: &MetadataImage, broker: BrokerId) -> Vec<MetadataRecord> {
    if image.broker(broker).is_none() {
        return Vec::new();
    }
    let live = |id: BrokerId| id != broker && is_live(image, id);
    let mut records = Vec::new();
    for (topic, number, partition) in partitions(image) {
        if !partition.isr.contains(&broker) {
            continue;
        }
        let others = without(&partition.isr, broker);
        let Some(first_other) = first_live(&partition.replicas, &others, live) else {
            continue;
        };
        let leader = match partition.leader {
            Some(leader) if leader != broker => Some(leader),
            _ => Some(first_other),
        };
        records.push(change(topic, number, partition, leader, &others, None));
    }
    records
}

/// Moves the leadership of every partition `broker` leads to the first other live ISR
/// member (in replica order), and drops `broker` from those ISRs. A partition with no
/// other live ISR member stays with it. Empty when nothing can move, so the caller knows
/// the shutdown may proceed; it then fences the broker.
pub fn controlled_shutdown(image: &MetadataImage, broker: BrokerId) -> Vec<MetadataRecord> {
    let live = |id: BrokerId| id != broker && is_live(image, id);
    let mut records = Vec::new();
    for (topic, number, partition) in partitions(image) {
        if partition.leader != Some(broker) {
            continue;
        }
        let others = without(&partition.isr, broker);
        if let Some(leader) = first_live(&partition.replicas, &others, live) {
            records.push(change(
                topic,
                number,
                partition,
                Some(leader),
                &others,
                None,
            ));
        }
    }
    records
}

/// Makes the preferred replica (the first) the leader of each selected partition where it
/// is live and in the ISR. `selection` empty = every partition of every non-internal
/// topic; `(topic, None)` = all of the topic's partitions. A partition named twice is
/// decided (and reported) once.
pub fn elect_preferred(
    image: &MetadataImage,
    selection: &[(String, Option<Vec<i32>>)],
) -> (Vec<ElectionOutcome>, Vec<MetadataRecord>) {
    let mut outcomes = Vec::new();
    let mut records = Vec::new();
    let mut seen = BTreeSet::new();
    for (name, number) in selected(image, selection) {
        if !seen.insert((name.clone(), number)) {
            continue;
        }
        let found = image.topic(&name).and_then(|topic| {
            let partition = topic.partitions.get(&number)?;
            Some((topic, partition))
        });
        let result = match found {
            None => Err(ElectionRefusal::UnknownTopicOrPartition),
            Some((topic, partition)) => match partition.replicas.first().copied() {
                Some(preferred) if partition.leader == Some(preferred) => {
                    Err(ElectionRefusal::NotNeeded)
                }
                Some(preferred)
                    if partition.isr.contains(&preferred) && is_live(image, preferred) =>
                {
                    let isr = partition.isr.clone();
                    records.push(change(
                        topic,
                        number,
                        partition,
                        Some(preferred),
                        &isr,
                        None,
                    ));
                    Ok((preferred, partition.leader_epoch.saturating_add(1)))
                }
                _ => Err(ElectionRefusal::PreferredNotAvailable),
            },
        };
        outcomes.push(ElectionOutcome {
            topic: name,
            partition: number,
            result,
        });
    }
    (outcomes, records)
}

/// Gives each `(topic, partition, replicas)` its new replica list, all or nothing. The new
/// ISR is the old ISR members that stay: added replicas start outside it because they
/// hold no data yet (replication between brokers is not built), so a list that keeps no
/// ISR member is refused. The leader stays if it stays a replica, else the first live
/// member of the new ISR leads (none if no member is live). An unchanged list writes no
/// record. Dry runs call this too and do not write the records.
pub fn reassign(
    image: &MetadataImage,
    requests: &[(String, i32, Vec<i32>)],
) -> Result<(Vec<ReassignmentOutcome>, Vec<MetadataRecord>), ControllerError> {
    let mut outcomes = Vec::new();
    let mut records = Vec::new();
    let mut seen = BTreeSet::new();
    for (name, number, target) in requests {
        let unknown = || ControllerError::UnknownTopic {
            name: format!("{name}-{number}"),
        };
        let topic = image
            .topic(name)
            .ok_or_else(|| ControllerError::UnknownTopic { name: name.clone() })?;
        let partition = topic.partitions.get(number).ok_or_else(unknown)?;
        if !seen.insert((name.as_str(), *number)) {
            return Err(invalid_assignment(format!(
                "{name}-{number} is named twice in one reassignment"
            )));
        }
        let target = check_target(image, name, *number, target)?;
        let isr: Vec<BrokerId> = partition
            .isr
            .iter()
            .copied()
            .filter(|id| target.contains(id))
            .collect();
        if isr.is_empty() {
            return Err(invalid_assignment(format!(
                "replicas {} of {name}-{number} keep none of its in-sync replicas \
                 {}; the new replicas must catch up first, so keep at least one of them",
                id_list(&target),
                id_list(&partition.isr)
            )));
        }
        let leader = match partition.leader {
            Some(leader) if target.contains(&leader) => Some(leader),
            _ => first_live(&target, &isr, |id| is_live(image, id)),
        };
        if target != partition.replicas {
            records.push(change(
                topic,
                *number,
                partition,
                leader,
                &isr,
                Some(&target),
            ));
        }
        let unchanged = target == partition.replicas;
        outcomes.push(ReassignmentOutcome {
            topic: name.clone(),
            partition: *number,
            current_replicas: partition.replicas.clone(),
            leader: if unchanged { partition.leader } else { leader },
            isr: if unchanged {
                partition.isr.clone()
            } else {
                isr
            },
            target_replicas: target,
        });
    }
    Ok((outcomes, records))
}

/// A target replica list: not empty, no broker twice, every broker registered.
fn check_target(
    image: &MetadataImage,
    name: &str,
    number: i32,
    target: &[i32],
) -> Result<Vec<BrokerId>, ControllerError> {
    if target.is_empty() {
        return Err(invalid_assignment(format!(
            "the replica list of {name}-{number} is empty"
        )));
    }
    let mut distinct = BTreeSet::new();
    if let Some(twice) = target.iter().find(|id| !distinct.insert(**id)) {
        return Err(invalid_assignment(format!(
            "the replica list {} of {name}-{number} names broker {twice} twice",
            id_list(&target.iter().copied().map(BrokerId).collect::<Vec<_>>())
        )));
    }
    if let Some(unknown) = target
        .iter()
        .find(|id| image.broker(BrokerId(**id)).is_none())
    {
        return Err(invalid_assignment(format!(
            "broker {unknown} in the replica list of {name}-{number} is not registered"
        )));
    }
    Ok(target.iter().copied().map(BrokerId).collect())
}

fn invalid_assignment(reason: String) -> ControllerError {
    ControllerError::InvalidReplicaAssignment { reason }
}

/// Registered and not fenced: the brokers that may lead.
fn is_live(image: &MetadataImage, id: BrokerId) -> bool {
    image.broker(id).is_some_and(|info| !info.fenced)
}

/// Every partition of every topic, in name and number order.
fn partitions(image: &MetadataImage) -> impl Iterator<Item = (&TopicImage, i32, &PartitionImage)> {
    image.topics.values().flat_map(|topic| {
        topic
            .partitions
            .iter()
            .map(move |(number, partition)| (topic, *number, partition))
    })
}

/// The `(topic, partition)` pairs a preferred-election selection names.
fn selected(image: &MetadataImage, selection: &[(String, Option<Vec<i32>>)]) -> Vec<(String, i32)> {
    let all = |topic: &TopicImage| {
        topic
            .partitions
            .keys()
            .map(|number| (topic.name.clone(), *number))
            .collect::<Vec<_>>()
    };
    if selection.is_empty() {
        return image
            .topics
            .values()
            .filter(|topic| !topic.is_internal())
            .flat_map(all)
            .collect();
    }
    let mut pairs = Vec::new();
    for (name, numbers) in selection {
        match (numbers, image.topic(name)) {
            (Some(numbers), _) => {
                pairs.extend(numbers.iter().map(|number| (name.clone(), *number)))
            }
            (None, Some(topic)) => pairs.extend(all(topic)),
            (None, None) => pairs.push((name.clone(), -1)),
        }
    }
    pairs
}

fn without(ids: &[BrokerId], broker: BrokerId) -> Vec<BrokerId> {
    ids.iter().copied().filter(|id| *id != broker).collect()
}

/// The first of `replicas` (preference order) that is in `isr` and live.
fn first_live(
    replicas: &[BrokerId],
    isr: &[BrokerId],
    live: impl Fn(BrokerId) -> bool,
) -> Option<BrokerId> {
    replicas
        .iter()
        .copied()
        .find(|id| isr.contains(id) && live(*id))
}

/// A leader for a partition that needs one, with the ISR it leads: a live member of `isr`;
/// else, if the topic allows unclean elections, a live replica outside it, leading alone;
/// else none, keeping `isr`.
fn elect(
    topic: &TopicImage,
    partition: &PartitionImage,
    isr: &[BrokerId],
    live: impl Fn(BrokerId) -> bool,
) -> (Option<BrokerId>, Vec<BrokerId>) {
    if let Some(leader) = first_live(&partition.replicas, isr, &live) {
        return (Some(leader), isr.to_vec());
    }
    let unclean = TopicConfig::effective(&topic.configs, &BrokerDefaults::default())
        .unclean_leader_election_enable
        .value;
    let outsider = partition
        .replicas
        .iter()
        .copied()
        .find(|id| !isr.contains(id) && live(*id));
    match outsider {
        Some(leader) if unclean => (Some(leader), vec![leader]),
        _ => (None, isr.to_vec()),
    }
}

/// The `ChangePartition` giving `partition` `leader` and `isr` (and `replicas`, if set).
fn change(
    topic: &TopicImage,
    number: i32,
    partition: &PartitionImage,
    leader: Option<BrokerId>,
    isr: &[BrokerId],
    replicas: Option<&[BrokerId]>,
) -> MetadataRecord {
    let leader_epoch = if leader == partition.leader {
        partition.leader_epoch
    } else {
        partition.leader_epoch.saturating_add(1)
    };
    let plain = |ids: &[BrokerId]| ids.iter().map(|id| id.0).collect::<Vec<i32>>();
    MetadataRecord::ChangePartition {
        topic_id: topic.id.clone(),
        partition: number,
        leader: leader.map(|id| id.0),
        leader_epoch,
        isr: plain(isr),
        partition_epoch: partition.partition_epoch.saturating_add(1),
        replicas: replicas.map(plain),
    }
}

#[cfg(test)]
#[path = "election_tests.rs"]
mod tests;

/// `[1, 2, 3]`: broker ids as an operator writes them.
fn id_list(ids: &[BrokerId]) -> String {
    let ids: Vec<String> = ids.iter().map(|id| id.0.to_string()).collect();
    format!("[{}]", ids.join(", "))
}
