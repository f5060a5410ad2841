//! The `ClientApi` gRPC service: each method converts the request, makes one call into
//! [`Node`] (or its controller), and converts the answer. No logic lives here.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use strata_proto::api::v1::client_api_server::ClientApi;
use strata_proto::api::v1::{
    AlterConfigsRequest, AlterConfigsResponse, ConfigChange, CreatePartitionsRequest,
    CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, DescribeClusterRequest, DescribeClusterResponse, DescribeTopicsRequest,
    DescribeTopicsResponse, ElectLeadersRequest, ElectLeadersResponse, FetchRequest, FetchResponse,
    FetchSessionRequest, FetchedPartition, InitProducerIdRequest, InitProducerIdResponse,
    ListOffsetsRequest, ListOffsetsResponse, ListedOffset, MetadataRequest, MetadataResponse,
    OffsetSpec, ProduceRequest, ReassignPartitionsRequest, ReassignPartitionsResponse, TopicResult,
};
use strata_proto::types::{LeaderEpoch, Offset};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::produce::{self, ProduceInbound, ProduceStream};
use super::{cluster_api, connections, fetch_session, metadata, request_metrics, status, traffic};
use crate::controller::quorum::{ControllerRequest, ReplyBody};
use crate::controller::NewTopic;
use crate::node::{FetchSpec, Node, NodeError, OffsetQuery};

/// The gRPC front of one broker.
#[derive(Debug, Clone)]
pub struct ClientApiService {
    node: Arc<Node>,
}

impl ClientApiService {
    pub fn new(node: Arc<Node>) -> ClientApiService {
        ClientApiService { node }
    }

    /// Sends a request to the active controller; answered once this broker applied it.
    async fn submit(&self, request: ControllerRequest) -> Result<ReplyBody, NodeError> {
        Ok(self.node.submit(request).await?.body)
    }
}

fn topic_result(name: String, result: Result<(), NodeError>) -> TopicResult {
    TopicResult {
        name,
        error: Some(result.map_or_else(|error| status::to_wire(&error), |()| status::none())),
    }
}

#[tonic::async_trait]
impl ClientApi for ClientApiService {
    async fn metadata(
        &self,
        request: Request<MetadataRequest>,
    ) -> Result<Response<MetadataResponse>, Status> {
        let image = self.node.image();
        let listener = connections::listener_of(&request);
        Ok(Response::new(metadata::metadata(
            &image,
            &request.into_inner().topics,
            self.node.quorum().leader().unwrap_or(-1),
            listener,
        )))
    }

    async fn create_topics(
        &self,
        request: Request<CreateTopicsRequest>,
    ) -> Result<Response<CreateTopicsResponse>, Status> {
        let request = request.into_inner();
        let mut results = Vec::with_capacity(request.topics.len().min(1000));
        for spec in request.topics {
            let name = spec.name.clone();
            let new_topic = NewTopic {
                name: spec.name,
                partitions: (spec.partitions != 0).then_some(spec.partitions),
                replication_factor: (spec.replication_factor != 0)
                    .then_some(spec.replication_factor),
                configs: spec.configs.into_iter().collect::<BTreeMap<_, _>>(),
            };
            let result = self
                .submit(ControllerRequest::CreateTopic {
                    spec: new_topic,
                    internal: false,
                    validate_only: request.validate_only,
                })
                .await
                .map(drop);
            results.push(topic_result(name, result));
        }
        Ok(Response::new(CreateTopicsResponse { results }))
    }

    async fn delete_topics(
        &self,
        request: Request<DeleteTopicsRequest>,
    ) -> Result<Response<DeleteTopicsResponse>, Status> {
        let mut results = Vec::new();
        for name in request.into_inner().names {
            let result = self
                .submit(ControllerRequest::DeleteTopic { name: name.clone() })
                .await
                .map(drop);
            results.push(topic_result(name, result));
        }
        Ok(Response::new(DeleteTopicsResponse { results }))
    }

    async fn describe_topics(
        &self,
        request: Request<DescribeTopicsRequest>,
    ) -> Result<Response<DescribeTopicsResponse>, Status> {
        let topics = metadata::describe(&self.node, &request.into_inner().names);
        Ok(Response::new(DescribeTopicsResponse { topics }))
    }

