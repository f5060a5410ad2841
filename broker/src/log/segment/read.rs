//! Reads of a [`Segment`]: finding a batch by offset or timestamp by walking batch headers
//! from an index entry, and [`Segment::read`], the fetch path (a read-only map of sealed
//! segments, one positional read for the active one, or aligned direct reads with
//! `LogConfig::direct_io`).

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use strata_proto::record::{BatchHeader, BATCH_HEADER_BYTES};
use strata_proto::types::Offset;

use super::super::direct::DirectFile;
use super::super::error::{LogError, LogResult};
use super::super::read_buffer::ReadBuffer;
use super::super::segment_map;
use super::{FirstBatch, Segment, SegmentFiles};

impl Segment {
    /// Reads the fixed header of the batch at `position`, or `None` at the end of the file.
    pub fn read_header_at(&self, position: u64) -> LogResult<Option<BatchHeader>> {
        self.header_in(&*self.files.get()?, position)
    }

    /// [`Segment::read_header_at`] with the files at hand (one cache lookup per walk).
    pub(super) fn header_in(
        &self,
        files: &SegmentFiles,
        position: u64,
    ) -> LogResult<Option<BatchHeader>> {
        if position + BATCH_HEADER_BYTES as u64 > self.size_bytes {
            return Ok(None);
        }
        let mut buf = [0u8; BATCH_HEADER_BYTES];
        files
            .log
            .read_exact_at(&mut buf, position)
            .map_err(|source| LogError::io("read batch header", &self.log_path, source))?;
        Ok(Some(BatchHeader::parse(&buf)?))
    }

    /// Walks batch headers from `position`, where the batch starting at `expected_offset`
    /// should be, to the first one `found` accepts. A length field is never trusted to
    /// size a read before it is checked, and each base offset must follow the batch
    /// before it: damage found here is reported as corruption, and the bytes are not
    /// served.
    fn walk_headers(
        &self,
        files: &SegmentFiles,
        mut position: u64,
        mut expected_offset: Offset,
        found: impl Fn(&BatchHeader) -> bool,
    ) -> LogResult<Option<(u64, BatchHeader)>> {
        while let Some(header) = self.header_in(files, position)? {
            header
                .check_framing(self.batch_bytes_max)
                .map_err(|error| self.corruption(position, error.to_string()))?;
            self.check_follows(&header, position, expected_offset)?;
            if found(&header) {
                return Ok(Some((position, header)));
            }
            position += header.total_bytes() as u64;
            expected_offset = header.next_offset();
        }
        Ok(None)
    }

    /// The position and header of the first batch whose last offset is ≥ `offset`. The
    /// walk starts at the offset index's floor entry; when the batch there does not match
    /// the entry (a damaged index), it starts again from byte 0.
    pub fn find_batch(&self, offset: Offset) -> LogResult<Option<(u64, BatchHeader)>> {
        self.find_batch_in(&*self.files.get()?, offset)
    }

    /// [`Segment::find_batch`] with the files at hand.
    pub(super) fn find_batch_in(
        &self,
        files: &SegmentFiles,
        offset: Offset,
    ) -> LogResult<Option<(u64, BatchHeader)>> {
        let wanted = |header: &BatchHeader| header.last_offset() >= offset;
        let Some((entry_offset, entry_position)) = files.index.lookup(offset) else {
            return self.walk_headers(files, 0, self.base_offset, wanted);
        };
        let start = u64::from(entry_position);
        match self.walk_headers(files, start, entry_offset, wanted) {
            Err(LogError::Corruption {
                position, reason, ..
            }) if position == start => {
                tracing::warn!(
                    path = %files.index.path().display(), %entry_offset, %reason,
                    "offset index entry does not match its batch; walking from the start"
                );
                self.walk_headers(files, 0, self.base_offset, wanted)
            }
            result => result,
        }
    }

