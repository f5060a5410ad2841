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
//! - [`controller`]: the cluster metadata as typed records applied by a pure state
//!   machine; topic validation, configs, replica assignment, leadership policy (fencing,
//!   elections, reassignment, ISR changes), and the controller quorum (`quorum`: Raft via
//!   openraft, the active controller, registration and leases).
//! - [`replication`]: leader and follower state machines (high watermark, ISR changes,
//!   KIP-101 truncation), pure; the fetcher that drives them.
//! - [`log`]: STORAGE. Segments, sparse memory-mapped indexes, the partition log (append,
//!   follower append, read, roll, truncate, retention, compaction, the follower's log
//!   start, who may append), flush policies with group commit, crash recovery and the
//!   repair of a damaged replica, checkpoints, the leader-epoch cache and producer-state
//!   snapshots. Synchronous; knows nothing of tokio or gRPC.
//! - [`dump`]: `strata-broker dump-log`, a `kafka-dump-log` for Strata segments and the
//!   controller's Raft state.
//! - [`group`]: consumer groups' coordinator state machine (KIP-848 style), pure, and
//!   the codec of `__consumer_offsets` records; driven by `node/groups*.rs` and served
//!   by `service/group_api.rs` (`docs/GROUPS.md`).
//! - [`admin`]: the admin HTTP listener: `/healthz`, `/readyz` (the readiness rule),
//!   `/metrics` (Prometheus), and the client of `strata-broker probe --ready`.
//!
//! Main flows: produce → `service::produce` → `node::Node::produce` (validate, dedupe,
//! `log::PartitionLog::append_deferred`) → `PendingAppend::commit` (group-commit fsync,
//! high watermark) → response. Fetch → `node::Node::fetch` → `log::PartitionLog::read`
//! below the high watermark, stored batch bytes returned verbatim. Admin →
//! `node::Node::submit` → the active controller (`controller::quorum::active`, forwarded
//! to the Raft leader) → records committed through Raft → every broker applies the new
//! image.
//! Start reading at `node/broker.rs`, then `log/mod.rs`.

pub mod admin;
pub mod controller;
pub mod dump;
pub mod group;
pub mod log;
pub mod node;
pub mod replication;
pub mod service;
