//! The README's retry example (`client/examples/billing.rs`) runs as shown against a
//! one-node broker: orders that fail once are billed from `orders.billing.retry.0`,
//! orders 5 and 10 are tried from `retry.0` and `retry.1` and dead-lettered, and the
//! closing replay takes the two exhausted ones (not order 9, which no retry can fix)
//! back to `retry.0`, where they are billed. Run twice against one broker, the second
//! run's replay takes only its own records: the first run's were replayed (or passed
//! over) already. `cargo test --workspace` builds the example before the tests run.
//!
//! What is checked is the example's output, never how long the retries took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use strata_tests::broker_process::{workspace_binary, BrokerProcess};
use strata_tests::cli_runner::{run_bounded, text};

fn run_example(brokers: &str) -> String {
    let path = workspace_binary("examples/billing");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p strata-client --example billing`",
        path.display()
    );
    let mut command = Command::new(path);
    command.env("STRATA_BROKERS", brokers);
    let output = run_bounded(command, "");
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
}

#[test]
fn the_billing_example_retries_dead_letters_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path(), &[]).unwrap();
    let address = broker.address().to_string();
    for round in 0..2 {
        let stdout = run_example(&address);
        let has = |line: &str| stdout.lines().any(|found| found.starts_with(line));
        for order in [1, 4, 7] {
            let line = format!("order {order:>2} attempt 2 from orders.billing.retry.0");
            assert!(has(&line), "round {round}: {line} in\n{stdout}");
        }
        for order in [5, 10] {
            let line = format!("order {order:>2} attempt 3 from orders.billing.retry.1");
            assert!(has(&line), "round {round}: {line} in\n{stdout}");
            let line =
                format!("order {order:>2} attempt 1 from orders.billing.retry.0 (replayed from orders.billing.dlt/");
            assert!(has(&line), "round {round}: {line} in\n{stdout}");
        }
        assert!(
            !has("order  9 attempt 2"),
            "order 9 is never retried:\n{stdout}"
        );
        for line in [
            "dry run: 2 of 3 records of orders.billing.dlt to orders.billing.retry.0",
            "replayed: 2 of 3 records of orders.billing.dlt to orders.billing.retry.0",
            "a second dry run finds 0 records to replay",
            "done",
        ] {
            assert!(has(line), "round {round}: {line} in\n{stdout}");
        }
    }
    assert!(broker.terminate().unwrap().success());
}
