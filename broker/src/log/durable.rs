//! The one place in `broker::log` that makes data durable: every fsync, directory fsync,
//! `msync` of an index map and positional write of the storage layer goes through here, so
//! failures are reported the same way everywhere and can be injected in tests.
//!
//! # Why an fsync error is fatal ("fsyncgate")
//!
//! When writeback of a dirty page fails, Linux reports the error to one `fsync` caller and
//! may then mark the page clean and drop it. A retried `fsync` therefore "succeeds" while the
//! data never reached the disk (PostgreSQL lost data this way in 2018). The only safe reaction
//! is to stop writing, exit and recover from the log on disk and from the replicas. So these
//! functions never retry: a failed fsync is returned as [`LogError::FsyncFailed`], which
//! [`LogError::is_fatal`] reports as fatal, and the caller stops the log.
//!
//! A write error (e.g. `ENOSPC`) is *not* fatal by itself: nothing claimed the bytes were
//! durable, and the caller truncates the partial write away.
//!
//! # Failpoints (`fail` crate, compiled in with the `failpoints` feature only)
//!
//! - `log::fsync` — [`sync_file`], [`sync_dir`] and [`sync_mmap`] fail with
//!   [`LogError::FsyncFailed`] before touching the disk.
//! - `log::write` — [`write_all_at`] and [`write_all_vectored_at`] fail with `ENOSPC`; with
//!   the argument `partial` they first write the first half of the bytes (of the
//!   concatenation, for the vectored write: a torn write), then fail.
//!
//! The argument of `return(...)` (for `log::write`: the text after `partial:` or the whole
//! argument if it is not `partial`) is a path filter: only paths containing it fail. Tests
//! pass their temporary directory, so parallel tests are not hit by a failpoint set for
//! another test (the failpoint registry is global).

use std::fs::File;
use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use memmap2::MmapMut;

use crate::log::error::{LogError, LogResult};
use crate::log::metrics;

/// `ENOSPC` on Linux: the error the `log::write` failpoint injects.
#[allow(dead_code)] // only used by the failpoint
const ENOSPC: i32 = 28;

/// Flushes `file`'s data and metadata to the disk (`fsync`). `path` is only for the error.
pub fn sync_file(file: &File, path: &Path) -> LogResult<()> {
    fsync_failpoint(path)?;
    let started = Instant::now();
    let synced = file.sync_all();
    metrics::fsync_done(started);
    synced.map_err(|source| LogError::FsyncFailed {
        path: path.to_path_buf(),
        source,
    })
}

