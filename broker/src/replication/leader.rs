//! [`LeaderPartition`]: the replication state of one partition this broker leads. It
//! learns each follower's log end offset (LEO) from its fetches, moves the high watermark
//! (HW), decides when an `acks=all` batch may be answered, and proposes ISR changes to the
//! controller. Pure: no I/O, no clock reads (every `now` is passed in), no locks.
//!
//! Rules (Kafka's `Partition` and `Replica`, KRaft flavour):
//! - A follower fetching from offset N holds everything below N, so its LEO is N.
//! - HW = the minimum LEO over the *maximal* ISR (the committed ISR plus the members of a
//!   pending proposal, KIP-497), the leader's own LEO included; it never decreases. A
//!   maximal-ISR member whose LEO is unknown (it has not fetched in this leader epoch)
//!   holds the HW where it is. With the ISR = [leader], the HW follows the leader's LEO.
//! - Why the maximal ISR: an ISR change is only real once the controller commits it. Until
//!   then a member being removed may still be elected leader, and a member being added
//!   will be electable as soon as the commit lands. Counting an `acks=all` write as
//!   committed against an ISR that is not (yet) the committed one could acknowledge a
//!   record that the next leader does not hold.
//! - Caught up (Kafka's `lastCaughtUpTime`): a fetch at `now` whose offset is ≥ the
//!   leader's LEO at `now` proves the follower caught up at `now`; a fetch whose offset is
//!   ≥ the leader's LEO at the follower's *previous* fetch proves it had caught up at the
//!   time of that previous fetch. A follower whose LEO equals the leader's is always in
//!   sync (an idle partition does not shrink its ISR).
//! - Shrink: ISR followers not caught up within `replica_lag_max` are proposed out. The
//!   leader never proposes itself out, so the ISR is never empty.
//! - Expand: replicas outside the ISR whose LEO is ≥ the HW and ≥ the offset where this
//!   leader epoch started are proposed in (Kafka's `isFollowerInSync`). A member the
//!   controller removed (fenced, or restarted as a new process) is forgotten: only its
//!   fetches after the removal count (KIP-903), so a replica that restarted with less than
//!   it had reported is not added back on its old word.
//! - One proposal in flight ([`LeaderPartition::pending`]), stamped with the partition
//!   epoch it is based on (Kafka's `AlterPartition`): the controller refuses it if the
//!   partition changed meanwhile.
//! - `acks=all`: refused before the append when |ISR| < `min_insync_replicas` (Kafka's
//!   `NOT_ENOUGH_REPLICAS`); answered once the HW passes the batch, or refused then if the
//!   ISR shrank below the minimum in the meantime (`NOT_ENOUGH_REPLICAS_AFTER_APPEND`).
//!
//! The leader's LEO passed in is the offset that counts toward the HW: under
//! `flush = always` that is the *durable* offset (docs/RELIABILITY.md), not the written one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strata_proto::types::{BrokerId, LeaderEpoch, Offset};

use super::epoch_fence::{check_leader_epoch, EpochMismatch};
use crate::controller::PartitionImage;

/// Kafka's `replica.lag.time.max.ms` default.
pub const REPLICA_LAG_MAX_DEFAULT: Duration = Duration::from_secs(10);

/// The leader's settings for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderConfig {
    /// `min.insync.replicas`: the ISR size below which `acks=all` writes are refused.
    pub min_insync_replicas: usize,
    /// How long an ISR follower may go without catching up before it is proposed out.
    pub replica_lag_max: Duration,
}

impl Default for LeaderConfig {
    fn default() -> Self {
        LeaderConfig {
            min_insync_replicas: 1,
            replica_lag_max: REPLICA_LAG_MAX_DEFAULT,
        }
    }
}

/// Where a partition stands when this broker starts leading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderStart {
    /// This broker.
    pub local: BrokerId,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
    /// The local log's LEO (durable offset under `flush = always`); this leader epoch
    /// starts here.
    pub log_end_offset: Offset,
    /// The local log's HW (from its checkpoint).
    pub high_watermark: Offset,
}

impl LeaderStart {
    /// The start described by the controller's `image` of a partition `local` leads.
    pub fn from_image(
        local: BrokerId,
        image: &PartitionImage,
        log_end_offset: Offset,
        high_watermark: Offset,
    ) -> LeaderStart {
        LeaderStart {
            local,
            replicas: image.replicas.clone(),
            isr: image.isr.clone(),
            leader_epoch: LeaderEpoch(image.leader_epoch),
            partition_epoch: image.partition_epoch,
            log_end_offset,
            high_watermark,
        }
    }
}

