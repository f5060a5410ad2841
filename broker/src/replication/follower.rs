//! [`FollowerPartition`]: the replication state of one partition this broker follows.
//! Pure: the caller (the fetcher) sends the requests it returns, feeds the answers back,
//! and applies the log operations it is told to (truncate, append, set the HW).
//!
//! States:
//! - [`FollowerState::Truncating`]: after every change of leader or leader epoch, and at
//!   start. The follower asks the leader `OffsetsForLeaderEpoch(latest local epoch)` and
//!   truncates where [`truncation_point`] says (KIP-101, KIP-279), possibly over several
//!   rounds. It never truncates by its HW.
//! - [`FollowerState::Fetching`]: fetches from `fetch_offset`, the local LEO.
//!
//! Every request carries the leader epoch the follower believes current, and every answer
//! is checked against the follower's epoch when it arrives (KIP-320): an answer to a
//! request of an older epoch is fenced ([`EpochMismatch::Fenced`]) and dropped, since the
//! leader it came from may no longer lead.

use strata_proto::types::{BrokerId, LeaderEpoch, Offset};

use super::epoch_fence::{check_leader_epoch, EpochMismatch};
use super::truncation::{truncation_point, TruncationStep};
use crate::controller::PartitionImage;

/// Where a follower is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerState {
    /// Must reconcile with the leader by epoch before fetching.
    Truncating,
    /// Fetching from `fetch_offset`, the local LEO.
    Fetching { fetch_offset: Offset },
}

/// The next request to send to the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerRequest {
    /// Kafka's `OffsetsForLeaderEpoch`: where does `epoch` end in your log?
    OffsetsForLeaderEpoch {
        current_leader_epoch: LeaderEpoch,
        epoch: LeaderEpoch,
    },
    /// A replica fetch from `fetch_offset`.
    Fetch {
        current_leader_epoch: LeaderEpoch,
        fetch_offset: Offset,
    },
}

/// The leader's answer to `OffsetsForLeaderEpoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochAnswer {
    /// The `current_leader_epoch` the request was sent with.
    pub request_leader_epoch: LeaderEpoch,
    /// The largest epoch in the leader's log ≤ the one asked for.
    pub epoch: LeaderEpoch,
    /// Where that epoch ends in the leader's log.
    pub end_offset: Offset,
}

/// The leader's answer to a replica fetch, once the caller appended its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchAnswer {
    /// The `current_leader_epoch` the request was sent with.
    pub request_leader_epoch: LeaderEpoch,
    /// The last offset of the batches appended; `None` when the answer held none.
    pub last_offset: Option<Offset>,
    pub leader_high_watermark: Offset,
    pub leader_log_start_offset: Offset,
}

/// What the follower does after a fetch answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchProgress {
    /// Where the next fetch starts (the local LEO).
    pub next_fetch_offset: Offset,
    /// The HW to set locally: the leader's, but never past the local LEO.
    pub high_watermark: Offset,
    /// Raise the local log start offset to this (never lower it): the leader's retention
    /// deleted everything below it.
    pub log_start_offset: Offset,
}

/// Why an answer was not acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FollowerRefusal {
    /// The `FencedLeaderEpoch` decision (or an answer from a newer epoch than ours):
    /// drop the answer; the next request goes out at the current epoch.
    #[error(transparent)]
    Epoch(#[from] EpochMismatch),
    #[error("an OffsetsForLeaderEpoch answer arrived while fetching")]
    NotTruncating,
    #[error("a fetch answer arrived while truncating")]
    NotFetching,
    #[error("the fetch answer ends at {last_offset}, before the fetch offset {fetch_offset}")]
    AnswerBeforeFetchOffset {
        last_offset: Offset,
        fetch_offset: Offset,
    },
}

/// What new metadata from the controller means for this follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerMetadataDecision {
    /// Older than, or the same as, what this follower already follows: nothing to do.
    Unchanged,
    /// A new leader or leader epoch: back to [`FollowerState::Truncating`].
    Follow {
        leader: BrokerId,
        leader_epoch: LeaderEpoch,
    },
    /// This broker leads from `leader_epoch` on: drop this state, build a
    /// `LeaderPartition`.
    Lead { leader_epoch: LeaderEpoch },
    /// Nobody leads: stop fetching and drop this state until a leader is elected.
    NoLeader { leader_epoch: LeaderEpoch },
}

/// The replication state of one partition this broker follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerPartition {
    leader: BrokerId,
    leader_epoch: LeaderEpoch,
    state: FollowerState,
}

