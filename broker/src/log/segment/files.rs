//! The open files of one [`Segment`](super::Segment): its `.log` descriptor (and the
//! `O_DIRECT` one), the maps of its two indexes and, once read, the read-only map of its
//! `.log`. And [`FileSlot`], which says where a segment's files are: the active segment
//! keeps them ("pinned"); a sealed segment's are in the shared [`OpenSegments`] cache
//! while they are warm, and closed when they are not, to be opened again by the next read
//! that needs them.
//!
//! Everything a sealed segment needs to answer without its files — base and next offset,
//! size, max timestamp — stays in the `Segment`, so closing the files loses nothing.
//!
//! Invariants: a segment is pinned while it is not sealed (it takes appends, its indexes
//! are preallocated and writable); a sealed segment is pinned only between a call that
//! needs its files mutably (truncation, a recovery scan) and the next seal. Mutations go
//! through `&mut Segment`, which the partition log gives only under its write lock, when
//! no read holds any copy of the files.

use std::fs::{File, OpenOptions};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use strata_proto::types::Offset;

use super::super::config::LogConfig;
use super::super::direct::{self, DirectFile};
use super::super::error::{LogError, LogResult};
use super::super::offset_index::OffsetIndex;
use super::super::open_segments::OpenSegments;
use super::super::time_index::TimeIndex;
use super::{open_or_recreate, segment_file_name};

/// Whether a segment's indexes are mapped for appends or as sealed, read-only files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IndexMode {
    Appendable,
    Sealed,
}

/// Where a segment's files are and how to open them.
#[derive(Debug, Clone)]
pub(super) struct FileSpec {
    pub(super) base_offset: Offset,
    pub(super) log_path: PathBuf,
    pub(super) index_path: PathBuf,
    pub(super) time_index_path: PathBuf,
    index_bytes_max: u64,
    direct_io: bool,
}

impl FileSpec {
    pub(super) fn new(dir: &Path, base_offset: Offset, config: &LogConfig) -> FileSpec {
        FileSpec::with_suffix(dir, base_offset, config, "")
    }

    /// The files named `<base:020>.<extension><suffix>`: `suffix` is empty for a segment
    /// of the log, `.cleaned` for one the cleaner is writing (`cleaner/swap.rs`).
    pub(super) fn with_suffix(
        dir: &Path,
        base_offset: Offset,
        config: &LogConfig,
        suffix: &str,
    ) -> FileSpec {
        let path = |extension| dir.join(segment_file_name(base_offset, extension) + suffix);
        FileSpec {
            base_offset,
            log_path: path("log"),
            index_path: path("index"),
            time_index_path: path("timeindex"),
            index_bytes_max: config.index_bytes_max,
            direct_io: config.direct_io,
        }
    }
}

/// The open files of one segment. See the module docs.
#[derive(Debug)]
pub(crate) struct SegmentFiles {
    pub(super) log: Arc<File>,
    pub(super) index: OffsetIndex,
    pub(super) time_index: TimeIndex,
    /// The read-only map of the sealed `.log` (the whole file as one `Bytes`), made on the
    /// first read after sealing. Slices of it may outlive these files (see `reclaim.rs`).
    pub(super) map: Mutex<Option<Bytes>>,
    /// The `.log` opened a second time with `O_DIRECT` (`LogConfig::direct_io`): appends
    /// and bulk reads go through it, and the file is never mapped.
    pub(super) direct: Option<DirectFile>,
    /// An index file was missing or unusable when these files were opened and was
    /// recreated empty: the indexes must be rebuilt from the log before they are trusted.
    pub(super) index_recreated: bool,
}

impl SegmentFiles {
    /// Opens the indexes (and the direct handle) of the segment whose `.log` is `log`.
    pub(super) fn open(spec: &FileSpec, log: File, mode: IndexMode) -> LogResult<SegmentFiles> {
        let (index, index_recreated) = open_or_recreate(&spec.index_path, || match mode {
            IndexMode::Appendable => {
                OffsetIndex::open(&spec.index_path, spec.base_offset, spec.index_bytes_max)
            }
            IndexMode::Sealed => {
                OffsetIndex::open_sealed(&spec.index_path, spec.base_offset, spec.index_bytes_max)
            }
        })?;
        let (time_index, time_index_recreated) =
            open_or_recreate(&spec.time_index_path, || match mode {
                IndexMode::Appendable => TimeIndex::open(
                    &spec.time_index_path,
                    spec.base_offset,
                    spec.index_bytes_max,
                ),
                IndexMode::Sealed => TimeIndex::open_sealed(
                    &spec.time_index_path,
                    spec.base_offset,
                    spec.index_bytes_max,
                ),
            })?;
        let direct = if spec.direct_io {
            open_direct(&spec.log_path, mode)
        } else {
            None
        };
        Ok(SegmentFiles {
            log: Arc::new(log),
            index,
            time_index,
            map: Mutex::new(None),
            direct,
            index_recreated: index_recreated || time_index_recreated,
        })
    }

