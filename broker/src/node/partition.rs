//! One partition this broker leads: its log, leader epoch, producer state and the
//! append path with acks and idempotence.
//!
//! The append path holds the producer-state lock only while checking sequences and
//! writing the batch (page cache), never while waiting for the fsync, so concurrent
//! producers still share one fsync (group commit). The high watermark of a one-replica
//! partition is the durable log end under `flush = always` and the log end under
//! `flush = interval`; it only moves forward.
//!
//! A produce that must wait for an fsync ([`PartitionHandle::commit_async`]) waits as a
//! task while another produce's fsync runs, and only the one that starts the next fsync
//! takes a blocking thread for it: a commit costs no thread hand-offs beyond that fsync's.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use strata_proto::record::{CheckedBatch, ValidateLimits};
use strata_proto::types::{BrokerId, LeaderEpoch, Offset, PartitionId, TopicName};

use super::error::NodeError;
use super::producer_snapshots;
use super::producer_state::{ProducerStateTable, SequenceCheck};
use crate::controller::PartitionImage;
use crate::log::{Durability, FlushPolicy, LogError, PartitionLog, ReplicaRole};
use crate::replication::leader::{
    AckState, FollowerFetch, IsrProposal, LeaderConfig, LeaderMetadataDecision, LeaderPartition,
    LeaderStart,
};

/// Counter `strata_leader_elections_total`: partitions this broker took the leadership
/// of. Summed over the brokers, the cluster's leader elections; a rate that does not
/// settle is leadership flapping.
pub const LEADER_ELECTIONS_TOTAL: &str = "strata_leader_elections_total";

/// Which acknowledgement the producer asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// No response at all.
    None,
    /// After the leader's append (and fsync under `flush = always`).
    Leader,
    /// Once the high watermark passes the batch (RF 1: same as `Leader`).
    All,
}

impl Acks {
    /// Kafka's wire values: 0, 1, -1.
    pub fn from_wire(acks: i32) -> Result<Acks, NodeError> {
        match acks {
            0 => Ok(Acks::None),
            1 => Ok(Acks::Leader),
            -1 => Ok(Acks::All),
            other => Err(NodeError::InvalidRequiredAcks { acks: other }),
        }
    }
}

/// The outcome of a produce that the broker acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: Offset,
    pub log_start_offset: Offset,
}

/// A partition led by this broker.
#[derive(Debug)]
pub struct PartitionHandle {
    pub topic: TopicName,
    pub partition: PartitionId,
    pub log: Arc<PartitionLog>,
    leader_epoch: Mutex<LeaderEpoch>,
    producers: Mutex<ProducerStateTable>,
    /// Each follower's last replica fetch: its log end offset, and when it was reported
    /// (for inspection; [`LeaderPartition`] is what counts them).
    follower_fetches: Mutex<BTreeMap<BrokerId, FollowerFetchOffset>>,
    /// Whether `leader` holds a [`LeaderPartition`] (more than one replica). A one-replica
    /// partition reads only this flag on its append path.
    replicated: AtomicBool,
    /// The replication state of a partition with more than one replica: it alone moves the
    /// high watermark then.
    leader: Mutex<Option<LeaderPartition>>,
}

/// A follower's log end offset as its latest replica fetch reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerFetchOffset {
    pub fetch_offset: Offset,
    pub at: Instant,
}

impl PartitionHandle {
    /// Wraps an opened log, rebuilding the producer state from its newest snapshot and the
    /// batch headers after it.
    pub fn open(
        topic: TopicName,
        partition: PartitionId,
        log: Arc<PartitionLog>,
        leader_epoch: LeaderEpoch,
    ) -> Result<PartitionHandle, NodeError> {
        // From here on a replica fetch still in flight cannot append behind the log end
        // read below (`log/partition_log/role.rs`).
        log.set_role(ReplicaRole::Leading);
        let producers = producer_snapshots::load(&log)?;
        // The high watermark is left as the log has it (its checkpoint, or what this
        // broker learnt as a follower): `on_metadata` decides. A one-replica partition
        // moves it to its durable end there; a replicated one must not, or records no
        // other in-sync replica holds would become visible when it takes over.
        Ok(PartitionHandle {
            topic,
            partition,
            log,
            leader_epoch: Mutex::new(leader_epoch),
            producers: Mutex::new(producers),
            follower_fetches: Mutex::new(BTreeMap::new()),
            replicated: AtomicBool::new(false),
            leader: Mutex::new(None),
        })
    }

