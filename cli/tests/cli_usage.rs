//! The `strata` binary's usage contract without a broker: help texts carry examples,
//! usage errors exit 2, and an unreachable broker is a clear error with exit 1.
//! (Having an integration test here also makes `cargo test --workspace` build the
//! `strata` executable that `tests/` drives against real brokers.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn strata(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_lists_the_commands_and_examples() {
    let output = strata(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for command in ["topic", "produce", "consume", "offsets", "cluster"] {
        assert!(help.contains(command), "{command} missing from --help");
    }
    let consume = String::from_utf8(strata(&["consume", "--help"]).stdout).unwrap();
    assert!(
        consume.contains("strata consume"),
        "consume --help has examples"
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(
        strata(&["consume", "demo", "-o", "nonsense"]).status.code(),
        Some(2)
    );
    assert_eq!(strata(&["no-such-command"]).status.code(), Some(2));
}

#[test]
fn an_unreachable_broker_is_an_error_with_exit_1() {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let output = strata(&["-b", "127.0.0.1:1", "--timeout", "2s", "topic", "list"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("error: "));
}