/// Starts writeback of `length` bytes of `file` from `offset` without waiting for it
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`). Durability promises nothing here: only an
/// fsync does. It spreads the disk writes of `flush = interval` logs over the interval, so
/// the interval's fsync finds little left to write. Linux only; elsewhere it does nothing.
#[cfg(target_os = "linux")]
pub fn start_writeback(file: &File, offset: u64, length: u64, path: &Path) -> LogResult<()> {
    let (Ok(offset), Ok(length)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(length),
    ) else {
        return Err(LogError::io(
            "start writeback",
            path,
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        ));
    };
    // SAFETY: a plain syscall on an open descriptor; it reads no memory of ours.
    let result = unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset,
            length,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(LogError::io(
            "start writeback",
            path,
            std::io::Error::last_os_error(),
        ))
    }
}

/// See the Linux version: there is no `sync_file_range` here, and the hint is skipped.
#[cfg(not(target_os = "linux"))]
pub fn start_writeback(_file: &File, _offset: u64, _length: u64, _path: &Path) -> LogResult<()> {
    Ok(())
}

/// Makes the directory entries of `dir` durable: needed after a file in it was created,
/// renamed or deleted, or else the file (or its new name) can vanish at a power loss.
pub fn sync_dir(dir: &Path) -> LogResult<()> {
    fsync_failpoint(dir)?;
    let handle = File::open(dir).map_err(|source| LogError::io("open directory", dir, source))?;
    let started = Instant::now();
    let synced = handle.sync_all();
    metrics::fsync_done(started);
    synced.map_err(|source| LogError::FsyncFailed {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes the dirty pages of a memory map of `path` back to the file (`msync(MS_SYNC)`).
/// A failure is an fsync failure: the kernel may have dropped the pages.
pub fn sync_mmap(map: &MmapMut, path: &Path) -> LogResult<()> {
    fsync_failpoint(path)?;
    let started = Instant::now();
    let synced = map.flush();
    metrics::fsync_done(started);
    synced.map_err(|source| LogError::FsyncFailed {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes all of `buf` at byte `position` of `file` (`pwrite`, looping over short writes).
/// On error some prefix of `buf` may have been written; the caller truncates it away.
pub fn write_all_at(file: &File, buf: &[u8], position: u64, path: &Path) -> LogResult<()> {
    write_failpoint(file, buf, position, path)?;
    file.write_all_at(buf, position)
        .map_err(|source| LogError::io("write", path, source))
}

/// Writes `parts` one after the other, starting at byte `position` of `file`, with
/// positional vectored writes (`pwritev`, looping over short writes): the same bytes as
/// [`write_all_at`] of their concatenation, without building it. The append path uses it
/// to write a stamped batch header and the rest of the batch as received.
/// On error some prefix of the concatenation may have been written; the caller truncates
/// it away.
pub fn write_all_vectored_at(
    file: &File,
    parts: &[&[u8]],
    position: u64,
    path: &Path,
) -> LogResult<()> {
    write_vectored_failpoint(file, parts, position, path)?;
    pwritev_all(file, parts, position).map_err(|source| LogError::io("write", path, source))
}

/// At most this many buffers go to one `pwritev` (Linux's `IOV_MAX` is 1024).
const IOVECS_MAX: usize = 64;

fn pwritev_all(file: &File, parts: &[&[u8]], mut position: u64) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts
        .iter()
        .filter(|part| !part.is_empty())
        .map(|part| IoSlice::new(part))
        .collect();
    let mut remaining: &mut [IoSlice<'_>] = &mut slices;
    while !remaining.is_empty() {
        let count = remaining.len().min(IOVECS_MAX);
        let offset = libc::off_t::try_from(position).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("write position {position} does not fit in off_t"),
            )
        })?;
        // SAFETY: `IoSlice` is documented to be ABI compatible with `struct iovec` on Unix;
        // the pointer and count describe `count` live, initialized entries of `remaining`,
        // whose buffers are borrowed for the whole call; the kernel only reads them. The fd
        // is owned by `file`, which outlives the call.
        let written = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                remaining.as_ptr().cast::<libc::iovec>(),
                count as libc::c_int,
                offset,
            )
        };
        if written < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if written == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::WriteZero));
        }
        // `written` is positive and at most the sum of the lengths given.
        let written = written as usize;
        position += written as u64;
        IoSlice::advance_slices(&mut remaining, written);
    }
    Ok(())
}

// The failpoint helpers below are compiled out with the `fail` crate's `failpoints` feature
// off (production builds), which leaves their arguments and callees unused.

#[allow(unused_variables)]
fn fsync_failpoint(path: &Path) -> LogResult<()> {
    fail::fail_point!("log::fsync_hold", |filter| held_fsync(path, filter));
    fail::fail_point!("log::fsync", |filter| injected_fsync_failure(path, filter));
    Ok(())
}

#[allow(unused_variables)]
fn write_failpoint(file: &File, buf: &[u8], position: u64, path: &Path) -> LogResult<()> {
    fail::fail_point!("log::write", |argument| {
        injected_write_failure(file, buf, position, path, argument)
    });
    Ok(())
}

#[allow(unused_variables)]
fn write_vectored_failpoint(
    file: &File,
    parts: &[&[u8]],
    position: u64,
    path: &Path,
) -> LogResult<()> {
    fail::fail_point!("log::write", |argument| {
        // Tests only: the torn half is taken from the concatenation of the parts.
        let joined = parts.concat();
        injected_write_failure(file, &joined, position, path, argument)
    });
    Ok(())
}

/// Tests only: while `log::fsync_hold` is `return(<filter>)`, an fsync of a path that
/// contains the filter waits for it to be turned off, so a test can hold commits back.
/// Then the fsync runs (this returns `Ok`, and the `log::fsync` failpoint is skipped).
#[allow(dead_code)]
fn held_fsync(path: &Path, mut filter: Option<String>) -> LogResult<()> {
    while path_matches(path, filter.as_deref()) {
        std::thread::sleep(std::time::Duration::from_millis(1));
        match fail::eval("log::fsync_hold", |now| now) {
            Some(now) => filter = now,
            None => break,
        }
    }
    Ok(())
}

#[allow(dead_code)]
fn injected_fsync_failure(path: &Path, filter: Option<String>) -> LogResult<()> {
    if !path_matches(path, filter.as_deref()) {
        return Ok(());
    }
    Err(LogError::FsyncFailed {
        path: path.to_path_buf(),
        source: std::io::Error::other("injected fsync failure"),
    })
}

#[allow(dead_code)]
fn injected_write_failure(
    file: &File,
    buf: &[u8],
    position: u64,
    path: &Path,
    argument: Option<String>,
) -> LogResult<()> {
    let argument = argument.unwrap_or_default();
    let (partial, filter) = match argument.strip_prefix("partial") {
        Some(rest) => (true, rest.strip_prefix(':').unwrap_or(rest)),
        None => (false, argument.as_str()),
    };
    if !path_matches(path, Some(filter)) {
        return Ok(());
    }
    if partial {
        let half = buf.get(..buf.len() / 2).unwrap_or_default();
        file.write_all_at(half, position)
            .map_err(|source| LogError::io("write", path, source))?;
    }
    Err(LogError::io(
        "write",
        path,
        std::io::Error::from_raw_os_error(ENOSPC),
    ))
}

/// Whether an injected failure applies to `path`: no filter (or an empty one) matches all.
#[allow(dead_code)]
fn path_matches(path: &Path, filter: Option<&str>) -> bool {
    match filter {
        None | Some("") => true,
        Some(filter) => path.to_string_lossy().contains(filter),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::fs::{self, OpenOptions};

    use super::*;

    fn open_rw(path: &Path) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap()
    }

    #[test]
    fn write_all_at_writes_at_position_and_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let file = open_rw(&path);
        write_all_at(&file, b"world", 6, &path).unwrap();
        write_all_at(&file, b"hello ", 0, &path).unwrap();
        sync_file(&file, &path).unwrap();
        sync_dir(dir.path()).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"hello world");
    }

    #[test]
    fn vectored_write_stores_the_concatenation_at_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let file = open_rw(&path);
        write_all_at(&file, b"0123", 0, &path).unwrap();
        write_all_vectored_at(&file, &[b"ab", b"", b"cde"], 4, &path).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"0123abcde");
        // More parts than one pwritev takes, of varied sizes, and a large one.
        let big = vec![7u8; 3 << 20];
        let mut parts: Vec<&[u8]> = Vec::new();
        let small: Vec<Vec<u8>> = (0..IOVECS_MAX * 2 + 3)
            .map(|i| vec![i as u8; i % 5])
            .collect();
        parts.extend(small.iter().map(Vec::as_slice));
        parts.push(&big);
        write_all_vectored_at(&file, &parts, 9, &path).unwrap();
        let mut expected = b"0123abcde".to_vec();
        expected.extend(parts.concat());
        assert_eq!(fs::read(&path).unwrap(), expected);
    }

    #[test]
    fn sync_dir_of_missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = sync_dir(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(error, LogError::Io { .. }), "{error:?}");
        assert!(!error.is_fatal());
    }

    /// All failpoint cases in one test: the `fail` registry is global, and
    /// `FailScenario::setup` serializes scenarios across tests.
    #[test]
    fn failpoints_inject_fsync_and_write_failures() {
        let scenario = fail::FailScenario::setup();
        let dir = tempfile::tempdir().unwrap();
        let filter = dir.path().to_string_lossy().into_owned();
        let path = dir.path().join("data");
        let file = open_rw(&path);

        fail::cfg("log::fsync", &format!("return({filter})")).unwrap();
        let error = sync_file(&file, &path).unwrap_err();
        assert!(matches!(&error, LogError::FsyncFailed { path: p, .. } if *p == path));
        assert!(error.is_fatal());
        assert!(matches!(
            sync_dir(dir.path()),
            Err(LogError::FsyncFailed { .. })
        ));
        // Another path is not affected by this test's filter.
        let other = tempfile::tempdir().unwrap();
        sync_dir(other.path()).unwrap();
        fail::cfg("log::fsync", "off").unwrap();
        sync_file(&file, &path).unwrap();

        fail::cfg("log::write", &format!("return({filter})")).unwrap();
        let error = write_all_at(&file, b"abcd", 0, &path).unwrap_err();
        let LogError::Io { source, .. } = &error else {
            panic!("{error:?}")
        };
        assert_eq!(source.raw_os_error(), Some(ENOSPC));
        assert_eq!(fs::read(&path).unwrap(), b"");

        fail::cfg("log::write", &format!("return(partial:{filter})")).unwrap();
        assert!(write_all_at(&file, b"abcd", 0, &path).is_err());
        assert_eq!(fs::read(&path).unwrap(), b"ab");

        // The vectored write tears the same way: half of the concatenation.
        let error = write_all_vectored_at(&file, &[b"wxy", b"z12345"], 2, &path).unwrap_err();
        assert!(matches!(error, LogError::Io { .. }), "{error:?}");
        assert_eq!(fs::read(&path).unwrap(), b"abwxyz");
        fail::cfg("log::write", &format!("return({filter})")).unwrap();
        assert!(write_all_vectored_at(&file, &[b"wxy", b"z"], 0, &path).is_err());
        assert_eq!(fs::read(&path).unwrap(), b"abwxyz", "nothing written");

        fail::cfg("log::write", "off").unwrap();
        write_all_at(&file, b"abcd", 0, &path).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"abcdyz");
        write_all_vectored_at(&file, &[b"ef", b"gh"], 4, &path).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"abcdefgh");
        scenario.teardown();
    }
}
