//! What each broker's threads were doing when a run got stuck: taken when a fault or a
//! settle fails, before the clients stop and the brokers get SIGTERM, and kept next to
//! the history as `<history>.node<N>.stacks`.
//!
//! A broker that stops answering leaves nothing in its log; its stacks tell a deadlock
//! (threads parked on the same locks) from a process that is busy or was never
//! continued. Two sources, both best effort, so a run on a machine without gdb still
//! keeps what the kernel says:
//! - every thread's state, wait channel, CPU time and kernel stack from
//!   `/proc/<pid>/task/*`;
//! - `gdb -p <pid> -batch -ex 'thread apply all bt'` (user-space frames with symbols in
//!   a debug build), bounded by [`GDB_LIMIT`].

use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::cluster::Cluster;

/// Bounds one gdb attach and backtrace.
const GDB_LIMIT: Duration = Duration::from_secs(60);

/// The stacks of every running node, by node.
/// Blocking (gdb runs up to [`GDB_LIMIT`] per node).
pub fn take(cluster: &Cluster) -> Vec<(u8, String)> {
    let mut stacks = Vec::new();
    for node in cluster.nodes() {
        if let Some(pid) = cluster.pid(node) {
            let mut text = format!("node {node}, pid {pid}\n\n");
            text.push_str(&kernel_view(pid));
            text.push_str(&gdb_backtraces(pid));
            // Again after gdb's seconds: a thread whose CPU time grew is spinning.
            text.push_str(&kernel_view(pid));
            stacks.push((node, text));
        }
    }
    stacks
}

/// Writes each node's stacks to `<history>.node<N>.stacks`.
pub fn keep(stacks: &[(u8, String)], history: &Path) -> anyhow::Result<()> {
    for (node, text) in stacks {
        let path = history.with_extension(format!("node{node}.stacks"));
        std::fs::write(&path, text)?;
    }
    Ok(())
}

/// State, wait channel and kernel stack of each thread, from /proc.
fn kernel_view(pid: u32) -> String {
    let task_dir = format!("/proc/{pid}/task");
    let mut text = String::from("== /proc threads (tid name state wchan cpu) ==\n");
    let Ok(entries) = std::fs::read_dir(&task_dir) else {
        text.push_str("(no /proc entry)\n\n");
        return text;
    };
    let mut tids: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    tids.sort_by_key(|tid| tid.parse::<u64>().unwrap_or(u64::MAX));
    for tid in tids {
        let read = |file: &str| {
            std::fs::read_to_string(format!("{task_dir}/{tid}/{file}"))
                .map(|content| content.trim().to_owned())
                .unwrap_or_else(|error| format!("({file}: {error})"))
        };
        let status = read("status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .map_or(String::new(), |value| value.trim().to_owned())
        };
        let _ = writeln!(
            text,
            "{tid} {} {} {} cpu_ticks={}",
            field("Name:"),
            field("State:"),
            read("wchan"),
            cpu_ticks(&read("stat"))
        );
        for frame in read("stack").lines() {
            let _ = writeln!(text, "    {frame}");
        }
    }
    text.push('\n');
    text
}

/// User plus system time of a thread in clock ticks, from its `stat` line (fields 14
/// and 15, counted after the parenthesised name, which may hold spaces): a thread that
/// spins shows a count that grows between two dumps.
fn cpu_ticks(stat: &str) -> String {
    let Some((_, after_name)) = stat.rsplit_once(')') else {
        return "?".to_owned();
    };
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    match (fields.get(11), fields.get(12)) {
        (Some(user), Some(system)) => match (user.parse::<u64>(), system.parse::<u64>()) {
            (Ok(user), Ok(system)) => (user + system).to_string(),
            _ => "?".to_owned(),
        },
        _ => "?".to_owned(),
    }
}

/// `thread apply all bt` from gdb, or why there is none. Its output goes to a
/// temporary file (a pipe nobody reads while waiting could fill and stall gdb).
fn gdb_backtraces(pid: u32) -> String {
    let header = "== gdb: thread apply all bt ==\n";
    match run_gdb(pid) {
        Ok(output) => format!("{header}{output}"),
        Err(error) => format!("{header}(no backtraces: {error:#})\n"),
    }
}

fn run_gdb(pid: u32) -> anyhow::Result<String> {
    let output = tempfile::tempfile()?;
    let mut child = Command::new("gdb")
        .args(["-p", &pid.to_string(), "-batch", "-nx"])
        .args(["-ex", "set pagination off", "-ex", "thread apply all bt"])
        .stdin(Stdio::null())
        .stdout(output.try_clone()?)
        .stderr(output.try_clone()?)
        .spawn()?;
    let started = Instant::now();
    while child.try_wait()?.is_none() {
        if started.elapsed() > GDB_LIMIT {
            child.kill()?;
            child.wait()?;
            bail!("gdb took longer than {GDB_LIMIT:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut text = String::new();
    let mut output = output;
    output.seek(SeekFrom::Start(0))?;
    output.read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_add_user_and_system_time_after_a_name_with_spaces() {
        let stat = "4242 (tokio runtime) S 1 4242 4242 0 -1 4194368 96 0 0 0 17 5 0 0 20 0";
        assert_eq!(cpu_ticks(stat), "22");
        assert_eq!(cpu_ticks("garbage"), "?");
    }

    #[test]
    fn the_stacks_of_a_live_process_name_its_threads() {
        let text = kernel_view(std::process::id());
        let me = std::process::id().to_string();
        assert!(text.lines().any(|line| line.starts_with(&me)), "{text}");
        assert!(kernel_view(u32::MAX).contains("no /proc entry"));
    }
}
