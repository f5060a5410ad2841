//! The `strata.` headers a failed record carries in the retry and dead-letter topics,
//! all UTF-8 text so that `strata consume orders.billing.dlt -f '%h\n'` is readable.
//!
//! | header | example | meaning |
//! |---|---|---|
//! | `strata.original.topic` / `.partition` / `.offset` | `orders` / `3` / `1042` | where the record was first consumed |
//! | `strata.original.timestamp-ms` | `1700000000000` | its original timestamp |
//! | `strata.original.group` | `billing` | the group that failed it |
//! | `strata.attempt` | `2` | attempts made so far |
//! | `strata.retry.due-ms` | `1700000002000` | earliest time of the next attempt (retry topics only) |
//! | `strata.first-failure-ms` | `1700000000500` | when it first failed |
//! | `strata.error.kind` | `retryable`, `non-retryable`, `exhausted` | why it is here |
//! | `strata.error.type` | `billing::PaymentDeclined` | Rust type name of the error |
//! | `strata.error.message` | `card declined` | the error's `Display` |
//! | `strata.error.detail` | `caused by: ...` | its source chain, cut at 8 KiB |
//!
//! The `strata.` prefix is reserved: a forwarded record keeps its key, value, timestamp
//! and every other header, and its `strata.` headers are replaced by these (the
//! `strata.original.*` and first-failure headers of a record read from a retry topic
//! are carried over; `strata.replay.*` headers are kept as they are).

use bytes::Bytes;

use super::handler_error::HandlerError;
use super::policy::FailureKind;
use crate::record::{ConsumedRecord, Record};

pub const ORIGINAL_TOPIC: &str = "strata.original.topic";
pub const ORIGINAL_PARTITION: &str = "strata.original.partition";
pub const ORIGINAL_OFFSET: &str = "strata.original.offset";
pub const ORIGINAL_TIMESTAMP_MS: &str = "strata.original.timestamp-ms";
pub const ORIGINAL_GROUP: &str = "strata.original.group";
pub const ATTEMPT: &str = "strata.attempt";
pub const RETRY_DUE_MS: &str = "strata.retry.due-ms";
pub const FIRST_FAILURE_MS: &str = "strata.first-failure-ms";
pub const ERROR_KIND: &str = "strata.error.kind";
pub const ERROR_TYPE: &str = "strata.error.type";
pub const ERROR_MESSAGE: &str = "strata.error.message";
pub const ERROR_DETAIL: &str = "strata.error.detail";

/// The prefix reserved for the library's headers.
const RESERVED_PREFIX: &str = "strata.";
/// Headers set by replay, kept on a forward.
const REPLAY_PREFIX: &str = "strata.replay.";

/// The origin headers carried over from a record read from a retry topic.
const CARRIED: [&str; 6] = [
    ORIGINAL_TOPIC,
    ORIGINAL_PARTITION,
    ORIGINAL_OFFSET,
    ORIGINAL_TIMESTAMP_MS,
    ORIGINAL_GROUP,
    FIRST_FAILURE_MS,
];

/// The last value of header `key` as UTF-8 text.
pub fn header_text<'a>(record: &'a ConsumedRecord, key: &str) -> Option<&'a str> {
    record
        .headers
        .iter()
        .rev()
        .find(|(name, _)| name == key)
        .and_then(|(_, value)| value.as_deref())
        .and_then(|value| std::str::from_utf8(value).ok())
}

/// The attempts made before this one: `strata.attempt` of a record read from a retry
/// topic, 0 for one read from its source topic (or without the header).
pub fn attempts_made(record: &ConsumedRecord) -> u32 {
    header_text(record, ATTEMPT)
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}

/// `strata.retry.due-ms` of a record, when it has a valid one.
pub(crate) fn due_ms(record: &ConsumedRecord) -> Option<i64> {
    header_text(record, RETRY_DUE_MS).and_then(|text| text.parse().ok())
}

