//! The read-only memory map of a sealed segment's `.log` (see `segment.rs`, "Reads"): how
//! it is made, how a read slices it, and how a file that was mapped is shrunk without
//! shrinking it in place.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use memmap2::{Advice, Mmap, MmapOptions};
use strata_proto::record::BatchHeader;
use strata_proto::types::Offset;

use super::durable;
use super::error::{LogError, LogResult};
use super::reclaim::MapToken;

/// A page: reads of a mapped range touch one byte per page.
const PAGE_BYTES: usize = 4096;

/// A read-only map with the segment's [`MapToken`]: the token lives as long as any slice
/// of the map, which is what the reclaimer waits for before it cuts a deleted file.
struct TokenedMap {
    map: Mmap,
    _token: MapToken,
}

impl AsRef<[u8]> for TokenedMap {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

/// Maps the first `size_bytes` of a sealed segment's `.log` read-only, as one `Bytes`
/// that holds `token` until its last slice is dropped.
pub(super) fn map_whole_file(
    log: &File,
    size_bytes: u64,
    path: &Path,
    token: MapToken,
) -> LogResult<Bytes> {
    let length = usize::try_from(size_bytes).map_err(|_| {
        LogError::io(
            "map segment",
            path,
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        )
    })?;
    // SAFETY: the mapped range of a sealed segment is never written or shrunk while
    // mapped (segment.rs: appends go past it; truncation replaces the file; a deleted
    // file is cut only once every holder of `token` is gone, reclaim.rs).
    let mapped = unsafe { MmapOptions::new().len(length).map(log) }
        .map_err(|source| LogError::io("map segment", path, source))?;
    // Fetches read forward; a failed hint changes nothing.
    let _ = mapped.advise(Advice::Sequential);
    Ok(Bytes::from_owner(TokenedMap {
        map: mapped,
        _token: token,
    }))
}

/// The length of the whole batches at the start of `buf` (none ending at or beyond
/// `upper_bound`), each starting at the offset after the one before it: a batch whose
/// base offset breaks the sequence ends the run, so the read that asks for it next finds
/// the damage and reports it.
pub(super) fn whole_batches_len(buf: &[u8], upper_bound: Offset) -> usize {
    let mut end = 0usize;
    let mut expected_offset = None;
    while let Some(header_bytes) = buf.get(end..) {
        let Ok(header) = BatchHeader::parse(header_bytes) else {
            break;
        };
        let batch_end = end + header.total_bytes();
        let follows = expected_offset.is_none_or(|expected| header.base_offset == expected);
        if batch_end > buf.len()
            || header.next_offset() > upper_bound
            || header.batch_length < 0
            || !follows
        {
            break;
        }
        expected_offset = Some(header.next_offset());
        end = batch_end;
    }
    end
}

/// Whole batches of the mapped `.log` from `start`, at most `wanted` bytes (the caller
/// checked that they are within the map), as a slice of the map. Every page of it is
/// touched here, on the caller's (blocking) thread, so the gRPC layer's copy out of it
/// later does not wait for the disk on an async thread.
pub(super) fn read_mapped(whole: &Bytes, start: u64, wanted: u64, upper_bound: Offset) -> Bytes {
    let start = usize::try_from(start)
        .unwrap_or(whole.len())
        .min(whole.len());
    let stop = start
        .saturating_add(usize::try_from(wanted).unwrap_or(usize::MAX))
        .min(whole.len());
    let window = &whole[start..stop];
    let end = whole_batches_len(window, upper_bound);
    for page in window[..end].chunks(PAGE_BYTES) {
        // The byte itself (not its address) goes through `black_box`, so it is loaded.
        std::hint::black_box(page.first().copied());
    }
    whole.slice(start..start + end)
}

/// Shrinks `log` (at `path`), which was mapped, without shrinking it in place (readers may
/// still hold slices of the map, and touching a page past the end of a mapped file is a
/// SIGBUS): its first `valid_bytes` go to `<name>.log.tmp`, which is fsynced and renamed
/// over `path`. Returns the new file. A crash before the rename leaves a `.tmp` that
/// recovery removes. The caller fsyncs the directory.
pub(super) fn replace_with_prefix(log: &File, path: &Path, valid_bytes: u64) -> LogResult<File> {
    let mut temp_name = path.to_path_buf().into_os_string();
    temp_name.push(".tmp");
    let temp_path = PathBuf::from(temp_name);
    let temp = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp_path)
        .map_err(|source| LogError::io("create truncated segment", &temp_path, source))?;
    let mut copied = 0u64;
    let mut chunk = vec![
        0u8;
        usize::try_from(valid_bytes)
            .unwrap_or(usize::MAX)
            .min(1 << 20)
    ];
    while copied < valid_bytes {
        let length = chunk
            .len()
            .min(usize::try_from(valid_bytes - copied).unwrap_or(usize::MAX));
        let part = &mut chunk[..length];
        log.read_exact_at(part, copied)
            .map_err(|source| LogError::io("read segment", path, source))?;
        durable::write_all_at(&temp, part, copied, &temp_path)?;
        copied += length as u64;
    }
    durable::sync_file(&temp, &temp_path)?;
    fs::rename(&temp_path, path).map_err(|source| LogError::io("replace segment", path, source))?;
    Ok(temp)
}
