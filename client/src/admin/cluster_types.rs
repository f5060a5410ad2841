//! The values of the cluster calls ([`Admin::describe_cluster`], [`Admin::elect_leaders`],
//! [`Admin::reassign_partitions`]), free of wire types. The wire's `-1` for "unknown" or
//! "none" is `None` here, so callers cannot mistake it for a broker id or an index.
//!
//! [`Admin::describe_cluster`]: crate::Admin::describe_cluster
//! [`Admin::elect_leaders`]: crate::Admin::elect_leaders
//! [`Admin::reassign_partitions`]: crate::Admin::reassign_partitions

use strata_proto::api::v1 as wire;

use crate::error::{Error, ErrorCode};

/// The cluster as one broker sees it: its brokers and the controller quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterDescription {
    pub cluster_id: String,
    /// The broker that answered; its view of the quorum may lag the leader's.
    pub answered_by: i32,
    /// The controller leader (the Raft leader); `None` while an election runs.
    pub controller_leader: Option<i32>,
    pub controller_term: u64,
    /// The controller quorum's voters, sorted by node id.
    pub voters: Vec<ControllerVoter>,
    /// Every registered broker, sorted by node id.
    pub brokers: Vec<BrokerDescription>,
    /// The metadata version the answering broker has applied.
    pub metadata_version: i64,
    /// The Raft log index the answering broker has applied, and the last one it holds.
    pub applied_index: i64,
    pub last_log_index: i64,
}

/// One voter of the controller quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ControllerVoter {
    pub node_id: i32,
    /// `host:port` of its listener.
    pub address: String,
    /// Whether it is the controller leader.
    pub leader: bool,
    /// The last log index known to be stored on it; `None` when the answering broker does
    /// not know (only the controller leader tracks the others).
    pub matched_index: Option<i64>,
    /// How many entries it is behind the leader's log; `None` when unknown.
    pub lag: Option<i64>,
}

/// One registered broker.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerDescription {
    pub node_id: i32,
    /// `host:port` of its gRPC listener, as advertised.
    pub address: String,
    pub rack: Option<String>,
    /// Grows by one on every start of the broker process.
    pub incarnation: u64,
    /// Its lease lapsed (or it shut down): it leads nothing until it heartbeats again.
    pub fenced: bool,
}

impl ClusterDescription {
    pub(crate) fn from_wire(response: &wire::DescribeClusterResponse) -> ClusterDescription {
        let mut voters: Vec<ControllerVoter> = response
            .voters
            .iter()
            .map(|voter| ControllerVoter {
                node_id: voter.node_id,
                address: voter.address.clone(),
                leader: voter.leader,
                matched_index: known(voter.matched_index),
                lag: known(voter.lag),
            })
            .collect();
        voters.sort_by_key(|voter| voter.node_id);
        let mut brokers: Vec<BrokerDescription> = response
            .brokers
            .iter()
            .map(|broker| BrokerDescription {
                node_id: broker.node_id,
                address: broker.address.clone(),
                rack: (!broker.rack.is_empty()).then(|| broker.rack.clone()),
                incarnation: broker.incarnation,
                fenced: broker.fenced,
            })
            .collect();
        brokers.sort_by_key(|broker| broker.node_id);
        ClusterDescription {
            cluster_id: response.cluster_id.clone(),
            answered_by: response.answered_by,
            controller_leader: known_id(response.controller_leader),
            controller_term: response.controller_term,
            voters,
            brokers,
            metadata_version: response.metadata_version,
            applied_index: response.applied_index,
            last_log_index: response.last_log_index,
        }
    }
}

/// Which partitions a preferred leader election covers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ElectionSelection {
    /// Every partition of every topic (Kafka's `--all-topic-partitions`).
    AllTopics,
    /// These topics; an empty partition list stands for every partition of its topic.
    /// An empty list of topics elects nothing (it is never read as "all").
    Topics(Vec<(String, Vec<i32>)>),
}