/// Where and why a failed record is forwarded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Forward<'a> {
    pub(crate) target: &'a str,
    pub(crate) group: &'a str,
    /// Attempts made so far, the one that just failed included.
    pub(crate) attempt: u32,
    /// Earliest time of the next attempt; retry topics only.
    pub(crate) due_ms: Option<i64>,
    pub(crate) kind: FailureKind,
    /// The record came from one of the group's retry topics (its origin headers hold).
    pub(crate) from_retry_topic: bool,
    /// When the record first failed; used only for a record read from its source topic.
    pub(crate) first_failure_ms: i64,
}

/// `record` as a record for `target`: the same partition number, timestamp, key and value,
/// and the headers `keep` accepts, in their order.
pub(crate) fn copy_to(
    record: &ConsumedRecord,
    target: &str,
    keep: impl Fn(&str) -> bool,
) -> Record {
    let mut out = Record::to(target)
        .partition(record.partition)
        .timestamp(record.timestamp);
    out.key = record.key.clone();
    out.value = record.value.clone();
    out.headers = record
        .headers
        .iter()
        .filter(|(key, _)| keep(key))
        .cloned()
        .collect();
    out
}

/// The record to produce to `forward.target`: same partition number, key, value,
/// timestamp and user headers, with the `strata.` headers of the module docs.
pub(crate) fn forward_record(
    record: &ConsumedRecord,
    forward: &Forward<'_>,
    error: &HandlerError,
) -> Record {
    let mut out = copy_to(record, forward.target, |key| {
        !key.starts_with(RESERVED_PREFIX) || key.starts_with(REPLAY_PREFIX)
    });
    let carried: Vec<(&str, String)> = CARRIED
        .iter()
        .filter_map(|key| Some((*key, header_text(record, key)?.to_owned())))
        .collect();
    if forward.from_retry_topic && carried.len() == CARRIED.len() {
        for (key, value) in carried {
            out = text(out, key, value);
        }
    } else {
        out = text(out, ORIGINAL_TOPIC, record.topic.to_string());
        out = text(out, ORIGINAL_PARTITION, record.partition.to_string());
        out = text(out, ORIGINAL_OFFSET, record.offset.to_string());
        out = text(out, ORIGINAL_TIMESTAMP_MS, record.timestamp.to_string());
        out = text(out, ORIGINAL_GROUP, forward.group.to_owned());
        out = text(out, FIRST_FAILURE_MS, forward.first_failure_ms.to_string());
    }
    out = text(out, ATTEMPT, forward.attempt.to_string());
    if let Some(due_ms) = forward.due_ms {
        out = text(out, RETRY_DUE_MS, due_ms.to_string());
    }
    out = text(out, ERROR_KIND, forward.kind.as_str().to_owned());
    out = text(out, ERROR_TYPE, error.type_name().to_owned());
    out = text(out, ERROR_MESSAGE, error.to_string());
    let detail = error.detail();
    if !detail.is_empty() {
        out = text(out, ERROR_DETAIL, detail);
    }
    out
}

