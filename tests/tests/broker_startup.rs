//! How `strata-broker` starts (issue 24 item 5), with real processes whose stderr is
//! read:
//!
//! - a taken port stops the start with a message that names the address, before the data
//!   directory is touched: no file changes, the clean-shutdown marker stays, and the next
//!   start recovers nothing;
//! - a brand-new data directory is logged as new, not as crashed, while a directory with
//!   data and no marker still is crashed; log lines written to a file carry no colour;
//! - `--listen` takes a host name (`localhost:<port>`), and a name that does not resolve
//!   is an error naming it;
//! - sizes take units (`1MiB`) from a flag, the environment and the file, and
//!   `--segment-bytes 1MiB` is the segment size the broker really uses;
//! - the annotated example configuration `docs/strata.toml` loads, and lists every
//!   setting.
//!
//! The binary is the one `cargo build -p strata-broker` (or `cargo test --workspace`)
//! built. Every wait is bounded, and every process started here is stopped by its PID.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use strata_broker::log::manager::CLEAN_SHUTDOWN_FILE;
use strata_client::{Client, NewTopic, Record};
use strata_tests::broker_process::{free_port, workspace_binary};

/// Longest a start-up, a shutdown or a refused start may take here.
const LIMIT: Duration = Duration::from_secs(60);

/// One `strata-broker` process whose stderr goes to a file; killed and reaped on drop.
struct Broker {
    child: Option<Child>,
    log: PathBuf,
}

