//! [`Error`]: the one error type of the client library, and what each error means for a
//! caller (`docs/CLIENT.md`, "Errors").
//!
//! Every error answers two questions: [`Error::is_retriable`] (may the same call succeed
//! later?) and, for writes, [`Error::outcome`] ([`WriteOutcome::NotApplied`]: certainly not
//! written; [`WriteOutcome::Unknown`]: it may have been written, and with idempotence a
//! retry is safe). Broker errors keep the wire code so tools can print Kafka's names
//! ([`Error::code_name`]).

use std::time::Duration;

use strata_proto::api::v1 as wire;
use strata_proto::record::RecordError;

pub use strata_proto::api::v1::ErrorCode;

/// Whether a failed write may have been applied by the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteOutcome {
    /// The write was certainly not applied.
    NotApplied,
    /// The write may have been applied (timeouts, lost connections): retrying with the same
    /// producer id and sequence number is safe, the broker deduplicates.
    Unknown,
}

/// Everything that can go wrong in a client call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The broker answered with a typed error code.
    #[error("{}", broker_message(*.code, .message))]
    Broker {
        code: ErrorCode,
        message: String,
        /// As the broker said; for codes the client raises itself, [`ErrorCode::is_retriable`].
        retriable: bool,
    },
    /// A gRPC call failed without a Strata error code (connection reset, bad frame, …).
    #[error("gRPC call failed: {}", transport_message(.0))]
    Transport(#[source] tonic::Status),
    /// No connection could be opened to a broker.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// A call or a record's delivery took longer than its timeout.
    #[error(
        "{operation} timed out after {}{}{}",
        humanize(*.after),
        timeout_note(operation, *.outcome),
        last_error_note(.last_error.as_deref())
    )]
    Timeout {
        operation: &'static str,
        after: Duration,
        /// Whether the request may have reached the broker.
        outcome: WriteOutcome,
        /// The retriable error the last attempt got, when there was one (a delivery that
        /// kept meeting `NOT_ENOUGH_REPLICAS` says so, rather than only "timed out").
        last_error: Option<String>,
    },
    /// A setting has a bad value or an unknown name.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A record could not be encoded, or a fetched batch could not be decoded (bad CRC, …).
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The producer's buffer (`buffer.memory`) is full; `enqueue` does not wait.
    #[error("producer buffer is full ({buffer_memory_bytes} bytes in use); retry after awaiting some deliveries")]
    BufferFull { buffer_memory_bytes: usize },
    /// The feature exists in the API but not yet in this client or broker.
    #[error("{0} is not supported yet")]
    Unsupported(String),
    /// A record's due time ([`crate::Record::deliver_at`]) was refused by the producer's
    /// checks against the topic's configs; nothing was written.
    #[error(transparent)]
    DeliveryTime(#[from] crate::delayed_delivery::DeliveryTimeError),
    /// The producer, consumer or client was closed.
    #[error("the {0} is closed")]
    Closed(&'static str),
    /// The producer stopped for good after a fatal error (a sequence gap, a fenced producer
    /// id), raised by this record's batch or by another one; build a new producer to go
    /// on ([`crate::Producer::is_fatal`]). `outcome` is what is known of this record.
    #[error("the producer stopped after a fatal error: {message}{}", may_be_written(*.outcome))]
    ProducerStopped {
        code: ErrorCode,
        message: String,
        outcome: WriteOutcome,
    },
}

/// The note a write error carries when the write may have been applied.
fn may_be_written(outcome: WriteOutcome) -> &'static str {
    match outcome {
        WriteOutcome::Unknown => " (the record may have been written)",
        WriteOutcome::NotApplied => " (the record was not written)",
    }
}

/// A produce timeout says what is known of the record; other calls' timeouts need not.
fn last_error_note(last_error: Option<&str>) -> String {
    last_error.map_or_else(String::new, |error| {
        format!("; the last attempt failed with: {error}")
    })
}

fn timeout_note(operation: &str, outcome: WriteOutcome) -> &'static str {
    match operation {
        "delivery" | "produce request" => may_be_written(outcome),
        _ => "",
    }
}

impl Error {
    /// A broker-style error the client raises itself, e.g. an unknown partition number.
    pub(crate) fn broker(code: ErrorCode, message: impl Into<String>) -> Error {
        Error::Broker {
            code,
            message: message.into(),
            retriable: code.is_retriable(),
        }
    }

    /// The error a response carries, or `None` when it says `NONE` (or is absent).
    pub(crate) fn from_wire(error: Option<&wire::Error>) -> Option<Error> {
        let error = error?;
        if error.is_none() {
            return None;
        }
        let code = error.error_code();
        Some(Error::Broker {
            code,
            message: error.message.clone(),
            retriable: error.retriable || code.is_retriable(),
        })
    }

