//! The one mapping from domain errors to wire error codes (what each code means for a
//! client: `docs/CLIENT.md`, "Errors"). Whether a code is retriable is a property of the
//! code (`strata_proto::error_code`).

use strata_proto::api::v1::{Error, ErrorCode};
use tonic::Status;

use crate::controller::ControllerError;
use crate::group::GroupError;
use crate::log::LogError;
use crate::node::NodeError;

/// The wire error for a failed request. A storage error is logged here with its full
/// message, and clients get it without the broker's file paths: where the data
/// directory lives is the operator's business, not every client's.
pub fn to_wire(error: &NodeError) -> Error {
    let code = code_of(error);
    // The Display of the outer error plus its source chain, so messages name the cause.
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    if matches!(
        code,
        ErrorCode::StorageError | ErrorCode::UnknownServerError
    ) {
        tracing::error!(code = code.as_str_name(), %message, "request failed on the broker");
        message = without_paths(&message);
    }
    let mut wire = Error::new(code, message);
    match error {
        NodeError::NotLeader {
            leader: Some(leader),
            ..
        }
        | NodeError::Controller(ControllerError::NotController {
            leader: Some(leader),
        })
        | NodeError::Controller(ControllerError::NotLeaderOrFollower {
            leader: Some(leader),
            ..
        }) => wire.leader_hint = *leader,
        _ => {}
    }
    wire
}

