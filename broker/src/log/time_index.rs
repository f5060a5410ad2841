//! The time index of one segment, `<base_offset:020>.timeindex`: maps a timestamp to an
//! offset, for `ListOffsets` by time and for time-based retention.
//!
//! # Byte layout
//!
//! A sequence of 12-byte entries, big-endian, with no header:
//!
//! ```text
//! timestamp_ms i64 BE | relative_offset u32 BE
//! ```
//!
//! An entry `(t, o)` says: the largest timestamp in the segment up to offset `o` is `t`, and
//! `o` is the offset of the record carrying it. Entries are appended only when the segment's
//! max timestamp grows, so timestamps strictly increase and offsets never decrease.
//!
//! # Preallocation and crash behaviour
//!
//! As for the offset index (see `index_file`): preallocated and mapped while active, trimmed
//! and fsynced when sealed and at clean close, rebuilt from the log when
//! [`TimeIndex::sanity_check`] fails. Because append keeps timestamps *strictly* increasing,
//! the zero-filled tail of an untrimmed file after a crash always fails the check.

use std::path::Path;

use strata_proto::types::Offset;

use crate::log::error::LogResult;
use crate::log::index_file::{absolute_offset, IndexFile, OpenMode};

const ENTRY_BYTES: usize = 12;

/// The time index of one segment. One per file, owned by the partition's single writer.
#[derive(Debug)]
pub struct TimeIndex {
    file: IndexFile<ENTRY_BYTES>,
    base_offset: Offset,
}

impl TimeIndex {
    /// Opens or creates the index of the active segment: an existing file's length must be
    /// a multiple of 12 (else `BadAuxiliaryFile`; the caller rebuilds) and every entry in it
    /// counts; the file is then preallocated to `max_bytes` (rounded down to 12) and mapped.
    pub fn open(path: &Path, base_offset: Offset, max_bytes: u64) -> LogResult<TimeIndex> {
        let file = IndexFile::open(path, max_bytes, OpenMode::Appendable)?;
        Ok(TimeIndex { file, base_offset })
    }

