//! `IndexFile`: a file of fixed-size entries, preallocated and memory-mapped, shared by the
//! offset index (`.index`) and the time index (`.timeindex`). It knows nothing of what an
//! entry means; the wrappers encode entries and keep them sorted.
//!
//! # Layout and lifecycle
//!
//! The file is `capacity` slots of `ENTRY_BYTES` bytes; the first `entries` slots are valid.
//! While the segment is active the file is preallocated to `max_bytes` (rounded down to a
//! whole entry) so appends are stores into the map. When the segment is sealed, and at clean
//! close, [`IndexFile::trim`] cuts the file to exactly the valid entries and fsyncs it, so on
//! the next open the file length says how many entries there are. A sealed segment's index
//! is opened with [`OpenMode::Sealed`] (mapped at its length, not grown);
//! [`IndexFile::unseal`] grows it back when a truncation makes its segment active again.
//!
//! # Crash behaviour
//!
//! After a crash an untrimmed file still has its preallocated length: open then counts every
//! slot as an entry, the zero-filled tail breaks the wrapper's `sanity_check`, and the caller
//! rebuilds the index from the log (indexes are never a source of truth). Creating the file
//! does not fsync its directory: the segment roll that creates it does that once for the
//! `.log`, `.index` and `.timeindex` files.
//!
//! # Descriptors
//!
//! An `IndexFile` keeps its map, not its descriptor: the file is opened to size and map
//! it, and closed again (a map stays valid after its descriptor is closed). The rare
//! changes of length (trim, unseal) open it again by path. So an index costs a memory
//! map and no entry of the process's descriptor table, which is what lets a broker host
//! thousands of partitions under its `RLIMIT_NOFILE` (docs/ARCHITECTURE.md, "Open files").
//!
//! # Concurrency
//!
//! One `IndexFile` per file, owned by the partition's single writer (`&mut self` for every
//! change). Nothing else in the process or outside it changes the file's length while it is
//! mapped; this type unmaps before every `set_len`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;
use strata_proto::types::Offset;

use crate::log::durable;
use crate::log::error::{LogError, LogResult};

/// How [`IndexFile::open`] prepares the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenMode {
    /// Preallocate to `max_bytes`: the index of the active segment.
    Appendable,
    /// Map the file at its length, read-only until `unseal`: a sealed segment's index.
    Sealed,
}

/// A preallocated, memory-mapped file of `ENTRY_BYTES`-byte entries.
#[derive(Debug)]
pub(crate) struct IndexFile<const ENTRY_BYTES: usize> {
    path: PathBuf,
    /// `None` when the file is empty (a zero-length file cannot be mapped portably).
    map: Option<MmapMut>,
    /// Valid entries at the start of the file.
    entries: usize,
    /// Entries the mapped file has room for.
    capacity: usize,
    /// The preallocated size while appendable.
    max_bytes: u64,
    /// Trimmed by [`IndexFile::trim`]: read-only until [`IndexFile::unseal`].
    sealed: bool,
}

impl<const ENTRY_BYTES: usize> IndexFile<ENTRY_BYTES> {
    const ENTRY_BYTES_U64: u64 = ENTRY_BYTES as u64;

