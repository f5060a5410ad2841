//! Errors of the record batch codec. Each maps to one of the wire's typed error codes
//! through [`RecordError::code`]; a reader of fetched batches adds where
//! the bad batch is with [`RecordError::in_batch`].

use super::header::Compression;

/// The wire error code a [`RecordError`] becomes (Kafka's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordErrorCode {
    /// CRC mismatch: the bytes were damaged in flight; retriable.
    CorruptMessage,
    /// Structurally invalid batch; not retriable.
    InvalidRecord,
    /// Batch, record or decompressed size above a limit; not retriable.
    MessageTooLarge,
    /// Unknown magic byte.
    UnsupportedVersion,
    /// Timestamp outside the accepted window.
    InvalidTimestamp,
}

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("batch is truncated: {needed} bytes needed, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("batch CRC mismatch: header says {expected:#010x}, bytes hash to {actual:#010x}")]
    CrcMismatch { expected: u32, actual: u32 },
    #[error("unsupported batch magic {magic}; only magic 2 is supported")]
    UnsupportedMagic { magic: i8 },
    #[error("invalid record batch: {reason}")]
    InvalidRecord { reason: String },
    #[error("batch of {size} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge { size: u64, max: u64 },
    #[error("invalid timestamp {timestamp_ms}: {reason}")]
    InvalidTimestamp { timestamp_ms: i64, reason: String },
    #[error(
        "record at offset delta {offset_delta} is {size} bytes, above the limit of {max} bytes"
    )]
    RecordTooLarge {
        offset_delta: i32,
        size: u64,
        max: u64,
    },
    #[error("{compression} records decompress to more than the limit of {max} bytes")]
    DecompressedTooLarge { compression: Compression, max: u64 },
    #[error("{compression} compression is not supported; use none, lz4 or zstd")]
    UnsupportedCompression { compression: Compression },
    /// A record without a key sent to a compacted topic (Kafka: INVALID_RECORD,
    /// "Compacted topic cannot accept message without key").
    #[error(
        "a compacted topic cannot accept a record without a key (record at offset delta \
         {offset_delta})"
    )]
    KeyRequired { offset_delta: i32 },
    /// `error`, found in the batch at `base_offset` of a partition: what a reader of
    /// fetched batches reports, so the damage can be found. The cause is part of the
    /// message rather than a `source`, because most callers print only the message; its
    /// code and retriability are the cause's ([`RecordError::cause`]).
    #[error("{topic} partition {partition}, batch at offset {base_offset}: {error}")]
    InBatch {
        topic: String,
        partition: i32,
        base_offset: i64,
        error: Box<RecordError>,
    },
}

impl RecordError {
    pub fn code(&self) -> RecordErrorCode {
        match self.cause() {
            RecordError::CrcMismatch { .. } => RecordErrorCode::CorruptMessage,
            RecordError::Truncated { .. }
            | RecordError::InvalidRecord { .. }
            | RecordError::UnsupportedCompression { .. }
            | RecordError::KeyRequired { .. } => RecordErrorCode::InvalidRecord,
            RecordError::UnsupportedMagic { .. } => RecordErrorCode::UnsupportedVersion,
            RecordError::MessageTooLarge { .. }
            | RecordError::RecordTooLarge { .. }
            | RecordError::DecompressedTooLarge { .. } => RecordErrorCode::MessageTooLarge,
            RecordError::InvalidTimestamp { .. } => RecordErrorCode::InvalidTimestamp,
            // `cause` never returns a location.
            RecordError::InBatch { .. } => RecordErrorCode::InvalidRecord,
        }
    }

    /// This error located in the batch at `base_offset` of `topic`'s `partition`.
    pub fn in_batch(self, topic: &str, partition: i32, base_offset: i64) -> RecordError {
        let error = match self {
            RecordError::InBatch { error, .. } => error,
            other => Box::new(other),
        };
        RecordError::InBatch {
            topic: topic.to_owned(),
            partition,
            base_offset,
            error,
        }
    }

    /// The error itself, without the location [`RecordError::in_batch`] added.
    pub fn cause(&self) -> &RecordError {
        match self {
            RecordError::InBatch { error, .. } => error.cause(),
            other => other,
        }
    }

    /// Whether the same request may succeed if sent again (only damage in flight).
    pub fn is_retriable(&self) -> bool {
        self.code() == RecordErrorCode::CorruptMessage
    }

    /// Shorthand for the most common refusal: a structurally invalid batch.
    pub(crate) fn invalid(reason: impl Into<String>) -> RecordError {
        RecordError::InvalidRecord {
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_located_error_names_the_batch_and_keeps_its_code() {
        let crc = RecordError::CrcMismatch {
            expected: 1,
            actual: 2,
        };
        let located = crc.clone().in_batch("orders", 3, 1_234);
        assert_eq!(
            located.to_string(),
            format!("orders partition 3, batch at offset 1234: {crc}")
        );
        assert_eq!(located.code(), RecordErrorCode::CorruptMessage);
        assert!(located.is_retriable());
        assert_eq!(located.cause(), &crc);
        let moved = located.in_batch("orders", 3, 99);
        assert_eq!(moved.cause(), &crc, "locating again replaces the location");
        assert!(moved
            .to_string()
            .starts_with("orders partition 3, batch at offset 99: batch CRC"));
    }
}
