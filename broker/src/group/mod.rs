//! Consumer groups: the coordinator's state machine, in the style of Kafka's KIP-848.
//! Pure: no I/O, no clock of its own (callers pass `now`), no async runtime, no gRPC.
//! The node drives it (`node/groups*.rs`) and persists what it returns as records of
//! `__consumer_offsets` (codec in [`records`]).
//!
//! - Members heartbeat with their subscription and the partitions they own.
//! - The group computes a target assignment with its assignor ([`assignor`]: `uniform`,
//!   sticky and balanced, or `range`) whenever membership or subscribed topics change,
//!   raising the group epoch.
//! - Each member reconciles toward its target incrementally: it is first asked to give up
//!   what moves away; a partition is handed to its new owner only once the old owner has
//!   released it (reported it no longer owned) or was expelled. Members keep consuming
//!   the partitions they keep: no stop-the-world rebalance.
//! - Member epochs fence zombies.
//!
//! # The contract with members (what a client must do)
//!
//! - **Join** with epoch 0, an empty member id and a subscription. The answer carries the
//!   member id, its epoch and always an assignment (possibly empty at first: partitions
//!   still held by others come on later heartbeats).
//! - **Heartbeat** every `heartbeat_interval` with the epoch of the last answer and, at
//!   least whenever it changed, `owned`: the partitions it consumes. An answer's
//!   `assignment`, when present, is the whole set it may consume now: it stops consuming
//!   (commits, then releases) what is no longer in it and starts what is new; its next
//!   heartbeat reports the result in `owned`. Only that report frees a revoked partition
//!   for its next owner, and the member's epoch advances only once it has released all
//!   it was asked to. The assignment is sent when it changed since the last answer, and
//!   again whenever `owned` differs from it (an answer may have been lost).
//! - A member that does not report a revoked partition released within its rebalance
//!   timeout, or does not heartbeat within `session_timeout`, is expelled ([`Group::expire`]):
//!   its partitions are free at once.
//! - **Fencing.** A heartbeat with another epoch than the member's is refused with
//!   `FencedMemberEpoch` (except the previous epoch with `owned` within the current
//!   assignment: the answer that raised it was lost). A fenced member stops consuming
//!   everything and joins again with epoch 0, under its member id (its partitions are then
//!   free at once) or an empty one (they stay held until its old session lapses).
//!   An unknown member id is `UnknownMemberId`.
//! - **Commits** ([`Group::check_commit`]) carry the member id and epoch: an older epoch is
//!   `StaleMemberEpoch` (retry with the current one), a newer one `FencedMemberEpoch`.
//!   A member may commit the partitions it is assigned and those it is giving up.
//! - **Leave** with epoch -1: its partitions are free at once. A static member (with an
//!   instance id) may leave with -2: it stays a member, its partitions reserved and no
//!   rebalance, until its session lapses; a join with the same instance id (new member
//!   id) takes them over.
//!
//! # The contract with the node
//!
//! Every call that changes persistent state says so (`HeartbeatAnswer::changed`, the
//! result of [`Group::on_topics_changed`], a non-empty [`Group::expire`]); the node then
//! writes [`Group::snapshot`] before answering. A plain heartbeat changes nothing. After
//! [`Group::restore`] the group knows no topics until the first heartbeat or
//! [`Group::on_topics_changed`]; a target needed before that waits
//! ([`GroupState::Assigning`]). Call [`Group::expire`] at [`Group::next_deadline`].

pub mod assignor;
mod member;
mod member_heartbeat;
mod reconcile;
pub mod records;
mod state;

#[cfg(test)]
mod assignor_tests;
#[cfg(test)]
mod member_tests;
#[cfg(test)]
mod reconcile_tests;
#[cfg(test)]
mod state_tests;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub use state::Group;

/// Partitions by topic.
pub type Assignment = BTreeMap<String, BTreeSet<i32>>;