impl Broker {
    /// Starts `strata-broker ARGS` at log level info, stderr to `log`.
    fn spawn(args: &[&str], log: &Path) -> Broker {
        let child = broker_command(args)
            // Tests run at once: none takes the default admin port 127.0.0.1:7080.
            .env("STRATA_LISTENERS__ADMIN", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(File::create(log).unwrap())
            .spawn()
            .expect("start strata-broker (was it built? `cargo build -p strata-broker`)");
        Broker {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the broker logs "broker ready"; panics with its log if it exits first.
    fn wait_ready(&mut self) -> String {
        let started = Instant::now();
        loop {
            let text = self.log_text();
            if text.contains("broker ready") {
                return text;
            }
            let child = self.child.as_mut().unwrap();
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                panic!("strata-broker exited during start-up ({status}):\n{text}");
            }
            assert!(
                started.elapsed() < LIMIT,
                "strata-broker not ready within {LIMIT:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.as_ref().unwrap().id()).unwrap();
        // SAFETY: kill(2) on our own child, not reaped yet (we hold its `Child`), so the
        // pid cannot have been reused.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// SIGTERM, then the exit status (bounded wait).
    fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit()
    }

    /// SIGKILL and reap: a crash.
    fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        self.wait_exit();
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let started = Instant::now();
        loop {
            let child = self.child.as_mut().expect("the broker is running");
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                started.elapsed() < LIMIT,
                "strata-broker did not exit within {LIMIT:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn broker_command(args: &[&str]) -> Command {
    let mut command = Command::new(workspace_binary("strata-broker"));
    command
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("STRATA_CONFIG")
        .stdin(Stdio::null());
    command
}

/// Runs `strata-broker ARGS` to its end (bounded: it is killed after [`LIMIT`]), with
/// `env` added.
fn run_to_end(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = broker_command(args);
    command.envs(env.iter().copied());
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = command
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "strata-broker {args:?} still running after {LIMIT:?}:\n{}",
                std::fs::read_to_string(&err).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    }
}

/// Every file and directory under `dir`: relative path, size and modification time.
fn snapshot(dir: &Path) -> BTreeSet<(PathBuf, u64, SystemTime)> {
    let mut found = BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let metadata = entry.metadata().unwrap();
            let relative = entry.path().strip_prefix(dir).unwrap().to_path_buf();
            found.insert((relative, metadata.len(), metadata.modified().unwrap()));
            if metadata.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    found
}

/// The `previous=…` value of the "opened logs" line.
fn previous_shutdown(log: &str) -> &str {
    let line = log
        .lines()
        .find(|line| line.contains("opened logs"))
        .unwrap_or_else(|| panic!("no \"opened logs\" line in:\n{log}"));
    let (_, rest) = line
        .split_once("previous=")
        .unwrap_or_else(|| panic!("no previous= in {line}"));
    rest.split_whitespace().next().unwrap()
}

async fn client(address: &str) -> Client {
    Client::builder()
        .brokers([address])
        .build()
        .await
        .unwrap_or_else(|error| panic!("connect to {address}: {error}"))
}

#[test]
fn a_taken_port_stops_the_start_before_the_data_dir_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let port = free_port().unwrap();
    let address = format!("127.0.0.1:{port}");
    let args = ["--data-dir", data_arg, "--listen", &address];

    // A directory that holds a topic and was shut down cleanly.
    let mut broker = Broker::spawn(&args, &dir.path().join("first.log"));
    broker.wait_ready();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = client(&address).await;
        client
            .admin()
            .create_topic(NewTopic::new("kept").partitions(2))
            .await
            .unwrap();
    });
    assert!(broker.terminate().success());
    assert!(data.join(CLEAN_SHUTDOWN_FILE).exists());
    let before = snapshot(&data);

    let taken = TcpListener::bind(&address).unwrap();
    let output = run_to_end(&args, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{output:?}");
    assert!(
        stderr.contains(&format!("cannot listen on {address}")) && stderr.contains("in use"),
        "the error names the address: {stderr}"
    );
    assert_eq!(snapshot(&data), before, "the data directory was touched");
    assert!(data.join(CLEAN_SHUTDOWN_FILE).exists());

    // A data directory that does not exist yet is not created either.
    let never = dir.path().join("never");
    let output = run_to_end(
        &["--data-dir", never.to_str().unwrap(), "--listen", &address],
        &[],
    );
    assert!(!output.status.success(), "{output:?}");
    assert!(!never.exists(), "the data directory was created");
    drop(taken);

    let mut broker = Broker::spawn(&args, &dir.path().join("second.log"));
    let log = broker.wait_ready();
    assert_eq!(previous_shutdown(&log), "Clean", "{log}");
    assert!(broker.terminate().success());
}

#[test]
fn a_new_data_dir_is_new_and_one_with_data_but_no_marker_is_crashed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    let args = ["--data-dir", data.to_str().unwrap(), "--listen", &address];

    let mut broker = Broker::spawn(&args, &dir.path().join("new.log"));
    let log = broker.wait_ready();
    assert_eq!(previous_shutdown(&log), "New", "{log}");
    assert!(!log.contains("Crashed"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log that is not a terminal:\n{log}"
    );
    assert!(broker.terminate().success());

    let mut broker = Broker::spawn(&args, &dir.path().join("clean.log"));
    assert_eq!(previous_shutdown(&broker.wait_ready()), "Clean");
    broker.kill();

    // The controller directory is there and the marker is not: that is a crash.
    let mut broker = Broker::spawn(&args, &dir.path().join("crashed.log"));
    assert_eq!(previous_shutdown(&broker.wait_ready()), "Crashed");
    assert!(broker.terminate().success());
}

#[test]
fn listen_takes_a_host_name_and_names_one_that_does_not_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let address = format!("localhost:{}", free_port().unwrap());
    let args = ["--data-dir", data.to_str().unwrap(), "--listen", &address];

    let mut broker = Broker::spawn(&args, &dir.path().join("broker.log"));
    broker.wait_ready();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = client(&address).await;
        client
            .admin()
            .create_topic(NewTopic::new("named").partitions(1))
            .await
            .unwrap();
        let producer = client.producer().build().unwrap();
        let delivery = producer
            .send(Record::to("named").partition(0).value("hello"))
            .await
            .unwrap();
        assert_eq!(delivery.offset, 0);
        producer.close().await.unwrap();
    });
    assert!(broker.terminate().success());

    let unknown = dir.path().join("unknown");
    let output = run_to_end(
        &[
            "--data-dir",
            unknown.to_str().unwrap(),
            "--listen",
            "no-such-host.invalid:7070",
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{output:?}");
    assert!(stderr.contains("no-such-host.invalid"), "{stderr}");
    assert!(!unknown.exists(), "the data directory was created");
}

#[test]
fn sizes_take_units_from_a_flag_the_environment_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strata.toml");
    std::fs::write(&config, "message_max_bytes = \"4MiB\"\n").unwrap();
    let output = run_to_end(
        &[
            "--print-config",
            "--config",
            config.to_str().unwrap(),
            "--segment-bytes",
            "1MiB",
        ],
        &[("STRATA_RETENTION_BYTES", "10GiB")],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    for line in [
        "segment_bytes = 1048576 # flag",
        "retention_bytes = 10737418240 # env",
        "message_max_bytes = 4194304 # file",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }

    // The broker rolls its segments at 1 MiB.
    let data = dir.path().join("data");
    let address = format!("127.0.0.1:{}", free_port().unwrap());
    let mut broker = Broker::spawn(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &address,
            "--segment-bytes",
            "1MiB",
        ],
        &dir.path().join("broker.log"),
    );
    broker.wait_ready();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = client(&address).await;
        client
            .admin()
            .create_topic(NewTopic::new("rolled").partitions(1))
            .await
            .unwrap();
        let producer = client.producer().build().unwrap();
        // 3 MiB in 16 KiB records.
        for _ in 0..192 {
            producer
                .send(
                    Record::to("rolled")
                        .partition(0)
                        .value(vec![b'x'; 16 << 10]),
                )
                .await
                .unwrap();
        }
        producer.close().await.unwrap();
    });
    assert!(broker.terminate().success());
    let segments = std::fs::read_dir(data.join("rolled-0"))
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count();
    assert!(
        segments >= 3,
        "3 MiB in 1 MiB segments made {segments} segments"
    );
}

