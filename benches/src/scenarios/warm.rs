//! `--warm-page-cache`: run the steps on a machine whose memory is already in use, as on a
//! broker host that has been running for a while, instead of on a freshly booted VM.
//!
//! Why: on the VMs this project is measured on, the host backs guest memory lazily and
//! takes freed memory back within seconds (free page reporting). Every page a freshly
//! booted guest gives its page cache then traps to the host first, and `dd` fills new
//! page-cache pages at 250–370 MiB/s (docs/bench/history.md, item 20). A broker that has run for
//! a while has its page cache full of older log data; its new pages come from reclaiming
//! that data, which never leaves the guest. Measured on the eleventh session's host: `dd`
//! of 2 GB into the page cache ran at 246 MB/s on the fresh machine and at 2.3–3.9 GB/s
//! once the page cache held 20 GiB of other data (item 27).
//!
//! How: a sparse file of [`SPARSE_BYTES`] under the data root is read forward, without
//! read-ahead. Reading a hole puts zero-filled, clean pages in the page cache without any
//! disk I/O or disk space, so the fill costs only the memory's first touch. Reading stops
//! when `MemFree` is down to [`TARGET_FREE_BYTES`] or no longer goes down (the kernel's
//! own reserve). Each session's data is deleted after it, which gives its pages back to
//! the host, so the runner tops the fill up before every session. The kernel reclaims the
//! fill's pages first (they were read once, long ago), as it would reclaim old log
//! segments.

use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;

use super::prefault::{mem_free_bytes, meminfo_field_bytes};

/// Reading stops once this little memory is free, or once [`STALL_BYTES`] of reading has
/// not lowered `MemFree` (the kernel keeps a reserve of its own, 0.3–0.4 GiB after a fill
/// on the 24 GiB VM measured, and reading on would only reclaim the fill itself).
pub const TARGET_FREE_BYTES: u64 = 384 << 20;
/// How much reading without `MemFree` going down by at least one step ends a top-up.
const STALL_BYTES: u64 = 1 << 30;
/// The sparse file's length: far more than any sitting reads (a full one tops up about
/// 200 GiB); reading wraps to the start if it ever gets there.
pub const SPARSE_BYTES: u64 = 1 << 40;
/// How much is read between two looks at `MemFree`.
const STEP_BYTES: usize = 64 << 20;
/// One read.
const READ_BYTES: usize = 1 << 20;

/// The fill's file and how much of it has been read so far.
#[derive(Debug)]
pub struct PageCacheFill {
    path: PathBuf,
    file: File,
    cursor: u64,
    total_bytes: u64,
    total_seconds: f64,
    top_ups: u32,
}

/// What one top-up read.
#[derive(Debug, Clone, Copy)]
pub struct TopUp {
    pub bytes: u64,
    pub seconds: f64,
    pub free_after_bytes: u64,
}

impl TopUp {
    pub fn describe(&self) -> String {
        format!(
            "read {:.1} GiB into the page cache in {:.1} s; {:.2} GiB free after",
            gib(self.bytes),
            self.seconds,
            gib(self.free_after_bytes)
        )
    }
}

impl PageCacheFill {
    /// Creates the sparse file under `data_root`. Nothing is read yet.
    pub fn create(data_root: &Path) -> anyhow::Result<PageCacheFill> {
        let path = data_root.join(format!(
            "strata-scenarios-page-cache-fill-{}",
            std::process::id()
        ));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        file.set_len(SPARSE_BYTES)
            .with_context(|| format!("making {} sparse", path.display()))?;
        // Without read-ahead the fill is made of single pages. With it the kernel builds
        // 2 MiB folios, frees them whole when it reclaims them, and free page reporting
        // hands such blocks straight back to the host; it also kept 1.5–3.9 GiB free
        // after such a fill, against 0.6–0.7 GiB with this advice (eleventh session).
        // SAFETY: plain system call on a descriptor `file` owns; no memory is passed.
        let advised =
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
        if advised != 0 {
            anyhow::bail!(
                "posix_fadvise(RANDOM) on {}: {}",
                path.display(),
                std::io::Error::from_raw_os_error(advised)
            );
        }
        Ok(PageCacheFill {
            path,
            file,
            cursor: 0,
            total_bytes: 0,
            total_seconds: 0.0,
            top_ups: 0,
        })
    }

    /// Reads on until `MemFree` is at most [`TARGET_FREE_BYTES`], stops going down, or a
    /// machine's worth of memory has been read.
    pub fn top_up(&mut self) -> anyhow::Result<TopUp> {
        let started = Instant::now();
        let limit = mem_total_bytes()?;
        let mut buffer = vec![0u8; READ_BYTES];
        let mut bytes = 0u64;
        let mut free = mem_free()?;
        let mut lowest = (free, 0u64);
        while free > TARGET_FREE_BYTES && bytes < limit && bytes - lowest.1 < STALL_BYTES {
            for _ in 0..STEP_BYTES / READ_BYTES {
                if self.cursor >= SPARSE_BYTES {
                    self.cursor = 0;
                }
                let read = self
                    .file
                    .read_at(&mut buffer, self.cursor)
                    .with_context(|| format!("reading {}", self.path.display()))?;
                if read == 0 {
                    anyhow::bail!("{} ended early at {}", self.path.display(), self.cursor);
                }
                self.cursor += read as u64;
                bytes += read as u64;
            }
            free = mem_free()?;
            if free + STEP_BYTES as u64 <= lowest.0 {
                lowest = (free, bytes);
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        self.total_bytes += bytes;
        self.total_seconds += seconds;
        self.top_ups += 1;
        Ok(TopUp {
            bytes,
            seconds,
            free_after_bytes: free,
        })
    }

    /// For the report: how much the fill read in the whole sitting.
    pub fn describe(&self) -> String {
        format!(
            "page cache kept full (--warm-page-cache): {:.1} GiB read from a sparse file in \
             {} top-ups ({:.0} s), each until at most {} MiB was free or the kernel's reserve \
             was reached",
            gib(self.total_bytes),
            self.top_ups,
            self.total_seconds,
            TARGET_FREE_BYTES >> 20
        )
    }
}

impl Drop for PageCacheFill {
    /// Deletes the file (it has no blocks on disk; its pages leave the page cache).
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_file(&self.path) {
            eprintln!("scenarios: deleting {}: {error}", self.path.display());
        }
    }
}

fn mem_free() -> anyhow::Result<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    mem_free_bytes(&meminfo).context("no MemFree line in /proc/meminfo")
}

fn mem_total_bytes() -> anyhow::Result<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    meminfo_field_bytes(&meminfo, "MemTotal:").context("no MemTotal line in /proc/meminfo")
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fill_file_is_sparse_and_removed() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let fill = PageCacheFill::create(dir.path())?;
        let path = fill.path.clone();
        let metadata = std::fs::metadata(&path)?;
        assert_eq!(metadata.len(), SPARSE_BYTES);
        use std::os::unix::fs::MetadataExt as _;
        assert!(
            metadata.blocks() * 512 < 1 << 20,
            "the fill must not use disk"
        );
        drop(fill);
        assert!(!path.exists());
        Ok(())
    }
}
