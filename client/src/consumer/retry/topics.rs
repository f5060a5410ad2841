//! Creating a group's retry and dead-letter topics, and refusing ones that belong to
//! someone else.
//!
//! When a consumer with a retry policy starts, every topic its policy needs is looked
//! up first. One that exists must carry the labels of this (source topic, group, kind,
//! level) (`strata.retry.*`, stored as topic configs); a topic with other labels, or
//! none, is refused with `INVALID_CONFIG` and nothing is created. Then the missing ones
//! are created with the source topic's partition count and replication factor (retry
//! topics with its `retention_ms`, the dead-letter topic with 30 days), and existing
//! ones with fewer partitions than the source grow to its count, so partition `p` of
//! the source always has a partition `p` to forward to. Another member creating the
//! same topic at the same time is fine: `TOPIC_ALREADY_EXISTS` is followed by the same
//! ownership check.

use crate::admin::{Admin, NewTopic, TopicDescription};
use crate::error::{Error, ErrorCode};
use crate::retry_topics::RetryTopicNames;

/// The dead-letter topic's retention: 30 days, so people have time to look.
const DLT_RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;

pub(crate) const LABEL_SOURCE: &str = "strata.retry.source-topic";
pub(crate) const LABEL_GROUP: &str = "strata.retry.group";
pub(crate) const LABEL_KIND: &str = "strata.retry.kind";
pub(crate) const LABEL_LEVEL: &str = "strata.retry.level";

/// One topic a policy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NeededTopic {
    pub(crate) name: String,
    source: String,
    group: String,
    /// `retry` or `dlt`.
    kind: &'static str,
    level: u32,
}

impl NeededTopic {
    /// The retry topics of levels `0..levels` and the dead-letter topic of `names`.
    pub(crate) fn all(names: &RetryTopicNames, levels: u32) -> Vec<NeededTopic> {
        let needed = |name: String, kind, level| NeededTopic {
            name,
            source: names.source().to_owned(),
            group: names.group().to_owned(),
            kind,
            level,
        };
        let mut topics: Vec<NeededTopic> = (0..levels)
            .map(|level| needed(names.retry(level), "retry", level))
            .collect();
        topics.push(needed(names.dlt(), "dlt", 0));
        topics
    }

