//! The one mapping from domain errors to wire error codes (what each code means for a
//! client: `docs/CLIENT.md`, "Errors"). Whether a code is retriable is a property of the
//! code (`strata_proto::error_code`).

use strata_proto::api::v1::{Error, ErrorCode};
use tonic::Status;

use crate::controller::ControllerError;
use crate::log::LogError;
use crate::node::NodeError;

/// The wire error for a failed request.
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
    Error::new(code, message)
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
        NodeError::ShuttingDown => ErrorCode::BrokerNotAvailable,
        NodeError::InvalidRequest { .. } => ErrorCode::InvalidRequest,
    }
}

fn log_code(error: &LogError) -> ErrorCode {
    match error {
        LogError::InvalidBatch(record) => record.code().into(),
        LogError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        LogError::StaleLeaderEpoch { .. } => ErrorCode::FencedLeaderEpoch,
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
        _ => ErrorCode::UnknownServerError,
    }
}
