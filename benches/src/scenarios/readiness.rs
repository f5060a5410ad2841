//! Waiting, before a cluster session measures anything, until the three brokers have
//! formed a cluster and the step's topic has every replica in its ISR.
//!
//! Why: a broker listens before the controller quorum has elected a leader and before it
//! has registered, and a new partition starts with its leader alone in the ISR, the
//! followers joining as they catch up. A step that started earlier would time elections
//! and the ISR growing, and an `acks=all` produce below `min.insync.replicas` is refused.
//!
//! Everything is asked through the `strata` CLI the steps use (`cluster info`, `topic
//! create`, `topic describe`, all `--format json`); the judgements on its documents are
//! pure functions ([`cluster_formed`], [`topic_in_sync`]). Each wait is bounded and says
//! what was still missing when it gave up.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::Value;

use super::bench::find_document;
use super::process::run_captured;

/// How long a cluster may take to elect a controller and register every broker, and a
/// new topic to get every replica in sync.
pub const READY_WAIT_MAX: Duration = Duration::from_secs(60);
/// Pause between two looks.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Bound on one `strata` call.
const CALL_DEADLINE: Duration = Duration::from_secs(15);

/// The `strata` binary and the cluster it talks to.
#[derive(Debug, Clone, Copy)]
pub struct Cli<'a> {
    pub strata: &'a Path,
    /// The `-b` list: every broker.
    pub bootstrap: &'a str,
    /// Where the calls' output files go for a moment.
    pub scratch_dir: &'a Path,
}

impl Cli<'_> {
    /// Runs `strata -b … --format json <args>`: stdout on success, else why not.
    fn call(&self, args: &[&str]) -> Result<String, String> {
        let mut command = Command::new(self.strata);
        command
            .args(["-b", self.bootstrap, "--format", "json"])
            .args(args);
        let finished = run_captured(command, "strata", self.scratch_dir, CALL_DEADLINE)
            .map_err(|error| format!("{error:#}"))?;
        if finished.status.is_some_and(|status| status.success()) {
            Ok(finished.stdout)
        } else {
            let stderr = finished.stderr.trim().replace('\n', " | ");
            Err(format!("strata {} failed: {stderr}", args.join(" ")))
        }
    }
}

/// Waits until a controller leads the quorum and all `brokers` are registered and live.
/// Returns how long it took.
pub fn wait_cluster_formed(cli: Cli<'_>, brokers: usize) -> anyhow::Result<Duration> {
    poll("the cluster to form", || {
        let stdout = cli.call(&["cluster", "info"])?;
        let document = find_document(&stdout).ok_or("cluster info printed no JSON")?;
        cluster_formed(&document, brokers)
    })
}

/// Creates `topic` with `partitions` × `replication_factor` (the brokers' default flush)
/// and waits until every partition has a leader and all its replicas in the ISR. Returns
/// how long that took, the creation included.
pub fn create_topic_in_sync(
    cli: Cli<'_>,
    topic: &str,
    partitions: u32,
    replication_factor: u32,
) -> anyhow::Result<Duration> {
    let (partitions, replicas) = (partitions.to_string(), replication_factor.to_string());
    let mut created = false;
    poll(
        &format!("topic {topic} to have every replica in sync"),
        || {
            if !created {
                // Retried until it takes: right after an election the controller may refuse.
                match cli.call(&["topic", "create", topic, "-p", &partitions, "-r", &replicas]) {
                    Ok(_) => created = true,
                    Err(error) if error.contains("TOPIC_ALREADY_EXISTS") => created = true,
                    Err(error) => return Err(error),
                }
            }
            let stdout = cli.call(&["topic", "describe", topic])?;
            let document = find_document(&stdout).ok_or("topic describe printed no JSON")?;
            topic_in_sync(&document, replication_factor)
        },
    )
}