impl ElectionSelection {
    /// One topic, all partitions when `partitions` is empty.
    pub fn topic(topic: impl Into<String>, partitions: Vec<i32>) -> ElectionSelection {
        ElectionSelection::Topics(vec![(topic.into(), partitions)])
    }
}

/// What a preferred leader election did to one partition.
#[derive(Debug)]
#[non_exhaustive]
pub struct ElectionResult {
    pub topic: String,
    pub partition: i32,
    /// `Ok` when leadership moved to the preferred replica; otherwise the broker's typed
    /// error: `ELECTION_NOT_NEEDED` (it already leads), `PREFERRED_LEADER_NOT_AVAILABLE`
    /// (fenced or not in the ISR) or `UNKNOWN_TOPIC_OR_PARTITION`.
    pub outcome: Result<(), Error>,
    /// The leader after the call; `None` when the partition has none or is unknown.
    pub leader: Option<i32>,
    pub leader_epoch: i32,
}

impl ElectionResult {
    /// Whether this partition failed in the sense of Kafka's election tool: anything but
    /// "moved" and "already led by its preferred replica".
    pub fn is_failure(&self) -> bool {
        match &self.outcome {
            Ok(()) => false,
            Err(error) => error.code() != Some(ErrorCode::ElectionNotNeeded),
        }
    }

    pub(crate) fn from_wire(result: &wire::ElectionResult) -> ElectionResult {
        ElectionResult {
            topic: result.topic.clone(),
            partition: result.partition,
            outcome: Error::from_wire(result.error.as_ref()).map_or(Ok(()), Err),
            leader: known_id(result.leader),
            leader_epoch: result.leader_epoch,
        }
    }
}

/// A new replica list for one partition, preferred leader first.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionReassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
}

impl PartitionReassignment {
    pub fn new(topic: impl Into<String>, partition: i32, replicas: Vec<i32>) -> Self {
        PartitionReassignment {
            topic: topic.into(),
            partition,
            replicas,
        }
    }

    pub(crate) fn to_wire(&self) -> wire::PartitionReassignment {
        wire::PartitionReassignment {
            topic: self.topic.clone(),
            partition: self.partition,
            replicas: self.replicas.clone(),
        }
    }
}

impl<T: Into<String>> From<(T, i32, Vec<i32>)> for PartitionReassignment {
    fn from((topic, partition, replicas): (T, i32, Vec<i32>)) -> Self {
        PartitionReassignment::new(topic, partition, replicas)
    }
}

/// One partition of a reassignment: its replicas before and after, and the leader and
/// ISR after the change (or after it would be made, on a dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReassignmentResult {
    pub topic: String,
    pub partition: i32,
    pub current_replicas: Vec<i32>,
    pub target_replicas: Vec<i32>,
    /// `None` when the partition would have no leader.
    pub leader: Option<i32>,
    pub isr: Vec<i32>,
}

impl ReassignmentResult {
    /// The result, or the partition's error naming it (`orders/3: ...`).
    pub(crate) fn from_wire(result: &wire::ReassignmentResult) -> Result<Self, Error> {
        if let Some(error) = Error::from_wire(result.error.as_ref()) {
            return Err(Error::Broker {
                code: error.code().unwrap_or(ErrorCode::UnknownServerError),
                message: format!("{}/{}: {error}", result.topic, result.partition),
                retriable: error.is_retriable(),
            });
        }
        Ok(ReassignmentResult {
            topic: result.topic.clone(),
            partition: result.partition,
            current_replicas: result.current_replicas.clone(),
            target_replicas: result.target_replicas.clone(),
            leader: known_id(result.leader),
            isr: result.isr.clone(),
        })
    }
}

/// A broker id, `None` for the wire's -1 (or any negative id).
fn known_id(id: i32) -> Option<i32> {
    (id >= 0).then_some(id)
}

/// An index or lag, `None` for the wire's -1.
fn known(value: i64) -> Option<i64> {
    (value >= 0).then_some(value)
}
