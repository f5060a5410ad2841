//! The leader-epoch cache of one partition replica (KIP-101): for each leader epoch that
//! wrote to the log, the offset of its first batch. A follower asks the leader "where does
//! my latest epoch end in your log?" (`OffsetsForLeaderEpoch`) and truncates to the answer
//! instead of to its high watermark, which is what keeps a log from diverging after a
//! leader change.
//!
//! # Invariants
//!
//! Entries are sorted, epochs strictly increase and start offsets strictly increase (an
//! epoch is recorded when the first batch of that epoch is appended, at a higher offset than
//! the previous epoch's first batch). Epochs and offsets are never negative.
//!
//! # File `leader-epoch.checkpoint`
//!
//! The versioned, CRC-protected text format of `checkpoint` with the body
//!
//! ```text
//! entries <n>
//! <epoch> <start_offset>      (n lines, in order)
//! ```
//!
//! written atomically with `checkpoint::write_atomic`. Changes are made in memory and
//! persisted by the caller with [`LeaderEpochCache::store`]; after a crash the file may lag
//! the log, so recovery adds the epochs of the batches it scans ([`assign`]). A damaged
//! file is `BadAuxiliaryFile`; a damaged or missing one is rebuilt by recovery from the
//! batch headers of every segment (`recovery.rs`), never taken for an empty cache.
//!
//! [`assign`]: LeaderEpochCache::assign

use std::path::{Path, PathBuf};

use strata_proto::types::{LeaderEpoch, Offset};

use crate::log::checkpoint::{self, decode_text, encode_text};
use crate::log::error::{LogError, LogResult};

/// The epoch → start offset entries of one partition replica and the directory they are
/// persisted in. Owned by the partition's single writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderEpochCache {
    dir: PathBuf,
    entries: Vec<(LeaderEpoch, Offset)>,
}

impl LeaderEpochCache {
    pub const FILE_NAME: &'static str = "leader-epoch.checkpoint";
    const VERSION: u32 = 1;

    /// Loads the cache persisted in `dir`: `None` if there is no file (which is not an
    /// empty cache when the log holds batches: recovery rebuilds it), `BadAuxiliaryFile`
    /// if it is damaged or breaks the invariants. Deletes a stale temp file first.
    pub fn load(dir: &Path) -> LogResult<Option<LeaderEpochCache>> {
        checkpoint::remove_stale_temp(dir, Self::FILE_NAME)?;
        let mut cache = LeaderEpochCache::empty(dir);
        let Some(bytes) = checkpoint::read_file(dir, Self::FILE_NAME)? else {
            return Ok(None);
        };
        let path = dir.join(Self::FILE_NAME);
        let bad = |reason: String| LogError::BadAuxiliaryFile {
            path: path.clone(),
            reason,
        };
        let body = decode_text(&path, &bytes, Self::VERSION)?;
        let (count_line, entry_lines) = body
            .split_first()
            .ok_or_else(|| bad("missing `entries <n>` line".to_owned()))?;
        let count = count_line
            .strip_prefix("entries ")
            .and_then(|count| count.parse::<usize>().ok())
            .filter(|count| *count == entry_lines.len())
            .ok_or_else(|| bad(format!("`{count_line}` does not match the entry lines")))?;
        cache.entries.reserve(count);
        for line in entry_lines {
            let entry = parse_entry(line)
                .ok_or_else(|| bad(format!("`{line}` is not `<epoch> <start_offset>`")))?;
            if cache.latest().is_some_and(|latest| !follows(latest, entry)) {
                return Err(bad(format!(
                    "entry `{line}` does not follow the one before"
                )));
            }
            cache.entries.push(entry);
        }
        Ok(Some(cache))
    }

    /// An empty cache that will be persisted in `dir`.
    pub fn empty(dir: &Path) -> LeaderEpochCache {
        LeaderEpochCache {
            dir: dir.to_path_buf(),
            entries: Vec::new(),
        }
    }

    pub fn entries(&self) -> &[(LeaderEpoch, Offset)] {
        &self.entries
    }

    /// The latest epoch and its start offset.
    pub fn latest(&self) -> Option<(LeaderEpoch, Offset)> {
        self.entries.last().copied()
    }

    /// Records that `epoch` starts at `start_offset`, if `epoch` is newer than the latest
    /// epoch; returns whether the cache changed (the caller then persists it). An epoch not
    /// above the latest, or a negative epoch or offset, changes nothing.
    ///
    /// Should `start_offset` not be above the latest start offsets (only possible after a
    /// missed `truncate_from_end`), the entries starting at or after it are dropped first,
    /// as Kafka does, so the invariants hold.
    pub fn assign(&mut self, epoch: LeaderEpoch, start_offset: Offset) -> bool {
        if epoch.0 < 0 || start_offset.0 < 0 {
            return false;
        }
        if self.latest().is_some_and(|(latest, _)| epoch <= latest) {
            return false;
        }
        let keep = self
            .entries
            .partition_point(|(_, start)| *start < start_offset);
        if keep < self.entries.len() {
            tracing::warn!(
                dir = %self.dir.display(),
                %epoch,
                %start_offset,
                dropped = ?self.entries.get(keep..),
                "leader epoch starts at or before existing entries; dropping them"
            );
            self.entries.truncate(keep);
        }
        self.entries.push((epoch, start_offset));
        true
    }

