//! `__consumer_offsets` itself: its creation on the first `FindCoordinator` (through the
//! controller, as an internal topic: the `__` prefix is refused to users), its size, and
//! which broker coordinates a group (`docs/GROUPS.md`).

use super::groups::{validate_group_id, GroupCoordinator};
use super::NodeError;
use crate::controller::quorum::ControllerRequest;
use crate::controller::{ControllerError, Listener, MetadataImage, NewTopic};
use crate::group::records::{partition_for, OFFSETS_TOPIC};

/// Kafka's `offsets.topic.num.partitions`.
pub const OFFSETS_TOPIC_PARTITIONS_MAX_DEFAULT: usize = 50;
/// Partitions per live broker when `--offsets-topic-partitions` is not set.
pub const OFFSETS_TOPIC_PARTITIONS_PER_BROKER: usize = 10;
/// Kafka's `offsets.topic.segment.bytes`.
pub const OFFSETS_TOPIC_SEGMENT_BYTES: u64 = 100 << 20;

impl GroupCoordinator {
    /// Which broker coordinates `group_id`: its id and advertised address. Creates
    /// `__consumer_offsets` when it does not exist yet.
    pub async fn find_coordinator(&self, group_id: &str) -> Result<(i32, String), NodeError> {
        self.find_coordinator_for(group_id, Listener::Internal)
            .await
    }

    /// [`GroupCoordinator::find_coordinator`], with the coordinator's address for a client
    /// of `listener`.
    pub async fn find_coordinator_for(
        &self,
        group_id: &str,
        listener: Listener,
    ) -> Result<(i32, String), NodeError> {
        validate_group_id(group_id)?;
        if self.node.image().topic(OFFSETS_TOPIC).is_none() {
            self.create_offsets_topic().await?;
        }
        let image = self.node.image();
        let count = image
            .topic(OFFSETS_TOPIC)
            .map(|topic| topic.partition_count())
            .ok_or_else(|| NodeError::CoordinatorNotAvailable {
                reason: format!("{OFFSETS_TOPIC} is being created"),
            })?;
        let partition = partition_for(group_id, count);
        let leader = image
            .partition(OFFSETS_TOPIC, partition)
            .and_then(|state| state.leader)
            .ok_or_else(|| NodeError::CoordinatorNotAvailable {
                reason: format!("{OFFSETS_TOPIC}-{partition} has no leader right now"),
            })?;
        let broker = image
            .broker(leader)
            .filter(|broker| !broker.fenced)
            .ok_or_else(|| NodeError::CoordinatorNotAvailable {
                reason: format!(
                    "broker {}, the leader of {OFFSETS_TOPIC}-{partition}, is not live",
                    leader.0
                ),
            })?;
        Ok((leader.0, broker.address_for(listener).to_owned()))
    }

    /// Creates `__consumer_offsets` through the controller (see the module docs for its
    /// size); one creation at a time, and none when it exists meanwhile.
    async fn create_offsets_topic(&self) -> Result<(), NodeError> {
        let _creating = self.creating.lock().await;
        let image = self.node.image();
        if image.topic(OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        let (partitions, replication_factor) =
            offsets_topic_size(&image, self.settings.offsets_topic_partitions);
        let configs = [
            ("cleanup_policy".to_owned(), "compact".to_owned()),
            (
                "segment_bytes".to_owned(),
                OFFSETS_TOPIC_SEGMENT_BYTES.to_string(),
            ),
        ]
        .into_iter()
        .collect();
        let request = ControllerRequest::CreateTopic {
            spec: NewTopic {
                name: OFFSETS_TOPIC.to_owned(),
                partitions: Some(partitions),
                replication_factor: Some(replication_factor),
                configs,
            },
            internal: true,
            validate_only: false,
        };
        tracing::info!(
            partitions,
            replication_factor,
            "creating {OFFSETS_TOPIC} for the first group"
        );
        match self.node.submit(request).await {
            Ok(_) | Err(NodeError::Controller(ControllerError::TopicAlreadyExists { .. })) => {
                Ok(())
            }
            Err(error) => Err(NodeError::CoordinatorNotAvailable {
                reason: format!("creating {OFFSETS_TOPIC} failed: {error}"),
            }),
        }
    }
}

/// Partitions and replication factor of a new `__consumer_offsets`: `configured`, else
/// min(50, 10 × live brokers); RF min(3, live brokers).
pub fn offsets_topic_size(image: &MetadataImage, configured: Option<i32>) -> (i32, i32) {
    let live = image
        .brokers
        .values()
        .filter(|broker| !broker.fenced)
        .count()
        .max(1);
    let partitions = configured.unwrap_or_else(|| {
        let default =
            (OFFSETS_TOPIC_PARTITIONS_PER_BROKER * live).min(OFFSETS_TOPIC_PARTITIONS_MAX_DEFAULT);
        i32::try_from(default).unwrap_or(1)
    });
    let replication_factor = i32::try_from(live.min(3)).unwrap_or(1);
    (partitions, replication_factor)
}

#[cfg(test)]
mod tests {
    use strata_proto::types::BrokerId;

    use super::*;
    use crate::controller::BrokerInfo;

    fn image(live: i32, fenced: i32) -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in 1..=live + fenced {
            let info = BrokerInfo {
                id: BrokerId(id),
                address: format!("127.0.0.{id}:7070"),
                rack: None,
                incarnation: 1,
                fenced: id > live,
                external_address: None,
            };
            image.brokers.insert(BrokerId(id), info);
        }
        image
    }

    #[test]
    fn the_offsets_topic_has_ten_partitions_per_live_broker_up_to_fifty_and_rf_up_to_three() {
        assert_eq!(offsets_topic_size(&image(1, 0), None), (10, 1));
        assert_eq!(offsets_topic_size(&image(3, 0), None), (30, 3));
        assert_eq!(
            offsets_topic_size(&image(2, 1), None),
            (20, 2),
            "fenced brokers do not count"
        );
        assert_eq!(offsets_topic_size(&image(7, 0), None), (50, 3));
        assert_eq!(offsets_topic_size(&image(3, 0), Some(4)), (4, 3));
        assert_eq!(offsets_topic_size(&image(0, 0), None), (10, 1));
    }
}