    fn labels(&self) -> [(&'static str, String); 4] {
        [
            (LABEL_SOURCE, self.source.clone()),
            (LABEL_GROUP, self.group.clone()),
            (LABEL_KIND, self.kind.to_owned()),
            (LABEL_LEVEL, self.level.to_string()),
        ]
    }

    /// Refuses `existing` unless its labels are exactly this topic's.
    fn check_owner(&self, existing: &TopicDescription) -> Result<(), Error> {
        let label = |key: &str| {
            existing
                .configs
                .iter()
                .find(|entry| entry.key == key)
                .map(|entry| entry.value.as_str())
        };
        let matches = self
            .labels()
            .iter()
            .all(|(key, value)| label(key) == Some(value.as_str()));
        if matches {
            return Ok(());
        }
        let owner = match (label(LABEL_SOURCE), label(LABEL_GROUP)) {
            (Some(source), Some(group)) => format!(
                "it belongs to topic {source:?} and group {group:?} ({} level {})",
                label(LABEL_KIND).unwrap_or("?"),
                label(LABEL_LEVEL).unwrap_or("?"),
            ),
            _ => "it has no strata.retry.* labels (it was not created for retries)".to_owned(),
        };
        Err(Error::InvalidConfig(format!(
            "topic {} cannot be the {} topic{} of topic {:?} and group {:?}: {owner}",
            self.name,
            self.kind,
            if self.kind == "retry" {
                format!(" of level {}", self.level)
            } else {
                String::new()
            },
            self.source,
            self.group,
        )))
    }
}

/// What a source topic's retry topics copy from it.
#[derive(Debug, Clone)]
struct SourceShape {
    partitions: i32,
    replication_factor: i32,
    retention_ms: Option<String>,
}

/// Checks every topic in `needed` (sources described once each), then creates the
/// missing ones and grows the short ones. Nothing is created when one is refused.
pub(crate) async fn ensure(admin: &Admin, needed: &[NeededTopic]) -> Result<(), Error> {
    let mut missing = Vec::new();
    let mut short = Vec::new();
    for topic in needed {
        let shape = source_shape(admin, &topic.source).await?;
        match admin.describe_topic(&topic.name).await {
            Ok(existing) => {
                topic.check_owner(&existing)?;
                if partition_count(&existing) < shape.partitions {
                    short.push((topic, shape));
                }
            }
            Err(error) if error.code() == Some(ErrorCode::UnknownTopicOrPartition) => {
                missing.push((topic, shape));
            }
            Err(error) => return Err(error),
        }
    }
    for (topic, shape) in missing {
        create(admin, topic, &shape).await?;
    }
    for (topic, shape) in short {
        admin
            .create_partitions(&topic.name, shape.partitions)
            .await?;
    }
    Ok(())
}

async fn source_shape(admin: &Admin, source: &str) -> Result<SourceShape, Error> {
    let description = admin.describe_topic(source).await?;
    let replication_factor = description
        .partitions
        .iter()
        .map(|partition| partition.replicas.len())
        .max()
        .unwrap_or(1);
    Ok(SourceShape {
        partitions: partition_count(&description),
        replication_factor: i32::try_from(replication_factor).unwrap_or(1).max(1),
        retention_ms: description
            .configs
            .iter()
            .find(|entry| entry.key == "retention_ms")
            .map(|entry| entry.value.clone()),
    })
}

fn partition_count(description: &TopicDescription) -> i32 {
    i32::try_from(description.partitions.len()).unwrap_or(i32::MAX)
}

async fn create(admin: &Admin, topic: &NeededTopic, shape: &SourceShape) -> Result<(), Error> {
    let mut new = NewTopic::new(topic.name.clone())
        .partitions(shape.partitions)
        .replication_factor(shape.replication_factor);
    for (key, value) in topic.labels() {
        new = new.config(key, value);
    }
    let retention_ms = match topic.kind {
        "dlt" => Some(DLT_RETENTION_MS.to_string()),
        _ => shape.retention_ms.clone(),
    };
    if let Some(retention_ms) = retention_ms {
        new = new.config("retention_ms", retention_ms);
    }
    match admin.create_topic(new).await {
        Ok(()) => {
            tracing::info!(topic = %topic.name, partitions = shape.partitions, "created");
            Ok(())
        }
        Err(error) if error.code() == Some(ErrorCode::TopicAlreadyExists) => {
            // Another member created it meanwhile: it must still be ours.
            let existing = admin.describe_topic(&topic.name).await?;
            topic.check_owner(&existing)
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{ConfigEntry, ConfigSource};

    fn described(name: &str, labels: &[(&str, &str)]) -> TopicDescription {
        TopicDescription {
            name: name.to_owned(),
            topic_id: String::new(),
            partitions: Vec::new(),
            configs: labels
                .iter()
                .map(|(key, value)| ConfigEntry {
                    key: (*key).to_owned(),
                    value: (*value).to_owned(),
                    source: ConfigSource::Topic,
                })
                .collect(),
        }
    }

    #[test]
    fn a_topic_is_used_only_with_its_own_labels() {
        let names = RetryTopicNames::new("orders", "billing").unwrap_or_else(|e| panic!("{e}"));
        let needed = NeededTopic::all(&names, 2);
        let expected: Vec<&str> = needed.iter().map(|topic| topic.name.as_str()).collect();
        assert_eq!(
            expected,
            [
                "orders.billing.retry.0",
                "orders.billing.retry.1",
                "orders.billing.dlt"
            ]
        );
        let ours = described(
            "orders.billing.retry.1",
            &[
                (LABEL_SOURCE, "orders"),
                (LABEL_GROUP, "billing"),
                (LABEL_KIND, "retry"),
                (LABEL_LEVEL, "1"),
            ],
        );
        assert!(needed[1].check_owner(&ours).is_ok());
        // Level 0 is not level 1, and a DLT is not a retry topic.
        assert!(needed[0].check_owner(&ours).is_err());
        assert!(needed[2].check_owner(&ours).is_err());
        let theirs = described(
            "orders.billing.dlt",
            &[
                (LABEL_SOURCE, "orders.billing"),
                (LABEL_GROUP, "x"),
                (LABEL_KIND, "dlt"),
                (LABEL_LEVEL, "0"),
            ],
        );
        let refused = needed[2].check_owner(&theirs).err().map(|e| e.to_string());
        assert!(
            refused
                .as_deref()
                .is_some_and(|text| text.contains("belongs to topic \"orders.billing\"")),
            "{refused:?}"
        );
        let unlabelled = described("orders.billing.dlt", &[]);
        let refused = needed[2]
            .check_owner(&unlabelled)
            .err()
            .map(|e| e.to_string());
        assert!(
            refused
                .as_deref()
                .is_some_and(|text| text.contains("no strata.retry.* labels")),
            "{refused:?}"
        );
    }
}
