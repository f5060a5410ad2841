//! Hostile inputs 20 and 21 (`docs/RELIABILITY.md`): records and batches over the size
//! limits, and timestamps below -1 or outside the configured window.

use strata_proto::record::{
    validate_batch, Record, RecordError, RecordErrorCode, TimestampWindow, ValidateLimits,
};

use crate::{assert_reason, built, defaults, forge, refused};

#[test]
fn hostile_20_record_over_the_limit_is_message_too_large() {
    let batch = built(&[
        Record::from_value(1, vec![7u8; 100]),
        Record::from_value(1, vec![7u8; 2_000]),
    ]);
    let limits = ValidateLimits {
        record_bytes_max: 1_000,
        ..defaults()
    };
    let error = refused(&batch, &limits, RecordErrorCode::MessageTooLarge);
    assert!(
        matches!(
            error,
            RecordError::RecordTooLarge {
                offset_delta: 1,
                max: 1_000,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn hostile_20_batch_over_the_cap_is_message_too_large() {
    let batch = built(&[Record::from_value(1, vec![7u8; 2_000])]);
    let limits = ValidateLimits {
        batch_bytes_max: batch.len() - 1,
        ..defaults()
    };
    let error = refused(&batch, &limits, RecordErrorCode::MessageTooLarge);
    assert_eq!(
        error,
        RecordError::MessageTooLarge {
            size: batch.len() as u64,
            max: batch.len() as u64 - 1
        }
    );
    let at_the_cap = ValidateLimits {
        batch_bytes_max: batch.len(),
        ..defaults()
    };
    validate_batch(&batch, &at_the_cap).unwrap();
}

#[test]
fn hostile_21_timestamp_below_minus_one_is_invalid_timestamp() {
    let below = forge::batch(forge::header(1), &forge::record(0, -2, b"v"));
    let error = refused(&below, &defaults(), RecordErrorCode::InvalidTimestamp);
    assert!(
        matches!(
            error,
            RecordError::InvalidTimestamp {
                timestamp_ms: -2,
                ..
            }
        ),
        "{error}"
    );
    let mut header = forge::header(1);
    header.base_timestamp = i64::MIN;
    header.max_timestamp = i64::MIN;
    let batch = forge::batch(header, &forge::record(0, 0, b"v"));
    refused(&batch, &defaults(), RecordErrorCode::InvalidTimestamp);
}

#[test]
fn hostile_21_far_future_and_far_past_are_invalid_timestamps_outside_the_window() {
    const NOW_MS: i64 = 1_750_000_000_000;
    const HOUR_MS: i64 = 3_600_000;
    const YEAR_9999_MS: i64 = 253_402_300_799_000;
    let limits = ValidateLimits {
        timestamp_window: Some(TimestampWindow {
            now_ms: NOW_MS,
            before_ms_max: 7 * 24 * HOUR_MS,
            after_ms_max: HOUR_MS,
        }),
        ..defaults()
    };
    for timestamp_ms in [
        YEAR_9999_MS,
        NOW_MS + HOUR_MS + 1,
        0,
        NOW_MS - 8 * 24 * HOUR_MS,
    ] {
        let batch = built(&[
            Record::from_value(NOW_MS, &b"ok"[..]),
            Record::from_value(timestamp_ms, &b"bad"[..]),
        ]);
        let error = refused(&batch, &limits, RecordErrorCode::InvalidTimestamp);
        assert!(
            matches!(error, RecordError::InvalidTimestamp { timestamp_ms: t, .. } if t == timestamp_ms),
            "{error}"
        );
        // Without a configured window the broker accepts them (Kafka's behaviour too).
        validate_batch(&batch, &defaults()).unwrap();
    }
    let inside = built(&[Record::from_value(NOW_MS + HOUR_MS, &b"edge"[..])]);
    validate_batch(&inside, &limits).unwrap();
}

#[test]
fn hostile_21_max_timestamp_that_lies_about_the_records_is_invalid_timestamp() {
    // A far-future max_timestamp would steer the time index and retention.
    let mut header = forge::header(2);
    header.max_timestamp = 253_402_300_799_000;
    let batch = forge::batch(header, &forge::records(2));
    let error = refused(&batch, &defaults(), RecordErrorCode::InvalidTimestamp);
    assert_reason(&error, "max_timestamp differs");
}