    fn leader_state(&self) -> MutexGuard<'_, Option<LeaderPartition>> {
        self.leader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether this partition has more than one replica (a [`LeaderPartition`] drives it).
    pub fn is_replicated(&self) -> bool {
        self.replicated.load(Ordering::Acquire)
    }

    /// The leader's log end offset that counts toward the high watermark: the durable
    /// offset under `flush = always`, the log end under `flush = interval`.
    fn counted_log_end(&self) -> Offset {
        match self.log.config().flush {
            FlushPolicy::Always => self.log.durable_offset(),
            FlushPolicy::Interval { .. } => self.log.log_end_offset(),
        }
    }

    /// Adopts the controller's `image` of this partition, which `local` leads: a partition
    /// with more than one replica gets (or updates) its [`LeaderPartition`], with `config`
    /// (the topic's `min.insync.replicas` may have changed since); one back to a single
    /// replica drops it. Returns whether the high watermark advanced (wake waiters).
    pub fn on_metadata(
        &self,
        local: BrokerId,
        image: &PartitionImage,
        config: LeaderConfig,
        now: Instant,
    ) -> bool {
        let mut state = self.leader_state();
        if image.replicas.len() <= 1 {
            // One replica: the high watermark is the counted log end (advancing never
            // moves it back, so calling this on every image is harmless).
            let before = self.log.high_watermark();
            self.log.advance_high_watermark(self.counted_log_end());
            if state.take().is_some() {
                self.replicated.store(false, Ordering::Release);
            }
            return self.log.high_watermark() != before;
        }
        let advanced = match state.as_mut() {
            Some(leader) => {
                if leader.config() != config {
                    tracing::info!(
                        topic = self.topic.as_str(),
                        partition = self.partition.0,
                        min_insync_replicas = config.min_insync_replicas,
                        replica_lag_max_ms = config.replica_lag_max.as_millis(),
                        "the leader's replication settings changed"
                    );
                    leader.set_config(config);
                }
                match leader.on_metadata(image, now) {
                    LeaderMetadataDecision::Continue {
                        new_high_watermark: Some(high_watermark),
                    } => {
                        self.log.advance_high_watermark(high_watermark);
                        true
                    }
                    _ => false,
                }
            }
            None => {
                let log_end = self.counted_log_end();
                let high_watermark = self.log.high_watermark().min(log_end);
                let start = LeaderStart::from_image(local, image, log_end, high_watermark);
                let leader = LeaderPartition::new(start, config, now);
                // Above the log's only when this broker is the ISR alone.
                let advanced = leader.high_watermark() > high_watermark;
                if advanced {
                    self.log.advance_high_watermark(leader.high_watermark());
                }
                *state = Some(leader);
                self.replicated.store(true, Ordering::Release);
                advanced
            }
        };
        advanced
    }

    /// A follower's replica fetch from `fetch_offset` (its log end offset) at the leader
    /// epoch `current_leader_epoch`. Returns whether the high watermark advanced.
    pub fn on_follower_fetch(
        &self,
        follower: BrokerId,
        fetch_offset: Offset,
        current_leader_epoch: LeaderEpoch,
    ) -> bool {
        if !self.is_replicated() {
            return false;
        }
        let counted = self.counted_log_end();
        let mut state = self.leader_state();
        let Some(leader) = state.as_mut() else {
            return false;
        };
        let mut advanced = leader.on_leader_append(counted);
        // A follower may hold records written here but not yet fsynced (flush = always):
        // it holds at least what counts here.
        let fetch = FollowerFetch {
            follower,
            fetch_offset: fetch_offset.min(leader.log_end_offset()),
            current_leader_epoch,
        };
        if let Ok(decision) = leader.on_follower_fetch(fetch, Instant::now()) {
            advanced = decision.new_high_watermark.or(advanced);
        }
        if let Some(high_watermark) = advanced {
            self.log.advance_high_watermark(high_watermark);
        }
        advanced.is_some()
    }

    /// The ISR change to ask the controller for now, if any (one in flight at a time).
    pub fn isr_change(&self, now: Instant) -> Option<IsrProposal> {
        self.leader_state().as_mut()?.isr_change(now)
    }

