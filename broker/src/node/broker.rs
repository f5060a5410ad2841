//! The broker process core: owns the log manager, this broker's voter of the controller
//! quorum and the partitions this broker leads, and serves produce, fetch, offsets and
//! admin requests in domain terms. `service/` converts gRPC messages to these calls and
//! back.
//!
//! Metadata flow: an admin call becomes a [`ControllerRequest`] for the active controller
//! (the Raft leader; forwarded there when it is another broker), which writes metadata
//! records through Raft. Every broker follows the image its voter applies
//! ([`Quorum::subscribe`]) and acts on each new version: opens logs for partitions it now
//! leads, at their leader epoch, closes the ones another broker leads now, applies topic
//! configs, deletes the logs of deleted topics and of replicas moved away. An admin call
//! is answered once this broker has applied the version that holds its change.
//!
//! Start-up, following the metadata (`apply_image`), requests to the active controller and
//! the ISR changes of led partitions are in the child module `cluster` (`broker/cluster.rs`);
//! produce, fetch, offsets and shutdown are here.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_proto::record::{decode_batch, DecodeLimits, TimestampWindow, ValidateLimits};
use strata_proto::types::{BrokerId, LeaderEpoch, Offset, PartitionId, TopicName};
use tokio::sync::Notify;

mod cluster;

use super::descriptors::DescriptorBudget;
use super::error::NodeError;
use super::followers::{self, FollowedSpec};
use super::partition::{Appended, PartitionHandle, Written};
use super::replica_repair::{self, Decision, ReplicaRepairs};
use crate::controller::quorum::{
    ControllerReply, ControllerRequest, Quorum, QuorumConfig, ReplyBody, Voters, CONTROLLER_DIR,
};
use crate::controller::{
    BrokerDefaults, ControllerError, MetadataImage, MetadataLog, PartitionImage, PartitionLimits,
    TopicConfig,
};
use crate::log::{
    BackgroundSchedule, BackgroundTasks, Clock, LogConfig, LogError, LogManager, OpenSegments,
    SystemClock, TopicPartition,
};
use crate::replication::fetcher::{run_fetchers, FetcherIdentity, FollowerAssignment};
use crate::replication::leader::{AckState, IsrProposal};

/// The internal topic holding the cluster metadata log; never served to clients.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// Request limits, so that no client can make the broker hold or wait without bound
/// (`docs/RELIABILITY.md`, "Hostile inputs").
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest record batch accepted (Kafka `message.max.bytes`).
    pub message_max_bytes: usize,
    /// Largest fetch response.
    pub fetch_max_bytes: usize,
    /// Longest a fetch may wait.
    pub fetch_wait_max_ms: u64,
    /// How far in the future a record timestamp may be.
    pub timestamp_after_max_ms: i64,
    /// How far in the past a record timestamp may be (`None` = unlimited, Kafka's default).
    pub timestamp_before_max_ms: Option<i64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            message_max_bytes: 1 << 20,
            fetch_max_bytes: 50 << 20,
            fetch_wait_max_ms: 30_000,
            timestamp_after_max_ms: 3_600_000,
            timestamp_before_max_ms: None,
        }
    }
}

/// Everything the broker core needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_id: BrokerId,
    pub advertised_address: String,
    /// The external listener's advertised address, registered beside
    /// `advertised_address` (none without an external listener).
    pub external_advertised_address: Option<String>,
    pub data_dir: std::path::PathBuf,
    pub log_defaults: LogConfig,
    pub topic_defaults: BrokerDefaults,
    pub limits: Limits,
    /// How often retention looks for segments to delete.
    pub retention_check_interval: Duration,
    /// How many partitions and open sealed segments fit this process's limits
    /// (`descriptors.rs`); the caller checked that the data directory fits.
    pub descriptor_budget: DescriptorBudget,
    /// The controller quorum's voters (this broker alone for a one-node cluster).
    pub voters: Voters,
    pub rack: Option<String>,
    /// Where outgoing broker-to-broker connections come from (the listener's IP).
    pub local_ip: Option<std::net::IpAddr>,
    pub heartbeat_interval: Duration,
    pub session_timeout: Duration,
    /// How long an ISR follower of a partition led here may go without catching up
    /// before it is proposed out of the ISR (Kafka's `replica.lag.time.max.ms`).
    pub replica_lag_max: Duration,
}