fn text(record: Record, key: &str, value: String) -> Record {
    record.header(key, Bytes::from(value))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn consumed(topic: &str, headers: Vec<(&str, &str)>) -> ConsumedRecord {
        ConsumedRecord {
            topic: Arc::from(topic),
            partition: 3,
            offset: 1042,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from_static(b"k1")),
            value: Some(Bytes::from_static(b"v1")),
            headers: headers
                .into_iter()
                .map(|(key, value)| (key.to_owned(), Some(Bytes::from(value.to_owned()))))
                .collect(),
            leader_epoch: 0,
            high_watermark: 2000,
            log_start_offset: 0,
        }
    }

    fn texts(record: &Record) -> Vec<(String, String)> {
        record
            .headers
            .iter()
            .map(|(key, value)| {
                let value = value.as_deref().unwrap_or_default();
                (key.clone(), String::from_utf8_lossy(value).into_owned())
            })
            .collect()
    }

    fn get<'a>(headers: &'a [(String, String)], key: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    #[test]
    fn a_first_failure_records_its_origin_in_text() {
        let record = consumed("orders", vec![("trace", "abc"), ("strata.attempt", "7")]);
        let forward = Forward {
            target: "orders.billing.retry.0",
            group: "billing",
            attempt: 1,
            due_ms: Some(1_700_000_001_500),
            kind: FailureKind::Retryable,
            from_retry_topic: false,
            first_failure_ms: 1_700_000_000_500,
        };
        let out = forward_record(&record, &forward, &HandlerError::msg("card declined"));
        assert_eq!(&*out.topic, "orders.billing.retry.0");
        assert_eq!(out.partition, Some(3));
        assert_eq!(out.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(out.value.as_deref(), Some(&b"v1"[..]));
        assert_eq!(out.timestamp_ms, Some(1_700_000_000_000));
        let headers = texts(&out);
        for (key, value) in [
            ("trace", "abc"),
            (ORIGINAL_TOPIC, "orders"),
            (ORIGINAL_PARTITION, "3"),
            (ORIGINAL_OFFSET, "1042"),
            (ORIGINAL_TIMESTAMP_MS, "1700000000000"),
            (ORIGINAL_GROUP, "billing"),
            (ATTEMPT, "1"),
            (RETRY_DUE_MS, "1700000001500"),
            (FIRST_FAILURE_MS, "1700000000500"),
            (ERROR_KIND, "retryable"),
            (ERROR_TYPE, "message"),
            (ERROR_MESSAGE, "card declined"),
        ] {
            assert_eq!(get(&headers, key), Some(value), "{key}");
        }
        // A user's own `strata.` header does not survive: the prefix is reserved.
        let attempts: Vec<_> = headers.iter().filter(|(key, _)| key == ATTEMPT).collect();
        assert_eq!(attempts.len(), 1);
        assert_eq!(get(&headers, ERROR_DETAIL), None);
    }

    #[test]
    fn a_later_failure_keeps_the_origin_and_counts_on() {
        let record = consumed(
            "orders.billing.retry.1",
            vec![
                ("trace", "abc"),
                (ORIGINAL_TOPIC, "orders"),
                (ORIGINAL_PARTITION, "3"),
                (ORIGINAL_OFFSET, "17"),
                (ORIGINAL_TIMESTAMP_MS, "1600000000000"),
                (ORIGINAL_GROUP, "billing"),
                (FIRST_FAILURE_MS, "1600000000100"),
                (ATTEMPT, "2"),
                (RETRY_DUE_MS, "1600000002000"),
                ("strata.replay.count", "1"),
            ],
        );
        assert_eq!(attempts_made(&record), 2);
        assert_eq!(due_ms(&record), Some(1_600_000_002_000));
        let forward = Forward {
            target: "orders.billing.dlt",
            group: "billing",
            attempt: 3,
            due_ms: None,
            kind: FailureKind::Exhausted,
            from_retry_topic: true,
            first_failure_ms: 1_700_000_000_000,
        };
        let error = HandlerError::from(std::io::Error::other("still down"));
        let headers = texts(&forward_record(&record, &forward, &error));
        assert_eq!(get(&headers, ORIGINAL_TOPIC), Some("orders"));
        assert_eq!(get(&headers, ORIGINAL_OFFSET), Some("17"));
        assert_eq!(get(&headers, FIRST_FAILURE_MS), Some("1600000000100"));
        assert_eq!(get(&headers, ATTEMPT), Some("3"));
        assert_eq!(get(&headers, RETRY_DUE_MS), None);
        assert_eq!(get(&headers, ERROR_KIND), Some("exhausted"));
        assert_eq!(get(&headers, ERROR_TYPE), Some("std::io::error::Error"));
        assert_eq!(get(&headers, "strata.replay.count"), Some("1"));
        assert_eq!(get(&headers, "trace"), Some("abc"));
        for (key, value) in &headers {
            assert!(!value.is_empty(), "{key} is empty");
        }
    }

    #[test]
    fn records_without_the_headers_read_as_first_attempts() {
        let record = consumed("orders", vec![(ATTEMPT, "not a number")]);
        assert_eq!(attempts_made(&record), 0);
        assert_eq!(due_ms(&record), None);
    }
}