    /// The controller committed an ISR. Returns whether the high watermark advanced.
    pub fn on_isr_committed(&self, isr: Vec<BrokerId>, partition_epoch: i32) -> bool {
        let mut state = self.leader_state();
        let Some(leader) = state.as_mut() else {
            return false;
        };
        match leader.on_isr_committed(isr, partition_epoch) {
            Some(high_watermark) => {
                self.log.advance_high_watermark(high_watermark);
                true
            }
            None => false,
        }
    }

    /// The controller refused `proposal`.
    pub fn on_isr_refused(&self, proposal: &IsrProposal) {
        if let Some(leader) = self.leader_state().as_mut() {
            leader.on_isr_refused(proposal);
        }
    }

    /// Kafka's `NOT_ENOUGH_REPLICAS` check before an `acks=all` append.
    pub fn check_acks_all(&self) -> Result<(), NodeError> {
        if !self.is_replicated() {
            return Ok(());
        }
        match self.leader_state().as_ref() {
            Some(leader) => {
                leader
                    .check_append_allowed()
                    .map_err(|refused| NodeError::NotEnoughReplicas {
                        isr_size: refused.isr_size,
                        min_insync_replicas: refused.min_insync_replicas,
                    })
            }
            None => Ok(()),
        }
    }

    /// KIP-207: refuses while this replicated partition's high watermark is below the
    /// start of its leader epoch (a follower that took over knows the old leader's HW only
    /// from its last fetch), so an offset listed now is never below one already listed.
    pub fn check_high_watermark_settled(&self) -> Result<(), NodeError> {
        if !self.is_replicated() {
            return Ok(());
        }
        let Some(epoch_start_offset) = self
            .leader_state()
            .as_ref()
            .map(LeaderPartition::epoch_start_offset)
        else {
            return Ok(());
        };
        let high_watermark = self.log.high_watermark();
        if high_watermark < epoch_start_offset {
            return Err(NodeError::OffsetNotAvailable {
                high_watermark,
                epoch_start_offset,
            });
        }
        Ok(())
    }

    /// Whether an `acks=all` batch ending before `end_offset` may be answered (always
    /// `Ready` for a one-replica partition: its commit moved the high watermark).
    pub fn acks_all_state(&self, end_offset: Offset) -> AckState {
        if !self.is_replicated() {
            return AckState::Ready;
        }
        match self.leader_state().as_ref() {
            Some(leader) => leader.acks_all_ready(end_offset.plus(-1)),
            None => AckState::Ready,
        }
    }

    /// Notes that `replica` fetched from `fetch_offset` (its log end offset) just now.
    pub fn record_follower_fetch(&self, replica: BrokerId, fetch_offset: Offset) {
        self.follower_fetches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(
                replica,
                FollowerFetchOffset {
                    fetch_offset,
                    at: Instant::now(),
                },
            );
    }

