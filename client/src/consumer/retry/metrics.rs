//! The retry and dead-letter counters, through the `metrics` facade: an application that
//! installs a recorder (for example `metrics-exporter-prometheus`) gets them; without one
//! each update is a no-op.
//!
//! | counter | labels | counts |
//! |---|---|---|
//! | `strata_client_retry_records_total` | `topic`, `group`, `level` | failed records whose retry was acknowledged (an in-place retry of `Ordering::BlockPartition` counts at its level too) |
//! | `strata_client_dlt_records_total` | `topic`, `group`, `kind` | records acknowledged by the dead-letter topic; `kind` is `exhausted` or `non-retryable` |
//! | `strata_client_retry_handoff_failures_total` | `topic`, `group` | hand-off produces that failed (each failed resend counts again) |
//!
//! `topic` is the source topic the record was first read from, never a retry topic, so
//! one query sums a topic's retries across levels.

use ::metrics::counter;

use crate::retry_topics::FailureKind;

const RETRY_RECORDS_TOTAL: &str = "strata_client_retry_records_total";
const DLT_RECORDS_TOTAL: &str = "strata_client_dlt_records_total";
const HANDOFF_FAILURES_TOTAL: &str = "strata_client_retry_handoff_failures_total";

/// Where a failed record went, with the labels its counters carry.
#[derive(Debug, Clone)]
pub(super) struct HandoffLabels {
    pub(super) source: String,
    pub(super) group: String,
    pub(super) destination: Destination,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Destination {
    Retry { level: u32 },
    DeadLetter(FailureKind),
}

impl HandoffLabels {
    /// The record is safe where it went (or, in place, will be read again).
    pub(super) fn acknowledged(&self) {
        let (source, group) = (self.source.clone(), self.group.clone());
        match self.destination {
            Destination::Retry { level } => counter!(
                RETRY_RECORDS_TOTAL,
                "topic" => source,
                "group" => group,
                "level" => level.to_string()
            )
            .increment(1),
            Destination::DeadLetter(kind) => counter!(
                DLT_RECORDS_TOTAL,
                "topic" => source,
                "group" => group,
                "kind" => kind.as_str()
            )
            .increment(1),
        }
    }

    /// One produce of the hand-off failed.
    pub(super) fn failed(&self) {
        counter!(
            HANDOFF_FAILURES_TOTAL,
            "topic" => self.source.clone(),
            "group" => self.group.clone()
        )
        .increment(1);
    }
}