    async fn alter_configs(
        &self,
        request: Request<AlterConfigsRequest>,
    ) -> Result<Response<AlterConfigsResponse>, Status> {
        let request = request.into_inner();
        let set: BTreeMap<String, String> = request.set.into_iter().collect();
        let result = self
            .submit(ControllerRequest::AlterConfigs {
                topic: request.topic,
                set,
                delete: request.delete,
                validate_only: request.validate_only,
            })
            .await
            .map(|body| match body {
                ReplyBody::ConfigChanges { changes } => changes,
                _ => Vec::new(),
            });
        let response = match result {
            Ok(changes) => AlterConfigsResponse {
                error: Some(status::none()),
                changes: changes
                    .into_iter()
                    .map(|change| ConfigChange {
                        key: change.key,
                        has_old_value: change.old.is_some(),
                        old_value: change.old.unwrap_or_default(),
                        has_new_value: change.new.is_some(),
                        new_value: change.new.unwrap_or_default(),
                    })
                    .collect(),
            },
            Err(error) => AlterConfigsResponse {
                error: Some(status::to_wire(&error)),
                changes: Vec::new(),
            },
        };
        Ok(Response::new(response))
    }

    async fn create_partitions(
        &self,
        request: Request<CreatePartitionsRequest>,
    ) -> Result<Response<CreatePartitionsResponse>, Status> {
        let request = request.into_inner();
        let result = self
            .submit(ControllerRequest::CreatePartitions {
                topic: request.topic,
                total_count: request.total_count,
                validate_only: request.validate_only,
            })
            .await
            .map(drop);
        let error = result.map_or_else(|error| status::to_wire(&error), |()| status::none());
        Ok(Response::new(CreatePartitionsResponse {
            error: Some(error),
        }))
    }

    type ProduceStream = ProduceStream;

    async fn produce(
        &self,
        request: Request<Streaming<ProduceRequest>>,
    ) -> Result<Response<Self::ProduceStream>, Status> {
        let inbound = request
            .into_inner()
            .map(|request| request.map(ProduceInbound::Request));
        Ok(Response::new(produce::serve(
            Arc::clone(&self.node),
            inbound,
        )))
    }

    async fn fetch(
        &self,
        request: Request<FetchRequest>,
    ) -> Result<Response<FetchResponse>, Status> {
        Ok(Response::new(
            fetch_response(&self.node, request.into_inner()).await,
        ))
    }

    type FetchStreamStream = tokio_stream::wrappers::ReceiverStream<Result<FetchResponse, Status>>;

    async fn fetch_stream(
        &self,
        request: Request<Streaming<FetchSessionRequest>>,
    ) -> Result<Response<Self::FetchStreamStream>, Status> {
        let (answers, receiver) = tokio::sync::mpsc::channel(1);
        tokio::spawn(fetch_session::run(
            Arc::clone(&self.node),
            request.into_inner(),
            answers,
            Ok,
        ));
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            receiver,
        )))
    }

    async fn list_offsets(
        &self,
        request: Request<ListOffsetsRequest>,
    ) -> Result<Response<ListOffsetsResponse>, Status> {
        let offsets = request
            .into_inner()
            .partitions
            .into_iter()
            .map(|partition| {
                let query = match OffsetSpec::try_from(partition.spec) {
                    Ok(OffsetSpec::Earliest) => Ok(OffsetQuery::Earliest),
                    Ok(OffsetSpec::Latest) => Ok(OffsetQuery::Latest),
                    Ok(OffsetSpec::Timestamp) => Ok(OffsetQuery::Timestamp(partition.timestamp_ms)),
                    Err(_) => Err(NodeError::InvalidRequest {
                        reason: format!("unknown offset spec {}", partition.spec),
                    }),
                };
                let result = query.and_then(|query| {
                    self.node
                        .list_offset(&partition.topic, partition.partition, query)
                });
                match result {
                    Ok(listed) => ListedOffset {
                        topic: partition.topic,
                        partition: partition.partition,
                        error: Some(status::none()),
                        offset: listed.offset.0,
                        timestamp_ms: listed.timestamp_ms,
                        leader_epoch: listed.leader_epoch.0,
                    },
                    Err(error) => ListedOffset {
                        topic: partition.topic,
                        partition: partition.partition,
                        error: Some(status::to_wire(&error)),
                        offset: -1,
                        timestamp_ms: -1,
                        leader_epoch: -1,
                    },
                }
            })
            .collect();
        Ok(Response::new(ListOffsetsResponse { offsets }))
    }

    async fn init_producer_id(
        &self,
        _request: Request<InitProducerIdRequest>,
    ) -> Result<Response<InitProducerIdResponse>, Status> {
        let result = self.node.init_producer_id().await;
        let response = match result {
            Ok((producer_id, producer_epoch)) => InitProducerIdResponse {
                error: Some(status::none()),
                producer_id,
                producer_epoch: i32::from(producer_epoch),
            },
            Err(error) => InitProducerIdResponse {
                error: Some(status::to_wire(&error)),
                producer_id: -1,
                producer_epoch: -1,
            },
        };
        Ok(Response::new(response))
    }

    async fn describe_cluster(
        &self,
        request: Request<DescribeClusterRequest>,
    ) -> Result<Response<DescribeClusterResponse>, Status> {
        let listener = connections::listener_of(&request);
        let response =
            cluster_api::describe_cluster(&self.node, request.into_inner(), listener).await;
        Ok(Response::new(response))
    }

    async fn elect_leaders(
        &self,
        request: Request<ElectLeadersRequest>,
    ) -> Result<Response<ElectLeadersResponse>, Status> {
        let response = cluster_api::elect_leaders(&self.node, request.into_inner()).await;
        Ok(Response::new(response))
    }

    async fn reassign_partitions(
        &self,
        request: Request<ReassignPartitionsRequest>,
    ) -> Result<Response<ReassignPartitionsResponse>, Status> {
        let response = cluster_api::reassign_partitions(&self.node, request.into_inner()).await;
        Ok(Response::new(response))
    }
}

