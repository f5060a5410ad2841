//! The replica fetcher: the adapter that carries [`FollowerPartition`]'s requests to the
//! leaders over `strata.v1.Replication` and applies the answers to the local logs. The
//! only file of `replication/` that speaks gRPC (`.ci/check-layering`).
//!
//! The node publishes a [`FollowerAssignment`] (the partitions this broker follows, by
//! leader, with their logs opened but not served) on every metadata change;
//! [`run_fetchers`] keeps one task per leader broker, each holding one replica fetch
//! session for all of that leader's partitions:
//!
//! 1. reconcile: every partition starts as [`FollowerState::Truncating`]; the task asks the
//!    leader `OffsetForLeaderEpoch` for each latest local epoch, truncates where
//!    [`truncation_point`](super::truncation_point) says, and asks again on KIP-279's
//!    `AskAgain`;
//! 2. fetch: a `ReplicaFetch` session from each local log end offset; records are appended
//!    verbatim on a blocking thread ([`PartitionLog::append_as_follower`], which checks
//!    CRCs, contiguity and epochs), the HW set to `min(leader HW, local LEO)`, and the new
//!    position reported with one more grant.
//!
//! The follower's log start follows the leader's: segments wholly below it are deleted
//! (never past the local HW). A follower whose log end is below the leader's log start
//! (`OFFSET_OUT_OF_RANGE`: the leader's retention deleted what it lacks) drops its log and
//! starts again, empty, at the leader's log start (Kafka's `truncateFullyAndStartAt`).
//!
//! Any change of this leader's partitions in the assignment (one added, removed, a new
//! leader epoch), a diverging epoch, or an error of the whole session ends the session;
//! the task reconciles again (after a backoff of 100 ms doubling to 5 s on errors). A
//! partition the leader refuses alone (a stale epoch, say) leaves the session, and the
//! others go on being fetched until a new session tries it again 500 ms later. A task
//! whose leader has no partitions left stops; all stop when the node's shutdown future
//! resolves.
//!
//! Crash behaviour: the local log is only ever truncated at the point the leader's
//! epochs dictate and appended with whole checked batches, so a fetcher stopped at any
//! point (SIGKILL, an aborted task, an append refused because a concurrent change moved
//! the log end) leaves a valid log that the next reconcile continues from.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use strata_proto::api::v1::replication_client::ReplicationClient;
use strata_proto::api::v1::{
    ErrorCode, OffsetForLeaderEpochPartition, OffsetForLeaderEpochRequest, ReplicaFetchPartition,
    ReplicaFetchRequest, ReplicaFetchResponse,
};
use strata_proto::types::{BrokerId, LeaderEpoch, Offset, PartitionId, TopicName};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use super::follower::{EpochAnswer, FetchAnswer, FollowerPartition, FollowerRequest};
use super::truncation::TruncationStep;
use crate::log::PartitionLog;

/// The longest a replica fetch waits at the leader for new records.
const FETCH_WAIT_MAX_MS: u32 = 500;
/// At most this many record bytes per partition and answer.
const PARTITION_FETCH_BYTES_MAX: u32 = 1 << 20;
/// The largest answer accepted from a leader.
const ANSWER_BYTES_MAX: usize = 64 << 20;
/// At most this many `OffsetForLeaderEpoch` rounds per reconcile (KIP-279's `AskAgain`
/// moves down one local epoch per round).
const RECONCILE_ROUNDS_MAX: usize = 64;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// How long partitions the leader refused wait before a new session tries them again.
const REFUSED_PARTITION_RETRY: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// One partition this broker follows.
#[derive(Debug, Clone)]
pub struct FollowedPartition {
    pub topic: TopicName,
    pub partition: PartitionId,
    /// The topic's id (16 bytes; empty: not checked by the leader).
    pub topic_id: Vec<u8>,
    pub leader_epoch: LeaderEpoch,
    pub log: Arc<PartitionLog>,
}

