//! What a replay sends for one dead-lettered record, and which records it takes; no I/O.
//!
//! A replayed record keeps the dead-lettered record's partition number, key, value,
//! timestamp and headers. Replay changes only its own `strata.replay.*` headers, and,
//! when the record goes back to the group's first retry topic, the two headers that
//! decide when and how often it is tried again:
//!
//! | header | set to | why |
//! |---|---|---|
//! | `strata.replay.count` | the previous count + 1 (1 the first time) | how often the record was replayed |
//! | `strata.replay.from` | `<dlt>/<partition>/<offset>` | the DLT record it came from |
//! | `strata.attempt` (retry topic only) | `0` | the group gives it every attempt again |
//! | `strata.retry.due-ms` (retry topic only) | now | due at once |
//!
//! The `strata.original.*` and `strata.error.*` headers stay as they are, so a record
//! that fails again still names where it was first read and why it failed last time
//! (the next hand-off replaces the `strata.error.*` ones).

use bytes::Bytes;

use crate::record::{ConsumedRecord, Record};
use crate::retry_topics::headers::{copy_to, header_text, ATTEMPT, RETRY_DUE_MS};

/// How many times a record was replayed.
pub const REPLAY_COUNT: &str = "strata.replay.count";
/// `<dlt>/<partition>/<offset>`: the dead-letter record a replayed record came from.
pub const REPLAY_FROM: &str = "strata.replay.from";

/// Where a replayed record goes, as far as its headers are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetKind {
    /// The group's first retry topic: attempts start again and it is due at once.
    RetryTopic,
    /// The source topic or another topic: headers other than `strata.replay.*` kept.
    Other,
}

/// The record to produce to `target` for `record`, read from dead-letter topic
/// `record.topic` (see the module docs).
pub(crate) fn replayed_record(
    record: &ConsumedRecord,
    target: &str,
    kind: TargetKind,
    now_ms: i64,
) -> Record {
    let count = header_text(record, REPLAY_COUNT)
        .and_then(|text| text.parse::<u64>().ok())
        .unwrap_or(0)
        .saturating_add(1);
    let replaced: &[&str] = match kind {
        TargetKind::RetryTopic => &[REPLAY_COUNT, REPLAY_FROM, ATTEMPT, RETRY_DUE_MS],
        TargetKind::Other => &[REPLAY_COUNT, REPLAY_FROM],
    };
    let mut out = copy_to(record, target, |key| !replaced.contains(&key));
    if kind == TargetKind::RetryTopic {
        out = text(out, ATTEMPT, "0".to_owned());
        out = text(out, RETRY_DUE_MS, now_ms.to_string());
    }
    out = text(out, REPLAY_COUNT, count.to_string());
    text(
        out,
        REPLAY_FROM,
        format!("{}/{}/{}", record.topic, record.partition, record.offset),
    )
}

/// `--where key=value` conditions; a record is taken when it has every one (the last
/// value of each header, as UTF-8 text). No condition takes every record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayFilter {
    conditions: Vec<(String, String)>,
}

impl ReplayFilter {
    pub(crate) fn add(&mut self, key: String, value: String) {
        self.conditions.push((key, value));
    }

    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }

    /// The conditions, in the order given.
    pub fn conditions(&self) -> &[(String, String)] {
        &self.conditions
    }

    pub(crate) fn matches(&self, record: &ConsumedRecord) -> bool {
        self.conditions
            .iter()
            .all(|(key, value)| header_text(record, key) == Some(value.as_str()))
    }
}

fn text(record: Record, key: &str, value: String) -> Record {
    record.header(key, Bytes::from(value))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::retry_topics::headers::{ERROR_TYPE, ORIGINAL_TOPIC};

    fn dead(headers: &[(&str, &str)]) -> ConsumedRecord {
        ConsumedRecord {
            topic: Arc::from("orders.billing.dlt"),
            partition: 2,
            offset: 17,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from_static(b"k1")),
            value: Some(Bytes::from_static(b"v1")),
            headers: headers
                .iter()
                .map(|(key, value)| ((*key).to_owned(), Some(Bytes::from(value.to_string()))))
                .collect(),
            leader_epoch: 0,
            high_watermark: 100,
            log_start_offset: 0,
        }
    }

    fn get(record: &Record, key: &str) -> Vec<String> {
        record
            .headers
            .iter()
            .filter(|(name, _)| name == key)
            .map(|(_, value)| String::from_utf8_lossy(value.as_deref().unwrap_or_default()).into())
            .collect()
    }

    #[test]
    fn a_record_replayed_to_the_retry_topic_starts_its_attempts_again() {
        let record = dead(&[
            ("trace", "abc"),
            (ORIGINAL_TOPIC, "orders"),
            (ATTEMPT, "3"),
            (ERROR_TYPE, "billing::Declined"),
        ]);
        let out = replayed_record(
            &record,
            "orders.billing.retry.0",
            TargetKind::RetryTopic,
            42,
        );
        assert_eq!(&*out.topic, "orders.billing.retry.0");
        assert_eq!(out.partition, Some(2));
        assert_eq!(out.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(out.value.as_deref(), Some(&b"v1"[..]));
        assert_eq!(out.timestamp_ms, Some(1_700_000_000_000));
        assert_eq!(get(&out, "trace"), ["abc"]);
        assert_eq!(get(&out, ORIGINAL_TOPIC), ["orders"]);
        assert_eq!(get(&out, ERROR_TYPE), ["billing::Declined"]);
        assert_eq!(get(&out, ATTEMPT), ["0"]);
        assert_eq!(get(&out, RETRY_DUE_MS), ["42"]);
        assert_eq!(get(&out, REPLAY_COUNT), ["1"]);
        assert_eq!(get(&out, REPLAY_FROM), ["orders.billing.dlt/2/17"]);
    }

    #[test]
    fn a_second_replay_counts_on_and_other_targets_keep_the_attempts() {
        let record = dead(&[
            (ATTEMPT, "3"),
            (REPLAY_COUNT, "1"),
            (REPLAY_FROM, "orders.billing.dlt/2/3"),
        ]);
        let out = replayed_record(&record, "orders", TargetKind::Other, 42);
        assert_eq!(get(&out, ATTEMPT), ["3"]);
        assert!(get(&out, RETRY_DUE_MS).is_empty());
        assert_eq!(get(&out, REPLAY_COUNT), ["2"]);
        assert_eq!(get(&out, REPLAY_FROM), ["orders.billing.dlt/2/17"]);
    }

    #[test]
    fn a_filter_takes_records_with_every_condition() {
        let record = dead(&[(ERROR_TYPE, "a::B"), ("strata.error.kind", "exhausted")]);
        let mut filter = ReplayFilter::default();
        assert!(filter.matches(&record));
        filter.add(ERROR_TYPE.to_owned(), "a::B".to_owned());
        assert!(filter.matches(&record));
        filter.add("strata.error.kind".to_owned(), "non-retryable".to_owned());
        assert!(!filter.matches(&record));
        let mut missing = ReplayFilter::default();
        missing.add("absent".to_owned(), String::new());
        assert!(!missing.matches(&record));
    }
}
