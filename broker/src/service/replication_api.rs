//! The `strata.v1.Replication` service, the leader side: replica fetch sessions and
//! `OffsetForLeaderEpoch`, converted to [`Node`] calls (`node/replica_fetch.rs`).
//!
//! A session ([`run_session`]) keeps, per partition, the position the follower last
//! reported. An answer holds the partitions with news: records (read up to the log end,
//! whole batches, within the session's and the partition's byte limits), an error or a
//! diverging epoch (the partition then leaves the session), or a high watermark or log
//! start offset that moved since the previous answer. A partition answered with records
//! is read again only once the follower reports its new position. With nothing to say,
//! the session waits (long poll) for an append on this broker, a follower message, or
//! `max_wait_ms`, and then answers, possibly with no partitions.
//!
//! Shutdown ([`Node::stopping`]) ends every session with UNAVAILABLE; a refused first
//! message (a stale incarnation, no replica id) ends it with the answer's `error`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use strata_proto::api::v1::replication_server::Replication;
use strata_proto::api::v1::{
    EpochEndOffset, Error, ErrorCode, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
    OffsetForLeaderEpochResult, ReplicaFetchPartition, ReplicaFetchRequest, ReplicaFetchResponse,
    ReplicaFetchedPartition,
};
use strata_proto::types::{BrokerId, LeaderEpoch, Offset};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::fetch_session::GRANTS_MAX;
use super::status;
use crate::log::LogError;
use crate::node::{Node, NodeError, ReplicaFetchSpec, ReplicaFetched, ReplicaRead};

/// A partition's record bytes per answer when the follower does not say (1 MiB).
const PARTITION_MAX_BYTES_DEFAULT: usize = 1 << 20;
/// An answer's record bytes when the follower does not say (16 MiB).
const SESSION_MAX_BYTES_DEFAULT: usize = 16 << 20;

/// The gRPC service.
#[derive(Debug)]
pub struct ReplicationService {
    node: Arc<Node>,
}

impl ReplicationService {
    pub fn new(node: Arc<Node>) -> ReplicationService {
        ReplicationService { node }
    }
}

#[tonic::async_trait]
impl Replication for ReplicationService {
    type ReplicaFetchStream =
        tokio_stream::wrappers::ReceiverStream<Result<ReplicaFetchResponse, Status>>;

    async fn replica_fetch(
        &self,
        request: Request<Streaming<ReplicaFetchRequest>>,
    ) -> Result<Response<Self::ReplicaFetchStream>, Status> {
        let (answers, receiver) = mpsc::channel(1);
        tokio::spawn(run_session(
            Arc::clone(&self.node),
            request.into_inner(),
            answers,
        ));
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            receiver,
        )))
    }

    async fn offset_for_leader_epoch(
        &self,
        request: Request<OffsetForLeaderEpochRequest>,
    ) -> Result<Response<OffsetForLeaderEpochResponse>, Status> {
        let request = request.into_inner();
        let partitions = request
            .partitions
            .into_iter()
            .map(|asked| {
                let answer = self.node.offset_for_leader_epoch(
                    &asked.topic,
                    asked.partition,
                    epoch_or_unchecked(asked.current_leader_epoch),
                    LeaderEpoch(asked.leader_epoch),
                );
                let (error, end) = match answer {
                    Ok(found) => {
                        let (epoch, end_offset) = found.unwrap_or((LeaderEpoch(-1), Offset(-1)));
                        (status::none(), epoch_end(epoch, end_offset))
                    }
                    Err(error) => (
                        status::to_wire(&error),
                        epoch_end(LeaderEpoch(-1), Offset(-1)),
                    ),
                };
                OffsetForLeaderEpochResult {
                    topic: asked.topic,
                    partition: asked.partition,
                    error: Some(error),
                    end: Some(end),
                }
            })
            .collect();
        Ok(Response::new(OffsetForLeaderEpochResponse { partitions }))
    }
}

fn epoch_end(epoch: LeaderEpoch, end_offset: Offset) -> EpochEndOffset {
    EpochEndOffset {
        epoch: epoch.0,
        end_offset: end_offset.0,
    }
}

/// `-1` (or any negative epoch) means "not checked".
fn epoch_or_unchecked(epoch: i32) -> Option<LeaderEpoch> {
    (epoch >= 0).then_some(LeaderEpoch(epoch))
}

