//! Turning an `-o` spec into concrete per-partition offsets (docs/CLI.md, "Offsets").
//!
//! Consume first asks the broker for each partition's log start and end offsets (and, for
//! `@T` specs, the first offset at each time), then this module decides, without I/O, where
//! each partition starts and when it is done. Every start becomes an absolute offset so the
//! consumer is assigned with `Offset::At` and the stop check can compare offsets.
//!
//! Rules: a start below the log start begins at the log start (with a warning); a start above
//! the end waits for it; `-N` never goes below the log start; `+N` counts from the log start.
//! A stop is exclusive. A partition whose start is already at or past its stop is done before
//! the first fetch, so `-o end -e` or `:end` on an empty partition exits at once.

use crate::offset_spec::{OffsetSpec, StartPosition, StopPosition};

/// What the broker said about one partition before consuming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartitionBounds {
    pub partition: i32,
    pub log_start_offset: i64,
    /// The high watermark: the offset the next record will get.
    pub end_offset: i64,
    /// First offset with timestamp ≥ the start time (`@T`); `None` when no record is that
    /// recent yet (then the partition starts at its end).
    pub start_time_offset: Option<i64>,
    /// First offset with timestamp ≥ the stop time (`@T1:T2`); `None` when no record is that
    /// recent yet (then the stop is found while reading, by timestamp).
    pub stop_time_offset: Option<i64>,
}

/// Where one partition starts and stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionPlan {
    pub partition: i32,
    /// The first offset to read.
    pub start_offset: i64,
    /// Exclusive stop offset, when known up front.
    pub stop_offset: Option<i64>,
    /// Stop at the first record with a timestamp at or after this (unix ms).
    pub stop_timestamp_ms: Option<i64>,
    /// The requested start was below the log start and was moved up to it.
    pub clamped_to_log_start: bool,
}

impl PartitionPlan {
    /// Whether nothing is left to read before the first fetch.
    pub fn is_done_before_start(&self) -> bool {
        self.stop_offset
            .is_some_and(|stop| self.start_offset >= stop)
    }

    /// Whether a record at `offset` with `timestamp_ms` is past the stop (and so neither
    /// printed nor followed by anything printed from this partition).
    pub fn is_past_stop(&self, offset: i64, timestamp_ms: i64) -> bool {
        self.stop_offset.is_some_and(|stop| offset >= stop)
            || self
                .stop_timestamp_ms
                .is_some_and(|stop| timestamp_ms >= stop)
    }

    /// Whether the record at `offset` is the last one before the stop offset, so the
    /// partition is done after printing it (no need to wait for a record past the stop).
    pub fn is_last_before_stop(&self, offset: i64) -> bool {
        self.stop_offset.is_some_and(|stop| offset + 1 >= stop)
    }
}

/// Resolves `spec` against one partition's bounds.
pub fn plan_partition(spec: &OffsetSpec, bounds: &PartitionBounds) -> PartitionPlan {
    let log_start = bounds.log_start_offset;
    let end = bounds.end_offset.max(log_start);
    let requested = match spec.start {
        StartPosition::Start => log_start,
        StartPosition::End => end,
        StartPosition::Offset(offset) => offset,
        StartPosition::Tail(count) => end.saturating_sub(saturating_i64(count)).max(log_start),
        StartPosition::AfterStart(count) => log_start.saturating_add(saturating_i64(count)),
        StartPosition::Time(_) => bounds.start_time_offset.unwrap_or(end),
    };
    let clamped_to_log_start = requested < log_start;
    let start_offset = requested.max(log_start);
    let (stop_offset, stop_timestamp_ms) = match spec.stop {
        StopPosition::Follow => (None, None),
        StopPosition::Offset(offset) => (Some(offset), None),
        StopPosition::End => (Some(end), None),
        StopPosition::Time(time) => match bounds.stop_time_offset {
            Some(offset) => (Some(offset), None),
            None => (None, Some(time)),
        },
    };
    PartitionPlan {
        partition: bounds.partition,
        start_offset,
        stop_offset,
        stop_timestamp_ms,
        clamped_to_log_start,
    }
}

fn saturating_i64(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    /// A partition holding offsets 10..20.
    fn bounds() -> PartitionBounds {
        PartitionBounds {
            partition: 1,
            log_start_offset: 10,
            end_offset: 20,
            ..PartitionBounds::default()
        }
    }

    fn plan(spec: &str) -> PartitionPlan {
        plan_partition(&OffsetSpec::parse(spec, NOW).unwrap(), &bounds())
    }

    fn range(spec: &str) -> (i64, Option<i64>) {
        let plan = plan(spec);
        (plan.start_offset, plan.stop_offset)
    }

    #[test]
    fn starts() {
        assert_eq!(range("start"), (10, None));
        assert_eq!(range("end"), (20, None));
        assert_eq!(range("15"), (15, None));
        assert_eq!(range("25"), (25, None), "above the end waits for it");
        assert_eq!(range("-3"), (17, None));
        assert_eq!(
            range("-50"),
            (10, None),
            "tail never goes below the log start"
        );
        assert_eq!(range("+3"), (13, None));
    }

    #[test]
    fn below_the_log_start_is_clamped_with_a_flag() {
        let plan = plan("3");
        assert_eq!(plan.start_offset, 10);
        assert!(plan.clamped_to_log_start);
        assert!(!self::plan("-50").clamped_to_log_start);
    }

    #[test]
    fn stops_are_exclusive() {
        assert_eq!(range("12:15"), (12, Some(15)));
        assert_eq!(range(":end"), (10, Some(20)));
        assert_eq!(range("-2:end"), (18, Some(20)));
        let plan = plan("12:15");
        assert!(!plan.is_past_stop(14, 0) && plan.is_past_stop(15, 0));
        assert!(plan.is_last_before_stop(14) && !plan.is_last_before_stop(13));
    }

    #[test]
    fn empty_ranges_are_done_before_the_first_fetch() {
        assert!(plan("end:end").is_done_before_start());
        assert!(plan(":5").is_done_before_start());
        assert!(!plan(":end").is_done_before_start());
        let empty = PartitionBounds {
            log_start_offset: 0,
            end_offset: 0,
            ..bounds()
        };
        let spec = OffsetSpec::parse("start", NOW).unwrap().exit_at_end();
        assert!(plan_partition(&spec, &empty).is_done_before_start());
    }

    #[test]
    fn time_starts_and_stops_use_the_looked_up_offsets() {
        let spec = OffsetSpec::parse("@-1h:-10m", NOW).unwrap();
        let found = PartitionBounds {
            start_time_offset: Some(12),
            stop_time_offset: Some(18),
            ..bounds()
        };
        let plan = plan_partition(&spec, &found);
        assert_eq!((plan.start_offset, plan.stop_offset), (12, Some(18)));
        assert_eq!(plan.stop_timestamp_ms, None);
    }

    #[test]
    fn a_stop_time_in_the_future_is_checked_per_record() {
        let spec = OffsetSpec::parse("@-1h:-10m", NOW).unwrap();
        let nothing_yet = bounds(); // no offsets found for either time
        let plan = plan_partition(&spec, &nothing_yet);
        assert_eq!(
            plan.start_offset, 20,
            "no record after the start time: start at the end"
        );
        assert_eq!(plan.stop_offset, None);
        let stop = NOW - 600_000;
        assert_eq!(plan.stop_timestamp_ms, Some(stop));
        assert!(!plan.is_past_stop(25, stop - 1) && plan.is_past_stop(26, stop));
    }
}