/// One partition of a fetch request.
#[derive(Debug, Clone)]
pub struct FetchSpec {
    pub topic: String,
    pub partition: i32,
    pub fetch_offset: Offset,
    pub max_bytes: usize,
    pub current_leader_epoch: Option<LeaderEpoch>,
}

/// Batches up to this size are written (to the page cache) on the async task; larger ones
/// on a blocking thread. See [`Node::produce`].
const INLINE_WRITE_BYTES_MAX: usize = 64 << 10;

/// A fetch reads on the async task when every partition with data is at most this many
/// offsets behind its high watermark in its active segment (a consumer keeping up);
/// otherwise on a blocking thread. See [`Node::fetch`].
const TAIL_READ_OFFSETS_MAX: i64 = 1000;

/// What a fetch pass would read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadingNeeded {
    Nothing,
    Tail,
    Files,
}

/// Whether a fetch pass may read segment files (it runs on a blocking thread) or must
/// answer from memory only (it runs on the async task).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reads {
    Allowed,
    Forbidden,
}

/// What a fetch returns for one partition.
#[derive(Debug, Clone)]
pub struct FetchedData {
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
    pub records: Bytes,
}

/// An offset found by [`Node::list_offset`].
#[derive(Debug, Clone, Copy)]
pub struct ListedOffset {
    pub offset: Offset,
    pub timestamp_ms: i64,
    pub leader_epoch: LeaderEpoch,
}

/// Which offset [`Node::list_offset`] looks for.
#[derive(Debug, Clone, Copy)]
pub enum OffsetQuery {
    Earliest,
    Latest,
    Timestamp(i64),
}

/// The broker core. See the module docs.
#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    logs: Arc<LogManager>,
    quorum: Arc<Quorum>,
    partitions: RwLock<HashMap<(String, i32), Arc<PartitionHandle>>>,
    /// The metadata version the partitions reflect; images are applied in order, once.
    applied_version: std::sync::Mutex<i64>,
    appended: Notify,
    /// Set once by [`Node::begin_shutdown`]; `stop` wakes whoever waits for it.
    shutting_down: AtomicBool,
    stop: Notify,
    background: std::sync::Mutex<Option<BackgroundTasks>>,
    fatal: tokio::sync::watch::Sender<Option<String>>,
    /// The partitions this broker follows, for the replica fetchers (`followers.rs`).
    followed: tokio::sync::watch::Sender<Arc<FollowerAssignment>>,
    /// Damaged replicas being repaired or kept offline (`replica_repair.rs`).
    repairs: ReplicaRepairs,
}

/// A batch written to its log, waiting to count (fsync, high watermark).
#[derive(Debug)]
pub struct PendingAppend {
    node: Arc<Node>,
    handle: Arc<PartitionHandle>,
    written: Written,
}

impl PendingAppend {
    /// Waits until the batch counts (fsynced under `flush = always`) and wakes fetchers.
    /// Only the commit that runs an fsync goes to a blocking thread; the others
    /// (`flush = interval`, already durable, or covered by an fsync that is running)
    /// finish here without a thread handoff.
    pub async fn commit(self) -> Result<Appended, NodeError> {
        let PendingAppend {
            node,
            handle,
            written,
        } = self;
        let result = handle.commit_async(written).await;
        let appended = node.check_fatal(result)?;
        node.appended.notify_waiters();
        Ok(appended)
    }

    /// [`PendingAppend::commit`] for `acks=all`: then, for a partition with more than one
    /// replica, waits until the high watermark passes the batch (every ISR member holds
    /// it), at most `timeout` (`REQUEST_TIMED_OUT`). The ISR shrinking below
    /// `min_insync_replicas` meanwhile answers `NOT_ENOUGH_REPLICAS_AFTER_APPEND`; this
    /// broker no longer leading answers `NOT_LEADER`.
    pub async fn commit_acks_all(self, timeout: Duration) -> Result<Appended, NodeError> {
        let node = Arc::clone(&self.node);
        let handle = Arc::clone(&self.handle);
        let end_offset = self.written.end_offset;
        let appended = self.commit().await?;
        if !handle.is_replicated() {
            return Ok(appended);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = node.appended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !node.leads(&handle) {
                return Err(NodeError::NotLeader {
                    topic: handle.topic.as_str().to_owned(),
                    partition: handle.partition.0,
                    leader: None,
                });
            }
            match handle.acks_all_state(end_offset) {
                AckState::Ready => return Ok(appended),
                AckState::NotEnoughReplicas => return Err(NodeError::NotEnoughReplicasAfterAppend),
                AckState::Waiting => {}
            }
            if node.is_shutting_down() {
                return Err(NodeError::ShuttingDown);
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(deadline) => {
                    return Err(NodeError::RequestTimedOut {
                        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                    })
                }
            }
        }
    }
}

