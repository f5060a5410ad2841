//! The storage layer's metric series, recorded through the `metrics` facade (a global
//! recorder the binary installs; without one, in tests and `dump-log`, each call costs a
//! check and does nothing). The admin listener describes and renders them with the other
//! series (`admin/metrics.rs`, `GET /metrics`).
//!
//! - [`FSYNC_DURATION_SECONDS`]: every fsync, directory fsync and index `msync` of
//!   [`super::durable`]. With group commit one fsync covers many appends, so its count is
//!   fewer than the appends; a p99 that climbs is a sick or saturated disk.
//! - [`LOG_RECOVERY_TRUNCATED_BYTES_TOTAL`]: torn tails cut at start-up.
//! - [`LOG_CORRUPTION_DETECTED_TOTAL`]: logs found damaged at start-up (they stay
//!   offline until repaired), by kind of damage.

use std::time::Instant;

use super::error::LogError;

/// Histogram: seconds per fsync.
pub const FSYNC_DURATION_SECONDS: &str = "strata_fsync_duration_seconds";
/// Counter: bytes of torn tails cut away by recovery.
pub const LOG_RECOVERY_TRUNCATED_BYTES_TOTAL: &str = "strata_log_recovery_truncated_bytes_total";
/// Counter: damaged logs found by recovery, label `kind`.
pub const LOG_CORRUPTION_DETECTED_TOTAL: &str = "strata_log_corruption_detected_total";

/// Records one fsync that began at `started`.
pub(crate) fn fsync_done(started: Instant) {
    metrics::histogram!(FSYNC_DURATION_SECONDS).record(started.elapsed().as_secs_f64());
}

/// Records `bytes` cut from a torn tail.
pub(crate) fn recovery_truncated(bytes: u64) {
    if bytes > 0 {
        metrics::counter!(LOG_RECOVERY_TRUNCATED_BYTES_TOTAL).increment(bytes);
    }
}

/// Records a log found damaged, when `error` is damage.
pub(crate) fn corruption_detected(error: &LogError) {
    if let Some(kind) = corruption_kind(error) {
        metrics::counter!(LOG_CORRUPTION_DETECTED_TOTAL, "kind" => kind).increment(1);
    }
}

/// The `kind` label of a damage error: what was found wrong. `None` for other errors.
pub fn corruption_kind(error: &LogError) -> Option<&'static str> {
    match error {
        LogError::Corruption { .. } => Some("bad_batch"),
        LogError::SegmentsDoNotMeet { .. } => Some("segment_gap"),
        LogError::EndBelowCheckpoint { .. } => Some("end_below_checkpoint"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use strata_proto::types::Offset;

    use super::*;

    #[test]
    fn every_kind_of_damage_has_a_kind_and_nothing_else_does() {
        let path = PathBuf::from("orders-0/00000000000000000000.log");
        let damage = [
            LogError::Corruption {
                path: path.clone(),
                position: 0,
                reason: "crc".into(),
            },
            LogError::SegmentsDoNotMeet {
                path: path.clone(),
                end_offset: Offset(10),
                next_base_offset: Offset(20),
            },
            LogError::EndBelowCheckpoint {
                dir: PathBuf::from("orders-0"),
                log_end_offset: Offset(5),
                promise: "high watermark",
                promised_offset: Offset(9),
            },
        ];
        for error in &damage {
            assert!(error.is_corruption());
            assert!(corruption_kind(error).is_some(), "{error}");
        }
        let stopped = LogError::Stopped {
            path,
            reason: "fsync".into(),
        };
        assert_eq!(corruption_kind(&stopped), None);
    }
}
