//! # strata-broker — the Strata server
//!
//! Map of the crate (`docs/ARCHITECTURE.md`, "Crates and layers"); dependencies point
//! down, toward the disk:
//!
//! - [`service`]: gRPC adapters (tonic): convert → one call into `node` → convert; the
//!   one domain-error → wire-code mapping (`service/status.rs`).
//! - [`node`]: the broker process core: the partitions this broker leads, produce
//!   (ordered write, then commit: fsync + high watermark), long-poll fetch, list offsets,
//!   idempotent-producer state, broker settings (flags > env > TOML > defaults).
//! - [`controller`]: the cluster metadata as typed records in the metadata log
//!   (`__cluster_metadata-0`), applied by a pure state machine, with snapshots; topic
//!   validation, configs and replica assignment. One node for now; openraft later.
//! - [`log`]: STORAGE. Segments, sparse memory-mapped indexes, the partition log (append,
//!   read, roll, truncate, retention), flush policies with group commit, crash recovery,
//!   checkpoints and the leader-epoch cache. Synchronous; knows nothing of tokio or gRPC.
//! - [`dump`]: `strata-broker dump-log`, a `kafka-dump-log` for Strata segments.
//! - later: `replication` (leader/follower state machines and the fetcher), `group`
//!   (consumer groups) and `admin` (HTTP).
//!
//! Main flows: produce → `service::produce` → `node::Node::produce` (validate, dedupe,
//! `log::PartitionLog::append_deferred`) → `PendingAppend::commit` (group-commit fsync,
//! high watermark) → response. Fetch → `node::Node::fetch` → `log::PartitionLog::read`
//! below the high watermark, stored batch bytes returned verbatim. Admin →
//! `controller::Controller` → metadata record appended → new image applied by the node.
//! Start reading at `node/broker.rs`, then `log/mod.rs`.

pub mod controller;
pub mod dump;
pub mod log;
pub mod node;
pub mod replication;
pub mod service;
