//! Errors of the record batch codec. Each maps to one of the wire's typed error codes
//! (DESIGN.md §9) through [`RecordError::code`].

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
}

impl RecordError {
    pub fn code(&self) -> RecordErrorCode {
        match self {
            RecordError::CrcMismatch { .. } => RecordErrorCode::CorruptMessage,
            RecordError::Truncated { .. }
            | RecordError::InvalidRecord { .. }
            | RecordError::UnsupportedCompression { .. } => RecordErrorCode::InvalidRecord,
            RecordError::UnsupportedMagic { .. } => RecordErrorCode::UnsupportedVersion,
            RecordError::MessageTooLarge { .. }
            | RecordError::RecordTooLarge { .. }
            | RecordError::DecompressedTooLarge { .. } => RecordErrorCode::MessageTooLarge,
            RecordError::InvalidTimestamp { .. } => RecordErrorCode::InvalidTimestamp,
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