    /// The wire error code, for broker errors.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Broker { code, .. } | Error::ProducerStopped { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Kafka's SCREAMING_SNAKE name for broker codes (`INVALID_TOPIC`), otherwise a name
    /// for the client-side kind (`TRANSPORT`, `TIMEOUT`, …). For `error: <msg> (<CODE>)`.
    pub fn code_name(&self) -> &'static str {
        match self {
            Error::Broker { code, .. } => code.as_str_name(),
            Error::Transport(_) => "TRANSPORT",
            Error::Connect { .. } => "CONNECT",
            Error::Timeout { .. } => "TIMEOUT",
            Error::InvalidConfig(_) => "INVALID_CONFIG",
            Error::Record(error) => ErrorCode::from(error.code()).as_str_name(),
            Error::BufferFull { .. } => "BUFFER_FULL",
            Error::Unsupported(_) => "UNSUPPORTED",
            Error::DeliveryTime(_) => "INVALID_DELIVERY_TIME",
            Error::Closed(_) => "CLOSED",
            Error::ProducerStopped { code, .. } => code.as_str_name(),
        }
    }

    /// Whether the same call may succeed if made again later.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Broker { retriable, .. } => *retriable,
            Error::Transport(status) => status_is_retriable(status.code()),
            Error::Connect { .. } | Error::Timeout { .. } | Error::BufferFull { .. } => true,
            Error::Record(error) => error.is_retriable(),
            Error::InvalidConfig(_)
            | Error::Unsupported(_)
            | Error::DeliveryTime(_)
            | Error::Closed(_)
            | Error::ProducerStopped { .. } => false,
        }
    }

    /// For a failed write: whether it may have been applied (`docs/CLIENT.md`, "Errors").
    pub fn outcome(&self) -> WriteOutcome {
        match self {
            Error::Broker { code, .. } => match code {
                ErrorCode::RequestTimedOut
                | ErrorCode::NotEnoughReplicasAfterAppend
                | ErrorCode::UnknownServerError
                | ErrorCode::StorageError => WriteOutcome::Unknown,
                _ => WriteOutcome::NotApplied,
            },
            Error::Transport(status) => match status.code() {
                tonic::Code::InvalidArgument
                | tonic::Code::NotFound
                | tonic::Code::AlreadyExists
                | tonic::Code::PermissionDenied
                | tonic::Code::Unauthenticated
                | tonic::Code::FailedPrecondition
                | tonic::Code::OutOfRange
                | tonic::Code::Unimplemented => WriteOutcome::NotApplied,
                _ => WriteOutcome::Unknown,
            },
            Error::Timeout { outcome, .. } | Error::ProducerStopped { outcome, .. } => *outcome,
            Error::Connect { .. }
            | Error::InvalidConfig(_)
            | Error::Record(_)
            | Error::BufferFull { .. }
            | Error::Unsupported(_)
            | Error::DeliveryTime(_)
            | Error::Closed(_) => WriteOutcome::NotApplied,
        }
    }

    /// Whether the client's routing may be stale: the metadata should be refreshed before
    /// a retry (wrong leader, unknown partition, broker gone, or a broker that did not
    /// answer in time: a paused leader keeps its connections open, and one cut off from
    /// the other brokers cannot replicate, while another broker may lead already).
    pub fn needs_metadata_refresh(&self) -> bool {
        match self {
            Error::Broker { code, .. } => matches!(
                code,
                ErrorCode::NotLeader
                    | ErrorCode::FencedLeaderEpoch
                    | ErrorCode::UnknownLeaderEpoch
                    | ErrorCode::UnknownTopicOrPartition
                    | ErrorCode::BrokerNotAvailable
                    | ErrorCode::RequestTimedOut
            ),
            Error::Transport(_) | Error::Connect { .. } | Error::Timeout { .. } => true,
            _ => false,
        }
    }

    /// Whether a group call must go to another broker: the group's coordinator moved or
    /// is not known yet (`NOT_COORDINATOR`, `COORDINATOR_NOT_AVAILABLE`); ask
    /// `FindCoordinator` again before retrying.
    pub fn needs_coordinator_refresh(&self) -> bool {
        matches!(
            self.code(),
            Some(ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable)
        )
    }

    /// Whether a group member was fenced or expelled (`FENCED_MEMBER_EPOCH`,
    /// `UNKNOWN_MEMBER_ID`): its partitions are lost, its commit was not applied, and it
    /// joins the group again with a new member epoch.
    pub fn is_member_fenced(&self) -> bool {
        matches!(
            self.code(),
            Some(ErrorCode::FencedMemberEpoch | ErrorCode::UnknownMemberId)
        )
    }

    /// Whether the producer cannot go on after this error and must be rebuilt.
    pub(crate) fn is_fatal_for_producer(&self) -> bool {
        matches!(
            self.code(),
            Some(
                ErrorCode::OutOfOrderSequence
                    | ErrorCode::ProducerFenced
                    | ErrorCode::UnknownProducerId
            )
        )
    }
}

