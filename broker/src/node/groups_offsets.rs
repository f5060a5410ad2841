//! The log start and high watermark of the partitions groups consume, as their
//! coordinator learns them: from this broker's own partitions when it leads them, else by
//! asking the leader (`ListOffsets`, earliest and latest, one request per leader). Values
//! are kept for [`CACHE_TTL`]: a commit at or below a fresh high watermark needs no round
//! trip, one above it asks again before it is refused (`INVALID_COMMIT_OFFSET`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_proto::api::v1::client_api_client::ClientApiClient;
use strata_proto::api::v1::{ErrorCode, ListOffsetsPartition, ListOffsetsRequest, OffsetSpec};
use strata_proto::types::BrokerId;
use tonic::transport::Channel;

use super::{Node, NodeError, OffsetQuery};

/// How long a learned high watermark is used without asking again.
pub const CACHE_TTL: Duration = Duration::from_secs(1);

/// How long one `ListOffsets` to another broker may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// A partition's ends as its leader reported them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionEnds {
    pub log_start_offset: i64,
    pub high_watermark: i64,
}

pub type TopicPartitionKey = (String, i32);

/// The cache and the connections to other brokers. See the module docs.
#[derive(Debug, Default)]
pub struct HighWatermarks {
    known: Mutex<HashMap<TopicPartitionKey, (PartitionEnds, Instant)>>,
    clients: Mutex<HashMap<String, ClientApiClient<Channel>>>,
}

impl HighWatermarks {
    /// The ends learned less than [`CACHE_TTL`] ago.
    pub fn fresh(&self, key: &TopicPartitionKey) -> Option<PartitionEnds> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known
            .get(key)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(ends, _)| *ends)
    }

    /// The ends last learned, however old.
    pub fn last_known(&self, key: &TopicPartitionKey) -> Option<PartitionEnds> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.get(key).map(|(ends, _)| *ends)
    }

    /// Asks the leaders of `partitions` for their ends now, and remembers the answers.
    pub async fn refresh(
        &self,
        node: &Arc<Node>,
        partitions: &[TopicPartitionKey],
    ) -> BTreeMap<TopicPartitionKey, Result<PartitionEnds, NodeError>> {
        let image = node.image();
        let me = node.config().node_id;
        let mut results = BTreeMap::new();
        let mut remote: BTreeMap<BrokerId, Vec<TopicPartitionKey>> = BTreeMap::new();
        for key in partitions {
            let (topic, partition) = key;
            let Some(state) = image.partition(topic, *partition) else {
                results.insert(
                    key.clone(),
                    Err(NodeError::UnknownTopicOrPartition {
                        topic: topic.clone(),
                        partition: *partition,
                    }),
                );
                continue;
            };
            match state.leader {
                Some(leader) if leader == me => {
                    results.insert(key.clone(), local_ends(node, topic, *partition));
                }
                Some(leader) => remote.entry(leader).or_default().push(key.clone()),
                None => {
                    results.insert(
                        key.clone(),
                        Err(NodeError::NotLeader {
                            topic: topic.clone(),
                            partition: *partition,
                            leader: None,
                        }),
                    );
                }
            }
        }
        for (leader, keys) in remote {
            let address = image.broker(leader).map(|broker| broker.address.clone());
            let mut answers = match address {
                Some(address) => self.ask(node, &address, &keys).await,
                None => Err(format!("broker {} is not registered", leader.0)),
            };
            for key in keys {
                let result = match &mut answers {
                    Ok(answers) => answers.remove(&key).unwrap_or_else(|| {
                        Err(unavailable(&key, "the leader did not answer for it"))
                    }),
                    Err(reason) => Err(unavailable(&key, reason)),
                };
                results.insert(key, result);
            }
        }
        let now = Instant::now();
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        for (key, result) in &results {
            if let Ok(ends) = result {
                known.insert(key.clone(), (*ends, now));
            }
        }
        results
    }

    /// One `ListOffsets` (earliest and latest of each partition) to the broker at
    /// `address`.
    async fn ask(
        &self,
        node: &Arc<Node>,
        address: &str,
        keys: &[TopicPartitionKey],
    ) -> Result<BTreeMap<TopicPartitionKey, Result<PartitionEnds, NodeError>>, String> {
        let mut client = self.client(node, address)?;
        let partitions = keys
            .iter()
            .flat_map(|(topic, partition)| {
                [OffsetSpec::Earliest, OffsetSpec::Latest].map(|spec| ListOffsetsPartition {
                    topic: topic.clone(),
                    partition: *partition,
                    spec: spec.into(),
                    timestamp_ms: 0,
                })
            })
            .collect();
        let response = tokio::time::timeout(
            ASK_TIMEOUT,
            client.list_offsets(ListOffsetsRequest { partitions }),
        )
        .await
        .map_err(|_| format!("broker {address} did not answer within {ASK_TIMEOUT:?}"))?
        .map_err(|status| format!("broker {address} answered {}", status.message()))?
        .into_inner();
        let mut answers = BTreeMap::new();
        for pair in response.offsets.chunks(2) {
            let [earliest, latest] = pair else { continue };
            let key = (latest.topic.clone(), latest.partition);
            let failed = [earliest, latest]
                .into_iter()
                .filter_map(|listed| listed.error.as_ref())
                .find(|error| error.error_code() != ErrorCode::None);
            let result = match failed {
                None => Ok(PartitionEnds {
                    log_start_offset: earliest.offset,
                    high_watermark: latest.offset,
                }),
                Some(error) if error.error_code() == ErrorCode::UnknownTopicOrPartition => {
                    Err(NodeError::UnknownTopicOrPartition {
                        topic: key.0.clone(),
                        partition: key.1,
                    })
                }
                Some(error) => Err(unavailable(&key, &error.message)),
            };
            answers.insert(key, result);
        }
        Ok(answers)
    }

    fn client(&self, node: &Arc<Node>, address: &str) -> Result<ClientApiClient<Channel>, String> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get(address) {
            return Ok(client.clone());
        }
        let channel = crate::controller::quorum::network::channel(address, node.config().local_ip)?;
        let client = ClientApiClient::new(channel);
        clients.insert(address.to_owned(), client.clone());
        Ok(client)
    }
}

fn local_ends(node: &Node, topic: &str, partition: i32) -> Result<PartitionEnds, NodeError> {
    let earliest = node.list_offset(topic, partition, OffsetQuery::Earliest)?;
    let latest = node.list_offset(topic, partition, OffsetQuery::Latest)?;
    Ok(PartitionEnds {
        log_start_offset: earliest.offset.0,
        high_watermark: latest.offset.0,
    })
}

fn unavailable(key: &TopicPartitionKey, reason: &str) -> NodeError {
    NodeError::CoordinatorNotAvailable {
        reason: format!(
            "the high watermark of {}-{} is unknown: {reason}",
            key.0, key.1
        ),
    }
}
