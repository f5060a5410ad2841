//! [`Active`]: the active controller's work, done on the Raft leader. It turns a
//! [`ControllerRequest`] into metadata records with the pure policy functions
//! (`topic_commands`, `election`, `isr`), checks them against a copy of the image,
//! and writes them as one Raft entry.
//!
//! Requests are handled one at a time (one async mutex), so each is decided on the image
//! every earlier one produced: `client_write` returns only once the entry is committed
//! and applied here. The write runs in a task of its own that holds the mutex until the
//! entry is applied, so a request whose caller stops waiting (a client that leaves,
//! [`super::Quorum::submit`] giving up when the leader changes) cannot let the next one
//! be decided on an image that its entry is still about to change. After winning an election the leader first makes sure it has applied
//! everything committed before its term (`ensure_linearizable`), once per term.
//!
//! Leases live here too (`liveness::Leases`, the monotonic clock of this process): a
//! heartbeat renews one; [`Active::fence_expired`] fences brokers whose lease lapsed. A new
//! leader gives every registered broker a full lease from its election, as KRaft does.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::OwnedMutexGuard;

use strata_proto::types::BrokerId;

use super::request::{
    ControllerReply, ControllerRequest, ElectionResult, ReassignmentResult, ReplyBody,
    VoterProgress,
};
use super::state_machine::StateMachine;
use super::types::{Command, NodeId, Raft};
use crate::controller::election::{self, ElectionRefusal};
use crate::controller::error::ControllerError;
use crate::controller::image::MetadataImage;
use crate::controller::isr::{self, AlterPartition};
use crate::controller::liveness::Leases;
use crate::controller::metadata_record::MetadataRecord;

use crate::controller::state_machine::apply;
use crate::controller::topic_commands::{self, CreationContext};
use crate::controller::topic_config::BrokerDefaults;
use crate::controller::topic_validation::{PartitionLimits, TopicOrigin};

/// How many producer ids one `AllocateProducerIds` record reserves (a broker hands them
/// out one by one; a restart takes a new block, skipping the rest of the old one).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// The active controller's state on this voter (used while it leads).
pub struct Active {
    me: NodeId,
    raft: Raft,
    state_machine: StateMachine,
    defaults: BrokerDefaults,
    limits: PartitionLimits,
    serial: Arc<tokio::sync::Mutex<Serial>>,
    leases: Mutex<LeaseState>,
}

impl std::fmt::Debug for Active {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Active")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Serial {
    /// The term in which this leader last made sure it applied everything committed.
    caught_up_term: Option<u64>,
    /// Rotates the first broker of each new topic's replica assignment.
    assignment_start: usize,
}

/// How a metadata write ended.
enum Written {
    /// Applied at this version; `Some(reason)` when the state machine refused it.
    Applied(i64, Option<String>),
    /// This voter no longer leads.
    NotLeader,
    Fatal(String),
}

#[derive(Debug)]
struct LeaseState {
    leases: Leases,
    /// The term the leases were (re)started in.
    term: Option<u64>,
}

impl Active {
    pub fn new(
        me: NodeId,
        raft: Raft,
        state_machine: StateMachine,
        defaults: BrokerDefaults,
        limits: PartitionLimits,
        lease: Duration,
    ) -> Active {
        Active {
            me,
            raft,
            state_machine,
            defaults,
            limits,
            serial: Arc::new(tokio::sync::Mutex::new(Serial {
                caught_up_term: None,
                assignment_start: rand::random::<u16>().into(),
            })),
            leases: Mutex::new(LeaseState {
                leases: Leases::new(lease),
                term: None,
            }),
        }
    }

    pub fn defaults(&self) -> &BrokerDefaults {
        &self.defaults
    }

    pub fn limits(&self) -> &PartitionLimits {
        &self.limits
    }

    /// The leader this voter knows and the current term.
    pub fn leader_and_term(&self) -> (Option<NodeId>, u64) {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        (metrics.current_leader, metrics.current_term)
    }

