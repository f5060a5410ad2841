//! Group membership of a [`Consumer`](crate::Consumer): `.group("g")` on the builder.
//!
//! Two halves talk over channels, so the record stream never takes a lock per record:
//!
//! - `coordinator`: a background task, one per consumer. It finds the group's
//!   coordinator (`FindCoordinator`), joins (member epoch 0), sends heartbeats at the
//!   interval the coordinator gives, looks up the start offsets of new partitions
//!   (`OffsetFetch`, else `auto.offset.reset`) and sends every commit (`OffsetCommit`,
//!   with the member id and current epoch). `reconcile` keeps its owned/target
//!   bookkeeping, `ledger` what was committed.
//! - the consumer (`stream.rs`, `member.rs`), which applies the task's [`Control`]s when
//!   the application polls: it takes up assigned partitions, and for revoked ones stops
//!   fetching, computes what to commit by the commit mode, and answers with a
//!   [`Request::Released`]. Only after that commit does the task report the partitions no
//!   longer owned, in a heartbeat sent right away.
//!
//! Applying controls inside `poll_next` is what makes `CommitMode::Auto` exact: when the
//! application asks for the next record, every record it was given before is processed
//! (Kafka's "penultimate poll"). A revocation therefore waits until the application polls
//! again; one that does not within the rebalance timeout is expelled by the coordinator.
//!
//! Every control and request carries the member's *incarnation*, counted up at each join
//! from epoch 0. A commit computed before the member was fenced is dropped, not sent with
//! the new incarnation's epoch.

mod coordinator;
mod ledger;
mod member;
mod poll_clock;
mod reconcile;

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};
use tokio_stream::Stream;

pub(crate) use coordinator::{join, GroupSettings};
pub(crate) use ledger::OffsetToCommit;
pub(crate) use member::MemberView;
pub use member::{Marker, PendingCommit};

use crate::error::{Error, ErrorCode};

/// A change of a group consumer's assignment, in the order the consumer applied it: after
/// `Revoked` or `Lost`, no record of those partitions is yielded any more; records of
/// `Assigned` partitions come only after it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RebalanceEvent {
    /// The group gave these partitions to this consumer. Each starts at the group's
    /// committed offset, or at `auto.offset.reset` (`.start(..)`) when none is committed.
    Assigned(Vec<(String, i32)>),
    /// The group moved these partitions to another member; the consumer committed what
    /// the commit mode says before giving them up.
    Revoked(Vec<(String, i32)>),
    /// The member was fenced or expelled (e.g. it missed heartbeats for the session
    /// timeout): these partitions were taken away without a commit, and may already be
    /// read by another member. The consumer joins the group again.
    Lost(Vec<(String, i32)>),
}

/// The rebalance events of one consumer, from [`Consumer::rebalance_events`]: a `Stream`,
/// or `recv().await`. Events that happened before it was created are not in it.
///
/// [`Consumer::rebalance_events`]: crate::Consumer::rebalance_events
#[derive(Debug)]
pub struct RebalanceEvents {
    receiver: mpsc::UnboundedReceiver<RebalanceEvent>,
}

impl RebalanceEvents {
    pub(crate) fn new(receiver: mpsc::UnboundedReceiver<RebalanceEvent>) -> RebalanceEvents {
        RebalanceEvents { receiver }
    }

    /// The next event; `None` once the consumer is closed or dropped.
    pub async fn recv(&mut self) -> Option<RebalanceEvent> {
        self.receiver.recv().await
    }

    /// An event already there, without waiting.
    pub fn try_recv(&mut self) -> Option<RebalanceEvent> {
        self.receiver.try_recv().ok()
    }
}

impl Stream for RebalanceEvents {
    type Item = RebalanceEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<RebalanceEvent>> {
        self.get_mut().receiver.poll_recv(cx)
    }
}

