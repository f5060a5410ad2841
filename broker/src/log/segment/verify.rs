//! Checking a [`Segment`] against what the rest of the log promises, without a full scan:
//! the cheap check recovery runs on every segment it does not scan, the check of the time
//! index that retention relies on, and the search for intact batches behind a damaged one
//! (which tells a torn tail from damage in the middle).
//!
//! Indexes are hints. An index entry is believed only once the batch header it points at
//! agrees with it; when it does not, the index is rebuilt from the `.log` (recovery) or
//! the walk starts again from byte 0 (reads).

use std::os::unix::fs::FileExt;

use strata_proto::record::{check_stored_batch, BatchHeader, MAGIC};
use strata_proto::types::{LeaderEpoch, Offset};

use super::super::config::LogConfig;
use super::super::error::{LogError, LogResult};
use super::{Segment, SegmentFiles};

/// How many bytes the search for an intact batch reads at a time.
const SEARCH_CHUNK_BYTES: usize = 1 << 20;
/// Where `magic` sits in a batch header.
const MAGIC_POSITION: usize = 16;

/// Where the leader epoch steps back (`current` < the previous batch's), whether the
/// previous batch is the damaged one: it is when its epoch is above both neighbours
/// (`before ≤ current`). The CRC does not cover the epoch, so a flipped bit that raises
/// one batch's epoch would otherwise condemn the intact batch after it.
pub fn epoch_step_back_blames_previous(before: Option<LeaderEpoch>, current: LeaderEpoch) -> bool {
    before.is_some_and(|before| current >= before)
}

impl Segment {
    pub(super) fn corruption(&self, position: u64, reason: String) -> LogError {
        LogError::Corruption {
            path: self.log_path.clone(),
            position,
            reason,
        }
    }

    /// `Corruption` unless the batch at `position` starts at `expected_offset`: the CRC
    /// does not cover the base offset, so this is what catches a damaged one.
    pub(super) fn check_follows(
        &self,
        header: &BatchHeader,
        position: u64,
        expected_offset: Offset,
    ) -> LogResult<()> {
        if header.base_offset == expected_offset {
            return Ok(());
        }
        Err(self.corruption(
            position,
            format!(
                "batch base offset {} where {expected_offset} was expected",
                header.base_offset
            ),
        ))
    }

    /// The cheap check of a segment that recovery does not scan (after a clean shutdown,
    /// or a sealed segment before the recovery point), reading a few headers rather than
    /// the whole file: the first batch starts at the segment's base offset, and the
    /// batches from the last offset-index entry on follow each other (each base offset is
    /// the previous batch's next offset) and end exactly at the end of the file. It sets
    /// the segment's next offset from them, so the caller can check it against the next
    /// segment's base; and its max timestamp, from the time index (see
    /// [`Segment::check_time_index`]) and the headers walked.
    pub fn load_tail(&mut self, config: &LogConfig) -> LogResult<()> {
        let files = self.files.get()?;
        if let Some(first) = self.header_in(&files, 0)? {
            self.check_follows(&first, 0, self.base_offset)?;
        }
        let (mut position, mut next_offset) = match files.index.last_entry() {
            Some((offset, position)) => (u64::from(position), offset),
            None => (0, self.base_offset),
        };
        let (mut max_timestamp_ms, mut offset_of_max_timestamp) = files
            .time_index
            .last_entry()
            .unwrap_or((self.max_timestamp_ms, self.offset_of_max_timestamp));
        let mut bytes_since_index_entry = self.bytes_since_index_entry;
        while let Some(header) = self.header_in(&files, position)? {
            header
                .check_framing(config.batch_bytes_max)
                .map_err(|error| self.corruption(position, error.to_string()))?;
            self.check_follows(&header, position, next_offset)?;
            if header.max_timestamp > max_timestamp_ms {
                max_timestamp_ms = header.max_timestamp;
                offset_of_max_timestamp = header.last_offset();
            }
            position += header.total_bytes() as u64;
            bytes_since_index_entry += header.total_bytes() as u64;
            next_offset = header.next_offset();
        }
        if position != self.size_bytes {
            return Err(self.corruption(
                position,
                format!(
                    "the last batch does not end at the end of the file ({} bytes)",
                    self.size_bytes
                ),
            ));
        }
        drop(files);
        self.max_timestamp_ms = max_timestamp_ms;
        self.offset_of_max_timestamp = offset_of_max_timestamp;
        self.bytes_since_index_entry = bytes_since_index_entry;
        self.next_offset = next_offset;
        Ok(())
    }

    /// The leader epochs of this segment's batches, read from their headers alone: each
    /// epoch above `previous_epoch` (and above the epochs before it here) with the base
    /// offset of its first batch. For rebuilding a lost leader-epoch cache from a segment
    /// recovery does not scan (it was fsynced and passed [`Segment::load_tail`]); framing
    /// and base offsets are checked as there, and an epoch that goes down is corruption,
    /// as in a scan. No CRC is computed: one header read per batch.
    pub fn epoch_starts(
        &self,
        config: &LogConfig,
        previous_epoch: Option<LeaderEpoch>,
    ) -> LogResult<Vec<(LeaderEpoch, Offset)>> {
        let files = self.files.get()?;
        let mut starts = Vec::new();
        let mut last_epoch = previous_epoch;
        let mut position = 0;
        let mut expected_offset = self.base_offset;
        while let Some(header) = self.header_in(&files, position)? {
            header
                .check_framing(config.batch_bytes_max)
                .map_err(|error| self.corruption(position, error.to_string()))?;
            self.check_follows(&header, position, expected_offset)?;
            let epoch = header.partition_leader_epoch;
            if let Some(last) = last_epoch.filter(|last| epoch < *last) {
                let reason = format!("leader epoch {epoch} after epoch {last}");
                return Err(self.corruption(position, reason));
            }
            if last_epoch.is_none_or(|last| epoch > last) {
                starts.push((epoch, header.base_offset));
            }
            last_epoch = Some(epoch);
            position += header.total_bytes() as u64;
            expected_offset = header.next_offset();
        }
        Ok(starts)
    }

