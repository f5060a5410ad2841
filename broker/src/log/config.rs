//! Per-partition storage settings and the flush policy.
//!
//! Defaults follow Kafka's where Kafka has one (`segment.bytes` 1 GiB, `segment.ms` 7 days,
//! `index.interval.bytes` 4096, `segment.index.bytes` 10 MiB, `retention.ms` 7 days), and
//! `flush = always` where Kafka relies on the page cache: an acknowledged batch is fsynced,
//! so it survives a power loss (`docs/RELIABILITY.md`). Compaction's settings are Kafka's
//! too: `cleanup.policy` ([`CleanupPolicy`]), `delete.retention.ms` (1 day) and
//! `min.cleanable.dirty.ratio` (0.5).

use std::fmt;
use std::str::FromStr;

/// When appended data is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushPolicy {
    /// fsync before an append is reported durable. Concurrent appends share one fsync
    /// (group commit). Survives a power loss of every replica at once.
    #[default]
    Always,
    /// fsync in the background every `interval_ms`; an append is reported as soon as it is
    /// in the page cache. Acknowledged data can be lost if every replica loses power at once.
    Interval { interval_ms: u64 },
}

/// A `--flush` value that is neither `always` nor `interval:<ms>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid flush policy {0:?}: expected \"always\" or \"interval:<milliseconds>\"")]
pub struct InvalidFlushPolicy(pub String);

impl FromStr for FlushPolicy {
    type Err = InvalidFlushPolicy;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "always" {
            return Ok(FlushPolicy::Always);
        }
        let interval_ms = text
            .strip_prefix("interval:")
            .and_then(|ms| ms.parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .ok_or_else(|| InvalidFlushPolicy(text.to_owned()))?;
        Ok(FlushPolicy::Interval { interval_ms })
    }
}

impl fmt::Display for FlushPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlushPolicy::Always => f.write_str("always"),
            FlushPolicy::Interval { interval_ms } => write!(f, "interval:{interval_ms}"),
        }
    }
}

/// What happens to a partition's old segments (Kafka's `cleanup.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    /// Retention deletes whole sealed segments (`retention_ms`, `retention_bytes`).
    #[default]
    Delete,
    /// The log cleaner keeps the newest record of each key (`log/cleaner.rs`); retention
    /// deletes nothing.
    Compact,
    /// Both: compacted, and retention deletes segments past its limits.
    CompactDelete,
}

impl CleanupPolicy {
    /// Whether retention deletes old segments.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }

    /// Whether the log cleaner compacts the log (and produce refuses keyless records).
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }
}

impl FromStr for CleanupPolicy {
    type Err = String;

    /// `delete`, `compact`, or both separated by a comma in either order (Kafka's list).
    fn from_str(text: &str) -> Result<CleanupPolicy, String> {
        let mut delete = false;
        let mut compact = false;
        for policy in text.split(',').map(str::trim) {
            match policy {
                "delete" if !delete => delete = true,
                "compact" if !compact => compact = true,
                _ => return Err("expected \"delete\", \"compact\" or \"compact,delete\"".into()),
            }
        }
        Ok(match (compact, delete) {
            (true, true) => CleanupPolicy::CompactDelete,
            (true, false) => CleanupPolicy::Compact,
            _ => CleanupPolicy::Delete,
        })
    }
}

impl fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        })
    }
}

/// A ratio from 0 to 1, kept in millionths so that configs compare exactly
/// (`min_cleanable_dirty_ratio`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DirtyRatio {
    millionths: u32,
}

impl DirtyRatio {
    pub const ONE_MILLIONTHS: u32 = 1_000_000;

    /// `millionths` / 1,000,000, at most 1.
    pub fn from_millionths(millionths: u32) -> DirtyRatio {
        DirtyRatio {
            millionths: millionths.min(Self::ONE_MILLIONTHS),
        }
    }

    pub fn millionths(self) -> u32 {
        self.millionths
    }

    /// Whether `dirty_bytes` out of `total_bytes` reaches this ratio.
    pub fn is_reached(self, dirty_bytes: u64, total_bytes: u64) -> bool {
        total_bytes > 0
            && u128::from(dirty_bytes) * u128::from(Self::ONE_MILLIONTHS)
                >= u128::from(total_bytes) * u128::from(self.millionths)
    }
}

impl Default for DirtyRatio {
    /// Kafka's `min.cleanable.dirty.ratio`: 0.5.
    fn default() -> DirtyRatio {
        DirtyRatio::from_millionths(500_000)
    }
}

impl FromStr for DirtyRatio {
    type Err = String;

    /// A decimal number from 0 to 1 (`0.5`, `1`, `0.25`), at most six decimals.
    fn from_str(text: &str) -> Result<DirtyRatio, String> {
        let invalid = || "expected a number from 0 to 1 with at most 6 decimals".to_owned();
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || (!fraction.is_empty() && !digits(fraction)) || fraction.len() > 6 {
            return Err(invalid());
        }
        let whole: u32 = whole.parse().map_err(|_| invalid())?;
        let fraction_millionths: u32 = format!("{fraction:0<6}").parse().map_err(|_| invalid())?;
        let millionths = whole
            .checked_mul(Self::ONE_MILLIONTHS)
            .and_then(|whole| whole.checked_add(fraction_millionths))
            .filter(|millionths| *millionths <= Self::ONE_MILLIONTHS)
            .ok_or_else(invalid)?;
        Ok(DirtyRatio { millionths })
    }
}

