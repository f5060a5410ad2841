//! # Replication (`broker::replication`): the leader and follower state machines
//!
//! Kafka's pull model (docs/ARCHITECTURE.md, "Replication"): followers fetch from the leader; the leader learns
//! each follower's log end offset from its fetch offset, moves the high watermark over the
//! ISR and proposes ISR changes to the controller; a follower reconciles with a new leader
//! by leader epoch before fetching. Everything here is pure and synchronous: no I/O, no
//! tokio, no gRPC types, no clock reads (times are `Instant`s passed in). The node layer
//! drives these machines and the fetcher adapter (`fetcher*.rs`, the only files here
//! allowed to speak gRPC, `.ci/check-layering`) carries their requests.
//!
//! Map:
//! - [`leader`]: [`LeaderPartition`], one partition this broker leads: follower progress,
//!   high watermark over the maximal ISR (KIP-497), ISR shrink/expand proposals with their
//!   partition epoch, `acks=all` readiness and `min_insync_replicas`.
//! - [`follower`]: [`FollowerPartition`], one partition this broker follows: truncating,
//!   then fetching; next request, answers, the local HW.
//! - [`truncation`]: [`truncation_point`], where a follower truncates (KIP-101, KIP-279).
//! - [`fetcher`]: the adapter: one task per leader broker carrying [`FollowerPartition`]'s
//!   requests over `strata.v1.Replication` and appending the answers to the local logs.
//! - [`epoch_fence`]: [`check_leader_epoch`], stale or unknown leader epochs (KIP-320).
//!
//! Start reading at [`leader`]. The simulations in `simulation_tests.rs` (one leader, two
//! followers) and `divergence_tests.rs` (leader changes, divergent logs) check the
//! invariants: `hw_never_decreases`, `hw_within_committed_isr`, `acked_never_lost`,
//! `leader_in_isr`, `follower_log_is_prefix_of_leader`.

pub mod epoch_fence;
pub mod fetcher;
pub mod follower;
pub mod leader;
pub mod truncation;

#[cfg(test)]
mod divergence_tests;
#[cfg(test)]
mod follower_tests;
#[cfg(test)]
mod leader_tests;
#[cfg(test)]
mod simulation_tests;

pub use epoch_fence::{check_leader_epoch, EpochMismatch};
pub use follower::{
    EpochAnswer, FetchAnswer, FetchProgress, FollowerMetadataDecision, FollowerPartition,
    FollowerRefusal, FollowerRequest, FollowerState,
};
pub use leader::{
    AckState, FetchDecision, FetchRefusal, FollowerFetch, IsrChange, IsrProposal, LeaderConfig,
    LeaderMetadataDecision, LeaderPartition, LeaderStart, NotEnoughReplicas,
    REPLICA_LAG_MAX_DEFAULT,
};
pub use truncation::{truncation_point, TruncationStep};
