//! `cleaner.checkpoint`: what the log cleaner remembers about one partition log between
//! passes and restarts (Kafka keeps the same in `cleaner-offset-checkpoint`, one per data
//! directory; here it is one per partition directory).
//!
//! ```text
//! version 1
//! first_dirty_offset <offset>
//! segment <base offset> <first cleaned at, ms> <tombstones kept>
//! …one line per segment the cleaner has rewritten, ascending
//! crc <crc32, 8 hex digits>
//! ```
//!
//! - `first_dirty_offset`: records below it were in the cleaner's offset map once; a
//!   pass maps the keys from here on. Clamped to the log's offsets when read.
//! - `segment` lines: when a segment was first cleaned (tombstones in it are removed
//!   `delete_retention_ms` later) and how many tombstones its last cleaning kept (a
//!   segment with some is cleaned again once they are due, even if nothing is dirty).
//!
//! Written atomically (`checkpoint::write_atomic`) after a pass; a crash before that only
//! makes the next pass redo work, and a lost `cleaned at` only keeps tombstones longer.
//! A damaged file is a warning and a fresh state: everything is dirty again, no tombstone
//! is due. Never a reason to refuse the log.

use std::collections::BTreeMap;
use std::path::Path;

use strata_proto::types::Offset;

use super::super::checkpoint::{
    decode_text, encode_text, parse_keyed_offset, read_file, remove_stale_temp, write_atomic,
};
use super::super::error::{LogError, LogResult};

/// A segment the cleaner rewrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanedSegment {
    /// When the cleaner first rewrote it (the tombstones' clock starts then).
    pub cleaned_at_ms: i64,
    /// Tombstones its last rewrite kept.
    pub tombstones: u64,
}

/// See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanerState {
    pub first_dirty_offset: Offset,
    pub segments: BTreeMap<Offset, CleanedSegment>,
}

impl CleanerState {
    pub const FILE_NAME: &'static str = "cleaner.checkpoint";
    const VERSION: u32 = 1;

    /// The state stored in `dir`; a missing file is a fresh state, a damaged one too
    /// (with a warning).
    pub fn load(dir: &Path) -> LogResult<CleanerState> {
        remove_stale_temp(dir, Self::FILE_NAME)?;
        let Some(bytes) = read_file(dir, Self::FILE_NAME).or_else(fresh_if_bad)? else {
            return Ok(CleanerState::default());
        };
        let path = dir.join(Self::FILE_NAME);
        match Self::decode(&path, &bytes) {
            Ok(state) => Ok(state),
            Err(LogError::BadAuxiliaryFile { path, reason }) => {
                tracing::warn!(path = %path.display(), %reason, "damaged cleaner checkpoint; the whole log counts as dirty again");
                Ok(CleanerState::default())
            }
            Err(error) => Err(error),
        }
    }

    fn decode(path: &Path, bytes: &[u8]) -> LogResult<CleanerState> {
        let body = decode_text(path, bytes, Self::VERSION)?;
        let mut lines = body.into_iter();
        let first_dirty_offset = parse_keyed_offset(path, lines.next(), "first_dirty_offset")?;
        let mut segments = BTreeMap::new();
        for line in lines {
            let bad = || LogError::BadAuxiliaryFile {
                path: path.to_path_buf(),
                reason: format!("expected `segment <base> <ms> <tombstones>`, found {line:?}"),
            };
            let fields: Vec<&str> = line.split(' ').collect();
            let ["segment", base, cleaned_at_ms, tombstones] = fields.as_slice() else {
                return Err(bad());
            };
            let base = base
                .parse::<i64>()
                .ok()
                .filter(|base| *base >= 0)
                .ok_or_else(bad)?;
            let segment = CleanedSegment {
                cleaned_at_ms: cleaned_at_ms.parse().map_err(|_| bad())?,
                tombstones: tombstones.parse().map_err(|_| bad())?,
            };
            segments.insert(Offset(base), segment);
        }
        Ok(CleanerState {
            first_dirty_offset,
            segments,
        })
    }

    /// Replaces the state stored in `dir`, atomically and durably.
    pub fn store(&self, dir: &Path) -> LogResult<()> {
        let mut body = vec![format!("first_dirty_offset {}", self.first_dirty_offset)];
        for (base, segment) in &self.segments {
            body.push(format!(
                "segment {base} {} {}",
                segment.cleaned_at_ms, segment.tombstones
            ));
        }
        write_atomic(dir, Self::FILE_NAME, &encode_text(Self::VERSION, &body))
    }

    /// After a truncation to `log_end_offset` that left `active_base` as the active
    /// segment: nothing at or above the end is dirty-mapped any more, and a segment that
    /// takes appends again has no cleaning history (new tombstones must wait their full
    /// time). Stores the state if that changed it.
    pub fn after_truncation(
        dir: &Path,
        log_end_offset: Offset,
        active_base: Offset,
    ) -> LogResult<()> {
        if !dir.join(Self::FILE_NAME).exists() {
            return Ok(());
        }
        let mut state = CleanerState::load(dir)?;
        let before = state.clone();
        state.first_dirty_offset = state.first_dirty_offset.min(log_end_offset);
        state.segments.retain(|base, _| *base < active_base);
        if state != before {
            state.store(dir)?;
        }
        Ok(())
    }
}

fn fresh_if_bad(error: LogError) -> LogResult<Option<Vec<u8>>> {
    match error {
        LogError::BadAuxiliaryFile { path, reason } => {
            tracing::warn!(path = %path.display(), %reason, "unreadable cleaner checkpoint; the whole log counts as dirty again");
            Ok(None)
        }
        other => Err(other),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn round_trips_and_damage_is_a_fresh_state() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            CleanerState::load(dir.path()).unwrap(),
            CleanerState::default()
        );
        let mut state = CleanerState {
            first_dirty_offset: Offset(40),
            segments: BTreeMap::new(),
        };
        state.segments.insert(
            Offset(0),
            CleanedSegment {
                cleaned_at_ms: 1_000,
                tombstones: 2,
            },
        );
        state.segments.insert(
            Offset(20),
            CleanedSegment {
                cleaned_at_ms: 2_000,
                tombstones: 0,
            },
        );
        state.store(dir.path()).unwrap();
        assert_eq!(CleanerState::load(dir.path()).unwrap(), state);
        CleanerState::after_truncation(dir.path(), Offset(30), Offset(20)).unwrap();
        let truncated = CleanerState::load(dir.path()).unwrap();
        assert_eq!(truncated.first_dirty_offset, Offset(30));
        assert_eq!(truncated.segments.len(), 1);
        let path = dir.path().join(CleanerState::FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[10] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(
            CleanerState::load(dir.path()).unwrap(),
            CleanerState::default()
        );
    }
}