/// What a follower's fetch changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchDecision {
    /// The HW to send back in the fetch answer.
    pub high_watermark: Offset,
    /// `Some(hw)` when this fetch advanced the HW: set it on the log, wake `acks=all`
    /// waiters and consumers.
    pub new_high_watermark: Option<Offset>,
}

/// Why a replica fetch was not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FetchRefusal {
    /// Kafka answers `NOT_LEADER_OR_FOLLOWER`: only assigned replicas replicate.
    #[error("broker {broker} is not a follower replica of this partition")]
    NotAReplica { broker: BrokerId },
    #[error(transparent)]
    Epoch(#[from] EpochMismatch),
    /// Kafka's `OFFSET_OUT_OF_RANGE`: a follower cannot hold records the leader has not
    /// written; it must truncate first.
    #[error("fetch offset {fetch_offset} is past the leader's log end offset {log_end_offset}")]
    OffsetOutOfRange {
        fetch_offset: Offset,
        log_end_offset: Offset,
    },
}

/// One replica fetch as the leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerFetch {
    pub follower: BrokerId,
    pub fetch_offset: Offset,
    /// The leader epoch the follower believes current (KIP-320).
    pub current_leader_epoch: LeaderEpoch,
}

/// Which way a proposed ISR differs from the committed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsrChange {
    /// Followers that did not catch up within `replica_lag_max`.
    Shrink { removed: Vec<BrokerId> },
    /// Replicas that caught up to the HW in this leader epoch.
    Expand { added: Vec<BrokerId> },
}

/// An ISR change to send to the controller (Kafka's `AlterPartition`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    pub change: IsrChange,
    /// The ISR asked for, in replica order.
    pub new_isr: Vec<BrokerId>,
    pub leader_epoch: LeaderEpoch,
    /// The partition epoch this proposal is based on: the controller refuses it unless the
    /// partition is still at this epoch.
    pub partition_epoch: i32,
}

/// Whether an `acks=all` batch may be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckState {
    /// Every committed ISR member holds the batch.
    Ready,
    /// The HW has not passed the batch yet.
    Waiting,
    /// The HW passed the batch but the ISR is below `min_insync_replicas`: Kafka's
    /// `NOT_ENOUGH_REPLICAS_AFTER_APPEND` (retriable; the batch is in the log).
    NotEnoughReplicas,
}

/// Kafka's `NOT_ENOUGH_REPLICAS`: an `acks=all` write refused before the append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the ISR has {isr_size} replicas, fewer than min.insync.replicas = {min_insync_replicas}")]
pub struct NotEnoughReplicas {
    pub isr_size: usize,
    pub min_insync_replicas: usize,
}

/// What new metadata from the controller means for this leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderMetadataDecision {
    /// Older than what this leader already knows: ignored.
    Stale,
    /// Still leads at the same leader epoch; replicas, ISR and partition epoch adopted.
    Continue { new_high_watermark: Option<Offset> },
    /// Still leads, at a newer leader epoch that starts at `epoch_start_offset`: record it
    /// in the log's leader-epoch cache. Follower progress starts over.
    NewLeaderEpoch {
        leader_epoch: LeaderEpoch,
        epoch_start_offset: Offset,
    },
    /// Another broker (or nobody) leads from `leader_epoch` on: stop leading, drop this
    /// state, fail the waiting `acks=all` requests with `NOT_LEADER_OR_FOLLOWER`.
    Resign {
        leader: Option<BrokerId>,
        leader_epoch: LeaderEpoch,
    },
}

/// What the leader knows of one follower replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct ReplicaProgress {
    /// From its last fetch in this leader epoch; `None` before the first.
    log_end_offset: Option<Offset>,
    last_caught_up: Option<Instant>,
    /// The time of its previous fetch and the leader's LEO then.
    previous_fetch: Option<(Instant, Offset)>,
}

