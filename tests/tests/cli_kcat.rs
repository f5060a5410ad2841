//! The `strata` CLI's kcat habits against a real `strata-broker` on 127.0.0.1: files as
//! produce input with one summary line, `-o beginning|earliest|latest`, `-c`, `s@`/`e@`,
//! `add-partitions --total`, `-X list` against what the client library accepts, and Ctrl-C
//! during a produce (the first says what it waits for, the second exits 130).
//!
//! The forms that need no broker (`-o stored`, format hints, `-b host`, completions, man)
//! are tested in `cli/tests/cli_usage.rs` and the CLI's unit tests. Like every test here,
//! these run the `strata` binary that `cargo test --workspace` builds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use strata_client::Client;
use strata_tests::broker_process::{workspace_binary, BrokerProcess};

fn strata_command(broker: &BrokerProcess, args: &[&str]) -> Command {
    let mut command = Command::new(workspace_binary("strata"));
    command
        .arg("-b")
        .arg(broker.address().to_string())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn strata(broker: &BrokerProcess, args: &[&str], stdin: &str) -> Output {
    let mut child = strata_command(broker, args).spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// Runs `strata` and returns its stdout, failing the test with stderr if it did not exit 0.
fn ok(broker: &BrokerProcess, args: &[&str]) -> String {
    let output = strata(broker, args, "");
    assert!(
        output.status.success(),
        "{args:?}: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since_epoch.as_millis()).unwrap()
}

#[test]
fn a_file_of_100000_lines_is_produced_with_one_summary_line() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &[]).unwrap();
    ok(&broker, &["topic", "create", "big"]);
    let file = data.path().join("big.txt");
    let lines: String = (1..=100_000).map(|n| format!("line-{n}\n")).collect();
    std::fs::write(&file, &lines).unwrap();

    let produced = strata(&broker, &["produce", "big", file.to_str().unwrap()], "");
    assert!(produced.status.success(), "{}", text(&produced.stderr));
    let stderr = text(&produced.stderr);
    assert_eq!(stderr.lines().count(), 1, "one summary line: {stderr}");
    assert!(
        stderr.starts_with("Produced 100000 records (988895 bytes) to big in ")
            && stderr.ends_with(" s, 0 errors.\n"),
        "{stderr}"
    );
    assert!(produced.stdout.is_empty(), "nothing on stdout");

    let first = ok(
        &broker,
        &[
            "consume",
            "big",
            "-o",
            "beginning",
            "-c",
            "3",
            "-f",
            "%o %v\\n",
        ],
    );
    assert_eq!(first, "0 line-1\n1 line-2\n2 line-3\n");
    let earliest = ok(
        &broker,
        &[
            "consume", "big", "-o", "earliest", "--count", "1", "-f", "%v\\n",
        ],
    );
    assert_eq!(earliest, "line-1\n");
    let latest = ok(&broker, &["consume", "big", "-o", "latest", "-e"]);
    assert_eq!(latest, "", "latest -e: nothing new, exit at once");
    let last = ok(
        &broker,
        &["consume", "big", "-o", "-1", "-e", "-f", "%o %v\\n"],
    );
    assert_eq!(last, "99999 line-100000\n");
}

#[test]
fn files_and_stdin_are_read_in_order_and_percent_v_sends_a_whole_file() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &[]).unwrap();
    ok(&broker, &["topic", "create", "input"]);
    let (a, b) = (data.path().join("a.txt"), data.path().join("b.txt"));
    std::fs::write(&a, "a1\na2\n").unwrap();
    std::fs::write(&b, "b1\nb2").unwrap(); // no final newline: still a record
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());

    let produced = strata(&broker, &["produce", "input", a, "-", b], "s1\n");
    assert!(produced.status.success(), "{}", text(&produced.stderr));
    let whole = strata(&broker, &["produce", "input", "-f", "%v", a], "");
    assert!(whole.status.success(), "{}", text(&whole.stderr));
    let values = ok(
        &broker,
        &["consume", "input", "-o", "start", "-e", "-f", "[%v]"],
    );
    assert_eq!(values, "[a1][a2][s1][b1][b2][a1\na2\n]");

    let missing = strata(&broker, &["produce", "input", "no-such-file"], "");
    assert_eq!(missing.status.code(), Some(1));
    let stderr = text(&missing.stderr);
    assert!(
        stderr.starts_with("error: opening no-such-file: ") && stderr.contains("--value"),
        "{stderr}"
    );
    let after = ok(
        &broker,
        &["consume", "input", "-o", "start", "-e", "-f", "[%v]"],
    );
    assert_eq!(after, values, "a missing file sends nothing");
}

#[test]
fn kcat_timestamp_offsets_start_and_stop() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &[]).unwrap();
    ok(&broker, &["topic", "create", "times"]);
    let base = now_ms() - 60_000;
    let (t1, t2, t3) = (base, base + 1_000, base + 2_000);
    let input = format!("{t1} a\n{t2} b\n{t3} c\n");
    let produced = strata(&broker, &["produce", "times", "-f", "%d %v\\n"], &input);
    assert!(produced.status.success(), "{}", text(&produced.stderr));
    let values = |offsets: &[String]| {
        let mut args = vec!["consume", "times", "-f", "%v"];
        for offset in offsets {
            args.extend(["-o", offset.as_str()]);
        }
        if !offsets.iter().any(|o| o.starts_with("e@")) {
            args.push("-e");
        }
        ok(&broker, &args)
    };
    assert_eq!(values(&[format!("s@{t2}")]), "bc");
    assert_eq!(
        values(&[format!("e@{t2}")]),
        "a",
        "e@ stops before the time"
    );
    assert_eq!(values(&[format!("s@{t1}"), format!("e@{t3}")]), "ab");
    assert_eq!(
        values(&[format!("s@{}", t3 + 1)]),
        "",
        "nothing at or after"
    );
}

