//! The connection series of a real `strata-broker`'s `/metrics`, with an internal and an
//! external gRPC listener:
//!
//! - `strata_connections{listener}` counts the connections open on each listener, and
//!   falls when they close;
//! - `strata_connections_rejected_total{listener,reason}` counts a connection refused at
//!   the accept (`max_connections_per_ip`) on the listener that refused it, and one closed
//!   for never sending the HTTP/2 preface (`handshake_timeout`).
//!
//! Timing decides nothing: the waits only bound how long the broker may take to accept
//! or close a connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpStream;
use std::time::{Duration, Instant};

use strata_broker::admin::probe;
use strata_tests::broker_process::{free_port, BrokerProcess};

/// Bounds every wait.
const WAIT: Duration = Duration::from_secs(60);

/// The value of the sample line `series` (name and labels exactly) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Scrapes `/metrics` until every `(series, value)` of `expected` shows; panics with the
/// last scrape after [`WAIT`].
fn wait_for_samples(admin: &str, expected: &[(&str, f64)]) {
    let started = Instant::now();
    loop {
        let text = probe::get_within(admin, "/metrics", 4 << 20).unwrap().body;
        let missing: Vec<_> = expected
            .iter()
            .filter(|(series, value)| sample(&text, series) != Some(*value))
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < WAIT,
            "still not {missing:?} after {WAIT:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

const INTERNAL: &str = "strata_connections{listener=\"internal\"}";
const EXTERNAL: &str = "strata_connections{listener=\"external\"}";
const EXTERNAL_CAPPED: &str =
    "strata_connections_rejected_total{listener=\"external\",reason=\"max_connections_per_ip\"}";
const INTERNAL_CAPPED: &str =
    "strata_connections_rejected_total{listener=\"internal\",reason=\"max_connections_per_ip\"}";
const INTERNAL_NO_HANDSHAKE: &str =
    "strata_connections_rejected_total{listener=\"internal\",reason=\"handshake_timeout\"}";

fn start(dir: &std::path::Path, admin: &str, external: &str, extra: &[&str]) -> BrokerProcess {
    let mut args = vec!["--admin-listen", admin, "--external-listen", external];
    args.extend_from_slice(extra);
    BrokerProcess::start(dir, &args).unwrap()
}

#[test]
fn open_and_rejected_connections_are_counted_per_listener() {
    let dir = tempfile::tempdir().unwrap();
    let admin = format!("127.0.0.1:{}", free_port().unwrap());
    let external = format!("127.0.0.1:{}", free_port().unwrap());
    // Connections that never send the HTTP/2 preface stay open for the test.
    let broker = start(
        dir.path(),
        &admin,
        &external,
        &[
            "--max-connections-per-ip",
            "3",
            "--handshake-timeout-ms",
            "10m",
        ],
    );
    wait_for_samples(
        &admin,
        &[
            (INTERNAL, 0.0),
            (EXTERNAL, 0.0),
            (EXTERNAL_CAPPED, 0.0),
            (INTERNAL_CAPPED, 0.0),
        ],
    );

    let internal_held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(broker.address()).unwrap())
        .collect();
    let external_held = TcpStream::connect(&external).unwrap();
    wait_for_samples(&admin, &[(INTERNAL, 2.0), (EXTERNAL, 1.0)]);

    // The address's fourth connection is refused, on the listener it came to.
    let refused = TcpStream::connect(&external).unwrap();
    wait_for_samples(
        &admin,
        &[
            (EXTERNAL_CAPPED, 1.0),
            (INTERNAL_CAPPED, 0.0),
            (INTERNAL, 2.0),
            (EXTERNAL, 1.0),
        ],
    );

    drop(internal_held);
    drop(external_held);
    drop(refused);
    wait_for_samples(&admin, &[(INTERNAL, 0.0), (EXTERNAL, 0.0)]);
    drop(broker);
}

#[test]
fn a_connection_without_the_http2_preface_is_counted_as_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let admin = format!("127.0.0.1:{}", free_port().unwrap());
    let external = format!("127.0.0.1:{}", free_port().unwrap());
    let broker = start(
        dir.path(),
        &admin,
        &external,
        &["--handshake-timeout-ms", "100"],
    );
    // Sends nothing: closed by the handshake timeout. (The harness's own probe of the
    // port, which also sent nothing, may be counted too.)
    let silent = TcpStream::connect(broker.address()).unwrap();
    let started = Instant::now();
    loop {
        let text = probe::get_within(&admin, "/metrics", 4 << 20).unwrap().body;
        let rejected = sample(&text, INTERNAL_NO_HANDSHAKE).unwrap_or(0.0);
        if rejected >= 1.0 && sample(&text, INTERNAL) == Some(0.0) {
            break;
        }
        assert!(started.elapsed() < WAIT, "{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(silent);
    drop(broker);
}