/// The replication state of one partition this broker leads. See the module docs for the
/// rules.
#[derive(Debug, Clone)]
pub struct LeaderPartition {
    config: LeaderConfig,
    local: BrokerId,
    replicas: Vec<BrokerId>,
    isr: Vec<BrokerId>,
    leader_epoch: LeaderEpoch,
    partition_epoch: i32,
    epoch_start_offset: Offset,
    log_end_offset: Offset,
    high_watermark: Offset,
    followers: BTreeMap<BrokerId, ReplicaProgress>,
    pending: Option<IsrProposal>,
}

impl LeaderPartition {
    /// Starts leading at `now`. ISR followers count as caught up at `now` (they get a full
    /// `replica_lag_max` to fetch); their LEOs are unknown until they fetch. A leader that
    /// is the ISR alone moves the HW to its log end at once ([`LeaderPartition::high_watermark`]):
    /// nothing else would move it while writes are refused below `min_insync_replicas`,
    /// and until it passes the epoch's start, offsets cannot be listed (KIP-207).
    pub fn new(start: LeaderStart, config: LeaderConfig, now: Instant) -> LeaderPartition {
        debug_assert!(start.high_watermark <= start.log_end_offset, "HW ≤ LEO");
        let mut leader = LeaderPartition {
            config,
            local: start.local,
            replicas: start.replicas,
            isr: start.isr,
            leader_epoch: start.leader_epoch,
            partition_epoch: start.partition_epoch,
            epoch_start_offset: start.log_end_offset,
            log_end_offset: start.log_end_offset,
            high_watermark: start.high_watermark,
            followers: BTreeMap::new(),
            pending: None,
        };
        leader.reset_followers(now);
        leader.advance_high_watermark();
        leader
    }

    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }

    /// The log end offset when this leader epoch began here: the HW of the previous
    /// leader is at most this, so until this leader's HW reaches it, its HW may be below
    /// offsets the previous leader already exposed (KIP-207).
    pub fn epoch_start_offset(&self) -> Offset {
        self.epoch_start_offset
    }

    pub fn log_end_offset(&self) -> Offset {
        self.log_end_offset
    }

    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch
    }

    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    pub fn config(&self) -> LeaderConfig {
        self.config
    }

    /// Adopts a changed topic config or broker setting while leading (`min.insync.replicas`
    /// altered on the topic): the next `acks=all` check and ISR check use it. A raised
    /// minimum refuses writes at once when the ISR is below it; a raised lag limit keeps a
    /// lagging follower in the ISR longer. Follower progress and the HW are untouched.
    pub fn set_config(&mut self, config: LeaderConfig) {
        self.config = config;
    }

    /// The committed ISR as this leader last heard it.
    pub fn isr(&self) -> &[BrokerId] {
        &self.isr
    }

    /// The ISR proposal waiting for the controller's answer.
    pub fn pending(&self) -> Option<&IsrProposal> {
        self.pending.as_ref()
    }

    /// The LEO the leader last learned for `follower` in this leader epoch.
    pub fn follower_log_end_offset(&self, follower: BrokerId) -> Option<Offset> {
        self.followers.get(&follower)?.log_end_offset
    }

    /// A follower fetched from `fetch.fetch_offset` at `now`: records its LEO and caught-up
    /// time, and moves the HW.
    pub fn on_follower_fetch(
        &mut self,
        fetch: FollowerFetch,
        now: Instant,
    ) -> Result<FetchDecision, FetchRefusal> {
        check_leader_epoch(fetch.current_leader_epoch, self.leader_epoch)?;
        let leader_log_end_offset = self.log_end_offset;
        if fetch.fetch_offset > leader_log_end_offset {
            return Err(FetchRefusal::OffsetOutOfRange {
                fetch_offset: fetch.fetch_offset,
                log_end_offset: leader_log_end_offset,
            });
        }
        let progress =
            self.followers
                .get_mut(&fetch.follower)
                .ok_or(FetchRefusal::NotAReplica {
                    broker: fetch.follower,
                })?;
        let caught_up_at = if fetch.fetch_offset >= leader_log_end_offset {
            Some(now)
        } else {
            progress
                .previous_fetch
                .filter(|(_, leo_then)| fetch.fetch_offset >= *leo_then)
                .map(|(then, _)| then)
        };
        if let Some(at) = caught_up_at {
            progress.last_caught_up = progress.last_caught_up.max(Some(at));
        }
        progress.log_end_offset = Some(fetch.fetch_offset);
        progress.previous_fetch = Some((now, leader_log_end_offset));
        Ok(FetchDecision {
            new_high_watermark: self.advance_high_watermark(),
            high_watermark: self.high_watermark,
        })
    }

    /// The leader's log grew to `new_log_end_offset` (durable offset under
    /// `flush = always`). Returns the new HW if it advanced (only when no other maximal-ISR
    /// member lags).
    ///
    /// A leader never truncates, but callers read the log end before they take the lock
    /// that guards this state, so a report older than one already applied can arrive
    /// second. It is ignored: the leader's known log end only grows.
    pub fn on_leader_append(&mut self, new_log_end_offset: Offset) -> Option<Offset> {
        self.log_end_offset = self.log_end_offset.max(new_log_end_offset);
        self.advance_high_watermark()
    }

    /// Kafka's `NOT_ENOUGH_REPLICAS` check, before appending an `acks=all` batch.
    pub fn check_append_allowed(&self) -> Result<(), NotEnoughReplicas> {
        if self.isr.len() < self.config.min_insync_replicas {
            return Err(NotEnoughReplicas {
                isr_size: self.isr.len(),
                min_insync_replicas: self.config.min_insync_replicas,
            });
        }
        Ok(())
    }

    /// Whether the `acks=all` batch ending at `batch_last_offset` may be answered.
    pub fn acks_all_ready(&self, batch_last_offset: Offset) -> AckState {
        if self.high_watermark <= batch_last_offset {
            AckState::Waiting
        } else if self.check_append_allowed().is_err() {
            AckState::NotEnoughReplicas
        } else {
            AckState::Ready
        }
    }

    /// The ISR change to propose at `now`, if any and if none is in flight: a shrink first
    /// (lagging followers out), otherwise an expansion (caught-up replicas in). The
    /// proposal stays [`pending`](Self::pending) until committed or refused.
    pub fn isr_change(&mut self, now: Instant) -> Option<IsrProposal> {
        if self.pending.is_some() {
            return None;
        }
        let removed: Vec<BrokerId> = self
            .isr
            .iter()
            .copied()
            .filter(|id| *id != self.local && !self.in_sync(*id, now))
            .collect();
        let (change, new_isr) = if !removed.is_empty() {
            let new_isr =
                self.in_replica_order(|id| self.isr.contains(id) && !removed.contains(id));
            (IsrChange::Shrink { removed }, new_isr)
        } else {
            let added: Vec<BrokerId> = self
                .replicas
                .iter()
                .copied()
                .filter(|id| !self.isr.contains(id) && self.may_join_isr(*id))
                .collect();
            if added.is_empty() {
                return None;
            }
            let new_isr = self.in_replica_order(|id| self.isr.contains(id) || added.contains(id));
            (IsrChange::Expand { added }, new_isr)
        };
        let proposal = IsrProposal {
            change,
            new_isr,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
        };
        self.pending = Some(proposal.clone());
        Some(proposal)
    }

    /// The controller committed `new_isr` at `new_partition_epoch` (the answer to the
    /// pending proposal). An answer not newer than what this leader knows is ignored.
    /// Returns the new HW if it advanced (a shrink can release it).
    pub fn on_isr_committed(
        &mut self,
        new_isr: Vec<BrokerId>,
        new_partition_epoch: i32,
    ) -> Option<Offset> {
        if new_partition_epoch <= self.partition_epoch {
            return None;
        }
        debug_assert!(new_isr.contains(&self.local), "a leader stays in its ISR");
        self.isr = new_isr;
        self.partition_epoch = new_partition_epoch;
        self.pending = None;
        self.advance_high_watermark()
    }

    /// The controller refused `refused` (stale partition epoch, ineligible replica): the
    /// committed ISR stands and the next [`isr_change`](Self::isr_change) may propose
    /// again. A refusal of anything but the pending proposal is ignored: after metadata
    /// cleared a proposal and a new one went out, a late refusal of the old one must not
    /// let a third proposal race the second (whose commit the HW must then cover).
    pub fn on_isr_refused(&mut self, refused: &IsrProposal) {
        if self.pending.as_ref() == Some(refused) {
            self.pending = None;
        }
    }

    /// The controller's current `image` of this partition, at `now`.
    pub fn on_metadata(&mut self, image: &PartitionImage, now: Instant) -> LeaderMetadataDecision {
        let leader_epoch = LeaderEpoch(image.leader_epoch);
        if leader_epoch < self.leader_epoch {
            return LeaderMetadataDecision::Stale;
        }
        if image.leader != Some(self.local) {
            return LeaderMetadataDecision::Resign {
                leader: image.leader,
                leader_epoch,
            };
        }
        let new_epoch = leader_epoch > self.leader_epoch;
        if !new_epoch && image.partition_epoch <= self.partition_epoch {
            return LeaderMetadataDecision::Stale;
        }
        // A member the controller took out (fenced, or registered again as a new process)
        // earns its place back with fetches made from now on: what it reported before may
        // be gone with its old process (KIP-903).
        for removed in self.isr.iter().filter(|id| !image.isr.contains(id)) {
            if let Some(progress) = self.followers.get_mut(removed) {
                *progress = ReplicaProgress::default();
            }
        }
        self.replicas = image.replicas.clone();
        self.isr = image.isr.clone();
        self.partition_epoch = image.partition_epoch;
        // The controller has moved past whatever the pending proposal was based on.
        self.pending = None;
        if new_epoch {
            self.leader_epoch = leader_epoch;
            self.epoch_start_offset = self.log_end_offset;
            self.reset_followers(now);
            return LeaderMetadataDecision::NewLeaderEpoch {
                leader_epoch,
                epoch_start_offset: self.epoch_start_offset,
            };
        }
        self.followers.retain(|id, _| image.replicas.contains(id));
        for id in &image.replicas {
            if *id != self.local {
                let progress = self.followers.entry(*id).or_default();
                if image.isr.contains(id) && progress.last_caught_up.is_none() {
                    progress.last_caught_up = Some(now);
                }
            }
        }
        LeaderMetadataDecision::Continue {
            new_high_watermark: self.advance_high_watermark(),
        }
    }

    /// Follower progress from scratch (a new leader epoch): LEOs unknown; ISR members
    /// caught up at `now`.
    fn reset_followers(&mut self, now: Instant) {
        self.followers = self
            .replicas
            .iter()
            .filter(|id| **id != self.local)
            .map(|id| {
                let last_caught_up = self.isr.contains(id).then_some(now);
                let progress = ReplicaProgress {
                    last_caught_up,
                    ..ReplicaProgress::default()
                };
                (*id, progress)
            })
            .collect();
    }

    /// Kafka's `isCaughtUp`: at the leader's LEO, or caught up within `replica_lag_max`.
    fn in_sync(&self, follower: BrokerId, now: Instant) -> bool {
        let Some(progress) = self.followers.get(&follower) else {
            return false;
        };
        progress.log_end_offset == Some(self.log_end_offset)
            || progress
                .last_caught_up
                .is_some_and(|at| now.saturating_duration_since(at) <= self.config.replica_lag_max)
    }

    /// Kafka's `isFollowerInSync`: LEO ≥ HW and ≥ the start of this leader epoch.
    fn may_join_isr(&self, replica: BrokerId) -> bool {
        replica != self.local
            && self
                .follower_log_end_offset(replica)
                .is_some_and(|leo| leo >= self.high_watermark && leo >= self.epoch_start_offset)
    }

    fn in_replica_order(&self, keep: impl Fn(&BrokerId) -> bool) -> Vec<BrokerId> {
        let mut isr: Vec<BrokerId> = self
            .replicas
            .iter()
            .copied()
            .filter(|id| keep(id))
            .collect();
        // An ISR member missing from the replica list (mid-reassignment) keeps its place.
        isr.extend(
            self.isr
                .iter()
                .copied()
                .filter(|id| keep(id) && !self.replicas.contains(id)),
        );
        isr
    }

    /// HW candidate: the minimum LEO over the maximal ISR; `None` while a member's LEO is
    /// unknown.
    fn maximal_isr_log_end_offset(&self) -> Option<Offset> {
        let proposed = self.pending.iter().flat_map(|p| p.new_isr.iter());
        let mut minimum = self.log_end_offset;
        for id in self.isr.iter().chain(proposed) {
            if *id != self.local {
                minimum = minimum.min(self.follower_log_end_offset(*id)?);
            }
        }
        Some(minimum)
    }

    fn advance_high_watermark(&mut self) -> Option<Offset> {
        let candidate = self.maximal_isr_log_end_offset()?;
        if candidate <= self.high_watermark {
            return None;
        }
        self.high_watermark = candidate;
        Some(candidate)
    }
}
