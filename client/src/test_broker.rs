//! An in-memory, in-process stand-in for a one-node broker, for the client's own tests:
//! enough of the client API to produce, deduplicate, fetch and list offsets, plus fault
//! injection (error answers, lost answers, a killed stream, and a pause that holds every
//! produce request where it is, as a SIGSTOPped broker does). Not a model of the real
//! broker's storage; the integration tests in `tests/` run the real one.
//!
//! The cluster calls (`DescribeCluster`, `ElectLeaders`, `ReassignPartitions`) answer from
//! [`ControllerModel`]: three canned brokers (1 is this one, 2 is live, 3 is fenced), a
//! three-voter quorum led by 1, and a replica assignment per partition that elections and
//! reassignments change by the controller's rules (`broker/src/controller/election.rs`).
//!
//! Deduplication follows the rule the real broker implements: per (producer id,
//! partition), a batch whose base sequence is the next expected one is appended; one that
//! repeats one of its last 5 appended batches is answered with that batch's original
//! offset; anything else is `OUT_OF_ORDER_SEQUENCE`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use strata_proto::api::v1 as wire;
use strata_proto::api::v1::client_api_server::{ClientApi, ClientApiServer};
use strata_proto::record::{check_stored_batch, set_base_offset};
use strata_proto::types::Offset as WireOffset;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

mod cluster;

use cluster::canned_brokers;
pub(crate) use cluster::{Assignment, ControllerModel};

/// Batches remembered per producer for deduplication, as the real broker keeps them
/// (Kafka's 5): a retry of an older one is `OUT_OF_ORDER_SEQUENCE`.
const BATCHES_KEPT: usize = 5;

/// What to do to the next produce requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answer with this error without appending.
    Answer(wire::ErrorCode),
    /// Answer with this error without appending, but only after the stream's next
    /// request has been answered: the real broker answers a request it refused before
    /// the write from a task of its own, which may run after the next request's.
    AnswerLate(wire::ErrorCode),
    /// Append, but never answer (a lost response).
    Silence,
    /// Append, answer nothing and end the stream with this status code.
    KillStream(tonic::Code),
    /// Fail the next fetch call with `UNAVAILABLE` (produce ignores it).
    FailFetch,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) topics: HashMap<String, Vec<PartitionLog>>,
    pub(crate) faults: VecDeque<Fault>,
    pub(crate) produce_requests: usize,
    /// Produce requests read from their streams, processed or held by a pause.
    pub(crate) produce_requests_received: usize,
    /// Every produce request as read: (stream number, partition, base sequence).
    pub(crate) produce_log: Vec<(usize, i32, i32)>,
    produce_streams: usize,
    /// `FetchStream` calls started, and whether they are refused as `UNIMPLEMENTED` (as
    /// a broker from before fetch sessions would).
    pub(crate) fetch_streams: usize,
    pub(crate) fetch_streams_unimplemented: bool,
    /// Unary `Fetch` calls answered.
    pub(crate) unary_fetches: usize,
    next_producer_id: i64,
    pub(crate) controller: ControllerModel,
    /// What metadata answers say about brokers and leaders, once
    /// [`TestBroker::move_leadership`] changed it; `None`: this broker (node 1) leads all.
    leadership: Option<Leadership>,
}

/// Brokers and the leader of every partition, as two test brokers both report them after
/// leadership moved from one to the other.
#[derive(Debug, Clone)]
struct Leadership {
    brokers: Vec<(i32, String)>,
    leader: i32,
    metadata_version: i64,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct PartitionLog {
    /// (base offset, record count, stamped batch).
    pub(crate) batches: Vec<(i64, i64, Bytes)>,
    pub(crate) end_offset: i64,
    /// Producer id → (last sequence appended, (base sequence, base offset) of its last
    /// [`BATCHES_KEPT`] batches, oldest first).
    producers: HashMap<i64, (i32, VecDeque<(i32, i64)>)>,
}

#[derive(Debug, Clone)]
pub(crate) struct TestBroker {
    pub(crate) state: Arc<Mutex<State>>,
    pub(crate) address: String,
    /// While `true`, produce requests wait in their streams unprocessed.
    paused: Arc<tokio::sync::watch::Sender<bool>>,
}

impl TestBroker {
    /// Starts a broker on a free port with `topics` (name, partitions).
    pub(crate) async fn start(topics: &[(&str, usize)]) -> TestBroker {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        let mut state = State::default();
        state.controller.brokers = canned_brokers(&address.to_string());
        for (name, partitions) in topics {
            state.topics.insert(
                (*name).to_owned(),
                vec![PartitionLog::default(); *partitions],
            );
        }
        let broker = TestBroker {
            state: Arc::new(Mutex::new(state)),
            address: address.to_string(),
            paused: Arc::new(tokio::sync::watch::Sender::new(false)),
        };
        let service = Service {
            state: broker.state.clone(),
            address: broker.address.clone(),
            paused: broker.paused.clone(),
        };
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(ClientApiServer::new(service))
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        broker
    }

