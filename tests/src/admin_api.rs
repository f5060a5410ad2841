//! The admin HTTP listener of a broker in a [`Cluster`], for the tests of the JSON API
//! and the `/ui` page: where it listens (read from the broker's start-up log line, since
//! the harness lets each broker take a free admin port), GETs answered as JSON, and the
//! set of field paths of a JSON document, to compare the API's field names with the
//! CLI's `--format json`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_broker::admin::probe;

use crate::cluster::Cluster;
use crate::cluster_views::WAIT;

/// The admin listener's address of `node`, from the line it logs when it starts serving
/// (`admin=HOST:PORT`); waits for the line (bounded by [`WAIT`]).
pub fn admin_address(cluster: &Cluster, node: u8) -> String {
    let started = Instant::now();
    loop {
        let log = cluster.log(node);
        let found = log
            .lines()
            .filter(|line| line.contains("admin listener serving"))
            .find_map(|line| {
                let rest = &line[line.find("admin=")? + "admin=".len()..];
                rest.split_whitespace().next().map(str::to_owned)
            });
        if let Some(address) = found {
            return address;
        }
        assert!(
            started.elapsed() < WAIT,
            "node {node} logged no admin address:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `GET path` on `admin`: the status and the body parsed as JSON (panics if it is not).
pub fn get_json(admin: &str, path: &str) -> (u16, Value) {
    let answer = probe::get_within(admin, path, 16 << 20)
        .unwrap_or_else(|error| panic!("GET {path} on {admin}: {error}"));
    let body = serde_json::from_str(&answer.body)
        .unwrap_or_else(|error| panic!("GET {path}: {error}: {}", answer.body));
    (answer.status, body)
}

/// `GET path` that must answer 200, as `T`.
pub fn get_ok<T: serde::de::DeserializeOwned>(admin: &str, path: &str) -> T {
    let (status, body) = get_json(admin, path);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_value(body.clone())
        .unwrap_or_else(|error| panic!("GET {path}: {error}: {body}"))
}

/// Polls `GET path` until `done` holds for its answer (bounded by [`WAIT`]); returns it.
pub fn get_until(admin: &str, path: &str, done: impl Fn(u16, &Value) -> bool) -> (u16, Value) {
    let started = Instant::now();
    loop {
        let (status, body) = get_json(admin, path);
        if done(status, &body) {
            return (status, body);
        }
        assert!(
            started.elapsed() < WAIT,
            "GET {path} still answers {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every field path of `value`: `partitions[].leader`, `configs[].source`, … (array
/// elements merged under `[]`).
pub fn field_paths(value: &Value) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    collect(value, "", &mut paths);
    paths
}

fn collect(value: &Value, prefix: &str, paths: &mut BTreeSet<String>) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                let path = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                paths.insert(path.clone());
                collect(field, &path, paths);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect(item, &format!("{prefix}[]"), paths);
            }
        }
        _ => {}
    }
}
