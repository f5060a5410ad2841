//! Child processes the runner starts: spawned with stdout and stderr going to files (so a
//! chatty child can never block on a full pipe), waited for with a deadline, and stopped
//! by their PID — SIGTERM first, SIGKILL when the grace period runs out.
//!
//! Invariant: every [`ChildProcess`] is reaped. [`ChildProcess::stop`] is bounded, and
//! `Drop` kills and reaps a child that is still running (e.g. after an early `?`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::interrupt;

/// How long a stopped child may take to summarise and exit (an e2e bench drains for 10 s).
const STOP_GRACE: Duration = Duration::from_secs(15);
/// How often a bounded wait looks at the child.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Whether a bounded wait also ends when the user interrupts the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    UntilInterrupt,
    /// For shutdowns, which must finish even then.
    Regardless,
}

/// A running child whose output goes to `<stem>.out` and `<stem>.err`.
#[derive(Debug)]
pub struct ChildProcess {
    child: Child,
    label: String,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

/// What a finished child left behind.
#[derive(Debug)]
pub struct Finished {
    /// `None` when the child had to be stopped: after its deadline, or on an interrupt.
    pub status: Option<ExitStatus>,
    /// The user interrupted the run before the child finished.
    pub interrupted: bool,
    pub stdout: String,
    pub stderr: String,
}

impl ChildProcess {
    /// Starts `command`, sending its output to files next to `output_stem`.
    pub fn spawn(mut command: Command, label: &str, output_stem: &Path) -> anyhow::Result<Self> {
        let stdout_path = output_stem.with_extension("out");
        let stderr_path = output_stem.with_extension("err");
        let stdout = File::create(&stdout_path)
            .with_context(|| format!("creating {}", stdout_path.display()))?;
        let stderr = File::create(&stderr_path)
            .with_context(|| format!("creating {}", stderr_path.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        let child = command
            .spawn()
            .with_context(|| format!("starting {label}"))?;
        Ok(ChildProcess {
            child,
            label: label.to_owned(),
            stdout_path,
            stderr_path,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the child has exited.
    pub fn try_status(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .with_context(|| format!("waiting for {}", self.label))
    }

    /// Waits until the child exits, `deadline` passes or the user interrupts the run; in
    /// the last two cases stops it by PID.
    pub fn wait_until(mut self, deadline: Duration) -> anyhow::Result<Finished> {
        let status = match self.wait_bounded(deadline, Wait::UntilInterrupt)? {
            Some(status) => Some(status),
            None => {
                self.stop(STOP_GRACE)?;
                None
            }
        };
        Ok(Finished {
            status,
            interrupted: status.is_none() && interrupt::requested(),
            stdout: self.stdout_text(),
            stderr: self.stderr_text(),
        })
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL and reap. Returns the exit status.
    pub fn stop(&mut self, grace: Duration) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.try_status()? {
            return Ok(status);
        }
        self.signal(libc::SIGTERM);
        if let Some(status) = self.wait_bounded(grace, Wait::Regardless)? {
            return Ok(status);
        }
        eprintln!(
            "scenarios: {} (pid {}) ignored SIGTERM for {grace:?}; sending SIGKILL",
            self.label,
            self.pid()
        );
        self.child
            .kill()
            .with_context(|| format!("killing {}", self.label))?;
        self.child
            .wait()
            .with_context(|| format!("reaping {}", self.label))
    }

    /// The child's stderr so far, at most the last `lines` lines.
    pub fn stderr_tail(&self, lines: usize) -> String {
        tail(&self.stderr_text(), lines)
    }

    fn wait_bounded(&mut self, limit: Duration, wait: Wait) -> anyhow::Result<Option<ExitStatus>> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_status()? {
                return Ok(Some(status));
            }
            let interrupted = wait == Wait::UntilInterrupt && interrupt::requested();
            if interrupted || start.elapsed() >= limit {
                return Ok(None);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn signal(&self, signal: libc::c_int) {
        let Ok(pid) = libc::pid_t::try_from(self.pid()) else {
            return;
        };
        // SAFETY: kill(2) has no memory-safety preconditions. The PID is our own child that
        // has not been reaped yet (try_wait returned None), so it cannot have been reused.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `command` to completion (at most `deadline`) and returns its output; for the
/// short helper tools (`dd`, `lsblk`, `git`).
pub fn run_captured(
    command: Command,
    label: &str,
    scratch_dir: &Path,
    deadline: Duration,
) -> anyhow::Result<Finished> {
    let stem = scratch_dir.join(format!("{label}-{}", std::process::id()));
    let finished = ChildProcess::spawn(command, label, &stem)?.wait_until(deadline);
    let _ = std::fs::remove_file(stem.with_extension("out"));
    let _ = std::fs::remove_file(stem.with_extension("err"));
    let finished = finished?;
    if finished.interrupted {
        bail!("{label} was stopped: the run was interrupted");
    }
    if finished.status.is_none() {
        bail!("{label} did not finish within {deadline:?}");
    }
    Ok(finished)
}

/// Whether `program` can be found on `PATH`.
pub fn on_path(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// User plus system CPU time of a process (all its threads), from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let ticks = cpu_ticks_from_stat(&stat).with_context(|| format!("parsing {path}"))?;
    // SAFETY: sysconf(3) only reads a configuration value; no pointers are involved.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks_per_second <= 0 {
        bail!("sysconf(_SC_CLK_TCK) returned {ticks_per_second}");
    }
    Ok(ticks as f64 / ticks_per_second as f64)
}

/// utime + stime (fields 14 and 15 of proc(5)'s `stat`). The command name (field 2) may
/// hold spaces and parentheses, so fields are counted from the last `)`.
pub fn cpu_ticks_from_stat(stat: &str) -> anyhow::Result<u64> {
    let after_name = stat
        .rfind(')')
        .map(|end| &stat[end + 1..])
        .context("no ')' after the command name")?;
    // The first field after the name is field 3 (state); utime is field 14.
    let mut fields = after_name.split_whitespace().skip(14 - 3);
    let mut next = |name: &str| -> anyhow::Result<u64> {
        fields
            .next()
            .with_context(|| format!("{name} is missing"))?
            .parse::<u64>()
            .with_context(|| format!("{name} is not a number"))
    };
    Ok(next("utime")? + next("stime")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let stat = "4242 (strata broker) (x)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    150 25 0 0 20 0 9 0 12345 1000000 500 18446744073709551615";
        assert_eq!(cpu_ticks_from_stat(stat).ok(), Some(175));
    }

    #[test]
    fn truncated_stat_is_an_error() {
        assert!(cpu_ticks_from_stat("1 (x) S 1 2 3").is_err());
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
