//! Runs a command to its end, bounded: the `strata` CLI pointed at one node of a
//! [`Cluster`], or a `strata-broker` that is expected to refuse its start.
//!
//! Output goes to files rather than pipes, so a command that writes more than a pipe
//! holds cannot block while nobody reads it. A command still running after [`WAIT`] is
//! killed and fails the test: the limit only bounds a hang.

use std::fs::File;
use std::io::Write;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::broker_process::workspace_binary;
use crate::cluster::Cluster;
use crate::cluster_views::WAIT;

/// Time between two checks whether the command has exited.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Runs `command` to its end with stdin `input`; panics (after killing it) if it is
/// still running after [`WAIT`], and if it cannot be started.
pub fn run_bounded(mut command: Command, input: &str) -> Output {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("a temporary directory: {error}"));
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let create = |path: &std::path::Path| {
        File::create(path).unwrap_or_else(|error| panic!("create {}: {error}", path.display()))
    };
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(create(&out))
        .stderr(create(&err))
        .spawn()
        .unwrap_or_else(|error| panic!("start {command:?}: {error}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .unwrap_or_else(|error| panic!("write the input of {command:?}: {error}"));
    }
    let started = Instant::now();
    let status: ExitStatus = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(error) => panic!("wait for {command:?}: {error}"),
        }
        if started.elapsed() > WAIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command:?} still running after {WAIT:?}:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    let read = |path: &std::path::Path| {
        std::fs::read(path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
    };
    Output {
        status,
        stdout: read(&out),
        stderr: read(&err),
    }
}

/// `strata -b <node's address> ARGS`, stdin `input`, from an async test (the call
/// blocks in `block_in_place`). `STRATA_BROKERS` and `STRATA_FORMAT` are not inherited.
pub fn strata(cluster: &Cluster, node: u8, args: &[&str], input: &str) -> Output {
    let mut command = Command::new(workspace_binary("strata"));
    command
        .arg("-b")
        .arg(cluster.address(node).to_string())
        .args(args)
        .env_remove("STRATA_BROKERS")
        .env_remove("STRATA_FORMAT");
    tokio::task::block_in_place(|| run_bounded(command, input))
}

/// Output bytes as text (lossy).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The stdout of a command that must succeed, as JSON; panics with its stderr if it
/// failed.
pub fn json_of(output: &Output) -> Value {
    assert!(output.status.success(), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", text(&output.stdout)))
}
