//! The controller's one error type, [`ControllerError`].
//!
//! Every variant that a client can cause carries the offending name, key or value and
//! reads as a sentence; [`ControllerError::code_name`] gives the Kafka error code the gRPC
//! layer (`service/status.rs`) turns it into. Nothing here knows about gRPC.

use crate::log::LogError;

/// Everything `broker::controller` can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The topic name breaks the naming rules or collides with an existing topic
    /// (hostile input 24 of `docs/RELIABILITY.md`).
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopic { name: String, reason: String },
    #[error("topic {name:?} already exists")]
    TopicAlreadyExists { name: String },
    #[error("topic {name:?} does not exist")]
    UnknownTopic { name: String },
    /// A partition count that is out of range or does not grow the topic (input 25).
    #[error("invalid partition count: {reason}")]
    InvalidPartitions { reason: String },
    /// A replication factor below 1 or above the number of registered brokers (input 25).
    #[error("invalid replication factor: {reason}")]
    InvalidReplicationFactor { reason: String },
    /// An unknown topic config key, or a value of the wrong type or range (input 33).
    #[error("invalid config {key}={value:?}: {reason}")]
    InvalidConfig {
        key: String,
        value: String,
        reason: String,
    },
    /// A metadata record the state machine refuses (it does not fit the current state),
    /// or one that cannot be encoded or decoded. On replay this stops the controller from
    /// opening: a metadata log that cannot be applied must not be served half-applied.
    #[error("invalid metadata record: {reason}")]
    InvalidRecord { reason: String },
    /// The metadata log could not be read or written.
    #[error("metadata log storage failed")]
    Storage(#[from] LogError),
    /// The metadata log is damaged, or missing while partition data is present. The
    /// broker refuses to start rather than serve (or delete) partitions by a metadata
    /// image that lost records.
    #[error("the cluster metadata in {dir} cannot be trusted: {reason}. The broker does not start, so nothing is deleted or re-created. Restore the directory from a backup, or move the partition directories out of the data directory to start an empty cluster")]
    MetadataDamaged { dir: String, reason: String },
    /// A replica list names an unknown broker or a broker twice, or would leave a
    /// partition without an in-sync replica.
    #[error("invalid replica assignment: {reason}")]
    InvalidReplicaAssignment { reason: String },
    /// The controller quorum has no leader this broker can reach (an election is running,
    /// or too few voters are up). Retriable.
    #[error("no active controller{}", leader.map_or(String::new(), |id| format!(" (the last known is broker {id})")))]
    NotController { leader: Option<i32> },
    /// A broker request (heartbeat, shutdown) carried an incarnation that is no longer the
    /// broker's current one: an older process of the same broker id.
    #[error(
        "broker {broker_id} incarnation {incarnation} is stale (the current one is {current})"
    )]
    StaleBrokerEpoch {
        broker_id: i32,
        incarnation: u64,
        current: u64,
    },
    /// An ISR change (AlterPartition) carried a leader epoch that is not the partition's:
    /// the sender led it in an earlier epoch.
    #[error("leader epoch {leader_epoch} of {topic}-{partition} is fenced (the current one is {current})")]
    FencedLeaderEpoch {
        topic: String,
        partition: i32,
        leader_epoch: i32,
        current: i32,
    },
    /// An ISR change came from a broker that does not lead the partition.
    #[error("broker {broker_id} does not lead {topic}-{partition} ({})", leader.map_or("it has no leader".to_owned(), |id| format!("broker {id} does")))]
    NotLeaderOrFollower {
        topic: String,
        partition: i32,
        broker_id: i32,
        leader: Option<i32>,
    },
    /// An ISR change carried a partition epoch that is not the partition's current one:
    /// it was decided on a stale state of the partition.
    #[error("partition epoch {partition_epoch} of {topic}-{partition} is stale (the current one is {current})")]
    InvalidUpdateVersion {
        topic: String,
        partition: i32,
        partition_epoch: i32,
        current: i32,
    },
    /// An ISR change would add a broker that may not join the ISR (KIP-841).
    #[error("broker {broker_id} may not join the ISR of {topic}-{partition}: {reason}")]
    IneligibleReplica {
        topic: String,
        partition: i32,
        broker_id: i32,
        reason: String,
    },
    /// An ISR change whose new ISR is malformed: empty, a broker twice, a broker that is
    /// not a replica, or without the leader.
    #[error("invalid ISR for {topic}-{partition}: {reason}")]
    InvalidIsr {
        topic: String,
        partition: i32,
        reason: String,
    },
    /// The controller quorum failed (its Raft log cannot be written, or it stopped).
    #[error("controller quorum: {reason}")]
    Quorum { reason: String },
    /// An error the active controller answered a forwarded request with: its code name
    /// (one of [`ControllerError::code_name`]'s) and message.
    #[error("{message}")]
    Remote { code: String, message: String },
}

impl ControllerError {
    pub(crate) fn invalid_record(reason: impl Into<String>) -> ControllerError {
        ControllerError::InvalidRecord {
            reason: reason.into(),
        }
    }