/// Answers a fetch: the long poll in [`Node::fetch`], each partition's outcome converted.
/// Shared by the generated handler and the zero-copy fetch path ([`super::fast_path`]).
///
/// A partition named more than once is read once, at its first entry; its later entries
/// are answered `INVALID_REQUEST` without reading, so repeating one partition cannot
/// multiply what the broker reads and holds for one answer. The answer as a whole holds
/// at most the broker's `fetch_max_bytes` (plus the first batch, KIP-74): the node clamps
/// the request's `max_bytes` to it.
pub(crate) async fn fetch_response(node: &Arc<Node>, request: FetchRequest) -> FetchResponse {
    let started = std::time::Instant::now();
    let mut seen = HashSet::with_capacity(request.partitions.len().min(1024));
    let repeated: Vec<bool> = request
        .partitions
        .iter()
        .map(|partition| !seen.insert((partition.topic.as_str(), partition.partition)))
        .collect();
    let specs: Vec<FetchSpec> = request
        .partitions
        .iter()
        .zip(&repeated)
        .filter(|(_, repeated)| !**repeated)
        .map(|(partition, _)| FetchSpec {
            topic: partition.topic.clone(),
            partition: partition.partition,
            fetch_offset: Offset(partition.fetch_offset),
            max_bytes: partition.partition_max_bytes as usize,
            current_leader_epoch: (partition.current_leader_epoch >= 0)
                .then_some(LeaderEpoch(partition.current_leader_epoch)),
        })
        .collect();
    let results = node
        .fetch(
            specs,
            Duration::from_millis(u64::from(request.max_wait_ms)),
            request.min_bytes as usize,
            request.max_bytes as usize,
        )
        .await;
    let fetched_bytes = results
        .iter()
        .filter_map(|result| result.as_ref().ok())
        .map(|data| data.records.len())
        .sum();
    traffic::record(fetched_bytes);
    let mut results = results.into_iter();
    let partitions = request
        .partitions
        .into_iter()
        .zip(repeated)
        .map(|(partition, repeated)| {
            let result = if repeated {
                Err(NodeError::InvalidRequest {
                    reason: format!(
                        "{}-{} appears more than once in this fetch; it is answered at its \
                         first entry only",
                        partition.topic, partition.partition
                    ),
                })
            } else {
                results.next().unwrap_or_else(|| {
                    Err(NodeError::InvalidRequest {
                        reason: "the fetch returned fewer partitions than asked".to_owned(),
                    })
                })
            };
            fetched_partition(partition, result)
        })
        .collect::<Vec<_>>();
    request_metrics::fetched(&partitions, started);
    FetchResponse { partitions }
}

fn fetched_partition(
    partition: strata_proto::api::v1::FetchPartition,
    result: Result<crate::node::FetchedData, NodeError>,
) -> FetchedPartition {
    match result {
        Ok(data) => FetchedPartition {
            topic: partition.topic,
            partition: partition.partition,
            error: Some(status::none()),
            high_watermark: data.high_watermark.0,
            log_start_offset: data.log_start_offset.0,
            records: data.records,
            fetch_offset: partition.fetch_offset,
        },
        Err(error) => FetchedPartition {
            topic: partition.topic,
            partition: partition.partition,
            error: Some(status::to_wire(&error)),
            high_watermark: -1,
            log_start_offset: -1,
            records: bytes::Bytes::new(),
            fetch_offset: partition.fetch_offset,
        },
    }
}