    fn not_controller(&self) -> ControllerError {
        let (leader, _) = self.leader_and_term();
        ControllerError::NotController {
            leader: leader
                .filter(|leader| *leader != self.me)
                .and_then(|leader| i32::try_from(leader).ok()),
        }
    }

    fn lease_state(&self) -> MutexGuard<'_, LeaseState> {
        self.leases
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Restarts every lease when this voter leads in a new term.
    fn leases_for_term(&self, term: u64, image: &MetadataImage) -> MutexGuard<'_, LeaseState> {
        let mut state = self.lease_state();
        if state.term != Some(term) {
            state.term = Some(term);
            let brokers = image
                .brokers
                .values()
                .map(|broker| (broker.id, broker.incarnation));
            state.leases.on_elected(Instant::now(), brokers);
        }
        state
    }

    /// Handles `request` if this voter leads; `NotController` otherwise.
    pub async fn handle(
        &self,
        request: ControllerRequest,
    ) -> Result<ControllerReply, ControllerError> {
        let (leader, term) = self.leader_and_term();
        if leader != Some(self.me) {
            return Err(self.not_controller());
        }
        if let ControllerRequest::QuorumStatus = request {
            return Ok(self.quorum_status());
        }
        let mut serial = Arc::clone(&self.serial).lock_owned().await;
        if serial.caught_up_term != Some(term) {
            self.raft
                .ensure_linearizable()
                .await
                .map_err(|_| self.not_controller())?;
            serial.caught_up_term = Some(term);
        }
        let image = self.state_machine.image();
        let kind = request.kind();
        // The answer to a heartbeat renews the broker's lease (`Quorum::holds_lease`):
        // only a leader that a quorum still follows may give it, not one cut off from the
        // other voters that has not noticed yet.
        let renews_lease = matches!(request, ControllerRequest::Heartbeat { .. });
        let (records, body, validate_only) = self.decide(&mut serial, &image, term, request)?;
        let next = preview(&image, &records)?;
        if renews_lease && records.is_empty() {
            self.raft
                .ensure_linearizable()
                .await
                .map_err(|_| self.not_controller())?;
        }
        if validate_only || records.is_empty() {
            return Ok(ControllerReply {
                version: image.version,
                body,
            });
        }
        let version = self.write(serial, records).await?;
        debug_assert_eq!(version, next.version);
        tracing::debug!(request = kind, version, "controller wrote metadata");
        Ok(ControllerReply { version, body })
    }

    /// Appends `records` as one Raft entry and waits until it is applied here. The
    /// append runs in a task that keeps `serial` until then, whether or not this caller
    /// is still waiting (see the module docs).
    async fn write(
        &self,
        serial: OwnedMutexGuard<Serial>,
        records: Vec<MetadataRecord>,
    ) -> Result<i64, ControllerError> {
        let raft = self.raft.clone();
        let task = tokio::spawn(async move {
            let written = raft.client_write(Command { records }).await;
            drop(serial);
            match written {
                Ok(response) => Written::Applied(response.data.version, response.data.refused),
                Err(openraft::error::RaftError::APIError(_)) => Written::NotLeader,
                Err(openraft::error::RaftError::Fatal(fatal)) => Written::Fatal(fatal.to_string()),
            }
        });
        let written = task.await.map_err(|error| ControllerError::Quorum {
            reason: format!("the metadata write stopped: {error}"),
        })?;
        match written {
            Written::Applied(version, None) => Ok(version),
            Written::Applied(_, Some(reason)) => Err(ControllerError::InvalidRecord { reason }),
            Written::NotLeader => Err(self.not_controller()),
            Written::Fatal(reason) => Err(ControllerError::Quorum { reason }),
        }
    }

    /// The records `request` needs, what to answer, and whether it is only a check.
    fn decide(
        &self,
        serial: &mut Serial,
        image: &MetadataImage,
        term: u64,
        request: ControllerRequest,
    ) -> Result<(Vec<MetadataRecord>, ReplyBody, bool), ControllerError> {
        Ok(match request {
            ControllerRequest::RegisterBroker {
                broker_id,
                address,
                rack,
                external_address,
            } => {
                let addresses = BrokerAddresses {
                    internal: address,
                    external: external_address,
                };
                let (records, incarnation) = register(image, broker_id, addresses, rack)?;
                self.leases_for_term(term, image)
                    .leases
                    .heartbeat(BrokerId(broker_id), incarnation, Instant::now())
                    .map_err(|_| ControllerError::StaleBrokerEpoch {
                        broker_id,
                        incarnation,
                        current: incarnation,
                    })?;
                (records, ReplyBody::Registered { incarnation }, false)
            }
            ControllerRequest::Heartbeat {
                broker_id,
                incarnation,
            } => {
                let id = BrokerId(broker_id);
                let Some(broker) = image.broker(id) else {
                    return Ok((Vec::new(), ReplyBody::Unregistered, false));
                };
                if incarnation > broker.incarnation {
                    return Ok((Vec::new(), ReplyBody::Unregistered, false));
                }
                if incarnation < broker.incarnation {
                    return Err(ControllerError::StaleBrokerEpoch {
                        broker_id,
                        incarnation,
                        current: broker.incarnation,
                    });
                }
                self.leases_for_term(term, image)
                    .leases
                    .heartbeat(id, incarnation, Instant::now())
                    .map_err(|_| ControllerError::StaleBrokerEpoch {
                        broker_id,
                        incarnation,
                        current: broker.incarnation,
                    })?;
                let records = if broker.fenced {
                    tracing::info!(
                        broker_id,
                        incarnation,
                        "unfencing a broker that heartbeats again"
                    );
                    election::unfence(image, id, incarnation)
                } else {
                    Vec::new()
                };
                (records, ReplyBody::Done, false)
            }
            ControllerRequest::ControlledShutdown {
                broker_id,
                incarnation,
            } => {
                let id = BrokerId(broker_id);
                let Some(broker) = image.broker(id) else {
                    return Ok((
                        Vec::new(),
                        ReplyBody::ShutdownProgress { done: true },
                        false,
                    ));
                };
                if incarnation != broker.incarnation {
                    return Err(ControllerError::StaleBrokerEpoch {
                        broker_id,
                        incarnation,
                        current: broker.incarnation,
                    });
                }
                let moves = election::controlled_shutdown(image, id);
                if moves.is_empty() {
                    self.lease_state().leases.forget(id);
                    let records = election::fence(image, id);
                    tracing::info!(broker_id, "controlled shutdown: fencing the broker");
                    (records, ReplyBody::ShutdownProgress { done: true }, false)
                } else {
                    tracing::info!(
                        broker_id,
                        changes = moves.len(),
                        "controlled shutdown: moving leadership away"
                    );
                    (moves, ReplyBody::ShutdownProgress { done: false }, false)
                }
            }
            ControllerRequest::CreateTopic {
                spec,
                internal,
                validate_only,
            } => {
                let topic_id = new_topic_id(image);
                let context = CreationContext {
                    origin: if internal {
                        TopicOrigin::Internal
                    } else {
                        TopicOrigin::User
                    },
                    defaults: &self.defaults,
                    topic_id: &topic_id,
                    assignment_start: serial.assignment_start,
                    limits: &self.limits,
                };
                let records = topic_commands::create_topic(image, &spec, context)?;
                if !validate_only {
                    serial.assignment_start = serial.assignment_start.wrapping_add(1);
                    tracing::info!(topic = %spec.name, %topic_id, "creating topic");
                }
                (records, ReplyBody::Done, validate_only)
            }
            ControllerRequest::DeleteTopic { name } => {
                let records = topic_commands::delete_topic(image, &name)?;
                tracing::info!(topic = %name, "deleting topic");
                (records, ReplyBody::Done, false)
            }
            ControllerRequest::AlterConfigs {
                topic,
                set,
                delete,
                validate_only,
            } => {
                let (changes, records) =
                    topic_commands::alter_configs(image, &topic, &set, &delete, &self.defaults)?;
                (records, ReplyBody::ConfigChanges { changes }, validate_only)
            }
            ControllerRequest::CreatePartitions {
                topic,
                total_count,
                validate_only,
            } => {
                let records =
                    topic_commands::create_partitions(image, &topic, total_count, &self.limits)?;
                (records, ReplyBody::Done, validate_only)
            }
            ControllerRequest::AllocateProducerIds => {
                let first_id = image.next_producer_id;
                let record = MetadataRecord::AllocateProducerIds {
                    first_id,
                    count: PRODUCER_ID_BLOCK_SIZE,
                };
                (
                    vec![record],
                    ReplyBody::ProducerIds {
                        first_id,
                        count: PRODUCER_ID_BLOCK_SIZE,
                    },
                    false,
                )
            }
            ControllerRequest::ElectPreferred { selection } => {
                let (outcomes, records) = election::elect_preferred(image, &selection);
                let results = outcomes
                    .into_iter()
                    .map(|outcome| {
                        let current = image.partition(&outcome.topic, outcome.partition);
                        let (leader, leader_epoch) = current.map_or((-1, -1), |state| {
                            (state.leader.map_or(-1, |id| id.0), state.leader_epoch)
                        });
                        match outcome.result {
                            Ok((leader, epoch)) => ElectionResult {
                                topic: outcome.topic,
                                partition: outcome.partition,
                                refused: None,
                                leader: leader.0,
                                leader_epoch: epoch,
                            },
                            Err(refusal) => ElectionResult {
                                refused: Some(refusal_code(
                                    &refusal,
                                    &outcome.topic,
                                    outcome.partition,
                                )),
                                topic: outcome.topic,
                                partition: outcome.partition,
                                leader,
                                leader_epoch,
                            },
                        }
                    })
                    .collect();
                (records, ReplyBody::Elections { results }, false)
            }
            ControllerRequest::Reassign { requests, dry_run } => {
                let (outcomes, records) = election::reassign(image, &requests)?;
                let ids = |list: &[BrokerId]| list.iter().map(|id| id.0).collect::<Vec<i32>>();
                let results = outcomes
                    .into_iter()
                    .map(|outcome| ReassignmentResult {
                        current_replicas: ids(&outcome.current_replicas),
                        target_replicas: ids(&outcome.target_replicas),
                        leader: outcome.leader.map_or(-1, |id| id.0),
                        isr: ids(&outcome.isr),
                        topic: outcome.topic,
                        partition: outcome.partition,
                    })
                    .collect();
                (records, ReplyBody::Reassignments { results }, dry_run)
            }
            ControllerRequest::QuorumStatus => (Vec::new(), ReplyBody::Done, true),
            ControllerRequest::AlterPartition {
                broker_id,
                incarnation,
                topic,
                partition,
                leader_epoch,
                partition_epoch,
                new_isr,
            } => {
                let new_isr: Vec<BrokerId> = new_isr.into_iter().map(BrokerId).collect();
                let request = AlterPartition {
                    topic: &topic,
                    partition,
                    broker: BrokerId(broker_id),
                    incarnation,
                    leader_epoch,
                    partition_epoch,
                    new_isr: &new_isr,
                };
                let records = isr::alter_isr(image, &request)?;
                let body = isr_changed(image, &topic, partition, &records);
                if let ReplyBody::IsrChanged {
                    partition_epoch,
                    isr,
                } = &body
                {
                    if !records.is_empty() {
                        let previous_isr: Vec<i32> = image
                            .partition(&topic, partition)
                            .map_or_else(Vec::new, |state| {
                                state.isr.iter().map(|id| id.0).collect()
                            });
                        let change = isr_change(previous_isr.len(), isr.len());
                        tracing::info!(%topic, partition, broker_id, partition_epoch, ?isr,
                            ?previous_isr, change, "changing the ISR at the leader's request");
                    }
                }
                (records, body, false)
            }
        })
    }

    /// Each voter's replication progress, from this leader's Raft metrics.
    fn quorum_status(&self) -> ControllerReply {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let last = metrics.last_log_index.unwrap_or(0);
        let voters = metrics
            .membership_config
            .membership()
            .voter_ids()
            .map(|id| {
                let matched = metrics
                    .replication
                    .as_ref()
                    .and_then(|replication| replication.get(&id).copied().flatten())
                    .map(|log_id| log_id.index)
                    .or(if id == self.me {
                        metrics.last_log_index
                    } else {
                        None
                    });
                VoterProgress {
                    node_id: i32::try_from(id).unwrap_or(-1),
                    matched_index: matched,
                    lag: matched.map(|index| last.saturating_sub(index)),
                }
            })
            .collect();
        ControllerReply {
            version: self.state_machine.image().version,
            body: ReplyBody::QuorumStatus { voters },
        }
    }

    /// Whether `broker`'s lease has lapsed in this term.
    #[cfg(test)]
    pub(super) fn lease_lapsed(&self, broker: BrokerId) -> bool {
        let (_, term) = self.leader_and_term();
        let image = self.state_machine.image();
        let state = self.leases_for_term(term, &image);
        state.leases.expired(Instant::now()).contains(&broker)
    }

    /// Fences every broker whose lease lapsed (called periodically while this voter
    /// leads). Returns how many were fenced.
    pub async fn fence_expired(&self) -> Result<usize, ControllerError> {
        let (leader, term) = self.leader_and_term();
        if leader != Some(self.me) {
            return Ok(0);
        }
        let expired = {
            let image = self.state_machine.image();
            let state = self.leases_for_term(term, &image);
            state.leases.expired(Instant::now())
        };
        let mut fenced = 0;
        // The broker this controller runs in is alive by definition (its lease can only
        // look lapsed after this whole process was paused).
        let me = i32::try_from(self.me).unwrap_or(-1);
        for broker in expired.into_iter().filter(|broker| broker.0 != me) {
            let serial = Arc::clone(&self.serial).lock_owned().await;
            let image = self.state_machine.image();
            let records = election::fence(&image, broker);
            if records.is_empty() {
                continue;
            }
            preview(&image, &records)?;
            tracing::warn!(
                broker_id = broker.0,
                "the broker's lease lapsed: fencing it and moving its leadership"
            );
            self.write(serial, records).await?;
            fenced += 1;
        }
        Ok(fenced)
    }
}

