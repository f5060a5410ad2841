//! [`ControllerRequest`]: what brokers ask the active controller, and its
//! [`ControllerReply`]. A broker that is not the controller leader forwards the request
//! (JSON, `Controller.Submit`); the leader handles it in [`super::active`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::controller::topic_commands::{ConfigChange, NewTopic};

/// A request for the active controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ControllerRequest {
    /// A broker started: it gets a new incarnation and is live (unfenced).
    /// `external_address`: the advertised address of its external listener, if any
    /// (absent from brokers that predate external listeners).
    RegisterBroker {
        broker_id: i32,
        address: String,
        rack: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        external_address: Option<String>,
    },
    /// Renews the broker's lease; a fenced broker with its current incarnation is unfenced.
    Heartbeat {
        broker_id: i32,
        incarnation: u64,
    },
    /// The broker is shutting down: move leadership of its partitions to other in-sync
    /// replicas; once nothing can move, fence it.
    ControlledShutdown {
        broker_id: i32,
        incarnation: u64,
    },
    CreateTopic {
        spec: NewTopic,
        internal: bool,
        validate_only: bool,
    },
    DeleteTopic {
        name: String,
    },
    AlterConfigs {
        topic: String,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
        validate_only: bool,
    },
    CreatePartitions {
        topic: String,
        total_count: i32,
        validate_only: bool,
    },
    /// Reserves a block of producer ids for the asking broker.
    AllocateProducerIds,
    /// Preferred leader election; an empty selection means every partition.
    ElectPreferred {
        selection: Vec<(String, Option<Vec<i32>>)>,
    },
    Reassign {
        requests: Vec<(String, i32, Vec<i32>)>,
        dry_run: bool,
    },
    /// How far each voter's log is behind the leader's (only the leader knows).
    QuorumStatus,
    /// A partition leader asks to change the ISR (Kafka's AlterPartition, KIP-497): decided
    /// by `isr::alter_isr` on the leader epoch and partition epoch it decided on. Answered
    /// `IsrChanged`; once it is applied, the ISR the leader counts is `new_isr`.
    AlterPartition {
        broker_id: i32,
        incarnation: u64,
        topic: String,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    },
}

impl ControllerRequest {
    /// The request's name, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ControllerRequest::RegisterBroker { .. } => "RegisterBroker",
            ControllerRequest::Heartbeat { .. } => "Heartbeat",
            ControllerRequest::ControlledShutdown { .. } => "ControlledShutdown",
            ControllerRequest::CreateTopic { .. } => "CreateTopic",
            ControllerRequest::DeleteTopic { .. } => "DeleteTopic",
            ControllerRequest::AlterConfigs { .. } => "AlterConfigs",
            ControllerRequest::CreatePartitions { .. } => "CreatePartitions",
            ControllerRequest::AllocateProducerIds => "AllocateProducerIds",
            ControllerRequest::ElectPreferred { .. } => "ElectPreferred",
            ControllerRequest::Reassign { .. } => "Reassign",
            ControllerRequest::QuorumStatus => "QuorumStatus",
            ControllerRequest::AlterPartition { .. } => "AlterPartition",
        }
    }
}

/// The active controller's answer: the metadata version that holds the change (the
/// asking broker waits until it has applied it) and what the request returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerReply {
    pub version: i64,
    pub body: ReplyBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ReplyBody {
    Done,
    Registered {
        incarnation: u64,
    },
    /// The broker is not registered (or registered by a newer process): register.
    Unregistered,
    ShutdownProgress {
        done: bool,
    },
    ConfigChanges {
        changes: Vec<ConfigChange>,
    },
    ProducerIds {
        first_id: i64,
        count: i64,
    },
    Elections {
        results: Vec<ElectionResult>,
    },
    Reassignments {
        results: Vec<ReassignmentResult>,
    },
    QuorumStatus {
        voters: Vec<VoterProgress>,
    },
    /// The partition's ISR and partition epoch after an `AlterPartition` (unchanged when
    /// the asked ISR already was the partition's, as a set).
    IsrChanged {
        partition_epoch: i32,
        isr: Vec<i32>,
    },
}

/// The outcome of a preferred leader election for one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionResult {
    pub topic: String,
    pub partition: i32,
    /// `None`: leadership moved to the preferred replica. Otherwise the wire code name
    /// (`ELECTION_NOT_NEEDED`, `PREFERRED_LEADER_NOT_AVAILABLE`,
    /// `UNKNOWN_TOPIC_OR_PARTITION`) and a message.
    pub refused: Option<(String, String)>,
    pub leader: i32,
    pub leader_epoch: i32,
}

/// One partition of a reassignment, as it is (or would be, on a dry run) afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignmentResult {
    pub topic: String,
    pub partition: i32,
    pub current_replicas: Vec<i32>,
    pub target_replicas: Vec<i32>,
    pub leader: i32,
    pub isr: Vec<i32>,
}

/// How far one voter's log is behind, as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterProgress {
    pub node_id: i32,
    /// The last log index known stored on it; `None` when unknown.
    pub matched_index: Option<u64>,
    /// Entries behind the leader's last log index; `None` when unknown.
    pub lag: Option<u64>,
}
