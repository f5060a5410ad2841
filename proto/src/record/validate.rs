//! [`validate_batch`]: what a broker runs on every produced batch before appending it.
//!
//! In order, each failure ending the check:
//! 1. framing ([`check_stored_batch`](super::check_stored_batch)): magic 2 (else `UnsupportedMagic`), known
//!    compression id and no reserved attribute bit (else `InvalidRecord`), `batch_length`
//!    within `batch_bytes_max` (else `MessageTooLarge`) and equal to the bytes present, and
//!    `last_offset_delta` = `record_count` - 1 (else `InvalidRecord`);
//! 2. the CRC (else `CrcMismatch`, the one retriable refusal);
//! 3. for a batch a client produced ([`AppendOrigin::Client`], the default): neither the
//!    control bit (attributes bit 5) nor the transactional bit (bit 4) (else
//!    `InvalidRecord`, Kafka's answer). Control batches are markers only brokers write,
//!    and Strata has no transactions yet, so a consumer would skip such a batch in
//!    silence after it was acknowledged. Batches a broker wrote itself, carried by
//!    replication ([`AppendOrigin::Replication`]), keep both bits;
//!    A client's batch must also be dense: at least one record and `last_offset_delta`
//!    = `record_count` - 1 (only the log cleaner writes batches with gaps);
//! 4. every record, walked in place (decompressed first, capped at
//!    `decompressed_bytes_max`, when compressed): lengths consistent, offset deltas
//!    `0, 1, 2, …`, exactly `record_count` records, no trailing bytes (else
//!    `InvalidRecord`); a key on every record when [`ValidateLimits::keys_required`]
//!    (a compacted topic; else `KeyRequired`, Kafka's INVALID_RECORD); each record at most `record_bytes_max` (else `RecordTooLarge`);
//!    timestamps not below -1 and, for create-time batches with a window set, inside
//!    the window (else `InvalidTimestamp`); `max_timestamp` equal to the largest record
//!    timestamp for create-time batches (else `InvalidTimestamp`), because the time index
//!    and retention trust it.
//!
//! An uncompressed batch is validated without allocating.

use super::checked::CheckedBatch;
use super::error::RecordError;
use super::header::{attributes, BatchHeader, TimestampType};
use super::model::NO_TIMESTAMP;
use super::record_wire::RecordView;
use super::section::{for_each_record, records_section};
use crate::record::decode::{BATCH_BYTES_MAX_DEFAULT, DECOMPRESSED_BYTES_MAX_DEFAULT};

/// The accepted range of create-time timestamps around the broker's clock (Kafka's
/// `log.message.timestamp.before.max.ms` / `after.max.ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampWindow {
    /// The broker's clock, milliseconds since the Unix epoch.
    pub now_ms: i64,
    /// How far in the past a timestamp may be.
    pub before_ms_max: i64,
    /// How far in the future a timestamp may be.
    pub after_ms_max: i64,
}

impl TimestampWindow {
    /// `[now - skew, now + skew]`.
    pub fn symmetric(now_ms: i64, skew_ms_max: i64) -> TimestampWindow {
        TimestampWindow {
            now_ms,
            before_ms_max: skew_ms_max,
            after_ms_max: skew_ms_max,
        }
    }

    fn check(&self, timestamp_ms: i64) -> Result<(), RecordError> {
        let earliest = self.now_ms.saturating_sub(self.before_ms_max);
        let latest = self.now_ms.saturating_add(self.after_ms_max);
        if timestamp_ms < earliest || timestamp_ms > latest {
            return Err(RecordError::InvalidTimestamp {
                timestamp_ms,
                reason: format!("outside the accepted window [{earliest}, {latest}]"),
            });
        }
        Ok(())
    }
}

/// Who wrote the batch being appended (Kafka's `AppendOrigin`): what it may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AppendOrigin {
    /// A client's produce request: no control or transactional batches.
    #[default]
    Client,
    /// A batch a leader already stored, copied to a follower: taken as the leader wrote
    /// it, control batches included.
    Replication,
}

/// The broker's limits on produced batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidateLimits {
    /// Largest whole batch (header included), as received.
    pub batch_bytes_max: usize,
    /// Largest records section a compressed batch may expand to.
    pub decompressed_bytes_max: usize,
    /// Largest single record, its length varint included (after decompression).
    pub record_bytes_max: usize,
    /// When set, create-time timestamps outside it are refused.
    pub timestamp_window: Option<TimestampWindow>,
    /// Who wrote the batch; [`AppendOrigin::Client`] refuses control and transactional
    /// batches, and batches whose offsets are not dense.
    pub origin: AppendOrigin,
    /// Refuse records without a key (`KeyRequired`): the topic is compacted, and the
    /// cleaner keeps the newest record per key, so a keyless one could never be kept.
    pub keys_required: bool,
}

