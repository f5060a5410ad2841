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
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use strata_proto::record::{BatchHeader, CheckedBatch, ValidateLimits};
use strata_proto::types::{BrokerId, LeaderEpoch, Offset, PartitionId, TopicName};

use super::error::NodeError;
use super::producer_state::{ProducerStateTable, SequenceCheck};
use crate::log::{Durability, FlushPolicy, PartitionLog};

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
    /// Each follower's last replica fetch: its log end offset, and when it was reported.
    /// Recorded only: `LeaderPartition` (issue 20's next step) will take the high
    /// watermark and the ISR from it.
    follower_fetches: Mutex<BTreeMap<BrokerId, FollowerFetchOffset>>,
}

/// A follower's log end offset as its latest replica fetch reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerFetchOffset {
    pub fetch_offset: Offset,
    pub at: Instant,
}

impl PartitionHandle {
    /// Wraps an opened log, rebuilding the producer state from its batch headers.
    pub fn open(
        topic: TopicName,
        partition: PartitionId,
        log: Arc<PartitionLog>,
        leader_epoch: LeaderEpoch,
    ) -> Result<PartitionHandle, NodeError> {
        let producers = rebuild_producer_state(&log)?;
        log.set_high_watermark(log.durable_offset());
        Ok(PartitionHandle {
            topic,
            partition,
            log,
            leader_epoch: Mutex::new(leader_epoch),
            producers: Mutex::new(producers),
            follower_fetches: Mutex::new(BTreeMap::new()),
        })
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
            .map_err(|error| NodeError::InvalidRequest {
                reason: format!("commit task failed: {error}"),
            })?;
        }
    }

    /// Makes everything below `written.end_offset` count: waits for the fsync under
    /// `flush = always` (group commit), then moves the high watermark, never backwards.
    /// Blocking.
    pub fn commit(&self, written: Written) -> Result<Appended, NodeError> {
        self.commit_under(self.log.config().flush, written)
    }

    fn commit_under(&self, flush: FlushPolicy, written: Written) -> Result<Appended, NodeError> {
        let high_watermark = match flush {
            FlushPolicy::Always => {
                self.log.wait_durable(written.end_offset)?;
                self.log.durable_offset()
            }
            FlushPolicy::Interval { .. } => self.log.log_end_offset(),
        };
        self.log.advance_high_watermark(high_watermark);
        Ok(Appended {
            base_offset: written.base_offset,
            log_start_offset: self.log.log_start_offset(),
        })
    }
}

/// A batch written to the log but not yet committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub base_offset: Offset,
    /// The offset after the batch's last record.
    pub end_offset: Offset,
}

/// Replays the batch headers of the whole log into a producer-state table.
fn rebuild_producer_state(log: &PartitionLog) -> Result<ProducerStateTable, NodeError> {
    let mut table = ProducerStateTable::default();
    if log.is_offline() {
        // Damaged at open: it refuses every read and write, so there is nothing to dedupe.
        return Ok(table);
    }
    let mut offset = log.log_start_offset();
    loop {
        let read = log.read(offset, 1 << 20, None)?;
        if read.batches.is_empty() {
            return Ok(table);
        }
        let mut bytes = &read.batches[..];
        while let Ok(header) = BatchHeader::parse(bytes) {
            table.record(&header, header.base_offset);
            offset = header.next_offset();
            bytes = bytes.get(header.total_bytes()..).unwrap_or_default();
        }
    }
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
}
