//! `GET /v1/topics`, `GET /v1/topics/{topic}` and `GET /v1/topics/{topic}/partitions`:
//! the user topics of this broker's metadata image, with their effective configs and
//! sources, and per partition its leader, epoch, replicas and ISR from the image and its
//! log start and high watermark from its leader — this broker's own log when it leads
//! the partition, else the leader's answer to `ListOffsets`, asked now (the group
//! coordinator's cache of partition ends, `node/groups_offsets.rs`). An offset the leader
//! could not give is `null`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use strata_proto::views::{ConfigView, PartitionView, TopicListingView, TopicView};

use super::{ok, serving, ApiFailure};
use crate::admin::AdminState;
use crate::controller::{ConfigValueSource, TopicConfig, TopicImage};
use crate::node::{GroupCoordinator, Node};

pub async fn list(State(state): State<Arc<AdminState>>) -> Result<Response, ApiFailure> {
    let (node, _) = serving(&state)?;
    let image = node.image();
    let listed: Vec<TopicListingView> = image
        .topics
        .values()
        .filter(|topic| !topic.is_internal())
        .map(|topic| TopicListingView {
            name: topic.name.clone(),
            partitions: topic.partitions.len(),
            replicas: topic.replication_factor(),
        })
        .collect();
    Ok(ok(&listed))
}

pub async fn describe(
    State(state): State<Arc<AdminState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiFailure> {
    let (node, groups) = serving(&state)?;
    let image = node.image();
    let topic = image
        .topic(&name)
        .ok_or_else(|| ApiFailure::unknown_topic(&name))?;
    let partitions = partition_views(&groups, topic).await;
    let effective = TopicConfig::effective(&topic.configs, node.defaults());
    let view = TopicView {
        name: topic.name.clone(),
        topic_id: topic.id.clone(),
        partition_count: partitions.len(),
        replication_factor: TopicView::replication_factor_of(&partitions),
        configs: effective
            .entries(topic.replication_factor())
            .into_iter()
            .map(|(key, value, source)| ConfigView {
                key,
                value,
                source: source_name(source).to_owned(),
            })
            .collect(),
        partitions,
    };
    Ok(ok(&view))
}

pub async fn partitions(
    State(state): State<Arc<AdminState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiFailure> {
    let (node, groups) = serving(&state)?;
    let topic = known_topic(&node, &name)?;
    Ok(ok(&partition_views(&groups, &topic).await))
}

/// The topic named `name` in this broker's image, or 404.
pub fn known_topic(node: &Node, name: &str) -> Result<TopicImage, ApiFailure> {
    node.image()
        .topic(name)
        .cloned()
        .ok_or_else(|| ApiFailure::unknown_topic(name))
}

/// Every partition of `topic`, with its ends asked of its leader.
async fn partition_views(groups: &Arc<GroupCoordinator>, topic: &TopicImage) -> Vec<PartitionView> {
    let keys: Vec<(String, i32)> = topic
        .partitions
        .keys()
        .map(|partition| (topic.name.clone(), *partition))
        .collect();
    let ends = groups.partition_ends(&keys).await;
    topic
        .partitions
        .iter()
        .map(|(partition, state)| {
            let known = ends
                .get(&(topic.name.clone(), *partition))
                .copied()
                .flatten();
            PartitionView {
                partition: *partition,
                leader: state.leader.map(|leader| leader.0),
                leader_epoch: state.leader_epoch,
                replicas: state.replicas.iter().map(|id| id.0).collect(),
                isr: state.isr.iter().map(|id| id.0).collect(),
                log_start_offset: known.map(|ends| ends.log_start_offset),
                high_watermark: known.map(|ends| ends.high_watermark),
            }
        })
        .collect()
}

/// The source as `strata topic describe` prints it.
fn source_name(source: ConfigValueSource) -> &'static str {
    match source {
        ConfigValueSource::Default => "DEFAULT",
        ConfigValueSource::Topic => "TOPIC",
        ConfigValueSource::Broker => "BROKER",
    }
}
