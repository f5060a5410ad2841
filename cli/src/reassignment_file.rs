//! The `--reassignment-json-file` of `strata partition reassign`: Kafka's
//! `kafka-reassign-partitions` shape,
//!
//! ```json
//! {"version":1,"partitions":[{"topic":"orders","partition":0,"replicas":[2,3]}]}
//! ```
//!
//! `version` may be left out (if present it must be 1) and each partition's `log_dirs` is
//! accepted and ignored, so a file written for Kafka's tool works. Any other field is an
//! error, so a misspelt `replica` is not silently dropped. Checked here, before anything
//! is sent: at least one partition, partition numbers and broker ids not negative, a
//! non-empty replica list without repeats, and no partition named twice. Whether the
//! brokers exist is the controller's to say (`INVALID_REPLICA_ASSIGNMENT`).

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

/// A parsed and checked reassignment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassignmentFile {
    /// (topic, partition, replicas), in the file's order.
    pub partitions: Vec<(String, i32, Vec<i32>)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDocument {
    version: Option<u32>,
    partitions: Vec<FilePartition>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePartition {
    topic: String,
    partition: i32,
    replicas: Vec<i32>,
    #[serde(default, rename = "log_dirs")]
    _log_dirs: Option<serde_json::Value>,
}

impl ReassignmentFile {
    /// Parses and checks the text of a reassignment file; the error says what is wrong.
    pub fn parse(text: &str) -> Result<ReassignmentFile, String> {
        let document: FileDocument =
            serde_json::from_str(text).map_err(|error| format!("not a reassignment: {error}"))?;
        if let Some(version) = document.version.filter(|version| *version != 1) {
            return Err(format!("version {version} is not supported; use 1"));
        }
        if document.partitions.is_empty() {
            return Err("\"partitions\" is empty: nothing to reassign".to_owned());
        }
        let mut seen = HashSet::new();
        let mut partitions = Vec::with_capacity(document.partitions.len());
        for entry in document.partitions {
            let name = format!("{}/{}", entry.topic, entry.partition);
            if entry.topic.is_empty() || entry.partition < 0 {
                return Err(format!("{name}: not a topic and partition"));
            }
            if !seen.insert((entry.topic.clone(), entry.partition)) {
                return Err(format!("{name} is listed twice"));
            }
            check_replicas(&entry.replicas).map_err(|reason| format!("{name}: {reason}"))?;
            partitions.push((entry.topic, entry.partition, entry.replicas));
        }
        Ok(ReassignmentFile { partitions })
    }
}

/// A replica list the controller could accept: not empty, ids not negative, no repeats.
pub fn check_replicas(replicas: &[i32]) -> Result<(), String> {
    if replicas.is_empty() {
        return Err("the replica list is empty".to_owned());
    }
    for (index, broker) in replicas.iter().enumerate() {
        if *broker < 0 {
            return Err(format!("broker id {broker} is negative"));
        }
        if replicas[..index].contains(broker) {
            return Err(format!("broker {broker} is listed twice"));
        }
    }
    Ok(())
}

/// clap's `value_parser` for the file path: reads and checks the file, so a bad file is a
/// usage error (exit 2) before anything connects. clap's message names the path already.
pub fn parse_reassignment_file_arg(path: &str) -> Result<ReassignmentFile, String> {
    let text = std::fs::read_to_string(Path::new(path))
        .map_err(|error| format!("cannot read it: {error}"))?;
    ReassignmentFile::parse(&text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_documented_shape_and_kafkas_file_parse() {
        let plain = r#"{"partitions":[{"topic":"t","partition":0,"replicas":[2,3]}]}"#;
        assert_eq!(
            ReassignmentFile::parse(plain).unwrap().partitions,
            [("t".to_owned(), 0, vec![2, 3])]
        );
        let kafka = r#"{"version":1,"partitions":[
            {"topic":"t","partition":1,"replicas":[3,1],"log_dirs":["any","any"]},
            {"topic":"u","partition":0,"replicas":[1]}]}"#;
        let parsed = ReassignmentFile::parse(kafka).unwrap();
        assert_eq!(
            parsed.partitions,
            [
                ("t".to_owned(), 1, vec![3, 1]),
                ("u".to_owned(), 0, vec![1])
            ]
        );
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        for (text, expected) in [
            ("not json", "not a reassignment"),
            (r#"{"partitions":[]}"#, "nothing to reassign"),
            (r#"{"version":2,"partitions":[]}"#, "version 2"),
            (
                r#"{"partitions":[{"topic":"t","partition":0,"replica":[1]}]}"#,
                "unknown field `replica`",
            ),
            (
                r#"{"partitions":[{"topic":"t","partition":0,"replicas":[]}]}"#,
                "t/0: the replica list is empty",
            ),
            (
                r#"{"partitions":[{"topic":"t","partition":0,"replicas":[2,2]}]}"#,
                "t/0: broker 2 is listed twice",
            ),
            (
                r#"{"partitions":[{"topic":"t","partition":-1,"replicas":[2]}]}"#,
                "not a topic and partition",
            ),
            (
                r#"{"partitions":[{"topic":"t","partition":0,"replicas":[2]},
                                  {"topic":"t","partition":0,"replicas":[3]}]}"#,
                "t/0 is listed twice",
            ),
        ] {
            let error = ReassignmentFile::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn an_unreadable_file_says_so() {
        let error = parse_reassignment_file_arg("/nonexistent/plan.json").unwrap_err();
        assert!(error.starts_with("cannot read it: "), "{error}");
    }
}