    /// Removes the entries starting at or after `end_offset` (after the log was truncated to
    /// `end_offset`). Returns whether the cache changed.
    pub fn truncate_from_end(&mut self, end_offset: Offset) -> bool {
        let keep = self
            .entries
            .partition_point(|(_, start)| *start < end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// After retention moved the log start offset to `start_offset`: drops the entries of
    /// epochs that ended before it, and the epoch in progress at `start_offset` now starts
    /// there. Returns whether the cache changed.
    pub fn truncate_from_start(&mut self, start_offset: Offset) -> bool {
        let at_or_below = self
            .entries
            .partition_point(|(_, start)| *start <= start_offset);
        let Some(first_kept) = at_or_below.checked_sub(1) else {
            return false;
        };
        let changed = first_kept > 0
            || self
                .entries
                .first()
                .is_some_and(|(_, start)| *start != start_offset);
        self.entries.drain(..first_kept);
        if let Some(first) = self.entries.first_mut() {
            first.1 = start_offset;
        }
        changed
    }

    /// Answers `OffsetsForLeaderEpoch` for `epoch` (KIP-101, with KIP-279's fix):
    ///
    /// - `epoch` is the latest epoch → `(epoch, log_end_offset)`;
    /// - `epoch` is above the latest epoch, or the cache is empty → `None` (undefined);
    /// - `epoch` is below the first epoch → `(epoch, first start offset)`: the requester's
    ///   data of that epoch from that offset on is not in this log;
    /// - otherwise → the largest known epoch `<= epoch`, ending where the first epoch
    ///   `> epoch` starts.
    pub fn end_offset_for(
        &self,
        epoch: LeaderEpoch,
        log_end_offset: Offset,
    ) -> Option<(LeaderEpoch, Offset)> {
        let (latest, _) = self.latest()?;
        if epoch == latest {
            return Some((epoch, log_end_offset));
        }
        let at_or_below = self.entries.partition_point(|(known, _)| *known <= epoch);
        let (_, next_start) = *self.entries.get(at_or_below)?;
        match at_or_below.checked_sub(1) {
            Some(floor) => self
                .entries
                .get(floor)
                .map(|(known, _)| (*known, next_start)),
            None => Some((epoch, next_start)),
        }
    }

    /// Persists the cache atomically and durably.
    pub fn store(&self) -> LogResult<()> {
        let mut body = Vec::with_capacity(self.entries.len() + 1);
        body.push(format!("entries {}", self.entries.len()));
        body.extend(
            self.entries
                .iter()
                .map(|(epoch, start_offset)| format!("{epoch} {start_offset}")),
        );
        checkpoint::write_atomic(
            &self.dir,
            Self::FILE_NAME,
            &encode_text(Self::VERSION, &body),
        )
    }
}

/// Parses `<epoch> <start_offset>`, both non-negative.
fn parse_entry(line: &str) -> Option<(LeaderEpoch, Offset)> {
    let (epoch, start_offset) = line.split_once(' ')?;
    let epoch = epoch.parse::<i32>().ok().filter(|epoch| *epoch >= 0)?;
    let start_offset = start_offset
        .parse::<i64>()
        .ok()
        .filter(|offset| *offset >= 0)?;
    Some((LeaderEpoch(epoch), Offset(start_offset)))
}

/// Whether `next` may come right after `previous` (both strictly increase).
fn follows(previous: (LeaderEpoch, Offset), next: (LeaderEpoch, Offset)) -> bool {
    next.0 > previous.0 && next.1 > previous.1
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::fs;

    use proptest::prelude::*;

    use super::*;

    fn cache_with(dir: &Path, entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::empty(dir);
        for (epoch, start_offset) in entries {
            assert!(cache.assign(LeaderEpoch(*epoch), Offset(*start_offset)));
        }
        cache
    }

    fn pairs(cache: &LeaderEpochCache) -> Vec<(i32, i64)> {
        cache
            .entries()
            .iter()
            .map(|(epoch, offset)| (epoch.0, offset.0))
            .collect()
    }

    #[test]
    fn assign_records_only_newer_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = cache_with(dir.path(), &[(0, 0), (1, 10), (2, 20)]);
        assert!(!cache.assign(LeaderEpoch(2), Offset(25)), "same epoch");
        assert!(!cache.assign(LeaderEpoch(1), Offset(30)), "older epoch");
        assert!(!cache.assign(LeaderEpoch(-1), Offset(30)), "no epoch");
        assert_eq!(pairs(&cache), [(0, 0), (1, 10), (2, 20)]);
        // A newer epoch starting before existing entries replaces them (Kafka's rule).
        assert!(cache.assign(LeaderEpoch(3), Offset(15)));
        assert_eq!(pairs(&cache), [(0, 0), (1, 10), (3, 15)]);
        assert_eq!(cache.latest(), Some((LeaderEpoch(3), Offset(15))));
    }

    #[test]
    fn end_offset_for_follows_kip_101_and_kip_279() {
        let dir = tempfile::tempdir().unwrap();
        let end = |cache: &LeaderEpochCache, epoch| {
            cache
                .end_offset_for(LeaderEpoch(epoch), Offset(30))
                .map(|(epoch, offset)| (epoch.0, offset.0))
        };
        assert_eq!(end(&LeaderEpochCache::empty(dir.path()), 0), None);
        let cache = cache_with(dir.path(), &[(1, 0), (2, 10), (4, 20)]);
        assert_eq!(
            end(&cache, 4),
            Some((4, 30)),
            "latest epoch ends at the log end"
        );
        assert_eq!(end(&cache, 2), Some((2, 20)));
        assert_eq!(
            end(&cache, 3),
            Some((2, 20)),
            "unknown epoch: the one before it"
        );
        assert_eq!(end(&cache, 1), Some((1, 10)));
        assert_eq!(end(&cache, 0), Some((0, 0)), "below the first epoch");
        assert_eq!(end(&cache, 5), None, "above the latest epoch");
    }

    #[test]
    fn truncate_from_end_drops_epochs_starting_at_or_after_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = cache_with(dir.path(), &[(1, 0), (2, 10), (4, 20)]);
        assert!(!cache.truncate_from_end(Offset(25)));
        assert!(cache.truncate_from_end(Offset(20)));
        assert_eq!(pairs(&cache), [(1, 0), (2, 10)]);
        assert!(cache.truncate_from_end(Offset(5)));
        assert_eq!(pairs(&cache), [(1, 0)]);
        assert!(cache.truncate_from_end(Offset(0)));
        assert!(cache.entries().is_empty());
    }

