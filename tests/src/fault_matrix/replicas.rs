//! The end of a run, replica by replica: every broker's copy of every partition, read
//! with `strata-broker dump-log --records` from its data directory, must hold the same
//! batches (offsets, leader epochs, sizes, CRCs) as the other copies, and the same
//! records as the final read through the leaders. Each copy's records are also recorded
//! as [`Event::FinalRead`]s of a process `replica-<node>`, so the checker holds every copy
//! to the same rules as the leaders' read (an acknowledged offset holds its value, one
//! value per position).
//!
//! [`wait_until_equal`] runs on live brokers (dump-log only reads, and a batch being
//! written shows as damage, so it is asked again); [`read_stopped`] on stopped ones.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::broker_process::workspace_binary;
use crate::cluster::Cluster;
use crate::history::{Entry, Event, Recorder, TopicPartition, Value};
use crate::wait::wait_for;

/// One copy of one partition: its batch lines (without file positions, which differ when
/// segments roll at other offsets) and its records by offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copy {
    pub batches: Vec<String>,
    pub records: BTreeMap<i64, Value>,
}

/// The copies every partition has: its replication factor.
pub const COPIES: usize = 3;

/// Reads `node`'s copy of `topic/partition`, if it has one.
pub fn read_copy(
    cluster: &Cluster,
    node: u8,
    topic: &str,
    partition: i32,
) -> anyhow::Result<Option<Copy>> {
    let dir = cluster.data_dir(node).join(format!("{topic}-{partition}"));
    if !dir.is_dir() {
        return Ok(None);
    }
    dump(&dir).map(Some)
}

fn dump(dir: &Path) -> anyhow::Result<Copy> {
    let output = std::process::Command::new(workspace_binary("strata-broker"))
        .arg("dump-log")
        .arg("--records")
        .arg(dir)
        .output()
        .context("run strata-broker dump-log")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "dump-log {} exited with {}: {}{}",
            dir.display(),
            output.status,
            text.lines().last().unwrap_or_default(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let mut copy = Copy::default();
    for line in text.lines() {
        if line.starts_with("baseOffset:") {
            copy.batches.push(without_position(line));
        } else if let Some(record) = line.strip_prefix("| offset: ") {
            let (offset, value) = parse_record(record)
                .with_context(|| format!("{}: cannot read {line:?}", dir.display()))?;
            copy.records.insert(offset, value);
        }
    }
    Ok(copy)
}

fn without_position(line: &str) -> String {
    line.split(' ')
        .collect::<Vec<_>>()
        .chunks(2)
        .filter(|pair| pair.first() != Some(&"position:"))
        .map(|pair| pair.join(" "))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `<offset> timestamp: … value: "p1-s2" headers: […]`.
fn parse_record(record: &str) -> Option<(i64, Value)> {
    let (offset, rest) = record.split_once(' ')?;
    let value = rest.split_once(" value: \"")?.1.split_once('"')?.0;
    Some((offset.parse().ok()?, Value::parse(value.as_bytes())?))
}

/// Every copy of every partition, by partition then node.
fn read_all(
    cluster: &Cluster,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<BTreeMap<i32, BTreeMap<u8, Copy>>> {
    let mut all = BTreeMap::new();
    for partition in 0..partitions {
        let mut copies = BTreeMap::new();
        for node in cluster.nodes() {
            if let Some(copy) = read_copy(cluster, node, topic, partition)? {
                copies.insert(node, copy);
            }
        }
        all.insert(partition, copies);
    }
    Ok(all)
}

/// The partitions whose copies differ, described.
fn differences(all: &BTreeMap<i32, BTreeMap<u8, Copy>>) -> Vec<String> {
    let mut found = Vec::new();
    for (partition, copies) in all {
        let first = copies.values().next().map(|copy| &copy.batches);
        if copies.len() != COPIES || copies.values().any(|copy| Some(&copy.batches) != first) {
            let ends: Vec<String> = copies
                .iter()
                .map(|(node, copy)| {
                    format!(
                        "node {node}: {} batches, last {:?}",
                        copy.batches.len(),
                        copy.batches.last()
                    )
                })
                .collect();
            found.push(format!("partition {partition}: {}", ends.join("; ")));
        }
    }
    found
}

/// Waits (bounded) until every copy of every partition holds the same batches.
pub async fn wait_until_equal(
    cluster: &Cluster,
    topic: &str,
    partitions: i32,
    within: Duration,
) -> anyhow::Result<()> {
    wait_for("every copy of every partition is equal", within, || async {
        let all = read_all(cluster, topic, partitions)?;
        let differences = differences(&all);
        if differences.is_empty() {
            Ok(())
        } else {
            bail!("{}", differences.join(" | "))
        }
    })
    .await
}

/// Reads every copy of the stopped cluster: records each as `replica-<node>` final reads,
/// and returns what is wrong: copies that differ, or a copy whose records are not the
/// final read's (`entries`, through the leaders).
pub fn read_stopped(
    cluster: &Cluster,
    recorder: &Recorder,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<Vec<String>> {
    let all = read_all(cluster, topic, partitions)?;
    let mut problems = differences(&all);
    let leaders_read = final_reads(&recorder.entries(), "final-read");
    for (partition, copies) in &all {
        let tp = TopicPartition::new(topic, *partition);
        let empty = BTreeMap::new();
        let read = leaders_read.get(&tp).unwrap_or(&empty);
        for (node, copy) in copies {
            let process = format!("replica-{node}");
            for (offset, value) in &copy.records {
                let event = Event::FinalRead {
                    partition: tp.clone(),
                    offset: *offset,
                    value: *value,
                };
                recorder.record(&process, event);
            }
            if &copy.records != read {
                problems.push(format!(
                    "node {node}'s copy of {tp} holds {} records ending at {:?}; the final read through the leader {} ending at {:?}",
                    copy.records.len(),
                    copy.records.keys().next_back(),
                    read.len(),
                    read.keys().next_back()
                ));
            }
        }
    }
    Ok(problems)
}

/// What the final reads of `process` found, by partition and offset.
fn final_reads(entries: &[Entry], process: &str) -> BTreeMap<TopicPartition, BTreeMap<i64, Value>> {
    let mut reads: BTreeMap<TopicPartition, BTreeMap<i64, Value>> = BTreeMap::new();
    for entry in entries.iter().filter(|entry| entry.process == process) {
        if let Event::FinalRead {
            partition,
            offset,
            value,
        } = &entry.event
        {
            reads
                .entry(partition.clone())
                .or_default()
                .insert(*offset, *value);
        }
    }
    reads
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn record_lines_and_batch_lines_are_parsed() {
        let record = "12 timestamp: 1700000000000 key: \"k3\" value: \"p2-s40\" headers: []";
        assert_eq!(parse_record(record), Some((12, Value::new(2, 40))));
        assert_eq!(
            parse_record("12 timestamp: 1 key: null value: null headers: []"),
            None
        );
        let batch = "baseOffset: 0 lastOffset: 4 count: 5 leaderEpoch: 1 position: 0 size: 120";
        assert_eq!(
            without_position(batch),
            "baseOffset: 0 lastOffset: 4 count: 5 leaderEpoch: 1 size: 120"
        );
    }
}