    /// The first batch whose newest timestamp is ≥ `timestamp_ms`, found by starting at
    /// the time index's floor entry and walking headers.
    pub fn find_batch_by_timestamp(&self, timestamp_ms: i64) -> LogResult<Option<BatchHeader>> {
        if self.max_timestamp_ms < timestamp_ms {
            return Ok(None);
        }
        let files = self.files.get()?;
        let start_offset = files
            .time_index
            .lookup(timestamp_ms)
            .map_or(self.base_offset, |(_, offset)| offset);
        let Some((start, first)) = self.find_batch_in(&files, start_offset)? else {
            return Ok(None);
        };
        Ok(self
            .walk_headers(&files, start, first.base_offset, |header| {
                header.max_timestamp >= timestamp_ms
            })?
            .map(|(_, header)| header))
    }

    /// Whole batches starting with the one holding `offset`, at most `max_bytes` (but always
    /// the first batch, so a large batch cannot stall a reader), none ending at or beyond
    /// `upper_bound`. One positional read into a reused buffer (`read_buffer.rs`); the
    /// bytes are returned exactly as stored.
    pub fn read(
        &self,
        offset: Offset,
        max_bytes: usize,
        upper_bound: Offset,
        first_batch: FirstBatch,
    ) -> LogResult<Option<Bytes>> {
        let files = self.files.get()?;
        if let Some(direct) = &files.direct {
            return self.read_direct(&files, direct, offset, max_bytes, upper_bound, first_batch);
        }
        let Some((start, first)) = self.find_batch_in(&files, offset)? else {
            return Ok(None);
        };
        if !first_batch_fits(&first, max_bytes, upper_bound, first_batch) {
            return Ok(None);
        }
        let wanted = self.wanted_bytes(start, &first, max_bytes);
        if let Some(whole) = self.sealed_map(&files)? {
            if start.saturating_add(wanted) > whole.len() as u64 {
                // What `read_exact_at` reports for a batch cut short by the end of the file.
                return Err(LogError::io(
                    "read batches",
                    &self.log_path,
                    std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                ));
            }
            return Ok(Some(segment_map::read_mapped(
                &whole,
                start,
                wanted,
                upper_bound,
            )));
        }
        let mut buffer = ReadBuffer::take(wanted as usize);
        let buf = buffer.as_mut_slice();
        files
            .log
            .read_exact_at(buf, start)
            .map_err(|source| LogError::io("read batches", &self.log_path, source))?;
        let end = segment_map::whole_batches_len(buf, upper_bound);
        Ok(Some(buffer.into_bytes(end)))
    }

    /// How many bytes a read whose first batch is `first`, at `start`, takes: up to
    /// `max_bytes` of what the segment holds from there, but always the whole first batch.
    fn wanted_bytes(&self, start: u64, first: &BatchHeader, max_bytes: usize) -> u64 {
        (max_bytes as u64)
            .min(self.size_bytes - start)
            .max(first.total_bytes() as u64)
    }