/// `shrink`, `expand` or `replace`: how an ISR of `previous` replicas becomes one of
/// `next` (the `change` field of the ISR change's log line).
fn isr_change(previous: usize, next: usize) -> &'static str {
    match next.cmp(&previous) {
        std::cmp::Ordering::Less => "shrink",
        std::cmp::Ordering::Greater => "expand",
        std::cmp::Ordering::Equal => "replace",
    }
}

/// The answer to an accepted `AlterPartition`: the ISR and partition epoch `records` (at
/// most one `ChangePartition`, none when nothing changes) leave the partition with.
fn isr_changed(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    records: &[MetadataRecord],
) -> ReplyBody {
    match records.first() {
        Some(MetadataRecord::ChangePartition {
            partition_epoch,
            isr,
            ..
        }) => ReplyBody::IsrChanged {
            partition_epoch: *partition_epoch,
            isr: isr.clone(),
        },
        _ => {
            let current = image.partition(topic, partition);
            ReplyBody::IsrChanged {
                partition_epoch: current.map_or(-1, |state| state.partition_epoch),
                isr: current
                    .map_or_else(Vec::new, |state| state.isr.iter().map(|id| id.0).collect()),
            }
        }
    }
}

/// The wire code name and message for a refused preferred leader election.
fn refusal_code(refusal: &ElectionRefusal, topic: &str, partition: i32) -> (String, String) {
    let (code, message) = match refusal {
        ElectionRefusal::UnknownTopicOrPartition => (
            "UNKNOWN_TOPIC_OR_PARTITION",
            format!("unknown topic or partition {topic}-{partition}"),
        ),
        ElectionRefusal::NotNeeded => (
            "ELECTION_NOT_NEEDED",
            format!("the preferred replica already leads {topic}-{partition}"),
        ),
        ElectionRefusal::PreferredNotAvailable => (
            "PREFERRED_LEADER_NOT_AVAILABLE",
            format!("the preferred replica of {topic}-{partition} is fenced or not in the ISR"),
        ),
    };
    (code.to_owned(), message)
}