    /// Holds (`true`) or releases every produce request before it is processed. Released
    /// streams then race each other, as a resumed broker's connections do.
    pub(crate) fn pause(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    /// Sets the replicas, leader and ISR the cluster calls see for `topic/partition`.
    pub(crate) fn assign(&self, topic: &str, partition: i32, assignment: Assignment) {
        self.state
            .lock()
            .unwrap()
            .controller
            .assignments
            .insert((topic.to_owned(), partition), assignment);
    }

    /// From now on both brokers answer metadata requests with `to` (node 2) as the
    /// leader of every partition and `from` as node 1, in a newer metadata version.
    pub(crate) fn move_leadership(from: &TestBroker, to: &TestBroker) {
        let leadership = Leadership {
            brokers: vec![(1, from.address.clone()), (2, to.address.clone())],
            leader: 2,
            metadata_version: 2,
        };
        for broker in [from, to] {
            broker.state.lock().unwrap().leadership = Some(leadership.clone());
        }
    }

    pub(crate) fn inject(&self, faults: &[Fault]) {
        self.state
            .lock()
            .unwrap()
            .faults
            .extend(faults.iter().copied());
    }

    /// The values stored in `topic/partition`, in offset order.
    pub(crate) fn values(&self, topic: &str, partition: usize) -> Vec<String> {
        let state = self.state.lock().unwrap();
        let log = &state.topics[topic][partition];
        log.batches
            .iter()
            .flat_map(|(_, _, batch)| {
                let decoded =
                    strata_proto::record::decode_batch(batch, &Default::default()).unwrap();
                decoded
                    .records
                    .into_iter()
                    .map(|record| String::from_utf8(record.value.unwrap().to_vec()).unwrap())
            })
            .collect()
    }
}

#[derive(Clone)]
struct Service {
    state: Arc<Mutex<State>>,
    address: String,
    paused: Arc<tokio::sync::watch::Sender<bool>>,
}

fn ok() -> Option<wire::Error> {
    None
}

fn error(code: wire::ErrorCode) -> Option<wire::Error> {
    Some(wire::Error::new(
        code,
        format!("test broker says {}", code.as_str_name()),
    ))
}

impl State {
    fn produce(&mut self, request: &wire::ProduceRequest) -> wire::ProduceResponse {
        let mut answer = wire::ProduceResponse {
            request_id: request.request_id,
            error: ok(),
            base_offset: -1,
            log_append_time_ms: -1,
            log_start_offset: 0,
        };
        let Some(log) = self
            .topics
            .get_mut(&request.topic)
            .and_then(|partitions| partitions.get_mut(request.partition as usize))
        else {
            answer.error = error(wire::ErrorCode::UnknownTopicOrPartition);
            return answer;
        };
        let header = match check_stored_batch(&request.records, usize::MAX) {
            Ok(header) => header,
            Err(_) => {
                answer.error = error(wire::ErrorCode::CorruptMessage);
                return answer;
            }
        };
        let count = i64::from(header.record_count);
        if header.producer_id >= 0 {
            let (last, recent) = log
                .producers
                .entry(header.producer_id)
                .or_insert_with(|| (-1, VecDeque::new()));
            if let Some((_, offset)) = recent
                .iter()
                .find(|(sequence, _)| *sequence == header.base_sequence)
            {
                answer.base_offset = *offset;
                return answer;
            }
            if header.base_sequence != *last + 1 {
                answer.error = error(wire::ErrorCode::OutOfOrderSequence);
                return answer;
            }
            *last = header.base_sequence + header.record_count - 1;
            recent.push_back((header.base_sequence, log.end_offset));
            if recent.len() > BATCHES_KEPT {
                recent.pop_front();
            }
        }
        let mut stamped = request.records.to_vec();
        set_base_offset(&mut stamped, WireOffset(log.end_offset));
        log.batches
            .push((log.end_offset, count, Bytes::from(stamped)));
        answer.base_offset = log.end_offset;
        log.end_offset += count;
        answer
    }
}

#[tonic::async_trait]
impl ClientApi for Service {
    async fn metadata(
        &self,
        _request: Request<wire::MetadataRequest>,
    ) -> Result<Response<wire::MetadataResponse>, Status> {
        let state = self.state.lock().unwrap();
        let leadership = state.leadership.clone().unwrap_or_else(|| Leadership {
            brokers: vec![(1, self.address.clone())],
            leader: 1,
            metadata_version: 1,
        });
        let topics = state
            .topics
            .iter()
            .map(|(name, partitions)| wire::TopicMetadata {
                name: name.clone(),
                topic_id: Bytes::from_static(&[7; 16]),
                partitions: (0..partitions.len())
                    .map(|partition| wire::PartitionMetadata {
                        partition: partition as i32,
                        leader: leadership.leader,
                        leader_epoch: leadership.leader - 1,
                        replicas: vec![leadership.leader],
                        isr: vec![leadership.leader],
                    })
                    .collect(),
                error: ok(),
            })
            .collect();
        let brokers = leadership
            .brokers
            .iter()
            .map(|(node_id, address)| wire::BrokerInfo {
                node_id: *node_id,
                address: address.clone(),
                rack: String::new(),
                fenced: false,
                incarnation: 1,
            })
            .collect();
        Ok(Response::new(wire::MetadataResponse {
            cluster_id: "test-cluster".into(),
            controller_id: 1,
            brokers,
            topics,
            metadata_version: leadership.metadata_version,
        }))
    }

