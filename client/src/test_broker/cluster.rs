//! The test broker's model of a controller: what `DescribeCluster`, `ElectLeaders` and
//! `ReassignPartitions` answer from, following the broker's rules (an election only moves
//! leadership to a live in-sync preferred replica; a reassignment keeps the ISR within the
//! target and refuses one that keeps none of it).

use super::*;

/// What the cluster calls answer from.
#[derive(Debug, Default)]
pub(crate) struct ControllerModel {
    pub(crate) brokers: Vec<wire::BrokerInfo>,
    /// Set by tests; a partition of a known topic without one has replicas `[1]`.
    pub(crate) assignments: BTreeMap<(String, i32), Assignment>,
    /// How many of the next `ElectLeaders`/`ReassignPartitions` calls answer
    /// `NOT_CONTROLLER` (an election in the quorum).
    pub(crate) not_controller_answers: usize,
    /// `ElectLeaders` and `ReassignPartitions` calls received, refused ones included.
    pub(crate) controller_calls: usize,
}

/// One partition's replicas as the controller keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assignment {
    pub(crate) replicas: Vec<i32>,
    pub(crate) leader: i32,
    pub(crate) leader_epoch: i32,
    pub(crate) isr: Vec<i32>,
}

impl Default for Assignment {
    fn default() -> Assignment {
        Assignment {
            replicas: vec![1],
            leader: 1,
            leader_epoch: 0,
            isr: vec![1],
        }
    }
}

/// Broker 1 (this one, rack a), 2 (live, rack b) and 3 (fenced, no rack).
pub(super) fn canned_brokers(address: &str) -> Vec<wire::BrokerInfo> {
    let broker = |node_id: i32, address: &str, rack: &str, fenced: bool, incarnation: u64| {
        wire::BrokerInfo {
            node_id,
            address: address.to_owned(),
            rack: rack.to_owned(),
            fenced,
            incarnation,
        }
    };
    vec![
        broker(1, address, "a", false, 4),
        broker(2, "127.0.0.1:2", "b", false, 1),
        broker(3, "127.0.0.1:3", "", true, 2),
    ]
}

/// The cluster calls, against [`ControllerModel`].
impl State {
    /// Counts a controller call; `NOT_CONTROLLER` while injected answers remain.
    pub(super) fn controller_call(&mut self) -> Option<wire::Error> {
        self.controller.controller_calls += 1;
        if self.controller.not_controller_answers == 0 {
            return None;
        }
        self.controller.not_controller_answers -= 1;
        error(wire::ErrorCode::NotController)
    }

    /// The assignment of a partition of a known topic.
    pub(super) fn assignment(&self, topic: &str, partition: i32) -> Option<Assignment> {
        let count = self.topics.get(topic)?.len();
        if partition < 0 || partition as usize >= count {
            return None;
        }
        let key = (topic.to_owned(), partition);
        Some(
            self.controller
                .assignments
                .get(&key)
                .cloned()
                .unwrap_or_default(),
        )
    }

    pub(super) fn live(&self, broker: i32) -> bool {
        self.controller
            .brokers
            .iter()
            .any(|info| info.node_id == broker && !info.fenced)
    }

    /// The partitions an election request names: all of every topic when it names none,
    /// all of a topic named without partitions; an unknown topic named alone is one
    /// partition, -1, so it gets a result.
    pub(super) fn elected_partitions(
        &self,
        asked: Vec<wire::TopicPartitions>,
    ) -> Vec<(String, i32)> {
        let every = |topic: &str| -> Vec<i32> {
            let count = self.topics.get(topic).map_or(0, Vec::len);
            if count == 0 {
                vec![-1]
            } else {
                (0..count as i32).collect()
            }
        };
        if asked.is_empty() {
            let mut topics: Vec<&String> = self.topics.keys().collect();
            topics.sort();
            return topics
                .into_iter()
                .flat_map(|topic| every(topic).into_iter().map(|p| (topic.clone(), p)))
                .collect();
        }
        asked
            .into_iter()
            .flat_map(|asked| {
                let partitions = if asked.partitions.is_empty() {
                    every(&asked.topic)
                } else {
                    asked.partitions
                };
                partitions
                    .into_iter()
                    .map(move |p| (asked.topic.clone(), p))
            })
            .collect()
    }

