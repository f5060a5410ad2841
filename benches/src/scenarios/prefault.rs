//! `--prefault-memory`: touch the machine's free memory once before measuring.
//!
//! Some virtual machines (Firecracker among them) back guest memory lazily: the first
//! write to each guest page traps to the host, which allocates and zeroes it. On the
//! machine this runner was written on that made a page-cache write ~10× slower the first
//! time a page was used (dd to the page cache: 414 MB/s on fresh memory, 4.6 GB/s once the
//! pages had been used). A broker writes through the page cache, so the first minutes of a
//! fresh VM measure the hypervisor, not the broker. Touching the free memory once puts the
//! machine in the state a long-running host is in; dd and iperf3 then run on the same
//! warmed machine, so the ratios stay fair. The report says whether it was done.
//!
//! It does not last on a guest with free page reporting (the report's environment says
//! whether the kernel has it): memory the prefault gives back is handed to the host again
//! within seconds (seen: 2 GiB in about 9 s with `min_free_ms 0`), and the next first
//! touch is slow again. There the page-cache write limit (`limits::disk`) measures the
//! rate an appending broker actually gets.

use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;

/// Left untouched so the runner itself and the page cache it needs have room.
const MARGIN_BYTES: u64 = 2 << 30;
/// Touched (and given back) one chunk at a time.
const CHUNK_BYTES: usize = 1 << 30;
const PAGE_BYTES: usize = 4096;

/// What the prefault did.
#[derive(Debug, Clone, Serialize)]
pub struct Prefault {
    pub bytes: u64,
    pub seconds: f64,
}

impl Prefault {
    pub fn describe(&self) -> String {
        let gib = self.bytes as f64 / f64::from(1u32 << 30);
        let rate = if self.seconds > 0.0 {
            self.bytes as f64 / f64::from(1u32 << 20) / self.seconds
        } else {
            0.0
        };
        format!(
            "touched {gib:.1} GiB of free memory in {:.1} s ({rate:.0} MiB/s) before measuring",
            self.seconds
        )
    }
}

/// Touches every page of (free memory − 2 GiB), a chunk at a time, and gives it back.
pub fn prefault() -> anyhow::Result<Prefault> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    let free = mem_free_bytes(&meminfo).context("no MemFree line in /proc/meminfo")?;
    let total = free.saturating_sub(MARGIN_BYTES);
    let started = Instant::now();
    let mut touched: u64 = 0;
    while touched < total {
        let remaining = usize::try_from(total - touched).unwrap_or(CHUNK_BYTES);
        let length = remaining.min(CHUNK_BYTES);
        let mut chunk = memmap2::MmapMut::map_anon(length).context("mapping memory to touch")?;
        for page in chunk.chunks_mut(PAGE_BYTES) {
            if let Some(first) = page.first_mut() {
                *first = 1;
            }
        }
        touched += length as u64;
    }
    Ok(Prefault {
        bytes: touched,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `MemFree` of /proc/meminfo, in bytes.
pub(crate) fn mem_free_bytes(meminfo: &str) -> Option<u64> {
    meminfo_field_bytes(meminfo, "MemFree:")
}

/// A `kB` line of /proc/meminfo (`field` with its colon), in bytes.
pub(crate) fn meminfo_field_bytes(meminfo: &str, field: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_free_is_read_in_bytes() {
        let meminfo = "MemTotal:       24000000 kB\nMemFree:        16000000 kB\n";
        assert_eq!(mem_free_bytes(meminfo), Some(16_000_000 * 1024));
        assert_eq!(mem_free_bytes("MemTotal: 1 kB\n"), None);
        assert_eq!(
            meminfo_field_bytes(meminfo, "MemTotal:"),
            Some(24_000_000 * 1024)
        );
    }
}
