//! Errors of the broker process layer. Each becomes exactly one wire error code in
//! `service/status.rs`.

use strata_proto::record::RecordError;
use strata_proto::types::{LeaderEpoch, Offset};

use crate::controller::ControllerError;
use crate::group::GroupError;
use crate::log::LogError;

/// Why a request to this broker failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("unknown topic or partition {topic}-{partition}")]
    UnknownTopicOrPartition { topic: String, partition: i32 },
    /// The partition exists but another broker leads it (or none does right now).
    #[error("this broker does not lead {topic}-{partition}{}", leader.map_or(" (it has no leader right now)".to_owned(), |id| format!(" (broker {id} does)")))]
    NotLeader {
        topic: String,
        partition: i32,
        leader: Option<i32>,
    },
    /// This broker has not heard from the controller within a session timeout: it may
    /// have been fenced and replaced, so it serves no partition until it hears again.
    #[error("this broker cannot reach the controller, so it serves {topic}-{partition} no more until it can; ask another broker who leads it")]
    NoControllerLease { topic: String, partition: i32 },
    #[error("acks must be -1, 0 or 1, not {acks}")]
    InvalidRequiredAcks { acks: i32 },
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Controller(#[from] ControllerError),
    #[error("offset {offset} is outside [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: Offset,
        log_start_offset: Offset,
        log_end_offset: Offset,
    },
    /// KIP-207: a new leader's high watermark is still below the start of its epoch.
    #[error(
        "the new leader's high watermark {high_watermark} has not reached the start of its \
         leader epoch, {epoch_start_offset}, yet; ask again in a moment"
    )]
    OffsetNotAvailable {
        high_watermark: Offset,
        epoch_start_offset: Offset,
    },
    #[error("leader epoch {requested} is older than the current epoch {current}")]
    FencedLeaderEpoch {
        requested: LeaderEpoch,
        current: LeaderEpoch,
    },
    #[error("leader epoch {requested} is newer than the current epoch {current}")]
    UnknownLeaderEpoch {
        requested: LeaderEpoch,
        current: LeaderEpoch,
    },
    #[error("producer {producer_id}: expected sequence {expected}, got {actual}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        actual: i32,
    },
    #[error(
        "producer {producer_id} is unknown to this partition and sent sequence {actual}, not 0"
    )]
    UnknownProducerId { producer_id: i64, actual: i32 },
    #[error("producer {producer_id} epoch {epoch} is fenced by epoch {current_epoch}")]
    ProducerFenced {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
    },
    /// Kafka's `NOT_ENOUGH_REPLICAS`: an `acks=all` batch refused before the append.
    #[error("the ISR has {isr_size} replicas, fewer than min_insync_replicas = {min_insync_replicas}; the batch was not written")]
    NotEnoughReplicas {
        isr_size: usize,
        min_insync_replicas: usize,
    },
    /// Kafka's `NOT_ENOUGH_REPLICAS_AFTER_APPEND`: the batch is in the leader's log but the
    /// ISR shrank below `min_insync_replicas` before it was replicated.
    #[error("the batch was written but the ISR shrank below min_insync_replicas before it was replicated")]
    NotEnoughReplicasAfterAppend,
    /// An `acks=all` batch not replicated to the ISR within the request's timeout.
    #[error("the batch was written but not replicated to the ISR within {timeout_ms} ms")]
    RequestTimedOut { timeout_ms: u64 },
    #[error("the broker is shutting down")]
    ShuttingDown,
    #[error("invalid request: {reason}")]
    InvalidRequest { reason: String },
    /// Users may not produce to internal topics (`__` prefix): the broker writes them.
    #[error("{topic} is an internal topic; only the broker writes to it")]
    InternalTopic { topic: String },
    // ---- Consumer groups (`node/groups*.rs`) ----
    /// A group's heartbeat or commit refused by its state machine.
    #[error(transparent)]
    Group(#[from] GroupError),
    #[error("this broker is not the coordinator of group {group_id:?}: {reason}; ask FindCoordinator again")]
    NotCoordinator { group_id: String, reason: String },
    #[error("the coordinator is still loading __consumer_offsets-{partition}, which holds group {group_id:?}; ask again in a moment")]
    CoordinatorLoadInProgress { group_id: String, partition: i32 },
    #[error("no coordinator is available: {reason}")]
    CoordinatorNotAvailable { reason: String },
    #[error("invalid group id {group_id:?}: {reason}")]
    InvalidGroupId { group_id: String, reason: String },
    #[error("group {group_id:?} does not exist on its coordinator")]
    GroupIdNotFound { group_id: String },
    #[error("offset {offset} cannot be committed for {topic}-{partition}: it must be between 0 and the high watermark {high_watermark}")]
    InvalidCommitOffset {
        topic: String,
        partition: i32,
        offset: i64,
        high_watermark: i64,
    },
}

impl NodeError {
    /// A blocking task of a request that did not finish. A panic goes on unwinding: it is
    /// a bug, and turning it into a definite refusal would tell a producer that a batch
    /// already in the log was not written. A cancelled task means the runtime is stopping.
    pub(crate) fn from_join(error: tokio::task::JoinError) -> NodeError {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => NodeError::ShuttingDown,
        }
    }
}