    /// Checks the time index's last entry — the segment's max timestamp, which time-based
    /// retention acts on — against the batch it names: the batch whose last offset is the
    /// entry's offset must carry exactly the entry's timestamp. A mismatch is a damaged
    /// index (`BadAuxiliaryFile`), to be rebuilt from the log; its word is never taken.
    pub fn check_time_index(&self) -> LogResult<()> {
        let files = self.files.get()?;
        let Some((timestamp_ms, offset)) = files.time_index.last_entry() else {
            return Ok(());
        };
        let found = self
            .find_batch_in(&files, offset)?
            .map(|(_, header)| header);
        match found {
            Some(header)
                if header.last_offset() == offset && header.max_timestamp == timestamp_ms =>
            {
                Ok(())
            }
            _ => Err(LogError::BadAuxiliaryFile {
                path: files.time_index.path().to_path_buf(),
                reason: format!(
                    "its last entry ({timestamp_ms}, {offset}) does not match the batch \
                     holding offset {offset} ({})",
                    found.map_or("none".to_owned(), |header| format!(
                        "last offset {}, max timestamp {}",
                        header.last_offset(),
                        header.max_timestamp
                    ))
                ),
            }),
        }
    }

    /// The position of the first intact batch after the bad one at `position`: framing
    /// and CRC hold and its base offset is at least `expected_offset` (where the bad batch
    /// should have started). The bad batch's length field may itself be damaged, so every
    /// byte position is a candidate; only those with the right magic and a sane header are
    /// CRC-checked. `None` means nothing intact follows: a torn tail.
    pub fn find_intact_batch_after(
        &self,
        position: u64,
        expected_offset: Offset,
        config: &LogConfig,
    ) -> LogResult<Option<u64>> {
        let files = self.files.get()?;
        let mut chunk = Vec::new();
        let mut batch = Vec::new();
        let mut start = position + 1;
        while start < self.size_bytes {
            let length = (self.size_bytes - start).min(SEARCH_CHUNK_BYTES as u64) as usize;
            chunk.resize(length, 0);
            files
                .log
                .read_exact_at(&mut chunk, start)
                .map_err(|source| LogError::io("read segment", &self.log_path, source))?;
            for at in 0..length {
                if chunk.get(at + MAGIC_POSITION) != Some(&(MAGIC as u8)) {
                    continue;
                }
                let candidate = start + at as u64;
                if self.is_intact_batch_at(
                    &files,
                    candidate,
                    expected_offset,
                    config,
                    &mut batch,
                )? {
                    return Ok(Some(candidate));
                }
            }
            start += length as u64;
        }
        Ok(None)
    }

    /// Whether a whole, CRC-valid batch with base offset ≥ `expected_offset` starts at
    /// `position` (the search of [`Segment::find_intact_batch_after`]).
    fn is_intact_batch_at(
        &self,
        files: &SegmentFiles,
        position: u64,
        expected_offset: Offset,
        config: &LogConfig,
        buf: &mut Vec<u8>,
    ) -> LogResult<bool> {
        let Some(header) = self.header_in(files, position)? else {
            return Ok(false);
        };
        let plausible = header.check_framing(config.batch_bytes_max).is_ok()
            && header.base_offset >= expected_offset
            && header.total_bytes() as u64 <= self.size_bytes - position;
        if !plausible {
            return Ok(false);
        }
        buf.resize(header.total_bytes(), 0);
        files
            .log
            .read_exact_at(buf, position)
            .map_err(|source| LogError::io("read batch", &self.log_path, source))?;
        Ok(check_stored_batch(buf, config.batch_bytes_max).is_ok())
    }

    /// Sets the max timestamp (and its offset) after a truncation: the time index's last
    /// entry if it agrees with its batch, raised by the headers after the last
    /// offset-index entry (which no time-index entry covers yet). If the entry does not
    /// agree, every header is read instead.
    pub(crate) fn refresh_max_timestamp(&mut self) -> LogResult<()> {
        let files = self.files.get()?;
        let (start, seed) = match self.check_time_index() {
            Ok(()) => (
                files
                    .index
                    .last_entry()
                    .map_or(0, |(_, position)| u64::from(position)),
                files.time_index.last_entry(),
            ),
            Err(error) => {
                tracing::warn!(%error, "damaged time index; reading every batch header");
                (0, None)
            }
        };
        let (mut max_timestamp_ms, mut offset_of_max_timestamp) =
            seed.unwrap_or((-1, self.base_offset));
        let mut position = start;
        while let Some(header) = self.header_in(&files, position)? {
            header
                .check_framing(self.batch_bytes_max)
                .map_err(|error| self.corruption(position, error.to_string()))?;
            if header.max_timestamp > max_timestamp_ms {
                max_timestamp_ms = header.max_timestamp;
                offset_of_max_timestamp = header.last_offset();
            }
            position += header.total_bytes() as u64;
        }
        drop(files);
        self.max_timestamp_ms = max_timestamp_ms;
        self.offset_of_max_timestamp = offset_of_max_timestamp;
        Ok(())
    }
}