    /// [`Segment::read`] with direct I/O: one aligned read from the offset index's floor
    /// entry, with the headers before the wanted batch walked in memory. (A buffered
    /// header read would go to the disk here: direct writes leave nothing in the page
    /// cache.) When that read does not hold the wanted batch's header (batches larger
    /// than the read), the headers are walked from the file as in the buffered path.
    fn read_direct(
        &self,
        files: &SegmentFiles,
        direct: &DirectFile,
        offset: Offset,
        max_bytes: usize,
        upper_bound: Offset,
        first_batch: FirstBatch,
    ) -> LogResult<Option<Bytes>> {
        let (floor_offset, floor) = files
            .index
            .lookup(offset)
            .map_or((self.base_offset, 0), |(entry_offset, position)| {
                (entry_offset, u64::from(position))
            });
        let span = (max_bytes as u64)
            .saturating_add(self.index_interval_bytes)
            .min(self.size_bytes.saturating_sub(floor));
        let mut walked_to_the_end = false;
        let found = if span < BATCH_HEADER_BYTES as u64 {
            None
        } else {
            let bytes = direct.read(floor, span as usize, &self.log_path)?;
            match self.find_in(&bytes, floor, floor_offset, offset) {
                Ok(found) => {
                    walked_to_the_end = found.is_none() && floor + span == self.size_bytes;
                    found.map(|(at, first)| (floor + at as u64, first, Some((bytes, at))))
                }
                // A damaged index entry or batch: the walk on the file decides, and names
                // the damage.
                Err(LogError::Corruption { .. }) => None,
                Err(error) => return Err(error),
            }
        };
        let (start, first, read) = match found {
            Some(found) => found,
            // The read held every batch from the floor to the end: none holds `offset`.
            None if walked_to_the_end => return Ok(None),
            None => match self.find_batch_in(files, offset)? {
                Some((start, first)) => (start, first, None),
                None => return Ok(None),
            },
        };
        if !first_batch_fits(&first, max_bytes, upper_bound, first_batch) {
            return Ok(None);
        }
        let wanted = self.wanted_bytes(start, &first, max_bytes) as usize;
        if start.saturating_add(wanted as u64) > self.size_bytes {
            return Err(LogError::io(
                "read batches",
                &self.log_path,
                std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
            ));
        }
        let bytes = match read {
            Some((bytes, at)) if at + wanted <= bytes.len() => bytes.slice(at..at + wanted),
            _ => direct.read(start, wanted, &self.log_path)?,
        };
        let end = segment_map::whole_batches_len(&bytes, upper_bound);
        Ok(Some(bytes.slice(..end)))
    }

    /// Walks the batch headers in `bytes` (read from file position `from`) to the first
    /// batch whose last offset is ≥ `offset`: its position in `bytes` and its header.
    /// `None` when `bytes` ends before that header does. Damage is corruption, as in
    /// [`Segment::find_batch`].
    fn find_in(
        &self,
        bytes: &[u8],
        from: u64,
        mut expected_offset: Offset,
        offset: Offset,
    ) -> LogResult<Option<(usize, BatchHeader)>> {
        let mut at = 0;
        while let Some(header_bytes) = bytes.get(at..at + BATCH_HEADER_BYTES) {
            let header = BatchHeader::parse(header_bytes)?;
            let position = from + at as u64;
            header
                .check_framing(self.batch_bytes_max)
                .map_err(|error| self.corruption(position, error.to_string()))?;
            self.check_follows(&header, position, expected_offset)?;
            if header.last_offset() >= offset {
                return Ok(Some((at, header)));
            }
            at += header.total_bytes();
            expected_offset = header.next_offset();
        }
        Ok(None)
    }

    /// The map of a sealed segment's `.log`, made on first use; `None` for the active
    /// segment (or an empty file, which cannot be mapped).
    fn sealed_map(&self, files: &SegmentFiles) -> LogResult<Option<Bytes>> {
        if !self.sealed || self.size_bytes == 0 {
            return Ok(None);
        }
        let mut map = files
            .map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(whole) = map.as_ref() {
            if whole.len() as u64 == self.size_bytes {
                return Ok(Some(whole.clone()));
            }
        }
        let whole = segment_map::map_whole_file(
            &files.log,
            self.size_bytes,
            &self.log_path,
            Arc::clone(&self.maps),
        )?;
        *map = Some(whole.clone());
        Ok(Some(whole))
    }
}

/// Whether a read may return `first` as its first batch: it ends below `upper_bound`, and
/// (for the later partitions of a fetch) it fits in `max_bytes`.
fn first_batch_fits(
    first: &BatchHeader,
    max_bytes: usize,
    upper_bound: Offset,
    first_batch: FirstBatch,
) -> bool {
    first.next_offset() <= upper_bound
        && (first_batch == FirstBatch::AlwaysWhole || first.total_bytes() <= max_bytes)
}