impl FollowedPartition {
    /// Whether a session started for `self` still fits `other`.
    fn same_as(&self, other: &FollowedPartition) -> bool {
        self.leader_epoch == other.leader_epoch
            && self.topic_id == other.topic_id
            && Arc::ptr_eq(&self.log, &other.log)
    }
}

/// `(topic, partition)`.
pub type PartitionKey = (String, i32);

/// The partitions one leader broker serves to this one.
#[derive(Debug, Clone, Default)]
pub struct LeaderAssignment {
    pub address: String,
    pub partitions: BTreeMap<PartitionKey, FollowedPartition>,
}

/// Everything this broker follows, by leader broker.
#[derive(Debug, Clone, Default)]
pub struct FollowerAssignment {
    pub leaders: BTreeMap<BrokerId, LeaderAssignment>,
}

/// Who this broker is to the leaders.
#[derive(Clone)]
pub struct FetcherIdentity {
    pub replica_id: BrokerId,
    /// Where outgoing connections come from (the listener's IP).
    pub local_ip: Option<IpAddr>,
    /// This broker's current incarnation, read at each session start.
    pub incarnation: Arc<dyn Fn() -> u64 + Send + Sync>,
}

impl std::fmt::Debug for FetcherIdentity {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FetcherIdentity")
            .field("replica_id", &self.replica_id)
            .finish_non_exhaustive()
    }
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("the leader refused the request: {0:?}")]
    Refused(strata_proto::api::v1::Error),
    #[error("the connection failed: {0}")]
    Transport(#[from] tonic::Status),
    #[error("the leader ended the session")]
    Ended,
    #[error(transparent)]
    Log(#[from] crate::log::LogError),
    #[error("{0}")]
    Other(String),
}

/// How a session ended without an error.
enum SessionEnd {
    /// This leader's partitions changed (or a partition must reconcile again).
    Reconcile,
    /// The assignment channel closed: the node is gone.
    Closed,
}

/// Runs one fetcher task per leader broker of `assignment` until `shutdown` resolves.
pub async fn run_fetchers(
    identity: FetcherIdentity,
    mut assignment: watch::Receiver<Arc<FollowerAssignment>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut tasks: HashMap<BrokerId, (String, JoinHandle<()>)> = HashMap::new();
    loop {
        let current = Arc::clone(&assignment.borrow_and_update());
        tasks.retain(|leader, (address, task)| {
            let keep = !task.is_finished()
                && current
                    .leaders
                    .get(leader)
                    .is_some_and(|assigned| assigned.address == *address);
            if !keep {
                task.abort();
            }
            keep
        });
        for (leader, assigned) in &current.leaders {
            if assigned.partitions.is_empty() || tasks.contains_key(leader) {
                continue;
            }
            let task = tokio::spawn(follow_leader(
                identity.clone(),
                *leader,
                assigned.address.clone(),
                assignment.clone(),
            ));
            tasks.insert(*leader, (assigned.address.clone(), task));
        }
        tokio::select! {
            changed = assignment.changed() => if changed.is_err() { break },
            () = &mut shutdown => break,
        }
    }
    for (_, (_, task)) in tasks {
        task.abort();
    }
}

/// This leader's partitions in the latest assignment.
fn partitions_of(
    assignment: &mut watch::Receiver<Arc<FollowerAssignment>>,
    leader: BrokerId,
    address: &str,
) -> BTreeMap<PartitionKey, FollowedPartition> {
    let current = Arc::clone(&assignment.borrow_and_update());
    current
        .leaders
        .get(&leader)
        .filter(|assigned| assigned.address == address)
        .map(|assigned| assigned.partitions.clone())
        .unwrap_or_default()
}

/// Follows every partition `leader` (at `address`) leads for this broker, one session at
/// a time, until none is left.
async fn follow_leader(
    identity: FetcherIdentity,
    leader: BrokerId,
    address: String,
    mut assignment: watch::Receiver<Arc<FollowerAssignment>>,
) {
    let channel = match crate::controller::quorum::network::channel(&address, identity.local_ip) {
        Ok(channel) => channel,
        Err(error) => {
            tracing::error!(leader = leader.0, %error, "cannot fetch from the leader");
            return;
        }
    };
    let mut client = ReplicationClient::new(channel).max_decoding_message_size(ANSWER_BYTES_MAX);
    let mut backoff = BACKOFF_MIN;
    loop {
        let partitions = partitions_of(&mut assignment, leader, &address);
        if partitions.is_empty() {
            return;
        }
        let session = Session {
            identity: &identity,
            leader,
            address: &address,
            client: &mut client,
            assignment: &mut assignment,
        };
        match session.run(partitions).await {
            Ok(SessionEnd::Reconcile) => backoff = BACKOFF_MIN,
            Ok(SessionEnd::Closed) => return,
            Err(error) => {
                tracing::warn!(leader = leader.0, %error, retry_in_ms = backoff.as_millis() as u64,
                    "replica fetch session ended");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// One reconcile-then-fetch session with one leader.
struct Session<'a> {
    identity: &'a FetcherIdentity,
    leader: BrokerId,
    address: &'a str,
    client: &'a mut ReplicationClient<Channel>,
    assignment: &'a mut watch::Receiver<Arc<FollowerAssignment>>,
}

/// A partition of a session: its assignment and its follower state machine.
struct Followed {
    partition: FollowedPartition,
    state: FollowerPartition,
}

impl Session<'_> {
    async fn run(
        self,
        partitions: BTreeMap<PartitionKey, FollowedPartition>,
    ) -> Result<SessionEnd, SessionError> {
        let mut followed: BTreeMap<PartitionKey, Followed> = partitions
            .into_iter()
            .map(|(key, partition)| {
                let state = FollowerPartition::new(self.leader, partition.leader_epoch);
                (key, Followed { partition, state })
            })
            .collect();
        reconcile(self.client, self.identity.replica_id, &mut followed).await?;
        fetch(self, followed).await
    }
}

/// Truncates every partition to where its log and the leader's agree (KIP-101, KIP-279).
async fn reconcile(
    client: &mut ReplicationClient<Channel>,
    replica_id: BrokerId,
    followed: &mut BTreeMap<PartitionKey, Followed>,
) -> Result<(), SessionError> {
    for _ in 0..RECONCILE_ROUNDS_MAX {
        let mut asked = Vec::new();
        for ((topic, partition), one) in followed.iter_mut() {
            let log = &one.partition.log;
            let request = one
                .state
                .next_request(&log.leader_epochs(), log.log_end_offset());
            if let FollowerRequest::OffsetsForLeaderEpoch {
                current_leader_epoch,
                epoch,
            } = request
            {
                asked.push(OffsetForLeaderEpochPartition {
                    topic: topic.clone(),
                    partition: *partition,
                    current_leader_epoch: current_leader_epoch.0,
                    leader_epoch: epoch.0,
                });
            }
        }
        if asked.is_empty() {
            return Ok(());
        }
        let answer = client
            .offset_for_leader_epoch(OffsetForLeaderEpochRequest {
                replica_id: replica_id.0,
                partitions: asked,
            })
            .await?
            .into_inner();
        for result in answer.partitions {
            if let Some(error) = result
                .error
                .filter(|error| error.code != ErrorCode::None as i32)
            {
                return Err(SessionError::Refused(error));
            }
            let Some(one) = followed.get_mut(&(result.topic, result.partition)) else {
                continue;
            };
            let end = result.end.unwrap_or_default();
            let log = Arc::clone(&one.partition.log);
            let answer = EpochAnswer {
                request_leader_epoch: one.state.leader_epoch(),
                epoch: LeaderEpoch(end.epoch),
                end_offset: Offset(end.end_offset),
            };
            let step = one
                .state
                .on_epoch_answer(answer, &log.leader_epochs(), log.log_end_offset())
                .map_err(|refusal| SessionError::Other(refusal.to_string()))?;
            let truncate_to = match step {
                TruncationStep::TruncateTo(offset) => offset,
                TruncationStep::AskAgain { truncate_to, .. } => truncate_to,
            };
            if truncate_to < log.log_end_offset() {
                tracing::info!(partition = %log.dir().display(), offset = truncate_to.0,
                    "truncating the follower's log to where it agrees with the leader");
                blocking(move || log.truncate_to(truncate_to)).await?;
            }
        }
    }
    Err(SessionError::Other(format!(
        "no common point with the leader after {RECONCILE_ROUNDS_MAX} rounds"
    )))
}

/// Where a partition fetches from, as the session's wire position: the local log end
/// offset (after a truncation below the log start offset that is the log start, which
/// the follower state does not know about; the log is what counts).
fn position(key: &PartitionKey, one: &Followed) -> ReplicaFetchPartition {
    let log = &one.partition.log;
    ReplicaFetchPartition {
        topic: key.0.clone(),
        partition: key.1,
        topic_id: one.partition.topic_id.clone().into(),
        fetch_offset: log.log_end_offset().0,
        last_fetched_epoch: log.leader_epochs().last().map_or(-1, |(epoch, _)| epoch.0),
        current_leader_epoch: one.state.leader_epoch().0,
        partition_max_bytes: PARTITION_FETCH_BYTES_MAX,
    }
}

/// The fetch session: appends what the leader sends until something changes.
async fn fetch(
    session: Session<'_>,
    mut followed: BTreeMap<PartitionKey, Followed>,
) -> Result<SessionEnd, SessionError> {
    let incarnation = (session.identity.incarnation)();
    if incarnation == 0 {
        // The leader would refuse it (STALE_BROKER_EPOCH): wait for the registration.
        return Err(SessionError::Other(
            "this broker is not registered yet".to_owned(),
        ));
    }
    let (requests, outgoing) = mpsc::channel(16);
    let first = ReplicaFetchRequest {
        replica_id: session.identity.replica_id.0,
        incarnation,
        max_wait_ms: FETCH_WAIT_MAX_MS,
        min_bytes: 1,
        max_bytes: 0,
        partitions: followed
            .iter()
            .map(|(key, one)| position(key, one))
            .collect(),
        removed: Vec::new(),
        grant: 1,
    };
    requests
        .send(first)
        .await
        .map_err(|_| SessionError::Ended)?;
    let mut answers = session
        .client
        .replica_fetch(tokio_stream::wrappers::ReceiverStream::new(outgoing))
        .await?
        .into_inner();
    // When partitions the leader refused are tried again (a new session); the others
    // are fetched meanwhile.
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        let retry = async {
            match retry_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let answer = tokio::select! {
            () = retry => return Ok(SessionEnd::Reconcile),
            changed = session.assignment.changed() => {
                if changed.is_err() {
                    return Ok(SessionEnd::Closed);
                }
                let now = partitions_of(session.assignment, session.leader, session.address);
                if !same_partitions(&followed, &now) {
                    return Ok(SessionEnd::Reconcile);
                }
                continue;
            }
            answer = answers.message() => answer?.ok_or(SessionError::Ended)?,
        };
        let mut next = ReplicaFetchRequest {
            grant: 1,
            ..ReplicaFetchRequest::default()
        };
        let outcome = apply_answer(answer, &mut followed, &mut next).await?;
        if outcome.reconcile {
            return Ok(SessionEnd::Reconcile);
        }
        if outcome.refused > 0 && retry_at.is_none() {
            retry_at = Some(tokio::time::Instant::now() + REFUSED_PARTITION_RETRY);
        }
        requests.send(next).await.map_err(|_| SessionError::Ended)?;
    }
}

fn same_partitions(
    followed: &BTreeMap<PartitionKey, Followed>,
    now: &BTreeMap<PartitionKey, FollowedPartition>,
) -> bool {
    followed.len() == now.len()
        && followed.iter().all(|(key, one)| {
            now.get(key)
                .is_some_and(|assigned| one.partition.same_as(assigned))
        })
}

/// What one answer asks of the session.
#[derive(Debug, Default)]
struct AnswerOutcome {
    /// A partition must reconcile now: a diverging epoch, or its log started again at the
    /// leader's log start.
    reconcile: bool,
    /// Partitions the leader refused (and dropped from its session): dropped here too,
    /// and fetched again in the next session.
    refused: usize,
}

/// Applies one answer: appends records, sets HWs and log starts, and adds the new
/// positions to `next`. A partition the leader refused leaves the session alone; a
/// refusal of the whole session ends it.
async fn apply_answer(
    answer: ReplicaFetchResponse,
    followed: &mut BTreeMap<PartitionKey, Followed>,
    next: &mut ReplicaFetchRequest,
) -> Result<AnswerOutcome, SessionError> {
    if let Some(error) = answer
        .error
        .filter(|error| error.code != ErrorCode::None as i32)
    {
        return Err(SessionError::Refused(error));
    }
    let mut outcome = AnswerOutcome::default();
    for fetched in answer.partitions {
        let key = (fetched.topic, fetched.partition);
        let Some(one) = followed.get_mut(&key) else {
            continue;
        };
        if let Some(error) = fetched
            .error
            .filter(|error| error.code != ErrorCode::None as i32)
        {
            let leader_log_start = Offset(fetched.log_start_offset);
            let log = Arc::clone(&one.partition.log);
            if error.code == ErrorCode::OffsetOutOfRange as i32
                && leader_log_start > log.log_end_offset()
            {
                // The leader's retention deleted what this replica lacks: Kafka's
                // truncateFullyAndStartAt.
                blocking(move || log.truncate_fully_and_start_at(leader_log_start)).await?;
                outcome.reconcile = true;
                continue;
            }
            tracing::warn!(partition = %log.dir().display(), code = error.code,
                message = %error.message, "the leader refused to serve a partition; fetching it again in a new session");
            followed.remove(&key);
            outcome.refused += 1;
            continue;
        }
        if fetched.diverging_epoch.is_some() {
            outcome.reconcile = true;
            continue;
        }
        let log = Arc::clone(&one.partition.log);
        let last_offset = if fetched.records.is_empty() {
            None
        } else {
            let records = fetched.records;
            let appended = blocking(move || log.append_as_follower(&records)).await?;
            Some(appended.last_offset)
        };
        let progress = one
            .state
            .on_fetch_answer(FetchAnswer {
                request_leader_epoch: one.state.leader_epoch(),
                last_offset,
                leader_high_watermark: Offset(fetched.high_watermark),
                leader_log_start_offset: Offset(fetched.log_start_offset),
            })
            .map_err(|refusal| SessionError::Other(refusal.to_string()))?;
        let log = &one.partition.log;
        log.set_high_watermark(progress.high_watermark.min(log.log_end_offset()));
        if progress.log_start_offset > log.log_start_offset() {
            let log = Arc::clone(log);
            let start = progress.log_start_offset;
            blocking(move || log.advance_log_start_offset(start)).await?;
        }
        if last_offset.is_some() {
            next.partitions.push(position(&key, one));
        }
    }
    Ok(outcome)
}

/// Runs a log operation on a blocking thread.
async fn blocking<T: Send + 'static>(
    operation: impl FnOnce() -> crate::log::LogResult<T> + Send + 'static,
) -> Result<T, SessionError> {
    tokio::task::spawn_blocking(operation)
        .await
        .map_err(|error| SessionError::Other(format!("log task failed: {error}")))?
        .map_err(SessionError::from)
}
