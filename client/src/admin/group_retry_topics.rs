//! [`Admin::group_retry_topics`]: a consumer group's retry and dead-letter topics
//! (`docs/RETRY.md`), found by their `strata.retry.group` label, with how many records
//! each holds. What `strata group describe` shows under `RETRY TOPICS`.
//!
//! Only topics whose names end as the library names them (`.retry.<n>`, `.dlt`; a
//! shortened name keeps that suffix) are described, one call each; the label decides.
//! A record count is the sum over partitions of high watermark minus log start offset:
//! the records held now, retry records already handled included (a retry topic is not
//! emptied when its records are handled; retention removes them).

use super::{Admin, TopicDescription};
use crate::consumer::retry::topics::{LABEL_GROUP, LABEL_KIND, LABEL_LEVEL, LABEL_SOURCE};
use crate::error::{Error, ErrorCode};

/// One retry or dead-letter topic of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupRetryTopic {
    pub name: String,
    /// The topic whose failed records it holds (`strata.retry.source-topic`).
    pub source: String,
    /// `retry` or `dlt` (`strata.retry.kind`).
    pub kind: String,
    /// The retry level (`strata.retry.level`); `None` for a dead-letter topic.
    pub level: Option<u32>,
    pub partitions: usize,
    /// Records held: the sum of high watermark minus log start over its partitions.
    pub records: i64,
}

impl Admin {
    /// The retry and dead-letter topics whose `strata.retry.group` label is `group`,
    /// sorted by source topic, then retry levels in order, then the dead-letter topic.
    pub async fn group_retry_topics(&self, group: &str) -> Result<Vec<GroupRetryTopic>, Error> {
        let mut found = Vec::new();
        for topic in self.list_topics().await? {
            if !looks_like_retry_topic(&topic.name) {
                continue;
            }
            let description = match self.describe_topic(&topic.name).await {
                Ok(description) => description,
                // Deleted between the listing and the describe.
                Err(error) if error.code() == Some(ErrorCode::UnknownTopicOrPartition) => continue,
                Err(error) => return Err(error),
            };
            if let Some(retry_topic) = retry_topic_of(&description, group) {
                found.push(retry_topic);
            }
        }
        found.sort_by(|a, b| {
            let order = |topic: &GroupRetryTopic| (topic.level.is_none(), topic.level);
            (&a.source, order(a)).cmp(&(&b.source, order(b)))
        });
        Ok(found)
    }
}

fn looks_like_retry_topic(name: &str) -> bool {
    if name.ends_with(".dlt") {
        return true;
    }
    name.rsplit_once(".retry.")
        .is_some_and(|(_, level)| !level.is_empty() && level.bytes().all(|b| b.is_ascii_digit()))
}

/// `description` as a retry topic of `group`, when its labels say it is one.
fn retry_topic_of(description: &TopicDescription, group: &str) -> Option<GroupRetryTopic> {
    let label = |key: &str| {
        description
            .configs
            .iter()
            .find(|entry| entry.key == key)
            .map(|entry| entry.value.as_str())
    };
    if label(LABEL_GROUP) != Some(group) {
        return None;
    }
    let kind = label(LABEL_KIND)?;
    let level = match kind {
        "retry" => Some(label(LABEL_LEVEL)?.parse().ok()?),
        "dlt" => None,
        _ => return None,
    };
    Some(GroupRetryTopic {
        name: description.name.clone(),
        source: label(LABEL_SOURCE)?.to_owned(),
        kind: kind.to_owned(),
        level,
        partitions: description.partitions.len(),
        records: description
            .partitions
            .iter()
            .map(|partition| (partition.high_watermark - partition.log_start_offset).max(0))
            .sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{ConfigEntry, ConfigSource, PartitionDescription};

    fn described(name: &str, labels: &[(&str, &str)], held: &[(i64, i64)]) -> TopicDescription {
        TopicDescription {
            name: name.to_owned(),
            topic_id: String::new(),
            partitions: held
                .iter()
                .enumerate()
                .map(|(partition, (start, end))| PartitionDescription {
                    partition: i32::try_from(partition).unwrap_or(0),
                    leader: 1,
                    leader_epoch: 0,
                    replicas: vec![1],
                    isr: vec![1],
                    log_start_offset: *start,
                    high_watermark: *end,
                    log_end_offset: *end,
                })
                .collect(),
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
    fn only_topics_labelled_for_the_group_are_its_retry_topics() {
        let labels = [
            (LABEL_SOURCE, "orders"),
            (LABEL_GROUP, "billing"),
            (LABEL_KIND, "retry"),
            (LABEL_LEVEL, "1"),
        ];
        let retry = described("orders.billing.retry.1", &labels, &[(0, 4), (2, 3)]);
        let found = retry_topic_of(&retry, "billing");
        assert_eq!(found.as_ref().map(|topic| topic.records), Some(5));
        assert_eq!(found.as_ref().and_then(|topic| topic.level), Some(1));
        assert_eq!(retry_topic_of(&retry, "shipping"), None);
        let dlt = described(
            "orders.billing.dlt",
            &[
                (LABEL_SOURCE, "orders"),
                (LABEL_GROUP, "billing"),
                (LABEL_KIND, "dlt"),
                (LABEL_LEVEL, "0"),
            ],
            &[(0, 2)],
        );
        let found = retry_topic_of(&dlt, "billing");
        assert_eq!(found.as_ref().map(|topic| topic.kind.as_str()), Some("dlt"));
        assert_eq!(found.and_then(|topic| topic.level), None);
        let unlabelled = described("orders.billing.dlt", &[], &[(0, 2)]);
        assert_eq!(retry_topic_of(&unlabelled, "billing"), None);
        assert!(looks_like_retry_topic("a.b.retry.12"));
        assert!(looks_like_retry_topic("a.b.dlt"));
        assert!(!looks_like_retry_topic("a.b.retry.x"));
        assert!(!looks_like_retry_topic("orders"));
    }
}