impl Error {
    /// A copy of this error, e.g. one for each record of a failed batch. `Error` is not `Clone` (it holds a
    /// `tonic::Status` and transport errors), so this keeps what a caller needs: the kind,
    /// code, message, retriability and outcome.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Broker {
                code,
                message,
                retriable,
            } => Error::Broker {
                code: *code,
                message: message.clone(),
                retriable: *retriable,
            },
            Error::Transport(status) => Error::Transport(tonic::Status::new(
                status.code(),
                status.message().to_owned(),
            )),
            Error::Timeout {
                operation,
                after,
                outcome,
                last_error,
            } => Error::Timeout {
                operation,
                after: *after,
                outcome: *outcome,
                last_error: last_error.clone(),
            },
            Error::InvalidConfig(message) => Error::InvalidConfig(message.clone()),
            Error::Record(error) => Error::Record(error.clone()),
            Error::BufferFull {
                buffer_memory_bytes,
            } => Error::BufferFull {
                buffer_memory_bytes: *buffer_memory_bytes,
            },
            Error::Unsupported(what) => Error::Unsupported(what.clone()),
            Error::DeliveryTime(error) => Error::DeliveryTime(error.clone()),
            Error::Closed(what) => Error::Closed(what),
            Error::ProducerStopped {
                code,
                message,
                outcome,
            } => Error::ProducerStopped {
                code: *code,
                message: message.clone(),
                outcome: *outcome,
            },
            Error::Connect { address, source } => Error::Transport(tonic::Status::unavailable(
                format!("cannot connect to {address}: {source}"),
            )),
        }
    }
}

impl From<tonic::Status> for Error {
    /// A status whose details hold a Strata `Error` (a broker may send its typed error
    /// there rather than in a response) becomes [`Error::Broker`].
    fn from(status: tonic::Status) -> Error {
        use prost::Message;
        let details = status.details();
        if !details.is_empty() {
            if let Ok(error) = wire::Error::decode(details) {
                if let Some(broker) = Error::from_wire(Some(&error)) {
                    return broker;
                }
            }
        }
        Error::Transport(status)
    }
}

fn status_is_retriable(code: tonic::Code) -> bool {
    // Connection resets surface as Unknown or Internal depending on where hyper noticed
    // them; retrying those is bounded by the caller's timeout, so lean towards retrying.
    matches!(
        code,
        tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::ResourceExhausted
            | tonic::Code::Aborted
            | tonic::Code::Cancelled
            | tonic::Code::Unknown
            | tonic::Code::Internal
    )
}

fn broker_message(code: ErrorCode, message: &str) -> String {
    if message.is_empty() {
        format!("broker error {}", code.as_str_name())
    } else {
        message.to_owned()
    }
}

fn transport_message(status: &tonic::Status) -> String {
    if status.message().is_empty() {
        format!("{:?}", status.code())
    } else {
        format!("{} ({:?})", status.message(), status.code())
    }
}

