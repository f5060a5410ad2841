//! Per-partition storage settings and the flush policy.
//!
//! Defaults follow Kafka's where Kafka has one (`segment.bytes` 1 GiB, `segment.ms` 7 days,
//! `index.interval.bytes` 4096, `segment.index.bytes` 10 MiB, `retention.ms` 7 days), and
//! `flush = always` where Kafka relies on the page cache: an acknowledged batch is fsynced,
//! so it survives a power loss (`docs/RELIABILITY.md`).

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
}

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
        }
    }
}

#[cfg(test)]
mod tests {
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
}
