//! # strata-broker — the Strata server
//!
//! Map of the crate (DESIGN.md §2); dependencies point down, toward the disk:
//!
//! - [`log`]: STORAGE. Segments, sparse memory-mapped indexes, the partition log (append,
//!   read, roll, truncate, retention), flush policies with group commit, crash recovery,
//!   checkpoints and the leader-epoch cache. Synchronous; knows nothing of tokio or gRPC.
//! - [`dump`]: `strata-broker dump-log`, a `kafka-dump-log` for Strata segments.
//! - later: `replication` (leader/follower state machines and the fetcher), `controller`
//!   (metadata state machine on openraft), `group` (consumer groups), `node` (the broker
//!   process), `service` (gRPC adapters) and `admin` (HTTP).
//!
//! Main flows, once the upper layers exist: produce → `service` → `node` → `log::PartitionLog::append`
//! → group commit → ack; fetch → `log::PartitionLog::read` returns stored batch bytes
//! verbatim. Start reading at `log/mod.rs`.

pub mod controller;
pub mod dump;
pub mod log;
pub mod node;
pub mod service;
