//! The sparse offset index of one segment, `<base_offset:020>.index`: maps an offset to the
//! byte position of a batch at or before it in the `.log` file, so a read scans at most
//! `index_interval_bytes` of the log instead of the whole segment.
//!
//! # Byte layout
//!
//! A sequence of 8-byte entries, big-endian, with no header:
//!
//! ```text
//! relative_offset u32 BE | position u32 BE
//! ```
//!
//! `relative_offset = offset - base_offset`. Both fields strictly increase from entry to
//! entry. An entry names the first batch written after `index_interval_bytes` of log had
//! accumulated since the previous entry; `offset` is that batch's base offset (any offset of
//! the batch would do: a reader scans forward from `position` anyway).
//!
//! # Preallocation and crash behaviour
//!
//! See `index_file`: preallocated to `max_bytes` and memory-mapped while active, trimmed to
//! the valid entries (and fsynced) when sealed and at clean close. The index is never the
//! source of truth: after a crash an untrimmed file fails [`OffsetIndex::sanity_check`] and
//! the caller rebuilds it from the log.

use std::path::Path;

use strata_proto::types::Offset;

use crate::log::error::LogResult;
use crate::log::index_file::{absolute_offset, IndexFile, OpenMode};

const ENTRY_BYTES: usize = 8;

/// The offset index of one segment. One per file, owned by the partition's single writer.
#[derive(Debug)]
pub struct OffsetIndex {
    file: IndexFile<ENTRY_BYTES>,
    base_offset: Offset,
}

impl OffsetIndex {
    /// Opens or creates the index of the active segment: an existing file's length must be
    /// a multiple of 8 (else `BadAuxiliaryFile`; the caller rebuilds) and every entry in it
    /// counts; the file is then preallocated to `max_bytes` (rounded down to 8) and mapped.
    pub fn open(path: &Path, base_offset: Offset, max_bytes: u64) -> LogResult<OffsetIndex> {
        let file = IndexFile::open(path, max_bytes, OpenMode::Appendable)?;
        Ok(OffsetIndex { file, base_offset })
    }