impl Node {
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.quorum.image()
    }

    /// The broker's topic defaults (what a topic without overrides gets).
    pub fn defaults(&self) -> &BrokerDefaults {
        self.quorum.defaults()
    }

    /// The partition `topic`-`partition` if this broker leads it; `NotLeader` (with the
    /// leader the metadata names) if another broker does; `NoControllerLease` while this
    /// broker cannot reach the controller (`Quorum::holds_lease`).
    pub fn partition(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<PartitionHandle>, NodeError> {
        let found = self
            .partitions
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&(topic.to_owned(), partition))
            .cloned();
        if let Some(handle) = found {
            if !self.quorum.holds_lease() {
                return Err(NodeError::NoControllerLease {
                    topic: topic.to_owned(),
                    partition,
                });
            }
            return Ok(handle);
        }
        match self.quorum.image().partition(topic, partition) {
            Some(state) if topic != METADATA_TOPIC => Err(NodeError::NotLeader {
                topic: topic.to_owned(),
                partition,
                leader: state
                    .leader
                    .filter(|leader| *leader != self.config.node_id)
                    .map(|leader| leader.0),
            }),
            _ => Err(NodeError::UnknownTopicOrPartition {
                topic: topic.to_owned(),
                partition,
            }),
        }
    }

    /// The checks a batch produced to `topic` must pass. Its size limits are the topic's
    /// `message_max_bytes` where that is below the broker's (the broker's sizes the
    /// transport, and a topic cannot be set above it). A compressed batch may expand to
    /// at most `decompressed_bytes_max` (the caller bounds that memory broker-wide,
    /// `service::decompression`).
    /// A compacted topic's records must have keys (Kafka's INVALID_RECORD).
    fn validate_limits(&self, topic: &str, decompressed_bytes_max: usize) -> ValidateLimits {
        let limits = &self.config.limits;
        let message_max_bytes = self
            .topic_message_max_bytes(topic)
            .map_or(limits.message_max_bytes, |topic_max| {
                topic_max.min(limits.message_max_bytes)
            });
        let keys_required = self.topic_compacted(topic);
        let now_ms = SystemClock.now_ms();
        ValidateLimits {
            batch_bytes_max: message_max_bytes,
            record_bytes_max: message_max_bytes,
            decompressed_bytes_max,
            timestamp_window: Some(TimestampWindow {
                now_ms,
                before_ms_max: limits.timestamp_before_max_ms.unwrap_or(i64::MAX),
                after_ms_max: limits.timestamp_after_max_ms,
            }),
            keys_required,
            ..ValidateLimits::default()
        }
    }

    /// Whether `topic`'s effective `cleanup_policy` compacts it.
    fn topic_compacted(&self, topic: &str) -> bool {
        let image = self.quorum.image();
        image.topics.get(topic).is_some_and(|state| {
            let effective = TopicConfig::effective(&state.configs, self.defaults());
            effective.cleanup_policy.value.compacts()
        })
    }

    /// The effective `message_max_bytes` of `topic` (its override, else the broker
    /// default), or `None` for a topic the metadata does not know.
    fn topic_message_max_bytes(&self, topic: &str) -> Option<usize> {
        let image = self.quorum.image();
        let state = image.topics.get(topic)?;
        let effective = TopicConfig::effective(&state.configs, self.defaults());
        Some(usize::try_from(effective.message_max_bytes.value).unwrap_or(0))
    }

    /// Writes one batch (validated, deduplicated) and returns the pending append; the
    /// caller awaits [`PendingAppend::commit`] for the acknowledgement. A producer's
    /// batches are written in the order of these calls. A compressed batch whose records
    /// expand beyond `decompressed_bytes_max` is refused (`MESSAGE_TOO_LARGE`) and not
    /// written.
    /// Internal topics (`__` prefix) are refused: only the broker writes them
    /// ([`Node::append_internal`]).
    pub async fn produce(
        self: &Arc<Self>,
        topic: &str,
        partition: i32,
        batch: Bytes,
        decompressed_bytes_max: usize,
    ) -> Result<PendingAppend, NodeError> {
        if topic.starts_with(crate::controller::topic_validation::INTERNAL_TOPIC_PREFIX) {
            return Err(NodeError::InternalTopic {
                topic: topic.to_owned(),
            });
        }
        self.write_batch(topic, partition, batch, decompressed_bytes_max)
            .await
    }

    /// [`Node::produce`] for the broker's own writes to an internal topic (the group
    /// coordinator's `__consumer_offsets` records).
    pub(crate) async fn append_internal(
        self: &Arc<Self>,
        topic: &str,
        partition: i32,
        batch: Bytes,
    ) -> Result<PendingAppend, NodeError> {
        let decompressed_bytes_max = batch.len();
        self.write_batch(topic, partition, batch, decompressed_bytes_max)
            .await
    }

    async fn write_batch(
        self: &Arc<Self>,
        topic: &str,
        partition: i32,
        batch: Bytes,
        decompressed_bytes_max: usize,
    ) -> Result<PendingAppend, NodeError> {
        if self.is_shutting_down() {
            return Err(NodeError::ShuttingDown);
        }
        let handle = self.partition(topic, partition)?;
        let limits = self.validate_limits(topic, decompressed_bytes_max);
        let inline = batch.len() <= INLINE_WRITE_BYTES_MAX
            && !handle.log.append_would_roll(batch.len() as u64);
        let written = if inline {
            // A small page-cache write takes microseconds: cheaper here than the two
            // thread wake-ups of a blocking task, which dominate small-request workloads.
            // One that rolls the segment (new files, a directory fsync) goes to a blocking
            // thread like a large one.
            handle.write(&batch, &limits)
        } else {
            let writer = Arc::clone(&handle);
            tokio::task::spawn_blocking(move || writer.write(&batch, &limits))
                .await
                .map_err(NodeError::from_join)?
        };
        let written = self.check_fatal(written)?;
        Ok(PendingAppend {
            node: Arc::clone(self),
            handle,
            written,
        })
    }

    /// Notes a fatal storage error (a failed fsync): the process must stop.
    fn check_fatal<T>(&self, result: Result<T, NodeError>) -> Result<T, NodeError> {
        if let Err(NodeError::Log(error)) = &result {
            if error.is_fatal() {
                self.report_fatal(error);
            }
        }
        result
    }

    fn report_fatal(&self, error: &LogError) {
        tracing::error!(%error, "fatal storage error; the broker stops");
        self.fatal.send_replace(Some(error.to_string()));
    }

    /// Resolves when a fatal storage error has happened, with its description.
    pub async fn fatal_error(&self) -> String {
        let mut receiver = self.fatal.subscribe();
        loop {
            if let Some(reason) = receiver.borrow_and_update().clone() {
                return reason;
            }
            if receiver.changed().await.is_err() {
                return "fatal error channel closed".to_owned();
            }
        }
    }

    /// A long-poll fetch: returns once `min_bytes` are available across the partitions,
    /// an error occurs, `max_wait` has passed, or shutdown has begun. Never returns data
    /// at or above a partition's high watermark.
    pub async fn fetch(
        self: &Arc<Self>,
        specs: Vec<FetchSpec>,
        max_wait: Duration,
        min_bytes: usize,
        max_bytes: usize,
    ) -> Vec<Result<FetchedData, NodeError>> {
        let max_wait = max_wait.min(Duration::from_millis(self.config.limits.fetch_wait_max_ms));
        let max_bytes = max_bytes.clamp(1, self.config.limits.fetch_max_bytes);
        let deadline = Instant::now() + max_wait;
        loop {
            let notified = self.appended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let results = match self.reading_needed(&specs) {
                ReadingNeeded::Tail => {
                    // Only the active segment's end, which was just written: the page
                    // cache has it, so the copy is cheaper here than two thread wake-ups.
                    self.read_partitions(&specs, max_bytes, Reads::Allowed)
                }
                ReadingNeeded::Files => {
                    let node = Arc::clone(self);
                    let read_specs = specs.clone();
                    tokio::task::spawn_blocking(move || {
                        node.read_partitions(&read_specs, max_bytes, Reads::Allowed)
                    })
                    .await
                    .unwrap_or_else(|error| vec![Err(NodeError::from_join(error))])
                }
                ReadingNeeded::Nothing => {
                    // Every partition is at its high watermark (or answers an error):
                    // nothing to read, so no trip to a blocking thread — a long poll
                    // waiting for new data costs no thread hop until data arrives.
                    self.read_partitions(&specs, max_bytes, Reads::Forbidden)
                }
            };
            let total: usize = results
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .map(|d| d.records.len())
                .sum();
            let now = Instant::now();
            if total >= min_bytes.max(1)
                || results.iter().any(Result::is_err)
                || now >= deadline
                || self.is_shutting_down()
            {
                return results;
            }
            if tokio::time::timeout(deadline - now, notified)
                .await
                .is_err()
            {
                // Timed out: one last read so data that arrived at the deadline is served.
                continue;
            }
        }
    }

    /// Reads each partition in turn within `max_bytes` in total. Only the first partition
    /// that returns data may exceed the limit (by one whole batch, KIP-74); once the limit
    /// is used up the rest are answered without reading, so repeating a partition many
    /// times in one request cannot multiply what the broker reads.
    fn read_partitions(
        &self,
        specs: &[FetchSpec],
        max_bytes: usize,
        reads: Reads,
    ) -> Vec<Result<FetchedData, NodeError>> {
        let mut remaining = max_bytes;
        let mut any_data = false;
        let mut results = Vec::with_capacity(specs.len());
        for spec in specs {
            let result = self.read_partition(spec, remaining, any_data, reads);
            if let Ok(data) = &result {
                remaining = remaining.saturating_sub(data.records.len());
                any_data |= !data.records.is_empty();
            }
            results.push(result);
        }
        results
    }

    /// What a fetch of `specs` would read now, without reading: nothing (every partition
    /// is at its high watermark or answers an error), only the tails of active segments
    /// (data written within the last `TAIL_READ_OFFSETS_MAX` offsets), or more.
    fn reading_needed(&self, specs: &[FetchSpec]) -> ReadingNeeded {
        let mut needed = ReadingNeeded::Nothing;
        for spec in specs {
            let Ok(handle) = self.partition(&spec.topic, spec.partition) else {
                continue;
            };
            let high_watermark = handle.log.high_watermark();
            if spec.fetch_offset >= high_watermark {
                continue;
            }
            let recent = spec.fetch_offset >= handle.log.active_segment_base_offset()
                && high_watermark.0 - spec.fetch_offset.0 <= TAIL_READ_OFFSETS_MAX;
            if !recent {
                return ReadingNeeded::Files;
            }
            needed = ReadingNeeded::Tail;
        }
        needed
    }

    fn read_partition(
        &self,
        spec: &FetchSpec,
        remaining_bytes: usize,
        strict: bool,
        reads: Reads,
    ) -> Result<FetchedData, NodeError> {
        let handle = self.partition(&spec.topic, spec.partition)?;
        // A damaged log refuses every fetch, also one at its high watermark (which reads
        // nothing), so a consumer at the end is told rather than left waiting.
        handle.log.check_online()?;
        let current = handle.leader_epoch();
        if let Some(requested) = spec.current_leader_epoch {
            if requested < current {
                return Err(NodeError::FencedLeaderEpoch { requested, current });
            }
            if requested > current {
                return Err(NodeError::UnknownLeaderEpoch { requested, current });
            }
        }
        let high_watermark = handle.log.high_watermark();
        let log_start_offset = handle.log.log_start_offset();
        // Checked against the log end, not the HW (Kafka's KAFKA-2334): a follower that
        // took over may have a HW below offsets its consumers already read from the old
        // leader; they get nothing until the HW passes them, not an error.
        let log_end_offset = handle.log.log_end_offset();
        if spec.fetch_offset < log_start_offset || spec.fetch_offset > log_end_offset {
            return Err(NodeError::OffsetOutOfRange {
                offset: spec.fetch_offset,
                log_start_offset,
                log_end_offset,
            });
        }
        // Sizes are clamped, never refused: the first partition with data always gets at
        // least one whole batch (a limit of 0 included); later ones only what fits.
        let max_bytes = spec.max_bytes.min(remaining_bytes);
        let records = if spec.fetch_offset >= high_watermark
            || (strict && max_bytes == 0)
            || reads == Reads::Forbidden
        {
            // With reads forbidden (the high watermark moved since `anything_to_read`),
            // the empty answer sends the long poll round again, to a blocking read.
            Bytes::new()
        } else if strict {
            handle
                .log
                .read_within(spec.fetch_offset, max_bytes, Some(high_watermark))?
                .batches
        } else {
            handle
                .log
                .read(spec.fetch_offset, max_bytes.max(1), Some(high_watermark))?
                .batches
        };
        Ok(FetchedData {
            high_watermark,
            log_start_offset,
            records,
        })
    }

    /// Kafka's ListOffsets: earliest, latest (the high watermark), or the first record
    /// with a timestamp ≥ the one given (offset -1 when there is none).
    pub fn list_offset(
        &self,
        topic: &str,
        partition: i32,
        query: OffsetQuery,
    ) -> Result<ListedOffset, NodeError> {
        let handle = self.partition(topic, partition)?;
        let leader_epoch = handle.leader_epoch();
        let listed = |offset, timestamp_ms| ListedOffset {
            offset,
            timestamp_ms,
            leader_epoch,
        };
        match query {
            OffsetQuery::Earliest => Ok(listed(handle.log.log_start_offset(), -1)),
            OffsetQuery::Latest => {
                handle.check_high_watermark_settled()?;
                Ok(listed(handle.log.high_watermark(), -1))
            }
            OffsetQuery::Timestamp(target_ms) => {
                handle.check_high_watermark_settled()?;
                let Some(base) = handle.log.find_batch_by_timestamp(target_ms)? else {
                    return Ok(listed(Offset(-1), -1));
                };
                let high_watermark = handle.log.high_watermark();
                let read = handle.log.read(base, 1, Some(high_watermark))?;
                let limits = DecodeLimits::default();
                let batch_len = strata_proto::record::BatchHeader::parse(&read.batches)
                    .map(|header| header.total_bytes())
                    .unwrap_or(0);
                let Some(batch) = read.batches.get(..batch_len) else {
                    return Ok(listed(Offset(-1), -1));
                };
                let decoded = decode_batch(batch, &limits)?;
                Ok(decoded
                    .records
                    .iter()
                    .find(|record| record.timestamp_ms >= target_ms)
                    .map_or(listed(Offset(-1), -1), |record| {
                        listed(record.offset, record.timestamp_ms)
                    }))
            }
        }
    }

    /// A new producer id for an idempotent producer (epoch 0).
    pub async fn init_producer_id(&self) -> Result<(i64, i16), NodeError> {
        Ok((self.quorum.allocate_producer_id().await?, 0))
    }

    /// `(log start, high watermark, log end)` of a partition led here.
    pub fn partition_offsets(
        &self,
        topic: &str,
        partition: i32,
    ) -> Option<(Offset, Offset, Offset)> {
        let handle = self.partition(topic, partition).ok()?;
        Some((
            handle.log.log_start_offset(),
            handle.log.high_watermark(),
            handle.log.log_end_offset(),
        ))
    }

    /// Topic name → partition → offsets, for describe.
    pub fn all_offsets(&self) -> BTreeMap<(String, i32), (Offset, Offset, Offset)> {
        self.partitions
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|(key, handle)| {
                let log = &handle.log;
                (
                    key.clone(),
                    (
                        log.log_start_offset(),
                        log.high_watermark(),
                        log.log_end_offset(),
                    ),
                )
            })
            .collect()
    }

    /// Bytes on disk of every partition log here (led or followed), summed per topic:
    /// the `strata_log_size_bytes` gauge. Takes each log's state lock; blocking.
    pub fn log_sizes(&self) -> BTreeMap<String, u64> {
        let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
        for partition in self.logs.partitions() {
            if let Some(log) = self.logs.get(&partition) {
                *sizes
                    .entry(partition.topic.as_str().to_owned())
                    .or_default() += log.size_bytes();
            }
        }
        sizes
    }

    /// The first step of a shutdown: from now on produce is refused
    /// ([`NodeError::ShuttingDown`]), long-poll fetches return what they have, and
    /// whoever waits in [`Node::stopping`] (the produce and fetch streams, the server)
    /// wakes. The logs stay open, so commits already under way finish. Idempotent.
    pub fn begin_shutdown(&self) {
        if self.shutting_down.swap(true, Ordering::AcqRel) {
            return;
        }
        self.stop.notify_waiters();
        self.appended.notify_waiters();
    }

    /// Whether [`Node::begin_shutdown`] has been called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Resolves once shutdown has begun (at once if it already has).
    pub async fn stopping(&self) {
        let notified = self.stop.notified();
        tokio::pin!(notified);
        // Registered before the flag is read, so a `begin_shutdown` in between wakes it.
        notified.as_mut().enable();
        if self.is_shutting_down() {
            return;
        }
        notified.await;
    }

    /// Clean shutdown: refuse new produce, stop background tasks, close every log (fsync,
    /// checkpoints) and write the clean-shutdown marker. Blocking.
    pub fn shutdown(&self) -> Result<(), NodeError> {
        self.begin_shutdown();
        drop(
            self.background
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take(),
        );
        self.logs.close()?;
        Ok(())
    }
}
