//! What each wire [`ErrorCode`] means for a client: retriable or not, and the one mapping
//! from record-codec errors to wire codes.

use crate::api::v1::{Error, ErrorCode};
use crate::record::RecordErrorCode;

impl ErrorCode {
    /// Whether the same request may succeed if sent again later (after a metadata
    /// refresh, a back-off, or a new connection); `docs/CLIENT.md`, "Errors". Kafka's
    /// rules: the codes of its `RetriableException`s. `INVALID_UPDATE_VERSION` and
    /// `INELIGIBLE_REPLICA` (ISR changes) are not: the same change is refused again until
    /// the sender has newer metadata and decides anew.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorCode::NotLeader
                | ErrorCode::UnknownTopicOrPartition
                | ErrorCode::NotEnoughReplicas
                | ErrorCode::NotEnoughReplicasAfterAppend
                | ErrorCode::CorruptMessage
                | ErrorCode::FencedLeaderEpoch
                | ErrorCode::UnknownLeaderEpoch
                | ErrorCode::RequestTimedOut
                | ErrorCode::BrokerNotAvailable
                | ErrorCode::NotController
                | ErrorCode::OffsetNotAvailable
                | ErrorCode::NotCoordinator
                | ErrorCode::CoordinatorLoadInProgress
                | ErrorCode::CoordinatorNotAvailable
                | ErrorCode::StaleMemberEpoch
        )
    }
}

impl Error {
    /// An error with `code` and `message`, its `retriable` flag set from the code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error {
            code: code as i32,
            message: message.into(),
            retriable: code.is_retriable(),
            leader_hint: -1,
        }
    }

    /// The code, or `UnknownServerError` for a number this client does not know.
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::try_from(self.code).unwrap_or(ErrorCode::UnknownServerError)
    }

    pub fn is_none(&self) -> bool {
        self.code == ErrorCode::None as i32
    }
}

impl From<RecordErrorCode> for ErrorCode {
    fn from(code: RecordErrorCode) -> ErrorCode {
        match code {
            RecordErrorCode::CorruptMessage => ErrorCode::CorruptMessage,
            RecordErrorCode::InvalidRecord => ErrorCode::InvalidRecord,
            RecordErrorCode::MessageTooLarge => ErrorCode::MessageTooLarge,
            RecordErrorCode::UnsupportedVersion => ErrorCode::UnsupportedVersion,
            RecordErrorCode::InvalidTimestamp => ErrorCode::InvalidTimestamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retriable_codes_follow_the_client_conventions() {
        assert!(ErrorCode::NotLeader.is_retriable());
        assert!(ErrorCode::CorruptMessage.is_retriable());
        assert!(!ErrorCode::InvalidRecord.is_retriable());
        assert!(!ErrorCode::OutOfOrderSequence.is_retriable());
        assert!(ErrorCode::NotEnoughReplicasAfterAppend.is_retriable());
        assert!(!ErrorCode::InvalidUpdateVersion.is_retriable());
        assert!(!ErrorCode::IneligibleReplica.is_retriable());
        assert!(!ErrorCode::StaleBrokerEpoch.is_retriable());
        let error = Error::new(ErrorCode::NotEnoughReplicas, "isr too small");
        assert!(error.retriable && !error.is_none());
        assert_eq!(error.error_code(), ErrorCode::NotEnoughReplicas);
    }
}
