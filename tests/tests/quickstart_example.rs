//! The README's Rust quick start (`client/examples/quickstart.rs`) runs as shown: against a
//! broker it prints the three records it produced and exits 0; with no broker it prints
//! one line naming the address and exits non-zero. `cargo test --workspace` builds the
//! example before the tests run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use strata_tests::broker_process::{workspace_binary, BrokerProcess};

fn run_example(brokers: &str) -> Output {
    let path = workspace_binary("examples/quickstart");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p strata-client --example quickstart`",
        path.display()
    );
    Command::new(path)
        .env("STRATA_BROKERS", brokers)
        .output()
        .unwrap()
}

#[test]
fn the_quickstart_prints_its_records_and_names_a_missing_broker() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path(), &[]).unwrap();
    let address = broker.address().to_string();

    for round in 0..2 {
        let output = run_example(&address);
        assert!(output.status.success(), "round {round}: {output:?}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        let base = round * 3;
        let expected = format!(
            "0@{base} k1=hello\n0@{} k2=from\n0@{} k3=strata\n",
            base + 1,
            base + 2
        );
        assert_eq!(stdout, expected, "round {round}");
    }

    assert!(broker.terminate().unwrap().success());
    let output = run_example(&address);
    assert!(!output.status.success(), "no broker must be an error");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(&address), "names the address: {stderr}");
}