impl Default for ValidateLimits {
    fn default() -> ValidateLimits {
        ValidateLimits {
            batch_bytes_max: BATCH_BYTES_MAX_DEFAULT,
            decompressed_bytes_max: DECOMPRESSED_BYTES_MAX_DEFAULT,
            record_bytes_max: BATCH_BYTES_MAX_DEFAULT,
            timestamp_window: None,
            origin: AppendOrigin::Client,
            keys_required: false,
        }
    }
}

/// Checks exactly one whole produced batch; returns its header when it may be appended.
pub fn validate_batch(batch: &[u8], limits: &ValidateLimits) -> Result<BatchHeader, RecordError> {
    CheckedBatch::validate(batch, limits).map(|checked| *checked.header())
}

/// The check of [`validate_batch`] that depends on who wrote the batch (step 3 of the
/// module docs), for a batch whose framing and CRC were already checked: after the CRC,
/// so that bits flipped in flight are reported as damage (retriable), not as a refusal.
pub(crate) fn validate_origin(
    header: &BatchHeader,
    origin: AppendOrigin,
) -> Result<(), RecordError> {
    if origin == AppendOrigin::Replication {
        return Ok(());
    }
    // Only the log cleaner leaves gaps (or no record at all) in a batch.
    if header.record_count < 1 || header.last_offset_delta != header.record_count - 1 {
        return Err(RecordError::invalid(format!(
            "record_count {} does not match last_offset_delta {}",
            header.record_count, header.last_offset_delta
        )));
    }
    if header.attributes & attributes::CONTROL != 0 {
        return Err(RecordError::invalid(
            "control batches (attributes bit 5) are written by brokers only; \
             a producer may not send one",
        ));
    }
    if header.attributes & attributes::TRANSACTIONAL != 0 {
        return Err(RecordError::invalid(
            "transactional batches (attributes bit 4) are not supported: Strata has no \
             transactions yet",
        ));
    }
    Ok(())
}

/// The record checks of [`validate_batch`], for a batch whose framing and CRC were already
/// checked ([`CheckedBatch::validate`]). Uncompressed batches are walked in place: no
/// allocation per batch or per record.
pub(crate) fn validate_records(
    batch: &[u8],
    header: &BatchHeader,
    limits: &ValidateLimits,
) -> Result<(), RecordError> {
    let section = records_section(batch, header, limits.decompressed_bytes_max)?;
    let mut max_timestamp = NO_TIMESTAMP;
    for_each_record(
        &section,
        header.record_count,
        header.last_offset_delta,
        |view| {
            if limits.keys_required && view.key.is_none() {
                return Err(RecordError::KeyRequired {
                    offset_delta: view.offset_delta,
                });
            }
            let timestamp_ms = check_record(header, &view, limits)?;
            max_timestamp = max_timestamp.max(timestamp_ms);
            Ok(())
        },
    )?;
    if header.timestamp_type() == TimestampType::CreateTime && header.max_timestamp != max_timestamp
    {
        return Err(RecordError::InvalidTimestamp {
            timestamp_ms: header.max_timestamp,
            reason: format!(
                "max_timestamp differs from the largest record timestamp {max_timestamp}"
            ),
        });
    }
    Ok(())
}

