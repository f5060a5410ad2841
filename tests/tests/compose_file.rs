//! `docker-compose.yml`, the `Dockerfile` and `scripts/build-image` checked against the
//! conventions of `docs/OPERATIONS.md` ("Compose"), so the files cannot drift:
//!
//! - services `broker-1..3`, each with hostname `broker-N`, `STRATA_NODE_ID=N`, the image
//!   the build script tags, no `depends_on` (readiness needs a quorum, so brokers that wait
//!   for each other's health never start);
//! - every broker a controller voter, each at its own internal listener, in one list
//!   given identically to all;
//! - internal listener `0.0.0.0:7070` advertised as `broker-N:7070`; external listener
//!   `0.0.0.0:N7070` published on the host's loopback, same port, and advertised as
//!   `127.0.0.1:N7070`; admin `0.0.0.0:7080` published as `127.0.0.1:N7080` (it has no
//!   authentication);
//! - data in the named volume `broker-N-data` at `/var/lib/strata`; JSON logs;
//! - the health check `strata-broker probe --ready`, `stop_grace_period: 30s`, and a
//!   shutdown (half the grace for the controlled shutdown, then the grace) that fits in it;
//! - the Dockerfile: `FROM scratch` only, a numeric non-root user, the volume, SIGTERM,
//!   an exec-form command.
//!
//! A second test breaks the file on purpose (a wrong voter list, a missing health check)
//! and expects the check to say so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use yaml_rust2::{Yaml, YamlLoader};

const BROKERS: [u32; 3] = [1, 2, 3];
const DATA_DIR: &str = "/var/lib/strata";
const PROBE: [&str; 4] = ["CMD", "strata-broker", "probe", "--ready"];
/// Docker's SIGKILL comes this long after the SIGTERM (`stop_grace_period`).
const STOP_GRACE_SECONDS: u64 = 30;

fn repository_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn key(name: &str) -> Yaml {
    Yaml::String(name.to_owned())
}

/// A mapping with YAML merge keys (`<<: *broker`) applied: the mapping's own keys win.
fn merged(node: &Yaml) -> BTreeMap<String, Yaml> {
    let mut out = BTreeMap::new();
    if let Some(Yaml::Hash(base)) = node.as_hash().and_then(|hash| hash.get(&key("<<"))) {
        for (name, value) in base {
            if let Some(name) = name.as_str() {
                out.insert(name.to_owned(), value.clone());
            }
        }
    }
    for (name, value) in node.as_hash().into_iter().flatten() {
        if let Some(name) = name.as_str().filter(|name| *name != "<<") {
            out.insert(name.to_owned(), value.clone());
        }
    }
    out
}

/// A scalar as text (compose accepts `"1"` and `1` alike).
fn text(node: &Yaml) -> Option<String> {
    match node {
        Yaml::String(value) | Yaml::Real(value) => Some(value.clone()),
        Yaml::Integer(value) => Some(value.to_string()),
        Yaml::Boolean(value) => Some(value.to_string()),
        _ => None,
    }
}

fn strings(node: Option<&Yaml>) -> Vec<String> {
    node.and_then(Yaml::as_vec)
        .map(|items| items.iter().filter_map(text).collect())
        .unwrap_or_default()
}

/// The image tag `scripts/build-image` builds by default.
fn built_tag(script: &str) -> Option<String> {
    let line = script.lines().find(|line| line.starts_with("tag=${1:-"))?;
    Some(
        line.trim_start_matches("tag=${1:-")
            .trim_end_matches('}')
            .to_owned(),
    )
}

/// Everything in `compose` that breaks the conventions; empty when it keeps them.
fn compose_problems(compose: &str, image: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let documents = match YamlLoader::load_from_str(compose) {
        Ok(documents) => documents,
        Err(error) => return vec![format!("not YAML: {error}")],
    };
    let Some(root) = documents.first() else {
        return vec!["empty file".into()];
    };
    let services = merged(&root["services"]);
    let expected: Vec<String> = BROKERS.iter().map(|n| format!("broker-{n}")).collect();
    let names: Vec<String> = services.keys().cloned().collect();
    if names != expected {
        problems.push(format!("services are {names:?}, expected {expected:?}"));
    }
    let voters_expected = BROKERS
        .iter()
        .map(|n| format!("{n}@broker-{n}:7070"))
        .collect::<Vec<_>>()
        .join(",");
    let declared_volumes = merged(&root["volumes"]);
    for n in BROKERS {
        let name = format!("broker-{n}");
        let Some(service) = services.get(&name) else {
            continue;
        };
        let service = merged(service);
        let mut expect = |what: &str, actual: Option<String>, wanted: &str| {
            if actual.as_deref() != Some(wanted) {
                problems.push(format!("{name}: {what} is {actual:?}, expected {wanted:?}"));
            }
        };
        expect("image", service.get("image").and_then(text), image);
        expect("hostname", service.get("hostname").and_then(text), &name);
        expect(
            "stop_grace_period",
            service.get("stop_grace_period").and_then(text),
            &format!("{STOP_GRACE_SECONDS}s"),
        );
        let environment = service.get("environment").map(merged).unwrap_or_default();
        let env = |variable: &str| environment.get(variable).and_then(text);
        for (variable, wanted) in [
            ("STRATA_NODE_ID", n.to_string()),
            ("STRATA_CONTROLLER_VOTERS", voters_expected.clone()),
            ("STRATA_DATA_DIR", DATA_DIR.to_owned()),
            ("STRATA_LISTENERS__GRPC", "0.0.0.0:7070".to_owned()),
            ("STRATA_ADVERTISED__GRPC", format!("{name}:7070")),
            ("STRATA_LISTENERS__EXTERNAL", format!("0.0.0.0:{n}7070")),
            ("STRATA_ADVERTISED__EXTERNAL", format!("127.0.0.1:{n}7070")),
            ("STRATA_LISTENERS__ADMIN", "0.0.0.0:7080".to_owned()),
            ("STRATA_LOG_FORMAT", "json".to_owned()),
        ] {
            expect(variable, env(variable), &wanted);
        }
        let grace_ms: u64 = env("STRATA_SHUTDOWN_GRACE_MS")
            .and_then(|value| value.parse().ok())
            .unwrap_or(30_000);
        if grace_ms + grace_ms / 2 >= STOP_GRACE_SECONDS * 1000 {
            problems.push(format!(
                "{name}: a shutdown may take 1.5 × {grace_ms} ms, past the {STOP_GRACE_SECONDS} s grace period"
            ));
        }
        let ports = strings(service.get("ports"));
        for wanted in [
            format!("127.0.0.1:{n}7070:{n}7070"),
            format!("127.0.0.1:{n}7080:7080"),
        ] {
            if !ports.contains(&wanted) {
                problems.push(format!("{name}: ports {ports:?} lack {wanted:?}"));
            }
        }
        let volumes = strings(service.get("volumes"));
        let volume = format!("{name}-data");
        if volumes != [format!("{volume}:{DATA_DIR}")] {
            problems.push(format!(
                "{name}: volumes are {volumes:?}, expected [\"{volume}:{DATA_DIR}\"]"
            ));
        }
        if !declared_volumes.contains_key(&volume) {
            problems.push(format!("the named volume {volume} is not declared"));
        }
        let healthcheck = service.get("healthcheck").map(merged).unwrap_or_default();
        if strings(healthcheck.get("test")) != PROBE {
            problems.push(format!(
                "{name}: the health check is not {PROBE:?}: {:?}",
                healthcheck.get("test")
            ));
        }
        if service.contains_key("depends_on") {
            problems.push(format!(
                "{name}: depends_on between brokers (they must start together)"
            ));
        }
    }
    problems
}