    /// The Kafka error code name this error is reported as.
    pub fn code_name(&self) -> &'static str {
        match self {
            ControllerError::InvalidTopic { .. } => "INVALID_TOPIC",
            ControllerError::TopicAlreadyExists { .. } => "TOPIC_ALREADY_EXISTS",
            ControllerError::UnknownTopic { .. } => "UNKNOWN_TOPIC_OR_PARTITION",
            ControllerError::InvalidPartitions { .. } => "INVALID_PARTITIONS",
            ControllerError::InvalidReplicationFactor { .. } => "INVALID_REPLICATION_FACTOR",
            ControllerError::InvalidConfig { .. } => "INVALID_CONFIG",
            ControllerError::InvalidRecord { .. } => "UNKNOWN_SERVER_ERROR",
            ControllerError::Storage(_) | ControllerError::MetadataDamaged { .. } => {
                "STORAGE_ERROR"
            }
            ControllerError::InvalidReplicaAssignment { .. } => "INVALID_REPLICA_ASSIGNMENT",
            ControllerError::NotController { .. } => "NOT_CONTROLLER",
            ControllerError::StaleBrokerEpoch { .. } => "STALE_BROKER_EPOCH",
            ControllerError::FencedLeaderEpoch { .. } => "FENCED_LEADER_EPOCH",
            ControllerError::NotLeaderOrFollower { .. } => "NOT_LEADER",
            ControllerError::InvalidUpdateVersion { .. } => "INVALID_UPDATE_VERSION",
            ControllerError::IneligibleReplica { .. } => "INELIGIBLE_REPLICA",
            ControllerError::InvalidIsr { .. } => "INVALID_REQUEST",
            ControllerError::Quorum { .. } => "UNKNOWN_SERVER_ERROR",
            ControllerError::Remote { code, .. } => known_code_name(code),
        }
    }
}

/// Every code name [`ControllerError::code_name`] can give, so a remote answer maps back
/// to the same `&'static str` (anything else is an unknown server error).
const CODE_NAMES: [&str; 16] = [
    "INVALID_TOPIC",
    "TOPIC_ALREADY_EXISTS",
    "UNKNOWN_TOPIC_OR_PARTITION",
    "INVALID_PARTITIONS",
    "INVALID_REPLICATION_FACTOR",
    "INVALID_CONFIG",
    "STORAGE_ERROR",
    "INVALID_REPLICA_ASSIGNMENT",
    "NOT_CONTROLLER",
    "STALE_BROKER_EPOCH",
    "FENCED_LEADER_EPOCH",
    "NOT_LEADER",
    "INVALID_UPDATE_VERSION",
    "INELIGIBLE_REPLICA",
    "INVALID_REQUEST",
    "UNKNOWN_SERVER_ERROR",
];

fn known_code_name(code: &str) -> &'static str {
    CODE_NAMES
        .iter()
        .find(|name| **name == code)
        .copied()
        .unwrap_or("UNKNOWN_SERVER_ERROR")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_are_kafkas() {
        let cases = [
            (
                ControllerError::InvalidTopic {
                    name: "a/b".into(),
                    reason: "bad".into(),
                },
                "INVALID_TOPIC",
            ),
            (
                ControllerError::UnknownTopic { name: "t".into() },
                "UNKNOWN_TOPIC_OR_PARTITION",
            ),
            (
                ControllerError::InvalidConfig {
                    key: "retention_ms".into(),
                    value: "-2".into(),
                    reason: "must be -1 or at least 0".into(),
                },
                "INVALID_CONFIG",
            ),
            (ControllerError::invalid_record("x"), "UNKNOWN_SERVER_ERROR"),
            (
                ControllerError::FencedLeaderEpoch {
                    topic: "t".into(),
                    partition: 0,
                    leader_epoch: 1,
                    current: 2,
                },
                "FENCED_LEADER_EPOCH",
            ),
            (
                ControllerError::NotLeaderOrFollower {
                    topic: "t".into(),
                    partition: 0,
                    broker_id: 2,
                    leader: Some(1),
                },
                "NOT_LEADER",
            ),
            (
                ControllerError::InvalidUpdateVersion {
                    topic: "t".into(),
                    partition: 0,
                    partition_epoch: 3,
                    current: 4,
                },
                "INVALID_UPDATE_VERSION",
            ),
            (
                ControllerError::IneligibleReplica {
                    topic: "t".into(),
                    partition: 0,
                    broker_id: 3,
                    reason: "it is fenced".into(),
                },
                "INELIGIBLE_REPLICA",
            ),
            (
                ControllerError::InvalidIsr {
                    topic: "t".into(),
                    partition: 0,
                    reason: "empty".into(),
                },
                "INVALID_REQUEST",
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.code_name(), code, "{error}");
            assert!(
                CODE_NAMES.contains(&code),
                "{code} maps back from a remote answer"
            );
        }
    }
}