/// Checks one record's size and timestamp; returns the timestamp.
#[inline]
fn check_record(
    header: &BatchHeader,
    view: &RecordView<'_>,
    limits: &ValidateLimits,
) -> Result<i64, RecordError> {
    if view.size_bytes > limits.record_bytes_max {
        return Err(RecordError::RecordTooLarge {
            offset_delta: view.offset_delta,
            size: view.size_bytes as u64,
            max: limits.record_bytes_max as u64,
        });
    }
    let timestamp_ms = header.base_timestamp.wrapping_add(view.timestamp_delta);
    if timestamp_ms < NO_TIMESTAMP {
        return Err(RecordError::InvalidTimestamp {
            timestamp_ms,
            reason: "timestamps below -1 are not allowed".to_owned(),
        });
    }
    if let Some(window) = &limits.timestamp_window {
        if header.timestamp_type() == TimestampType::CreateTime && timestamp_ms != NO_TIMESTAMP {
            window.check(timestamp_ms)?;
        }
    }
    Ok(timestamp_ms)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::record::builder::BatchBuilder;
    use crate::record::error::RecordErrorCode;
    use crate::record::model::Record;

    fn batch(timestamps: &[i64]) -> bytes::Bytes {
        let mut builder = BatchBuilder::default();
        for &timestamp_ms in timestamps {
            builder
                .append(&Record::from_value(timestamp_ms, &b"v"[..]))
                .unwrap();
        }
        builder.build().unwrap()
    }

    #[test]
    fn a_built_batch_is_valid() {
        let header = validate_batch(&batch(&[5, -1, 7]), &ValidateLimits::default()).unwrap();
        assert_eq!((header.record_count, header.max_timestamp), (3, 7));
    }

    #[test]
    fn window_bounds_are_inclusive_and_no_timestamp_is_exempt() {
        let limits = ValidateLimits {
            timestamp_window: Some(TimestampWindow::symmetric(1_000, 100)),
            ..ValidateLimits::default()
        };
        assert!(validate_batch(&batch(&[900, 1_100, -1]), &limits).is_ok());
        for outside in [899, 1_101] {
            let error = validate_batch(&batch(&[outside]), &limits).unwrap_err();
            assert!(
                matches!(error, RecordError::InvalidTimestamp { .. }),
                "{error}"
            );
        }
    }

    /// `batch` with `bits` set in its attributes and its CRC recomputed, so that only the
    /// bits differ from a valid batch.
    fn with_attribute_bits(batch: &[u8], bits: i16) -> Vec<u8> {
        let mut bytes = batch.to_vec();
        let mut header = BatchHeader::parse(&bytes).unwrap();
        header.attributes |= bits;
        bytes[..crate::record::BATCH_HEADER_BYTES].copy_from_slice(&header.encode());
        let crc = crate::record::compute_crc(&bytes);
        crate::record::header::set_crc(&mut bytes, crc);
        bytes
    }

    #[test]
    fn control_and_transactional_batches_from_a_client_are_invalid_record() {
        for (bits, what) in [
            (attributes::CONTROL, "control"),
            (attributes::TRANSACTIONAL, "transactional"),
            (attributes::CONTROL | attributes::TRANSACTIONAL, "control"),
        ] {
            let forged = with_attribute_bits(&batch(&[5]), bits);
            let error = validate_batch(&forged, &ValidateLimits::default()).unwrap_err();
            assert_eq!(
                error.code(),
                RecordErrorCode::InvalidRecord,
                "{what}: {error}"
            );
            assert!(!error.is_retriable());
            assert!(error.to_string().contains(what), "{error}");
        }
    }

    #[test]
    fn replicated_batches_keep_their_control_and_transactional_bits() {
        let replication = ValidateLimits {
            origin: AppendOrigin::Replication,
            ..ValidateLimits::default()
        };
        for bits in [attributes::CONTROL, attributes::TRANSACTIONAL] {
            let forged = with_attribute_bits(&batch(&[5]), bits);
            let header = validate_batch(&forged, &replication).unwrap();
            assert_eq!(header.attributes & bits, bits);
            // The storage checks (recovery, dump-log) never looked at these bits.
            assert!(CheckedBatch::check(&forged, usize::MAX).is_ok());
        }
    }

    #[test]
    fn a_damaged_control_bit_is_reported_as_damage_not_refused() {
        let mut flipped = batch(&[5]).to_vec();
        flipped[crate::record::header::ATTRIBUTES_POS + 1] |= attributes::CONTROL as u8;
        let error = validate_batch(&flipped, &ValidateLimits::default()).unwrap_err();
        assert!(matches!(error, RecordError::CrcMismatch { .. }), "{error}");
    }

    #[test]
    fn a_compacted_topic_refuses_records_without_a_key() {
        let keys_required = ValidateLimits {
            keys_required: true,
            ..ValidateLimits::default()
        };
        let mut builder = BatchBuilder::default();
        builder
            .append(&Record::from_key_value(1, &b"k"[..], &b"v"[..]))
            .unwrap();
        builder.append(&Record::from_value(2, &b"v"[..])).unwrap();
        let mixed = builder.build().unwrap();
        let error = validate_batch(&mixed, &keys_required).unwrap_err();
        assert_eq!(error, RecordError::KeyRequired { offset_delta: 1 });
        assert_eq!(error.code(), RecordErrorCode::InvalidRecord);
        assert!(!error.is_retriable());
        assert!(error.to_string().contains("without a key"), "{error}");
        assert!(validate_batch(&mixed, &ValidateLimits::default()).is_ok());
        let mut builder = BatchBuilder::default();
        builder
            .append(&Record::from_key_value(1, &b"k"[..], &b"v"[..]))
            .unwrap();
        assert!(validate_batch(&builder.build().unwrap(), &keys_required).is_ok());
    }

    #[test]
    fn windows_may_be_asymmetric() {
        let window = TimestampWindow {
            now_ms: 1_000,
            before_ms_max: i64::MAX,
            after_ms_max: 0,
        };
        let limits = ValidateLimits {
            timestamp_window: Some(window),
            ..ValidateLimits::default()
        };
        assert!(validate_batch(&batch(&[0]), &limits).is_ok());
        assert!(validate_batch(&batch(&[1_001]), &limits).is_err());
    }
}
