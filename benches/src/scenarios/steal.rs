//! Host steal time: CPU time the hypervisor gave to something else while this VM's vCPUs
//! wanted to run (`/proc/stat`, the `cpu` line's 8th value).
//!
//! On this project's VMs (firecracker, ext4 mounted with `discard`) deleting a few GiB
//! makes the host punch holes in the disk image for seconds afterwards, and while it
//! does, a busy guest loses its vCPUs for ~35 ms at a time: `strata bench e2e` at
//! 10,000 records/s right after removing a 2 GiB file had p99 24–25 ms with 0.37 s of
//! steal during the run, against 0.2–0.5 ms and no steal when run 10 s later. The runner
//! deletes each session's broker data (GiBs) before the next session, so it waits for
//! the steal to stop before every step ([`settle`]) and records the steal during each
//! step, so a row measured under it says so.

use std::time::{Duration, Instant};

/// `/proc/stat` counts in USER_HZ ticks, which Linux fixes at 100 per second.
const TICKS_PER_SECOND: f64 = 100.0;

/// Total steal time of all CPUs so far, in seconds; `None` where `/proc/stat` has none.
pub fn stolen_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_steal(&stat)
}

fn parse_steal(stat: &str) -> Option<f64> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let ticks: u64 = line.split_whitespace().nth(8)?.parse().ok()?;
    Some(ticks as f64 / TICKS_PER_SECOND)
}

/// How waiting for a quiet host went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settled {
    pub waited: Duration,
    /// `false` when the host still stole time after the longest wait.
    pub quiet: bool,
}

/// Steal per window that still counts as quiet (one tick of `/proc/stat`).
const QUIET_STEAL_SECONDS: f64 = 0.01;

/// Waits until `windows` windows of `window` in a row pass without steal, for at most
/// `longest`. Steal is only counted while a vCPU wants to run, so during each window
/// every CPU is kept busy (one spinning thread per CPU): an idle guest sees no steal from
/// a busy host. Several windows, because the steal comes in bursts seconds apart
/// (measured after removing 2 GiB: 0, 29, 0, 2, 26, 0, 6, 0, 2, 0, 0, 1 ticks in
/// successive seconds).
pub fn settle(window: Duration, windows: u32, longest: Duration) -> Settled {
    let start = Instant::now();
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let mut quiet_in_a_row = 0;
    while quiet_in_a_row < windows {
        if start.elapsed() >= longest {
            return Settled {
                waited: start.elapsed(),
                quiet: false,
            };
        }
        let Some(before) = stolen_seconds() else {
            break;
        };
        spin_all(cpus, window);
        let stolen = stolen_seconds().map_or(0.0, |after| after - before);
        if stolen <= QUIET_STEAL_SECONDS {
            quiet_in_a_row += 1;
        } else {
            quiet_in_a_row = 0;
        }
    }
    Settled {
        waited: start.elapsed(),
        quiet: true,
    }
}

/// Keeps `cpus` threads spinning for `window`.
fn spin_all(cpus: usize, window: Duration) {
    let until = Instant::now() + window;
    std::thread::scope(|scope| {
        for _ in 0..cpus {
            scope.spawn(|| {
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_the_eighth_value_of_the_cpu_line() {
        let stat = "cpu  4705 150 1120 16250 520 0 10 37 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        assert_eq!(parse_steal(stat), Some(0.37));
        assert_eq!(parse_steal("cpu0 1 2 3\n"), None);
        assert_eq!(parse_steal("cpu  1 2 3\n"), None);
    }
}