    /// Opens the (trimmed) index of a sealed segment without preallocating it; it is
    /// read-only until [`OffsetIndex::unseal`], which grows it to `max_bytes`.
    pub fn open_sealed(path: &Path, base_offset: Offset, max_bytes: u64) -> LogResult<Self> {
        let file = IndexFile::open(path, max_bytes, OpenMode::Sealed)?;
        Ok(OffsetIndex { file, base_offset })
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

    /// No room for another entry: the caller rolls the segment before appending to it.
    pub fn is_full(&self) -> bool {
        self.file.is_full()
    }

    /// Appends `(offset, position)`. Both must be greater than the last entry's, `offset`
    /// must be in `[base_offset, base_offset + u32::MAX]`, and the index must not be full
    /// or sealed; otherwise `BadAuxiliaryFile` and nothing is written.
    pub fn append(&mut self, offset: Offset, position: u32) -> LogResult<()> {
        let relative_offset = self.file.relative_offset(self.base_offset, offset)?;
        if let Some((last_offset, last_position)) = self.last_entry() {
            if offset <= last_offset || position <= last_position {
                return Err(self.file.bad(format!(
                    "entry ({offset}, {position}) does not follow ({last_offset}, {last_position})"
                )));
            }
        }
        let [r0, r1, r2, r3] = relative_offset.to_be_bytes();
        let [p0, p1, p2, p3] = position.to_be_bytes();
        self.file.append([r0, r1, r2, r3, p0, p1, p2, p3])
    }

    /// The entry with the largest offset `<= target`, or `None` if every entry is above it.
    pub fn lookup(&self, target: Offset) -> Option<(Offset, u32)> {
        let below = self
            .file
            .count_while(|entry| self.decode(entry).0 <= target);
        self.entry(below.checked_sub(1)?)
    }

    pub fn last_entry(&self) -> Option<(Offset, u32)> {
        self.entry(self.entries().checked_sub(1)?)
    }

    /// The entry in slot `slot` (0-based), if there is one.
    pub fn entry(&self, slot: usize) -> Option<(Offset, u32)> {
        self.file.entry(slot).map(|entry| self.decode(&entry))
    }

    /// Drops every entry with offset `>= offset` (after the log was truncated to `offset`).
    pub fn truncate_to(&mut self, offset: Offset) {
        let keep = self.file.count_while(|entry| self.decode(entry).0 < offset);
        self.file.truncate_entries(keep);
    }

    /// Drops all entries (before a rebuild from the log).
    pub fn reset(&mut self) {
        self.file.truncate_entries(0);
    }

    /// Checks what a damaged or untrimmed file would break: offsets and positions strictly
    /// increase and every position is inside the log (`< log_size_bytes`).
    pub fn sanity_check(&self, log_size_bytes: u64) -> LogResult<()> {
        let mut previous: Option<(Offset, u32)> = None;
        for slot in 0..self.entries() {
            let Some((offset, position)) = self.entry(slot) else {
                return Err(self.file.bad(format!("entry {slot} is unreadable")));
            };
            if u64::from(position) >= log_size_bytes {
                return Err(self.file.bad(format!(
                    "entry {slot} points at byte {position}, beyond the {log_size_bytes}-byte log"
                )));
            }
            if let Some((previous_offset, previous_position)) = previous {
                if offset <= previous_offset || position <= previous_position {
                    return Err(self.file.bad(format!(
                        "entry {slot} ({offset}, {position}) does not follow \
                         ({previous_offset}, {previous_position})"
                    )));
                }
            }
            previous = Some((offset, position));
        }
        Ok(())
    }

    /// Writes the mapped entries back to the file (`msync`); no metadata fsync.
    pub fn flush(&self) -> LogResult<()> {
        self.file.flush()
    }

    /// Seals the index: flushes, cuts the file to `entries * 8` bytes and fsyncs it. It can
    /// still be read, but not appended to until [`OffsetIndex::unseal`].
    pub fn trim(&mut self) -> LogResult<()> {
        self.file.trim()
    }

    /// Makes a sealed index appendable again (its segment became the active one after a
    /// truncation), preallocating it back to `max_bytes`.
    pub fn unseal(&mut self) -> LogResult<()> {
        self.file.unseal()
    }

    /// Deletes the file; the caller fsyncs the directory.
    pub fn delete(self) -> LogResult<()> {
        self.file.delete()
    }

    fn decode(&self, entry: &[u8; ENTRY_BYTES]) -> (Offset, u32) {
        let [r0, r1, r2, r3, p0, p1, p2, p3] = *entry;
        let relative_offset = u32::from_be_bytes([r0, r1, r2, r3]);
        let position = u32::from_be_bytes([p0, p1, p2, p3]);
        (absolute_offset(self.base_offset, relative_offset), position)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::fs;

    use proptest::prelude::*;

    use super::*;
    use crate::log::error::LogError;

    const BASE: Offset = Offset(1_000);

    fn model_lookup(model: &[(Offset, u32)], target: Offset) -> Option<(Offset, u32)> {
        model
            .iter()
            .rev()
            .find(|(offset, _)| *offset <= target)
            .copied()
    }

    fn assert_matches_model(index: &OffsetIndex, model: &[(Offset, u32)], targets: &[i64]) {
        assert_eq!(index.entries(), model.len());
        assert_eq!(index.last_entry(), model.last().copied());
        for (slot, entry) in model.iter().enumerate() {
            assert_eq!(index.entry(slot), Some(*entry));
        }
        for target in targets {
            let target = BASE.plus(*target);
            assert_eq!(
                index.lookup(target),
                model_lookup(model, target),
                "{target}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn offset_index_matches_a_linear_scan(
            steps in prop::collection::vec((1_i64..500, 1_u32..10_000), 0..60),
            max_entries in 0_u64..50,
            targets in prop::collection::vec(-10_i64..30_000, 20),
            truncate_at in -10_i64..30_000,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("00000000000000001000.index");
            let max_bytes = max_entries * 8 + 5; // not a multiple of 8: rounded down
            let mut index = OffsetIndex::open(&path, BASE, max_bytes).unwrap();
            let mut model = Vec::new();
            let (mut offset, mut position) = (BASE, 0_u32);
            for (offset_step, position_step) in steps {
                offset = offset.plus(offset_step);
                position += position_step;
                let full = model.len() as u64 == max_entries;
                prop_assert_eq!(index.is_full(), full);
                let appended = index.append(offset, position);
                prop_assert_eq!(appended.is_ok(), !full);
                if !full {
                    model.push((offset, position));
                }
            }
            assert_matches_model(&index, &model, &targets);

            index.truncate_to(BASE.plus(truncate_at));
            model.retain(|(offset, _)| *offset < BASE.plus(truncate_at));
            assert_matches_model(&index, &model, &targets);

            index.trim().unwrap();
            prop_assert_eq!(fs::metadata(&path).unwrap().len(), model.len() as u64 * 8);
            assert_matches_model(&index, &model, &targets);
            drop(index);

            let mut reopened = OffsetIndex::open(&path, BASE, max_bytes).unwrap();
            assert_matches_model(&reopened, &model, &targets);
            reopened.sanity_check(u64::from(position) + 1).unwrap();
            if !reopened.is_full() {
                let (offset, position) = (offset.plus(1), position + 1);
                reopened.append(offset, position).unwrap();
                model.push((offset, position));
            }
            assert_matches_model(&reopened, &model, &targets);
        }
    }

    #[test]
    fn trimmed_index_reopens_with_its_entries_and_can_be_unsealed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        let mut index = OffsetIndex::open(&path, BASE, 800).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 800);
        index.append(BASE.plus(10), 4096).unwrap();
        index.append(BASE.plus(20), 8192).unwrap();
        index.trim().unwrap();
        assert!(index.append(BASE.plus(30), 9000).is_err(), "sealed");
        drop(index);

        let mut sealed = OffsetIndex::open_sealed(&path, BASE, 800).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 16);
        assert_eq!(sealed.lookup(BASE.plus(25)), Some((BASE.plus(20), 8192)));
        sealed.truncate_to(BASE.plus(20));
        sealed.unseal().unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 800);
        sealed.append(BASE.plus(21), 8200).unwrap();
        assert_eq!(sealed.last_entry(), Some((BASE.plus(21), 8200)));
        sealed.delete().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn length_not_a_multiple_of_8_is_a_bad_auxiliary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        fs::write(&path, [0_u8; 12]).unwrap();
        let error = OffsetIndex::open(&path, BASE, 800).unwrap_err();
        assert!(
            matches!(error, LogError::BadAuxiliaryFile { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn sanity_check_catches_damage_and_an_untrimmed_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        let mut index = OffsetIndex::open(&path, BASE, 80).unwrap();
        for slot in 1..=3 {
            index
                .append(BASE.plus(slot * 10), slot as u32 * 100)
                .unwrap();
        }
        index.sanity_check(301).unwrap();
        assert!(index.sanity_check(300).is_err(), "position beyond the log");
        index.trim().unwrap();
        drop(index);

        let mut bytes = fs::read(&path).unwrap();
        bytes[12] ^= 0xff; // high byte of entry 1's position
        fs::write(&path, &bytes).unwrap();
        let damaged = OffsetIndex::open(&path, BASE, 80).unwrap();
        assert!(damaged.sanity_check(u64::MAX).is_err());
        drop(damaged);

        // A crash before trim: the preallocated zero tail counts as entries.
        fs::write(&path, [0_u8; 8]).unwrap();
        let mut crashed = OffsetIndex::open(&path, BASE, 80).unwrap();
        crashed.append(BASE.plus(5), 100).unwrap();
        drop(crashed);
        let reopened = OffsetIndex::open(&path, BASE, 80).unwrap();
        assert_eq!(reopened.entries(), 10);
        assert!(reopened.sanity_check(1_000).is_err());
    }

    #[test]
    fn append_rejects_entries_that_do_not_fit_or_follow() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = OffsetIndex::open(&dir.path().join("x.index"), BASE, 16).unwrap();
        assert!(
            index.append(BASE.plus(-1), 0).is_err(),
            "below the base offset"
        );
        let too_far = BASE.plus(i64::from(u32::MAX) + 1);
        assert!(
            index.append(too_far, 0).is_err(),
            "relative offset overflows u32"
        );
        index.append(BASE.plus(5), 100).unwrap();
        assert!(
            index.append(BASE.plus(5), 200).is_err(),
            "offset not increasing"
        );
        assert!(
            index.append(BASE.plus(6), 100).is_err(),
            "position not increasing"
        );
        index.append(BASE.plus(i64::from(u32::MAX)), 200).unwrap();
        assert!(index.is_full());
        assert!(index.append(too_far, 300).is_err(), "full");
        assert_eq!(index.entries(), 2);
    }

    #[test]
    fn zero_sized_index_is_empty_and_full() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        let mut index = OffsetIndex::open(&path, BASE, 7).unwrap();
        assert!(index.is_full());
        assert_eq!(index.lookup(BASE.plus(1)), None);
        assert!(index.append(BASE, 0).is_err());
        index.trim().unwrap();
        index.flush().unwrap();
        drop(index);
        assert_eq!(
            OffsetIndex::open_sealed(&path, BASE, 0).unwrap().entries(),
            0
        );
    }
}