    /// Opens the files of an existing segment: `.log` for reading and writing, indexes as
    /// `mode` says.
    pub(super) fn open_existing(spec: &FileSpec, mode: IndexMode) -> LogResult<SegmentFiles> {
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&spec.log_path)
            .map_err(|source| LogError::io("open segment", &spec.log_path, source))?;
        SegmentFiles::open(spec, log, mode)
    }

    /// Drops this segment's map of its `.log` (slices of it may still be alive).
    pub(super) fn drop_map(&mut self) {
        self.map
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
    }
}

/// The `.log` opened for direct I/O, or `None` (buffered I/O) where the filesystem refuses
/// `O_DIRECT` (tmpfs, some network filesystems). That is a warning for an active segment;
/// a sealed one, opened again by every read that finds it cold, only logs it at debug.
fn open_direct(log_path: &Path, mode: IndexMode) -> Option<DirectFile> {
    match direct::open(log_path) {
        Ok(file) => Some(DirectFile::new(file)),
        Err(error) if mode == IndexMode::Appendable => {
            tracing::warn!(
                path = %log_path.display(),
                %error,
                "direct I/O is not available for this segment; using the page cache"
            );
            None
        }
        Err(error) => {
            tracing::debug!(path = %log_path.display(), %error, "direct I/O is not available");
            None
        }
    }
}

/// A segment's files for a read: the pinned ones, borrowed, or the cache's, shared.
#[derive(Debug)]
pub(super) enum FilesRef<'a> {
    Pinned(&'a SegmentFiles),
    Cached(Arc<SegmentFiles>),
}

impl Deref for FilesRef<'_> {
    type Target = SegmentFiles;

    fn deref(&self) -> &SegmentFiles {
        match self {
            FilesRef::Pinned(files) => files,
            FilesRef::Cached(files) => files,
        }
    }
}

/// Where a segment's files are. See the module docs.
#[derive(Debug)]
pub(super) struct FileSlot {
    /// The segment's key in `cache`.
    id: u64,
    cache: OpenSegments,
    spec: FileSpec,
    /// The files of a segment that is not sealed (or is being changed).
    pinned: Option<Box<SegmentFiles>>,
}

impl FileSlot {
    /// A slot holding `files` (a new or reopened active segment).
    pub(super) fn pinned(spec: FileSpec, cache: &OpenSegments, files: SegmentFiles) -> FileSlot {
        FileSlot {
            id: cache.next_id(),
            cache: cache.clone(),
            spec,
            pinned: Some(Box::new(files)),
        }
    }

    /// A slot of a sealed segment whose files are not open yet.
    pub(super) fn cold(spec: FileSpec, cache: &OpenSegments) -> FileSlot {
        FileSlot {
            id: cache.next_id(),
            cache: cache.clone(),
            spec,
            pinned: None,
        }
    }

    pub(super) fn spec(&self) -> &FileSpec {
        &self.spec
    }

    /// The pinned files, if the segment holds its own (the active segment does).
    pub(super) fn pinned_files(&self) -> Option<&SegmentFiles> {
        self.pinned.as_deref()
    }

    /// The files, opening a sealed segment's if they are closed.
    pub(super) fn get(&self) -> LogResult<FilesRef<'_>> {
        if let Some(files) = &self.pinned {
            return Ok(FilesRef::Pinned(files));
        }
        self.cache
            .get_or_open(self.id, || {
                SegmentFiles::open_existing(&self.spec, IndexMode::Sealed)
            })
            .map(FilesRef::Cached)
    }

    /// The files, for a change: a sealed segment's are taken out of the cache (or opened)
    /// and pinned until [`FileSlot::unpin`].
    pub(super) fn get_mut(&mut self) -> LogResult<&mut SegmentFiles> {
        if self.pinned.is_none() {
            let files = match self.cache.remove(self.id).map(Arc::try_unwrap) {
                Some(Ok(files)) => files,
                // Not cached, or (never under the write lock) still shared by a read.
                Some(Err(_)) | None => SegmentFiles::open_existing(&self.spec, IndexMode::Sealed)?,
            };
            self.pinned = Some(Box::new(files));
        }
        match self.pinned.as_deref_mut() {
            Some(files) => Ok(files),
            None => Err(LogError::io(
                "pin segment files",
                &self.spec.log_path,
                std::io::Error::other("no files after opening them"),
            )),
        }
    }

    /// Hands the pinned files of a segment that was just sealed to the cache, which
    /// closes them once they are the least recently used.
    pub(super) fn unpin(&mut self) {
        if let Some(files) = self.pinned.take() {
            self.cache.insert(self.id, Arc::new(*files));
        }
    }

    /// Closes the files (the segment is being deleted); returns the `.log` handle if they
    /// were open.
    pub(super) fn take_log(&mut self) -> Option<Arc<File>> {
        let files = match self.pinned.take() {
            Some(files) => Some(Arc::new(*files)),
            None => self.cache.remove(self.id),
        };
        files.map(|files| Arc::clone(&files.log))
    }
}