    /// Opens or creates `path`. An existing file's length must be a whole number of entries
    /// (all of them count as valid). [`OpenMode::Appendable`] then extends the file to
    /// `max_bytes`; [`OpenMode::Sealed`] maps it as it is (`max_bytes` is kept for `unseal`).
    pub(crate) fn open(path: &Path, max_bytes: u64, mode: OpenMode) -> LogResult<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|source| LogError::io("open", path, source))?;
        let length_bytes = file
            .metadata()
            .map_err(|source| LogError::io("stat", path, source))?
            .len();
        if length_bytes % Self::ENTRY_BYTES_U64 != 0 {
            return Err(LogError::BadAuxiliaryFile {
                path: path.to_path_buf(),
                reason: format!(
                    "length {length_bytes} is not a multiple of the {ENTRY_BYTES}-byte entry"
                ),
            });
        }
        let entries = Self::to_entries(length_bytes, path)?;
        let mut index = IndexFile {
            path: path.to_path_buf(),
            map: None,
            entries,
            capacity: entries,
            max_bytes,
            sealed: true,
        };
        match mode {
            OpenMode::Appendable => index.unseal_with(&file)?,
            OpenMode::Sealed => index.resize(&file, length_bytes)?,
        }
        // `file` is closed here; the map keeps the pages (see "Descriptors").
        Ok(index)
    }

    /// Opens the file again, for a change of its length.
    fn reopen(&self) -> LogResult<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(|source| LogError::io("open", &self.path, source))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn entries(&self) -> usize {
        self.entries
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn is_full(&self) -> bool {
        self.entries >= self.capacity
    }

    /// The entry in slot `slot`, if `slot < entries`.
    pub(crate) fn entry(&self, slot: usize) -> Option<[u8; ENTRY_BYTES]> {
        if slot >= self.entries {
            return None;
        }
        let start = slot.checked_mul(ENTRY_BYTES)?;
        let bytes = self
            .map
            .as_ref()?
            .get(start..start.checked_add(ENTRY_BYTES)?)?;
        bytes.try_into().ok()
    }

    /// The number of leading entries for which `below` holds; `below` must hold for a prefix
    /// of the entries and fail for the rest (a partition point, found by binary search).
    pub(crate) fn count_while(&self, below: impl Fn(&[u8; ENTRY_BYTES]) -> bool) -> usize {
        let (mut low, mut high) = (0, self.entries);
        while low < high {
            let middle = low + (high - low) / 2;
            match self.entry(middle) {
                Some(entry) if below(&entry) => low = middle + 1,
                _ => high = middle,
            }
        }
        low
    }

    /// Stores `entry` in the next free slot.
    pub(crate) fn append(&mut self, entry: [u8; ENTRY_BYTES]) -> LogResult<()> {
        if self.sealed {
            return Err(self.bad("append to a sealed (trimmed) index".to_owned()));
        }
        if self.is_full() {
            return Err(self.bad(format!("index is full ({} entries)", self.capacity)));
        }
        let start = self.entries * ENTRY_BYTES;
        let slot = self
            .map
            .as_mut()
            .and_then(|map| map.get_mut(start..start + ENTRY_BYTES));
        match slot {
            Some(slot) => slot.copy_from_slice(&entry),
            None => return Err(self.bad(format!("slot {} is not mapped", self.entries))),
        }
        self.entries += 1;
        Ok(())
    }

    /// Keeps only the first `entries` entries (no-op if there are fewer).
    pub(crate) fn truncate_entries(&mut self, entries: usize) {
        self.entries = self.entries.min(entries);
    }

    /// Writes the dirty pages of the map back to the file (no fsync of metadata).
    pub(crate) fn flush(&self) -> LogResult<()> {
        match &self.map {
            Some(map) => durable::sync_mmap(map, &self.path),
            None => Ok(()),
        }
    }

    /// Cuts the file to the valid entries and fsyncs it; the index becomes read-only.
    /// A no-op on an index that is already trimmed (clean close of sealed segments).
    pub(crate) fn trim(&mut self) -> LogResult<()> {
        if self.sealed && self.capacity == self.entries {
            return Ok(());
        }
        self.flush()?;
        let file = self.reopen()?;
        self.resize(&file, self.entries as u64 * Self::ENTRY_BYTES_U64)?;
        durable::sync_file(&file, &self.path)?;
        self.sealed = true;
        Ok(())
    }

    /// Makes a trimmed index appendable again (the segment became active after a
    /// truncation): preallocates it back to `max_bytes`.
    pub(crate) fn unseal(&mut self) -> LogResult<()> {
        let file = self.reopen()?;
        self.unseal_with(&file)
    }

    fn unseal_with(&mut self, file: &File) -> LogResult<()> {
        let length_bytes = self.entries as u64 * Self::ENTRY_BYTES_U64;
        self.resize(file, self.max_bytes.max(length_bytes))?;
        self.sealed = false;
        Ok(())
    }

    /// Unmaps and removes the file (a missing file is fine). The caller fsyncs the
    /// directory (once for all files of the segment).
    pub(crate) fn delete(self) -> LogResult<()> {
        let IndexFile { path, map, .. } = self;
        drop(map);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(LogError::io("delete", path, source)),
        }
    }

    /// Sets the file length to `length_bytes` rounded down to a whole entry (never below the
    /// valid entries) and maps it again. After an error nothing is mapped: reads find no
    /// entries and appends fail, and the caller stops or rebuilds the index.
    fn resize(&mut self, file: &File, length_bytes: u64) -> LogResult<()> {
        let valid_bytes = self.entries as u64 * Self::ENTRY_BYTES_U64;
        let length_bytes = (length_bytes - length_bytes % Self::ENTRY_BYTES_U64).max(valid_bytes);
        let capacity = Self::to_entries(length_bytes, &self.path)?;
        // Unmap first: shrinking a file under a live map would make its tail SIGBUS.
        self.map = None;
        file.set_len(length_bytes)
            .map_err(|source| LogError::io("set_len", &self.path, source))?;
        if length_bytes > 0 {
            // SAFETY: only the partition's single writer changes the file: it owns the one
            // `IndexFile` of the file that is ever written or resized (the active segment's,
            // or a sealed one's it unseals). Other `IndexFile`s of a sealed segment's file
            // are read-only copies opened for readers (`segment/files.rs`), and all of them
            // are gone before the writer may change the file (readers hold the partition's
            // read lock, the writer its write lock). No other process uses the data
            // directory (it holds the `.lock` flock), and the length only changes in
            // `resize`, which drops this map before `set_len`. So the mapped range stays
            // backed by the file for the map's whole lifetime (closing `file` does not end
            // the map), and the only writes to it go through `&mut self`.
            let map = unsafe { MmapMut::map_mut(file) }
                .map_err(|source| LogError::io("mmap", &self.path, source))?;
            self.map = Some(map);
        }
        self.capacity = capacity;
        Ok(())
    }

    fn to_entries(length_bytes: u64, path: &Path) -> LogResult<usize> {
        usize::try_from(length_bytes / Self::ENTRY_BYTES_U64).map_err(|_| {
            LogError::BadAuxiliaryFile {
                path: path.to_path_buf(),
                reason: format!("length {length_bytes} does not fit in memory"),
            }
        })
    }

    /// `offset - base_offset` as stored in an entry; `BadAuxiliaryFile` if it is negative
    /// or does not fit in u32.
    pub(crate) fn relative_offset(&self, base_offset: Offset, offset: Offset) -> LogResult<u32> {
        offset
            .0
            .checked_sub(base_offset.0)
            .and_then(|relative| u32::try_from(relative).ok())
            .ok_or_else(|| {
                self.bad(format!(
                    "offset {offset} is not within u32 of the base offset {base_offset}"
                ))
            })
    }

    /// A `BadAuxiliaryFile` error about this file.
    pub(crate) fn bad(&self, reason: String) -> LogError {
        LogError::BadAuxiliaryFile {
            path: self.path.clone(),
            reason,
        }
    }
}

/// The offset an entry's `relative_offset` stands for (saturating: a damaged entry must not
/// overflow, it fails the sanity check instead).
pub(crate) fn absolute_offset(base_offset: Offset, relative_offset: u32) -> Offset {
    Offset(base_offset.0.saturating_add(i64::from(relative_offset)))
}