/// `message` with every absolute path replaced by `<path>`.
fn without_paths(message: &str) -> String {
    message
        .split(' ')
        .map(|word| {
            let path = word.trim_end_matches([':', ',', ';', ')', '.']);
            let path = path.trim_start_matches(['(', '"', '\'']);
            if path.starts_with('/') && path.len() > 1 {
                word.replacen(path, "<path>", 1)
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The status that ends a produce or fetch stream once the broker shuts down. UNAVAILABLE
/// is retriable: the client opens a new stream, on a new connection, when the broker (or
/// another leader) is back.
pub fn shutting_down() -> Status {
    Status::unavailable("broker is shutting down; reconnect")
}

/// "No error".
pub fn none() -> Error {
    Error::new(ErrorCode::None, "")
}

fn code_of(error: &NodeError) -> ErrorCode {
    match error {
        NodeError::UnknownTopicOrPartition { .. } => ErrorCode::UnknownTopicOrPartition,
        NodeError::NotLeader { .. } | NodeError::NoControllerLease { .. } => ErrorCode::NotLeader,
        NodeError::InvalidRequiredAcks { .. } => ErrorCode::InvalidRequiredAcks,
        NodeError::Record(record) => record.code().into(),
        NodeError::Log(log) => log_code(log),
        NodeError::Controller(controller) => controller_code(controller),
        NodeError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        NodeError::FencedLeaderEpoch { .. } => ErrorCode::FencedLeaderEpoch,
        NodeError::UnknownLeaderEpoch { .. } => ErrorCode::UnknownLeaderEpoch,
        NodeError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequence,
        NodeError::ProducerFenced { .. } => ErrorCode::ProducerFenced,
        NodeError::UnknownProducerId { .. } => ErrorCode::UnknownProducerId,
        NodeError::NotEnoughReplicas { .. } => ErrorCode::NotEnoughReplicas,
        NodeError::NotEnoughReplicasAfterAppend => ErrorCode::NotEnoughReplicasAfterAppend,
        NodeError::RequestTimedOut { .. } => ErrorCode::RequestTimedOut,
        NodeError::OffsetNotAvailable { .. } => ErrorCode::OffsetNotAvailable,
        NodeError::ShuttingDown => ErrorCode::BrokerNotAvailable,
        NodeError::InvalidRequest { .. } => ErrorCode::InvalidRequest,
        NodeError::InternalTopic { .. } => ErrorCode::InvalidTopic,
        NodeError::Group(group) => group_code(group),
        NodeError::NotCoordinator { .. } => ErrorCode::NotCoordinator,
        NodeError::CoordinatorLoadInProgress { .. } => ErrorCode::CoordinatorLoadInProgress,
        NodeError::CoordinatorNotAvailable { .. } => ErrorCode::CoordinatorNotAvailable,
        NodeError::InvalidGroupId { .. } => ErrorCode::InvalidGroupId,
        NodeError::GroupIdNotFound { .. } => ErrorCode::GroupIdNotFound,
        NodeError::InvalidCommitOffset { .. } => ErrorCode::InvalidCommitOffset,
    }
}

fn group_code(error: &GroupError) -> ErrorCode {
    match error {
        GroupError::UnknownMemberId { .. } => ErrorCode::UnknownMemberId,
        GroupError::FencedMemberEpoch { .. } => ErrorCode::FencedMemberEpoch,
        GroupError::StaleMemberEpoch { .. } => ErrorCode::StaleMemberEpoch,
        GroupError::PartitionNotAssigned { .. } => ErrorCode::PartitionNotAssigned,
        GroupError::NonEmptyGroup { .. } => ErrorCode::NonEmptyGroup,
        GroupError::UnsupportedAssignor { .. } => ErrorCode::UnsupportedAssignor,
        GroupError::GroupMaxSizeReached { .. } => ErrorCode::GroupMaxSizeReached,
        GroupError::UnreleasedInstanceId { .. } => ErrorCode::UnreleasedInstanceId,
        GroupError::InvalidRequest { .. } => ErrorCode::InvalidRequest,
    }
}

fn log_code(error: &LogError) -> ErrorCode {
    match error {
        LogError::InvalidBatch(record) => record.code().into(),
        LogError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        LogError::StaleLeaderEpoch { .. } => ErrorCode::FencedLeaderEpoch,
        // Leadership moved while the request was in flight: retriable, ask again.
        LogError::NotLeading { .. }
        | LogError::NotFollowing { .. }
        | LogError::Truncated { .. } => ErrorCode::NotLeader,
        _ => ErrorCode::StorageError,
    }
}

fn controller_code(error: &ControllerError) -> ErrorCode {
    match error.code_name() {
        "INVALID_TOPIC" => ErrorCode::InvalidTopic,
        "TOPIC_ALREADY_EXISTS" => ErrorCode::TopicAlreadyExists,
        "UNKNOWN_TOPIC_OR_PARTITION" => ErrorCode::UnknownTopicOrPartition,
        "INVALID_PARTITIONS" => ErrorCode::InvalidPartitions,
        "INVALID_REPLICATION_FACTOR" => ErrorCode::InvalidReplicationFactor,
        "INVALID_CONFIG" => ErrorCode::InvalidConfig,
        "STORAGE_ERROR" => ErrorCode::StorageError,
        "INVALID_REPLICA_ASSIGNMENT" => ErrorCode::InvalidReplicaAssignment,
        "NOT_CONTROLLER" => ErrorCode::NotController,
        "STALE_BROKER_EPOCH" => ErrorCode::StaleBrokerEpoch,
        "FENCED_LEADER_EPOCH" => ErrorCode::FencedLeaderEpoch,
        "NOT_LEADER" => ErrorCode::NotLeader,
        "INVALID_UPDATE_VERSION" => ErrorCode::InvalidUpdateVersion,
        "INELIGIBLE_REPLICA" => ErrorCode::IneligibleReplica,
        "INVALID_REQUEST" => ErrorCode::InvalidRequest,
        _ => ErrorCode::UnknownServerError,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn storage_errors_reach_clients_without_server_paths() {
        let error = NodeError::Log(LogError::Offline {
            dir: PathBuf::from("/var/lib/strata/orders-0"),
            reason: "corrupt batch in /var/lib/strata/orders-0/00000000000000000000.log at byte 451: batch CRC mismatch".to_owned(),
        });
        let wire = to_wire(&error);
        assert_eq!(wire.error_code(), ErrorCode::StorageError);
        assert!(!wire.message.contains("/var/lib"), "{}", wire.message);
        assert!(wire.message.contains("<path>"), "{}", wire.message);
        assert!(wire.message.contains("at byte 451"), "{}", wire.message);
    }

    #[test]
    fn a_batch_truncated_before_it_counted_is_not_leader_and_retriable() {
        let error = NodeError::Log(LogError::Truncated {
            path: PathBuf::from("/var/lib/strata/orders-0"),
            target: strata_proto::types::Offset(12),
            log_end_offset: strata_proto::types::Offset(10),
        });
        let wire = to_wire(&error);
        assert_eq!(wire.error_code(), ErrorCode::NotLeader);
        assert!(wire.retriable, "{wire:?}");
    }

    #[test]
    fn isr_change_refusals_have_their_wire_codes() {
        let cases = [
            (
                ControllerError::FencedLeaderEpoch {
                    topic: "t".into(),
                    partition: 0,
                    leader_epoch: 1,
                    current: 2,
                },
                ErrorCode::FencedLeaderEpoch,
            ),
            (
                ControllerError::NotLeaderOrFollower {
                    topic: "t".into(),
                    partition: 0,
                    broker_id: 2,
                    leader: Some(1),
                },
                ErrorCode::NotLeader,
            ),
            (
                ControllerError::InvalidUpdateVersion {
                    topic: "t".into(),
                    partition: 0,
                    partition_epoch: 3,
                    current: 4,
                },
                ErrorCode::InvalidUpdateVersion,
            ),
            (
                ControllerError::IneligibleReplica {
                    topic: "t".into(),
                    partition: 0,
                    broker_id: 3,
                    reason: "it is fenced".into(),
                },
                ErrorCode::IneligibleReplica,
            ),
            (
                ControllerError::InvalidIsr {
                    topic: "t".into(),
                    partition: 0,
                    reason: "it is empty".into(),
                },
                ErrorCode::InvalidRequest,
            ),
        ];
        for (error, code) in cases {
            let leader = matches!(error, ControllerError::NotLeaderOrFollower { .. });
            let wire = to_wire(&NodeError::Controller(error));
            assert_eq!(wire.error_code(), code, "{}", wire.message);
            assert_eq!(wire.leader_hint, if leader { 1 } else { -1 });
        }
    }

    #[test]
    fn group_errors_have_their_wire_codes_and_say_why() {
        let member = || "m-1".to_owned();
        let cases = [
            (
                NodeError::Group(GroupError::UnknownMemberId {
                    group_id: "g".into(),
                    member_id: member(),
                }),
                ErrorCode::UnknownMemberId,
            ),
            (
                NodeError::Group(GroupError::FencedMemberEpoch {
                    member_id: member(),
                    sent: 1,
                    current: 2,
                }),
                ErrorCode::FencedMemberEpoch,
            ),
            (
                NodeError::Group(GroupError::StaleMemberEpoch {
                    member_id: member(),
                    sent: 1,
                    current: 2,
                }),
                ErrorCode::StaleMemberEpoch,
            ),
            (
                NodeError::Group(GroupError::PartitionNotAssigned {
                    member_id: member(),
                    topic: "t".into(),
                    partition: 0,
                }),
                ErrorCode::PartitionNotAssigned,
            ),
            (
                NodeError::Group(GroupError::NonEmptyGroup {
                    group_id: "g".into(),
                    members: 2,
                }),
                ErrorCode::NonEmptyGroup,
            ),
            (
                NodeError::NotCoordinator {
                    group_id: "g".into(),
                    reason: "broker 2 leads __consumer_offsets-3".into(),
                },
                ErrorCode::NotCoordinator,
            ),
            (
                NodeError::CoordinatorLoadInProgress {
                    group_id: "g".into(),
                    partition: 3,
                },
                ErrorCode::CoordinatorLoadInProgress,
            ),
            (
                NodeError::InvalidGroupId {
                    group_id: String::new(),
                    reason: "it is empty".into(),
                },
                ErrorCode::InvalidGroupId,
            ),
            (
                NodeError::InvalidCommitOffset {
                    topic: "t".into(),
                    partition: 0,
                    offset: 9,
                    high_watermark: 5,
                },
                ErrorCode::InvalidCommitOffset,
            ),
            (
                NodeError::InternalTopic {
                    topic: "__consumer_offsets".into(),
                },
                ErrorCode::InvalidTopic,
            ),
        ];
        for (error, code) in cases {
            let wire = to_wire(&error);
            assert_eq!(wire.error_code(), code, "{}", wire.message);
            assert_eq!(wire.message, error.to_string());
            assert!(!wire.message.is_empty());
        }
    }

    #[test]
    fn other_errors_keep_their_message() {
        let error = NodeError::UnknownTopicOrPartition {
            topic: "a/b".to_owned(),
            partition: 3,
        };
        assert_eq!(to_wire(&error).message, "unknown topic or partition a/b-3");
        assert_eq!(
            without_paths("in /x/y: (/z) ok /"),
            "in <path>: (<path>) ok /"
        );
    }
}
