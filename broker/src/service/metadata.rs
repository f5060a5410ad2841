//! Metadata and describe answers, converted from the controller's [`MetadataImage`].
//!
//! A metadata answer names each broker at the address for the listener the request came
//! in on: a client of the external listener gets every broker's external address (the
//! internal one for a broker without an external listener), so it never needs to reach
//! the brokers' own network.

use strata_proto::api::v1::{
    BrokerInfo, ConfigEntry, ConfigSource, ErrorCode, MetadataResponse, PartitionMetadata,
    PartitionOffsets, TopicDescription, TopicMetadata,
};

use super::status;
use crate::controller::{Listener, MetadataImage, TopicConfig, TopicImage};
use crate::node::Node;

/// 32 hex characters → 16 bytes (empty if malformed).
fn topic_id_bytes(id: &str) -> Vec<u8> {
    (0..id.len() / 2)
        .filter_map(|i| {
            id.get(2 * i..2 * i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

fn topic_metadata(topic: &TopicImage) -> TopicMetadata {
    TopicMetadata {
        name: topic.name.clone(),
        topic_id: topic_id_bytes(&topic.id).into(),
        partitions: topic
            .partitions
            .iter()
            .map(|(partition, state)| PartitionMetadata {
                partition: *partition,
                leader: state.leader.map_or(-1, |leader| leader.0),
                leader_epoch: state.leader_epoch,
                replicas: state.replicas.iter().map(|id| id.0).collect(),
                isr: state.isr.iter().map(|id| id.0).collect(),
            })
            .collect(),
        error: Some(status::none()),
    }
}

fn unknown_topic(name: &str) -> TopicMetadata {
    TopicMetadata {
        name: name.to_owned(),
        error: Some(strata_proto::api::v1::Error::new(
            ErrorCode::UnknownTopicOrPartition,
            format!("unknown topic {name}"),
        )),
        ..TopicMetadata::default()
    }
}

/// Topics named in `names` (every user topic when empty), plus brokers (at their
/// addresses for `listener`) and ids. `controller_id` is the controller leader this broker
/// knows (-1 when none).
pub fn metadata(
    image: &MetadataImage,
    names: &[String],
    controller_id: i32,
    listener: Listener,
) -> MetadataResponse {
    let topics = if names.is_empty() {
        image
            .topics
            .values()
            .filter(|topic| !topic.is_internal())
            .map(topic_metadata)
            .collect()
    } else {
        names
            .iter()
            .map(|name| {
                image
                    .topic(name)
                    .map_or_else(|| unknown_topic(name), topic_metadata)
            })
            .collect()
    };
    MetadataResponse {
        cluster_id: image.cluster_id.clone().unwrap_or_default(),
        controller_id,
        brokers: image
            .brokers
            .values()
            .map(|broker| BrokerInfo {
                node_id: broker.id.0,
                address: broker.address_for(listener).to_owned(),
                rack: broker.rack.clone().unwrap_or_default(),
                fenced: broker.fenced,
                incarnation: broker.incarnation,
            })
            .collect(),
        topics,
        metadata_version: image.version,
    }
}

/// Metadata plus configs (with their source) and offsets, per named topic.
pub fn describe(node: &Node, names: &[String]) -> Vec<TopicDescription> {
    let image = node.image();
    let offsets = node.all_offsets();
    let me = node.config().node_id;
    let names: Vec<String> = if names.is_empty() {
        image
            .topics
            .values()
            .filter(|topic| !topic.is_internal())
            .map(|topic| topic.name.clone())
            .collect()
    } else {
        names.to_vec()
    };
    names
        .iter()
        .map(|name| {
            let Some(topic) = image.topic(name) else {
                return TopicDescription {
                    metadata: Some(unknown_topic(name)),
                    ..TopicDescription::default()
                };
            };
            let effective = TopicConfig::effective(&topic.configs, node.defaults());
            TopicDescription {
                metadata: Some(topic_metadata(topic)),
                configs: effective
                    .entries(topic.replication_factor())
                    .into_iter()
                    .map(|(key, value, source)| ConfigEntry {
                        key,
                        value,
                        source: config_source(source) as i32,
                    })
                    .collect(),
                // Only for the partitions this broker leads: another broker's log here
                // is absent (it would read as empty) or a stale copy. The client reads a
                // missing entry as "not reported" and asks the leader (ListOffsets).
                offsets: topic
                    .partitions
                    .iter()
                    .filter(|(_, state)| state.leader == Some(me))
                    .filter_map(|(partition, _)| {
                        let (start, high_watermark, end) =
                            *offsets.get(&(name.clone(), *partition))?;
                        Some(PartitionOffsets {
                            partition: *partition,
                            log_start_offset: start.0,
                            high_watermark: high_watermark.0,
                            log_end_offset: end.0,
                        })
                    })
                    .collect(),
            }
        })
        .collect()
}

fn config_source(source: crate::controller::ConfigValueSource) -> ConfigSource {
    match source {
        crate::controller::ConfigValueSource::Default => ConfigSource::Default,
        crate::controller::ConfigValueSource::Topic => ConfigSource::Topic,
        crate::controller::ConfigValueSource::Broker => ConfigSource::Broker,
    }
}
