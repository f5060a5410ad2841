//! # The broker process (`broker::node`)
//!
//! - [`broker`]: [`Node`], the core: log manager + controller + the partitions this broker
//!   leads; produce (write, then commit), long-poll fetch, list offsets, producer ids.
//! - `followers`: the partitions this broker follows, their logs opened for the replica
//!   fetchers (`replication/fetcher.rs`) and never served to clients.
//! - [`partition`]: one led partition: validation, idempotence, acks, high watermark.
//! - [`replica_fetch`]: the leader side of replication: replica fetches (read to the log
//!   end, KIP-320 divergence) and `OffsetForLeaderEpoch`, for registered replicas only.
//! - `replica_repair`: a replica found damaged at start-up is kept offline, and repaired
//!   (cut to its last good batch, then fetched from the leader) when another live
//!   in-sync replica leads and this broker is out of the ISR.
//! - [`producer_state`]: idempotent-producer sequence tracking, rebuilt from the log.
//! - [`producer_snapshots`]: that state saved at segment boundaries, in the background, so
//!   opening a partition replays about one segment of batch headers, not the whole log.
//! - [`groups`]: the group coordinator runtime around the pure [`crate::group`] state
//!   machine: `__consumer_offsets` created, loaded when led here and written with
//!   `acks=all` (`groups_store`), member expiry and topic changes in the background,
//!   the requests (`groups_requests`), list/describe/lag (`groups_describe`), high watermarks of consumed partitions
//!   (`groups_offsets`), `__consumer_offsets` created and sized (`groups_topic`).
//! - [`config`]: `strata-broker` settings: flags > env (`STRATA_…`) > TOML > defaults.
//! - [`descriptors`]: the descriptor budget: `RLIMIT_NOFILE` raised to the hard limit, and
//!   how many partitions and open segments fit it.
//! - [`error`]: [`NodeError`], mapped to wire codes once, in `service/status.rs`.
//! - [`shutdown_budget`]: one deadline for a SIGTERM shutdown, shared by its steps.

pub mod broker;
pub mod config;
pub mod descriptors;
pub mod error;
mod followers;
pub mod groups;
pub mod groups_describe;
pub mod groups_offsets;
pub mod groups_requests;
pub mod groups_store;
pub mod groups_topic;
pub mod partition;
pub mod producer_snapshots;
pub mod producer_state;
pub mod replica_fetch;
mod replica_repair;
pub mod shutdown_budget;
#[cfg(test)]
pub(crate) mod test_node;

pub use broker::{
    FetchSpec, FetchedData, Limits, ListedOffset, Node, NodeConfig, OffsetQuery, PendingAppend,
};
pub use error::NodeError;
pub use groups::{GroupCoordinator, GroupSettings};
pub use partition::{Acks, Appended};
pub use replica_fetch::{ReplicaFetchSpec, ReplicaFetched, ReplicaRead};