impl fmt::Display for DirtyRatio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.millionths / Self::ONE_MILLIONTHS;
        let fraction = self.millionths % Self::ONE_MILLIONTHS;
        if fraction == 0 {
            return write!(f, "{whole}");
        }
        let fraction = format!("{fraction:06}");
        write!(f, "{whole}.{}", fraction.trim_end_matches('0'))
    }
}

/// Settings of one partition log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll the active segment once it would grow past this size.
    pub segment_bytes: u64,
    /// Roll the active segment once its first batch is this old; `None` = never by age.
    pub segment_ms: Option<u64>,
    /// Add an offset index entry every this many bytes of log.
    pub index_interval_bytes: u64,
    /// Preallocated size of each index file; a full index rolls the segment.
    pub index_bytes_max: u64,
    /// Delete sealed segments whose newest record is older than this; `None` = keep.
    pub retention_ms: Option<u64>,
    /// Delete the oldest sealed segments while the log is larger than this; `None` = keep.
    pub retention_bytes: Option<u64>,
    pub flush: FlushPolicy,
    /// The largest batch the log will store or believe when scanning. A length field above
    /// it is treated as damage, so it also bounds every allocation made while reading.
    pub batch_bytes_max: usize,
    /// Write and read segment `.log` files with direct I/O, past the page cache
    /// (`log/direct.rs`). Falls back to buffered I/O where the filesystem refuses it.
    pub direct_io: bool,
    /// Whether retention deletes old segments, the cleaner compacts them, or both.
    pub cleanup_policy: CleanupPolicy,
    /// How long a tombstone stays after the segment holding it was first cleaned
    /// (Kafka's `delete.retention.ms`): long enough for a consumer reading from the start
    /// to see the delete.
    pub delete_retention_ms: u64,
    /// The cleaner compacts a log only once this share of its cleanable bytes is dirty
    /// (written since the last cleaning).
    pub min_cleanable_dirty_ratio: DirtyRatio,
}

/// Kafka's `delete.retention.ms` default: one day.
pub const DELETE_RETENTION_MS_DEFAULT: u64 = 24 * 3600 * 1000;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: Some(7 * 24 * 3600 * 1000),
            index_interval_bytes: 4096,
            index_bytes_max: 10 << 20,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            flush: FlushPolicy::Always,
            batch_bytes_max: 16 << 20,
            direct_io: false,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: DELETE_RETENTION_MS_DEFAULT,
            min_cleanable_dirty_ratio: DirtyRatio::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn flush_policy_parses_and_prints() {
        assert_eq!("always".parse(), Ok(FlushPolicy::Always));
        assert_eq!(
            "interval:250".parse(),
            Ok(FlushPolicy::Interval { interval_ms: 250 })
        );
        for bad in [
            "",
            "never",
            "interval:",
            "interval:-1",
            "interval:0",
            "interval:1s",
        ] {
            assert!(bad.parse::<FlushPolicy>().is_err(), "{bad:?}");
        }
        assert_eq!(
            FlushPolicy::Interval { interval_ms: 5 }.to_string(),
            "interval:5"
        );
    }

    #[test]
    fn cleanup_policies_parse_in_either_order_and_print_canonically() {
        for (text, policy) in [
            ("delete", CleanupPolicy::Delete),
            ("compact", CleanupPolicy::Compact),
            ("compact,delete", CleanupPolicy::CompactDelete),
            ("delete, compact", CleanupPolicy::CompactDelete),
        ] {
            assert_eq!(text.parse(), Ok(policy), "{text}");
        }
        assert_eq!(CleanupPolicy::CompactDelete.to_string(), "compact,delete");
        for bad in [
            "",
            "DELETE",
            "shred",
            "delete,delete",
            "compact,",
            "compact,shred",
        ] {
            assert!(bad.parse::<CleanupPolicy>().is_err(), "{bad:?}");
        }
        assert!(CleanupPolicy::CompactDelete.deletes() && CleanupPolicy::CompactDelete.compacts());
        assert!(!CleanupPolicy::Compact.deletes() && !CleanupPolicy::Delete.compacts());
    }

    #[test]
    fn dirty_ratios_parse_exactly_between_zero_and_one() {
        for (text, millionths, shown) in [
            ("0.5", 500_000, "0.5"),
            ("0", 0, "0"),
            ("1", 1_000_000, "1"),
            ("1.0", 1_000_000, "1"),
            ("0.000001", 1, "0.000001"),
            ("0.25", 250_000, "0.25"),
        ] {
            let ratio: DirtyRatio = text.parse().unwrap();
            assert_eq!(ratio.millionths(), millionths, "{text}");
            assert_eq!(ratio.to_string(), shown);
        }
        for bad in [
            "",
            "-0.1",
            "1.1",
            "2",
            "0.0000001",
            ".5",
            "5.",
            "a",
            "0.5x",
            "1e-3",
        ] {
            assert!(bad.parse::<DirtyRatio>().is_err(), "{bad:?}");
        }
        let half = DirtyRatio::default();
        assert!(half.is_reached(50, 100) && !half.is_reached(49, 100));
        assert!(!half.is_reached(0, 0));
    }
}