    #[test]
    fn truncate_from_start_moves_the_first_epoch_to_the_log_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = cache_with(dir.path(), &[(1, 0), (2, 10), (4, 20)]);
        assert!(!cache.truncate_from_start(Offset(0)));
        assert!(cache.truncate_from_start(Offset(5)));
        assert_eq!(pairs(&cache), [(1, 5), (2, 10), (4, 20)]);
        assert!(cache.truncate_from_start(Offset(10)));
        assert_eq!(pairs(&cache), [(2, 10), (4, 20)]);
        assert!(!cache.truncate_from_start(Offset(10)));
        assert!(cache.truncate_from_start(Offset(25)));
        assert_eq!(pairs(&cache), [(4, 25)]);
    }

    #[test]
    fn store_and_load_round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(LeaderEpochCache::load(dir.path()).unwrap(), None);
        let cache = cache_with(dir.path(), &[(1, 0), (2, 10), (4, 20)]);
        cache.store().unwrap();
        assert_eq!(LeaderEpochCache::load(dir.path()).unwrap(), Some(cache));
        assert!(!dir.path().join("leader-epoch.checkpoint.tmp").exists());

        let path = dir.path().join(LeaderEpochCache::FILE_NAME);
        let good = fs::read(&path).unwrap();
        for position in 0..good.len() {
            let mut bytes = good.clone();
            bytes[position] ^= 0x04;
            fs::write(&path, &bytes).unwrap();
            let result = LeaderEpochCache::load(dir.path());
            assert!(
                matches!(result, Err(LogError::BadAuxiliaryFile { .. })),
                "{position}"
            );
        }
    }

    #[test]
    fn valid_crc_but_broken_invariants_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LeaderEpochCache::FILE_NAME);
        let bodies: [&[&str]; 4] = [
            &["entries 2", "1 0", "1 10"],
            &["entries 2", "1 10", "2 10"],
            &["entries 3", "1 0", "2 10"],
            &["entries 1", "1 -5"],
        ];
        for body in bodies {
            let body: Vec<String> = body.iter().map(|line| line.to_string()).collect();
            fs::write(&path, encode_text(1, &body)).unwrap();
            let result = LeaderEpochCache::load(dir.path());
            assert!(
                matches!(result, Err(LogError::BadAuxiliaryFile { .. })),
                "{body:?}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn invariants_hold_and_storage_round_trips(
            operations in prop::collection::vec((0_u8..3, 0_i32..20, 0_i64..200), 0..40),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut cache = LeaderEpochCache::empty(dir.path());
            for (kind, epoch, offset) in operations {
                match kind {
                    0 => cache.assign(LeaderEpoch(epoch), Offset(offset)),
                    1 => cache.truncate_from_end(Offset(offset)),
                    _ => cache.truncate_from_start(Offset(offset)),
                };
                for pair in cache.entries().windows(2) {
                    prop_assert!(pair[1].0 > pair[0].0 && pair[1].1 > pair[0].1, "{pair:?}");
                }
            }
            cache.store().unwrap();
            prop_assert_eq!(LeaderEpochCache::load(dir.path()).unwrap(), Some(cache));
        }
    }
}