    /// A preferred leader election of one partition, as the controller makes it.
    pub(super) fn elect(&mut self, topic: String, partition: i32) -> wire::ElectionResult {
        let mut result = wire::ElectionResult {
            topic,
            partition,
            error: ok(),
            leader: -1,
            leader_epoch: -1,
        };
        let Some(mut assignment) = self.assignment(&result.topic, partition) else {
            result.error = error(wire::ErrorCode::UnknownTopicOrPartition);
            return result;
        };
        let preferred = assignment.replicas[0];
        if assignment.leader == preferred {
            result.error = error(wire::ErrorCode::ElectionNotNeeded);
        } else if !self.live(preferred) || !assignment.isr.contains(&preferred) {
            result.error = error(wire::ErrorCode::PreferredLeaderNotAvailable);
        } else {
            assignment.leader = preferred;
            assignment.leader_epoch += 1;
            self.controller
                .assignments
                .insert((result.topic.clone(), partition), assignment.clone());
        }
        result.leader = assignment.leader;
        result.leader_epoch = assignment.leader_epoch;
        result
    }

    /// A reassignment, all or nothing, by the controller's rules: an unknown partition, a
    /// partition named twice, a bad replica list, or a target that keeps none of the
    /// in-sync replicas fails the whole request and nothing is written. The ISR after the
    /// change is the current ISR within the target (new replicas must catch up first);
    /// the leader stays if it is in the target, else the first live in-sync replica.
    pub(super) fn reassign(
        &mut self,
        request: wire::ReassignPartitionsRequest,
    ) -> wire::ReassignPartitionsResponse {
        let refuse = |code: wire::ErrorCode, message: String| wire::ReassignPartitionsResponse {
            error: Some(wire::Error::new(code, message)),
            results: Vec::new(),
        };
        let invalid = |message| refuse(wire::ErrorCode::InvalidReplicaAssignment, message);
        let mut results = Vec::new();
        let mut changes: BTreeMap<(String, i32), Assignment> = BTreeMap::new();
        for asked in request.reassignments {
            let name = format!("{}-{}", asked.topic, asked.partition);
            let Some(current) = self.assignment(&asked.topic, asked.partition) else {
                let message = format!("{name} does not exist");
                return refuse(wire::ErrorCode::UnknownTopicOrPartition, message);
            };
            let key = (asked.topic.clone(), asked.partition);
            let target = asked.replicas;
            if changes.contains_key(&key) {
                return invalid(format!("{name} is named twice in one reassignment"));
            }
            if target.is_empty() {
                return invalid(format!("the replica list of {name} is empty"));
            }
            for (index, broker) in target.iter().enumerate() {
                let registered = self.controller.brokers.iter().any(|b| b.node_id == *broker);
                if !registered {
                    return invalid(format!(
                        "broker {broker} in the replica list of {name} is not registered"
                    ));
                }
                if target[..index].contains(broker) {
                    return invalid(format!(
                        "the replica list of {name} names broker {broker} twice"
                    ));
                }
            }
            let isr: Vec<i32> = current
                .isr
                .iter()
                .copied()
                .filter(|b| target.contains(b))
                .collect();
            if isr.is_empty() {
                return invalid(format!(
                    "replicas {target:?} of {name} keep none of its in-sync replicas {:?}",
                    current.isr
                ));
            }
            let leader = if target.contains(&current.leader) {
                current.leader
            } else {
                target
                    .iter()
                    .copied()
                    .find(|b| isr.contains(b) && self.live(*b))
                    .unwrap_or(-1)
            };
            let leader_epoch = current.leader_epoch + i32::from(leader != current.leader);
            results.push(wire::ReassignmentResult {
                topic: asked.topic,
                partition: asked.partition,
                error: ok(),
                current_replicas: current.replicas,
                target_replicas: target.clone(),
                leader,
                isr: isr.clone(),
            });
            let after = Assignment {
                replicas: target,
                leader,
                leader_epoch,
                isr,
            };
            changes.insert(key, after);
        }
        if !request.dry_run {
            self.controller.assignments.extend(changes);
        }
        wire::ReassignPartitionsResponse {
            error: ok(),
            results,
        }
    }
}