/// `section.key` of every `key = value` line of a TOML text; with `commented`, of the
/// lines that are commented out (`# key = value`) instead.
fn keys(toml: &str, commented: bool) -> BTreeSet<String> {
    let mut section = String::new();
    let mut found = BTreeSet::new();
    for line in toml.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = format!("{name}.");
            continue;
        }
        let setting = if commented {
            line.strip_prefix("# ")
        } else {
            Some(line)
        };
        let Some((key, _)) = setting.and_then(|line| line.split_once(" = ")) else {
            continue;
        };
        if !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            found.insert(format!("{section}{key}"));
        }
    }
    found
}

#[test]
fn the_example_config_loads_and_lists_every_setting() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/strata.toml");
    let text = std::fs::read_to_string(&example).unwrap();
    let set = keys(&text, false);
    let commented = keys(&text, true);
    assert!(!set.is_empty());

    let output = run_to_end(
        &["--config", example.to_str().unwrap(), "--print-config"],
        &[],
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    let from_file: BTreeSet<String> = keys(
        &printed
            .lines()
            .filter(|line| line.starts_with('[') || line.ends_with("# file"))
            .collect::<Vec<_>>()
            .join("\n"),
        false,
    );
    assert_eq!(from_file, set, "every key set in the example comes from it");
    let all: BTreeSet<String> = set.union(&commented).cloned().collect();
    let printed_keys = keys(&printed, false);
    assert!(
        printed_keys.is_subset(&all),
        "the example lists every setting, set or commented out: {:?} are missing",
        printed_keys.difference(&all).collect::<Vec<_>>()
    );

    // The settings shown commented out load too, and with them set every setting is
    // printed (one without a default, like `rack`, only once it is set).
    let dir = tempfile::tempdir().unwrap();
    let uncommented = dir.path().join("uncommented.toml");
    let mut lines = Vec::new();
    for line in text.lines() {
        match line.strip_prefix("# ") {
            Some(setting) if keys(setting, false).len() == 1 => {
                lines.push(setting.to_owned());
            }
            _ => lines.push(line.to_owned()),
        }
    }
    std::fs::write(&uncommented, lines.join("\n")).unwrap();
    let output = run_to_end(
        &["--config", uncommented.to_str().unwrap(), "--print-config"],
        &[],
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        keys(&String::from_utf8_lossy(&output.stdout), false),
        all,
        "the example lists every setting, set or commented out"
    );
}