/// What the coordinator knows of the cluster's topics: name → partition count, from the
/// metadata image. Internal topics (`__` prefix) are never matched by a regex.
pub type TopicsView = BTreeMap<String, i32>;

/// Broker settings of groups (Kafka's `group.consumer.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// A member without a heartbeat for this long is expelled (45 s).
    pub session_timeout: Duration,
    /// What members are told to send heartbeats at (5 s).
    pub heartbeat_interval: Duration,
    /// How long a member may take to release partitions when it gave none (60 s).
    pub default_rebalance_timeout: Duration,
    /// `group.max.size`.
    pub max_size: usize,
}

impl Default for GroupConfig {
    fn default() -> GroupConfig {
        GroupConfig {
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(5),
            default_rebalance_timeout: Duration::from_secs(60),
            max_size: 1000,
        }
    }
}

/// What a member subscribes to: topic names, a regex over names, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    pub topics: BTreeSet<String>,
    /// Anchored (the whole name must match).
    pub regex: Option<String>,
}

/// Member epoch values with a meaning of their own in a heartbeat.
pub const JOIN_EPOCH: i32 = 0;
pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// One heartbeat, already decoded and checked for shape (group id valid, ids UTF-8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatRequest {
    /// Empty when joining.
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    /// `None`: unchanged since the last heartbeat (required when joining).
    pub subscription: Option<Subscription>,
    /// `None`: keep the group's assignor (`uniform` for a new group).
    pub server_assignor: Option<String>,
    /// `None`: unchanged since the last heartbeat.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatAnswer {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval: Duration,
    /// The partitions the member may own now: on a join, when they changed since its
    /// last answer, and when they differ from the `owned` it reported.
    pub assignment: Option<Assignment>,
    /// Whether the group's persistent state changed: the node writes a new snapshot
    /// record before it answers.
    pub changed: bool,
}

/// KIP-848's group states, as `strata group list` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "empty",
            GroupState::Assigning => "assigning",
            GroupState::Reconciling => "reconciling",
            GroupState::Stable => "stable",
        }
    }
}

/// One member as persisted and as described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSnapshot {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    pub subscription: Subscription,
    pub rebalance_timeout: Duration,
    /// What it may own now.
    pub assigned: Assignment,
    /// What it was asked to give up and has not yet reported released.
    pub revoking: Assignment,
    /// What the assignor wants it to own once reconciled.
    pub target: Assignment,
}

/// A group's whole persistent state: written as one record (key: the group id) whenever
/// it changes, read back by a new coordinator. Session deadlines are not persisted: a
/// restored group gives every member a fresh session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshot {
    pub group_id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<MemberSnapshot>,
}

/// Why the group refused a heartbeat or a commit. Each maps to one wire code
/// (`service/status.rs`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("member {member_id} is not a member of group {group_id}")]
    UnknownMemberId { group_id: String, member_id: String },
    #[error("member {member_id} sent epoch {sent}, but its epoch is {current}: it was fenced; join again")]
    FencedMemberEpoch {
        member_id: String,
        sent: i32,
        current: i32,
    },
    #[error("member {member_id} committed with epoch {sent}, older than its epoch {current}; commit again with the current epoch")]
    StaleMemberEpoch {
        member_id: String,
        sent: i32,
        current: i32,
    },
    #[error("member {member_id} does not own {topic}-{partition}")]
    PartitionNotAssigned {
        member_id: String,
        topic: String,
        partition: i32,
    },
    #[error("group {group_id} has {members} live members")]
    NonEmptyGroup { group_id: String, members: usize },
    #[error("unknown assignor {name:?}; this broker offers \"uniform\" and \"range\"")]
    UnsupportedAssignor { name: String },
    #[error("group {group_id} already has {max_size} members")]
    GroupMaxSizeReached { group_id: String, max_size: usize },
    #[error("instance id {instance_id} is held by member {member_id}")]
    UnreleasedInstanceId {
        instance_id: String,
        member_id: String,
    },
    #[error("invalid heartbeat: {reason}")]
    InvalidRequest { reason: String },
}