/// Everything in the Dockerfile that breaks the conventions.
fn dockerfile_problems(dockerfile: &str) -> Vec<String> {
    let instructions: Vec<(String, String)> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once(' '))
        .map(|(instruction, rest)| (instruction.to_uppercase(), rest.trim().to_owned()))
        .collect();
    let values = |name: &str| -> Vec<&str> {
        instructions
            .iter()
            .filter(|(instruction, _)| instruction == name)
            .map(|(_, rest)| rest.as_str())
            .collect()
    };
    let mut problems = Vec::new();
    if values("FROM") != ["scratch"] {
        problems.push(format!(
            "FROM is {:?}, expected scratch only",
            values("FROM")
        ));
    }
    let user = values("USER");
    let uid = user
        .last()
        .and_then(|user| user.split(':').next()?.parse::<u32>().ok());
    if uid.is_none_or(|uid| uid == 0) {
        problems.push(format!("USER {user:?} is not a numeric non-root user"));
    }
    if values("VOLUME") != [DATA_DIR] {
        problems.push(format!("VOLUME is {:?}", values("VOLUME")));
    }
    if values("STOPSIGNAL") != ["SIGTERM"] {
        problems.push(format!("STOPSIGNAL is {:?}", values("STOPSIGNAL")));
    }
    let commands: Vec<&str> = values("CMD")
        .into_iter()
        .chain(values("ENTRYPOINT"))
        .collect();
    if commands.is_empty() || !commands.iter().all(|command| command.starts_with('[')) {
        problems.push(format!("CMD/ENTRYPOINT {commands:?} not in exec form"));
    }
    problems
}

#[test]
fn the_compose_file_and_the_image_follow_the_conventions() {
    let image = built_tag(&repository_file("scripts/build-image"))
        .expect("scripts/build-image names its default tag as tag=${1:-…}");
    assert_eq!(image, "strata:dev");
    let problems = compose_problems(&repository_file("docker-compose.yml"), &image);
    assert!(
        problems.is_empty(),
        "docker-compose.yml:\n{}",
        problems.join("\n")
    );
    let problems = dockerfile_problems(&repository_file("Dockerfile"));
    assert!(problems.is_empty(), "Dockerfile:\n{}", problems.join("\n"));
}

#[test]
fn a_drifted_compose_file_is_caught() {
    let compose = repository_file("docker-compose.yml");
    let voters = "1@broker-1:7070,2@broker-2:7070,3@broker-3:7070";
    // Broker 3 forgets itself in its voter list.
    let position = compose.rfind(voters).unwrap();
    let mut drifted = compose.clone();
    drifted.replace_range(
        position..position + voters.len(),
        "1@broker-1:7070,2@broker-2:7070",
    );
    let problems = compose_problems(&drifted, "strata:dev");
    assert!(
        problems
            .iter()
            .any(|problem| problem.starts_with("broker-3: STRATA_CONTROLLER_VOTERS")),
        "{problems:?}"
    );
    // The shared health check is gone.
    let drifted = compose.replace("\"probe\", \"--ready\"", "\"--version\"");
    let problems = compose_problems(&drifted, "strata:dev");
    assert_eq!(
        problems
            .iter()
            .filter(|problem| problem.contains("health check"))
            .count(),
        3,
        "{problems:?}"
    );
    // Another image than the one the script builds.
    assert!(!compose_problems(&compose, "strata:other").is_empty());
    // A broker published on the wrong external port.
    let drifted = compose.replace("\"127.0.0.1:27070:27070\"", "\"127.0.0.1:27071:27070\"");
    assert!(compose_problems(&drifted, "strata:dev")
        .iter()
        .any(|problem| problem.starts_with("broker-2: ports")),);
}