    /// Every follower's latest reported log end offset.
    pub fn follower_fetch_offsets(&self) -> BTreeMap<BrokerId, FollowerFetchOffset> {
        self.follower_fetches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn producers(&self) -> MutexGuard<'_, ProducerStateTable> {
        self.producers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn leader_epoch(&self) -> LeaderEpoch {
        *self
            .leader_epoch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn set_leader_epoch(&self, epoch: LeaderEpoch) {
        *self
            .leader_epoch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = epoch;
    }

    /// Validates, deduplicates and writes one batch (page cache only); returns where it
    /// went. Call [`PartitionHandle::commit`] with the result to make it count. Splitting
    /// the two lets a producer's next batch be written while this one's fsync runs.
    /// Blocking: call it from a blocking thread.
    pub fn write(&self, batch: &Bytes, limits: &ValidateLimits) -> Result<Written, NodeError> {
        let checked = CheckedBatch::validate(batch, limits)?;
        let header = *checked.header();
        let epoch = self.leader_epoch();
        // Read before the append: a truncation in between counts against this batch.
        let truncation_generation = self.log.truncation_generation();
        let mut producers = self.producers();
        let base_offset = match producers.check(&header) {
            SequenceCheck::Append => {
                let info = self.log.append_deferred(checked, epoch)?;
                producers.record(&header, info.base_offset);
                info.base_offset
            }
            SequenceCheck::Duplicate { base_offset } => base_offset,
            SequenceCheck::Fenced { current_epoch } => {
                return Err(NodeError::ProducerFenced {
                    producer_id: header.producer_id,
                    epoch: header.producer_epoch,
                    current_epoch,
                })
            }
            SequenceCheck::OutOfOrder { expected, actual } => {
                return Err(NodeError::OutOfOrderSequence {
                    producer_id: header.producer_id,
                    expected,
                    actual,
                })
            }
            SequenceCheck::UnknownProducer { actual } => {
                return Err(NodeError::UnknownProducerId {
                    producer_id: header.producer_id,
                    actual,
                })
            }
        };
        Ok(Written {
            base_offset,
            end_offset: base_offset.plus(i64::from(header.last_offset_delta) + 1),
            truncation_generation,
        })
    }

    /// [`PartitionHandle::commit`] when it would not block: under `flush = interval`, or
    /// when group commit already made the batch durable. `None` means it must wait for an
    /// fsync: call `commit` from a blocking thread.
    pub fn commit_without_waiting(&self, written: Written) -> Option<Result<Appended, NodeError>> {
        // One read of the policy: a config change in between must not turn this into a
        // blocking wait on an async thread.
        let flush = self.log.config().flush;
        let must_wait = match flush {
            FlushPolicy::Always => self.log.durable_offset() < written.end_offset,
            FlushPolicy::Interval { .. } => false,
        };
        (!must_wait).then(|| self.commit_under(flush, written))
    }

    /// [`PartitionHandle::commit`] for async callers: waits for the running fsync as a task
    /// (no thread), and runs the next fsync on a blocking thread when it falls to this
    /// caller (group commit's claim, `log/group_commit.rs`).
    pub async fn commit_async(self: Arc<Self>, written: Written) -> Result<Appended, NodeError> {
        loop {
            if let Some(result) = self.commit_without_waiting(written) {
                return result;
            }
            let durability =
                std::future::poll_fn(|context| self.log.poll_durable(written.end_offset, context))
                    .await?;
            let Durability::SyncClaimed(claim) = durability else {
                continue; // durable now; commit without waiting
            };
            let handle = Arc::clone(&self);
            return tokio::task::spawn_blocking(move || {
                claim.sync()?;
                handle.commit(written)
            })
            .await
            .map_err(NodeError::from_join)?;
        }
    }

    /// Makes everything below `written.end_offset` count: waits for the fsync under
    /// `flush = always` (group commit), then moves the high watermark, never backwards.
    /// Blocking.
    pub fn commit(&self, written: Written) -> Result<Appended, NodeError> {
        self.commit_under(self.log.config().flush, written)
    }

    fn commit_under(&self, flush: FlushPolicy, written: Written) -> Result<Appended, NodeError> {
        self.check_not_truncated(written)?;
        let high_watermark = match flush {
            FlushPolicy::Always => {
                self.log.wait_durable(written.end_offset)?;
                self.log.durable_offset()
            }
            FlushPolicy::Interval { .. } => self.log.log_end_offset(),
        };
        self.check_not_truncated(written)?;
        if self.replicated.load(Ordering::Acquire) {
            // More than one replica: the leader's log end counts toward the high
            // watermark, which only `LeaderPartition` moves.
            let advanced = self
                .leader_state()
                .as_mut()
                .and_then(|leader| leader.on_leader_append(high_watermark));
            if let Some(advanced) = advanced {
                self.log.advance_high_watermark(advanced);
            }
        } else {
            self.log.advance_high_watermark(high_watermark);
        }
        Ok(Appended {
            base_offset: written.base_offset,
            log_start_offset: self.log.log_start_offset(),
        })
    }
}

impl PartitionHandle {
    /// `LogError::Truncated` when the log was truncated since `written` was written:
    /// the batch may be gone, and offsets past it may hold another leader's records.
    fn check_not_truncated(&self, written: Written) -> Result<(), NodeError> {
        if self.log.truncation_generation() == written.truncation_generation {
            return Ok(());
        }
        Err(NodeError::Log(LogError::Truncated {
            path: self.log.dir().to_path_buf(),
            target: written.end_offset,
            log_end_offset: self.log.log_end_offset(),
        }))
    }
}

/// A batch written to the log but not yet committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub base_offset: Offset,
    /// The offset after the batch's last record.
    pub end_offset: Offset,
    /// The log's truncation count when the batch was written. A truncation since then
    /// (this replica stopped leading) may have cut the batch, even if the offsets it had
    /// are filled and durable again with a new leader's records: it no longer counts.
    pub truncation_generation: u64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use strata_proto::record::{BatchBuilder, Record};

    use super::*;
    use crate::log::{Clock, LogConfig, PreviousShutdown, SystemClock};

    fn handle(dir: &std::path::Path, flush: FlushPolicy) -> PartitionHandle {
        let config = LogConfig {
            flush,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(
            dir,
            config,
            Arc::new(SystemClock),
            PreviousShutdown::Crashed,
        )
        .unwrap();
        let topic = TopicName::new("t").unwrap();
        PartitionHandle::open(topic, PartitionId(0), Arc::new(log), LeaderEpoch(0)).unwrap()
    }

    fn batch() -> Bytes {
        let mut builder = BatchBuilder::default();
        let now_ms = SystemClock.now_ms();
        builder
            .append(&Record::from_value(now_ms, &b"v"[..]))
            .unwrap();
        builder.build().unwrap()
    }

    #[test]
    fn commit_without_waiting_only_when_no_fsync_is_owed() {
        let dir = tempfile::tempdir().unwrap();
        let always = handle(dir.path(), FlushPolicy::Always);
        let written = always.write(&batch(), &ValidateLimits::default()).unwrap();
        assert!(
            always.commit_without_waiting(written).is_none(),
            "flush=always: written but not yet fsynced must wait"
        );
        assert_eq!(always.log.high_watermark(), Offset(0));
        always.log.flush().unwrap();
        let appended = always.commit_without_waiting(written).unwrap().unwrap();
        assert_eq!(appended.base_offset, Offset(0));
        assert_eq!(always.log.high_watermark(), Offset(1));

        let dir = tempfile::tempdir().unwrap();
        let interval = handle(
            dir.path(),
            FlushPolicy::Interval {
                interval_ms: 60_000,
            },
        );
        let written = interval
            .write(&batch(), &ValidateLimits::default())
            .unwrap();
        interval.commit_without_waiting(written).unwrap().unwrap();
        assert_eq!(interval.log.high_watermark(), Offset(1));
        assert_eq!(
            interval.log.durable_offset(),
            Offset(0),
            "no fsync was made"
        );
    }

    fn image(replicas: &[i32]) -> PartitionImage {
        let replicas: Vec<BrokerId> = replicas.iter().copied().map(BrokerId).collect();
        PartitionImage {
            leader: Some(replicas[0]),
            leader_epoch: 1,
            isr: replicas.clone(),
            replicas,
            partition_epoch: 1,
        }
    }

    /// A follower taking over keeps the high watermark it had: records it holds beyond it
    /// are not known to be on the other in-sync replicas, so they must not become
    /// visible when it starts leading. A one-replica partition's HW is its log end.
    #[test]
    fn taking_over_a_replicated_partition_keeps_the_high_watermark_it_had() {
        for (replicas, expected) in [(&[1, 2, 3][..], Offset(1)), (&[1][..], Offset(3))] {
            let dir = tempfile::tempdir().unwrap();
            let follower = handle(dir.path(), FlushPolicy::Always);
            let log = Arc::clone(&follower.log);
            drop(follower);
            // A follower's log: three records copied, the leader's HW learnt as 1.
            for _ in 0..3 {
                log.append(&batch(), LeaderEpoch(0)).unwrap();
            }
            log.set_high_watermark(Offset(1));
            // It becomes the leader.
            let topic = TopicName::new("t").unwrap();
            let leader =
                PartitionHandle::open(topic, PartitionId(0), Arc::clone(&log), LeaderEpoch(1))
                    .unwrap();
            let config = LeaderConfig::default();
            leader.on_metadata(BrokerId(1), &image(replicas), config, Instant::now());
            assert_eq!(log.log_end_offset(), Offset(3));
            assert_eq!(log.high_watermark(), expected, "replicas {replicas:?}");
        }
    }

    /// KIP-207: a follower that took over with a HW below its log end lists no offset
    /// until its HW reaches the start of its epoch (what the old leader may have
    /// exposed); its followers' fetches bring it there.
    #[test]
    fn a_new_leader_lists_no_offset_until_its_high_watermark_reaches_its_epoch_start() {
        let dir = tempfile::tempdir().unwrap();
        let follower = handle(dir.path(), FlushPolicy::Always);
        let log = Arc::clone(&follower.log);
        drop(follower);
        for _ in 0..3 {
            log.append(&batch(), LeaderEpoch(0)).unwrap();
        }
        log.set_high_watermark(Offset(1));
        let topic = TopicName::new("t").unwrap();
        let leader =
            PartitionHandle::open(topic, PartitionId(0), Arc::clone(&log), LeaderEpoch(1)).unwrap();
        let config = LeaderConfig::default();
        leader.on_metadata(BrokerId(1), &image(&[1, 2, 3]), config, Instant::now());
        assert!(matches!(
            leader.check_high_watermark_settled(),
            Err(NodeError::OffsetNotAvailable {
                high_watermark: Offset(1),
                epoch_start_offset: Offset(3),
            })
        ));
        leader.on_follower_fetch(BrokerId(2), Offset(3), LeaderEpoch(1));
        assert!(
            leader.check_high_watermark_settled().is_err(),
            "one ISR follower behind"
        );
        leader.on_follower_fetch(BrokerId(3), Offset(3), LeaderEpoch(1));
        assert_eq!(log.high_watermark(), Offset(3));
        leader.check_high_watermark_settled().unwrap();
    }

    /// Many producers committing at once under `flush = always`: each waits as a task or
    /// runs an fsync, every one is answered, and only once its batch is on disk.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_async_commits_all_finish_durable() {
        let dir = tempfile::tempdir().unwrap();
        let always = Arc::new(handle(dir.path(), FlushPolicy::Always));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..200 {
            let always = Arc::clone(&always);
            tasks.spawn(async move {
                let written = always.write(&batch(), &ValidateLimits::default()).unwrap();
                let appended = Arc::clone(&always).commit_async(written).await.unwrap();
                assert!(
                    always.log.durable_offset() >= written.end_offset,
                    "answered before its fsync"
                );
                appended.base_offset
            });
        }
        let mut offsets = Vec::new();
        let all = async {
            while let Some(offset) = tasks.join_next().await {
                offsets.push(offset.unwrap().0);
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), all)
            .await
            .expect("a commit never finished");
        offsets.sort_unstable();
        assert_eq!(offsets, (0..200).collect::<Vec<_>>());
        assert_eq!(always.log.high_watermark(), Offset(200));
        assert!(always.log.fsyncs_total() <= 200);
    }

    /// A leader's batches written but not yet fsynced when the replica becomes a follower
    /// and truncates: their commits fail with `NOT_LEADER` (the producer asks the new
    /// leader, which has them or not; an idempotent retry is answered either way). One
    /// used to claim fsync after fsync until the log grew past it again, which a broker
    /// shutting down never lets happen (its produce stream, and its drain, waited until
    /// the grace ran out), and once the log had grown past it with the new leader's
    /// records it was answered as appended at offsets that held someone else's.
    #[test]
    fn a_commit_whose_batch_was_truncated_away_fails_as_not_leader() {
        let dir = tempfile::tempdir().unwrap();
        let always = Arc::new(handle(dir.path(), FlushPolicy::Always));
        let first = always.write(&batch(), &ValidateLimits::default()).unwrap();
        let second = always.write(&batch(), &ValidateLimits::default()).unwrap();
        always.log.truncate_to(Offset(1)).unwrap();
        // Written after the cut, at the offset `second` had, and made durable.
        let refill = always.write(&batch(), &ValidateLimits::default()).unwrap();
        assert_eq!(always.commit(refill).unwrap().base_offset, Offset(1));
        // The log now ends where it does not hold `later`'s bytes.
        let later = always.write(&batch(), &ValidateLimits::default()).unwrap();
        always.log.truncate_to(Offset(2)).unwrap();

        let handle = Arc::clone(&always);
        // On a thread of its own with its own runtime: a commit that never ends (the bug)
        // fails the test instead of holding the test's runtime open for ever.
        let (sender, answers) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            for written in [first, second, later] {
                let answer = runtime.block_on(Arc::clone(&handle).commit_async(written));
                sender.send(answer).unwrap();
            }
        });
        for name in [
            "first (below the cut)",
            "second (refilled)",
            "later (beyond the end)",
        ] {
            let answer = answers
                .recv_timeout(std::time::Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("the commit of {name} never finished"));
            assert!(
                matches!(answer, Err(NodeError::Log(LogError::Truncated { .. }))),
                "{name}: {answer:?}"
            );
        }
        assert_eq!(always.log.high_watermark(), Offset(2));
    }
}
