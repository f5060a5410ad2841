//! [`CheckedBatch`]: a batch whose framing, length field and CRC have been checked.
//!
//! The storage layer only writes checked batches. Taking this type instead of bare bytes
//! lets the produce path hand over the proof of the check it already did (as part of
//! [`validate_batch`](super::validate_batch)), so the CRC of a batch is computed once on
//! its way to the log, not twice. The fields are private: the only ways to get one are
//! the two checks below.

use super::error::RecordError;
use super::header::{check_stored_batch, BatchHeader};
use super::validate::{validate_origin, validate_records, ValidateLimits};

/// A whole batch (exactly `header.total_bytes()` bytes) that passed
/// [`check_stored_batch`]: framing within its `batch_bytes_max`, length field, CRC.
#[derive(Debug, Clone, Copy)]
pub struct CheckedBatch<'a> {
    bytes: &'a [u8],
    header: BatchHeader,
}

impl<'a> CheckedBatch<'a> {
    /// Framing (bounded by `batch_bytes_max`), length field and CRC; not the records.
    pub fn check(bytes: &'a [u8], batch_bytes_max: usize) -> Result<Self, RecordError> {
        let header = check_stored_batch(bytes, batch_bytes_max)?;
        Ok(CheckedBatch { bytes, header })
    }

    /// Everything [`validate_batch`](super::validate_batch) checks: the stored-batch
    /// checks above, what the batch's writer ([`ValidateLimits::origin`]) may send, and
    /// every record.
    pub fn validate(bytes: &'a [u8], limits: &ValidateLimits) -> Result<Self, RecordError> {
        let checked = CheckedBatch::check(bytes, limits.batch_bytes_max)?;
        validate_origin(&checked.header, limits.origin)?;
        validate_records(bytes, &checked.header, limits)?;
        Ok(checked)
    }

    /// The batch, exactly as checked.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Its parsed header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }
}