    async fn create_topics(
        &self,
        request: Request<wire::CreateTopicsRequest>,
    ) -> Result<Response<wire::CreateTopicsResponse>, Status> {
        let mut state = self.state.lock().unwrap();
        let results = request
            .into_inner()
            .topics
            .into_iter()
            .map(|spec| {
                let error = if state.topics.contains_key(&spec.name) {
                    error(wire::ErrorCode::TopicAlreadyExists)
                } else {
                    let partitions = spec.partitions.max(1) as usize;
                    state
                        .topics
                        .insert(spec.name.clone(), vec![PartitionLog::default(); partitions]);
                    ok()
                };
                wire::TopicResult {
                    name: spec.name,
                    error,
                }
            })
            .collect();
        Ok(Response::new(wire::CreateTopicsResponse { results }))
    }

    async fn delete_topics(
        &self,
        _request: Request<wire::DeleteTopicsRequest>,
    ) -> Result<Response<wire::DeleteTopicsResponse>, Status> {
        Err(Status::unimplemented("test broker"))
    }

    async fn describe_topics(
        &self,
        _request: Request<wire::DescribeTopicsRequest>,
    ) -> Result<Response<wire::DescribeTopicsResponse>, Status> {
        Err(Status::unimplemented("test broker"))
    }

    async fn alter_configs(
        &self,
        _request: Request<wire::AlterConfigsRequest>,
    ) -> Result<Response<wire::AlterConfigsResponse>, Status> {
        Err(Status::unimplemented("test broker"))
    }

    async fn create_partitions(
        &self,
        _request: Request<wire::CreatePartitionsRequest>,
    ) -> Result<Response<wire::CreatePartitionsResponse>, Status> {
        Err(Status::unimplemented("test broker"))
    }

    type ProduceStream = ReceiverStream<Result<wire::ProduceResponse, Status>>;