fn humanize(duration: Duration) -> String {
    if duration.as_millis() < 10_000 {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{} s", duration.as_secs())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn routing_errors_are_retriable_and_not_applied() {
        for code in [
            ErrorCode::NotLeader,
            ErrorCode::FencedLeaderEpoch,
            ErrorCode::NotEnoughReplicas,
            ErrorCode::CorruptMessage,
            ErrorCode::UnknownTopicOrPartition,
        ] {
            let error = Error::broker(code, "x");
            assert!(error.is_retriable(), "{code:?}");
            assert_eq!(error.outcome(), WriteOutcome::NotApplied, "{code:?}");
        }
        assert!(Error::broker(ErrorCode::NotLeader, "").needs_metadata_refresh());
        assert!(!Error::broker(ErrorCode::NotEnoughReplicas, "").needs_metadata_refresh());
        // A paused leader keeps the connection open: only the timeout says it is gone.
        let timeout = Error::Timeout {
            operation: "produce",
            after: std::time::Duration::from_secs(1),
            outcome: WriteOutcome::Unknown,
            last_error: None,
        };
        assert!(timeout.needs_metadata_refresh());
    }

    #[test]
    fn timeouts_and_lost_connections_have_an_unknown_outcome() {
        let timed_out = Error::broker(ErrorCode::RequestTimedOut, "acks=all wait expired");
        assert!(timed_out.is_retriable());
        assert_eq!(timed_out.outcome(), WriteOutcome::Unknown);
        let appended = Error::broker(ErrorCode::NotEnoughReplicasAfterAppend, "isr shrank");
        assert!(appended.is_retriable());
        assert_eq!(appended.outcome(), WriteOutcome::Unknown);
        let reset = Error::Transport(tonic::Status::unavailable("connection reset"));
        assert!(reset.is_retriable());
        assert_eq!(reset.outcome(), WriteOutcome::Unknown);
        assert_eq!(reset.code_name(), "TRANSPORT");
    }

    #[test]
    fn validation_and_fencing_errors_are_final() {
        for code in [
            ErrorCode::MessageTooLarge,
            ErrorCode::InvalidRecord,
            ErrorCode::InvalidTimestamp,
            ErrorCode::InvalidTopic,
            ErrorCode::OutOfOrderSequence,
            ErrorCode::ProducerFenced,
            ErrorCode::OffsetOutOfRange,
        ] {
            let error = Error::broker(code, "");
            assert!(!error.is_retriable(), "{code:?}");
            assert_eq!(error.outcome(), WriteOutcome::NotApplied);
        }
        assert!(Error::broker(ErrorCode::OutOfOrderSequence, "").is_fatal_for_producer());
        assert!(!Error::broker(ErrorCode::MessageTooLarge, "").is_fatal_for_producer());
        assert!(!Error::InvalidConfig("x".into()).is_retriable());
    }

    #[test]
    fn group_errors_say_whether_to_find_the_coordinator_again_or_rejoin() {
        for code in [
            ErrorCode::NotCoordinator,
            ErrorCode::CoordinatorNotAvailable,
        ] {
            let error = Error::broker(code, "");
            assert!(
                error.is_retriable() && error.needs_coordinator_refresh(),
                "{code:?}"
            );
            assert!(!error.is_member_fenced());
        }
        let loading = Error::broker(ErrorCode::CoordinatorLoadInProgress, "");
        assert!(loading.is_retriable() && !loading.needs_coordinator_refresh());
        let stale = Error::broker(ErrorCode::StaleMemberEpoch, "");
        assert!(stale.is_retriable() && !stale.is_member_fenced());
        for code in [ErrorCode::FencedMemberEpoch, ErrorCode::UnknownMemberId] {
            let error = Error::broker(code, "");
            assert!(
                !error.is_retriable() && error.is_member_fenced(),
                "{code:?}"
            );
            assert_eq!(error.outcome(), WriteOutcome::NotApplied);
        }
        for code in [
            ErrorCode::InvalidGroupId,
            ErrorCode::NonEmptyGroup,
            ErrorCode::InvalidCommitOffset,
            ErrorCode::PartitionNotAssigned,
            ErrorCode::UnreleasedInstanceId,
        ] {
            let error = Error::broker(code, "");
            assert!(!error.is_retriable(), "{code:?}");
            assert!(!error.is_member_fenced() && !error.needs_coordinator_refresh());
        }
        assert_eq!(
            Error::broker(ErrorCode::FencedMemberEpoch, "").code_name(),
            "FENCED_MEMBER_EPOCH"
        );
    }

    #[test]
    fn wire_errors_keep_their_code_name_and_message() {
        let wire = wire::Error::new(ErrorCode::InvalidTopic, "topic name contains '/'");
        let error = Error::from_wire(Some(&wire)).unwrap();
        assert_eq!(error.code(), Some(ErrorCode::InvalidTopic));
        assert_eq!(error.code_name(), "INVALID_TOPIC");
        assert_eq!(error.to_string(), "topic name contains '/'");
        assert!(Error::from_wire(Some(&wire::Error::new(ErrorCode::None, ""))).is_none());
        assert!(Error::from_wire(None).is_none());
        let unnamed = Error::broker(ErrorCode::NotLeader, "");
        assert_eq!(unnamed.to_string(), "broker error NOT_LEADER");
    }

    #[test]
    fn status_details_carry_the_strata_code() {
        use prost::Message;
        let wire = wire::Error::new(ErrorCode::NotLeader, "leader moved");
        let status = tonic::Status::with_details(
            tonic::Code::Unavailable,
            "not leader",
            wire.encode_to_vec().into(),
        );
        let error = Error::from(status);
        assert_eq!(error.code(), Some(ErrorCode::NotLeader));
        assert!(error.is_retriable());
        let plain = Error::from(tonic::Status::invalid_argument("bad"));
        assert!(matches!(plain, Error::Transport(_)));
        assert!(!plain.is_retriable());
        assert_eq!(plain.outcome(), WriteOutcome::NotApplied);
    }
}
