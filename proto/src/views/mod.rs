//! # JSON views (`strata_proto::views`)
//!
//! The plain serde structs that describe the cluster as JSON, shared by the two places that
//! print it: the CLI's `--format json` (`strata topic describe`, `group describe`,
//! `cluster info`, …) and the broker's read-only admin API (`GET /v1/…`,
//! `docs/OPERATIONS.md`, "JSON admin API"). Both build these structs, so a field renamed
//! in one is renamed in the other. No gRPC types and no I/O here: each side converts from
//! its own model.
//!
//! Field names are part of the user interface: they are only ever added, never renamed
//! (docs/CLI.md, "Output"). Optional values are `null` when unknown, never `-1`.

pub mod cluster;
pub mod error;
pub mod group;
pub mod record;
pub mod topic;

pub use cluster::{BrokerView, ClusterHealthView, ClusterView, VoterView};
pub use error::{ApiError, ApiErrorBody};
pub use group::{
    GroupListingView, GroupMemberView, GroupPartitionView, GroupRetryTopicView, GroupView,
    TopicPartitionView,
};
pub use record::{RecordHeaderView, RecordView, RecordsPeekView};
pub use topic::{ConfigView, PartitionView, TopicListingView, TopicView};