/// What the coordinator task asks of the consumer.
#[derive(Debug)]
pub(crate) enum Control {
    /// Start reading these partitions at these offsets.
    Assign {
        incarnation: u64,
        partitions: Vec<(String, i32, i64)>,
    },
    /// Stop reading these, commit by the commit mode, answer `Request::Released`.
    Revoke {
        incarnation: u64,
        partitions: Vec<(String, i32)>,
    },
    /// Stop reading these without committing; `incarnation` is the member's new one.
    Lost {
        incarnation: u64,
        partitions: Vec<(String, i32)>,
    },
    /// Move this partition to `offset` (its position was out of range and
    /// `auto.offset.reset` applied), unless it was revoked or lost meanwhile.
    Reset {
        incarnation: u64,
        partition: (String, i32),
        offset: i64,
    },
    /// The auto-commit interval passed: answer `Request::Commit` with what is due.
    CommitDue,
    /// An error the application should see as a stream item (the member keeps trying).
    Failed(Error),
}

/// A commit's reply channel, when someone waits for it.
pub(crate) type CommitReply = Option<oneshot::Sender<Result<(), Error>>>;

/// What the consumer asks of the coordinator task.
#[derive(Debug)]
pub(crate) enum Request {
    /// These revoked partitions are stopped; commit `offsets`, then report them released.
    Released {
        incarnation: u64,
        partitions: Vec<(String, i32)>,
        offsets: Vec<OffsetToCommit>,
    },
    /// Commit these offsets (a periodic commit, or the application's).
    Commit {
        incarnation: u64,
        offsets: Vec<OffsetToCommit>,
        reply: CommitReply,
    },
    /// The partition's position is out of range (e.g. its committed offset was deleted
    /// by retention): look up `auto.offset.reset` and answer `Control::Reset`.
    Reset {
        incarnation: u64,
        partition: (String, i32),
    },
    /// The consumer closes: commit `offsets`, leave the group, answer, stop.
    Close {
        incarnation: u64,
        offsets: Vec<OffsetToCommit>,
        reply: CommitReply,
    },
}

/// How the coordinator task reacts to an error of a group call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reaction {
    /// Ask `FindCoordinator` again, then retry (wrong broker, none yet, broker gone).
    Rediscover,
    /// Retry the same coordinator after a back-off (it is loading the group).
    Wait,
    /// The commit's member epoch is old: learn the current one (heartbeat), retry.
    StaleEpoch,
    /// The member is fenced or unknown: its partitions are lost; join again.
    Rejoin,
    /// Not retriable: report it.
    Fail,
}

pub(crate) fn reaction(error: &Error) -> Reaction {
    if error.needs_coordinator_refresh() {
        return Reaction::Rediscover;
    }
    if error.is_member_fenced() {
        return Reaction::Rejoin;
    }
    match error.code() {
        Some(ErrorCode::StaleMemberEpoch) => Reaction::StaleEpoch,
        Some(_) if error.is_retriable() => Reaction::Wait,
        Some(_) => Reaction::Fail,
        None if error.is_retriable() => Reaction::Rediscover,
        None => Reaction::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_errors_map_to_what_the_member_does() {
        let of = |code| reaction(&Error::broker(code, ""));
        assert_eq!(of(ErrorCode::NotCoordinator), Reaction::Rediscover);
        assert_eq!(of(ErrorCode::CoordinatorNotAvailable), Reaction::Rediscover);
        assert_eq!(of(ErrorCode::CoordinatorLoadInProgress), Reaction::Wait);
        assert_eq!(of(ErrorCode::StaleMemberEpoch), Reaction::StaleEpoch);
        assert_eq!(of(ErrorCode::FencedMemberEpoch), Reaction::Rejoin);
        assert_eq!(of(ErrorCode::UnknownMemberId), Reaction::Rejoin);
        assert_eq!(of(ErrorCode::InvalidGroupId), Reaction::Fail);
        assert_eq!(of(ErrorCode::UnreleasedInstanceId), Reaction::Fail);
        assert_eq!(of(ErrorCode::RequestTimedOut), Reaction::Wait);
        let lost = Error::Transport(tonic::Status::unavailable("connection reset"));
        assert_eq!(reaction(&lost), Reaction::Rediscover);
        assert_eq!(
            reaction(&Error::InvalidConfig("x".to_owned())),
            Reaction::Fail
        );
    }
}
