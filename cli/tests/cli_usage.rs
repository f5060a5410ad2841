//! The `strata` binary's usage contract without a broker: help texts carry examples,
//! usage errors exit 2, an unreachable broker is a clear error with exit 1, the kcat forms
//! that are refused say why before connecting, `-X list`, completions, the man page, and no
//! colour codes in pipes. (The kcat forms that need a broker: `tests/tests/cli_kcat.rs`.)
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

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn kcat_forms_refused_before_connecting_say_why() {
    // Port 1: if anything tried to connect, the error would be a connection error instead.
    let stored = strata(&["-b", "127.0.0.1:1", "consume", "t", "-o", "stored"]);
    assert_eq!(stored.status.code(), Some(2));
    assert!(
        stderr_of(&stored).contains("what -g always does"),
        "{}",
        stderr_of(&stored)
    );
    // A group assigns the partitions and moves them: per-partition plans are refused.
    for group_args in [
        &["consume", "t", "-g", "g", "-e"][..],
        &["consume", "t", "-g", "g", "-o", "5:10"],
        &["consume", "t", "-g", "g", "-p", "0"],
        &["consume", "t", "-g", "g", "-o", "+3"],
    ] {
        let mut args = vec!["-b", "127.0.0.1:1"];
        args.extend_from_slice(group_args);
        let refused = strata(&args);
        assert_eq!(refused.status.code(), Some(2), "{group_args:?}");
        assert!(
            stderr_of(&refused).contains("-g"),
            "{}",
            stderr_of(&refused)
        );
    }
    for (kcat, strata_token) in [("%s", "%v"), ("%T", "%d"), ("%S", "%V")] {
        let format = format!("{kcat}\\n");
        let hinted = strata(&["-b", "127.0.0.1:1", "consume", "t", "-f", &format]);
        assert_eq!(hinted.status.code(), Some(2), "{kcat}");
        let stderr = stderr_of(&hinted);
        assert!(
            stderr.contains(&format!("kcat's {kcat} is {strata_token}")),
            "{stderr}"
        );
    }
    let two_starts = strata(&["-b", "127.0.0.1:1", "consume", "t", "-o", "5", "-o", "s@0"]);
    assert_eq!(
        two_starts.status.code(),
        Some(2),
        "{}",
        stderr_of(&two_starts)
    );
}

#[test]
fn dash_x_list_prints_the_client_settings_without_a_command() {
    let output = strata(&["-X", "list"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let list = String::from_utf8(output.stdout).unwrap();
    assert!(list.starts_with("KEY "), "{list}");
    for key in [
        "linger.ms",
        "acks",
        "fetch.min.bytes",
        "max.partition.fetch.bytes",
    ] {
        assert!(
            list.lines().any(|line| line.starts_with(key)),
            "{key}: {list}"
        );
    }
    assert_eq!(
        strata(&[]).status.code(),
        Some(2),
        "no command and no -X list"
    );
}

#[test]
fn completions_and_man_page_come_from_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let output = strata(&["completions", shell]);
        assert!(output.status.success(), "{shell}: {}", stderr_of(&output));
        let script = String::from_utf8(output.stdout).unwrap();
        assert!(
            script.contains("strata") && script.contains("add-partitions"),
            "{shell}"
        );
    }
    let man = strata(&["man"]);
    assert!(man.status.success(), "{}", stderr_of(&man));
    let page = String::from_utf8(man.stdout).unwrap();
    assert!(page.contains(".TH strata 1"), "{page}");
    assert!(
        page.contains(".SS \"strata consume\""),
        "each command has a section"
    );
    assert!(page.contains("e@T"), "with its grammar");
}

#[test]
fn verbose_logs_in_a_pipe_have_no_colour_codes() {
    // -vv logs the connection attempts at debug level; stderr here is a pipe.
    let output = strata(&[
        "-vv",
        "-b",
        "127.0.0.1:1",
        "--timeout",
        "2s",
        "topic",
        "list",
    ]);
    let stderr = stderr_of(&output);
    assert!(stderr.contains("DEBUG"), "debug logs expected: {stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in a pipe: {stderr:?}"
    );
}