/// Where clients reach a registering broker: its internal listener's advertised address,
/// and its external listener's when it has one.
#[derive(Debug)]
struct BrokerAddresses {
    internal: String,
    external: Option<String>,
}

/// The records of a broker registration: a new incarnation (one above the last), the
/// cluster id on the very first one, the broker out of every ISR that has another live
/// member (a new process must catch up again), and leadership back for the partitions it
/// was the last in-sync replica of.
fn register(
    image: &MetadataImage,
    broker_id: i32,
    addresses: BrokerAddresses,
    rack: Option<String>,
) -> Result<(Vec<MetadataRecord>, u64), ControllerError> {
    let mut records = Vec::new();
    if image.cluster_id.is_none() {
        records.push(MetadataRecord::SetClusterId {
            cluster_id: random_id_hex(),
        });
    }
    let incarnation = image
        .broker(BrokerId(broker_id))
        .map_or(1, |broker| broker.incarnation.saturating_add(1));
    // A new process of a registered broker earns its ISR places again (see
    // `election::restarted`); decided on the image before it registers.
    let restarted = election::restarted(image, BrokerId(broker_id));
    records.push(MetadataRecord::RegisterBroker {
        broker_id,
        address: addresses.internal,
        rack,
        incarnation,
        external_address: addresses.external,
    });
    records.extend(restarted);
    // A registration leaves the broker unfenced; what it may lead again is what an
    // unfencing gives it, so ask `election::unfence` on the image as if it were fenced and
    // keep its partition changes (not its UnfenceBroker record).
    let mut registered = preview(image, &records)?;
    if let Some(broker) = registered.brokers.get_mut(&BrokerId(broker_id)) {
        broker.fenced = true;
    }
    records.extend(
        election::unfence(&registered, BrokerId(broker_id), incarnation)
            .into_iter()
            .filter(|record| !matches!(record, MetadataRecord::UnfenceBroker { .. })),
    );
    tracing::info!(broker_id, incarnation, "registering broker");
    Ok((records, incarnation))
}

/// `records` applied to a copy of `image` (so a record the state machine would refuse is
/// never written).
pub(crate) fn preview(
    image: &MetadataImage,
    records: &[MetadataRecord],
) -> Result<MetadataImage, ControllerError> {
    let mut next = image.clone();
    for record in records {
        let version = next.version;
        apply(&mut next, record, version)?;
    }
    Ok(next)
}

/// 128 random bits as 32 lowercase hex digits (topic and cluster ids).
pub(crate) fn random_id_hex() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A topic id that is well-formed (not all zeros) and not in use.
fn new_topic_id(image: &MetadataImage) -> String {
    loop {
        let id = random_id_hex();
        if id.bytes().any(|byte| byte != b'0') && image.topic_by_id(&id).is_none() {
            return id;
        }
    }
}

/// Shared by the quorum: the active controller of this voter.
pub type SharedActive = Arc<Active>;

#[cfg(test)]
#[path = "active_tests.rs"]
mod tests;