#[test]
fn add_partitions_total_sets_the_count() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &[]).unwrap();
    ok(&broker, &["topic", "create", "grow", "-p", "1"]);
    let grown = ok(
        &broker,
        &["topic", "add-partitions", "grow", "--total", "3"],
    );
    assert!(
        grown
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .eq(["grow", "1", "3"]),
        "{grown}"
    );
    let added = ok(&broker, &["topic", "add-partitions", "grow", "-n", "2"]);
    assert!(
        added
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .eq(["grow", "3", "5"]),
        "{added}"
    );
    let shrink = strata(
        &broker,
        &["topic", "add-partitions", "grow", "--total", "4"],
        "",
    );
    assert_eq!(shrink.status.code(), Some(2), "{}", text(&shrink.stderr));
}

/// A value each `-X` name accepts. A name `-X list` shows without a value here fails the
/// test, so the list and this check grow together.
fn sample_value(key: &str) -> &'static str {
    match key {
        "acks" => "all",
        "enable.idempotence" => "true",
        "linger.ms" => "5",
        "batch.size" => "16384",
        "compression.type" => "lz4",
        "delivery.timeout.ms" => "120000",
        "request.timeout.ms" => "30000",
        "max.in.flight.requests.per.connection" => "5",
        "retry.backoff.ms" => "100",
        "retry.backoff.max.ms" => "1000",
        "buffer.memory" => "33554432",
        "max.block.ms" => "60000",
        "max.request.size" => "1048576",
        "fetch.min.bytes" => "1",
        "fetch.max.wait.ms" => "500",
        "fetch.max.bytes" => "52428800",
        "max.partition.fetch.bytes" => "1048576",
        "auto.offset.reset" => "earliest",
        "group.id" => "billing",
        other => panic!("-X list shows {other:?}; give it a sample value here"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_x_list_names_only_settings_the_client_accepts() {
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path(), &[]).unwrap();
    ok(&broker, &["topic", "create", "settings"]);
    let list = ok(&broker, &["-X", "list"]); // KEY CLIENT MEANING
    let listed: Vec<(&str, &str)> = list
        .lines()
        .skip(1)
        .map(|line| {
            let mut columns = line.split_whitespace();
            (columns.next().unwrap(), columns.next().unwrap())
        })
        .collect();
    assert!(listed.len() >= 15, "{list}");
    let client = Client::builder()
        .brokers([broker.address().to_string()])
        .build()
        .await
        .unwrap();
    for (key, applies) in listed {
        let value = sample_value(key);
        if applies != "consumer" {
            let producer = client.producer().set(key, value).build();
            assert!(producer.is_ok(), "producer -X {key}={value}: {producer:?}");
            producer.unwrap().close().await.unwrap();
        }
        if applies != "producer" {
            let consumer = client
                .consumer()
                .assign([("settings", 0)])
                .set(key, value)
                .build()
                .await;
            match consumer {
                Ok(consumer) => consumer.close().await.unwrap(),
                // Known but refused here: `.assign(..)` is for consumers without a group,
                // so a group id next to it is a configuration error, not an unknown key.
                Err(error) => assert!(
                    key == "group.id" && !error.to_string().contains("unknown"),
                    "consumer -X {key}={value}: {error}"
                ),
            }
        }
    }
}

/// Bytes written to a pipe that its reader has not taken yet.
fn unread_bytes(stdin: &std::process::ChildStdin) -> i32 {
    use std::os::fd::AsRawFd as _;
    let mut unread: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which is valid for the call;
    // the descriptor is the open write end of the child's stdin pipe.
    let result = unsafe { libc::ioctl(stdin.as_raw_fd(), libc::FIONREAD, &mut unread) };
    assert_eq!(result, 0, "FIONREAD on the stdin pipe");
    unread
}

fn interrupt(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill only sends a signal to the child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
}

#[test]
fn ctrl_c_says_what_produce_waits_for_and_a_second_one_exits_130() {
    let data = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(data.path(), &[]).unwrap();
    ok(&broker, &["topic", "create", "slow"]);
    let mut child = strata_command(&broker, &["produce", "slow"])
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (lines, stderr_lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut stdin = child.stdin.take().unwrap();

    // One record delivered: the CLI is connected and knows the topic.
    stdin.write_all(b"first\n").unwrap();
    let counted = || {
        let offsets = ok(&broker, &["offsets", "slow"]); // PARTITION START END
        offsets
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .eq(["0", "0", "1"])
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !counted() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first record never arrived"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // With the broker stopped, the next two records stay in flight.
    broker.pause().unwrap();
    stdin.write_all(b"second\nthird\n").unwrap();
    while unread_bytes(&stdin) > 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    // The reader has the bytes; give the CLI a moment to queue the two records.
    std::thread::sleep(Duration::from_millis(300));

    interrupt(&child);
    let said = stderr_lines.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(
        said,
        "waiting for 2 records in flight; Ctrl-C again to exit now"
    );
    interrupt(&child);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    broker.resume().unwrap();
    drop(stdin);
}