/// 16 bytes → 32 lowercase hex digits; empty → not checked.
fn topic_id_hex(bytes: &[u8]) -> Option<String> {
    (!bytes.is_empty()).then(|| bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// One partition of a session.
#[derive(Debug)]
struct SessionPartition {
    spec: ReplicaFetchSpec,
    /// The last answer carried records from `spec.fetch_offset`: read nothing more until
    /// the follower reports its new position.
    awaiting_position: bool,
    /// The high watermark and log start offset of the last answer that held the partition.
    sent: Option<(Offset, Offset)>,
}

/// A session's state between answers.
#[derive(Debug)]
struct Session {
    replica: BrokerId,
    max_wait: Duration,
    min_bytes: usize,
    max_bytes: usize,
    grants: u32,
    partitions: BTreeMap<(String, i32), SessionPartition>,
}

impl Session {
    /// Applies a follower message (after the first): positions, removals, grants.
    fn apply(&mut self, message: ReplicaFetchRequest) -> Result<(), Status> {
        for partition in message.partitions {
            self.position(partition);
        }
        for removed in message.removed {
            self.partitions.remove(&(removed.topic, removed.partition));
        }
        self.grants = self.grants.saturating_add(message.grant);
        if self.grants > GRANTS_MAX {
            return Err(Status::invalid_argument(format!(
                "a replica fetch session may have at most {GRANTS_MAX} answers granted"
            )));
        }
        Ok(())
    }

    fn position(&mut self, partition: ReplicaFetchPartition) {
        let spec = ReplicaFetchSpec {
            topic: partition.topic.clone(),
            partition: partition.partition,
            topic_id: topic_id_hex(&partition.topic_id),
            fetch_offset: Offset(partition.fetch_offset),
            last_fetched_epoch: epoch_or_unchecked(partition.last_fetched_epoch),
            current_leader_epoch: epoch_or_unchecked(partition.current_leader_epoch),
            max_bytes: match partition.partition_max_bytes {
                0 => PARTITION_MAX_BYTES_DEFAULT,
                bytes => bytes as usize,
            },
        };
        let sent = self
            .partitions
            .get(&(partition.topic.clone(), partition.partition))
            .and_then(|known| known.sent);
        self.partitions.insert(
            (partition.topic, partition.partition),
            SessionPartition {
                spec,
                awaiting_position: false,
                sent,
            },
        );
    }
}

/// Serves one replica fetch session until the follower closes it and every grant is used,
/// the follower goes away, a message is refused, or shutdown begins.
pub async fn run_session<S>(
    node: Arc<Node>,
    mut requests: S,
    answers: mpsc::Sender<Result<ReplicaFetchResponse, Status>>,
) where
    S: Stream<Item = Result<ReplicaFetchRequest, Status>> + Unpin,
{
    let stopping = node.stopping();
    tokio::pin!(stopping);
    let first = tokio::select! {
        biased;
        () = &mut stopping => return refuse(&answers, status::shutting_down()).await,
        () = answers.closed() => return,
        first = requests.next() => first,
    };
    let first = match first {
        None => return,
        Some(Err(status)) => return refuse(&answers, status).await,
        Some(Ok(first)) => first,
    };
    let mut session = match open_session(&node, &first) {
        Ok(session) => session,
        Err(error) => {
            let _ = answers
                .send(Ok(ReplicaFetchResponse {
                    error: Some(error),
                    partitions: Vec::new(),
                }))
                .await;
            return;
        }
    };
    if let Err(status) = session.apply(first) {
        return refuse(&answers, status).await;
    }
    let mut follower_open = true;
    let mut deadline = Instant::now() + session.max_wait;
    loop {
        let notified = node.appended().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if session.grants > 0 {
            let answer = tokio::select! {
                biased;
                () = &mut stopping => return refuse(&answers, status::shutting_down()).await,
                answer = answer(&node, &mut session, Instant::now() >= deadline) => answer,
            };
            if let Some(answer) = answer {
                session.grants -= 1;
                if answers.send(Ok(answer)).await.is_err() {
                    return;
                }
                deadline = Instant::now() + session.max_wait;
                continue;
            }
        } else if !follower_open {
            return;
        }
        tokio::select! {
            biased;
            () = &mut stopping => return refuse(&answers, status::shutting_down()).await,
            () = answers.closed() => return,
            message = requests.next(), if follower_open => match message {
                None => follower_open = false,
                Some(Err(status)) => return refuse(&answers, status).await,
                Some(Ok(message)) => {
                    if let Err(status) = session.apply(message) {
                        return refuse(&answers, status).await;
                    }
                }
            },
            () = &mut notified => {}
            () = tokio::time::sleep_until(deadline), if session.grants > 0 => {}
        }
    }
}

/// Checks the first message: a replica id, registered at this incarnation.
fn open_session(node: &Node, first: &ReplicaFetchRequest) -> Result<Session, Error> {
    if first.replica_id < 0 {
        return Err(Error::new(
            ErrorCode::InvalidRequest,
            "the first message of a replica fetch session names no replica_id",
        ));
    }
    let replica = BrokerId(first.replica_id);
    node.check_replica(replica, first.incarnation)
        .map_err(|error| status::to_wire(&error))?;
    let max_wait_ms = u64::from(first.max_wait_ms).min(node.config().limits.fetch_wait_max_ms);
    Ok(Session {
        replica,
        max_wait: Duration::from_millis(max_wait_ms),
        min_bytes: first.min_bytes as usize,
        max_bytes: match first.max_bytes {
            0 => SESSION_MAX_BYTES_DEFAULT,
            bytes => (bytes as usize).min(node.config().limits.fetch_max_bytes),
        },
        grants: 0,
        partitions: BTreeMap::new(),
    })
}

/// The next answer, or `None` when there is nothing to say yet and `due` is false (the
/// long poll goes on). Reads segment files on a blocking thread.
async fn answer(
    node: &Arc<Node>,
    session: &mut Session,
    due: bool,
) -> Option<ReplicaFetchResponse> {
    let replica = session.replica;
    let mut reads = Vec::with_capacity(session.partitions.len());
    let mut any_to_read = false;
    for partition in session.partitions.values() {
        let read = if partition.awaiting_position {
            ReplicaRead::StatusOnly
        } else {
            ReplicaRead::Records
        };
        let status =
            node.replica_fetch_partition(replica, &partition.spec, ReplicaRead::StatusOnly);
        if let Ok(fetched) = &status {
            any_to_read |= read == ReplicaRead::Records
                && fetched.diverging_epoch.is_none()
                && partition.spec.fetch_offset < fetched.log_end_offset;
        }
        reads.push((partition.spec.clone(), read));
    }
    let results = if any_to_read {
        let node = Arc::clone(node);
        let max_bytes = session.max_bytes;
        tokio::task::spawn_blocking(move || read_all(&node, replica, &reads, max_bytes))
            .await
            .ok()?
    } else {
        read_all(node, replica, &reads, session.max_bytes)
    };
    let mut partitions = Vec::new();
    let mut record_bytes = 0_usize;
    for ((topic, partition), result) in results {
        let key = (topic, partition);
        let Some(state) = session.partitions.get_mut(&key) else {
            continue;
        };
        let fetch_offset = state.spec.fetch_offset;
        let (topic, partition) = key.clone();
        let mut answered = ReplicaFetchedPartition {
            topic,
            partition,
            error: Some(status::none()),
            fetch_offset: fetch_offset.0,
            ..ReplicaFetchedPartition::default()
        };
        match result {
            Err(error) => {
                answered.error = Some(status::to_wire(&error));
                if let NodeError::Log(LogError::OffsetOutOfRange {
                    log_start_offset, ..
                }) = &error
                {
                    // A follower whose log end is below it starts again there.
                    answered.log_start_offset = log_start_offset.0;
                }
                session.partitions.remove(&key);
            }
            Ok(fetched) => {
                let moved = state.sent != Some((fetched.high_watermark, fetched.log_start_offset));
                let news =
                    moved || !fetched.records.is_empty() || fetched.diverging_epoch.is_some();
                if !news {
                    continue;
                }
                state.sent = Some((fetched.high_watermark, fetched.log_start_offset));
                state.awaiting_position |= !fetched.records.is_empty();
                record_bytes += fetched.records.len();
                fill(&mut answered, &fetched);
                if fetched.diverging_epoch.is_some() {
                    session.partitions.remove(&key);
                }
            }
        }
        partitions.push(answered);
    }
    // A partition without records is in the answer for an error, a diverging epoch or
    // offsets that moved: news that is sent at once, whatever min_bytes says.
    let any_news = partitions
        .iter()
        .any(|partition| partition.records.is_empty());
    (due || any_news || record_bytes >= session.min_bytes.max(1)).then(|| ReplicaFetchResponse {
        error: None,
        partitions,
    })
}

type ReadResults = Vec<((String, i32), Result<ReplicaFetched, NodeError>)>;

/// Reads each partition in turn within `max_bytes` over all of them: only the first
/// partition with records may exceed it (one whole batch); once it is used up the rest
/// are answered with their offsets only, and read in a later answer.
fn read_all(
    node: &Node,
    replica: BrokerId,
    reads: &[(ReplicaFetchSpec, ReplicaRead)],
    max_bytes: usize,
) -> ReadResults {
    let mut remaining = max_bytes;
    let mut results = Vec::with_capacity(reads.len());
    for (spec, read) in reads {
        let read = if remaining == 0 {
            ReplicaRead::StatusOnly
        } else {
            *read
        };
        let spec = ReplicaFetchSpec {
            max_bytes: spec.max_bytes.min(remaining),
            ..spec.clone()
        };
        let result = node.replica_fetch_partition(replica, &spec, read);
        if let Ok(fetched) = &result {
            remaining = remaining.saturating_sub(fetched.records.len());
        }
        results.push(((spec.topic.clone(), spec.partition), result));
    }
    results
}

fn fill(answered: &mut ReplicaFetchedPartition, fetched: &ReplicaFetched) {
    answered.high_watermark = fetched.high_watermark.0;
    answered.log_start_offset = fetched.log_start_offset.0;
    answered.leader_epoch = fetched.leader_epoch.0;
    answered.diverging_epoch = fetched
        .diverging_epoch
        .map(|(epoch, end_offset)| epoch_end(epoch, end_offset));
    answered.records = fetched.records.clone();
}

async fn refuse(answers: &mpsc::Sender<Result<ReplicaFetchResponse, Status>>, status: Status) {
    // The follower may be gone already; then nobody is left to tell.
    let _ = answers.send(Err(status)).await;
}

#[cfg(test)]
#[path = "replication_api_tests.rs"]
mod tests;
