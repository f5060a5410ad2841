//! [`Admin`]: topic administration and cluster information, one method per client API
//! call. Every method is a single request to any reachable broker (the controller
//! answers admin calls in a one-node cluster), except `list_offsets`, which goes to the
//! partition's leader.
//!
//! The cluster calls (describe the quorum, elect leaders, reassign partitions) live in
//! `cluster.rs`, their values in `cluster_types.rs`. The consumer-group calls (list,
//! describe, delete groups; read and change committed offsets) live in `groups.rs`, their
//! values in `group_types.rs`, and reach each group's coordinator through `coordinator.rs`.
//! `dead_letters.rs` lists the dead-letter topics of groups with a retry policy, reading
//! each to count its records by error type; `group_retry_topics.rs` lists one group's
//! retry and dead-letter topics with their record counts.
//!
//! Per-item results (`create_topics`, `delete_topics`) come back as `(name, Result)`
//! pairs: one bad name does not hide the others' outcome. After a change the client's
//! metadata cache is refreshed for the topics involved.

mod cluster;
mod cluster_types;
mod dead_letters;
mod group_retry_topics;
mod group_types;
mod groups;
mod types;

use std::collections::HashMap;

use strata_proto::api::v1 as wire;

pub use cluster_types::{
    BrokerDescription, ClusterDescription, ControllerVoter, ElectionResult, ElectionSelection,
    PartitionReassignment, ReassignmentResult,
};
pub use dead_letters::DeadLetterTopic;
pub use group_retry_topics::GroupRetryTopic;
pub use group_types::{
    CommittedOffset, GroupDescription, GroupListing, GroupListings, GroupMemberDescription,
    GroupOffset, GroupOffsetResult, GroupPartitionOffset, GroupState, ListGroupsFailure,
};
pub use types::{
    BrokerNode, ClusterInfo, ConfigChange, ConfigEntry, ConfigSource, NewTopic, OffsetSpec,
    PartitionDescription, TopicDescription, TopicInfo,
};

use crate::client::Client;
use crate::connection::request;
use crate::consumer::offsets::list_offsets;
use crate::error::{Error, ErrorCode};

/// Topic administration and cluster information; from [`Client::admin`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
}

impl Admin {
    pub(crate) fn new(client: Client) -> Admin {
        Admin { client }
    }

    /// Creates one topic.
    pub async fn create_topic(&self, topic: NewTopic) -> Result<(), Error> {
        let name = topic.name.clone();
        let results = self.create_topics(vec![topic], false).await?;
        single_result(results, &name)
    }

    /// Creates topics; with `validate_only` the broker only checks them.
    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Result<Vec<(String, Result<(), Error>)>, Error> {
        let message = wire::CreateTopicsRequest {
            topics: topics.iter().map(NewTopic::to_wire).collect(),
            validate_only,
        };
        let timeout = self.client.request_timeout();
        let response = self
            .client
            .call_any("create topics", |mut broker| {
                let message = message.clone();
                async move { broker.create_topics(request(message, timeout)).await }
            })
            .await?;
        let names: Vec<String> = topics.into_iter().map(|topic| topic.name).collect();
        let results = per_topic(&names, &response.results);
        if !validate_only {
            self.refresh(&names).await;
        }
        Ok(results)
    }

    /// Deletes one topic.
    pub async fn delete_topic(&self, name: &str) -> Result<(), Error> {
        let results = self.delete_topics(vec![name.to_owned()]).await?;
        single_result(results, name)
    }

    /// Deletes topics.
    pub async fn delete_topics(
        &self,
        names: Vec<String>,
    ) -> Result<Vec<(String, Result<(), Error>)>, Error> {
        let message = wire::DeleteTopicsRequest {
            names: names.clone(),
        };
        let timeout = self.client.request_timeout();
        let response = self
            .client
            .call_any("delete topics", |mut broker| {
                let message = message.clone();
                async move { broker.delete_topics(request(message, timeout)).await }
            })
            .await?;
        let results = per_topic(&names, &response.results);
        self.refresh(&names).await;
        Ok(results)
    }

