//! [`Admin::dead_letter_topics`]: the dead-letter topics of the cluster, found by their
//! labels (`strata.retry.kind=dlt`, `docs/RETRY.md`), with their records counted by
//! `strata.error.type`.
//!
//! Counting reads each dead-letter topic from its log start to the end offsets seen when
//! the call began; records written meanwhile are not counted. The read is a consumer
//! without a group, so it commits nothing.

use std::collections::BTreeMap;

use tokio_stream::StreamExt;

use super::{Admin, OffsetSpec};
use crate::consumer::retry::topics::{LABEL_GROUP, LABEL_KIND, LABEL_SOURCE};
use crate::error::Error;
use crate::record::Offset;
use crate::retry_topics::headers::{header_text, ERROR_TYPE};

/// One dead-letter topic and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetterTopic {
    pub name: String,
    /// The topic whose records it holds (`strata.retry.source-topic`).
    pub source: String,
    /// The group that failed them (`strata.retry.group`).
    pub group: String,
    /// Records counted.
    pub records: u64,
    /// Records by `strata.error.type` (`-` for records without the header).
    pub by_error_type: BTreeMap<String, u64>,
}

impl Admin {
    /// The dead-letter topics, sorted by name; with `source`, only those of that topic.
    /// Each is read once to count its records by error type.
    pub async fn dead_letter_topics(
        &self,
        source: Option<&str>,
    ) -> Result<Vec<DeadLetterTopic>, Error> {
        let mut found = Vec::new();
        for topic in self.list_topics().await? {
            if !topic.name.ends_with(".dlt") {
                continue;
            }
            let description = self.describe_topic(&topic.name).await?;
            let label = |key: &str| {
                description
                    .configs
                    .iter()
                    .find(|entry| entry.key == key)
                    .map(|entry| entry.value.clone())
            };
            let (Some(kind), Some(owner), Some(group)) =
                (label(LABEL_KIND), label(LABEL_SOURCE), label(LABEL_GROUP))
            else {
                continue;
            };
            if kind != "dlt" || source.is_some_and(|source| source != owner) {
                continue;
            }
            let partitions = i32::try_from(description.partitions.len()).unwrap_or(0);
            let by_error_type = self.count_by_error_type(&topic.name, partitions).await?;
            found.push(DeadLetterTopic {
                name: topic.name,
                source: owner,
                group,
                records: by_error_type.values().sum(),
                by_error_type,
            });
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }

    async fn count_by_error_type(
        &self,
        topic: &str,
        partitions: i32,
    ) -> Result<BTreeMap<String, u64>, Error> {
        let mut counts = BTreeMap::new();
        let mut ends = Vec::new();
        for partition in 0..partitions {
            let (start, _) = self
                .list_offsets(topic, partition, OffsetSpec::Earliest)
                .await?;
            let (end, _) = self
                .list_offsets(topic, partition, OffsetSpec::Latest)
                .await?;
            if end > start {
                ends.push((partition, end));
            }
        }
        if ends.is_empty() {
            return Ok(counts);
        }
        let mut consumer = self
            .client
            .consumer()
            .assign(ends.iter().map(|(partition, _)| (topic, *partition)))
            .start(Offset::Earliest)
            .build()
            .await?;
        let done = |consumer: &crate::Consumer| {
            ends.iter().all(|(partition, end)| {
                consumer
                    .position(topic, *partition)
                    .is_some_and(|position| position >= *end)
            })
        };
        let wait = self.client.request_timeout();
        while !done(&consumer) {
            let next = tokio::time::timeout(wait, consumer.next()).await;
            let Ok(Some(record)) = next else {
                return Err(Error::Timeout {
                    operation: "reading a dead-letter topic",
                    after: wait,
                    outcome: crate::error::WriteOutcome::NotApplied,
                    last_error: None,
                });
            };
            let record = record?;
            let before_end = ends
                .iter()
                .any(|(partition, end)| *partition == record.partition && record.offset < *end);
            if before_end {
                let kind = header_text(&record, ERROR_TYPE).unwrap_or("-").to_owned();
                *counts.entry(kind).or_insert(0) += 1;
            }
        }
        consumer.close().await?;
        Ok(counts)
    }
}