    /// Opens the (trimmed) index of a sealed segment without preallocating it; it is
    /// read-only until [`TimeIndex::unseal`], which grows it to `max_bytes`.
    pub fn open_sealed(path: &Path, base_offset: Offset, max_bytes: u64) -> LogResult<Self> {
        let file = IndexFile::open(path, max_bytes, OpenMode::Sealed)?;
        Ok(TimeIndex { file, base_offset })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    pub fn base_offset(&self) -> Offset {
        self.base_offset
    }

    pub fn entries(&self) -> usize {
        self.file.entries()
    }

    /// Full for ordinary appends: the caller rolls the segment now. One slot stays free for
    /// the final entry appended when the segment is sealed (its max timestamp), so sealing
    /// never fails for want of room (Kafka's `skipFullCheck`).
    pub fn is_full(&self) -> bool {
        self.file.entries() + 1 >= self.file.capacity()
    }

    /// Records that the segment's max timestamp is now `timestamp_ms`, carried by `offset`.
    /// A timestamp not above the last entry's is ignored (`Ok`). Otherwise `offset` must not
    /// be below the last entry's offset, must fit in u32 of the base offset, and the index
    /// must have a free slot (the one [`TimeIndex::is_full`] keeps counts) and not be sealed;
    /// else `BadAuxiliaryFile` and nothing is written.
    pub fn append(&mut self, timestamp_ms: i64, offset: Offset) -> LogResult<()> {
        let last = self.last_entry();
        if last.is_some_and(|(last_timestamp_ms, _)| timestamp_ms <= last_timestamp_ms) {
            return Ok(());
        }
        if let Some((last_timestamp_ms, last_offset)) = last {
            if offset < last_offset {
                return Err(self.file.bad(format!(
                    "entry ({timestamp_ms}, {offset}) goes back from \
                     ({last_timestamp_ms}, {last_offset})"
                )));
            }
        }
        let relative_offset = self.file.relative_offset(self.base_offset, offset)?;
        let [t0, t1, t2, t3, t4, t5, t6, t7] = timestamp_ms.to_be_bytes();
        let [r0, r1, r2, r3] = relative_offset.to_be_bytes();
        self.file
            .append([t0, t1, t2, t3, t4, t5, t6, t7, r0, r1, r2, r3])
    }

    /// The entry with the largest timestamp `<= target_ms`, or `None` if all are above it.
    pub fn lookup(&self, target_ms: i64) -> Option<(i64, Offset)> {
        let below = self
            .file
            .count_while(|entry| self.decode(entry).0 <= target_ms);
        self.entry(below.checked_sub(1)?)
    }

    /// The last entry: the segment's max timestamp so far and the offset carrying it.
    pub fn last_entry(&self) -> Option<(i64, Offset)> {
        self.entry(self.entries().checked_sub(1)?)
    }

    /// The entry in slot `slot` (0-based), if there is one.
    pub fn entry(&self, slot: usize) -> Option<(i64, Offset)> {
        self.file.entry(slot).map(|entry| self.decode(&entry))
    }

    /// Drops every entry with offset `>= offset` (after the log was truncated to `offset`).
    pub fn truncate_to(&mut self, offset: Offset) {
        let keep = self.file.count_while(|entry| self.decode(entry).1 < offset);
        self.file.truncate_entries(keep);
    }

    /// Drops all entries (before a rebuild from the log).
    pub fn reset(&mut self) {
        self.file.truncate_entries(0);
    }

    /// Checks what a damaged or untrimmed file would break: offsets lie in
    /// `[base_offset, next_offset)`, timestamps strictly increase (as `append` keeps them)
    /// and offsets never decrease.
    pub fn sanity_check(&self, next_offset: Offset) -> LogResult<()> {
        let mut previous: Option<(i64, Offset)> = None;
        for slot in 0..self.entries() {
            let Some((timestamp_ms, offset)) = self.entry(slot) else {
                return Err(self.file.bad(format!("entry {slot} is unreadable")));
            };
            if offset >= next_offset {
                return Err(self.file.bad(format!(
                    "entry {slot} names offset {offset}, at or beyond the next offset {next_offset}"
                )));
            }
            if let Some((previous_timestamp_ms, previous_offset)) = previous {
                if timestamp_ms <= previous_timestamp_ms || offset < previous_offset {
                    return Err(self.file.bad(format!(
                        "entry {slot} ({timestamp_ms}, {offset}) does not follow \
                         ({previous_timestamp_ms}, {previous_offset})"
                    )));
                }
            }
            previous = Some((timestamp_ms, offset));
        }
        Ok(())
    }

    /// Writes the mapped entries back to the file (`msync`); no metadata fsync.
    pub fn flush(&self) -> LogResult<()> {
        self.file.flush()
    }

    /// Seals the index: flushes, cuts the file to `entries * 12` bytes and fsyncs it. It can
    /// still be read, but not appended to until [`TimeIndex::unseal`].
    pub fn trim(&mut self) -> LogResult<()> {
        self.file.trim()
    }

    /// Makes a sealed index appendable again, preallocating it back to `max_bytes`.
    pub fn unseal(&mut self) -> LogResult<()> {
        self.file.unseal()
    }

    /// Deletes the file; the caller fsyncs the directory.
    pub fn delete(self) -> LogResult<()> {
        self.file.delete()
    }

    fn decode(&self, entry: &[u8; ENTRY_BYTES]) -> (i64, Offset) {
        let [t0, t1, t2, t3, t4, t5, t6, t7, r0, r1, r2, r3] = *entry;
        let timestamp_ms = i64::from_be_bytes([t0, t1, t2, t3, t4, t5, t6, t7]);
        let relative_offset = u32::from_be_bytes([r0, r1, r2, r3]);
        (
            timestamp_ms,
            absolute_offset(self.base_offset, relative_offset),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::fs;

    use proptest::prelude::*;

    use super::*;
    use crate::log::error::LogError;

    const BASE: Offset = Offset(500);

    fn model_lookup(model: &[(i64, Offset)], target_ms: i64) -> Option<(i64, Offset)> {
        model
            .iter()
            .rev()
            .find(|(timestamp_ms, _)| *timestamp_ms <= target_ms)
            .copied()
    }

    fn assert_matches_model(index: &TimeIndex, model: &[(i64, Offset)], targets_ms: &[i64]) {
        assert_eq!(index.entries(), model.len());
        assert_eq!(index.last_entry(), model.last().copied());
        for target_ms in targets_ms {
            assert_eq!(index.lookup(*target_ms), model_lookup(model, *target_ms));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn time_index_matches_a_linear_scan(
            steps in prop::collection::vec((-50_i64..200, 0_i64..20), 0..60),
            max_entries in 0_u64..40,
            targets_ms in prop::collection::vec(-100_i64..10_000, 20),
            truncate_at in 0_i64..1_200,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("00000000000000000500.timeindex");
            let max_bytes = max_entries * 12 + 7;
            let mut index = TimeIndex::open(&path, BASE, max_bytes).unwrap();
            let mut model: Vec<(i64, Offset)> = Vec::new();
            let (mut timestamp_ms, mut offset) = (0_i64, BASE);
            for (timestamp_step_ms, offset_step) in steps {
                timestamp_ms += timestamp_step_ms;
                offset = offset.plus(offset_step);
                let grows = model.last().is_none_or(|(last_ms, _)| timestamp_ms > *last_ms);
                prop_assert_eq!(index.is_full(), model.len() as u64 + 1 >= max_entries);
                let full = model.len() as u64 == max_entries;
                let appended = index.append(timestamp_ms, offset);
                prop_assert_eq!(appended.is_ok(), !grows || !full);
                if grows && !full {
                    model.push((timestamp_ms, offset));
                }
            }
            assert_matches_model(&index, &model, &targets_ms);
            index.sanity_check(offset.plus(1)).unwrap();

            index.truncate_to(BASE.plus(truncate_at));
            model.retain(|(_, offset)| *offset < BASE.plus(truncate_at));
            assert_matches_model(&index, &model, &targets_ms);

            index.trim().unwrap();
            drop(index);
            prop_assert_eq!(fs::metadata(&path).unwrap().len(), model.len() as u64 * 12);
            let reopened = TimeIndex::open(&path, BASE, max_bytes).unwrap();
            assert_matches_model(&reopened, &model, &targets_ms);
            reopened.sanity_check(offset.plus(1)).unwrap();
        }
    }

    #[test]
    fn append_ignores_timestamps_that_do_not_grow() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = TimeIndex::open(&dir.path().join("x.timeindex"), BASE, 120).unwrap();
        index.append(1_000, BASE.plus(3)).unwrap();
        index.append(1_000, BASE.plus(4)).unwrap();
        index.append(999, BASE.plus(5)).unwrap();
        assert_eq!(index.entries(), 1);
        assert!(
            index.append(2_000, BASE.plus(2)).is_err(),
            "offset goes back"
        );
        assert!(
            index.append(2_000, BASE.plus(-1)).is_err(),
            "below the base offset"
        );
        index.append(2_000, BASE.plus(3)).unwrap();
        assert_eq!(index.lookup(1_999), Some((1_000, BASE.plus(3))));
        assert_eq!(index.lookup(999), None);
        index.reset();
        assert_eq!(index.last_entry(), None);
    }

    #[test]
    fn sanity_check_catches_damage_and_an_untrimmed_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.timeindex");
        let mut index = TimeIndex::open(&path, BASE, 120).unwrap();
        index.append(1_000, BASE.plus(1)).unwrap();
        index.append(2_000, BASE.plus(7)).unwrap();
        index.sanity_check(BASE.plus(8)).unwrap();
        assert!(
            index.sanity_check(BASE.plus(7)).is_err(),
            "offset beyond the log"
        );
        index.trim().unwrap();
        drop(index);

        let mut bytes = fs::read(&path).unwrap();
        bytes[12] ^= 0x80; // sign bit of entry 1's timestamp
        fs::write(&path, &bytes).unwrap();
        assert!(TimeIndex::open(&path, BASE, 120)
            .unwrap()
            .sanity_check(BASE.plus(8))
            .is_err());

        fs::write(&path, [0_u8; 120]).unwrap(); // a crash before trim, nothing appended
        let reopened = TimeIndex::open(&path, BASE, 120).unwrap();
        assert_eq!(reopened.entries(), 10);
        assert!(reopened.sanity_check(BASE.plus(8)).is_err());

        fs::write(&path, [0_u8; 13]).unwrap();
        let error = TimeIndex::open(&path, BASE, 120).unwrap_err();
        assert!(
            matches!(error, LogError::BadAuxiliaryFile { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn sealed_index_opens_unchanged_and_unseals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.timeindex");
        let mut index = TimeIndex::open(&path, BASE, 120).unwrap();
        index.append(1_000, BASE.plus(1)).unwrap();
        index.trim().unwrap();
        drop(index);
        let mut sealed = TimeIndex::open_sealed(&path, BASE, 120).unwrap();
        sealed.trim().unwrap(); // already trimmed: a no-op
        assert_eq!(fs::metadata(&path).unwrap().len(), 12);
        assert!(sealed.is_full());
        sealed.unseal().unwrap();
        sealed.append(2_000, BASE.plus(2)).unwrap();
        assert_eq!(sealed.entries(), 2);
        sealed.delete().unwrap();
        assert!(!path.exists());
    }
}