    /// Every topic with its partition count and replication factor, sorted by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>, Error> {
        let response = self.client.refresh_metadata(&[]).await?;
        let mut topics: Vec<TopicInfo> = response
            .topics
            .iter()
            .filter(|topic| topic.error.as_ref().is_none_or(wire::Error::is_none))
            .map(|topic| TopicInfo {
                name: topic.name.clone(),
                partitions: topic.partitions.len(),
                replication_factor: topic
                    .partitions
                    .iter()
                    .map(|partition| partition.replicas.len())
                    .max()
                    .unwrap_or(0),
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// Partitions (leader, epoch, replicas, ISR, offsets) and configs of one topic.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription, Error> {
        let mut description = self.describe_topic_without_offsets(name).await?;
        self.fill_offsets_from_leaders(&mut description).await;
        Ok(description)
    }

    /// [`Admin::describe_topic`] with the offsets the controller's answer carries (or
    /// -1), without asking the partition leaders: one call, for the configs.
    pub(crate) async fn describe_topic_without_offsets(
        &self,
        name: &str,
    ) -> Result<TopicDescription, Error> {
        let message = wire::DescribeTopicsRequest {
            names: vec![name.to_owned()],
        };
        let timeout = self.client.request_timeout();
        let response = self
            .client
            .call_any("describe topics", |mut broker| {
                let message = message.clone();
                async move { broker.describe_topics(request(message, timeout)).await }
            })
            .await?;
        let described = response
            .topics
            .iter()
            .find(|topic| {
                topic
                    .metadata
                    .as_ref()
                    .is_some_and(|meta| meta.name == name)
            })
            .or_else(|| response.topics.first())
            .ok_or_else(|| unknown_topic(name))?;
        let metadata = described
            .metadata
            .as_ref()
            .ok_or_else(|| unknown_topic(name))?;
        if let Some(error) = Error::from_wire(metadata.error.as_ref()) {
            return Err(error);
        }
        Ok(describe(metadata, described))
    }

    /// Sets and deletes topic configs; with `validate_only` nothing changes but the
    /// answer says what would.
    pub async fn alter_config<S, K, V, D>(
        &self,
        topic: &str,
        set: S,
        delete: D,
        validate_only: bool,
    ) -> Result<Vec<ConfigChange>, Error>
    where
        S: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
        D: IntoIterator,
        D::Item: Into<String>,
    {
        let message = wire::AlterConfigsRequest {
            topic: topic.to_owned(),
            set: set
                .into_iter()
                .map(|(key, value)| (key.into(), value.into()))
                .collect::<HashMap<String, String>>(),
            delete: delete.into_iter().map(Into::into).collect(),
            validate_only,
        };
        let timeout = self.client.request_timeout();
        let response = self
            .client
            .call_any("alter configs", |mut broker| {
                let message = message.clone();
                async move { broker.alter_configs(request(message, timeout)).await }
            })
            .await?;
        if let Some(error) = Error::from_wire(response.error.as_ref()) {
            return Err(error);
        }
        Ok(response
            .changes
            .iter()
            .map(ConfigChange::from_wire)
            .collect())
    }

    /// Raises `topic` to `total` partitions. Keyed records of existing keys may move.
    pub async fn create_partitions(&self, topic: &str, total: i32) -> Result<(), Error> {
        let message = wire::CreatePartitionsRequest {
            topic: topic.to_owned(),
            total_count: total,
            validate_only: false,
        };
        let timeout = self.client.request_timeout();
        let response = self
            .client
            .call_any("create partitions", |mut broker| {
                let message = message.clone();
                async move { broker.create_partitions(request(message, timeout)).await }
            })
            .await?;
        if let Some(error) = Error::from_wire(response.error.as_ref()) {
            return Err(error);
        }
        self.refresh(&[topic.to_owned()]).await;
        Ok(())
    }

    /// The offset for `spec` on `topic/partition`, and the timestamp the broker reports
    /// with it (-1 when not applicable). `Timestamp` with no such record gives offset -1.
    pub async fn list_offsets(
        &self,
        topic: &str,
        partition: i32,
        spec: OffsetSpec,
    ) -> Result<(i64, i64), Error> {
        let (wire_spec, timestamp_ms) = match spec {
            OffsetSpec::Earliest => (wire::OffsetSpec::Earliest, 0),
            OffsetSpec::Latest => (wire::OffsetSpec::Latest, 0),
            OffsetSpec::Timestamp(timestamp_ms) => (wire::OffsetSpec::Timestamp, timestamp_ms),
        };
        if self.client.metadata().partition_count(topic).is_none() {
            self.refresh(&[topic.to_owned()]).await;
        }
        let partitions = [(topic.to_owned(), partition)];
        let mut listed = list_offsets(&self.client, &partitions, wire_spec, timestamp_ms).await?;
        match listed.pop() {
            Some(Ok(offset)) => Ok((offset.offset, offset.timestamp_ms)),
            Some(Err(error)) => Err(error),
            None => Err(unknown_topic(topic)),
        }
    }

    /// Cluster id, controller, brokers and the number of topics.
    pub async fn cluster_info(&self) -> Result<ClusterInfo, Error> {
        let response = self.client.refresh_metadata(&[]).await?;
        Ok(ClusterInfo {
            cluster_id: response.cluster_id,
            controller_id: response.controller_id,
            brokers: self.client.metadata().brokers(),
            topic_count: response
                .topics
                .iter()
                .filter(|topic| topic.error.as_ref().is_none_or(wire::Error::is_none))
                .count(),
        })
    }

    /// A broker reports offsets only for the partitions it leads; the others' log start
    /// and high watermark are asked of their leaders (ListOffsets). Best effort: what
    /// cannot be had stays -1 (shown as unknown), and the log end offset, which only the
    /// leader's describe reports, stays -1.
    async fn fill_offsets_from_leaders(&self, description: &mut TopicDescription) {
        let missing: Vec<(String, i32)> = description
            .partitions
            .iter()
            .filter(|partition| partition.high_watermark < 0 && partition.leader >= 0)
            .map(|partition| (description.name.clone(), partition.partition))
            .collect();
        if missing.is_empty() {
            return;
        }
        let earliest = list_offsets(&self.client, &missing, wire::OffsetSpec::Earliest, 0).await;
        let latest = list_offsets(&self.client, &missing, wire::OffsetSpec::Latest, 0).await;
        let (Ok(earliest), Ok(latest)) = (earliest, latest) else {
            return;
        };
        for (((_, number), start), end) in missing.iter().zip(earliest).zip(latest) {
            let Some(partition) = description
                .partitions
                .iter_mut()
                .find(|partition| partition.partition == *number)
            else {
                continue;
            };
            if let Ok(start) = start {
                partition.log_start_offset = start.offset;
            }
            if let Ok(end) = end {
                partition.high_watermark = end.offset;
            }
        }
    }

    /// Best effort: a failed refresh only means the cache catches up later.
    async fn refresh(&self, topics: &[String]) {
        if let Err(error) = self.client.refresh_metadata(topics).await {
            tracing::debug!(%error, "metadata refresh after an admin call failed");
        }
    }
}

fn describe(
    metadata: &wire::TopicMetadata,
    described: &wire::TopicDescription,
) -> TopicDescription {
    let mut partitions: Vec<PartitionDescription> = metadata
        .partitions
        .iter()
        .map(|partition| {
            let offsets = described
                .offsets
                .iter()
                .find(|offsets| offsets.partition == partition.partition);
            PartitionDescription {
                partition: partition.partition,
                leader: partition.leader,
                leader_epoch: partition.leader_epoch,
                replicas: partition.replicas.clone(),
                isr: partition.isr.clone(),
                log_start_offset: offsets.map_or(-1, |offsets| offsets.log_start_offset),
                high_watermark: offsets.map_or(-1, |offsets| offsets.high_watermark),
                log_end_offset: offsets.map_or(-1, |offsets| offsets.log_end_offset),
            }
        })
        .collect();
    partitions.sort_by_key(|partition| partition.partition);
    let mut configs: Vec<ConfigEntry> = described
        .configs
        .iter()
        .map(|entry| ConfigEntry {
            key: entry.key.clone(),
            value: entry.value.clone(),
            source: ConfigSource::from_wire(entry.source),
        })
        .collect();
    configs.sort_by(|a, b| a.key.cmp(&b.key));
    TopicDescription {
        name: metadata.name.clone(),
        topic_id: types::hex(&metadata.topic_id),
        partitions,
        configs,
    }
}

/// Matches per-topic results to the names asked for; a name without a result is an error.
fn per_topic(names: &[String], results: &[wire::TopicResult]) -> Vec<(String, Result<(), Error>)> {
    names
        .iter()
        .map(|name| {
            let result = match results.iter().find(|result| &result.name == name) {
                None => Err(Error::broker(
                    ErrorCode::UnknownServerError,
                    format!("the broker sent no result for topic {name}"),
                )),
                Some(result) => match Error::from_wire(result.error.as_ref()) {
                    Some(error) => Err(error),
                    None => Ok(()),
                },
            };
            (name.clone(), result)
        })
        .collect()
}

fn single_result(results: Vec<(String, Result<(), Error>)>, name: &str) -> Result<(), Error> {
    results
        .into_iter()
        .next()
        .map_or_else(|| Err(unknown_topic(name)), |(_, result)| result)
}

fn unknown_topic(name: &str) -> Error {
    Error::Broker {
        code: ErrorCode::UnknownTopicOrPartition,
        message: format!("topic {name} does not exist"),
        retriable: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_failed_topic_results_are_errors() {
        let names = vec!["a".to_owned(), "b/x".to_owned(), "c".to_owned()];
        let results = vec![
            wire::TopicResult {
                name: "a".into(),
                error: None,
            },
            wire::TopicResult {
                name: "b/x".into(),
                error: Some(wire::Error::new(ErrorCode::InvalidTopic, "bad name")),
            },
        ];
        let matched = per_topic(&names, &results);
        assert!(matched[0].1.is_ok());
        let b = matched[1].1.as_ref().err().map(Error::code_name);
        assert_eq!(b, Some("INVALID_TOPIC"));
        assert!(matched[2].1.is_err());
    }
}