/// Calls `look` until it returns `Ok`, for at most [`READY_WAIT_MAX`].
fn poll(what: &str, mut look: impl FnMut() -> Result<(), String>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let reason = match look() {
            Ok(()) => return Ok(started.elapsed()),
            Err(reason) => reason,
        };
        if started.elapsed() >= READY_WAIT_MAX || super::interrupt::requested() {
            bail!(
                "gave up waiting for {what} after {:.0} s: {reason}",
                started.elapsed().as_secs_f64()
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Whether a `cluster info` document shows a controller leader and `brokers` live
/// brokers; else what is missing.
pub fn cluster_formed(document: &Value, brokers: usize) -> Result<(), String> {
    if document["controller_id"].as_i64().is_none() {
        return Err("no controller leader yet".to_owned());
    }
    let registered = document["brokers"]
        .as_array()
        .ok_or("cluster info lists no brokers")?;
    let live = registered
        .iter()
        .filter(|broker| broker["state"].as_str() == Some("live"))
        .count();
    if live < brokers {
        return Err(format!(
            "{live} of {brokers} brokers live ({} registered)",
            registered.len()
        ));
    }
    Ok(())
}

/// Whether a `topic describe` document shows every partition with a leader and
/// `replication_factor` replicas, all in the ISR; else the first partition that does not.
pub fn topic_in_sync(document: &Value, replication_factor: u32) -> Result<(), String> {
    let partitions = document["partitions"]
        .as_array()
        .filter(|partitions| !partitions.is_empty())
        .ok_or("topic describe lists no partitions")?;
    let wanted = usize::try_from(replication_factor).unwrap_or(usize::MAX);
    for partition in partitions {
        let number = &partition["partition"];
        let count = |key: &str| partition[key].as_array().map_or(0, Vec::len);
        if partition["leader"].as_i64().is_none() {
            return Err(format!("partition {number} has no leader"));
        }
        let (replicas, isr) = (count("replicas"), count("isr"));
        if replicas != wanted || isr < replicas {
            return Err(format!(
                "partition {number}: {isr} of {replicas} replicas in sync, {wanted} wanted"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn broker(state: &str) -> Value {
        json!({"node_id": 1, "address": "127.0.0.1:1", "state": state})
    }

    #[test]
    fn a_cluster_is_formed_with_a_controller_and_every_broker_live() {
        let formed = json!({"controller_id": 2, "brokers": [broker("live"), broker("live"), broker("live")]});
        assert_eq!(cluster_formed(&formed, 3), Ok(()));
        let electing = json!({"controller_id": null, "brokers": []});
        assert!(cluster_formed(&electing, 3).is_err_and(|why| why.contains("controller")));
        let fenced = json!({"controller_id": 1, "brokers": [broker("live"), broker("fenced"), broker("live")]});
        assert_eq!(
            cluster_formed(&fenced, 3),
            Err("2 of 3 brokers live (3 registered)".to_owned())
        );
        let registering = json!({"controller_id": 1, "brokers": [broker("live")]});
        assert!(cluster_formed(&registering, 3).is_err());
    }

    fn partition(leader: Option<i32>, replicas: &[i32], isr: &[i32]) -> Value {
        json!({"partition": 0, "leader": leader, "replicas": replicas, "isr": isr})
    }

    #[test]
    fn a_topic_is_in_sync_when_every_replica_of_every_partition_is_in_the_isr() {
        let topic = |partitions: Vec<Value>| json!({"name": "t", "partitions": partitions});
        let full = partition(Some(1), &[1, 2, 3], &[1, 2, 3]);
        assert_eq!(
            topic_in_sync(&topic(vec![full.clone(), full.clone()]), 3),
            Ok(())
        );
        // A new partition: the leader alone in the ISR.
        let growing = partition(Some(1), &[1, 2, 3], &[1]);
        assert_eq!(
            topic_in_sync(&topic(vec![full.clone(), growing]), 3),
            Err("partition 0: 1 of 3 replicas in sync, 3 wanted".to_owned())
        );
        let leaderless = partition(None, &[1, 2, 3], &[1, 2, 3]);
        assert!(topic_in_sync(&topic(vec![leaderless]), 3).is_err());
        // Fewer replicas than asked for is not the topic the step wants.
        assert!(topic_in_sync(&topic(vec![partition(Some(1), &[1], &[1])]), 3).is_err());
        assert_eq!(
            topic_in_sync(&topic(vec![partition(Some(1), &[1], &[1])]), 1),
            Ok(())
        );
        assert!(topic_in_sync(&topic(Vec::new()), 1).is_err());
    }
}