    async fn produce(
        &self,
        request: Request<tonic::Streaming<wire::ProduceRequest>>,
    ) -> Result<Response<Self::ProduceStream>, Status> {
        let mut requests = request.into_inner();
        let (answers, receiver) = mpsc::channel(64);
        let state = self.state.clone();
        let mut paused = self.paused.subscribe();
        let stream = {
            let mut state = state.lock().unwrap();
            state.produce_streams += 1;
            state.produce_streams
        };
        // Requests are read (and logged) as they come, paused or not; a pause holds their
        // processing, as a stopped broker's socket buffers hold them.
        let (read, mut held) = mpsc::unbounded_channel();
        let reader_state = state.clone();
        tokio::spawn(async move {
            while let Some(Ok(request)) = requests.next().await {
                let mut state = reader_state.lock().unwrap();
                state.produce_requests_received += 1;
                let sequence = check_stored_batch(&request.records, usize::MAX)
                    .map_or(-1, |header| header.base_sequence);
                state
                    .produce_log
                    .push((stream, request.partition, sequence));
                drop(state);
                if read.send(request).is_err() {
                    return;
                }
            }
        });
        tokio::spawn(async move {
            // A refusal held back by `Fault::AnswerLate` until the next answer is sent.
            let mut late = None;
            while let Some(request) = held.recv().await {
                while *paused.borrow_and_update() {
                    if paused.changed().await.is_err() {
                        return;
                    }
                }
                let (fault, answer) = {
                    let mut state = state.lock().unwrap();
                    state.produce_requests += 1;
                    let refusal = |code| wire::ProduceResponse {
                        request_id: request.request_id,
                        error: error(code),
                        base_offset: -1,
                        log_append_time_ms: -1,
                        log_start_offset: 0,
                    };
                    match state.faults.pop_front() {
                        Some(Fault::Answer(code)) => (None, Some(refusal(code))),
                        Some(Fault::AnswerLate(code)) => {
                            late = Some(refusal(code));
                            continue;
                        }
                        Some(fault) => {
                            state.produce(&request);
                            (Some(fault), None)
                        }
                        None => (None, Some(state.produce(&request))),
                    }
                };
                match fault {
                    Some(Fault::KillStream(code)) => {
                        let _ = answers.send(Err(Status::new(code, "stream killed"))).await;
                        return;
                    }
                    Some(_) => continue,
                    None => {}
                }
                if request.acks != 0 {
                    let answer = answer.into_iter().chain(late.take());
                    for answer in answer {
                        if answers.send(Ok(answer)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn fetch(
        &self,
        request: Request<wire::FetchRequest>,
    ) -> Result<Response<wire::FetchResponse>, Status> {
        self.state.lock().unwrap().unary_fetches += 1;
        self.answer_fetch(request.into_inner()).await
    }

    type FetchStreamStream = ReceiverStream<Result<wire::FetchResponse, Status>>;

    /// A fetch session by the shared rule and the broker's grants, each answer made as
    /// `fetch` makes one (an injected fetch failure ends the stream with it).
    async fn fetch_stream(
        &self,
        request: Request<tonic::Streaming<wire::FetchSessionRequest>>,
    ) -> Result<Response<Self::FetchStreamStream>, Status> {
        {
            let mut state = self.state.lock().unwrap();
            if state.fetch_streams_unimplemented {
                return Err(Status::unimplemented("no FetchStream here"));
            }
            state.fetch_streams += 1;
        }
        let mut messages = request.into_inner();
        let Some(first) = messages.message().await? else {
            return Err(Status::invalid_argument("no fetch"));
        };
        let mut request = first
            .fetch
            .ok_or_else(|| Status::invalid_argument("no fetch"))?;
        let mut grants = first.grant;
        let service = self.clone();
        let (sender, receiver) = mpsc::channel(1);
        tokio::spawn(async move {
            loop {
                let answer = match service.answer_fetch(request.clone()).await {
                    Ok(answer) => answer.into_inner(),
                    Err(status) => {
                        let _ = sender.send(Err(status)).await;
                        return;
                    }
                };
                let next = strata_proto::fetch_session::next_request(request, &answer);
                while grants == 0 {
                    match messages.message().await {
                        Ok(Some(message)) => grants = message.grant,
                        Ok(None) | Err(_) => return,
                    }
                }
                grants -= 1;
                if sender.send(Ok(answer)).await.is_err() {
                    return;
                }
                match next {
                    Some(next) => request = next,
                    None => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn list_offsets(
        &self,
        request: Request<wire::ListOffsetsRequest>,
    ) -> Result<Response<wire::ListOffsetsResponse>, Status> {
        let state = self.state.lock().unwrap();
        let offsets = request
            .into_inner()
            .partitions
            .into_iter()
            .map(|asked| {
                let log = state
                    .topics
                    .get(&asked.topic)
                    .and_then(|partitions| partitions.get(asked.partition as usize));
                let (offset, error) = match log {
                    None => (-1, error(wire::ErrorCode::UnknownTopicOrPartition)),
                    Some(_) if asked.spec == wire::OffsetSpec::Earliest as i32 => (0, ok()),
                    Some(log) => (log.end_offset, ok()),
                };
                wire::ListedOffset {
                    topic: asked.topic,
                    partition: asked.partition,
                    error,
                    offset,
                    timestamp_ms: -1,
                    leader_epoch: 0,
                }
            })
            .collect();
        Ok(Response::new(wire::ListOffsetsResponse { offsets }))
    }

    async fn init_producer_id(
        &self,
        _request: Request<wire::InitProducerIdRequest>,
    ) -> Result<Response<wire::InitProducerIdResponse>, Status> {
        let mut state = self.state.lock().unwrap();
        state.next_producer_id += 1;
        Ok(Response::new(wire::InitProducerIdResponse {
            error: ok(),
            producer_id: state.next_producer_id,
            producer_epoch: 0,
        }))
    }

    async fn describe_cluster(
        &self,
        _request: Request<wire::DescribeClusterRequest>,
    ) -> Result<Response<wire::DescribeClusterResponse>, Status> {
        let state = self.state.lock().unwrap();
        let voter = |node_id: i32, leader: bool, matched_index: i64| wire::ControllerVoter {
            node_id,
            address: format!("127.0.0.1:{}", 9090 + node_id),
            leader,
            matched_index,
            lag: 120 - matched_index,
        };
        Ok(Response::new(wire::DescribeClusterResponse {
            error: ok(),
            cluster_id: "test-cluster".into(),
            answered_by: 1,
            controller_leader: 1,
            controller_term: 3,
            voters: vec![
                voter(2, false, 118),
                voter(1, true, 120),
                voter(3, false, 90),
            ],
            brokers: state.controller.brokers.clone(),
            metadata_version: 42,
            applied_index: 120,
            last_log_index: 120,
        }))
    }

    async fn elect_leaders(
        &self,
        request: Request<wire::ElectLeadersRequest>,
    ) -> Result<Response<wire::ElectLeadersResponse>, Status> {
        let mut state = self.state.lock().unwrap();
        if let Some(error) = state.controller_call() {
            return Ok(Response::new(wire::ElectLeadersResponse {
                error: Some(error),
                results: Vec::new(),
            }));
        }
        let results = state
            .elected_partitions(request.into_inner().topics)
            .into_iter()
            .map(|(topic, partition)| state.elect(topic, partition))
            .collect();
        Ok(Response::new(wire::ElectLeadersResponse {
            error: ok(),
            results,
        }))
    }

    async fn reassign_partitions(
        &self,
        request: Request<wire::ReassignPartitionsRequest>,
    ) -> Result<Response<wire::ReassignPartitionsResponse>, Status> {
        let mut state = self.state.lock().unwrap();
        let error = state.controller_call();
        let answer = match error {
            Some(error) => wire::ReassignPartitionsResponse {
                error: Some(error),
                results: Vec::new(),
            },
            None => state.reassign(request.into_inner()),
        };
        Ok(Response::new(answer))
    }
}

impl Service {
    /// One fetch answer, waiting up to twice 50 ms for records; an injected fetch
    /// failure is this call's error.
    async fn answer_fetch(
        &self,
        request: wire::FetchRequest,
    ) -> Result<Response<wire::FetchResponse>, Status> {
        {
            let mut state = self.state.lock().unwrap();
            if state.faults.front() == Some(&Fault::FailFetch) {
                state.faults.pop_front();
                return Err(Status::unavailable("injected fetch failure"));
            }
        }
        for _ in 0..2 {
            let response = self.fetch_now(&request);
            if response
                .partitions
                .iter()
                .any(|partition| !partition.records.is_empty())
            {
                return Ok(Response::new(response));
            }
            tokio::time::sleep(Duration::from_millis(u64::from(
                request.max_wait_ms.min(50),
            )))
            .await;
        }
        Ok(Response::new(self.fetch_now(&request)))
    }

    fn fetch_now(&self, request: &wire::FetchRequest) -> wire::FetchResponse {
        let state = self.state.lock().unwrap();
        let partitions = request
            .partitions
            .iter()
            .map(|asked| {
                let mut fetched = wire::FetchedPartition {
                    topic: asked.topic.clone(),
                    partition: asked.partition,
                    error: ok(),
                    high_watermark: 0,
                    log_start_offset: 0,
                    records: Bytes::new(),
                    fetch_offset: asked.fetch_offset,
                };
                let Some(log) = state
                    .topics
                    .get(&asked.topic)
                    .and_then(|partitions| partitions.get(asked.partition as usize))
                else {
                    fetched.error = error(wire::ErrorCode::UnknownTopicOrPartition);
                    return fetched;
                };
                fetched.high_watermark = log.end_offset;
                if asked.fetch_offset < 0 || asked.fetch_offset > log.end_offset {
                    fetched.error = error(wire::ErrorCode::OffsetOutOfRange);
                    return fetched;
                }
                let mut data = Vec::new();
                for (base, count, batch) in &log.batches {
                    if base + count <= asked.fetch_offset {
                        continue;
                    }
                    if !data.is_empty()
                        && data.len() + batch.len() > asked.partition_max_bytes as usize
                    {
                        break;
                    }
                    data.extend_from_slice(batch);
                }
                fetched.records = Bytes::from(data);
                fetched
            })
            .collect();
        wire::FetchResponse { partitions }
    }
}