impl FollowerPartition {
    /// Starts following `leader` at `leader_epoch`, truncating first.
    pub fn new(leader: BrokerId, leader_epoch: LeaderEpoch) -> FollowerPartition {
        FollowerPartition {
            leader,
            leader_epoch,
            state: FollowerState::Truncating,
        }
    }

    pub fn leader(&self) -> BrokerId {
        self.leader
    }

    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch
    }

    pub fn state(&self) -> FollowerState {
        self.state
    }

    /// The request to send next, for a local log with `local_epochs` (ascending epochs with
    /// their start offsets) ending at `local_log_end_offset`. A log without epochs has
    /// nothing to reconcile (it is empty: every batch carries an epoch), so truncation
    /// ends here and fetching starts at its LEO.
    pub fn next_request(
        &mut self,
        local_epochs: &[(LeaderEpoch, Offset)],
        local_log_end_offset: Offset,
    ) -> FollowerRequest {
        let current_leader_epoch = self.leader_epoch;
        if self.state == FollowerState::Truncating {
            match local_epochs.last() {
                Some((epoch, _)) => {
                    return FollowerRequest::OffsetsForLeaderEpoch {
                        current_leader_epoch,
                        epoch: *epoch,
                    }
                }
                None => {
                    self.state = FollowerState::Fetching {
                        fetch_offset: local_log_end_offset,
                    }
                }
            }
        }
        let fetch_offset = match self.state {
            FollowerState::Fetching { fetch_offset } => fetch_offset,
            FollowerState::Truncating => local_log_end_offset,
        };
        FollowerRequest::Fetch {
            current_leader_epoch,
            fetch_offset,
        }
    }

    /// The leader answered `OffsetsForLeaderEpoch`. On
    /// [`TruncateTo`](TruncationStep::TruncateTo) the follower moves to fetching from that
    /// offset; the caller truncates its log there first. On
    /// [`AskAgain`](TruncationStep::AskAgain) it stays truncating.
    pub fn on_epoch_answer(
        &mut self,
        answer: EpochAnswer,
        local_epochs: &[(LeaderEpoch, Offset)],
        local_log_end_offset: Offset,
    ) -> Result<TruncationStep, FollowerRefusal> {
        check_leader_epoch(answer.request_leader_epoch, self.leader_epoch)?;
        if self.state != FollowerState::Truncating {
            return Err(FollowerRefusal::NotTruncating);
        }
        let step = truncation_point(
            local_epochs,
            local_log_end_offset,
            (answer.epoch, answer.end_offset),
        );
        if let TruncationStep::TruncateTo(offset) = step {
            self.state = FollowerState::Fetching {
                fetch_offset: offset,
            };
        }
        Ok(step)
    }

    /// The leader answered a fetch and the caller appended its batches (ending at
    /// `answer.last_offset`): the next fetch offset and the local HW.
    pub fn on_fetch_answer(
        &mut self,
        answer: FetchAnswer,
    ) -> Result<FetchProgress, FollowerRefusal> {
        check_leader_epoch(answer.request_leader_epoch, self.leader_epoch)?;
        let FollowerState::Fetching { fetch_offset } = self.state else {
            return Err(FollowerRefusal::NotFetching);
        };
        let next_fetch_offset = match answer.last_offset {
            None => fetch_offset,
            Some(last_offset) if last_offset >= fetch_offset => last_offset.plus(1),
            Some(last_offset) => {
                return Err(FollowerRefusal::AnswerBeforeFetchOffset {
                    last_offset,
                    fetch_offset,
                })
            }
        };
        self.state = FollowerState::Fetching {
            fetch_offset: next_fetch_offset,
        };
        Ok(FetchProgress {
            next_fetch_offset,
            high_watermark: answer.leader_high_watermark.min(next_fetch_offset),
            log_start_offset: answer.leader_log_start_offset,
        })
    }

    /// The controller's current `image` of this partition; `local` is this broker.
    pub fn on_metadata(
        &mut self,
        image: &PartitionImage,
        local: BrokerId,
    ) -> FollowerMetadataDecision {
        let leader_epoch = LeaderEpoch(image.leader_epoch);
        if leader_epoch < self.leader_epoch
            || (leader_epoch == self.leader_epoch && image.leader == Some(self.leader))
        {
            return FollowerMetadataDecision::Unchanged;
        }
        self.leader_epoch = leader_epoch;
        match image.leader {
            Some(leader) if leader == local => FollowerMetadataDecision::Lead { leader_epoch },
            None => FollowerMetadataDecision::NoLeader { leader_epoch },
            Some(leader) => {
                self.leader = leader;
                self.state = FollowerState::Truncating;
                FollowerMetadataDecision::Follow {
                    leader,
                    leader_epoch,
                }
            }
        }
    }
}
